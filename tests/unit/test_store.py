"""The in-memory stream store: lookup, LRU among finished streams, capacity, TTL, the reaper."""

from __future__ import annotations

import gevent
import gevent.event
import pytest

from app.errors import ApiError
from app.generation.cancel import StreamCancelled
from app.streaming.abandon import Abandon
from app.streaming.store import MemoryStreamStore
from app.streaming.stream import Retention, Stream


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _settle() -> None:
    """Let the loop run everything pending: spawned greenlets, and followers a frame woke."""
    gevent.idle()


def test_store_get_and_not_found() -> None:
    store = MemoryStreamStore(10, 60)
    stream = store.create("cid", "m")
    assert store.get(stream.stream_id) is stream
    with pytest.raises(ApiError) as raised:
        store.get("missing")
    assert raised.value.error_code == "stream_not_found" and raised.value.status == 404


def test_full_store_evicts_least_recently_used_finished_stream() -> None:
    clock = FakeClock()
    store = MemoryStreamStore(2, 60, clock)
    first, second = store.create("a", "m"), store.create("b", "m")
    for stream in (first, second):
        stream.append(b"head")
        stream.append(b"done", final=True, now=clock.now)
    store.get(first.stream_id)  # first is now the most recently used
    third = store.create("c", "m")
    assert len(store) == 2
    assert store.get(first.stream_id) is first and store.get(third.stream_id) is third
    with pytest.raises(ApiError):
        store.get(second.stream_id)


def test_full_store_of_live_streams_refuses_and_never_evicts() -> None:
    store = MemoryStreamStore(2, 60)
    live = [store.create("a", "m"), store.create("b", "m")]
    with pytest.raises(ApiError) as raised:
        store.create("c", "m")
    assert raised.value.error_code == "server_busy" and raised.value.status == 503
    assert all(store.get(s.stream_id) is s for s in live)


def test_reap_drops_finished_streams_after_the_ttl() -> None:
    clock = FakeClock()
    store = MemoryStreamStore(10, 300, clock)
    stream = store.create("a", "m")
    stream.append(b"head")
    stream.append(b"done", final=True, now=clock.now)
    clock.now += 299
    assert store.reap() == 0
    clock.now += 2
    assert store.reap() == 1 and len(store) == 0


def test_reap_cancels_live_streams_nobody_follows() -> None:
    clock = FakeClock()
    store = MemoryStreamStore(10, 300, clock)
    followed, abandoned = store.create("a", "m"), store.create("b", "m")
    cancelled: list[str] = []

    def produce(stream: Stream) -> None:
        try:
            gevent.sleep(3600)
        except StreamCancelled:
            cancelled.append(stream.stream_id)

    for stream in (followed, abandoned):
        stream.producer = gevent.spawn(produce, stream)
    _settle()
    followed.attach()
    clock.now += 301
    assert store.reap() == 1
    _settle()
    assert cancelled == [abandoned.stream_id]
    assert store.get(followed.stream_id) is followed
    followed.detach(clock.now)
    clock.now += 100
    assert store.reap() == 0, "the idle clock restarts when the last consumer leaves"
    followed.producer.kill()


def test_unfollowed_streams_are_abandoned_only_while_others_wait_and_stay_resumable() -> None:
    clock = FakeClock()
    waiting = [0]
    store = MemoryStreamStore(10, 300, clock, Abandon(10, lambda: waiting[0] > 0))
    followed, left = store.create("a", "m"), store.create("b", "m")
    cancelled: list[str] = []

    def produce(stream: Stream) -> None:
        try:
            gevent.sleep(3600)
        except StreamCancelled as stop:
            cancelled.append(stop.reason)

    for stream in (followed, left):
        stream.producer = gevent.spawn(produce, stream)
    _settle()
    followed.attach()
    clock.now += 11
    store.reap()
    _settle()
    assert cancelled == [], "nobody waits for the model: an unfollowed reply keeps generating"
    waiting[0] = 1
    clock.now += 1
    assert store.reap() == 0, "abandoned, not dropped"
    _settle()
    assert cancelled == ["abandoned"] and left.cancelled and not followed.cancelled
    assert store.get(left.stream_id) is left
    followed.producer.kill()


def test_reaper_greenlet_runs_and_stops() -> None:
    store = MemoryStreamStore(10, 0.2)
    stream = store.create("a", "m")
    stream.append(b"head")
    stream.append(b"done", final=True)
    store.start()
    gevent.sleep(0.5)
    assert len(store) == 0
    store.close()


def test_a_stopping_store_refuses_new_streams_and_ends_live_ones_with_service_restarting() -> None:
    store = MemoryStreamStore(10, 60)
    live, finished = store.create("a", "m"), store.create("b", "m")
    for stream in (live, finished):
        stream.append(b"head")
    finished.append(b"done", final=True)
    ended: list[BaseException] = []

    def produce() -> None:
        try:
            gevent.sleep(60)
        except StreamCancelled as stop:
            ended.append(stop)
            live.append(b"error", final=True)

    live.producer = gevent.spawn(produce)
    _settle()
    assert store.live() == 1
    store.stop_accepting()
    with pytest.raises(ApiError) as raised:
        store.create("c", "m")
    assert raised.value.error_code == "service_restarting" and raised.value.status == 503
    assert store.end_live() == [live.producer]
    assert store.end_live() == [], "a stream is ended once"
    live.producer.join(1)
    assert [stop.error.error_code for stop in ended] == ["service_restarting"]
    assert store.live() == 0


def _stored(store: MemoryStreamStore, client: str, ended: gevent.event.Event) -> Stream:
    """A stored response of `client` whose producer ends (with its stream) once `ended` is set."""
    stream = store.create("cid", "m", client=client, retention=Retention(3600.0, b"[]", stored=True))

    def produce() -> None:
        stream.append(b"head")
        ended.wait()
        stream.append(b"done", final=True)

    stream.producer = gevent.spawn(produce)
    store.admit(stream)
    return stream


def test_each_key_keeps_its_newest_finished_stored_responses_and_never_a_live_one() -> None:
    store = MemoryStreamStore(100, 60, max_stored=3)
    now, later = gevent.event.Event(), gevent.event.Event()
    live = _stored(store, "key-a", later)
    finished = [_stored(store, "key-a", now) for _ in range(5)]
    other = [_stored(store, "key-b", now) for _ in range(2)]
    now.set()
    _settle()
    kept = [s for s in (live, *finished, *other) if s.stream_id in store._streams]
    assert kept == [live, *finished[-3:], *other], "the oldest finished went; the live one stays"
    later.set()
    _settle()
    assert live.stream_id in store._streams, "once it ends it is the newest finished one"
    assert finished[-3].stream_id not in store._streams, "and the oldest finished one goes"
    store.forget(finished[-1])
    assert store._stored.count("key-a") == 2, "a deleted response leaves the count"
    plain = store.create("cid", "m", client="key-a")  # not a stored response: never counted
    assert store._stored.count("key-a") == 2 and store.get(plain.stream_id) is plain
