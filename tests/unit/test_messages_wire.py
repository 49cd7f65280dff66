"""The Messages wire, read back by the `anthropic` SDK's SSE decoder, event models and message
accumulator: content blocks opened and closed as their deltas come (thinking, text, tool calls
with their input), every chunk written again with the same bytes by a writer that learned the
stream from its stored form (another worker), and a resume after any event landing exactly."""

from __future__ import annotations

import json

from anthropic._models import construct_type
from anthropic._streaming import SSEDecoder
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent

from app.apis.messages.wire import MessagesWriter
from app.errors import ApiError
from app.generation.outcome import Outcome
from app.providers.call import Usage
from app.providers.deltas import REASONING, REFUSAL, TEXT_KIND, TOOL_CALL, Delta, ReplyParts
from app.streaming.wire import chunk_frame

CHUNKS: list[str | Delta] = [
    Delta(REASONING, "Think"),
    Delta(REASONING, "ing."),
    "Calling",
    " now.",
    Delta(TOOL_CALL, "", 0, "call_a", "get_weather"),
    Delta(TOOL_CALL, '{"city":', 0),
    Delta(TOOL_CALL, '{"q":', 1, "call_b", "search"),
    Delta(TOOL_CALL, '"Paris"}', 0),
    Delta(TOOL_CALL, '"x"}', 1),
    Delta(REFUSAL, "No."),
]


def writer() -> MessagesWriter:
    return MessagesWriter("sid", "cid", "m-1")


def frames_of(wire: MessagesWriter, final: Outcome) -> list[bytes]:
    written = [wire.priming()]
    for sequence, chunk in enumerate(CHUNKS, start=1):
        written.append(wire.chunk(sequence, chunk) if isinstance(chunk, str) else wire.delta(sequence, chunk))
    return [*written, wire.terminal(len(CHUNKS), 18, final)]


def decoded(*frames: bytes) -> list:
    found = SSEDecoder().iter_bytes(iter(frames))
    return [(sse.id, sse.event, construct_type(type_=RawMessageStreamEvent, value=sse.json())) for sse in found]


def accumulated(events: list) -> object:
    snapshot, buffers = None, {}
    for _, _, event in events:
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    return snapshot


def done() -> Outcome:
    return Outcome("Calling now.", len(CHUNKS), Usage(7, 9), 12.0, 1.0, finish_reason="tool_calls", parts=ReplyParts())


def test_the_sdk_accumulates_every_block_whole() -> None:
    message = accumulated(decoded(*frames_of(writer(), done())))
    kinds = [block.type for block in message.content]
    assert kinds == ["thinking", "text", "tool_use", "tool_use", "text"]
    thinking, text, weather, search, refusal = message.content
    assert thinking.thinking == "Thinking." and text.text == "Calling now." and refusal.text == "No."
    assert (weather.id, weather.name, weather.input) == ("call_a", "get_weather", {"city": "Paris"})
    assert (search.id, search.name, search.input) == ("call_b", "search", {"q": "x"}), "never input: {}"
    assert message.stop_reason == "tool_use" and message.usage.output_tokens == 9
    assert message.id == "msg_sid" and message.model == "m-1"


def test_each_event_has_its_stream_event_id_and_blocks_open_and_close_in_order() -> None:
    events = decoded(*frames_of(writer(), done()))
    assert {sse_id for sse_id, _, _ in events} == {str(n) for n in range(len(CHUNKS) + 2)}
    opened = [e.index for _, kind, e in events if kind == "content_block_start"]
    closed = [e.index for _, kind, e in events if kind == "content_block_stop"]
    assert opened == closed == [0, 1, 2, 3, 4]
    assert [kind for _, kind, _ in events][-2:] == ["message_delta", "message_stop"]


def test_a_writer_that_learned_the_stream_writes_every_chunk_again_the_same() -> None:
    first = writer()
    written = frames_of(first, done())
    stored = [(TEXT_KIND, c.encode()) if isinstance(c, str) else c.encode() for c in CHUNKS]
    for upto in range(len(CHUNKS) + 1):
        other = writer()
        for event_id, (kind, payload) in enumerate(stored[:upto], start=1):
            other.learn(event_id, kind, payload)
        again = [chunk_frame(other, n, *stored[n - 1]) for n in range(upto + 1, len(CHUNKS) + 1)]
        assert again == written[upto + 1 : len(CHUNKS) + 1], f"after learning {upto}"
        older = [chunk_frame(other, n, *stored[n - 1]) for n in range(1, upto + 1)]
        assert older == written[1 : upto + 1], "an older chunk re-encoded for a resume"


def test_an_error_ends_with_one_error_event_in_anthropics_shape() -> None:
    wire = writer()
    failed = Outcome("", 0, Usage(1, 0), 1.0, None, error=ApiError("upstream_unavailable", "down"))
    ((sse_id, kind, _),) = decoded(wire.terminal(0, 0, failed))
    body = json.loads(wire.terminal(0, 0, failed).split(b"data: ", 1)[1])
    assert (sse_id, kind) == ("1", "error") and body["error"]["type"] == "overloaded_error"
    interrupted = wire.interrupted(4, ApiError("store_unavailable", "Redis is away."))
    assert not interrupted.startswith(b"id:") and json.loads(interrupted.split(b"data: ", 1)[1])["resume_after"] == 4


def test_a_signature_and_a_stop_sequence_reach_the_sdk() -> None:
    """A thinking block's signature is its `signature_delta`; a reply a stop sequence ended says
    which (the SDK's accumulated message has both)."""
    wire = writer()
    frames = [
        wire.priming(),
        wire.delta(1, Delta(REASONING, "Hm.")),
        wire.delta(2, Delta(REASONING, data="EqQBsig")),
        wire.chunk(3, "Done"),
    ]
    ended = Outcome("Done", 3, Usage(7, 3, cached_tokens=4), 5.0, 1.0, finish_reason="stop", stop_sequence="END")
    message = accumulated(decoded(*frames, wire.terminal(3, 4, ended)))
    thinking, text = message.content
    assert (thinking.thinking, thinking.signature, text.text) == ("Hm.", "EqQBsig", "Done")
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (3, 4)
