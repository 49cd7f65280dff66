"""Anthropic Messages' wire: a stream's events as Anthropic streams them, as the `anthropic` SDKs
and Claude Code parse them.

The priming event (id 0) is `message_start`. Each chunk ends with one `content_block_delta`
(`text_delta`, `thinking_delta`, `signature_delta`, `input_json_delta`: a tool call's start
has an empty one, as Anthropic sends it), preceded, when it opens a content block, by the
previous block's `content_block_stop` and its own `content_block_start` (a tool call's with its
id and name).
The terminal event closes the open block, then `message_delta` (stop reason, usage) and
`message_stop`, or is an `error` event; a keepalive is a `ping` event. Every SSE event of a
stream event carries its id, so it resumes like any other stream. Which block a chunk is in
depends on the chunks before it: the writer places each (`learn` for a stream another worker
wrote) and writes any again the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...providers.deltas import REASONING, TEXT_KIND, TOOL_CALL, Delta, decode
from ...streaming.wire.sse import dumps, one_id_per_event, quote
from .replies import MESSAGE_PREFIX, anthropic_error, stop_reason, usage_of

if TYPE_CHECKING:
    from ...errors import ApiError
    from ...generation.outcome import Outcome

NAME = "anthropic"  # the wire's name, as streams in Redis record it
TEXT, THINKING, TOOL_USE = "text", "thinking", "tool_use"
_DELTA_TYPES = {TEXT: b"text_delta", THINKING: b"thinking_delta", TOOL_USE: b"input_json_delta"}
_DELTA_FIELDS = {TEXT: b"text", THINKING: b"thinking", TOOL_USE: b"partial_json"}


def _event(event_id: int, kind: bytes, data: bytes) -> bytes:
    return b"id: %d\nevent: %b\ndata: %b\n\n" % (event_id, kind, data)


class MessagesWriter:
    """One message stream's events; each chunk placed in its content block once, in order."""

    name = NAME
    echo = None
    model_first = True
    # Anthropic's keepalive: an event without an id (a resume goes on from the last event's).
    keepalive = b'event: ping\ndata: {"type":"ping"}\n\n'
    position = staticmethod(one_id_per_event)

    def __init__(self, stream_id: str, correlation_id: str, model: str) -> None:
        self.correlation_id = correlation_id
        self._message_id = MESSAGE_PREFIX + stream_id
        self._model = model
        self._blocks: list[str] = []  # each content block's type, in order
        self._placed: list[tuple[int, bool]] = []  # each chunk's block, and whether it opens it
        self._calls: dict[int, int] = {}  # a tool call's index among the reply's calls -> its block
        self._opened: dict[int, bytes] = {}  # a tool_use block's content_block (its id and name)

    @property
    def learned(self) -> int:
        """The chunks placed: a follower feeds the writer the chunks up to where it starts."""
        return len(self._placed)

    def learn(self, event_id: int, kind: bytes, payload: bytes) -> None:
        """Place chunk `event_id` (the next one), as stored, without writing it."""
        if event_id == len(self._placed) + 1:
            if kind == TEXT_KIND:
                self._place(event_id, TEXT)
            else:
                found = decode(kind, payload)
                self._place(event_id, _block_type(found), found)

    @staticmethod
    def numbered(event_id: int) -> int:
        return event_id

    def priming(self) -> bytes:
        message = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            },
        }
        return _event(0, b"message_start", dumps({"type": "message_start", "message": message}).encode())

    def chunk(self, sequence: int, content: str) -> bytes:
        block, opens = self._place(sequence, TEXT)
        return self._opening(sequence, block, opens) + self._delta(sequence, block, TEXT, content)

    def delta(self, sequence: int, delta: Delta) -> bytes:
        """A chunk of thinking, of a tool call (its start opens a `tool_use` block), or of text
        (a refusal, or text with log probabilities: Anthropic has neither)."""
        kind = _block_type(delta)
        block, opens = self._place(sequence, kind, delta)
        if kind == THINKING and delta.data is not None:  # the signature that seals the thinking block
            signed = _event(sequence, b"content_block_delta", _signed(block, delta))
            return self._opening(sequence, block, opens) + signed
        return self._opening(sequence, block, opens) + self._delta(sequence, block, kind, delta.text)

    def _place(self, sequence: int, kind: str, delta: Delta | None = None) -> tuple[int, bool]:
        """Chunk `sequence`'s block and whether it opens it (placed once: later calls look it up)."""
        if sequence <= len(self._placed):
            return self._placed[sequence - 1]
        current = len(self._blocks) - 1
        if kind == TOOL_USE and delta is not None and not delta.starts_call and delta.index in self._calls:
            found = (self._calls[delta.index], False)
        elif kind != TOOL_USE and current >= 0 and self._blocks[current] == kind:
            found = (current, False)
        else:
            self._blocks.append(kind)
            found = (current + 1, True)
            if kind == TOOL_USE and delta is not None:
                self._calls[delta.index] = current + 1
                tool = {"type": "tool_use", "id": delta.call_id or "", "name": delta.name or "", "input": {}}
                self._opened[current + 1] = dumps(tool).encode("utf-8", "replace")
        self._placed.append(found)
        return found

    def _opening(self, sequence: int, block: int, opens: bool) -> bytes:
        """The previous block's stop and this block's start, when chunk `sequence` opens `block`."""
        if not opens:
            return b""
        frames = b""
        if block > 0:
            frames = _event(sequence, b"content_block_stop", b'{"type":"content_block_stop","index":%d}' % (block - 1))
        kind = self._blocks[block]
        opened = self._opened.get(block) or (
            b'{"type":"thinking","thinking":"","signature":""}' if kind == THINKING else b'{"type":"text","text":""}'
        )
        start = b'{"type":"content_block_start","index":%d,"content_block":%b}' % (block, opened)
        return frames + _event(sequence, b"content_block_start", start)

    @staticmethod
    def _delta(sequence: int, block: int, kind: str, text: str) -> bytes:
        data = b'{"type":"content_block_delta","index":%d,"delta":{"type":"%b","%b":%b}}' % (
            block,
            _DELTA_TYPES[kind],
            _DELTA_FIELDS[kind],
            quote(text).encode("utf-8", "replace"),
        )
        return _event(sequence, b"content_block_delta", data)

    def queued(self, ahead: int) -> bytes:
        """A comment line that joins the next event's block: Anthropic's clients have no such event."""
        return b": queued, %d ahead\n" % ahead

    def interrupted(self, last_id: int, error: ApiError) -> bytes:
        """An `error` event without an id: this response ends, the stream goes on (a resume
        after `last_id` continues it)."""
        body = {**anthropic_error(error, self.correlation_id), "resume_after": last_id}
        return b"event: error\ndata: %b\n\n" % dumps(body).encode("utf-8", "replace")

    def terminal(self, last_chunk: int, content_length: int, outcome: Outcome) -> bytes:
        """The open block's stop, `message_delta` (stop reason, usage) and `message_stop`; or the
        `error` event."""
        event_id = last_chunk + 1
        if outcome.error is not None:
            body = anthropic_error(outcome.error, self.correlation_id)
            return _event(event_id, b"error", dumps(body).encode("utf-8", "replace"))
        frames = b""
        if self._blocks:
            stop = b'{"type":"content_block_stop","index":%d}' % (len(self._blocks) - 1)
            frames = _event(event_id, b"content_block_stop", stop)
        delta = {
            "type": "message_delta",
            "delta": stop_reason(outcome),
            "usage": {**usage_of(outcome.usage), "chatwait": outcome.ledger()},
        }
        frames += _event(event_id, b"message_delta", dumps(delta).encode())
        return frames + _event(event_id, b"message_stop", b'{"type":"message_stop"}')


def _signed(block: int, delta: Delta) -> bytes:
    signature = quote(delta.data).encode("utf-8", "replace")
    return b'{"type":"content_block_delta","index":%d,"delta":{"type":"signature_delta","signature":%b}}' % (
        block,
        signature,
    )


def _block_type(delta: Delta) -> str:
    """The content block a typed delta goes in (a refusal and log-probability text are text)."""
    if delta.kind == REASONING:
        return THINKING
    return TOOL_USE if delta.kind == TOOL_CALL else TEXT


def writer(
    stream_id: str, correlation_id: str, model: str, created: float, options: Mapping[str, Any] | None
) -> MessagesWriter:
    """The Messages wire's writer of one stream."""
    return MessagesWriter(stream_id, correlation_id, model)
