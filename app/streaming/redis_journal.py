"""The Redis store's journal: a worker's new frames go to Redis in batches, then become visible.

A producer only marks its stream dirty (no I/O per token). One writer greenlet per worker sends,
per round trip on a connection of its own, one script call per dirty stream with all of its new
entries, then publishes them to the stream's followers on this worker. So whatever any client
has seen is in Redis, and a resume on any worker continues exactly where it left off. A new
stream's first batch also registers it (the cluster-wide MAX_STREAMS), in parallel with its
upstream request. Under load (the last batch held several streams) a batch gathers for up to
FLUSH_WINDOW_SECONDS, except for a stream's first frames and its ending, which go at once.

When Redis fails, the store ends this worker's live streams with store_unavailable; followers
here still get every frame and the ending at once, and the journal keeps retrying, so that
once Redis is back, resumes anywhere see the same stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import gevent
import redis

from ..logs import log_greenlet_failure
from ..server.scheduling import Wakeup
from . import redis_link
from .redis_link import Scripts
from .stream import Stream

log = logging.getLogger("chatwait.journal")

RETRY_FIRST_SECONDS = 0.2
RETRY_MAX_SECONDS = 2.0
FLUSH_WINDOW_SECONDS = 0.001
GATHER_FROM_STREAMS = 2  # a batch of at least this many streams: the next one gathers for the window
Creation = tuple[int, str, str, str, int]  # MAX_STREAMS, owner, correlation id, model, created


class RedisJournal:
    """Writes streams' frames to Redis in batches; publishes them to local followers once written."""

    def __init__(
        self,
        client: redis.Redis,
        scripts: Scripts,
        ttls_ms: tuple[int, int],
        on_failure: Callable[[], None],
        on_lost: Callable[[Stream, bool], None],
    ) -> None:
        self._client = client
        self._connection: redis.Connection | None = None  # the writer's own, out of the pool
        self._scripts = scripts
        self._live_ttl_ms, self._done_ttl_ms = ttls_ms
        self._on_failure = on_failure  # Redis failed while healthy: the store ends its live streams
        self._on_lost = on_lost  # Redis refused a stream: (stream, True) over MAX_STREAMS, else no longer live
        self._dirty: dict[str, Stream] = {}
        self._creating: dict[str, Creation] = {}
        self._urgent = False
        self._durable: dict[str, int] = {}  # frames in Redis, per stream with frames still to write
        self._wakeup = Wakeup()
        self._writer: gevent.Greenlet | None = None
        self.healthy = True

    def create(self, stream: Stream, creation: Creation) -> None:
        """Register `stream` in Redis with its first batch."""
        self._creating[stream.stream_id] = creation

    def written(self, stream: Stream) -> None:
        """A stream has new frames: write them with the next batch (at once while Redis is down)."""
        idle = not self._dirty
        self._dirty[stream.stream_id] = stream
        if not self.healthy:
            stream.publish(stream.written)
        if stream.written <= 2 or stream.ended:  # the priming frame, the first token, the end
            self._urgent = True
            self._wakeup.notify()
        elif idle:
            self._wakeup.notify()

    def durable(self, stream: Stream) -> bool:
        """Whether every frame written to `stream` is in Redis."""
        return stream.stream_id not in self._dirty and stream.stream_id not in self._durable

    def idle(self) -> bool:
        """Whether nothing is waiting to be written."""
        return not self._dirty and not self._durable

    def start(self) -> None:
        """Start the writer greenlet."""
        if self._writer is None:
            self._writer = gevent.spawn(self._run)
            self._writer.link_exception(log_greenlet_failure)

    def close(self) -> None:
        """Stop the writer (whatever is unwritten stays unwritten) and close its connection."""
        if self._writer is not None:
            self._writer.kill(block=False)
            self._writer = None
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None

    def _run(self) -> None:
        delay = RETRY_FIRST_SECONDS
        gather = False
        while True:
            if not self._dirty:
                self._wakeup.wait()
            if gather and not self._urgent:
                with gevent.Timeout(FLUSH_WINDOW_SECONDS, False):  # gather; an urgent write ends it
                    self._wakeup.wait()
            self._urgent = False
            batch, self._dirty = self._dirty, {}
            gather = len(batch) >= GATHER_FROM_STREAMS  # busy: worth a window for the next batch
            if self._flush(batch):
                delay = RETRY_FIRST_SECONDS
                continue
            gevent.sleep(delay)
            delay = min(RETRY_MAX_SECONDS, delay * 2)

    def _flush(self, batch: dict[str, Stream]) -> bool:
        """Write `batch` in one round trip; False when it must be tried again."""
        calls = [(s, s.written) for s in batch.values() if s.written > self._durable.get(s.stream_id, 0)]
        if not calls:
            return True
        commands = [self._scripts.command("write", _keys(s.stream_id), self._args(s, end)) for s, end in calls]
        try:
            results = self._send(commands)
        except redis.RedisError as error:
            self._requeue(batch.values())
            self._failed(error)
            return False
        retry = False
        for (stream, end), result in zip(calls, results, strict=True):
            if isinstance(result, Exception):
                retry = True
                self._requeue((stream,))
                if isinstance(result, redis.exceptions.NoScriptError):
                    self._reload_scripts()
                else:
                    self._failed(result)
                continue
            self._written_to_redis(stream, end, result)
        if not retry and not self.healthy:
            self.healthy = True
            log.info("store_recovered")
        return not retry

    def _requeue(self, streams: Iterable[Stream]) -> None:
        """Write these streams again with the next batch (with anything they wrote since)."""
        for stream in streams:
            self._dirty.setdefault(stream.stream_id, stream)

    def _send(self, commands: list[tuple[object, ...]]) -> list[object]:
        """Send the commands in one write on the writer's connection; their replies in order
        (an error reply as its exception). A connection that failed is reopened next time."""
        if self._connection is None:
            self._connection = self._client.connection_pool.make_connection()
        connection = self._connection
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            results: list[object] = []
            for _ in commands:
                try:
                    results.append(connection.read_response())
                except redis.ResponseError as error:
                    results.append(error)
            return results
        except BaseException:
            connection.disconnect()
            raise

    def _args(self, stream: Stream, end: int) -> list[object]:
        first = self._durable.get(stream.stream_id, 0)
        final = (stream.ending or "ended") if stream.ended and end == stream.written else "0"
        creation = self._creating.get(stream.stream_id, redis_link.NOT_CREATING)
        args: list[object] = [stream.stream_id, self._live_ttl_ms, self._done_ttl_ms, final, "", *creation]
        for event_id, frame, text in stream.entries(first, end):
            field = "c" if frame is None else ("h" if event_id == 0 else "t")
            args += (event_id, field, text if frame is None else frame)
        return args

    def _written_to_redis(self, stream: Stream, end: int, result: object) -> None:
        self._creating.pop(stream.stream_id, None)
        if result in (-1, -4):  # no longer live; or never admitted, the cluster being full
            self._durable.pop(stream.stream_id, None)
            self._dirty.pop(stream.stream_id, None)
            self._on_lost(stream, result == -4)
            stream.publish(stream.visible)  # wakes whoever waits for the stream's admission
            return
        if stream.ended and end == stream.written:
            self._durable.pop(stream.stream_id, None)
        else:
            self._durable[stream.stream_id] = end
        if end > stream.visible:
            stream.publish(end)

    def _failed(self, error: Exception) -> None:
        log.warning("store_write_failed", extra={"error_type": type(error).__name__, "healthy": self.healthy})
        if self.healthy:
            self.healthy = False
            for stream in self._dirty.values():
                stream.publish(stream.written)
            self._on_failure()

    def _reload_scripts(self) -> None:
        try:
            self._scripts.load()
        except redis.RedisError as error:
            self._failed(error)


def _keys(stream_id: str) -> list[str]:
    return [redis_link.meta_key(stream_id), redis_link.events_key(stream_id), redis_link.LIVE_KEY]
