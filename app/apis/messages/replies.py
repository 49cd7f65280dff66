"""The objects Anthropic's Messages API answers with, built from what they say (a generation's
outcome, a stream's id): the whole `message` (`stream` false), its usage and stop reason, a
stopped stream, a token count, and ChatWait's errors in Anthropic's shape. The stream's own
events are written by `wire`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..openai import openai_error_body

if TYPE_CHECKING:
    from ...errors import ApiError
    from ...generation.outcome import Outcome
    from ...providers.call import Usage

MESSAGE_PREFIX = "msg_"
# How a generation ended, as Anthropic says it (a stop by the client ends the turn).
_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
# Anthropic's error types, by HTTP status (its SDKs raise a class per status).
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
OVERLOADED = 529  # Anthropic's status for "busy, try again", its SDKs' OverloadedError
# The errors that say ChatWait or its model servers are busy: Anthropic's 529 rather than 503.
_OVERLOADED_CODES = frozenset(("server_busy", "upstream_unavailable"))


def error_status(error: ApiError) -> int:
    """The status of `error` on Anthropic's paths: 529 where ChatWait or its model servers are busy."""
    return OVERLOADED if error.error_code in _OVERLOADED_CODES else error.status


def stop_reason(outcome: Outcome) -> dict[str, Any]:
    """How a generation ended as Anthropic's clients know it: `stop_reason`, and `stop_sequence`
    where the upstream said which of the client's ended it."""
    if outcome.stop_sequence is not None and outcome.finish_reason == "stop":
        return {"stop_reason": "stop_sequence", "stop_sequence": outcome.stop_sequence}
    return {"stop_reason": _STOP_REASONS.get(outcome.finish_reason or "", "end_turn"), "stop_sequence": None}


def usage_of(usage: Usage) -> dict[str, Any]:
    """A generation's usage in Anthropic's names (its input_tokens leave out the prompt's parts read
    from or written to the cache; `cache_creation`: the writes by lifetime)."""
    cached, written = usage.cached_tokens, usage.cache_write_tokens
    return {
        "input_tokens": max(0, usage.prompt_tokens - cached - written),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": written - usage.cache_write_long_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_long_tokens,
        },
    }


def anthropic_error(error: ApiError, correlation_id: str | None) -> dict[str, Any]:
    """ChatWait's error in Anthropic's shape, `{"type": "error", "error": {type, message}}`:
    `message` says what happened, why and what to do, as the OpenAI families word it."""
    said = openai_error_body(error, correlation_id)["error"]
    status = error_status(error)
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body: dict[str, Any] = {"type": kind, "message": said["message"], "code": error.error_code}
    if error.retry_after is not None:
        body["retry_after_seconds"] = round(error.retry_after, 3)
    return {"type": "error", "error": body, "request_id": correlation_id}


def message(message_id: str, model: str, outcome: Outcome) -> dict[str, Any]:
    """A whole reply as a `message`: its thinking, text and tool calls as content blocks."""
    content: list[dict[str, Any]] = []
    parts = outcome.parts
    if parts is not None and parts.reasoning:
        content.append({"type": "thinking", "thinking": parts.reasoning, "signature": parts.signature})
    text = outcome.text + (parts.refusal if parts is not None else "")
    if text:
        content.append({"type": "text", "text": text})
    for call in parts.tool_calls if parts is not None else ():
        content.append({"type": "tool_use", "id": call.call_id, "name": call.name, "input": _input(call.arguments)})
    return {
        "id": MESSAGE_PREFIX + message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        **stop_reason(outcome),
        "usage": {**usage_of(outcome.usage), "chatwait": outcome.ledger()},
        "usage_source": outcome.usage.source,
    }


def _input(arguments: str) -> Any:
    """A tool call's arguments as the object Anthropic's `input` is (kept as text if not JSON)."""
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return {"arguments": arguments}


def stopped(stream_id: str, status: str, last_event_id: int) -> dict[str, Any]:
    """What a stop of a message stream answers: `cancelled` or `already_finished`, and its last event id."""
    reply = {"id": MESSAGE_PREFIX + stream_id, "type": "message_stream", "status": status}
    return {**reply, "last_event_id": last_event_id}


def token_count(input_tokens: int) -> dict[str, Any]:
    """The reply of POST /v1/messages/count_tokens."""
    return {"input_tokens": input_tokens}
