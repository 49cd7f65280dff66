"""Anthropic's Messages API (POST /v1/messages, its streams resumable; count_tokens), in
Anthropic's error shape on its paths, over the same generation core as every family: a request is
translated into the chat messages every upstream takes, and the reply back into content blocks.
`views`, `intake`, `blocks`, `schemas`, `replies`, `wire`."""

from __future__ import annotations

import dataclasses
from typing import Any

from ...config import Settings
from ...errors import ApiError
from ..family import Family, StreamWire
from . import wire
from .replies import anthropic_error, error_status
from .schemas import CountTokensSchema, MessagesRequestSchema
from .views import NAME, bp

__all__ = ["FAMILY"]


@dataclasses.dataclass(frozen=True)
class Schemas:
    """The request schemas of one app, bounded by its settings."""

    create: MessagesRequestSchema
    count: CountTokensSchema


def _schemas(settings: Settings) -> Schemas:
    bounds: dict[str, Any] = {
        "max_messages": settings.requests.max_history_messages + 2,
        "allowed_models": settings.upstream.allowed_models,
    }
    return Schemas(MessagesRequestSchema(**bounds), CountTokensSchema(**bounds))


def _contract(schemas: dict[str, Any], settings: Settings) -> None:
    """This deployment's bounds in the Messages request components."""
    for name in ("MessagesRequest", "MessagesCountTokensRequest"):
        request = schemas[name]["properties"]
        request["model"]["enum"] = list(settings.upstream.allowed_models)
        request["messages"]["maxItems"] = settings.requests.max_history_messages + 2


def _shape(error: ApiError, correlation_id: str | None) -> dict[str, Any]:
    return anthropic_error(error, correlation_id)


FAMILY = Family(
    name=NAME,
    blueprint=bp,
    error_prefixes=("/v1/messages",),
    error_shape=_shape,
    stream_wire=StreamWire(wire.NAME, wire.writer, "/v1/messages", "/v1/messages/streams/{id}"),
    per_app=_schemas,
    contract=_contract,
    error_status=error_status,
)
