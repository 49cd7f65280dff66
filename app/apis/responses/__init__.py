"""OpenAI's Responses API (POST /v1/responses: foreground, background, streamed; retrieve,
resume, cancel, delete; input items and input tokens; `previous_response_id` chains; turns added
to a conversation), in OpenAI's error shape (a conversation too long is in `input`). `views`,
`socket`, `intake`, `fit`, `stored`, `schemas`, `replies`, `wire`; its items: `apis.items`."""

from __future__ import annotations

from typing import Any

from ...config import Settings
from ..family import Family, StreamWire
from ..openai import openai_error_shape
from ..schema import MAX_ASKED_TOKENS
from . import stored, wire
from .schemas import ResponseRequestSchema
from .views import NAME, bp, revive_turns


def _schema(settings: Settings) -> ResponseRequestSchema:
    """The request schema, bounded by the settings."""
    return ResponseRequestSchema(
        max_items=settings.requests.max_history_messages + 2,
        allowed_models=settings.upstream.allowed_models,
    )


def _contract(schemas: dict[str, Any], settings: Settings) -> None:
    """This deployment's bounds in the ResponseRequest component."""
    response = schemas["ResponseRequest"]["properties"]
    response["model"]["enum"] = [*settings.upstream.allowed_models, None]
    response["input"]["oneOf"][1]["maxItems"] = settings.requests.max_history_messages + 2
    response["max_output_tokens"]["maximum"] = MAX_ASKED_TOKENS


FAMILY = Family(
    name=NAME,
    blueprint=bp,
    error_prefixes=("/v1/responses",),
    error_shape=openai_error_shape("input"),
    stream_wire=StreamWire(wire.NAME, wire.writer, "/v1/responses", "/v1/responses/{id}?stream=true"),
    per_app=_schema,
    contract=_contract,
    reviver=revive_turns,
    output_items=stored.output_items,
)
