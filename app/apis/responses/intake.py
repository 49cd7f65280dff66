"""From a Responses API request to a ChatCall: the strict JSON body, the input's size before any
per-item work, the schema, the earlier turns of `previous_response_id`, and the input-token limit.

The conversation sent to the model is `instructions` (as a system message), then the stored
conversation of the previous response (its input and its output), then this request's input
(`items`); together they meet the bounds a direct input meets, or lose their oldest turns with
truncation "auto" (`fit`), the tools' definitions counted as a system message (the model reads
them too). Instructions are not carried over from a previous response, as OpenAI's API does.
Function tools, the choice of tool and `text.format` go to the model in chat completions' terms.
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
from ...streaming.wire.sse import dumps
from ..functions import refuse_untaken
from ..intake import read_json, refuse_long_text, validate_request
from ..openai import content_length
from .fit import DROPPABLE, fit
from .items import item_chars, resolve, to_messages
from .objects import ECHOED
from .schemas import ResponseRequestSchema

FUNCTION_FIELDS = ("name", "description", "parameters", "strict")


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
    conversation: list[dict[str, Any]]

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
    earlier: Callable[[str], list[dict[str, Any]]],
    lookup: Callable[[str], dict[str, Any] | None],
) -> ResponseRequest:
    """The validated request, or ApiError (400 naming the parameter, input_too_long, 404 for an
    unknown previous_response_id, 413, 415). `earlier(id)` gives a stored response's conversation,
    `lookup(id)` a stored response's output item."""
    data = read_json(request)
    _refuse_oversized_input(data, settings, provider)
    fields = validate_request(data, schema)
    if fields.get("background") and fields.get("store") is False:
        detail = "A background response is stored until it is fetched: store cannot be false."
        raise ApiError("validation_error", detail, fields={"store": ["Leave store out with background true."]})
    previous = fields.get("previous_response_id")
    history = earlier(previous) if previous else []
    turn = _turn(resolve(fields["input"], lookup))
    options = _options(fields)
    refuse_untaken(options, any(type(m["content"]) is list for m in turn), provider, "input")
    system = [{"role": "system", "content": fields["instructions"]}] if fields.get("instructions") else []
    tools = [{"role": "system", "content": dumps(options["tools"])}] if "tools" in options else []
    auto = fields.get("truncation") == "auto"
    fitted = fit([*tools, *system], [*history, *turn], len(history), settings, provider, auto)
    call = ChatCall(
        model=fields.get("model", settings.default_model),
        messages=[*system, *fitted.items],
        max_tokens=fields.get("max_output_tokens", settings.max_tokens),
        temperature=fields.get("temperature"),
        options=options,
        typed=True,
    )
    stream, background, store = bool(fields.get("stream")), bool(fields.get("background")), fields.get("store", True)
    return ResponseRequest(call, fitted.prompt_tokens, stream, background, store, _echo(fields), fitted.items)


def _turn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This request's input as chat messages; a 400 when nothing in it is for the model."""
    turn = to_messages(items)
    if not turn:
        detail = "The input holds reasoning items only: nothing for the model to answer."
        raise ApiError("validation_error", detail, fields={"input": ["Send a message or a function_call_output too."]})
    return turn


def _echo(fields: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters the response object repeats (`text` with its default format)."""
    echo = {name: fields[name] for name in ECHOED if name in fields}
    if "text" in fields:
        echo["text"] = {"format": {"type": "text"}, **fields["text"]}
    return echo


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
        lengths = [item_chars(item) for item in items]
    else:
        lengths = [content_length(items)]
    if auto:
        return
    instructions = content_length(data.get("instructions"))
    refuse_long_text([instructions, *lengths], (1, len(lengths)), settings, provider, DROPPABLE)


def _options(fields: dict[str, Any]) -> dict[str, Any]:
    """What the model is asked beyond the conversation, in chat completions' terms: tools as
    chat tools, a named tool choice, `text.format` as `response_format`. The choice of tool and
    parallel calls without tools ask for nothing and are not sent on."""
    options = {name: fields[name] for name in ("top_p", "user") if name in fields}
    tools = fields.get("tools")
    if tools:
        functions = ({name: tool[name] for name in FUNCTION_FIELDS if name in tool} for tool in tools)
        options["tools"] = [{"type": "function", "function": function} for function in functions]
        choice = fields.get("tool_choice")
        if isinstance(choice, dict):
            options["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        elif choice is not None:
            options["tool_choice"] = choice
        if "parallel_tool_calls" in fields:
            options["parallel_tool_calls"] = fields["parallel_tool_calls"]
    found = fields.get("text", {}).get("format")
    if found and found["type"] == "json_object":
        options["response_format"] = found
    elif found and found["type"] == "json_schema":
        spec = {name: found[name] for name in ("name", "description", "schema", "strict") if name in found}
        options["response_format"] = {"type": "json_schema", "json_schema": spec}
    return options
