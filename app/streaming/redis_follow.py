"""A stream that another worker or instance produces, followed (and stopped) through Redis.

A follower replays the entries after its position, then blocks in XREAD for new ones, with the
same frames as a follower on the producer's own worker. About every second of silence it checks
that the producer is still there: when the owner's lease has lapsed (a crash or SIGKILL), it
ends the stream with one terminal `generation_lost` error, in Redis, for every follower.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import gevent
import redis

from ..errors import ApiError
from ..providers.base import Usage
from . import redis_link as keys
from .redis_link import Link, store_errors
from .relay import Outcome
from .sse import KEEPALIVE_FRAME
from .wire import DIALECTS, Format, Wire

log = logging.getLogger("chatwait.follow")

LIVENESS_SECONDS = 1.0  # how often a silent follower checks that the producer is alive
OUTAGE_SECONDS = 5.0  # how long a follower keeps trying through a Redis outage
STOP_POLL_SECONDS = 0.02
CATCH_UP_SECONDS = 1.0  # how long a resume waits for an event the client has and Redis not yet
PAGE = 512  # entries per read


class RemoteStream:
    """A stream produced elsewhere: its metadata as read from Redis, and a follower's view of it."""

    def __init__(self, link: Link, stream_id: str, meta: dict[bytes, bytes], last_event_id: int) -> None:
        self._link = link
        self._meta = meta
        self.stream_id = stream_id
        self.correlation_id = meta.get(b"correlation_id", b"").decode()
        self.model = meta.get(b"model", b"").decode()
        self.owner = meta.get(b"owner", b"").decode()
        self.created = float(meta.get(b"created", b"0"))
        self.finished = meta.get(b"state") != b"live"
        self.client = meta.get(b"client", b"").decode()
        self.wire = wire_of(stream_id, meta)
        self.last_event_id = last_event_id
        self._ending: bytes | None = None

    def catch_up(self, event_id: int) -> None:
        """Wait, at most CATCH_UP_SECONDS, until Redis holds `event_id` of this live stream: its
        owner hands each event to Redis before any client gets it, but a client that resumes
        here at once may still overtake the event on its way."""
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while self.last_event_id < event_id and not self.finished and time.monotonic() < deadline:
            gevent.sleep(STOP_POLL_SECONDS)
            with store_errors("reading the stream"):
                pipe = self._link.commands.pipeline(transaction=False)
                pipe.xrevrange(keys.events_key(self.stream_id), count=1)
                pipe.hget(keys.meta_key(self.stream_id), "state")
                newest, state = pipe.execute()
            self.last_event_id = keys.event_id(newest[0][0]) if newest else -1
            self.finished = state != b"live"

    def attach(self) -> None:
        """Followers of a remote stream are counted by the owner through `seen`, not here."""

    def detach(self, now: float) -> None:
        """See attach."""

    def follow(self, after_id: int | None, keepalive_seconds: float) -> Iterator[bytes]:
        """Yield the frames after `after_id` (all when None), then live ones until the terminal one."""
        cursor = 0 if after_id is None else after_id + 1
        block = min(keepalive_seconds, LIVENESS_SECONDS)
        last_write = last_check = time.monotonic()
        outage_since: float | None = None
        while True:
            try:
                entries = self._read(cursor, block)
                outage_since = None
            except redis.RedisError as error:
                outage_since = outage_since or time.monotonic()
                log.warning("store_read_failed", extra={"error_type": type(error).__name__})
                if time.monotonic() - outage_since > OUTAGE_SECONDS:
                    return  # no terminal event: the client resumes from its last id later
                gevent.sleep(block)
                entries = []
            if entries:
                frames, cursor, ended = _frames(entries, self.wire)
                yield frames
                last_write = time.monotonic()
                if ended:
                    self.finished = True
                    return
                continue
            now = time.monotonic()
            if now - last_write >= keepalive_seconds:
                yield KEEPALIVE_FRAME
                last_write = now
            if outage_since is None and now - last_check >= LIVENESS_SECONDS:
                last_check = now
                if not self._still_there():
                    return

    def _read(self, cursor: int, block: float) -> list[tuple[bytes, dict[bytes, bytes]]]:
        found = self._link.blocking.xread(
            {keys.events_key(self.stream_id): keys.entry_id(cursor - 1)}, count=PAGE, block=max(1, int(block * 1000))
        )
        return found[0][1] if found else []

    def _still_there(self) -> bool:
        """Whether the stream still exists; ends it as lost when its owner's lease has lapsed.
        Also tells the owner (`seen`) that someone follows it."""
        pipe = self._link.commands.pipeline(transaction=False)
        pipe.hget(keys.meta_key(self.stream_id), "state")
        pipe.exists(keys.lease_key(self.owner))
        state, owner_alive = pipe.execute()
        if state is None:
            return False
        if state == b"live" and not owner_alive:
            end_if_owner_gone(self._link, self.stream_id, self._meta)
        elif state == b"live":  # (never on an expired hash: that would make a key with no TTL)
            self._link.commands.hset(keys.meta_key(self.stream_id), "seen", int(time.time()))
        return True

    def stop(self, wait_seconds: float) -> bool:
        """Ask the owner to stop the generation and wait up to `wait_seconds` for the stream to
        end; False when it ended otherwise (it had ended, or ended on its own meanwhile)."""
        meta = keys.meta_key(self.stream_id)
        with store_errors("stopping the stream"):
            if self._link.commands.hget(meta, "state") != b"live":
                self._refresh()
                return False
            pipe = self._link.commands.pipeline(transaction=False)
            pipe.hset(meta, "stop", 1)
            pipe.publish(keys.stop_channel(self.owner), self.stream_id)
            pipe.execute()
            deadline = time.monotonic() + wait_seconds
            while time.monotonic() < deadline and not self._refresh():
                if not self._link.commands.exists(keys.lease_key(self.owner)):
                    end_if_owner_gone(self._link, self.stream_id, self._meta)
                gevent.sleep(STOP_POLL_SECONDS)
        return not self.finished or self._ending == b"cancelled"

    def _refresh(self) -> bool:
        """Read whether the stream has ended, how, and its newest event id; whether it has ended."""
        state, last, self._ending = self._link.commands.hmget(
            keys.meta_key(self.stream_id), ["state", "last", "ending"]
        )
        self.finished = state != b"live"
        if last is not None:
            self.last_event_id = int(last)
        return self.finished


def wire_of(stream_id: str, meta: dict[bytes, bytes]) -> Wire:
    """The wire format of a stream as its hash in Redis records it."""
    dialect = meta.get(b"wire", b"").decode()
    fmt = Format(dialect if dialect in DIALECTS else "chatwait")
    correlation_id, model = meta.get(b"correlation_id", b"").decode(), meta.get(b"model", b"").decode()
    return fmt.wire(stream_id, correlation_id, model, float(meta.get(b"created", b"0")))


def _frames(entries: list[tuple[bytes, dict[bytes, bytes]]], wire: Wire) -> tuple[bytes, int, bool]:
    """The SSE bytes of Redis entries, the next event id wanted, and whether the last one ends the stream."""
    out: list[bytes] = []
    ended = False
    event_id = -1
    for entry, fields in entries:
        event_id = keys.event_id(entry)
        text = fields.get(b"c")
        if text is not None:
            out.append(wire.chunk(event_id, text.decode("utf-8", "replace")))
        else:
            ended = b"t" in fields
            out.append(fields[b"t"] if ended else fields[b"h"])
    return b"".join(out), event_id + 1, ended


def end_if_owner_gone(link: Link, stream_id: str, meta: dict[bytes, bytes]) -> bool:
    """End a live stream (`meta`: its hash) whose owner's lease has lapsed with one terminal
    generation_lost error; True when this call ended it (exactly one caller in the cluster does)."""
    owner = meta.get(b"owner", b"").decode()
    created = float(meta.get(b"created", b"0"))
    wire = wire_of(stream_id, meta)
    error = ApiError("generation_lost", "The worker generating this reply stopped renewing its lease.")
    for _ in range(3):  # the owner may have written its last entries meanwhile: read again
        entries = link.commands.xrange(keys.events_key(stream_id))
        chunks = [fields[b"c"].decode("utf-8", "replace") for _, fields in entries if b"c" in fields]
        last = keys.event_id(entries[-1][0]) if entries else -1
        duration_ms = round(max(0.0, time.time() - created) * 1000, 1)
        outcome = Outcome("", len(chunks), Usage(0, 0, estimated=True), duration_ms, None, error=error)
        frames: list[object] = [0, "h", wire.priming()] if last < 0 else []
        ending = wire.terminal(len(chunks), sum(map(len, chunks)), outcome)
        frames += (max(last, 0) + 1, "t", ending)
        args = [stream_id, link.live_ttl_ms, link.done_ttl_ms, "generation_lost", last, *keys.NOT_CREATING, *frames]
        result = link.scripts.run("write", [*_stream_keys(stream_id), keys.lease_key(owner)], args)
        if result != -3:
            if result == 1:
                log.warning("generation_lost", extra={"stream_id": stream_id, "owner": owner, "chunks": len(chunks)})
            return result == 1
    return False


def _stream_keys(stream_id: str) -> list[str]:
    return [keys.meta_key(stream_id), keys.events_key(stream_id), keys.LIVE_KEY]
