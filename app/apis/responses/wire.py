"""The OpenAI Responses API's wire: a stream's events as `response.*` events, numbered.

Every SSE event carries its `sequence_number` as its `id:`, contiguous from 0. The priming event
(id 0) is written as two: `response.created`, `response.in_progress`. A chunk is its delta event
(`response.output_text.delta`, `response.refusal.delta`, `response.reasoning_text.delta`,
`response.function_call_arguments.delta`, `response.custom_tool_call_input.delta`: a custom
tool's input decoded from its arguments, `freeform`), preceded by `response.output_item.added` and
`response.content_part.added` where it opens an output item or a content part (`layout`). The
terminal event closes every item in output order (the `done` events of its parts, then
`response.output_item.done`), then says how the response ended: `response.completed`,
`response.incomplete` (the token limit; also a cancelled response, status `cancelled`: the
Responses API has no event of its own for it) or `response.failed`. A text-only reply is
numbered as before typed deltas: chunk `i` is number `i + 3`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...providers.deltas import LOGPROBS, REASONING, REFUSAL, TEXT_KIND, TOOL_CALL, Delta, ReplyParts, decode
from ...streaming.wire.sse import Position, dumps, quote
from ..openai import openai_error_body
from .freeform import InputDecoder
from .layout import FUNCTION_CALL, REASONING_PART, REFUSAL_PART, TEXT_PART, Item, Layout
from .output import DELTA_EVENTS, closing_events, opening_item, output_items
from .replies import Head, content_part
from .tools import callables, callables_of

if TYPE_CHECKING:
    from ...errors import ApiError
    from ...generation.outcome import Outcome

NAME = "responses"  # the wire's name, as streams in Redis record it
LAYOUT_MARK = "layout"  # in the echo a stream keeps: its events are laid out by item (absent: an earlier release's)
LOGPROBS_MARK = "logprobs"  # in the echo: the client asked for log probabilities (an upstream may send them unasked)
PREPARED_MARK = "prepared"  # in the echo: `generate: false`, a warmup with no output at all
ADDED_MARK = "added_tools"  # in the echo: how to name the calls of the tools the input's items added
COMPACTED_MARK = "compacted"  # in the echo: the compaction item a server-side compaction opens the output with
DONE = b"data: [DONE]\n\n"  # the Open Responses end of stream, after the terminal event, without an id
_TEXT_EVENT = b'id: %d%b,"delta":%b,"logprobs":[],"sequence_number":%d}\n\n'  # after `_delta`, its head


class ResponsesWriter:
    """One response's events; fed its chunks in order (as they are written, or `learn`ed from a
    stream another worker wrote), it writes any of them again with the same numbers."""

    name = NAME
    model_first = False  # response.created names the model asked for; the finished object the answering one

    def __init__(
        self, stream_id: str, correlation_id: str, model: str, created: float, echo: Mapping[str, Any] | None
    ) -> None:
        self.correlation_id = correlation_id
        legacy = echo is not None and not echo.get(LAYOUT_MARK)
        self.head = Head.of(stream_id, created, model, echo)
        # Kept with the stream in Redis, so that other workers write the same events.
        self.echo = self.head.echo if legacy else {**self.head.echo, LAYOUT_MARK: 1}
        self.logprobs = bool(echo and echo.get(LOGPROBS_MARK))
        if self.logprobs:
            self.echo[LOGPROBS_MARK] = 1
        self.prepared = bool(echo and echo.get(PREPARED_MARK))
        if self.prepared:
            self.echo[PREPARED_MARK] = 1
        self.compaction = echo.get(COMPACTED_MARK) if echo else None  # the output's first item, written whole
        if self.compaction:
            self.echo[COMPACTED_MARK] = self.compaction
        self.layout = Layout(self.head.response_id, legacy, bool(self.compaction))
        self.called = callables(self.head.echo.get("tools"))  # the custom and namespaced tools
        added = echo.get(ADDED_MARK) if echo else None
        if added:
            self.echo[ADDED_MARK] = added
            self.called.update(callables_of(added))
        self._inputs: dict[int, InputDecoder] = {}  # a custom tool call's input, by its item's place
        self._pieces: dict[int, str] = {}  # the input each chunk of a custom tool call adds
        self._delta = b""  # the bytes every text delta of this response shares, once its text part is open

    @property
    def learned(self) -> int:
        """The newest chunk this writer has placed: a follower feeds it the chunks up to where it starts."""
        return self.layout.chunks

    def learn(self, event_id: int, kind: bytes, payload: bytes) -> None:
        """Place chunk `event_id` (the next one), as stored, without writing it."""
        if event_id != self.layout.chunks + 1:
            return
        if kind == TEXT_KIND:
            self.layout.place_text(event_id)
        else:
            self._placed(event_id, decode(kind, payload))

    def numbered(self, event_id: int) -> int:
        """The sequence number of the last numbered event of stream event `event_id` (not the
        terminal one); -1 (none yet) stays -1."""
        return self.layout.last_number(event_id)

    def position(self, seen: int | None, last_event_id: int, finished: bool) -> Position | None:
        """Where a resume after sequence number `seen` starts (None: nothing is left)."""
        if seen is None:
            return Position(None)
        layout = self.layout
        event = layout.event_of(seen)
        if event == 0:
            return Position(None, seen) if seen < layout.priming_events - 1 else Position(0)
        if event <= layout.chunks:
            return Position(event) if seen == layout.last_number(event) else Position(event - 1, seen)
        if not finished:  # not placed yet: each event takes a number at least, so it is at most this one
            return Position(max(layout.chunks, last_event_id) + 1 + seen - layout.next_number)
        if seen >= layout.next_number + self._closing_events() - 1:
            return None
        return Position(last_event_id - 1, seen)

    def priming(self) -> bytes:
        started = self.head.response("in_progress", [], None)
        frames = [
            _event(0, "response.created", {"response": started}),
            _event(1, "response.in_progress", {"response": started}),
        ]
        if self.compaction:
            done = {"output_index": 0, "item": self.compaction}
            frames.append(_event(2, "response.output_item.added", done))
            frames.append(_event(3, "response.output_item.done", done))
        if self.layout.legacy:  # an earlier release's stream, written again elsewhere
            message = self.layout.items[0]
            opened = {"output_index": 0, "item": opening_item(message, self.called)}
            frames.append(_event(2, "response.output_item.added", opened))
            frames.append(
                _event(
                    3, "response.content_part.added", {**self._place(message, 0), "part": content_part(TEXT_PART, "")}
                )
            )
        return b"".join(frames)

    def chunk(self, sequence: int, content: str) -> bytes:
        layout = self.layout
        if sequence == layout.chunks + 1 and layout.text_opened_by >= 0 and self._delta:  # the usual chunk
            first = layout.next_number
            layout.next_number = first + 1
            layout.chunks = sequence
            return _TEXT_EVENT % (first, self._delta, quote(content).encode("utf-8", "replace"), first)
        first = layout.place_text(sequence) if sequence > layout.chunks else layout.first_number(sequence)
        if sequence == layout.text_opened_by or not self._delta:
            opening = self._opening(sequence, first, layout.message)
            return opening + self._text(first + self._opened(sequence), content)
        return self._text(first, content)

    def _text(self, number: int, content: str) -> bytes:
        if not self._delta:
            message = self.layout.message
            assert message is not None  # placing a text chunk opens it
            kind, item = b"response.output_text.delta", quote(message.item_id).encode()
            place = b'"output_index":%d,"content_index":%d' % (message.output_index, message.part_index(TEXT_PART))
            self._delta = b'\nevent: %b\ndata: {"type":"%b","item_id":%b,%b' % (kind, kind, item, place)
        return _TEXT_EVENT % (number, self._delta, quote(content).encode("utf-8", "replace"), number)

    def delta(self, sequence: int, delta: Delta) -> bytes:
        if delta.kind == LOGPROBS:  # the text, with its log probabilities where they were asked for
            written = self.chunk(sequence, delta.text)
            if not self.logprobs:
                return written
            head, _, tail = written.rpartition(b'"logprobs":[]')  # the text delta's (the last event)
            return head + b'"logprobs":' + dumps(delta.data).encode("utf-8", "replace") + tail
        layout = self.layout
        first = self._placed(sequence, delta)
        if delta.kind in (REASONING, REFUSAL):
            item = layout.reasoning if delta.kind == REASONING else layout.message
            part = REASONING_PART if delta.kind == REASONING else REFUSAL_PART
            opening = self._opening(sequence, first, item)
            place = {**self._place(item, item.part_index(part)), "delta": delta.text}  # type: ignore[union-attr]
            return opening + _event(first + self._opened(sequence), f"response.{DELTA_EVENTS[part]}.delta", place)
        item = layout.call_item(delta.index)
        if item is None:  # a piece of a call that never started: the mender lets none through
            return _event(
                first,
                "response.function_call_arguments.delta",
                {"item_id": "", "output_index": -1, "delta": delta.text},
            )
        frames = []
        if item.opened_by == sequence:
            added = {"output_index": item.output_index, "item": opening_item(item, self.called)}
            frames.append(_event(first, "response.output_item.added", added))
            first += 1
        if delta.text or item.opened_by != sequence:  # as many events as the layout numbered
            place = {"item_id": item.item_id, "output_index": item.output_index, "delta": delta.text}
            event = "response.function_call_arguments.delta"
            if item.output_index in self._inputs:
                place["delta"], event = self._pieces.get(sequence, ""), "response.custom_tool_call_input.delta"
            frames.append(_event(first, event, place))
        return b"".join(frames)

    def _placed(self, sequence: int, delta: Delta) -> int:
        """The first number of chunk `sequence`, placed if it is the next one (a custom tool call's
        piece decoded as it is)."""
        layout = self.layout
        if sequence <= layout.chunks:
            return layout.first_number(sequence)
        first = layout.place(sequence, delta)
        item = layout.call_item(delta.index) if delta.kind == TOOL_CALL and self.called else None
        tool = self.called.get(item.call.name or "") if item is not None and item.call is not None else None
        if item is not None and tool is not None and tool.custom:
            piece = self._inputs.setdefault(item.output_index, InputDecoder()).feed(delta.text)
            if piece:
                self._pieces[sequence] = piece
        return first

    def _opening(self, sequence: int, first: int, item: Item | None) -> bytes:
        """The `added` events chunk `sequence` opens its item and content part with."""
        if item is None:
            return b""
        frames = []
        if item.opened_by == sequence:
            added = {"output_index": item.output_index, "item": opening_item(item, self.called)}
            frames.append(_event(first, "response.output_item.added", added))
            first += 1
        for index, (part, opened_by) in enumerate(item.parts):
            if opened_by == sequence:
                added = {**self._place(item, index), "part": content_part(part, "")}
                frames.append(_event(first, "response.content_part.added", added))
                first += 1
        return b"".join(frames)

    def _opened(self, sequence: int) -> int:
        """How many `added` events chunk `sequence` writes before its delta."""
        count = 0
        for item in (self.layout.message, self.layout.reasoning):
            if item is not None:
                count += (item.opened_by == sequence) + sum(opened_by == sequence for _, opened_by in item.parts)
        return count

    def queued(self, ahead: int) -> bytes:
        """A comment line that joins the next event's block: the Responses API has no such event."""
        return b": queued, %d ahead\n" % ahead

    def interrupted(self, last_id: int, error: ApiError) -> bytes:
        """An `error` event without an id: this response ends, the stream goes on (a resume with
        starting_after the number it gives continues it)."""
        body = openai_error_body(error, self.correlation_id)["error"]
        data = {"type": "error", "code": body["code"], "message": body["message"], "param": None}
        payload = dumps({**data, "resume_after": self.numbered(last_id)}).encode()
        return b"event: error\ndata: %b\n\n%b" % (payload, DONE)

    def terminal(self, last_chunk: int, content_length: int, outcome: Outcome) -> bytes:
        """Every open item's `done` events, in output order, then how the response ended (a
        reply without any chunk opens its empty message here, as a text-only reply always has one)."""
        number = self.layout.next_number
        final = self.head.ended(outcome, self.correlation_id, self.output(outcome.text, outcome.parts, outcome))
        frames = []
        first = self.layout.offset  # the reply's first item (a compaction item before it is written already)
        if not self.layout.items and not self.prepared:
            message = final["output"][first]
            opened = {**message, "status": "in_progress", "content": []}
            frames.append(_event(number, "response.output_item.added", {"output_index": first, "item": opened}))
            place = {"item_id": message["id"], "output_index": first, "content_index": 0}
            frames.append(
                _event(number + 1, "response.content_part.added", {**place, "part": content_part(TEXT_PART, "")})
            )
            number += 2
        for index, item in enumerate(final["output"][first:], first):
            for event, data in closing_events(index, item):
                frames.append(_event(number, event, data))
                number += 1
        ending = {"completed": "response.completed", "failed": "response.failed"}.get(final["status"])
        frames.append(_event(number, ending or "response.incomplete", {"response": final}))
        frames.append(DONE)
        return b"".join(frames)

    def _closing_events(self) -> int:
        """How many numbered events the terminal event holds (as `terminal` writes them)."""
        if not self.layout.items:
            # The empty message's two `added` events, its part's two `done` ones, its own, the
            # ending; a warmup's ending alone.
            return 1 if self.prepared else 6
        count = 1
        for item in self.layout.items:
            count += 2 if item.kind == FUNCTION_CALL else 1 + 2 * len(item.parts)
        return count

    def output(self, text: str, parts: ReplyParts | None, outcome: Outcome | None) -> list[dict[str, Any]]:
        """The response's output items in output order, as they stand (`outcome` None: in
        progress): a compaction's item first; once ended, a reply without any item has its
        empty message (a warmup, none)."""
        reply = (text, parts, outcome)
        found = output_items(self.layout, self.head.item_id, *reply, self.called, self.logprobs, self.prepared)
        return [self.compaction, *found] if self.compaction else found

    @staticmethod
    def _place(item: Item, content_index: int) -> dict[str, Any]:
        return {"item_id": item.item_id, "output_index": item.output_index, "content_index": content_index}


def _event(sequence: int, kind: str, data: dict[str, Any]) -> bytes:
    payload = dumps({"type": kind, **data, "sequence_number": sequence}).encode("utf-8", "replace")
    return b"id: %d\nevent: %b\ndata: %b\n\n" % (sequence, kind.encode("ascii"), payload)


def writer(
    stream_id: str, correlation_id: str, model: str, created: float, echo: Mapping[str, Any] | None
) -> ResponsesWriter:
    """The Responses wire's writer of one stream; `echo`: the request's parameters its objects repeat."""
    return ResponsesWriter(stream_id, correlation_id, model, created, echo)
