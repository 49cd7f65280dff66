"""The Redis store's journal: a worker's new frames go to Redis in batches, ahead of any client.

A producer only marks its stream dirty (no I/O per token). One writer greenlet per worker sends
batches, each one script call per dirty stream with all of its new entries, on a connection of
its own (`RedisPipe`), and only then publishes the frames to the streams' followers on this
worker. So whatever a client has seen was sent to Redis first, and a resume on any worker
continues exactly where it left off. The replies are read together, without a wake-up of their
own: at the next send once the oldest is ACK_SECONDS old, after ACK_IDLE_SECONDS without a send,
or at once when a new stream awaits its registration (the cluster-wide MAX_STREAMS), which its
first batch makes in parallel with its upstream request.

Frames written while the writer is busy (sending, or reading replies that are due) go out
together in its next batch. Under load (the last batch held several streams) a batch also
gathers for up to FLUSH_WINDOW_SECONDS, except for a stream's first frames and its ending.

When Redis fails, the store ends this worker's live streams with store_unavailable; followers
here still get every frame and the ending at once, and the journal keeps retrying, so that
once Redis is back, resumes anywhere see the same stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import gevent
import redis

from ..logs import log_greenlet_failure
from ..server.scheduling import RestartableTimer, Wakeup
from . import redis_link
from .redis_link import Scripts
from .redis_pipe import RedisPipe
from .stream import Stream

log = logging.getLogger("chatwait.journal")

RETRY_FIRST_SECONDS = 0.2
RETRY_MAX_SECONDS = 2.0
FLUSH_WINDOW_SECONDS = 0.001
GATHER_FROM_STREAMS = 2  # a batch of at least this many streams: the next one gathers for the window
MAX_IN_FLIGHT = 64  # batches sent whose replies are not read yet
ACK_SECONDS = 0.05  # replies are read at the next send once their batch is this old
ACK_IDLE_SECONDS = 0.1  # or, when nothing more is sent, this long after the batch
Creation = tuple[int, str, str, str, int, str, str]  # MAX_STREAMS, owner, correlation id, model, created,
# wire format, client
Call = tuple[Stream, int, int]  # a stream, and the frames a batch writes: first .. end - 1


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
        self._pipe = RedisPipe(client, self._confirmed, self._broken)
        self._scripts = scripts
        self._live_ttl_ms, self._done_ttl_ms = ttls_ms
        self._on_failure = on_failure  # Redis failed while healthy: the store ends its live streams
        self._on_lost = on_lost  # Redis refused a stream: (stream, True) over MAX_STREAMS, else no longer live
        self._dirty: dict[str, Stream] = {}
        self._creating: dict[str, Creation] = {}
        self._urgent = False
        self._durable: dict[str, int] = {}  # frames in Redis, per stream with frames still to write
        self._sent: dict[str, int] = {}  # frames sent, per stream with a batch in flight
        self._wakeup = Wakeup()
        self._writer: gevent.Greenlet | None = None
        self._delay = RETRY_FIRST_SECONDS
        self._retry_at = 0.0  # after a failure, the next send waits until then
        self._awaited = 0  # new streams whose admission waits for their registration's reply
        self._ack_now = False  # the replies' timer fired: read them
        self._ack_timer: RestartableTimer | None = None
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

    def forget(self, stream: Stream) -> None:
        """Write nothing more of `stream` (it was deleted)."""
        sid = stream.stream_id
        for pending in (self._dirty, self._creating, self._durable, self._sent):
            pending.pop(sid, None)

    def registering(self, stream: Stream) -> bool:
        """Whether Redis has yet to answer `stream`'s registration."""
        return stream.stream_id in self._creating

    def await_registration(self, stream: Stream, seconds: float) -> None:
        """Wait, at most `seconds`, until Redis has answered `stream`'s registration (or failed)."""
        deadline = time.monotonic() + seconds
        self._awaited += 1
        self._wakeup.notify()
        try:
            while self.registering(stream) and self.healthy and time.monotonic() < deadline:
                stream.wait(max(0.0, deadline - time.monotonic()))
        finally:
            self._awaited -= 1

    def durable(self, stream: Stream) -> bool:
        """Whether Redis has confirmed every frame written to `stream`."""
        sid = stream.stream_id
        confirmed = self._durable.get(sid, stream.written)  # absent once the ending is confirmed
        return sid not in self._dirty and sid not in self._sent and confirmed >= stream.written

    def idle(self) -> bool:
        """Whether nothing is waiting to be written or confirmed."""
        return not self._dirty and not self._durable and not self._sent and not self._pipe.in_flight

    def start(self) -> None:
        """Start the writer greenlet."""
        if self._writer is None:
            self._ack_timer = RestartableTimer(ACK_IDLE_SECONDS)
            self._writer = gevent.spawn(self._run)
            self._writer.link_exception(log_greenlet_failure)

    def close(self) -> None:
        """Stop the writer (whatever is unwritten stays unwritten) and close its connection."""
        if self._writer is not None:
            self._writer.kill(block=False)
            self._writer = None
        if self._ack_timer is not None:
            self._ack_timer.close()
            self._ack_timer = None
        self._pipe.close()

    def _run(self) -> None:
        gather = False
        while True:
            while not self._dirty and not self._replies_due():
                self._wakeup.wait()
            if self._replies_due():
                self._receive()
            if not self._dirty:
                continue
            pause = self._retry_at - time.monotonic()
            if pause > 0:
                gevent.sleep(pause)
                continue
            if gather and not self._urgent:
                with gevent.Timeout(FLUSH_WINDOW_SECONDS, False):  # gather; an urgent write ends it
                    self._wakeup.wait()
            batch = self.take()
            gather = len(batch) >= GATHER_FROM_STREAMS  # busy: worth a window for the next batch
            self._send(batch)

    def _replies_due(self) -> bool:
        """Whether to read the replies in flight now: a registration is awaited, MAX_IN_FLIGHT
        batches are out, or the oldest was sent ACK_SECONDS ago."""
        in_flight = self._pipe.in_flight
        if not in_flight:
            return False
        return bool(self._awaited or self._ack_now or in_flight >= MAX_IN_FLIGHT) or (
            time.monotonic() - self._pipe.oldest >= ACK_SECONDS
        )

    def _receive(self) -> None:
        self._ack_now = False
        self._pipe.receive()
        if not self._pipe.in_flight and self._ack_timer is not None:
            self._ack_timer.stop()

    def _ack_due(self) -> None:
        """ACK_IDLE_SECONDS after a batch went out to an empty pipe: have the replies read."""
        self._ack_now = True
        self._wakeup.notify()

    def take(self) -> dict[str, Stream]:
        """The streams with frames to send, as the next batch."""
        self._urgent = False
        batch, self._dirty = self._dirty, {}
        return batch

    def _send(self, batch: dict[str, Stream]) -> None:
        """Send `batch` in one write, each stream from the first frame not yet sent."""
        calls: list[Call] = []
        for stream in batch.values():
            first = self._sent.get(stream.stream_id, self._durable.get(stream.stream_id, 0))
            if stream.written > first:
                calls.append((stream, first, stream.written))
        if not calls:
            return
        commands = [self._scripts.command("write", _keys(s.stream_id), self._args(s, a, b)) for s, a, b in calls]
        try:
            self._pipe.send(commands, calls)
        except redis.RedisError as error:
            self._requeue(calls)
            self._failed(error)
            return
        if self._pipe.in_flight == 1 and self._ack_timer is not None:
            self._ack_timer.again(self._ack_due)
        for stream, _, end in calls:
            self._sent[stream.stream_id] = end
            if end > stream.visible and self.healthy:
                stream.publish(end)

    def _confirmed(self, context: object, results: list[object]) -> None:
        """A batch's replies: what Redis now holds; what it refused goes again or ends the stream."""
        calls: list[Call] = context  # type: ignore[assignment]
        again: list[Call] = []
        errors: list[Exception] = []
        for call, result in zip(calls, results, strict=True):
            if isinstance(result, Exception) or result == -5:  # -5: an earlier batch failed
                again.append(call)
                errors += [result] if isinstance(result, Exception) else []
            else:
                self._written_to_redis(call[0], call[2], result)
        self._requeue(again)
        if any(isinstance(r, redis.exceptions.NoScriptError) for r in errors):
            self._reload_scripts()  # Redis restarted empty
        elif errors:
            self._failed(errors[0])
        if not again:
            self._delay = RETRY_FIRST_SECONDS
            if not self.healthy:
                self.healthy = True
                log.info("store_recovered")

    def _broken(self, contexts: list[object], error: Exception) -> None:
        """The connection failed with these batches in flight: send their streams again."""
        for calls in contexts:
            self._requeue(calls)  # type: ignore[arg-type]
        self._failed(error)

    def _requeue(self, calls: Iterable[Call]) -> None:
        """Write these streams again with the next batch, from their first frame not in Redis."""
        for stream, _, _ in calls:
            self._sent.pop(stream.stream_id, None)
            self._dirty.setdefault(stream.stream_id, stream)

    def _args(self, stream: Stream, first: int, end: int) -> list[object]:
        final = (stream.ending or "ended") if stream.ended and end == stream.written else "0"
        creation = redis_link.NOT_CREATING
        if first == 0:
            creation = self._creating.get(stream.stream_id, creation)
        args: list[object] = [stream.stream_id, self._live_ttl_ms, self._done_ttl_ms, final, "", *creation]
        for event_id, frame, text in stream.entries(first, end):
            field = "c" if frame is None else ("h" if event_id == 0 else "t")
            args += (event_id, field, text if frame is None else frame)
        return args

    def _written_to_redis(self, stream: Stream, end: int, result: object) -> None:
        sid = stream.stream_id
        registered = self._creating.pop(sid, None) is not None
        if self._sent.get(sid) == end:
            del self._sent[sid]
        if result in (-1, -4):  # no longer live; or never admitted, the cluster being full
            self._durable.pop(sid, None)
            self._dirty.pop(sid, None)
            self._sent.pop(sid, None)
            self._on_lost(stream, result == -4)
            stream.publish(stream.written)  # its followers here get its ending; admission learns
            return
        if stream.ended and end == stream.written:
            self._durable.pop(sid, None)
        elif end > self._durable.get(sid, 0):
            self._durable[sid] = end
        if registered:
            stream.publish(stream.visible)  # wakes the admission waiting for it

    def _failed(self, error: Exception) -> None:
        log.warning("store_write_failed", extra={"error_type": type(error).__name__, "healthy": self.healthy})
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(RETRY_MAX_SECONDS, self._delay * 2)
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
