"""The OpenAI Responses API's wire: a stream's events as `response.*` events, numbered.

Every SSE event carries its `sequence_number` as its `id:`, contiguous from 0. A stream's
priming event (id 0) is written as four: `response.created`, `response.in_progress`,
`response.output_item.added`, `response.content_part.added` (sequence numbers 0-3); chunk `i`
is `response.output_text.delta` number `i + 3`; the terminal event is four again:
`response.output_text.done`, `response.content_part.done`, `response.output_item.done`, then
`response.completed`, `response.incomplete` (the token limit; also a cancelled response, status
`cancelled`: the Responses API has no event of its own for it) or `response.failed`.
A resume after sequence number N therefore maps to a position in the stream plus, inside the
priming or terminal event, the numbered events to skip (`Position`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...contract.openai_errors import openai_error_body
from .sse import Position, dumps, quote

if TYPE_CHECKING:
    from ...errors import ApiError
    from ...generation.outcome import Outcome
    from ...providers.base import Usage

RESPONSE_PREFIX = "resp_"
MESSAGE_PREFIX = "msg_"
EXTRA = 3  # numbered events beyond the first in the priming event, and in the terminal one
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


def resume_position(seen: int | None, last_event_id: int, finished: bool) -> Position | None:
    """Where a resume after sequence number `seen` starts (None: nothing is left)."""
    if seen is None:
        return Position(None)
    if seen < EXTRA:
        return Position(None, seen)
    after = seen - EXTRA
    if finished and after >= last_event_id:
        if seen >= last_event_id + 2 * EXTRA:
            return None
        return Position(last_event_id - 1, seen)
    return Position(after)


class ResponsesWriter:
    """One response's events; the bytes every delta shares are built once per stream."""

    name = "responses"
    position = staticmethod(resume_position)

    def __init__(
        self, stream_id: str, correlation_id: str, model: str, created: float, echo: Mapping[str, Any] | None
    ) -> None:
        self.correlation_id = correlation_id
        self.response_id = RESPONSE_PREFIX + stream_id
        self.item_id = MESSAGE_PREFIX + stream_id
        self.model = model
        self.created = int(created)
        self.echo = {name: (echo or {}).get(name, default) for name, default in ECHOED.items()}
        delta = b"response.output_text.delta"
        self._delta = b'\nevent: %b\ndata: {"type":"%b","item_id":%b' % (delta, delta, quote(self.item_id).encode())

    @staticmethod
    def numbered(event_id: int) -> int:
        """The sequence number of the last numbered event of stream event `event_id` (not the
        terminal one); -1 (none yet) stays -1."""
        return event_id + EXTRA if event_id >= 0 else event_id

    def priming(self) -> bytes:
        started = self.response("in_progress", [], None)
        item = self._item("in_progress", None)
        return b"".join(
            (
                _event(0, "response.created", {"response": started}),
                _event(1, "response.in_progress", {"response": started}),
                _event(2, "response.output_item.added", {"output_index": 0, "item": item}),
                _event(3, "response.content_part.added", {**self._place(), "part": _part("")}),
            )
        )

    def chunk(self, sequence: int, content: str) -> bytes:
        return b'id: %d%b,"output_index":0,"content_index":0,"delta":%b,"logprobs":[],"sequence_number":%d}\n\n' % (
            sequence + EXTRA,
            self._delta,
            quote(content).encode("utf-8", "replace"),
            sequence + EXTRA,
        )

    def queued(self, ahead: int) -> bytes:
        """A comment line that joins the next event's block: the Responses API has no such event."""
        return b": queued, %d ahead\n" % ahead

    def interrupted(self, last_id: int, error: ApiError) -> bytes:
        """An `error` event without an id: this response ends, the stream goes on (a resume with
        starting_after the number it gives continues it)."""
        body = openai_error_body(error, self.correlation_id)["error"]
        data = {"type": "error", "code": body["code"], "message": body["message"], "param": None}
        return b"event: error\ndata: %b\n\n" % dumps({**data, "resume_after": self.numbered(last_id)}).encode()

    def terminal(self, last_chunk: int, content_length: int, outcome: Outcome) -> bytes:
        """The text's three `done` events, then how the response ended."""
        first = last_chunk + 1 + EXTRA
        status = response_status(outcome.finish_reason, outcome.error is not None)
        item = self._item("completed" if status == "completed" else "incomplete", outcome.text)
        error = None
        if outcome.error is not None:
            body = openai_error_body(outcome.error, self.correlation_id)["error"]
            error = {"code": body["code"], "message": body["message"]}
        final = self.response(status, [item], outcome.usage, error)
        ending = {"completed": "response.completed", "failed": "response.failed"}.get(status, "response.incomplete")
        return b"".join(
            (
                _event(first, "response.output_text.done", {**self._place(), "text": outcome.text, "logprobs": []}),
                _event(first + 1, "response.content_part.done", {**self._place(), "part": _part(outcome.text)}),
                _event(first + 2, "response.output_item.done", {"output_index": 0, "item": item}),
                _event(first + 3, ending, {"response": final}),
            )
        )

    def response(
        self, status: str, output: list[dict[str, Any]], usage: Usage | None, error: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The response object as it stands."""
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

    def _item(self, status: str, text: str | None) -> dict[str, Any]:
        content = [] if text is None else [_part(text)]
        return {"id": self.item_id, "type": "message", "status": status, "role": "assistant", "content": content}

    def _place(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": 0, "content_index": 0}


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


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _event(sequence: int, kind: str, data: dict[str, Any]) -> bytes:
    payload = dumps({"type": kind, **data, "sequence_number": sequence}).encode("utf-8", "replace")
    return b"id: %d\nevent: %b\ndata: %b\n\n" % (sequence, kind.encode("ascii"), payload)


def response_object(head: bytes, text: str, tail: bytes | None) -> dict[str, Any]:
    """A response object as it stands, from its stream's contents: the priming frame, the text
    so far and (once ended) the terminal frame, whose last event holds the final object."""
    if tail is not None:
        return _last_data(tail)["response"]
    started = _first_data(head)["response"]
    if not text:
        return started
    item_id = MESSAGE_PREFIX + started["id"].removeprefix(RESPONSE_PREFIX)
    item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": [_part(text)]}
    return {**started, "output": [item]}


def _first_data(frame: bytes) -> dict[str, Any]:
    return json.loads(frame.split(b"\ndata: ", 1)[1].split(b"\n", 1)[0])


def _last_data(frame: bytes) -> dict[str, Any]:
    return json.loads(frame.rstrip(b"\n").rsplit(b"\ndata: ", 1)[1])
