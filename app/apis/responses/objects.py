"""The Responses API's objects, built once from what a response is (its stream's id, model, creation
time and the request's echoed parameters: a `Head`) and where it stands (its text so far and,
once ended, its outcome): the response object its events carry and GET /v1/responses/{id}
answers, its output message, usage and error. Never rebuilt from the events' bytes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..openai import openai_error_body
from ..schema import serialise
from .schemas import ResponseDeletedSchema, ResponseObjectSchema

if TYPE_CHECKING:
    from ...errors import ApiError
    from ...generation.outcome import Outcome
    from ...providers.base import Usage

RESPONSE_PREFIX = "resp_"
MESSAGE_PREFIX = "msg_"
# The request's parameters every response object repeats, and their value when not given.
ECHOED = {
    "background": False,
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "previous_response_id": None,
    "store": True,
    "temperature": None,
    "top_p": None,
    "truncation": "disabled",
    "user": None,
}


@dataclasses.dataclass(frozen=True)
class Head:
    """What every object of one response repeats: its ids, creation time, model, echoed parameters."""

    response_id: str
    item_id: str
    created: int
    model: str
    echo: dict[str, Any]

    @classmethod
    def of(cls, stream_id: str, created: float, model: str, echo: Mapping[str, Any] | None) -> Head:
        """The head of the response of stream `stream_id`; `echo`: the parameters the request gave."""
        echoed = {name: (echo or {}).get(name, default) for name, default in ECHOED.items()}
        return cls(RESPONSE_PREFIX + stream_id, MESSAGE_PREFIX + stream_id, int(created), model, echoed)

    def response(
        self, status: str, output: list[dict[str, Any]], usage: Usage | None, error: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The response object with this status, output, usage and error."""
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": error,
            "incomplete_details": incomplete,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": False,
            "reasoning": {"effort": None, "summary": None},
            "text": {"format": {"type": "text"}},
            "tool_choice": "none",
            "tools": [],
            "usage": None if usage is None else response_usage(usage),
            **self.echo,
        }

    def message(self, status: str, text: str | None) -> dict[str, Any]:
        """The output message item (`text` None: no content part yet)."""
        content = [] if text is None else [text_part(text)]
        return {"id": self.item_id, "type": "message", "status": status, "role": "assistant", "content": content}

    def ended(self, outcome: Outcome, correlation_id: str) -> dict[str, Any]:
        """The object of a response whose generation ended with `outcome`."""
        status = response_status(outcome.finish_reason, outcome.error is not None)
        item = self.message("completed" if status == "completed" else "incomplete", outcome.text)
        error = None if outcome.error is None else response_error(outcome.error, correlation_id)
        return self.response(status, [item], outcome.usage, error)

    def as_it_stands(self, text: str, outcome: Outcome | None, correlation_id: str) -> dict[str, Any]:
        """The object now: in progress with the text so far, or as it ended."""
        if outcome is not None:
            return self.ended(outcome, correlation_id)
        return self.response("in_progress", [self.message("in_progress", text)] if text else [], None)


def response_status(finish_reason: str | None, failed: bool) -> str:
    """A response's status from how its generation ended."""
    if failed:
        return "failed"
    return {"length": "incomplete", "cancelled": "cancelled"}.get(finish_reason or "", "completed")


def response_usage(usage: Usage) -> dict[str, Any]:
    """Usage in the Responses API's terms."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def response_error(error: ApiError, correlation_id: str | None) -> dict[str, str]:
    """Why a response failed, as its object says it."""
    body = openai_error_body(error, correlation_id)["error"]
    return {"code": body["code"], "message": body["message"]}


def text_part(text: str) -> dict[str, Any]:
    """An `output_text` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_reply(head: Head, text: str, outcome: Outcome | None, correlation_id: str) -> dict[str, Any]:
    """The response object as GET /v1/responses/{id} (and a create, a cancel) answers it."""
    return serialise(ResponseObjectSchema, head.as_it_stands(text, outcome, correlation_id))


def deleted_reply(stream_id: str) -> dict[str, Any]:
    """What DELETE /v1/responses/{id} answers."""
    return serialise(
        ResponseDeletedSchema, {"id": RESPONSE_PREFIX + stream_id, "object": "response.deleted", "deleted": True}
    )
