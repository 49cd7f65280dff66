"""Where each of a response's events falls among its output items and sequence numbers.

A response's output items open as their first delta comes, in that order: the message (text,
a refusal), the reasoning item, one `function_call` item per tool call. Each stays open to the
terminal event, which closes them all in output order. A stream event (a chunk) is therefore
one numbered SSE event, or more where it opens an item or a content part; the layout records
the chunks that open something (a few per reply) as they are placed, in order, so that any
chunk's first number follows from them, its event is written again with the same numbers, and a
resume after any sequence number lands exactly. The usual chunk records nothing.
"""

from __future__ import annotations

import bisect
import dataclasses

from ...providers.deltas import LOGPROBS, REASONING, REFUSAL, TOOL_CALL, Delta

MESSAGE, REASONING_ITEM, FUNCTION_CALL = "message", "reasoning", "function_call"
TEXT_PART, REFUSAL_PART, REASONING_PART = "output_text", "refusal", "reasoning_text"
PRIMING_EVENTS = 2  # response.created, response.in_progress
COMPACTED_EVENTS = 2  # and a compacted response's compaction item: its output_item.added, output_item.done
LEGACY_PRIMING_EVENTS = 4  # and the message's output_item.added, content_part.added (streams of earlier releases)
_PREFIXES = {MESSAGE: "msg_", REASONING_ITEM: "rs_", FUNCTION_CALL: "fc_"}  # item ids: prefix + the stream's id
ITEM_PREFIXES = ("msg", "rs", "fc")


@dataclasses.dataclass(slots=True)
class Item:
    """One output item: what it is, its id and place, the event that opened it, and its content
    parts in order (each with the event that opened it). A call's item also has its index among
    the reply's calls, its `call_id` and name."""

    kind: str
    item_id: str
    output_index: int
    opened_by: int
    parts: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    call: Delta | None = None

    def part_index(self, part: str) -> int:
        """The content index of the part `part` (-1: not opened)."""
        for index, (kind, _) in enumerate(self.parts):
            if kind == part:
                return index
        return -1


class Layout:
    """The output items of one response and the first sequence number of each of its chunks;
    fed the chunks in order (`place`). `legacy`: a stream of an earlier release, whose priming
    event opened the message and its text part; `compacted`: its output opens with a compaction
    item, written whole by the priming event (the reply's items come after it)."""

    def __init__(self, response_id: str, legacy: bool = False, compacted: bool = False) -> None:
        self._suffix = response_id.removeprefix("resp_")
        self.legacy = legacy
        self.offset = int(compacted)  # the output index of the reply's first item
        self.items: list[Item] = []
        self.message: Item | None = None
        self.reasoning: Item | None = None
        self.calls: dict[int, Item] = {}
        self.chunks = 0  # how many chunks have been placed
        # The chunks that opened something, and the numbered events all such chunks up to each
        # added beyond their own one: chunk e's first number is priming + e - 1 + what those before it added.
        self._opening_ids: list[int] = []
        self._added: list[int] = []
        self.text_opened_by = -1  # the chunk that opened the message's text part (0: the priming event)
        self.priming_events = LEGACY_PRIMING_EVENTS if legacy else PRIMING_EVENTS + COMPACTED_EVENTS * compacted
        self.next_number = self.priming_events
        if legacy:
            self._open(MESSAGE, 0)
            self._open_part(MESSAGE, TEXT_PART, 0)

    def first_number(self, event_id: int) -> int:
        """The first sequence number of chunk `event_id` (1 .. chunks)."""
        before = bisect.bisect_left(self._opening_ids, event_id)
        return self.priming_events + event_id - 1 + (self._added[before - 1] if before else 0)

    def place_text(self, event_id: int) -> int:
        """Place chunk `event_id` (the next one) as text; its first sequence number."""
        if self.text_opened_by >= 0 and event_id == self.chunks + 1:  # the usual chunk
            first = self.next_number
            self.next_number = first + 1
            self.chunks = event_id
            return first
        return self._place(event_id, self._open_part(MESSAGE, TEXT_PART, event_id))

    def place(self, event_id: int, delta: Delta) -> int:
        """Place chunk `event_id` (the next one) as a typed delta; its first sequence number (text
        with log probabilities is text: this API carries none)."""
        if delta.kind == LOGPROBS:
            return self.place_text(event_id)
        if delta.kind == REFUSAL:
            return self._place(event_id, self._open_part(MESSAGE, REFUSAL_PART, event_id))
        if delta.kind == REASONING:
            return self._place(event_id, self._open_part(REASONING_ITEM, REASONING_PART, event_id))
        if delta.kind == TOOL_CALL and delta.starts_call and delta.index not in self.calls:
            item = self._open(FUNCTION_CALL, event_id)
            item.call = delta
            self.calls[delta.index] = item
            return self._place(event_id, int(bool(delta.text)))  # `added`, then its first piece if any
        return self._place(event_id, 0)

    def _place(self, event_id: int, extra: int) -> int:
        if event_id != self.chunks + 1:
            raise ValueError(f"chunk {event_id} placed after {self.chunks}: chunks are placed in order")
        first = self.next_number
        if extra:
            self._opening_ids.append(event_id)
            self._added.append((self._added[-1] if self._added else 0) + extra)
        self.chunks = event_id
        self.next_number = first + 1 + extra
        return first

    def _open_part(self, kind: str, part: str, event_id: int) -> int:
        """Open the item `kind` (the message or the reasoning) and its part `part` where not yet
        open; how many numbered events the opening takes."""
        item = self.message if kind == MESSAGE else self.reasoning
        opened = 0
        if item is None:
            item = self._open(kind, event_id)
            opened = 1
        if item.part_index(part) >= 0:
            return opened
        item.parts.append((part, event_id))
        if part == TEXT_PART:
            self.text_opened_by = event_id
        return opened + 1

    def _open(self, kind: str, event_id: int) -> Item:
        index = len(self.items) + self.offset
        item_id = _PREFIXES[kind] + self._suffix
        if kind == FUNCTION_CALL:
            item_id += f"_{index}"
        item = Item(kind, item_id, index, event_id)
        self.items.append(item)
        if kind == MESSAGE:
            self.message = item
        elif kind == REASONING_ITEM:
            self.reasoning = item
        return item

    def call_item(self, index: int) -> Item | None:
        """The item of the call at `index` among the reply's calls."""
        return self.calls.get(index)

    def last_number(self, event_id: int) -> int:
        """The sequence number of the last numbered event of chunk `event_id` (0: the priming
        event's; -1 stays -1)."""
        if event_id < 0:
            return -1
        if event_id == 0:
            return self.priming_events - 1
        if event_id < self.chunks:
            return self.first_number(event_id + 1) - 1
        return self.next_number - 1

    def event_of(self, number: int) -> int:
        """The stream event (0: the priming one) whose numbered events include `number`, among
        those placed; chunks + 1 (the terminal or a later event) past them."""
        if number < self.priming_events or not self.chunks:
            return 0 if number < self.next_number else self.chunks + 1
        if number >= self.next_number:
            return self.chunks + 1
        low, high = 1, self.chunks  # the last chunk whose first number is at most `number`
        while low < high:
            middle = (low + high + 1) // 2
            if self.first_number(middle) <= number:
                low = middle
            else:
                high = middle - 1
        return low
