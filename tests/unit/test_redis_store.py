"""The Redis store's parts against a real redis-server: the scripts, the journal through Redis's
failures (down, restarted empty, out of memory, a lost batch, lost keys), a remote follower,
the end of a stream whose owner died, and the checks at start-up and in /ready."""

from __future__ import annotations

import contextlib
import time

import gevent
import pytest
import redis

from app.connect.redis import StoreUnusable, Topology
from app.errors import ApiError
from app.generation.cancel import StreamCancelled
from app.streaming.redis import link as keys
from app.streaming.redis.follow import RemoteStream
from app.streaming.redis.orphans import end_if_owner_gone
from app.streaming.redis.store import RedisStoreSettings, RedisStreamStore
from app.streaming.stream import Stream
from harness.processes import free_port
from harness.redis_servers import RedisServer

from ..sse import parse


def _store(url: str, max_streams: int = 3, outage_seconds: float = 10.0) -> RedisStreamStore:
    """A store that takes streams over twice at most, once it is given what continues them."""
    return RedisStreamStore(RedisStoreSettings(Topology.of(url), max_streams, 60, 60, outage_seconds, takeovers=2))


@pytest.fixture
def store(redis_server: RedisServer):
    """A Redis store (one "worker") on the tests' Redis, emptied first."""
    with redis.Redis.from_url(redis_server.url) as client:  # closed: an open one warns when collected
        client.flushall()
    found = _store(redis_server.url)
    found.journal.start()  # not the owner's greenlets: unpatched, their blocking reads would hold the test up
    found.duties.renew()
    yield found
    found.close()


def _write(stream: Stream, chunks: list[str], end: bytes | None = None) -> None:
    if not stream.written:
        stream.append(stream.writer.priming())
    for chunk in chunks:
        stream.append_chunk(chunk)
    if end is not None:
        stream.ending = "stop"
        stream.append(end, final=True)


def _settle(condition, seconds: float = 5.0) -> None:
    with gevent.Timeout(seconds):
        while not condition():
            gevent.sleep(0.01)


def _texts(store: RedisStreamStore, stream_id: str) -> list[bytes | None]:
    return [f.get(b"c") for _, f in store.link.commands.xrange(keys.events_key(stream_id))]


def _write_args(
    store: RedisStreamStore, frames: list[object], ending: str = "0", creating: str = "0", epoch: int = 0
) -> list[object]:
    """A write script's arguments from `store`'s worker (the owner) at `epoch`."""
    identity = ["w", "cid", "m", 0, "chatwait", "", "", "", ""]
    return [60000, 60000, ending, creating, "", *identity, store.worker_id, "", epoch, 0, *frames]


def _run(store: RedisStreamStore, name: str, stream_id: str, args: list[object]) -> tuple[str, int]:
    status, held = store.link.scripts.run(store.link.commands, name, keys.stream_keys(stream_id), args)
    return status.decode(), held


def _settled(store: RedisStreamStore) -> None:
    """As if this worker's lease had been fresh for long: it may tell other owners are gone."""
    now_ms = int(time.time() * 1000)
    store.link.commands.hset(keys.OWNERS_KEY, mapping={store.worker_id: now_ms, f"{store.worker_id}:since": 0})


def test_frames_become_visible_once_sent_to_redis_and_remote_followers_get_the_same_bytes(store, redis_server) -> None:
    stream = store.create("cid-1", "m")
    _write(stream, ["Hel", "lo é \ud800", '"quoted"'], end=b"id: 4\nevent: done\ndata: {}\n\n")
    assert stream.visible == 0 and not stream.finished, "nothing is visible before it is sent to Redis"
    _settle(lambda: stream.finished)
    local = b"".join(stream.frames(0, stream.visible))
    assert len(store.link.commands.xrange(keys.events_key(stream.stream_id))) == 5
    assert not store.link.commands.hexists(keys.LIVE_KEY, stream.stream_id), "no longer counted as live"
    other = _store(redis_server.url)  # another worker
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
    other = _store(redis_server.url)  # another worker
    try:
        remote = other.get(stream.stream_id)
        assert remote.last_event_id == 0
        stream.append_chunk("on its way")  # a client of the owner gets it once it is sent
        remote.catch_up(1)
        assert remote.last_event_id == 1 and not remote.finished
    finally:
        other.close()


def test_a_batch_sent_again_is_not_written_twice_even_once_the_stream_has_ended(store) -> None:
    stream = store.create("cid-2", "m")
    _write(stream, ["a", "b"])
    _settle(lambda: stream.visible == 3 and store.journal.durable(stream))
    sid = stream.stream_id
    assert _run(store, "write", sid, _write_args(store, [1, "c", b"a", 2, "c", b"b", 3, "c", b"c"])) == ("ok", 4)
    assert _texts(store, sid) == [None, b"a", b"b", b"c"], "entries 1 and 2 were skipped, 3 added"
    assert _run(store, "end", sid, _write_args(store, [4, "t", b"end"], ending="stop")) == ("ok", 5)
    assert _run(store, "end", sid, _write_args(store, [4, "t", b"end"], ending="stop")) == ("ok", 5), "again: held"
    assert _run(store, "write", sid, _write_args(store, [5, "c", b"late"])) == ("ended", 0), "nothing after the end"


def test_the_cluster_holds_at_most_max_streams_live_ones(store) -> None:
    """A new stream is admitted before its first frames; over MAX_STREAMS live ones, refused."""
    for _ in range(3):
        stream = store.create("cid", "m")
        _write(stream, [])
        store.admit(stream)
    fourth = store.create("cid", "m")
    _write(fourth, [])
    with pytest.raises(ApiError, match="server_busy"):
        store.admit(fourth)
    assert fourth.stream_id.encode() not in store.link.commands.hgetall(keys.LIVE_KEY)
    assert not store.link.commands.exists(keys.meta_key(fourth.stream_id)), "nothing of it was written"


def test_a_stream_whose_owner_is_gone_is_ended_once_with_generation_lost(store) -> None:
    stream = store.create("cid-3", "m")
    _write(stream, ["one ", "two"])
    _settle(lambda: stream.visible == 3 and store.journal.durable(stream))
    meta = store.link.commands.hgetall(keys.meta_key(stream.stream_id))
    meta[b"owner"] = b"dead-worker"
    store.link.commands.hset(keys.meta_key(stream.stream_id), "owner", "dead-worker")
    assert store.link.gone(["dead-worker"])[1] == set(), "no verdict before this worker's lease has settled"
    _settled(store)
    store.link.commands.hset(keys.OWNERS_KEY, "dead-worker", 1)  # its last renewal, long ago
    assert store.link.gone(["dead-worker", store.worker_id])[1] == {"dead-worker"}
    assert end_if_owner_gone(store.link, stream.stream_id, meta)
    assert not end_if_owner_gone(store.link, stream.stream_id, meta), "only one caller ends it"
    entries = store.link.commands.xrange(keys.events_key(stream.stream_id))
    events, _ = parse(b"".join(f.get(b"t", b"") for _, f in entries))
    assert [e.event for e in events] == ["error"] and events[0].id == 3
    assert events[0].data["error_code"] == "generation_lost" and events[0].data["content_length"] == 7
    assert store.link.commands.hget(keys.meta_key(stream.stream_id), "ending") == b"generation_lost"
    assert not store.link.commands.hexists(keys.LIVE_KEY, stream.stream_id)


def _orphan(store: RedisStreamStore, chunks: list[str], revival: str = "") -> tuple[Stream, dict[bytes, bytes]]:
    """A live stream in Redis whose owner ("dead-worker") is gone, and its hash."""
    stream = store.create("cid-t", "m")
    stream.tenure.revival = revival
    _write(stream, chunks)
    _settle(lambda: stream.visible == len(chunks) + 1 and store.journal.durable(stream))
    store.journal.forget(stream)  # as if another worker had written it
    del store._local[stream.stream_id]
    store.link.commands.hset(keys.meta_key(stream.stream_id), "owner", "dead-worker")
    return stream, store.link.commands.hgetall(keys.meta_key(stream.stream_id))


def _claim(
    store: RedisStreamStore, stream_id: str, owner: str, newest: int, most: int = 2, epoch: int = 0, by: str = ""
) -> str:
    args = [owner, by or store.worker_id, most, newest, epoch]
    status, _, _ = store.link.scripts.run(store.link.commands, "claim", keys.stream_keys(stream_id), args)
    return status.decode()


def test_a_claim_is_won_once_and_only_on_the_newest_event(store) -> None:
    stream, _ = _orphan(store, ["one ", "two"], revival='{"call": {}}')
    sid = stream.stream_id
    assert _claim(store, sid, "dead-worker", 1) == "moved", "the owner wrote after what the claimer read"
    assert _claim(store, sid, "someone-else", 2) == "moved", "not the owner found gone"
    assert _claim(store, sid, "dead-worker", 2, epoch=1) == "moved", "not the epoch read"
    assert _claim(store, sid, "dead-worker", 2, by="dead-worker") == "moved", "never claimed from itself"
    assert _claim(store, sid, "dead-worker", 2) == "ok"
    meta = store.link.commands.hgetall(keys.meta_key(sid))
    assert meta[b"owner"] == store.worker_id.encode() and meta[b"epoch"] == b"1", "the claim raises the epoch"
    assert _claim(store, sid, "dead-worker", 2) == "moved", "one worker of the cluster wins"
    assert _claim(store, sid, store.worker_id, 2, epoch=1) == "moved", "a live owner is never claimed from by itself"
    store.link.commands.hset(keys.meta_key(sid), "owner", "dead-worker")
    assert _claim(store, sid, "dead-worker", 2, most=1, epoch=1) == "spent"
    other, _ = _orphan(store, ["x"])
    assert _claim(store, other.stream_id, "dead-worker", 1) == "none", "no call kept: nothing to continue with"


def test_takeovers_and_continuations_after_a_cut_have_budgets_of_their_own(store) -> None:
    """UPSTREAM_TAKEOVERS counts claims (`taken`), UPSTREAM_RESCUES a reply's continuations
    after a cut (`spent`): spending one leaves the other whole."""
    stream, _ = _orphan(store, ["one ", "two"], revival='{"call": {}}')
    sid, meta = stream.stream_id, keys.meta_key(stream.stream_id)

    def cut(budget: int) -> str:
        epoch = int(store.link.commands.hget(meta, "epoch") or 0)
        args = [store.worker_id, epoch, budget]
        return store.link.scripts.run(store.link.commands, "continue", [meta], args).decode()

    store.link.commands.hset(meta, "spent", 1)  # the dead owner had continued it once after a cut
    assert _claim(store, sid, "dead-worker", 2, most=1) == "ok", "a rescue spends no takeover"
    assert cut(budget=2) == "ok" and cut(budget=2) == "spent", "the takeover spent no rescue"
    store.link.commands.hset(meta, "owner", "dead-worker")
    assert _claim(store, sid, "dead-worker", 2, most=1, epoch=1) == "spent", "one takeover allowed"
    assert store.link.commands.hmget(meta, "taken", "spent") == [b"1", b"2"]


def test_the_former_owner_finds_its_writes_refused_once_the_stream_is_taken(store) -> None:
    stream = store.create("cid-w", "m")
    _write(stream, ["one "])
    _settle(lambda: stream.visible == 2 and store.journal.durable(stream))
    store.link.commands.hset(keys.meta_key(stream.stream_id), "owner", "new-owner")
    store.duties._renewed_at -= keys.LEASE_SECONDS  # this worker stalled past its lease, then renewed
    store.duties.renew()
    assert not store.duties.trusted()
    _write(stream, ["two"])
    _settle(lambda: stream.tenure.moved is not None)
    assert stream.visible == 2, "the frame Redis refused is never shown"
    assert _texts(store, stream.stream_id) == [None, b"one "]
    assert stream.stream_id not in store._local
    store.link.commands.xadd(keys.events_key(stream.stream_id), {"c": "new owner's"}, id="0-3")
    store.link.commands.xadd(keys.events_key(stream.stream_id), {"t": b"end"}, id="0-4")
    store.link.commands.hset(keys.meta_key(stream.stream_id), "state", "finished")
    handed = b"".join(stream.follow(0, 1.0))
    assert handed == stream.writer.chunk(1, "one ") + stream.writer.chunk(2, "new owner's") + b"end", (
        "its followers here go on with what the new owner wrote"
    )


def test_a_write_from_an_older_epoch_is_refused_even_by_the_same_worker(store) -> None:
    """The fencing token: a worker that took a stream back (its copy from before still writing)
    writes with the new epoch only; the older copy's writes are refused whole."""
    stream = store.create("cid-e", "m")
    _write(stream, ["a"])
    _settle(lambda: store.journal.durable(stream))
    sid = stream.stream_id
    store.link.commands.hset(keys.meta_key(sid), "epoch", 2)
    assert _run(store, "write", sid, _write_args(store, [2, "c", b"old"])) == ("taken", 0)
    assert _run(store, "write", sid, _write_args(store, [2, "c", b"new"], epoch=2)) == ("ok", 3)
    assert _run(store, "end", sid, _write_args(store, [3, "t", b"end"], ending="stop", epoch=2)) == ("ok", 4)
    assert _run(store, "end", sid, _write_args(store, [3, "t", b"x"], ending="stop")) == ("ended", 0), (
        "an older epoch's ending is not taken for the one held"
    )
    assert _texts(store, sid) == [None, b"a", b"new", None]


def test_a_stream_whose_owner_is_gone_is_taken_over_and_rebuilt_whole(store) -> None:
    stream, meta = _orphan(store, ["one ", "two"], revival='{"call": {"model": "m"}, "foreground": true}')
    adopted: list[tuple[Stream, dict]] = []
    store.take_over_with(lambda found, record: adopted.append((found, record)) or True)
    _settled(store)
    store.link.commands.hset(keys.OWNERS_KEY, "dead-worker", 1)
    assert store.takeover.orphaned(stream.stream_id, meta)
    assert not store.takeover.orphaned(stream.stream_id, meta), "taken once"
    ((taken, record),) = adopted
    assert record["call"] == {"model": "m"} and taken.retention.foreground
    assert taken.chunks == 2 and taken.result()[0] == "one two" and taken.frames(0, 3) == stream.frames(0, 3)
    assert store._local[stream.stream_id] is taken and taken.created == round(stream.created, 3)
    _write(taken, ["three"])
    _settle(lambda: store.journal.durable(taken) and taken.visible == 4)
    assert _texts(store, stream.stream_id) == [None, b"one ", b"two", b"three"], "written on from the next id"
    assert store.link.commands.hget(keys.LIVE_KEY, stream.stream_id) == store.worker_id.encode()


def test_a_sweep_never_claims_from_this_worker_what_the_live_registry_names_stale(store) -> None:
    """The live registry still names the dead owner of a stream this worker took over (its
    entry is written after the adoption): the next sweep must not claim it again from itself."""
    stream, meta = _orphan(store, ["one "], revival='{"call": {"model": "m"}}')
    adopted: list[Stream] = []
    store.take_over_with(lambda found, record: adopted.append(found) or True)
    _settled(store)
    store.link.commands.hset(keys.OWNERS_KEY, "dead-worker", 1)
    assert store.takeover.orphaned(stream.stream_id, meta)
    store.link.commands.hset(keys.LIVE_KEY, stream.stream_id, "dead-worker")  # as if not yet rewritten
    assert store.duties.end_orphans() == 0
    assert len(adopted) == 1, "one producer: never claimed twice"
    assert store.link.commands.hget(keys.meta_key(stream.stream_id), "epoch") == b"1"


def test_a_stream_taken_back_from_a_worker_that_took_it_stops_the_stale_copy(store) -> None:
    """A -> B -> A: this worker lost a stream (its lease lapsed), the taker died, and this worker
    claims it back while its first copy still runs: that copy is moved away, never written."""
    stale = store.create("cid-b", "m")
    stale.tenure.revival = '{"call": {"model": "m"}}'
    _write(stale, ["one "])
    _settle(lambda: store.journal.durable(stale))
    sid = stale.stream_id
    store.link.commands.hset(keys.meta_key(sid), mapping={"owner": "taker", "epoch": 1})
    store.take_over_with(lambda found, record: True)
    _settled(store)
    store.link.commands.hset(keys.OWNERS_KEY, "taker", 1)
    assert store.takeover.orphaned(sid, {b"owner": b"taker"})
    taken = store._local[sid]
    assert taken is not stale and taken.tenure.epoch == 2 and stale.tenure.moved is not None
    _write(stale, ["stale"])
    _write(taken, ["two"])
    _settle(lambda: store.journal.durable(taken) and taken.visible == 3)
    assert _texts(store, sid) == [None, b"one ", b"two"]


def test_a_stream_that_cannot_be_continued_ends_lost(store) -> None:
    stream, meta = _orphan(store, ["one "], revival='{"call": {}}')
    store.take_over_with(lambda found, record: False)
    _settled(store)
    store.link.commands.hset(keys.OWNERS_KEY, "dead-worker", 1)
    assert store.takeover.orphaned(stream.stream_id, meta)
    assert store.link.commands.hget(keys.meta_key(stream.stream_id), "ending") == b"generation_lost"
    assert stream.stream_id not in store._local


def _send_now(store: RedisStreamStore) -> None:
    """Send what is due as one batch now, as the writer would, without yielding."""
    store.journal._send(store.journal.take())


def test_frames_are_published_once_sent_and_their_replies_are_read_later_in_one_go(store) -> None:
    """Write-ahead: a frame reaches followers only after it was handed to Redis, and only once
    the stream was admitted; a first token goes out without waiting for the earlier reply."""
    stream = store.create("cid-4", "m")
    _write(stream, [])
    _send_now(store)  # the admission
    assert stream.visible == 0 and store.journal.admitting(stream), "not before its admission"
    store.journal._acks.read()
    assert not store.journal.admitting(stream)
    _send_now(store)
    assert stream.visible == 1
    stream.append_chunk("first")
    _send_now(store)
    assert store.journal._pipe.in_flight == 2 and stream.visible == 2
    assert not store.journal._acks.due(), "young replies wait to be read together"
    _settle(lambda: not store.journal._pipe.in_flight)  # read within ACK_IDLE_SECONDS
    assert _texts(store, stream.stream_id) == [None, b"first"]


def test_the_writer_waits_while_a_new_streams_admission_is_in_flight(store) -> None:
    """Frames held until their stream is admitted are not work: the writer waits for the reply
    instead of taking them again and again (a busy loop that held the whole worker up to
    ACK_SECONDS, every new stream's first token with it)."""
    journal, taken = store.journal, []
    take = journal._standing.take
    journal._standing.take = lambda now: taken.append(1) or take(now)  # type: ignore[method-assign]
    stream = store.create("cid-held", "m")
    _write(stream, ["first"])
    ticks = 0
    while not journal._pipe.in_flight or ticks < 20:  # the admission goes out; then 20 turns of the loop
        gevent.sleep(0)
        ticks += 1
    assert journal.admitting(stream) and stream.visible == 0
    assert not journal._standing.has_work(), "held frames are no work until the admission is answered"
    assert len(taken) <= 3, f"the writer took {len(taken)} batches with nothing to send"
    store.admit(stream)
    _settle(lambda: stream.visible == stream.written)


def test_a_batch_behind_one_that_was_lost_is_written_again_from_what_redis_holds(store) -> None:
    stream = store.create("cid-5", "m")
    _write(stream, ["a"])
    _settle(lambda: stream.visible == 2 and store.journal.durable(stream))
    sid = stream.stream_id
    assert _run(store, "write", sid, _write_args(store, [3, "c", b"d"])) == ("gap", 2), "no gap is left"
    stream.append_chunk("b")
    stream.append_chunk("c")
    store.journal._standing._sent[sid] = 3  # as if frame 2 had gone out in a batch that was lost
    store.journal._standing._durable[sid] = 3
    _settle(lambda: stream.visible == 4 and store.journal.durable(stream))
    assert _texts(store, sid) == [None, b"a", b"b", b"c"]


def test_a_stream_redis_lost_is_written_again_whole_and_counted_again(store) -> None:
    stream = store.create("cid-7", "m")
    _write(stream, ["a", "b"])
    _settle(lambda: store.journal.durable(stream) and stream.visible == 3)
    store.link.commands.delete(*keys.stream_keys(stream.stream_id), keys.LIVE_KEY)  # evicted, or Redis emptied
    stream.append_chunk("c")  # the next write finds the hash gone
    _settle(lambda: store.journal.durable(stream) and len(_texts(store, stream.stream_id)) == 4)
    assert _texts(store, stream.stream_id) == [None, b"a", b"b", b"c"]
    assert store.link.commands.hget(keys.meta_key(stream.stream_id), "state") == b"live"
    assert store.link.commands.hget(keys.LIVE_KEY, stream.stream_id) == store.worker_id.encode()
    assert store.link.commands.pttl(keys.events_key(stream.stream_id)) > 0, "every key keeps a TTL"


def test_an_idle_stream_redis_lost_is_found_by_the_owners_check(store) -> None:
    stream = store.create("cid-8", "m")
    _write(stream, ["a"])
    _settle(lambda: store.journal.durable(stream))
    store.link.commands.delete(*keys.stream_keys(stream.stream_id))
    assert store.duties.check_streams() == 1
    _settle(lambda: store.journal.durable(stream) and len(_texts(store, stream.stream_id)) == 2)


def test_out_of_memory_refuses_a_batch_whole_but_lets_endings_and_leases_through(store) -> None:
    stream = store.create("cid-9", "m")
    _write(stream, ["a"])
    _settle(lambda: store.journal.durable(stream))
    sid = stream.stream_id
    used = int(store.link.commands.info("memory")["used_memory"])
    store.link.commands.config_set("maxmemory", max(1, used // 2))
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            _run(store, "write", sid, _write_args(store, [2, "c", b"b"]))
        assert _texts(store, sid) == [None, b"a"], "nothing of a refused batch was written"
        assert _run(store, "end", sid, _write_args(store, [2, "c", b"b", 3, "t", b"end"], ending="stop")) == ("ok", 4)
        store.duties.renew()  # a lease is renewed however full memory is
        assert store.ready()[0] is False and "out of memory" in store.ready()[1]
    finally:
        store.link.commands.config_set("maxmemory", 0)


def test_while_redis_is_down_frames_wait_then_the_outage_ends_the_streams_and_all_is_written_later() -> None:
    server = RedisServer()
    found = None
    try:
        found = _store(server.url, outage_seconds=0.5)
        found.journal.start()
        stream = found.create("cid", "m")
        _write(stream, ["x"])
        found.admit(stream)
        _settle(lambda: stream.visible == 2)
        stream.producer = gevent.spawn(_generating)  # a generation that the outage ends
        server.stop()
        stream.append_chunk("y")  # may go out on the connection Redis had: it is written again later
        _settle(lambda: not found.journal.health.healthy)
        shown = stream.visible
        stream.append_chunk("z")
        gevent.sleep(0.2)
        assert stream.visible == shown, "frames Redis did not take wait while it may come back"
        _settle(lambda: found.journal.health.degraded and stream.cancelled)
        stream.ending = "store_unavailable"
        stream.append(b"id: 4\nevent: error\ndata: {}\n\n", final=True)
        assert stream.visible == 5 and stream.finished, "past the grace, the ending reaches clients at once"
        assert not found.flushed(), "a stopping worker must stay: its clients saw frames Redis lacks"
        server.start()  # empty: the scripts are loaded again, and the stream is written again whole
        _settle(lambda: found.journal.health.healthy and found.journal.durable(stream), seconds=10)
        held = found.link.commands.xrange(keys.events_key(stream.stream_id))
        assert [f.get(b"c") for _, f in held] == [None, b"x", b"y", b"z", None]
        assert found.link.commands.hget(keys.meta_key(stream.stream_id), "ending") == b"store_unavailable"
        _settle(found.flushed)  # the ending's confirmation read too
    finally:
        if found is not None:
            found.close()
        server.stop()


def _generating() -> None:
    with contextlib.suppress(StreamCancelled):
        gevent.sleep(60)


def test_a_follower_elsewhere_ends_with_an_interruption_when_the_stream_is_lost_for_good(store, redis_server) -> None:
    stream = store.create("cid-10", "m")
    _write(stream, ["a"])
    _settle(lambda: store.journal.durable(stream))
    other = _store(redis_server.url)
    try:
        remote = other.get(stream.stream_id)
        remote._patience = 0.5
        store.journal.forget(stream)  # its owner will not write it again
        store.link.commands.delete(*keys.stream_keys(stream.stream_id))
        frames = b"".join(remote.follow(0, 0.2))
    finally:
        other.close()
    events, _ = parse(frames)
    assert [e.event for e in events if e.event != ":comment"] == ["error"]
    assert events[-1].id is None and events[-1].data["error_code"] == "store_unavailable"
    assert events[-1].data["resume_after"] == 0, "the client resumes after the last event it has"


def test_an_unknown_stream_is_not_found_unless_redis_lost_its_keys_moments_ago(store) -> None:
    with pytest.raises(ApiError, match="stream_not_found"):
        store.get("0" * 32)
    store.link.commands.delete(keys.OWNERS_KEY)  # Redis lost the leases: restarted empty, say
    store.duties.renew()
    with pytest.raises(ApiError, match="store_unavailable") as raised:
        store.get("0" * 32)
    assert raised.value.retry_after and raised.value.retry_after <= keys.RECOVERY_SECONDS


def test_redis_down_at_start_up_says_where_and_what_to_do() -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnusable, match=r"Redis at redis://:\*\*\*@127.0.0.1:\d+/0 did not answer") as raised:
        _store(url)
    assert "secret" not in str(raised.value) and "STREAM_STORE=memory" in str(raised.value)


@pytest.mark.parametrize("policy", ["volatile-ttl", "allkeys-lru"])
def test_a_redis_that_may_evict_keys_is_refused_at_start_up_and_fails_ready(store, redis_server, policy) -> None:
    client = store.link.commands
    client.config_set("maxmemory", "1gb")
    client.config_set("maxmemory-policy", policy)
    try:
        with pytest.raises(StoreUnusable, match=f"maxmemory-policy {policy}") as raised:
            _store(redis_server.url)
        assert "noeviction" in str(raised.value) and "docs/scaling.md" in str(raised.value)
        ok, detail, _ = store.ready()
        assert not ok and policy in detail
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 0)
    assert store.ready()[0]


def test_the_call_kept_for_a_takeover_lives_only_while_the_stream_does(store) -> None:
    stream = store.create("cid-k", "m")
    stream.tenure.revival = '{"call": {"model": "m"}}'
    _write(stream, ["one "])
    _settle(lambda: store.journal.durable(stream))
    assert store.link.commands.hget(keys.meta_key(stream.stream_id), "call") == b'{"call": {"model": "m"}}'
    _write(stream, [], end=b"id: 2\nevent: done\ndata: {}\n\n")
    _settle(lambda: stream.finished and store.journal.durable(stream))
    assert store.link.commands.hget(keys.meta_key(stream.stream_id), "call") is None, "deleted with the ending"


def test_a_worker_whose_redis_goes_away_while_it_starts_still_starts(redis_server) -> None:
    """Redis answered the store's check, then went away before the owner's first lease: the
    worker starts all the same (a worker that failed to boot would halt gunicorn's master)."""
    found = _store(redis_server.url)
    ran: list[str] = []
    try:
        found.link.scripts.command = lambda *_: ("PING", "not", "a", "command")  # the renewal fails
        found.duties._keep_lease = lambda: ran.append("lease")  # unpatched: a real listener would block
        found.duties._listen = lambda: ran.append("listen")
        found.duties.start()
        gevent.sleep(0)
        assert ran == ["lease", "listen"], "the lease is kept, and stops listened for, from then on"
    finally:
        found.close()


def test_a_store_that_cannot_hold_streams_yet_tells_clients_no_host_or_user() -> None:
    """The red team's finding: a client's store_unavailable named Redis's host and user; the log
    and /ready carry them, a client gets what it can act on."""
    from app.connect.redis import StoreUnusable
    from app.errors import ApiError
    from app.streaming.redis.deferred import open_store

    reason = "STREAM_STORE=redis, but Redis at redis://chatwait@10.1.2.3:6379 did not answer (ConnectionError)"

    def build():
        raise StoreUnusable(reason)

    store = open_store(build)
    with pytest.raises(ApiError) as refused:
        store.get("s-1")
    detail = refused.value.detail
    assert refused.value.error_code == "store_unavailable" and "10.1.2.3" not in detail and "chatwait@" not in detail
    assert store.ready()[1] == reason, "/ready (the operator's) still says where"
