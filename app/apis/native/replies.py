"""The native API's JSON replies, built once from what they say and shaped by their schemas: the
whole reply of wait mode, and the result of a stop. Its stream's events are written by `wire`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..schema import serialise
from .schemas import ChatReplySchema, StopResultSchema

if TYPE_CHECKING:
    from ...generation.outcome import Outcome


def wait_reply(correlation_id: str, model: str, outcome: Outcome) -> dict[str, Any]:
    """What POST /v1/chat/wait answers: the whole reply, how it ended and what it cost."""
    reply = {
        "id": correlation_id,
        "correlation_id": correlation_id,
        "model": model,
        "content": outcome.text,
        "finish_reason": outcome.finish_reason,
        "usage": outcome.usage_and_cost(),
        "usage_source": outcome.usage.source,
        "duration_ms": outcome.duration_ms,
    }
    return serialise(ChatReplySchema, reply)


def stop_result(stream_id: str, status: str, last_event_id: int) -> dict[str, Any]:
    """What DELETE /v1/chat/streaming/{id} answers: `cancelled` or `already_finished`, and the last event id."""
    return serialise(StopResultSchema, {"stream_id": stream_id, "status": status, "last_event_id": last_event_id})
