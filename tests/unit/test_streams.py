"""The stream event log and the store: replay, follow, keepalive, LRU, TTL, capacity, cancel."""

from __future__ import annotations

import gevent
import pytest

from app.errors import ApiError
from app.sse import KEEPALIVE_FRAME
from app.streams import Stream, StreamCancelled, StreamStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _stream(frames: int = 0) -> Stream:
    stream = Stream("s", "c", "m", 0.0)
    for index in range(frames):
        stream.append(b"f%d" % index)
    return stream


def test_follow_replays_after_the_given_id_then_ends() -> None:
    stream = _stream(4)
    stream.append(b"end", final=True)
    assert b"".join(stream.follow(None, 1)) == b"f0f1f2f3end"
    assert b"".join(stream.follow(1, 1)) == b"f2f3end"
    assert list(stream.follow(4, 1)) == []


def test_follow_waits_for_live_frames_and_batches_backlog() -> None:
    stream = _stream(1)
    received: list[bytes] = []
    follower = gevent.spawn(lambda: received.extend(stream.follow(None, 5)))
    gevent.sleep(0)
    assert received == [b"f0"]
    stream.append(b"a")
    stream.append(b"b")
    gevent.sleep(0)
    assert received == [b"f0", b"ab"], "frames that piled up go out in one write"
    stream.append(b"z", final=True)
    follower.join(timeout=1)
    assert follower.successful() and received[-1] == b"z"


def test_many_followers_share_the_same_frame_bytes() -> None:
    stream = _stream()
    results: list[list[bytes]] = [[] for _ in range(3)]
    followers = [gevent.spawn(lambda r=r: r.extend(stream.follow(None, 5))) for r in results]
    gevent.sleep(0)
    frame = b"shared"
    stream.append(frame, final=True)
    gevent.joinall(followers, timeout=1)
    assert all(r[0] is frame for r in results)


def test_keepalive_during_silence() -> None:
    stream = _stream()
    follow = stream.follow(None, 0.01)
    assert next(follow) == KEEPALIVE_FRAME


def test_store_get_and_not_found() -> None:
    store = StreamStore(10, 60)
    stream = store.create("cid", "m")
    assert store.get(stream.stream_id) is stream
    with pytest.raises(ApiError) as raised:
        store.get("missing")
    assert raised.value.error_code == "stream_not_found" and raised.value.status == 404


def test_full_store_evicts_least_recently_used_finished_stream() -> None:
    clock = FakeClock()
    store = StreamStore(2, 60, clock)
    first, second = store.create("a", "m"), store.create("b", "m")
    for stream in (first, second):
        stream.append(b"done", final=True, now=clock.now)
    store.get(first.stream_id)  # first is now the most recently used
    third = store.create("c", "m")
    assert len(store) == 2
    assert store.get(first.stream_id) is first and store.get(third.stream_id) is third
    with pytest.raises(ApiError):
        store.get(second.stream_id)


def test_full_store_of_live_streams_refuses_and_never_evicts() -> None:
    store = StreamStore(2, 60)
    live = [store.create("a", "m"), store.create("b", "m")]
    with pytest.raises(ApiError) as raised:
        store.create("c", "m")
    assert raised.value.error_code == "server_busy" and raised.value.status == 503
    assert all(store.get(s.stream_id) is s for s in live)


def test_reap_drops_finished_streams_after_the_ttl() -> None:
    clock = FakeClock()
    store = StreamStore(10, 300, clock)
    stream = store.create("a", "m")
    stream.append(b"done", final=True, now=clock.now)
    clock.now += 299
    assert store.reap() == 0
    clock.now += 2
    assert store.reap() == 1 and len(store) == 0


def test_reap_cancels_live_streams_nobody_follows() -> None:
    clock = FakeClock()
    store = StreamStore(10, 300, clock)
    followed, abandoned = store.create("a", "m"), store.create("b", "m")
    cancelled: list[str] = []

    def produce(stream: Stream) -> None:
        try:
            gevent.sleep(3600)
        except StreamCancelled:
            cancelled.append(stream.stream_id)

    for stream in (followed, abandoned):
        stream.producer = gevent.spawn(produce, stream)
    gevent.sleep(0)
    followed.attach()
    clock.now += 301
    assert store.reap() == 1
    gevent.sleep(0)
    assert cancelled == [abandoned.stream_id]
    assert store.get(followed.stream_id) is followed
    followed.detach(clock.now)
    clock.now += 100
    assert store.reap() == 0, "the idle clock restarts when the last consumer leaves"
    followed.producer.kill()


def test_cancel_only_stops_a_running_producer() -> None:
    stream = _stream()
    assert stream.cancel() is False
    stream.producer = gevent.spawn(gevent.sleep, 3600)
    gevent.sleep(0)
    assert stream.cancel() is True
    stream.producer.join(timeout=1)
    assert isinstance(stream.producer.exception, StreamCancelled)
    assert stream.cancel() is False


def test_reaper_greenlet_runs_and_stops() -> None:
    store = StreamStore(10, 0.2)
    stream = store.create("a", "m")
    stream.append(b"done", final=True)
    store.start_reaper()
    gevent.sleep(0.5)
    assert len(store) == 0
    store.close()
