"""OpenAI's chat completions API (POST /v1/chat/completions, its streams resumable) and models API
(GET /v1/models), in OpenAI's error shape on every /v1/ path no other family claims.
`views`, `models`, `intake`, `schemas`, `replies`, `wire`."""

from __future__ import annotations

from typing import Any

from ...config import Settings
from ..family import Family, StreamWire
from ..openai import openai_error_shape
from ..schema import MAX_ASKED_TOKENS
from . import models, wire
from .schemas import CompletionRequestSchema
from .views import NAME, bp

__all__ = ["FAMILY", "models"]


def _schema(settings: Settings) -> CompletionRequestSchema:
    """The request schema, bounded by the settings."""
    return CompletionRequestSchema(
        max_messages=settings.requests.max_history_messages + 2,
        allowed_models=settings.upstream.allowed_models,
    )


def _contract(schemas: dict[str, Any], settings: Settings) -> None:
    """This deployment's bounds in the CompletionRequest component."""
    completion = schemas["CompletionRequest"]["properties"]
    completion["model"]["enum"] = [*settings.upstream.allowed_models, None]
    completion["fallbacks"]["items"]["enum"] = list(settings.upstream.allowed_models)
    completion["messages"]["maxItems"] = settings.requests.max_history_messages + 2
    completion["max_tokens"]["maximum"] = completion["max_completion_tokens"]["maximum"] = MAX_ASKED_TOKENS


FAMILY = Family(
    name=NAME,
    blueprint=bp,
    error_prefixes=("/v1/",),  # any /v1/ path no other family claims: an OpenAI client may try it
    error_shape=openai_error_shape("messages"),
    stream_wire=StreamWire(wire.NAME, wire.writer, "/v1/chat/completions", "/v1/chat/completions/{id}/stream"),
    per_app=_schema,
    contract=_contract,
)
