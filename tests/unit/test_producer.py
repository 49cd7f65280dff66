"""The stream writer: priming event, chunk sequences, exactly one terminal event."""

from __future__ import annotations

import socket

import gevent
import gevent.socket

from app.errors import ApiError
from app.generation.outcome import Outcome
from app.providers.call import Usage
from app.streaming.producer import StreamWriter
from app.streaming.stream import Stream

from ..sse import parse


def _events(stream: Stream):
    return parse(b"".join(stream.follow(None, 0.01)))[0]


def test_priming_chunks_and_done() -> None:
    stream = Stream("sid", "cid", "m", 0.0)
    writer = StreamWriter(stream)
    assert stream.last_event_id == 0 and not stream.finished
    writer.write(["Hé"])
    writer.write(["llo"])
    writer.end(Outcome("Héllo", 2, Usage(3, 2), 12.5, 1.0, finish_reason="stop"))
    first, one, two, done = _events(stream)
    assert first.data == {"stream_id": "sid", "correlation_id": "cid", "model": "m", "created": int(stream.created)}
    assert (one.data["sequence"], two.data["sequence"]) == (1, 2)
    assert done.id == 3 and done.data == {
        "sequence": 3,
        "is_final": True,
        "last_sequence": 2,
        "content_length": 5,
        "duration_ms": 12.5,
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 2,
            "total_tokens": 5,
            "generated_tokens": 2,
            "delivered_tokens": 2,
            "attempts": [],
        },  # whoever reads it has both chunks
        "usage_source": "upstream",
        "finish_reason": "stop",
    }
    assert stream.finished


def test_error_event_carries_the_catalogue_fields() -> None:
    stream = Stream("sid", "cid", "m", 0.0)
    writer = StreamWriter(stream)
    writer.write(["a"])
    error = ApiError("upstream_interrupted", "cut")
    writer.end(Outcome("a", 1, Usage(3, 1), 5.0, 1.0, error=error))
    last = _events(stream)[-1]
    assert last.event == "error"
    assert last.data["error_code"] == "upstream_interrupted" and last.data["detail"] == "cut"
    assert last.data["correlation_id"] == "cid" and last.data["retryable"] is True
    assert last.data["last_sequence"] == 1 and last.data["content_length"] == 1


def test_abort_ends_an_orphaned_stream_once() -> None:
    stream = Stream("sid", "cid", "m", 0.0)
    writer = StreamWriter(stream)
    writer.write(["abc"])
    writer.abort()
    writer.abort()
    events = _events(stream)
    assert [e.event for e in events] == ["stream", "chunk", "error"]
    assert events[-1].data["error_code"] == "internal_error" and events[-1].data["content_length"] == 3


def test_abort_after_a_normal_end_does_nothing() -> None:
    stream = Stream("sid", "cid", "m", 0.0)
    writer = StreamWriter(stream)
    writer.end(Outcome("", 0, Usage(1, 0), 1.0, None, finish_reason="stop"))
    writer.abort()
    assert [e.event for e in _events(stream)] == ["stream", "done"]


def _relay_woken_by_reads(pieces: tuple[str, ...], received: list[bytes], after_chunk=lambda: None) -> None:
    """A producer that writes each piece when an upstream read wakes it, as the relay's producer
    is, and one follower that collects the stream's frames into `received`;
    `after_chunk` runs each time `chunk()` returns."""
    stream = Stream("sid", "cid", "m", 0.0)
    writer = StreamWriter(stream)

    def produce(upstream: socket.socket) -> None:
        for piece in pieces:
            gevent.socket.wait_read(upstream.fileno())
            upstream.recv(16)
            writer.write([piece])
            after_chunk()
        writer.end(Outcome("".join(pieces), len(pieces), Usage(1, len(pieces)), 1.0, 1.0, finish_reason="stop"))

    upstream, fake_model = socket.socketpair()
    with upstream, fake_model:
        follower = gevent.spawn(lambda: received.extend(stream.follow(None, 30)))
        producer = gevent.spawn(produce, upstream)
        for _ in pieces:
            gevent.sleep(0.01)
            fake_model.send(b"token")
        gevent.joinall([producer, follower], timeout=5)


def test_the_first_chunk_reaches_a_waiting_follower_before_chunk_returns() -> None:
    """The producer yields once after the first chunk, so the follower's write of the first
    token comes before the producer's own bookkeeping (its first_token log line)."""
    received: list[bytes] = []
    seen_when_chunk_returned: list[int] = []
    _relay_woken_by_reads(("first", "second"), received, lambda: seen_when_chunk_returned.append(len(received)))
    assert seen_when_chunk_returned == [2, 2], "the first chunk was written before chunk() returned; the second after"
    assert [event.event for event in parse(b"".join(received))[0]] == ["stream", "chunk", "chunk", "done"]
