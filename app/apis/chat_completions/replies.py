"""The objects chat completions answers with, built once from what they say (a generation's
outcome, a stream's id) and shaped by their schemas: the whole `chat.completion` (`stream`
false), a stopped stream and a deleted completion. The stream's own chunks are written by `wire`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...providers.base import OPENAI_FINISH_REASONS
from ..schema import serialise
from .object_schemas import CompletionDeletedSchema, CompletionSchema, CompletionStopSchema

if TYPE_CHECKING:
    from ...generation.outcome import Outcome

COMPLETION_PREFIX = "chatcmpl-"


def openai_finish_reason(reason: str | None) -> str:
    """A finish reason as OpenAI's clients know them: a stop by the client (`cancelled`) is `stop`."""
    return reason if reason in OPENAI_FINISH_REASONS else "stop"


def completion(completion_id: str, created: float, model: str, outcome: Outcome) -> dict[str, Any]:
    """A whole reply as a `chat.completion` object (`stream: false`): its text (null when it only
    calls tools), refusal, tool calls, reasoning, and its tokens' log probabilities where asked."""
    parts = outcome.parts
    message: dict[str, Any] = {"role": "assistant", "content": outcome.text, "refusal": None}
    if parts is not None:
        if parts.tool_calls:
            message["tool_calls"] = [call.as_openai() for call in parts.tool_calls]
            message["content"] = outcome.text or None
        if parts.refusal:
            message["refusal"] = parts.refusal
        if parts.reasoning:
            message["reasoning_content"] = parts.reasoning
    finish_reason = openai_finish_reason(outcome.finish_reason)
    logprobs = {"content": parts.logprobs, "refusal": None} if parts is not None and parts.logprobs else None
    choice = {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish_reason}
    reply = {
        "id": COMPLETION_PREFIX + completion_id,
        "object": "chat.completion",
        "created": int(created),
        "model": model,
        "choices": [choice],
        "usage": {**outcome.usage.as_dict(), "chatwait": outcome.ledger()},
        "usage_source": outcome.usage.source,
    }
    return serialise(CompletionSchema, reply)


def stopped(stream_id: str, status: str, last_event_id: int) -> dict[str, Any]:
    """What a stop of a completion stream answers: `cancelled` or `already_finished`, and its last event id."""
    reply = {
        "id": COMPLETION_PREFIX + stream_id,
        "object": "chat.completion.stream",
        "status": status,
        "last_event_id": last_event_id,
    }
    return serialise(CompletionStopSchema, reply)


def deleted(stream_id: str) -> dict[str, Any]:
    """OpenAI's deletion object for a completion."""
    reply = {"id": COMPLETION_PREFIX + stream_id, "object": "chat.completion.deleted", "deleted": True}
    return serialise(CompletionDeletedSchema, reply)
