"""The Responses API's objects, built once from what a response is (its stream's id, model, creation
time and the request's echoed parameters: a `Head`) and where it stands (its text so far and,
once ended, its outcome): the response object its events carry and GET /v1/responses/{id}
answers, its output message, usage and error. Never rebuilt from the events' bytes. And the
compaction object of /v1/responses/compact."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import ApiError
from ...ids import random_id
from ..items.compaction import COMPACTION, seal
from ..items.listing import listed
from ..openai import openai_error_body
from ..schema import serialise
from .freeform import whole_input
from .layout import FUNCTION_CALL, MESSAGE, REFUSAL_PART, TEXT_PART
from .object_schemas import InputTokensSchema, ResponseDeletedSchema, ResponseObjectSchema

if TYPE_CHECKING:
    from ...generation.outcome import Outcome
    from ...providers.call import Usage
    from ...providers.deltas import Delta
    from .tools import Called

RESPONSE_PREFIX = "resp_"
CUSTOM_TOOL_CALL = "custom_tool_call"
MESSAGE_PREFIX = "msg_"
# The request's parameters every response object repeats, and their value when not given (the
# defaults OpenAI applies; `text` and `reasoning` given in part are completed with theirs).
ECHOED: dict[str, Any] = {
    "background": False,
    "conversation": None,
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "metadata": {},
    "previous_response_id": None,
    "prompt_cache_key": None,
    "safety_identifier": None,
    "service_tier": "default",
    "store": True,
    "temperature": 1.0,
    "top_p": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_logprobs": 0,
    "truncation": "disabled",
    "user": None,
    "parallel_tool_calls": True,
    "reasoning": {"effort": None, "summary": None},
    "text": {"format": {"type": "text"}, "verbosity": "medium"},
    "tool_choice": "auto",
    "tools": [],
}


_INCOMPLETE = {"incomplete": {"reason": "max_output_tokens"}, "cancelled": {"reason": "cancelled"}}


@dataclasses.dataclass(frozen=True)
class Head:
    """What every object of one response repeats: its ids, creation time, model, echoed parameters."""

    response_id: str
    item_id: str
    created: int  # Unix seconds (whole: the Redis store keeps them so, and every worker agrees)
    model: str
    echo: dict[str, Any]

    @classmethod
    def of(cls, stream_id: str, created: float, model: str, echo: Mapping[str, Any] | None) -> Head:
        """The head of the response of stream `stream_id`; `echo`: the parameters the request gave."""
        given = echo or {}
        echoed = {
            name: {**default, **given.get(name, {})} if type(default) is dict and default else given.get(name, default)
            for name, default in ECHOED.items()
        }
        return cls(RESPONSE_PREFIX + stream_id, MESSAGE_PREFIX + stream_id, int(created), model, echoed)

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: Usage | None,
        error: dict[str, str] | None = None,
        completed_at: int | None = None,
        model: str | None = None,
        ledger: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The response object with this status, output, usage and error. A cancelled response
        says so in `incomplete_details` too: clients that read only that (the Vercel AI SDK)
        would otherwise take its partial text for a whole answer."""
        incomplete = _INCOMPLETE.get(status)
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created,
            "completed_at": completed_at,
            "status": status,
            "error": error,
            "incomplete_details": incomplete,
            "model": model or self.model,  # a fallback model's name once it answered
            "output": output,
            "usage": None if usage is None else response_usage(usage, ledger),
            **self.echo,
        }

    def ended(self, outcome: Outcome, correlation_id: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        """The object of a response whose generation ended with `outcome`, its `output` items."""
        status = response_status(outcome.finish_reason, outcome.error is not None)
        error = None if outcome.error is None else response_error(outcome.error, correlation_id)
        completed = self.created + round(outcome.duration_ms / 1000) if status == "completed" else None
        return self.response(status, output, outcome.usage, error, completed, outcome.model, outcome.ledger())

    def as_it_stands(
        self, outcome: Outcome | None, correlation_id: str, output: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The object now: in progress with its output so far, or as it ended."""
        if outcome is not None:
            return self.ended(outcome, correlation_id, output)
        return self.response("in_progress", output, None)


def response_status(finish_reason: str | None, failed: bool) -> str:
    """A response's status from how its generation ended."""
    if failed:
        return "failed"
    return {"length": "incomplete", "cancelled": "cancelled"}.get(finish_reason or "", "completed")


def response_usage(usage: Usage, ledger: dict[str, Any] | None = None) -> dict[str, Any]:
    """Usage in the Responses API's terms (with ChatWait's `ledger` as `chatwait`)."""
    found = {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
        **({"generated_tokens": usage.generated} if usage.generated is not None else {}),
    }
    if ledger is not None:
        found["chatwait"] = ledger
    return found


def response_error(error: ApiError, correlation_id: str | None) -> dict[str, str]:
    """Why a response failed, as its object says it."""
    body = openai_error_body(error, correlation_id)["error"]
    return {"code": body["code"], "message": body["message"]}


def item_status(outcome: Outcome | None) -> str:
    """The status of a response's output items: in progress, else completed with the response or incomplete."""
    if outcome is None:
        return "in_progress"
    return (
        "completed"
        if response_status(outcome.finish_reason, outcome.error is not None) == "completed"
        else "incomplete"
    )


def content_part(kind: str, text: str, logprobs: list[Any] | None = None) -> dict[str, Any]:
    """A content part of an output item: `output_text` (with its tokens' `logprobs` where they
    were asked for), `refusal` or `reasoning_text`."""
    if kind == TEXT_PART:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}
    if kind == REFUSAL_PART:
        return {"type": "refusal", "refusal": text}
    return {"type": "reasoning_text", "text": text}


def output_item(
    kind: str, item_id: str, status: str, parts: Mapping[str, str], logprobs: list[Any] | None = None
) -> dict[str, Any]:
    """A message or reasoning item with its content `parts` (kind -> text, in order; the text's
    `logprobs`, where asked for)."""
    content = [content_part(part, text, logprobs) for part, text in parts.items()]
    if kind == MESSAGE:
        return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}
    return {"id": item_id, "type": "reasoning", "status": status, "summary": [], "content": content}


def call_item(
    item_id: str, status: str, call: Delta | None, arguments: str, called: Mapping[str, Called]
) -> dict[str, Any]:
    """A `function_call` item (the call's id, the function's name, its arguments as JSON text), or a
    `custom_tool_call` one (its input); with its `namespace` where the tool had one. `called`: the
    custom and namespaced tools by the name the model was sent."""
    call_id, name = (call.call_id or "", call.name or "") if call is not None else ("", "")
    tool = called.get(name)
    if tool is None:
        item = {"id": item_id, "type": FUNCTION_CALL, "status": status, "call_id": call_id, "name": name}
        return {**item, "arguments": arguments}
    kind = CUSTOM_TOOL_CALL if tool.custom else FUNCTION_CALL
    item = {"id": item_id, "type": kind, "status": status, "call_id": call_id, "name": tool.name}
    if tool.namespace:
        item["namespace"] = tool.namespace
    if tool.custom:
        item["input"] = whole_input(arguments) if arguments else ""
    else:
        item["arguments"] = arguments
    return item


def response_reply(
    head: Head, outcome: Outcome | None, correlation_id: str, output: list[dict[str, Any]]
) -> dict[str, Any]:
    """The response object as GET /v1/responses/{id} (and a create, a cancel) answers it."""
    return serialise(ResponseObjectSchema, head.as_it_stands(outcome, correlation_id, output))


def deleted_reply(stream_id: str) -> dict[str, Any]:
    """What DELETE /v1/responses/{id} answers."""
    return serialise(
        ResponseDeletedSchema, {"id": RESPONSE_PREFIX + stream_id, "object": "response.deleted", "deleted": True}
    )


def compacted_reply(conversation: list[dict[str, Any]], outcome: Outcome) -> dict[str, Any]:
    """The compaction object: the user's messages of `conversation` (chat messages), then one
    compaction item with the summary the model wrote; 502 when it wrote none."""
    summary = outcome.text.strip()
    if not summary:
        raise ApiError("upstream_bad_response", "The model wrote no summary of the conversation.")
    users = [listed({"type": "message", **m}) for m in conversation if m["role"] == "user"]
    item = {"id": f"cmp_{random_id()}", "type": COMPACTION, "encrypted_content": seal(summary)}
    return {
        "id": RESPONSE_PREFIX + random_id(),
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": [*users, item],
        "usage": response_usage(outcome.usage, outcome.ledger()),
    }


def input_tokens_reply(count: int) -> dict[str, Any]:
    """The reply of POST /v1/responses/input_tokens."""
    return serialise(InputTokensSchema, {"object": "response.input_tokens", "input_tokens": count})
