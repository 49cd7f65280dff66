"""Taking over the live streams of a worker that died (its lease lapsed): one worker of the
cluster claims each (a compare-and-set on its owner, epoch and newest event in Redis, never from
itself; the claim raises the epoch, which fences the former owner's writes out), rebuilds it from
Redis and continues its generation from the text its clients have (`Adopt`: the services pick
the continuation, as a rescue does). Where none can be made (no call kept, UPSTREAM_TAKEOVERS
spent, a tool call cut, no server that continues) it ends as generation_lost, for every follower.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import redis

from ...providers.deltas import TEXT_KIND, Delta, decode
from ..revival import retention_of
from ..stream import Stream
from . import link as keys
from .delivery import RedisDelivery
from .entries import wire_of
from .journal import RedisJournal
from .link import Link
from .orphans import end_if_owner_gone

log = logging.getLogger("chatwait.takeover")

# Continues a stream taken over here with the call its record holds; False when it cannot be.
Adopt = Callable[[Stream, dict[str, Any]], bool]
Entries = list[tuple[bytes, dict[bytes, bytes]]]
CLAIM_TRIES = 3  # the owner may have written its last entries meanwhile (a pause, not a death)


class Takeover:
    """What this worker does with the live streams of owners that are gone."""

    def __init__(
        self, link: Link, journal: RedisJournal, local: dict[str, Stream], clock: Callable[[], float], most: int
    ) -> None:
        self._link = link
        self._journal = journal
        self._local = local
        self._clock = clock
        self._most = most  # takeovers of one stream (UPSTREAM_TAKEOVERS; 0: none)
        self.adopt: Adopt | None = None  # set by the services; None: streams are ended as lost
        self.moved: Callable[[Stream], None] = lambda stream: None  # the store's: a stale copy stops
        self.accepting = True

    def orphaned(self, stream_id: str, meta: dict[bytes, bytes]) -> bool:
        """Take over a live stream whose owner (in `meta`) is gone, or end it as lost; True when
        this call did either (exactly one worker of the cluster does)."""
        if not self.accepting:
            return False  # this worker stops: left to one that goes on
        if self.adopt is None or self._most <= 0:
            return end_if_owner_gone(self._link, stream_id, meta)
        owner = meta.get(b"owner", b"").decode()
        if owner == self._link.worker:
            return False  # never claimed from itself: a stale owner read (this worker claimed it since)
        for _ in range(CLAIM_TRIES):
            found, entries = self._read(stream_id)
            if found.get(b"owner", b"").decode() != owner:
                return False  # claimed by another worker meanwhile (or ended and gone)
            newest = keys.event_id(entries[-1][0]) if entries else -1
            args = [owner, self._link.worker, self._most, newest, int(found.get(b"epoch", b"0"))]
            status, call, epoch = self._link.scripts.run(
                self._link.commands, "claim", keys.stream_keys(stream_id), args
            )
            status = status.decode()
            if status == "ok":
                taken = {**found, b"owner": self._link.worker.encode(), b"epoch": str(epoch).encode()}
                return self._take(stream_id, taken, entries, call)
            if status in ("none", "spent"):
                return end_if_owner_gone(self._link, stream_id, meta)
            if status == "ended":
                return False
        return False

    def _read(self, stream_id: str) -> tuple[dict[bytes, bytes], Entries]:
        pipe = self._link.commands.pipeline(transaction=False)
        pipe.hgetall(keys.meta_key(stream_id))
        pipe.xrange(keys.events_key(stream_id))
        found, entries = pipe.execute()
        return found, entries

    def _take(self, stream_id: str, meta: dict[bytes, bytes], entries: Entries, call: bytes) -> bool:
        """Continue a stream claimed here (`meta` naming this worker its owner)."""
        record = json.loads(call)
        stale = self._local.get(stream_id)
        if stale is not None:  # this worker owned it before another did: that copy's producer stops
            self.moved(stale)
        stream = rebuilt(stream_id, meta, entries, self._clock(), record)
        stream.delivery = RedisDelivery(self._link, stream_id)
        stream.tenure.revival = call.decode()
        stream.tenure.epoch = int(meta[b"epoch"])
        self._journal.adopt(stream)
        self._local[stream_id] = stream
        extra = {"stream_id": stream_id, "correlation_id": stream.correlation_id, "chunks": stream.chunks}
        if self._adopted(stream, record):
            log.warning("generation_taken_over", extra=extra)
            with contextlib.suppress(redis.RedisError):  # else counted by the owner's next sweep
                self._link.commands.hset(keys.LIVE_KEY, stream_id, self._link.worker)
            if meta.get(b"stop"):  # a client stopped it meanwhile
                stream.cancel()
            return True
        self._local.pop(stream_id, None)
        self._journal.forget(stream)
        return end_if_owner_gone(self._link, stream_id, meta)

    def _adopted(self, stream: Stream, record: dict[str, Any]) -> bool:
        """Whether the services continue the stream (a failure there ends it as lost)."""
        try:
            return self.adopt is not None and self.adopt(stream, record)
        except Exception as error:
            log.exception("takeover_failed", extra={"stream_id": stream.stream_id, "error_type": type(error).__name__})
            return False


def rebuilt(stream_id: str, meta: dict[bytes, bytes], entries: Entries, now: float, record: dict[str, Any]) -> Stream:
    """A stream as Redis holds it, written again from its entries (its writer placing each chunk
    as its first owner's did), with no journal yet: every frame visible."""
    context = meta.get(b"context", b"")
    stream = Stream(
        stream_id,
        meta.get(b"correlation_id", b"").decode(),
        meta.get(b"model", b"").decode(),
        now,
        wire=wire_of(meta),
        client=meta.get(b"client", b"").decode(),
        retention=retention_of(record, context),
        created=float(meta.get(b"created", b"0")),
    )
    pieces: list[str | Delta] = []
    for _, fields in entries:
        if b"h" in fields:
            stream.append(fields[b"h"])
        elif b"t" not in fields:
            ((kind, payload),) = fields.items()
            pieces.append(payload.decode("utf-8", "replace") if kind == TEXT_KIND else decode(kind, payload))
    if pieces:
        stream.append_pieces(pieces)
    return stream
