"""The Redis store (STREAM_STORE=redis): any worker of any instance serves any stream.

A stream's producer runs on the worker that started it (its owner) and writes through the
journal; followers there read the same frames from memory once they are sent to Redis,
followers elsewhere read them from Redis (`RemoteStream`). The owner holds a lease it renews
every second and listens for stops on its channel (`OwnerDuties`). MAX_STREAMS bounds live
streams across the cluster; finished streams expire STREAM_TTL_SECONDS after they end.
Redis may be one server, a primary found through Sentinel, or a Cluster (`connect`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import redis
from redis.crc import key_slot

from ...connect.redis import Topology, disconnect
from ...errors import ApiError
from ...ids import random_id
from .. import producer
from ..abandon import Abandon
from ..abandon import cancel as cancel_abandoned
from ..live import LiveStream
from ..store import DEFAULT_MAX_STORED, StreamStore
from ..stream import Stream
from ..view import StreamView
from . import link as keys
from .checks import linked, not_found, ready
from .delivery import RedisDelivery
from .follow import RemoteStream
from .journal import RedisJournal
from .journal_owner import JournalOwner
from .link import store_errors
from .live import live_streams
from .owner import OwnerDuties
from .pipe import ClusterPipe, RedisPipe
from .stored import StoredResponses, unlist
from .takeover import Adopt, Takeover

log = logging.getLogger("chatwait.store")

LIVE_MARGIN_SECONDS = 600  # a live stream's keys outlive MAX_STREAM_SECONDS by this much, in case all crash
CLOSE_FLUSH_SECONDS = 2.0
ADMIT_SECONDS = keys.COMMAND_TIMEOUT_SECONDS + 1.0


@dataclasses.dataclass(frozen=True)
class RedisStoreSettings:
    """What the Redis store is given: where Redis is, the bounds and the lifetimes of streams."""

    topology: Topology
    max_streams: int
    ttl_seconds: float
    max_stream_seconds: float
    outage_seconds: float = 10.0
    max_stored: int = DEFAULT_MAX_STORED
    rescues: int = 0  # continuations of a stream after an upstream cut it (UPSTREAM_RESCUES)
    takeovers: int = 0  # continuations of a stream after its worker died (UPSTREAM_TAKEOVERS)


class RedisStreamStore(StreamStore):
    """Streams shared through Redis; this worker's own streams are also kept in memory."""

    def __init__(
        self,
        config: RedisStoreSettings,
        clock: Callable[[], float] = time.monotonic,
        abandon: Abandon | None = None,
    ) -> None:
        self.max_streams = config.max_streams
        self.ttl_seconds = config.ttl_seconds
        self.outage_seconds = config.outage_seconds
        self.abandon = abandon
        self.clock = clock
        self.worker_id = random_id()[:12]
        self.topology = config.topology
        live_ttl_ms = int((config.max_stream_seconds + config.ttl_seconds + LIVE_MARGIN_SECONDS) * 1000)
        self.link = linked(config.topology, self.worker_id, live_ttl_ms, int(config.ttl_seconds * 1000))
        self._local: dict[str, Stream] = {}
        self._expired: set[str] = set()  # cancelled for want of followers: deleted once ended
        self._refused: set[str] = set()  # new streams Redis did not admit (MAX_STREAMS)
        self.owner = JournalOwner(self, self._local, self._refused, config.rescues)
        self.link.scripts.on_reload = self.owner.keys_lost
        commands = self.link.commands
        pipe = ClusterPipe(commands, self.link.maps) if config.topology.kind == "cluster" else RedisPipe(commands)
        self._place = pipe.place
        self.journal = RedisJournal(pipe, self.link.scripts, (live_ttl_ms, self.link.done_ttl_ms), self.owner)
        self.takeover = Takeover(self.link, self.journal, self._local, clock, config.takeovers)
        self.takeover.moved = self.owner.moved
        tasks = (self._reap, self._forget_local, self.takeover.orphaned)
        self.duties = OwnerDuties(self.link, self._local, self.journal, tasks, self.ttl_seconds)
        self.stored = StoredResponses(self.link, config.max_stored, self._forget_local)

    def __len__(self) -> int:
        return len(self._local)

    def take_over_with(self, adopt: Adopt) -> None:
        """Continue here, with `adopt`, the live streams of workers that died (takeover); a
        stored response taken over is listed once it ends, as any."""

        def adopted(stream: Stream, record: dict[str, Any]) -> bool:
            if not adopt(stream, record):
                return False
            self._watch_stored(stream)
            return True

        self.takeover.adopt = adopted

    def flushed(self) -> bool:
        return self.journal.idle()  # Redis confirmed every frame written here

    def stop_accepting(self) -> None:
        super().stop_accepting()
        self.takeover.accepting = False

    # The store.

    def has_room(self) -> bool:
        """Whether the cluster holds fewer than MAX_STREAMS live streams (one round trip; True
        when Redis does not answer: trying then tells what it is)."""
        try:
            return self.link.commands.hlen(keys.LIVE_KEY) < self.max_streams
        except redis.RedisError:
            return True

    def _make_room(self) -> None:
        """In an outage, refuse at once; MAX_STREAMS is Redis's to check (`admit`)."""
        if self.journal.health.failing_for() > ADMIT_SECONDS and not self._back():
            raise ApiError("store_unavailable", "Redis has not taken this worker's writes for a while.")

    def new_id(self) -> str:
        """A new stream's id, in a slot a node that answers serves (on a Cluster)."""
        return self._place(super().new_id, lambda stream_id: key_slot(keys.meta_key(stream_id).encode()))

    def _hold(self, stream: Stream) -> None:
        """Own the new stream here; Redis admits it (`admit`) before its first frames."""
        self.journal.create(stream)
        stream.delivery = RedisDelivery(self.link, stream.stream_id)  # what reached its clients, anywhere
        self._local[stream.stream_id] = stream

    def _back(self) -> bool:
        """Whether Redis answers again after an outage (then the journal retries at once)."""
        try:
            self.link.commands.ping()
        except redis.RedisError:
            return False
        self.journal.retry_now()
        return True

    def admit(self, stream: Stream) -> None:
        """Wait until Redis has admitted the new stream: server_busy when the cluster already
        holds MAX_STREAMS live streams, store_unavailable when Redis does not answer. Meanwhile
        the generation has started: its upstream request is not delayed by Redis."""
        self.journal.await_admission(stream, ADMIT_SECONDS)
        refused = stream.stream_id in self._refused
        if not self.journal.admitting(stream) and not refused:
            self._watch_stored(stream)
            return
        self._refused.discard(stream.stream_id)
        self._local.pop(stream.stream_id, None)
        self.journal.forget(stream)
        producer.stop(stream, 0.0)
        if refused:
            raise ApiError("server_busy", f"The cluster holds {self.max_streams} live streams (MAX_STREAMS).")
        raise ApiError("store_unavailable", "Redis did not admit the new stream in time.")

    def get(self, stream_id: str) -> StreamView:
        """This worker's own stream from memory, else the stream as Redis has it."""
        stream = self._local.get(stream_id)
        if stream is not None:
            return stream
        if len(stream_id) > 64:
            raise ApiError("stream_not_found", "The id is unknown, or the stream ended and expired.")
        with store_errors("reading the stream"):
            pipe = self.link.commands.pipeline(transaction=False)
            pipe.hgetall(keys.meta_key(stream_id))
            pipe.xrevrange(keys.events_key(stream_id), count=1)
            meta, newest = pipe.execute()
            if not meta:
                not_found(self.link, self.duties)
        last = keys.event_id(newest[0][0]) if newest else -1
        return RemoteStream(self.link, stream_id, meta, last, self.outage_seconds, self.takeover.orphaned)

    def stop(self, stream: StreamView, wait_seconds: float = producer.STOP_WAIT_SECONDS) -> bool:
        """Stop a stream here, or through its owner's channel when another worker produces it."""
        if isinstance(stream, RemoteStream):
            return stream.stop(wait_seconds)
        assert isinstance(stream, Stream)
        deadline = time.monotonic() + wait_seconds
        stopped = producer.stop(stream, wait_seconds)
        while stream.ended and not stream.finished and time.monotonic() < deadline:
            gevent.sleep(0.005)  # the ending is being written to Redis: answer with its id
        return stopped

    def _forget_local(self, stream_id: str) -> None:
        """Drop this worker's copy of a stream deleted elsewhere; nothing of it is written again."""
        self.stored.forget(stream_id)
        stream = self._local.pop(stream_id, None)
        if stream is not None:
            self.journal.forget(stream)

    def _drop(self, stream_id: str) -> None:
        """Delete a stream that has ended: its keys, its place among its key's stored responses,
        and the owner's copy (told through its channel)."""
        self._forget_local(stream_id)
        with store_errors("deleting the stream"):
            owner, client = self.link.commands.hmget(keys.meta_key(stream_id), "owner", "client")
            if owner is not None and owner.decode() != self.worker_id:
                self.link.commands.publish(keys.stop_channel(owner.decode()), f"forget:{stream_id}")
            self.link.commands.delete(*keys.stream_keys(stream_id))
            self.link.commands.hdel(keys.LIVE_KEY, stream_id)
            unlist(self.link, stream_id, owner, client)

    def _stored_ended(self, stream: Stream) -> None:
        if stream.tenure.moved is None:  # else listed by the worker that took it over
            self.stored.ended(stream)

    def _own(self) -> Iterable[Stream]:
        return self._local.values()

    def start(self) -> None:
        """Start the journal's writer and the owner's duties (lease, stops, expiry)."""
        self.journal.start()
        self.duties.start()

    def close(self, timeout: float = 0.0) -> None:
        """End every live stream, give the journal time to write the endings, then let go of Redis."""
        self._accepting = False
        producers = [stream.producer for stream in self._local.values() if stream.producer is not None]
        self.end_live()
        if timeout > 0:
            gevent.joinall([p for p in producers if not p.dead], timeout=timeout)
        deadline = time.monotonic() + CLOSE_FLUSH_SECONDS
        while not self.journal.idle() and time.monotonic() < deadline:
            gevent.sleep(0.02)
        self.journal.close()
        self.duties.close()
        for client in (self.link.commands, self.link.blocking):
            disconnect(client)

    def ready(self) -> tuple[bool, str, int]:
        """Whether Redis takes writes now and keeps our keys, how it went, and the cluster's live streams."""
        return ready(self.link)

    def live_streams(self, limit: int) -> tuple[int, list[LiveStream]]:
        return live_streams(self.link, limit)

    def _reap(self, seen: Callable[[list[str]], dict[str, float]]) -> None:
        """Drop finished streams that are in Redis from memory; cancel live ones nobody followed
        anywhere for the TTL (`seen`: when remote followers last checked in), or abandoned.
        First, list the stored responses that ended (MAX_STORED_RESPONSES)."""
        try:
            self.stored.list_durable(self.journal.durable, self.ttl_seconds)
        except redis.RedisError as error:  # listed at the next sweep
            extra = {"operation": "listing stored responses", "error_type": type(error).__name__}
            log.warning("store_failed", extra=extra)
        now = self.clock()
        for stream in list(self._local.values()):
            if stream.finished and stream.lifetime.consumers == 0 and self.journal.durable(stream):
                del self._local[stream.stream_id]
                if stream.stream_id in self._expired:  # dropped, as the memory store drops it
                    self._expired.discard(stream.stream_id)
                    self.link.commands.delete(*keys.stream_keys(stream.stream_id))
        idle = [s for s in self._local.values() if not s.finished and s.lifetime.unfollowed_for(now) > self.ttl_seconds]
        abandoned = [] if self.abandon is None else self.abandon.candidates(self._local.values(), now)
        if not idle and not abandoned:
            return
        last_seen = seen(list({stream.stream_id: None for stream in (*idle, *(s for s, _ in abandoned))}))
        for stream, limit in abandoned:
            if time.time() - last_seen.get(stream.stream_id, 0.0) >= limit:
                cancel_abandoned(stream, now - stream.lifetime.idle_since)
        for stream in idle:
            if time.time() - last_seen.get(stream.stream_id, 0.0) < self.ttl_seconds:
                stream.lifetime.idle_since = now
            elif stream.cancel():
                self._expired.add(stream.stream_id)
                log.info("stream_expired", extra={"stream_id": stream.stream_id, "reason": "no_consumer"})
