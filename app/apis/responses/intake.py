"""From a Responses API request to a ChatCall: the strict JSON body, the input's size before any
per-item work, the schema, the earlier turns of `previous_response_id`, and the input-token limit.

The conversation sent to the model is `instructions` (as a system message), then the stored
conversation of the previous response (its input and its output), then this request's input
(`items`); together they meet the bounds a direct input meets, or lose their oldest turns with
truncation "auto" (`fit`), the tools' definitions counted as a system message (the model reads
them too). Instructions are not carried over from a previous response, as OpenAI's API does.
The tools (`tools`), the choice of tool and `text.format` go to the model in chat completions' terms.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from flask import Request

from ...config import Settings
from ...errors import ApiError
from ...generation.outcome import Outcome
from ...providers.base import Provider
from ...providers.call import ChatCall
from ...providers.counted import definitions
from ...streaming.stream import Retention, Stream
from ..functions import attached, refuse_untaken
from ..intake import bounded, read_json, refuse_long_text, validate_request
from ..items.input import item_chars
from ..items.listing import listed
from ..items.references import resolve
from ..openai import content_length
from ..unknown import tolerance
from . import window
from .chat import Earlier, Stored, added_tools, configured, refuse_orphans, triggered, turn_of
from .compaction import compaction_messages
from .fit import DROPPABLE, fit
from .options import logprobs_asked, model_options
from .replies import ECHOED
from .schemas import ResponseRequestSchema
from .tools import called_names, echoed
from .wire import ADDED_MARK, COMPACTED_MARK, LOGPROBS_MARK, PREPARED_MARK

# In a WebSocket turn's environ: the `store: false` response its socket's chain continues (the
# socket put that chain in its input, so the body no longer names it; the object echoes it).
CHAINED = "chatwait.chained_from"
# This API's name of an option a provider may not take.
NAMES = {
    "logprobs": "include",
    "reasoning_effort": "reasoning.effort",
    "response_format": "text.format",
    "verbosity": "text.verbosity",
}


@dataclasses.dataclass(frozen=True)
class Planned:
    """What the model is sent: the messages (instructions, then the earlier turns and the input
    that fit), the options, the counted prompt tokens (None: it fits without counting) and what
    was counted (the tools' definitions first); this input as listed items; the tools the
    chain's `additional_tools` items made available (the earlier turns' and this input's)."""

    messages: list[dict[str, Any]]
    options: dict[str, Any]
    prompt_tokens: int | None
    counted: list[dict[str, Any]]
    conversation: list[dict[str, Any]]
    input_items: list[dict[str, Any]]
    added_tools: list[dict[str, Any]]
    triggered: bool  # the input holds a compaction_trigger


@dataclasses.dataclass(frozen=True)
class ResponseRequest:
    """A validated Responses request: the call, its counted prompt tokens (None: it fits without
    counting), how to answer, the parameters echoed in the response object, the conversation to
    store for a later `previous_response_id` (earlier turns and this input, and the tools their
    items added), this input as listed items, and the conversation (`conversation`) its turn is
    appended to."""

    call: ChatCall
    prompt_tokens: int | None
    stream: bool
    background: bool
    store: bool
    echo: dict[str, Any]
    conversation: list[dict[str, Any]]
    input_items: list[dict[str, Any]]
    conversation_id: str | None
    added_tools: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    compaction: window.Compaction | None = None  # to make before it is generated (server-side compaction)

    def compacted(self, summary: str, provider: Provider) -> ResponseRequest:
        """This request once its conversation is compacted to the model's `summary`: generated
        from the instructions, the summary and the last turn, its output opened by the compaction
        item, its kept conversation the summary and the last turn."""
        assert self.compaction is not None
        made = window.item(summary)
        messages, kept = window.compacted(self.compaction, made)
        call = dataclasses.replace(self.call, messages=messages)
        tokens = provider.prompt_tokens(call.counted())
        echo = {**self.echo, COMPACTED_MARK: made}
        return dataclasses.replace(self, call=call, prompt_tokens=tokens, echo=echo, conversation=kept, compaction=None)

    def retention(self, settings: Settings, ended: Callable[[Stream, Outcome], None] | None = None) -> Retention:
        """How its stream is kept: a stored response with its conversation and input items for
        RESPONSE_TTL_SECONDS; a foreground one cancelled when nobody follows it. `ended`: what
        records its end (`Retention.ended`)."""
        foreground = not self.background
        turn = None  # what appends its turn to its conversation on a worker that takes it over
        if ended is not None and self.conversation_id:
            turn = {"conversation_id": self.conversation_id, "input_items": self.input_items}
        if not self.store:
            return Retention(foreground=foreground, ended=ended, ended_args=turn)
        context = json.dumps({"messages": self.conversation, "input": self.input_items, "tools": self.added_tools})
        kept = settings.streams.response_ttl_seconds
        return Retention(kept, context.encode(), foreground=foreground, stored=True, ended=ended, ended_args=turn)


def prepare_response(
    request: Request, schema: ResponseRequestSchema, settings: Settings, provider: Provider, stored: Stored
) -> ResponseRequest:
    """The validated request, or ApiError (400 naming the parameter, input_too_long, 404 for an
    unknown previous_response_id, item or conversation, 413, 415)."""
    fields = _fields(request, schema, settings, provider)
    if fields.get("background") and fields.get("store") is False:
        detail = "A background response is stored until it is fetched: store cannot be false."
        raise ApiError("validation_error", detail, fields={"store": ["Leave store out with background true."]})
    planned = _plan(fields, settings, provider, stored)
    model = fields.get("model", settings.default_model)
    call = ChatCall(
        model=model,
        messages=planned.messages,
        max_tokens=bounded(fields.get("max_output_tokens"), "max_output_tokens", model, settings),
        temperature=fields.get("temperature"),
        options=planned.options,
        typed=True,
        generate=fields.get("generate", True),
        conversation_id=fields.get("conversation") or fields.get("previous_response_id"),
    )
    compaction = _compaction(fields, planned, call, provider)
    stream, background, store = bool(fields.get("stream")), bool(fields.get("background")), fields.get("store", True)
    echo = _echo(fields, planned.added_tools)
    if request.environ.get(CHAINED):
        echo["previous_response_id"] = request.environ[CHAINED]
    return ResponseRequest(
        call,
        planned.prompt_tokens,
        stream,
        background,
        store,
        echo,
        planned.conversation,
        planned.input_items,
        fields.get("conversation"),
        planned.added_tools,
        compaction,
    )


def _compaction(
    fields: dict[str, Any], planned: Planned, call: ChatCall, provider: Provider
) -> window.Compaction | None:
    """The server-side compaction this request asks for (`window`), or None."""
    limit, forced = window.threshold(fields), planned.triggered
    if (limit is None and not forced) or not call.generate:
        return None
    tokens = planned.prompt_tokens if planned.prompt_tokens is not None else provider.prompt_tokens(planned.counted)
    system = planned.messages[: len(planned.messages) - len(planned.conversation)]
    return window.plan(call, system, planned.conversation, tokens, forced, limit)


def count_input_tokens(
    request: Request, schema: ResponseRequestSchema, settings: Settings, provider: Provider, stored: Stored
) -> int:
    """The input tokens a response to this request would be sent (the tools' definitions, the
    instructions, the earlier turns and the input that fit), or the ApiError a create would get;
    `input` may be left out when `conversation` or `previous_response_id` gives the turns."""
    fields = _turns_given(_fields(request, schema, settings, provider, input_optional=True), "count")
    planned = _plan(fields, settings, provider, stored)
    return planned.prompt_tokens if planned.prompt_tokens is not None else provider.prompt_tokens(planned.counted)


def prepare_compaction(
    request: Request, schema: ResponseRequestSchema, settings: Settings, provider: Provider, stored: Stored
) -> tuple[ChatCall, int | None, list[dict[str, Any]]]:
    """The call that asks the model for a summary of the conversation a compact request gives (as
    a create would: `input`, after `previous_response_id` or `conversation`, with `instructions`),
    its counted prompt tokens (None: it fits without counting), and that conversation; or the
    ApiError a create would get. No tool is called: the model is asked for text."""
    fields = _turns_given(_fields(request, schema, settings, provider, input_optional=True), "compact")
    if "model" not in fields:  # the API requires it here, unlike a create
        detail = "A compaction names its model: send model."
        raise ApiError("validation_error", detail, fields={"model": ["Missing data for required field."]})
    planned = _plan(fields, settings, provider, stored)
    messages = compaction_messages(planned.messages)
    options = planned.options
    if "tools" in options:
        options["tool_choice"] = "none"
    counted = None if planned.prompt_tokens is None else planned.prompt_tokens + provider.prompt_tokens(messages[-1:])
    call = ChatCall(
        model=fields["model"], messages=messages, max_tokens=settings.output_limit(fields["model"]), options=options
    )
    return call, counted, planned.conversation


def _turns_given(fields: dict[str, Any], doing: str) -> dict[str, Any]:
    """`fields`, when they give turns: `input`, or a conversation or previous_response_id."""
    if "input" not in fields and not (fields.get("conversation") or fields.get("previous_response_id")):
        detail = f"Nothing to {doing}: send input, or a conversation or previous_response_id."
        raise ApiError("validation_error", detail, fields={"input": ["Missing data for required field."]})
    return fields


def _fields(
    request: Request,
    schema: ResponseRequestSchema,
    settings: Settings,
    provider: Provider,
    input_optional: bool = False,
) -> dict[str, Any]:
    data = read_json(request)
    _refuse_oversized_input(data, settings, provider)
    partial = ("input",) if input_optional else ()
    return validate_request(data, schema, partial, tolerance(settings, "responses"))


def _plan(fields: dict[str, Any], settings: Settings, provider: Provider, stored: Stored) -> Planned:
    """The conversation and options for the model, fitted to the bounds (see the module docstring)."""
    previous, conversation = fields.get("previous_response_id"), fields.get("conversation")
    earlier = stored.turns(previous) if previous else stored.conversation(conversation) if conversation else Earlier()
    history = earlier.messages
    items = resolve(fields.get("input", []), stored.item)
    forced = triggered(items)
    turn = turn_of(items, fields.get("generate", True) and not forced) if items or not history else []
    refuse_orphans([*history, *turn])
    added = [*earlier.tools, *added_tools(items)]
    options = model_options(configured(items, fields), added)
    refuse_untaken(options, attached(turn), provider, "input", NAMES)
    system = [{"role": "system", "content": fields["instructions"]}] if fields.get("instructions") else []
    tools = definitions(options)
    auto, chain = fields.get("truncation") == "auto", "conversation" if conversation else "previous_response_id"
    fitted = fit([*tools, *system], [*history, *turn], len(history), settings, provider, auto, chain)
    counted = [*tools, *system, *fitted.items]
    listed_items = [listed(item) for item in items]
    messages = [*system, *fitted.items]
    return Planned(messages, options, fitted.prompt_tokens, counted, fitted.items, listed_items, added, forced)


def _echo(fields: dict[str, Any], added: list[dict[str, Any]]) -> dict[str, Any]:
    """The request's parameters the response object repeats (what it left out of `text` and
    `reasoning` takes their defaults: `objects.Head`)."""
    echo = {name: fields[name] for name in ECHOED if name in fields}
    if "tools" in fields:  # each tool whole, as the Response object has it (strict: null when not sent)
        echo["tools"] = echoed(fields["tools"])
    if added:  # not repeated in the object: tells the wire how to name their calls
        echo[ADDED_MARK] = called_names(added)
    if "reasoning" in fields:
        reasoning = fields["reasoning"]
        summary = reasoning.get("summary", reasoning.get("generate_summary"))
        echo["reasoning"] = {"effort": reasoning.get("effort"), "summary": summary}
    if "conversation" in fields:
        echo["conversation"] = {"id": fields["conversation"]}
    if logprobs_asked(fields):
        echo[LOGPROBS_MARK] = 1  # not repeated in the object: tells the wire to write them
    if fields.get("generate") is False:
        echo[PREPARED_MARK] = 1  # not repeated in the object: tells the wire there is no output
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
        bound = settings.requests.max_history_messages + 2
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
