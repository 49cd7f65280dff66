"""A stream that another worker or instance produces, followed (and stopped) through Redis.

A follower replays the entries after its position, then blocks in XREAD for new ones, with the
same frames as a follower on the producer's own worker. About every second of silence it looks
at the stream and its owner, and tells apart what can happen:
- the owner is gone (its lease lapsed: a crash, SIGKILL, a lost network): the follower's worker
  takes the stream over (`takeover`: the generation goes on there, and the follower reads on),
  or ends it with one terminal `generation_lost` error, in Redis, for every follower;
- Redis lost the stream's keys (evicted, restarted empty, failed over) while its owner lives:
  the owner writes it again, and the follower reads on where it was;
- Redis does not answer, the keys do not come back, or the owner cannot write to Redis: after
  the outage grace the response ends with an `error` event without an id (store_unavailable):
  the stream's own log goes on, and a resume after the last id received continues it once
  Redis is back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import gevent
import redis

from ...errors import ApiError
from ...generation.outcome import Outcome
from ...providers.deltas import ReplyParts, fold_stored
from ..delivery import Progress
from ..lost import lost_ending
from ..wire import WireWriter
from ..wire.sse import KEEPALIVE_FRAME
from . import link as keys
from .delivery import RedisDelivery
from .entries import STATELESS, frames_of, outcome_of_ending, stored_chunks, teach, writer_of
from .link import Link, store_errors
from .orphans import end_if_owner_gone

log = logging.getLogger("chatwait.follow")

LIVENESS_SECONDS = 1.0  # how often a silent follower looks at the stream and its owner
STOP_POLL_SECONDS = 0.02
CATCH_UP_SECONDS = 1.0  # how long a resume waits for an event the client has and Redis not yet
PAGE = 512  # entries per read
# What is done with a live stream whose owner is gone (its id, its hash): taken over, or ended.
Orphaned = Callable[[str, dict[bytes, bytes]], bool]


class RemoteStream:
    """A stream produced elsewhere: its metadata as read from Redis, and a follower's view of it."""

    def __init__(
        self,
        link: Link,
        stream_id: str,
        meta: dict[bytes, bytes],
        last_event_id: int,
        outage_seconds: float,
        orphaned: Orphaned = None,  # type: ignore[assignment]
    ) -> None:
        self._link = link
        self._orphaned = orphaned or (lambda sid, found: end_if_owner_gone(link, sid, found))
        self._meta = meta
        self.stream_id = stream_id
        self.correlation_id = meta.get(b"correlation_id", b"").decode()
        self.model = meta.get(b"model", b"").decode()
        self.owner = meta.get(b"owner", b"").decode()
        self.created = float(meta.get(b"created", b"0"))
        self.finished = meta.get(b"state") != b"live"
        self.client = meta.get(b"client", b"").decode()
        self._writer = writer_of(stream_id, meta)
        self.wire_name = self._writer.name
        self.context = meta.get(b"context", b"")
        self.last_event_id = last_event_id
        self._ending: bytes | None = None
        self._lost = False  # Redis lost the stream after its owner died: it can only end
        self.delivery = RedisDelivery(link, stream_id)
        # How long a follower waits through an outage, or for Redis to get the stream's keys back.
        self._patience = max(outage_seconds, keys.RECOVERY_SECONDS)

    @property
    def writer(self) -> WireWriter:
        """The writer of this stream's events; one that lays them out (the Responses API's) has
        been fed every chunk Redis holds up to the newest event known here."""
        return self._taught(self.last_event_id)

    def _taught(self, through: int) -> WireWriter:
        """The writer, fed the chunks up to event `through` it has not placed yet."""
        writer = self._writer
        learned = getattr(writer, "learned", STATELESS)
        if learned < through:
            with store_errors("reading the stream"):
                found = self._link.commands.xrange(
                    keys.events_key(self.stream_id), keys.entry_id(learned + 1), keys.entry_id(through)
                )
            teach(writer, found)
        return writer

    def catch_up(self, event_id: int) -> None:
        """Wait, at most CATCH_UP_SECONDS, until Redis holds `event_id` of this live stream: its
        owner hands each event to Redis before any client gets it, but a client that resumes
        here at once may still overtake the event on its way, and Redis may have refused it
        (memory full: the owner writes it again). Still missing from a live stream whose owner's
        writes fail: store_unavailable, to try again (else the id was never sent)."""
        deadline = time.monotonic() + CATCH_UP_SECONDS
        lost = False  # the hash is gone: Redis lost the stream (its owner writes it again), not an ending
        while self.last_event_id < event_id and not self.finished and time.monotonic() < deadline:
            gevent.sleep(STOP_POLL_SECONDS)
            with store_errors("reading the stream"):
                pipe = self._link.commands.pipeline(transaction=False)
                pipe.xrevrange(keys.events_key(self.stream_id), count=1)
                pipe.hget(keys.meta_key(self.stream_id), "state")
                newest, state = pipe.execute()
            self.last_event_id = keys.event_id(newest[0][0]) if newest else -1
            lost = state is None
            self.finished = state not in (b"live", None)
        if lost and self.last_event_id < event_id:
            detail = "Redis lost this stream moments ago (an eviction, a restart); its worker writes it again."
            raise ApiError("store_unavailable", detail)
        if self.last_event_id < event_id and not self.finished:
            with store_errors("reading the stream"):
                behind = self.owner in self._link.owners([self.owner]).behind
            if behind:  # Redis refuses its owner's writes: the event may be on the owner's side
                detail = f"Redis does not hold event {event_id} yet: the worker generating this reply writes it late."
                raise ApiError("store_unavailable", detail)

    def result(self) -> tuple[str, Outcome | None, ReplyParts] | None:
        """The text and parts so far and, once ended, how the generation ended, as Redis holds
        them (None: its events are gone). A stream ended by a worker of an earlier release has no
        outcome kept: its ending is read from the hash, without usage."""
        with store_errors("reading the stream"), self._link.commands.pipeline(transaction=False) as pipe:
            pipe.xrange(keys.events_key(self.stream_id))
            pipe.hmget(keys.meta_key(self.stream_id), ["outcome", "ending"])
            entries, (record, ending) = pipe.execute()
        if not entries or b"h" not in entries[0][1]:
            return None
        teach(self._writer, entries)
        text, parts = fold_stored(stored_chunks(entries))
        if b"t" not in entries[-1][1]:
            return text, None, parts
        if record:
            return text, Outcome.from_record(text, json.loads(record), parts), parts
        return text, outcome_of_ending(text, len(entries) - 2, (ending or b"").decode()), parts

    def attach(self) -> None:
        """Followers of a remote stream are counted by the owner through `seen`, not here."""

    def detach(self, now: float) -> None:
        """See attach."""

    def follow(
        self, after_id: int | None, keepalive_seconds: float, writer: object = None, progress: Progress | None = None
    ) -> Iterator[bytes]:
        """The frames after `after_id` (all when None), then live ones until the terminal one, or an
        interruption when Redis stays out of reach (the module docstring); `progress`: see Stream."""
        cursor, progress = (0 if after_id is None else after_id + 1), progress or Progress(after_id)
        wire = self._taught(cursor - 1)  # fed the chunks before `cursor` (its own writes place the rest)
        block = min(keepalive_seconds, LIVENESS_SECONDS)
        last_write = last_check = time.monotonic()
        trouble_since: float | None = None  # since when Redis fails, or the stream's keys are gone
        while True:
            entries = self._read(cursor, block)
            if entries:
                trouble_since = None
                if cursor == 0 and wire.model_first:
                    wire = self._answered_by()
                frames, cursor, ended = frames_of(entries, wire)
                if ended:
                    self._ended(cursor - 1, progress)
                yield frames
                progress.upto, last_write = cursor - 1, time.monotonic()  # written: the server asks for more
                if ended:
                    return
                continue
            now = time.monotonic()
            if now - last_write >= keepalive_seconds:
                yield KEEPALIVE_FRAME
                last_write = now
            if entries is None or now - last_check >= LIVENESS_SECONDS:
                last_check = now
                fine = entries is not None and self._healthy()
                trouble_since = None if fine else (trouble_since or now)
                if self._lost:  # Redis lost the stream and its owner is gone: nobody can go on with it
                    yield self._lost_ending(wire, cursor)
                    return
            if trouble_since is not None and now - trouble_since > self._patience:
                yield self._interruption(cursor - 1, now - trouble_since)
                return
            if entries is None:
                gevent.sleep(block)

    def _ended(self, terminal: int, progress: Progress) -> None:
        self.finished, self.last_event_id = True, max(self.last_event_id, terminal)
        progress.terminal = terminal

    def _answered_by(self) -> WireWriter:
        """The writer, naming the model its priming frame names: a fallback's, written there
        after this follower read the hash (a wire whose priming waits for the answering model)."""
        try:
            model = self._link.commands.hget(keys.meta_key(self.stream_id), "model")
        except redis.RedisError:
            return self._writer  # its reads fail too: the loop sees to it
        if model is not None and model.decode() != self.model:
            self.model = model.decode()
            self._writer = writer_of(self.stream_id, {**self._meta, b"model": model})
        return self._writer

    def _read(self, cursor: int, block: float) -> list[tuple[bytes, dict[bytes, bytes]]] | None:
        """The entries from `cursor` on, waiting up to `block` s for some; None when Redis fails."""
        try:
            position = {keys.events_key(self.stream_id): keys.entry_id(cursor - 1)}
            found = self._link.blocking.xread(position, count=PAGE, block=max(1, int(block * 1000)))
        except redis.RedisError as error:
            log.warning("store_read_failed", extra={"error_type": type(error).__name__})
            self._link.failed()
            return None
        return found[0][1] if found else []

    def _healthy(self) -> bool:
        """Whether the stream can go on being followed: it is in Redis and its owner is there, or
        it has ended. Takes it over (or ends it as lost) when its owner is gone; tells the owner
        (`seen`) that someone follows it. False when Redis fails or lost the stream."""
        try:
            state, owner = self._link.commands.hmget(keys.meta_key(self.stream_id), ["state", "owner"])
            if state is not None and state != b"live":
                return True  # ended: the terminal entry is on its way to this follower
            self.owner = self.owner if owner is None else owner.decode()  # another worker's, once taken over
            owners = self._link.owners([self.owner])
            if state is None and self.owner in owners.gone:
                self._lost = True  # lost by Redis, and its owner is gone too: nobody writes it again
            if state is None or self.owner in owners.stuck:
                return False  # lost by Redis (its owner writes it again), or its owner cannot write
            if self.owner in owners.gone:
                self._orphaned(self.stream_id, {**self._meta, b"owner": self.owner.encode()})
            else:
                self._link.mark(self.stream_id, "seen", int(time.time()))
        except redis.RedisError as error:
            log.warning("store_read_failed", extra={"error_type": type(error).__name__})
            self._link.failed()
            return False
        return True

    def _lost_ending(self, writer: WireWriter, cursor: int) -> bytes:
        """The terminal event (id `cursor`) of a stream Redis lost after its owner died: its events
        are gone from every store, so nothing can continue it (`lost`)."""
        log.warning("generation_lost", extra={"stream_id": self.stream_id, "owner": self.owner, "reason": "store_lost"})
        return lost_ending(writer, cursor - 1)

    def _interruption(self, last_id: int, seconds: float) -> bytes:
        """The id-less error that ends this response when Redis stays out of reach."""
        log.warning("follower_interrupted", extra={"last_event_id": last_id, "seconds": round(seconds, 1)})
        detail = f"Redis did not serve this reply for {seconds:.0f} s; its generation may go on."
        action = f"Resume after event {last_id} in a few seconds: the reply continues where it left off."
        error = ApiError("store_unavailable", detail, action=action)
        return self.writer.interrupted(last_id, error)

    def stop(self, wait_seconds: float) -> bool:
        """Ask the owner to stop the generation and wait up to `wait_seconds` for the stream to
        end; False when it ended otherwise (it had ended, or ended on its own meanwhile)."""
        with store_errors("stopping the stream"):
            if not self._link.mark(self.stream_id, "stop", 1):
                self._refresh()
                return False
            self._refresh()  # its owner now (another worker, once one took it over)
            self._link.commands.publish(keys.stop_channel(self.owner), self.stream_id)
            deadline = time.monotonic() + wait_seconds
            while time.monotonic() < deadline and not self._refresh():
                if self.owner in self._link.gone([self.owner])[1]:
                    self._orphaned(self.stream_id, {**self._meta, b"owner": self.owner.encode()})
                gevent.sleep(STOP_POLL_SECONDS)
        return not self.finished or self._ending == b"cancelled"

    def _refresh(self) -> bool:
        """Read whether the stream has ended, how, and its newest event id; whether it has ended.
        store_unavailable when Redis lost it (its owner writes it again): no ending to report yet."""
        state, last, self._ending, owner = self._link.commands.hmget(
            keys.meta_key(self.stream_id), ["state", "last", "ending", "owner"]
        )
        self.owner = self.owner if owner is None else owner.decode()
        if state is None:
            raise ApiError("store_unavailable", "Redis lost this stream moments ago; its worker writes it again.")
        self.finished = state != b"live"
        if last is not None:
            self.last_event_id = int(last)
        return self.finished
