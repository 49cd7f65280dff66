"""The native API: POST /v1/chat/wait (one JSON reply) and /v1/chat/streaming (resumable
Server-Sent Events: `stream`, `chunk`, `done` or `error`), resume and stop, in the service's
own error shape. `views`, `intake`, `schemas`, `replies`, `wire`."""

from __future__ import annotations

from typing import Any

from ...config import Settings
from ...streaming.wire import NATIVE_NAME
from ..family import Family, StreamWire
from ..schema import MAX_ASKED_TOKENS
from ..shapes import own_shape
from . import wire
from .schemas import ChatRequestSchema
from .views import NAME, bp


def _schema(settings: Settings) -> ChatRequestSchema:
    """The request schema, bounded by the settings."""
    return ChatRequestSchema(
        max_message_chars=settings.requests.max_message_chars,
        max_history_messages=settings.requests.max_history_messages,
        allowed_models=settings.upstream.allowed_models,
    )


def _contract(schemas: dict[str, Any], settings: Settings) -> None:
    """This deployment's bounds in the ChatRequest component."""
    request = schemas["ChatRequest"]["properties"]
    request["model"]["enum"] = request["fallbacks"]["items"]["enum"] = list(settings.upstream.allowed_models)
    request["message"]["maxLength"] = settings.requests.max_message_chars
    request["system"]["maxLength"] = settings.requests.max_message_chars
    request["history"]["maxItems"] = settings.requests.max_history_messages
    request["max_tokens"]["maximum"] = MAX_ASKED_TOKENS


FAMILY = Family(
    name=NAME,
    blueprint=bp,
    error_prefixes=("/v1/chat/wait", "/v1/chat/streaming"),
    error_shape=own_shape,
    stream_wire=StreamWire(NATIVE_NAME, wire.writer, "/v1/chat/streaming", "/v1/chat/streaming/{id}"),
    per_app=_schema,
    contract=_contract,
)
