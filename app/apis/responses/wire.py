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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...streaming.wire.sse import Position, dumps, quote
from ..openai import openai_error_body
from .objects import Head, text_part

if TYPE_CHECKING:
    from ...errors import ApiError
    from ...generation.outcome import Outcome
    from ...providers.deltas import Delta

NAME = "responses"  # the wire's name, as streams in Redis record it
EXTRA = 3  # numbered events beyond the first in the priming event, and in the terminal one


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

    name = NAME
    position = staticmethod(resume_position)

    def __init__(
        self, stream_id: str, correlation_id: str, model: str, created: float, echo: Mapping[str, Any] | None
    ) -> None:
        self.correlation_id = correlation_id
        self.head = Head.of(stream_id, created, model, echo)
        self.echo = self.head.echo  # kept with the stream in Redis: other workers write the same events
        delta = b"response.output_text.delta"
        item = quote(self.head.item_id).encode()
        self._delta = b'\nevent: %b\ndata: {"type":"%b","item_id":%b' % (delta, delta, item)

    @staticmethod
    def numbered(event_id: int) -> int:
        """The sequence number of the last numbered event of stream event `event_id` (not the
        terminal one); -1 (none yet) stays -1."""
        return event_id + EXTRA if event_id >= 0 else event_id

    def priming(self) -> bytes:
        started = self.head.response("in_progress", [], None)
        item = self.head.message("in_progress", None)
        return b"".join(
            (
                _event(0, "response.created", {"response": started}),
                _event(1, "response.in_progress", {"response": started}),
                _event(2, "response.output_item.added", {"output_index": 0, "item": item}),
                _event(3, "response.content_part.added", {**self._place(), "part": text_part("")}),
            )
        )

    def chunk(self, sequence: int, content: str) -> bytes:
        return b'id: %d%b,"output_index":0,"content_index":0,"delta":%b,"logprobs":[],"sequence_number":%d}\n\n' % (
            sequence + EXTRA,
            self._delta,
            quote(content).encode("utf-8", "replace"),
            sequence + EXTRA,
        )

    @staticmethod
    def delta(sequence: int, delta: Delta) -> bytes:
        """Never called: the Responses API's calls are not typed yet: it carries the text only."""
        raise TypeError("this wire carries text only")

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
        final = self.head.ended(outcome, self.correlation_id)
        item, status = final["output"][0], final["status"]
        ending = {"completed": "response.completed", "failed": "response.failed"}.get(status, "response.incomplete")
        return b"".join(
            (
                _event(first, "response.output_text.done", {**self._place(), "text": outcome.text, "logprobs": []}),
                _event(first + 1, "response.content_part.done", {**self._place(), "part": text_part(outcome.text)}),
                _event(first + 2, "response.output_item.done", {"output_index": 0, "item": item}),
                _event(first + 3, ending, {"response": final}),
            )
        )

    def _place(self) -> dict[str, Any]:
        return {"item_id": self.head.item_id, "output_index": 0, "content_index": 0}


def _event(sequence: int, kind: str, data: dict[str, Any]) -> bytes:
    payload = dumps({"type": kind, **data, "sequence_number": sequence}).encode("utf-8", "replace")
    return b"id: %d\nevent: %b\ndata: %b\n\n" % (sequence, kind.encode("ascii"), payload)


def writer(
    stream_id: str, correlation_id: str, model: str, created: float, echo: Mapping[str, Any] | None
) -> ResponsesWriter:
    """The Responses wire's writer of one stream; `echo`: the request's parameters its objects repeat."""
    return ResponsesWriter(stream_id, correlation_id, model, created, echo)
