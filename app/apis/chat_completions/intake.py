"""From an OpenAI chat completion request to a ChatCall, with the native API's checks in OpenAI's
terms: the strict JSON body, the conversation's size before any per-message work (message count,
MAX_CONVERSATION_CHARS), the schema, and the input-token limit. MAX_MESSAGE_CHARS, the native
API's bound on its `message` and `system` fields, has no counterpart here: OpenAI's API bounds no
single message, and its clients send long ones (a pasted document).

The messages a client may drop to make a conversation fit are those between the leading system
prompt(s) and the last message, oldest first: what `input_too_long` counts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Request

from ...config import Settings
from ...providers.base import Provider
from ...providers.call import ChatCall
from ...providers.counted import definitions
from ..functions import attached, refuse_untaken
from ..intake import bounded, count_prompt, read_json, refuse_oversized_messages, validate_request
from ..openai import SYSTEM_ROLES
from ..unknown import as_input, passed, refuse_controls, tolerance
from .schemas import CompletionRequestSchema

DROPPABLE = "message(s) after the system prompt"
# Options passed to the provider as they are, under OpenAI's names.
OPTIONS = tuple(
    (
        "top_p stop seed presence_penalty frequency_penalty user tools tool_choice parallel_tool_calls "
        "response_format logit_bias reasoning_effort verbosity store metadata service_tier prompt_cache_key "
        "safety_identifier logprobs top_logprobs"
    ).split()
)
# Values that ask for nothing: not sent on (some servers refuse an empty list of tools).
_NOTHING = {"tools": [], "response_format": {"type": "text"}, "logit_bias": {}, "logprobs": False}


@dataclasses.dataclass(frozen=True)
class Completion:
    """A validated completion request: the provider call, its counted prompt tokens (None: not
    counted, it fits), and how to answer it."""

    call: ChatCall
    prompt_tokens: int | None
    stream: bool
    include_usage: bool


def prepare_completion(
    request: Request, schema: CompletionRequestSchema, settings: Settings, provider: Provider
) -> Completion:
    """The validated request, or ApiError (400 naming the fields, input_too_long, 413, 415)."""
    data = read_json(request)
    refuse_oversized_messages(data, settings, provider, _droppable, DROPPABLE)
    tolerant = tolerance(settings, "chat_completions")
    fields = validate_request(data, schema, tolerant=tolerant)
    messages = [_message(entry) for entry in fields["messages"]]
    options = {name: fields[name] for name in OPTIONS if name in fields and fields[name] != _NOTHING.get(name)}
    if "tools" not in options:  # what is left of tool_choice without tools asks for nothing
        options.pop("tool_choice", None)
    refuse_untaken(options, attached(messages), provider, "messages")
    model = fields.get("model", settings.default_model)
    native = _native(data, fields, schema) if tolerant else None
    unknown = as_input(native["fields"]) if native else []
    if native:
        refuse_controls(native["fields"], provider.allowed_fields(model))
    total = _count([*unknown, *definitions(options)], messages, settings, provider)
    call = ChatCall(
        model=model,
        fallbacks=tuple(fields["fallbacks"]) if "fallbacks" in fields else None,
        messages=messages,
        max_tokens=bounded(*_asked_tokens(fields), model, settings),
        temperature=fields.get("temperature"),
        options=options,
        typed=True,
        native=native,
        extra=tuple(unknown),
    )
    include_usage = bool(fields.get("stream_options", {}).get("include_usage"))
    return Completion(call, total, bool(fields.get("stream")), include_usage)


def _asked_tokens(fields: dict[str, Any]) -> tuple[int | None, str]:
    """The fewest tokens the request asks for (None: it asks none) and the field that asks them
    (max_tokens, or max_completion_tokens, OpenAI's newer name)."""
    asked = [(fields[name], name) for name in ("max_tokens", "max_completion_tokens") if name in fields]
    return min(asked) if asked else (None, "max_tokens")


def _native(data: dict[str, Any], fields: dict[str, Any], schema: CompletionRequestSchema) -> dict[str, Any] | None:
    """What a server that speaks chat completions gets as it was sent (the others, and
    continuations, leave it out): the top-level fields ChatWait does not know, and the tools
    whole where they hold such fields (a function's `defer_loading`, `output_schema`...)."""
    native: dict[str, Any] = {"api": "chat_completions", "fields": passed(data, schema)}
    if "tools" in fields and _more(data["tools"], fields["tools"]):
        native["tools"] = data["tools"]
    return native if native["fields"] or "tools" in native else None


def _more(sent: list[Any], taken: list[dict[str, Any]]) -> bool:
    """Whether the tools as sent hold fields the validated ones do not."""
    return any(
        set(given) - set(tool) or set(given.get("function") or ()) - set(tool.get("function") or ())
        for given, tool in zip(sent, taken, strict=False)
    )


def _droppable(messages: list[dict[str, Any]]) -> tuple[int, int]:
    """The range of messages a client may drop: after the leading system prompts, before the last."""
    first = 0
    while first < len(messages) - 1 and messages[first].get("role") in SYSTEM_ROLES:
        first += 1
    return first, max(first, len(messages) - 1)


def _message(entry: dict[str, Any]) -> dict[str, Any]:
    """A validated message as the provider takes it (`developer` is OpenAI's newer `system`; an
    assistant's message that only calls tools has null content, as OpenAI writes it)."""
    message = {"role": "system" if entry["role"] == "developer" else entry["role"], "content": entry.get("content")}
    for name in ("name", "tool_calls", "tool_call_id", "refusal"):
        if name in entry:
            message[name] = entry[name]
    return message


def _count(
    ahead: list[dict[str, Any]], messages: list[dict[str, Any]], settings: Settings, provider: Provider
) -> int | None:
    """The prompt tokens (None: it fits by the cheap bound), what the model reads before the
    conversation included (`ahead`: unknown fields passed on, the tools' definitions), never dropped."""
    first, end = _droppable(messages)
    return count_prompt([*ahead, *messages], (first + len(ahead), end + len(ahead)), settings, provider, DROPPABLE)
