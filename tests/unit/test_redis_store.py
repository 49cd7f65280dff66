"""The Redis store's parts against a real redis-server: the write script, the journal, a remote
follower and the end of a stream whose owner died."""

from __future__ import annotations

import gevent
import pytest
import redis

from app.errors import ApiError
from app.streaming import redis_link as keys
from app.streaming.redis_follow import RemoteStream, end_if_owner_gone
from app.streaming.redis_journal import RedisJournal
from app.streaming.redis_store import RedisStreamStore, StoreUnreachable
from app.streaming.stream import Stream
from load.processes import RedisServer, free_port

from ..sse import parse


@pytest.fixture
def store(redis_server: RedisServer):
    """A Redis store (one "worker") on the tests' Redis, emptied first."""
    redis.Redis.from_url(redis_server.url).flushall()
    found = RedisStreamStore(redis_server.url, max_streams=3, ttl_seconds=60, max_stream_seconds=60)
    found.journal.start()  # not the owner's greenlets: unpatched, their blocking reads would hold the test up
    found.duties.renew()
    yield found
    found.close()


def _write(stream: Stream, chunks: list[str], end: bytes | None = None) -> None:
    stream.append(stream.wire.priming())
    for chunk in chunks:
        stream.append_chunk(chunk)
    if end is not None:
        stream.ending = "stop"
        stream.append(end, final=True)


def _settle(condition, seconds: float = 5.0) -> None:
    with gevent.Timeout(seconds):
        while not condition():
            gevent.sleep(0.01)


def test_frames_become_visible_once_sent_to_redis_and_remote_followers_get_the_same_bytes(store, redis_server) -> None:
    stream = store.create("cid-1", "m")
    _write(stream, ["Hel", "lo é \ud800", '"quoted"'], end=b"id: 4\nevent: done\ndata: {}\n\n")
    assert stream.visible == 0 and not stream.finished, "nothing is visible before it is sent to Redis"
    _settle(lambda: stream.finished)
    local = b"".join(stream.frames(0, stream.visible))
    assert len(store.link.commands.xrange(keys.events_key(stream.stream_id))) == 5
    other = RedisStreamStore(redis_server.url, 3, 60, 60)  # another worker
    try:
        remote = other.get(stream.stream_id)
        assert isinstance(remote, RemoteStream) and remote.finished and remote.last_event_id == 4
        assert b"".join(remote.follow(None, 1.0)) == local
        assert b"".join(remote.follow(1, 1.0)) == b"".join(stream.frames(2, 5))
    finally:
        other.close()


def test_a_resume_elsewhere_waits_for_an_event_still_on_its_way_to_redis(store, redis_server) -> None:
    stream = store.create("cid-6", "m")
    _write(stream, [])
    _settle(lambda: stream.visible == 1)
    other = RedisStreamStore(redis_server.url, 3, 60, 60)  # another worker
    try:
        remote = other.get(stream.stream_id)
        assert remote.last_event_id == 0
        stream.append_chunk("on its way")  # a client of the owner gets it once it is sent
        remote.catch_up(1)
        assert remote.last_event_id == 1 and not remote.finished
    finally:
        other.close()


def test_a_batch_sent_again_is_not_written_twice_and_an_ended_stream_refuses_more(store) -> None:
    stream = store.create("cid-2", "m")
    _write(stream, ["a", "b"])
    _settle(lambda: stream.visible == 3)
    args = [stream.stream_id, 60000, 60000, "0", "", *keys.NOT_CREATING, 1, "c", b"a", 2, "c", b"b", 3, "c", b"c"]
    stream_keys = [keys.meta_key(stream.stream_id), keys.events_key(stream.stream_id), keys.LIVE_KEY]
    assert store.link.scripts.run("write", stream_keys, args) == 1
    texts = [f.get(b"c") for _, f in store.link.commands.xrange(keys.events_key(stream.stream_id))]
    assert texts == [None, b"a", b"b", b"c"], "entries 1 and 2 were skipped, 3 added"
    store.link.commands.hset(keys.meta_key(stream.stream_id), "state", "finished")
    assert store.link.scripts.run("write", stream_keys, [*args[:10], 4, "c", b"d"]) == -1


def test_the_cluster_holds_at_most_max_streams_live_ones(store) -> None:
    """A new stream is registered with its first frames; over MAX_STREAMS live ones, refused."""
    for _ in range(3):
        stream = store.create("cid", "m")
        _write(stream, [])
        store.admit(stream)
    fourth = store.create("cid", "m")
    _write(fourth, [])
    with pytest.raises(ApiError, match="server_busy"):
        store.admit(fourth)
    assert fourth.stream_id not in store.link.commands.hgetall(keys.LIVE_KEY)


def test_a_stream_whose_owner_lease_lapsed_is_ended_once_with_generation_lost(store) -> None:
    stream = store.create("cid-3", "m")
    _write(stream, ["one ", "two"])
    _settle(lambda: stream.visible == 3)
    meta = store.link.commands.hgetall(keys.meta_key(stream.stream_id))
    assert not end_if_owner_gone(store.link, stream.stream_id, meta), "the owner's lease is alive"
    store.link.commands.delete(keys.lease_key(store.worker_id))  # the lease lapses: the owner died
    assert end_if_owner_gone(store.link, stream.stream_id, meta)
    assert not end_if_owner_gone(store.link, stream.stream_id, meta), "only one caller ends it"
    entries = store.link.commands.xrange(keys.events_key(stream.stream_id))
    events, _ = parse(b"".join(f.get(b"t", b"") for _, f in entries))
    assert [e.event for e in events] == ["error"] and events[0].id == 3
    assert events[0].data["error_code"] == "generation_lost" and events[0].data["content_length"] == 7
    assert store.link.commands.hget(keys.meta_key(stream.stream_id), "ending") == b"generation_lost"
    assert not store.link.commands.hexists(keys.LIVE_KEY, stream.stream_id)


def test_the_journal_publishes_at_once_while_redis_is_down_and_writes_once_it_is_back() -> None:
    server = RedisServer()
    journal = None
    try:
        client = keys.connect(server.url, 4, 1.0)
        scripts = keys.Scripts(client)
        scripts.load()
        failures, lost = [], []
        journal = RedisJournal(client, scripts, (60000, 60000), lambda: failures.append(1), lambda s, _: lost.append(s))
        journal.start()
        stream = Stream("s1", "cid", "m", 0.0, journal=journal)
        client.hset(keys.meta_key("s1"), "state", "live")
        _write(stream, ["x"])
        _settle(lambda: stream.visible == 2)
        server.stop()
        stream.append_chunk("y")
        _settle(lambda: failures == [1])
        assert stream.visible == 3 and not journal.healthy, "followers here get it at once"
        server.start()  # empty: the scripts are loaded again, and the stream, gone, counts as lost
        _settle(lambda: lost == [stream] and journal.healthy)
    finally:
        if journal is not None:
            journal.close()
        server.stop()


def _send_now(journal: RedisJournal) -> None:
    """Send what is dirty as one batch now, as the writer would, without yielding."""
    journal._send(journal.take())


def test_frames_are_published_once_sent_and_their_replies_are_read_later_in_one_go(store) -> None:
    """Write-ahead: a frame reaches followers only after it was handed to Redis; a first token
    goes out behind its stream's registration without waiting for that reply."""
    stream = store.create("cid-4", "m")
    _write(stream, [])
    assert stream.visible == 0, "not before it is sent"
    _send_now(store.journal)
    assert stream.visible == 1 and store.journal.registering(stream)
    stream.append_chunk("first")
    _send_now(store.journal)
    assert store.journal._pipe.in_flight == 2 and stream.visible == 2
    assert not store.journal._replies_due(), "young replies wait to be read together"
    _settle(lambda: not store.journal._pipe.in_flight)  # read within ACK_IDLE_SECONDS
    assert not store.journal.registering(stream)
    texts = [f.get(b"c") for _, f in store.link.commands.xrange(keys.events_key(stream.stream_id))]
    assert texts == [None, b"first"]


def test_a_batch_behind_one_that_failed_is_refused_and_the_stream_is_written_again_without_a_gap(store) -> None:
    stream = store.create("cid-5", "m")
    _write(stream, ["a"])
    _settle(lambda: stream.visible == 2)
    stream_keys = [keys.meta_key(stream.stream_id), keys.events_key(stream.stream_id), keys.LIVE_KEY]
    args = [stream.stream_id, 60000, 60000, "0", "", *keys.NOT_CREATING, 3, "c", b"d"]
    assert store.link.scripts.run("write", stream_keys, args) == -5, "entry 2 is missing: no gap is left"
    stream.append_chunk("b")
    stream.append_chunk("c")
    store.journal._sent[stream.stream_id] = 3  # as if frame 2 had gone out in a batch that was lost
    _settle(lambda: stream.visible == 4 and store.journal.durable(stream))
    texts = [f.get(b"c") for _, f in store.link.commands.xrange(keys.events_key(stream.stream_id))]
    assert texts == [None, b"a", b"b", b"c"]


def test_redis_down_at_start_up_says_where_and_what_to_do() -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnreachable, match=r"Redis at redis://:\*\*\*@127.0.0.1:\d+/0 did not answer") as raised:
        RedisStreamStore(url, 3, 60, 60)
    assert "secret" not in str(raised.value) and "STREAM_STORE=memory" in str(raised.value)
