"""From a Responses API request to a ChatCall: the strict JSON body, the input's size before any
per-item work, the schema, the earlier turns of `previous_response_id`, and the input-token limit.

The conversation sent to the model is `instructions` (as a system message), then the stored
conversation of the previous response (its input and its output), then this request's input;
together they meet the bounds a direct input meets, or lose their oldest turns with truncation
"auto" (`fit`). Instructions are not carried over from a previous response, as OpenAI's API does.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from flask import Request

from ...config import Settings
from ...errors import ApiError
from ...providers.base import ChatCall, Provider
from ...streaming.stream import Retention
from ..intake import read_json, refuse_long_text, validate_request
from ..openai import SYSTEM_ROLES, content_length
from .fit import DROPPABLE, fit
from .objects import ECHOED
from .schemas import ResponseRequestSchema


@dataclasses.dataclass(frozen=True)
class ResponseRequest:
    """A validated Responses request: the call, its counted prompt tokens (None: it fits without
    counting), how to answer, the parameters echoed in the response object, and the
    conversation to store for a later `previous_response_id` (earlier turns and this input)."""

    call: ChatCall
    prompt_tokens: int | None
    stream: bool
    background: bool
    store: bool
    echo: dict[str, Any]
    conversation: list[dict[str, str]]

    def retention(self, settings: Settings) -> Retention:
        """How its stream is kept: a stored response with its conversation for
        RESPONSE_TTL_SECONDS; a foreground one cancelled when nobody follows it."""
        if not self.store:
            return Retention(foreground=not self.background)
        context = json.dumps(self.conversation).encode()
        return Retention(settings.response_ttl_seconds, context, foreground=not self.background, stored=True)


def prepare_response(
    request: Request,
    schema: ResponseRequestSchema,
    settings: Settings,
    provider: Provider,
    earlier: Callable[[str], list[dict[str, str]]],
) -> ResponseRequest:
    """The validated request, or ApiError (400 naming the parameter, input_too_long, 404 for an
    unknown previous_response_id, 413, 415). `earlier(id)` gives a stored response's conversation."""
    data = read_json(request)
    _refuse_oversized_input(data, settings, provider)
    fields = validate_request(data, schema)
    if fields.get("background") and fields.get("store") is False:
        detail = "A background response is stored until it is fetched: store cannot be false."
        raise ApiError("validation_error", detail, fields={"store": ["Leave store out with background true."]})
    previous = fields.get("previous_response_id")
    history = earlier(previous) if previous else []
    turn = [_message(item) for item in fields["input"]]
    system = [{"role": "system", "content": fields["instructions"]}] if fields.get("instructions") else []
    auto = fields.get("truncation") == "auto"
    fitted = fit(system, [*history, *turn], len(history), settings, provider, auto)
    messages = [*system, *fitted.items]
    options = {name: fields[name] for name in ("top_p", "user") if name in fields}
    call = ChatCall(
        model=fields.get("model", settings.default_model),
        messages=messages,
        max_tokens=fields.get("max_output_tokens", settings.max_tokens),
        temperature=fields.get("temperature"),
        options=options,
    )
    echo = {name: fields[name] for name in ECHOED if name in fields}  # what the response object repeats
    return ResponseRequest(
        call=call,
        prompt_tokens=fitted.prompt_tokens,
        stream=bool(fields.get("stream")),
        background=bool(fields.get("background")),
        store=fields.get("store", True),
        echo=echo,
        conversation=fitted.items,
    )


def _refuse_oversized_input(data: Any, settings: Settings, provider: Provider) -> None:
    """Refuse an input from its sizes alone, before any per-item work: more items than
    MAX_HISTORY_MESSAGES + 2, or, with the instructions, more characters than MAX_CONVERSATION_CHARS.
    With truncation "auto", an input list over the item bound loses its oldest items instead, and
    its length is left to `fit`."""
    if not isinstance(data, dict):
        return
    items = data.get("input")
    auto = data.get("truncation") == "auto"
    if isinstance(items, list):
        bound = settings.max_history_messages + 2
        if len(items) > bound and auto:
            data["input"] = items = items[-bound:]
        if len(items) > bound:
            message = f"{len(items)} items; at most {bound} (MAX_HISTORY_MESSAGES + 2): drop the oldest ones."
            raise ApiError("validation_error", "1 field(s) are invalid.", fields={"input": [message]})
        lengths = [content_length(item.get("content")) if isinstance(item, dict) else 0 for item in items]
    else:
        lengths = [content_length(items)]
    if auto:
        return
    instructions = content_length(data.get("instructions"))
    refuse_long_text([instructions, *lengths], (1, len(lengths)), settings, provider, DROPPABLE)


def _message(item: dict[str, Any]) -> dict[str, str]:
    """An input item as the provider takes it (`developer` is OpenAI's newer `system`)."""
    return {"role": "system" if item["role"] in SYSTEM_ROLES else item["role"], "content": item["content"]}
