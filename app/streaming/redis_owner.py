"""What a worker does as the owner of its streams in the Redis store, in two greenlets.

- Every second it renews its lease (`owner:<id>`, LEASE_SECONDS); every few seconds it expires
  its own streams and ends the streams of owners whose lease lapsed (`generation_lost`).
- It listens on its stop channel: a DELETE served by another worker publishes the stream id
  there (and sets `stop` in the stream's hash, read again after a reconnect).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import gevent
import redis

from ..logs import log_greenlet_failure
from . import redis_link as keys
from .redis_follow import end_if_owner_gone
from .redis_link import Link
from .stream import Stream

log = logging.getLogger("chatwait.owner")

LEASE_SECONDS = 3.0  # followers declare a stream lost this long after its owner's last renewal
RENEW_SECONDS = 1.0
SWEEP_SECONDS = 2.0
LISTEN_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 2.0

Reaper = Callable[[Callable[[list[str]], dict[str, float]]], None]
Forget = Callable[[str], None]


class OwnerDuties:
    """The lease, the stop listener and the periodic sweeps of one worker."""

    def __init__(self, link: Link, local: dict[str, Stream], reap: Reaper, ttl_seconds: float, forget: Forget) -> None:
        self._link = link
        self._local = local
        self._reap = reap
        self._forget = forget
        self._sweep_every = min(SWEEP_SECONDS, ttl_seconds / 4)
        self._greenlets: list[gevent.Greenlet] = []

    def start(self) -> None:
        """Take the lease at once, then keep it and listen for stops in the background."""
        self.renew()
        for run in (self._keep_lease, self._listen):
            greenlet = gevent.spawn(run)
            greenlet.link_exception(log_greenlet_failure)
            self._greenlets.append(greenlet)

    def close(self) -> None:
        """Stop both greenlets and give the lease up (streams still live are then lost at once)."""
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets.clear()
        with contextlib.suppress(redis.RedisError):  # else it lapses by itself
            self._link.commands.delete(keys.lease_key(self._link.worker))

    def renew(self) -> None:
        """Take or renew this worker's lease now."""
        self._link.commands.set(keys.lease_key(self._link.worker), 1, px=int(LEASE_SECONDS * 1000))

    def _keep_lease(self) -> None:
        swept = time.monotonic()
        while True:
            gevent.sleep(RENEW_SECONDS)
            try:
                self.renew()
                if time.monotonic() - swept >= self._sweep_every:
                    swept = time.monotonic()
                    self._reap(self._last_seen)
                    self.end_orphans()
            except redis.RedisError as error:
                log.warning("store_lease_failed", extra={"error_type": type(error).__name__})

    def _last_seen(self, stream_ids: list[str]) -> dict[str, float]:
        """When a remote follower last checked in on each stream (Unix time; absent: never)."""
        pipe = self._link.commands.pipeline(transaction=False)
        for stream_id in stream_ids:
            pipe.hget(keys.meta_key(stream_id), "seen")
        return {sid: float(seen) for sid, seen in zip(stream_ids, pipe.execute(), strict=True) if seen}

    def end_orphans(self) -> int:
        """End the live streams of every owner whose lease lapsed; how many this call ended."""
        owners = {
            sid.decode(): owner.decode()
            for sid, owner in self._link.commands.hgetall(keys.LIVE_KEY).items()
            if owner.decode() != self._link.worker
        }
        distinct = sorted(set(owners.values()))
        pipe = self._link.commands.pipeline(transaction=False)
        for owner in distinct:
            pipe.exists(keys.lease_key(owner))
        dead = {owner for owner, alive in zip(distinct, pipe.execute(), strict=True) if not alive}
        ended = 0
        for stream_id, owner in owners.items():
            if owner in dead:
                meta = self._link.commands.hgetall(keys.meta_key(stream_id))
                ended += end_if_owner_gone(self._link, stream_id, meta or {b"owner": owner.encode()})
        return ended

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
