"""The native API's intake: from a POST /v1/chat/wait or /v1/chat/streaming body to a ChatCall.

The body's sizes are checked before any per-message work (MAX_HISTORY_MESSAGES entries,
MAX_CONVERSATION_CHARS), then the schema (MAX_MESSAGE_CHARS on `message` and `system`), then
the input-token limit, which says how many of the oldest history messages to drop.
"""

from __future__ import annotations

from typing import Any

from flask import Request

from ...config import Settings
from ...errors import ApiError
from ...providers.base import Provider
from ...providers.call import ChatCall
from ..intake import bounded, count_prompt, read_json, refuse_long_text, validate_request
from .schemas import ChatRequestSchema


def prepare(
    request: Request, schema: ChatRequestSchema, settings: Settings, provider: Provider
) -> tuple[ChatCall, int | None]:
    """The request's call and its counted prompt tokens, or ApiError (400 naming the fields,
    input_too_long, 413, 415)."""
    data = read_json(request)
    refuse_oversized(data, settings, provider)  # before any per-message work
    fields = validate_request(data, schema)
    return build_call(fields, settings, provider)


def refuse_oversized(data: Any, settings: Settings, provider: Provider) -> None:
    """Refuse a conversation from its sizes alone, before any per-message work: more history
    entries than MAX_HISTORY_MESSAGES, or more characters than MAX_CONVERSATION_CHARS."""
    if not isinstance(data, dict):
        return
    history = data.get("history")
    if isinstance(history, list) and len(history) > settings.requests.max_history_messages:
        message = f"{len(history)} messages; at most {settings.requests.max_history_messages}: drop the oldest ones."
        raise ApiError("validation_error", "1 field(s) are invalid.", fields={"history": [message]})
    own = (_text_length(data.get("message")), _text_length(data.get("system")))
    if max(own) > settings.requests.max_message_chars:
        return  # the schema names that field, within the history's bound
    entries = history if isinstance(history, list) else ()  # any other kind: the schema refuses it
    lengths = [_text_length(entry.get("content")) for entry in entries if isinstance(entry, dict)]
    refuse_long_text([own[1], *lengths, own[0]], (1, 1 + len(lengths)), settings, provider)


def _text_length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def build_call(fields: dict[str, Any], settings: Settings, provider: Provider) -> tuple[ChatCall, int | None]:
    """The provider call for validated fields and its prompt token count (None: not counted,
    because the provider's cheap bound already shows that the conversation fits).

    Raises ApiError(input_too_long) with how many oldest history messages to drop.
    """
    system = [{"role": "system", "content": fields["system"]}] if "system" in fields else []
    history = [{"role": m["role"], "content": m["content"]} for m in fields["history"]]
    messages = [*system, *history, {"role": "user", "content": fields["message"]}]
    total = count_prompt(messages, (len(system), len(system) + len(history)), settings, provider)
    model = fields.get("model", settings.default_model)
    call = ChatCall(
        model=model,
        fallbacks=tuple(fields["fallbacks"]) if "fallbacks" in fields else None,
        messages=messages,
        max_tokens=bounded(fields.get("max_tokens"), "max_tokens", model, settings),
        temperature=fields.get("temperature"),
        options={"user": fields["user"]} if "user" in fields else {},
    )
    return call, total
