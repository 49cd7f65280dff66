"""What a worker does as the owner of its streams in the Redis store, in two greenlets.

- Every second it renews its lease (in the `owners` hash, by Redis's clock); every few seconds
  it expires its own streams, takes over the streams of owners that are gone (`takeover`; else
  ends them, `generation_lost`), and keeps the cluster's count of live streams true for its
  own. Every CHECK_SECONDS (at once when
  Redis has lost its scripts: a restart, a failover) it checks that Redis still holds each of
  its streams, and writes again those Redis lost.
- It listens on its stop channel: a DELETE served by another worker publishes the stream id
  there (and sets `stop` in the stream's hash, read again after a reconnect); `forget:<id>`
  drops a stream deleted elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import gevent
import redis

from ...connect.redis import evicted_keys
from ..stream import Stream
from . import link as keys
from .follow import Orphaned
from .journal import RedisJournal
from .link import Link

log = logging.getLogger("chatwait.owner")

SWEEP_SECONDS = 2.0
CHECK_SECONDS = 10.0  # how often Redis is asked whether it still holds this worker's streams
LISTEN_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 2.0
LEASE_GRACE_SECONDS = keys.LEASE_SECONDS  # after a lapse, followers here see only what Redis took

Reaper = Callable[[Callable[[list[str]], dict[str, float]]], None]
Forget = Callable[[str], None]


class OwnerDuties:
    """The lease, the stop listener and the periodic sweeps of one worker."""

    def __init__(
        self,
        link: Link,
        local: dict[str, Stream],
        journal: RedisJournal,
        tasks: tuple[Reaper, Forget, Orphaned],
        ttl_seconds: float,
    ) -> None:
        self._link = link
        self._local = local
        self._journal = journal
        self._reap, self._forget, self._orphaned = tasks
        self._sweep_every = min(SWEEP_SECONDS, ttl_seconds / 4)
        self._checked = time.monotonic()
        self._renewed = False  # renewed once: a lease found gone afterwards means Redis lost it
        self._renewed_at = 0.0  # when the lease was last renewed (monotonic)
        self._lapsed_at = -LEASE_GRACE_SECONDS  # when this worker last found it had not renewed in time
        self._evicted: int | None = None  # keys Redis had evicted at the last sweep
        self._greenlets: list[gevent.Greenlet] = []
        self._orphans: gevent.Greenlet | None = None  # the sweep of gone owners' streams, while it runs

    def start(self) -> None:
        """Take the lease at once (Redis may have gone since the store was checked: then the
        next renewal takes it), then keep it and listen for stops in the background."""
        try:
            self.renew()
        except redis.RedisError as error:  # a worker boots whatever Redis does
            log.warning("store_lease_failed", extra={"error_type": type(error).__name__})
            self._link.failed()
        for run in (self._keep_lease, self._listen):
            greenlet = gevent.spawn(run)
            self._greenlets.append(greenlet)

    def close(self) -> None:
        """Stop both greenlets and give the lease up (streams still live are then lost at once)."""
        for greenlet in (*self._greenlets, *([self._orphans] if self._orphans is not None else [])):
            greenlet.kill(block=False)
        self._greenlets.clear()
        with contextlib.suppress(redis.RedisError):  # else it lapses by itself
            self._link.commands.hset(keys.OWNERS_KEY, self._link.worker, 0)

    def check_soon(self) -> None:
        """Redis may have lost keys: check this worker's streams at the next sweep."""
        self._checked = 0.0

    def renew(self, lost: bool = False) -> None:
        """Take or renew this worker's lease now (a few bytes: allowed when memory is full);
        with `lost`, also record that Redis lost data (a resume of an unknown stream is then
        told to come back rather than that it does not exist)."""
        now = time.monotonic()
        if self._renewed and now - self._renewed_at > keys.LEASE_SECONDS - keys.RENEW_SECONDS:
            self._lapsed_at = now  # stalled (a pause, a stop) or cut off: its streams may be taken over
        health = self._journal.health
        writes = 2 if health.degraded else (0 if health.healthy else 1)
        args = [self._link.worker, int(keys.LEASE_SECONDS * 1000), 2 if lost else int(self._renewed), writes]
        renewal = self._link.scripts.command("renew", [keys.OWNERS_KEY], args)
        try:
            found_lost = self._link.commands.execute_command(*renewal)
        except redis.exceptions.NoScriptError:
            self._link.scripts.reload()  # Redis restarted, or failed over: tells the store
            found_lost = self._link.commands.execute_command(*renewal)
        if found_lost:
            self.check_soon()  # Redis lost this worker's lease: and its streams?
        self._renewed, self._renewed_at = True, now

    def trusted(self) -> bool:
        """Whether this worker's lease surely held all along lately: else another worker may have
        taken its streams over, and its followers see frames only once Redis took them."""
        now = time.monotonic()
        fresh = now - self._renewed_at < keys.LEASE_SECONDS - keys.RENEW_SECONDS
        return fresh and now - self._lapsed_at > LEASE_GRACE_SECONDS

    def _keep_lease(self) -> None:
        swept = time.monotonic()
        while True:
            gevent.sleep(keys.RENEW_SECONDS)
            try:
                self.renew()
                if time.monotonic() - swept >= self._sweep_every:
                    swept = time.monotonic()
                    self._reap(self._last_seen)
                    self._watch_evictions()
                    self._sweep_orphans()
                if time.monotonic() - self._checked >= CHECK_SECONDS:
                    self._checked = time.monotonic()
                    self.check_streams()
            except redis.RedisError as error:
                log.warning("store_lease_failed", extra={"error_type": type(error).__name__})
                self._link.failed()

    def evicted_since_sweep(self) -> bool:
        """Whether Redis has evicted keys since this worker's last sweep looked."""
        return self._evicted is not None and evicted_keys(self._link.commands) > self._evicted

    def _watch_evictions(self) -> None:
        """Redis evicted keys since the last sweep (someone let it): they may be ours."""
        evicted = evicted_keys(self._link.commands)
        if self._evicted is not None and evicted > self._evicted:
            log.warning("store_keys_evicted", extra={"keys": evicted - self._evicted})
            self.check_soon()
            self.renew(lost=True)
        self._evicted = evicted

    def _last_seen(self, stream_ids: list[str]) -> dict[str, float]:
        """When a remote follower last checked in on each stream (Unix time; absent: never)."""
        pipe = self._link.commands.pipeline(transaction=False)
        for stream_id in stream_ids:
            pipe.hget(keys.meta_key(stream_id), "seen")
        return {sid: float(seen) for sid, seen in zip(stream_ids, pipe.execute(), strict=True) if seen}

    def _sweep_orphans(self) -> None:
        """Take over the streams of owners that are gone in a greenlet of its own: rebuilding them
        must not hold up this worker's own renewals (one sweep at a time)."""
        if self._orphans is not None and not self._orphans.dead:
            return
        self._orphans = gevent.spawn(self._end_orphans_logged)

    def _end_orphans_logged(self) -> None:
        try:
            self.end_orphans()
        except redis.RedisError as error:
            log.warning("store_lease_failed", extra={"error_type": type(error).__name__})
            self._link.failed()

    def end_orphans(self) -> int:
        """Take over (or end as lost) the live streams of every owner that is gone, and keep the
        count of live streams true for this worker's; how many streams this call took or ended."""
        live = {sid.decode(): owner.decode() for sid, owner in self._link.commands.hgetall(keys.LIVE_KEY).items()}
        self._count_own(live)
        others = sorted({owner for owner in live.values() if owner != self._link.worker})
        if not others:
            return 0
        _, gone = self._link.gone(others)
        ended = 0
        for stream_id, owner in live.items():
            if owner in gone:  # the owner found gone is the one claimed from (the hash may name a newer one)
                meta = self._link.commands.hgetall(keys.meta_key(stream_id))
                ended += self._orphaned(stream_id, {**meta, b"owner": owner.encode()})
        return ended

    def _count_own(self, live: dict[str, str]) -> None:
        """Count this worker's live streams in `live` (Redis may have lost it), and only those."""
        admitting = self._journal.admitting
        own = {sid for sid, stream in self._local.items() if not stream.finished and not admitting(stream)}
        counted = {sid for sid, owner in live.items() if owner == self._link.worker}
        missing = own - counted if self.trusted() else set()  # after a lapse some may be another's now
        if not missing and not counted - own:
            return
        pipe = self._link.commands.pipeline(transaction=False)
        for sid in counted - own:
            pipe.hdel(keys.LIVE_KEY, sid)
        for sid in missing:
            pipe.hset(keys.LIVE_KEY, sid, self._link.worker)
        pipe.execute()

    def check_streams(self) -> int:
        """Write again every stream of this worker whose keys Redis lost; how many."""
        streams = list(self._local.values())
        if not streams:
            return 0
        pipe = self._link.commands.pipeline(transaction=False)
        for stream in streams:
            pipe.exists(keys.meta_key(stream.stream_id))
        lost = [stream for stream, held in zip(streams, pipe.execute(), strict=True) if not held]
        for stream in lost:
            self._journal.rewrite(stream)
        return len(lost)

    def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._link.commands.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(keys.stop_channel(self._link.worker))
                self._stop_flagged()  # stops sent while this worker was not listening
                delay = 0.1
                while True:
                    message = pubsub.get_message(timeout=LISTEN_SECONDS)
                    if message is not None and message.get("type") == "message":
                        self._heard(message["data"].decode("ascii", "replace"))
            except redis.RedisError as error:
                log.warning("store_listen_failed", extra={"error_type": type(error).__name__})
                self._link.failed()
                gevent.sleep(delay)
                delay = min(RECONNECT_MAX_SECONDS, delay * 2)
            finally:
                pubsub.close()

    def _stop_flagged(self) -> None:
        live = [stream for stream in self._local.values() if not stream.finished]
        if not live:
            return
        pipe = self._link.commands.pipeline(transaction=False)
        for stream in live:
            pipe.hget(keys.meta_key(stream.stream_id), "stop")
        for stream, flag in zip(live, pipe.execute(), strict=True):
            if flag:
                self._stop(stream.stream_id)

    def _heard(self, message: str) -> None:
        """A message on this worker's channel: a stream id to stop, or `forget:<id>` (the stream
        was stopped and deleted elsewhere: drop this worker's copy)."""
        command, _, stream_id = message.rpartition(":")
        if command == "forget":
            self._forget(stream_id)
        else:
            self._stop(stream_id)

    def _stop(self, stream_id: str) -> None:
        stream = self._local.get(stream_id)
        if stream is not None and stream.cancel():
            log.info("stop_received", extra={"stream_id": stream_id, "correlation_id": stream.correlation_id})
