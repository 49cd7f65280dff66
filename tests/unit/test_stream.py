"""The stream event log: replay, follow, keepalive, compact storage, cancel, wake-ups."""

from __future__ import annotations

import gevent
import gevent.event
import pytest
from gevent import socket

from app.generation.cancel import StreamCancelled
from app.streaming import producer
from app.streaming.frames import RECENT_FRAMES
from app.streaming.stream import Stream
from app.streaming.wire.sse import KEEPALIVE_FRAME, encode_chunk


def _settle() -> None:
    """Let the loop run everything pending: spawned greenlets, and followers a frame woke."""
    gevent.idle()


def _stream(chunks: int = 0) -> Stream:
    """A stream with its priming frame b"head" and `chunks` chunks "c0", "c1", ..."""
    stream = Stream("s", "c", "m", 0.0)
    stream.append(b"head")
    for index in range(chunks):
        stream.append_chunk(f"c{index}")
    return stream


def _chunk(sequence: int) -> bytes:
    return encode_chunk(sequence, f"c{sequence - 1}")


def test_follow_replays_after_the_given_id_then_ends() -> None:
    stream = _stream(3)
    stream.append(b"end", final=True)
    assert stream.last_event_id == 4
    assert b"".join(stream.follow(None, 1)) == b"head" + _chunk(1) + _chunk(2) + _chunk(3) + b"end"
    assert b"".join(stream.follow(1, 1)) == _chunk(2) + _chunk(3) + b"end"
    assert list(stream.follow(4, 1)) == []


def test_follow_waits_for_live_frames_and_batches_backlog() -> None:
    stream = _stream()
    received: list[bytes] = []
    follower = gevent.spawn(lambda: received.extend(stream.follow(None, 5)))
    _settle()
    assert received == [b"head"]
    stream.append_chunk("a")
    stream.append_chunk("b")
    _settle()
    assert received == [b"head", encode_chunk(1, "a") + encode_chunk(2, "b")], "a backlog goes out in one write"
    stream.append(b"z", final=True)
    follower.join(timeout=1)
    assert follower.successful() and received[-1] == b"z"


def test_many_followers_share_the_same_frame_bytes() -> None:
    stream = _stream()
    results: list[list[bytes]] = [[] for _ in range(3)]
    followers = [gevent.spawn(lambda r=r: r.extend(stream.follow(0, 5))) for r in results]
    _settle()
    frame = stream.append_chunk("shared")
    _settle()
    stream.append(b"end", final=True)
    gevent.joinall(followers, timeout=1)
    assert all(r[0] is frame for r in results), "encoded once, the same bytes for every follower"


def test_old_chunks_are_kept_as_text_and_replayed_exactly() -> None:
    stream = _stream()
    pieces = [f"tök {index} 🎉\n" for index in range(RECENT_FRAMES * 3)]
    live = [stream.append_chunk(piece) for piece in pieces]
    stream.append(b"end", final=True)
    replay = b"".join(stream.follow(None, 1))
    assert replay == b"head" + b"".join(live) + b"end"
    assert stream.frames(1, 2) == [live[0]] and stream.frames(len(pieces), len(pieces) + 1)[0] is live[-1]
    assert stream.frames(5, 8) == live[4:7]


def test_memory_stays_small_for_long_replies() -> None:
    stream = _stream()
    for index in range(10_000):
        stream.append_chunk(f"tok{index % 100} ")
    frames = stream._frames
    held = len(frames._text) + frames._lengths.itemsize * len(frames._lengths) + sum(map(len, frames._recent))
    assert held < 100_000, "about the reply's own text, not its encoded frames"


def test_a_chunk_longer_than_64_kib_is_kept_whole() -> None:
    stream = _stream(2)
    big = "x" * 70_000
    stream.append_chunk(big)
    for _ in range(RECENT_FRAMES + 1):
        stream.append_chunk("y")
    assert stream.frames(3, 4) == [encode_chunk(3, big)]
    assert stream.frames(1, 3) == [_chunk(1), _chunk(2)]


def test_only_a_priming_frame_chunks_and_one_terminal_frame() -> None:
    stream = _stream(1)
    with pytest.raises(ValueError):
        stream.append(b"not final")
    stream.append(b"end", final=True)
    with pytest.raises(ValueError):
        stream.append(b"twice", final=True)


def test_keepalive_during_silence() -> None:
    stream = _stream()
    follow = stream.follow(0, 0.01)
    assert next(follow) == KEEPALIVE_FRAME


def test_cancel_only_stops_a_running_producer() -> None:
    stream = _stream()
    assert stream.cancel() is False
    stream.producer = gevent.spawn(gevent.sleep, 3600)
    _settle()
    assert stream.cancel() is True
    stream.producer.join(timeout=1)
    assert isinstance(stream.producer.exception, StreamCancelled)
    assert stream.cancel() is False


def test_a_stop_that_lands_after_the_generation_ended_on_its_own_says_so() -> None:
    """The producer was already woken to end the reply when the stop came: the stop is queued
    behind that wake-up, so the reply ends `stop` and the stop must not claim it cancelled it."""
    stream = _stream(chunks=2)
    last_piece = gevent.event.Event()

    def generate() -> None:
        last_piece.wait()
        stream.ending = "stop"
        stream.append(b"done", final=True)

    stream.producer = gevent.spawn(generate)
    _settle()
    last_piece.set()  # the producer is woken, not yet run
    assert producer.stop(stream, wait_seconds=1) is False
    assert stream.ending == "stop" and stream.producer.successful()


def test_a_stop_of_a_running_generation_says_it_cancelled_it() -> None:
    stream = _stream(chunks=2)

    def generate() -> None:
        try:
            gevent.sleep(3600)
        except StreamCancelled:
            stream.ending = "cancelled"
            stream.append(b"done", final=True)

    stream.producer = gevent.spawn(generate)
    _settle()
    assert producer.stop(stream, wait_seconds=1) is True
    assert stream.ending == "cancelled"


def test_a_follower_writes_before_other_ready_reads_are_handled() -> None:
    """A frame's follower runs as soon as its producer yields, ahead of other ready events.

    Four producers are woken by the same loop turn (their sockets became readable together);
    the first to run appends a frame. Its follower must run before the other three producers.
    """
    stream = _stream()
    order: list[str] = []

    def follower() -> None:
        for frame in stream.follow(0, 5):
            order.append(f"follower {frame.decode()[:5]}")

    pairs = [socket.socketpair() for _ in range(4)]
    first: list[int] = []

    def producer(index: int) -> None:
        pairs[index][1].recv(1)
        order.append(f"producer {index}")
        if not first:
            first.append(index)
            stream.append_chunk("x")
        pairs[index][1].recv(1)

    gevent.spawn(follower)
    producers = [gevent.spawn(producer, index) for index in range(4)]
    _settle()
    for sender, _ in pairs:
        sender.send(b"r")
    _settle()
    assert order[:2] == [f"producer {first[0]}", "follower id: 1"], order
    assert len(order) == 5
    for sender, _ in pairs:
        sender.send(b"r")
    gevent.joinall(producers, timeout=1)
    stream.append(b"end", final=True)
    _settle()
    for sender, receiver in pairs:
        sender.close()
        receiver.close()


def test_followers_are_still_woken_on_a_loop_that_cannot_feed_events(monkeypatch) -> None:
    monkeypatch.setattr("app.hub.scheduling._feeds_events", lambda loop: False)
    stream = _stream()
    received: list[bytes] = []
    follower = gevent.spawn(lambda: received.extend(stream.follow(0, 5)))
    _settle()
    stream.append_chunk("a")
    _settle()
    assert received == [encode_chunk(1, "a")]
    stream.append(b"end", final=True)
    follower.join(timeout=1)
    assert follower.successful() and received[-1] == b"end"


def test_a_notice_reaches_those_following_after_the_priming_frame_and_is_never_replayed() -> None:
    stream = _stream()
    stream.set_notice(b"queued 2")
    received: list[bytes] = []
    follower = gevent.spawn(lambda: received.extend(stream.follow(None, 5)))
    _settle()
    assert received == [b"head", b"queued 2"], "a follower that joins while it stands gets the notice"
    stream.set_notice(b"queued 1")
    _settle()
    stream.set_notice(None)  # withdrawn: nothing is sent
    stream.append_chunk("a")
    stream.append(b"end", final=True)
    follower.join(timeout=1)
    assert b"".join(received) == b"head" + b"queued 2" + b"queued 1" + encode_chunk(1, "a") + b"end"
    assert b"".join(stream.follow(None, 5)) == b"head" + encode_chunk(1, "a") + b"end", "not in the log"
