"""The Redis store's journal: a worker's new frames go to Redis in batches, ahead of any client.

A producer only marks its stream dirty (no I/O per token). One writer greenlet per worker sends
batches, one script call per dirty stream with all of its new entries, then publishes the frames
to the streams' followers here: whatever a client has seen was sent to Redis first, so a resume
on any worker continues exactly where it left off. Replies are read together (`Acks`), without a wake-up
of their own: at the next send once the oldest is ACK_SECONDS old, after ACK_IDLE_SECONDS
without a send, or at once when a new stream's POST awaits its admission (MAX_STREAMS).

What Redis answers decides what follows (Standing.booked): a stream whose hash is gone is written
again whole and counted again; one behind a lost batch, again from the newest entry Redis holds;
one another worker ended or took over (this worker's lease had lapsed: it wrote with an older
owner or epoch) stops here, and its followers here follow it on from Redis. When Redis
fails or refuses writes the journal retries and frames wait; past REDIS_OUTAGE_SECONDS (Health)
the store ends its live streams with store_unavailable and frames are published at once; once
Redis is back the journal writes them all, so resumes anywhere see what the clients here saw.
On a Cluster the same holds node by node: a failing node's streams wait alone, paused until the
node is tried again, and each ends past the grace while the other nodes' streams go on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
import redis

from ...hub.scheduling import Wakeup
from ..stream import Stream
from .acks import Acks
from .batch import PROBE, Batch, Call
from .health import Health, outages
from .journal_owner import Owner
from .pipe import NodeFailing
from .scripts import Scripts
from .standing import Standing

log = logging.getLogger("chatwait.journal")

FLUSH_WINDOW_SECONDS = 0.001
GATHER_FROM_STREAMS = 2  # a batch of at least this many streams: the next one gathers for the window


class RedisJournal:
    """Writes streams' frames to Redis in batches; publishes them to local followers once sent."""

    def __init__(self, pipe: Any, scripts: Scripts, ttls_ms: tuple[int, int], owner: Owner) -> None:
        self._pipe = pipe
        pipe.bind(self._confirmed, self._broken)
        self._scripts = scripts
        self._batch = Batch(scripts, *ttls_ms, owner.worker_id, owner.max_streams)
        self._owner = owner
        self._standing = Standing()
        self._urgent = False
        self._wakeup = Wakeup()
        self._writer: gevent.Greenlet | None = None
        self.health = Health(owner.outage_seconds, owner.outage)
        self._acks = Acks(pipe, self._wakeup.notify)

    def create(self, stream: Stream) -> None:
        """Register a new stream: admitted first (MAX_STREAMS), then written from its first frame."""
        self._standing.create(stream)
        self._urgent = True
        self._wakeup.notify()

    def written(self, stream: Stream) -> None:
        """A stream has new frames: write them with the next batch (published at once when degraded)."""
        idle = not self._standing.dirty
        self._standing.dirty[stream.stream_id] = stream
        if self.health.degraded or stream.stream_id in self._standing.cut:
            stream.publish(stream.written)
        if stream.written <= 2 or stream.ended:  # the priming frame, the first token, the end
            self._urgent = True
            self._wakeup.notify()
        elif idle:
            self._wakeup.notify()

    def continuing(self, stream: Stream) -> bool:
        """A continuation of `stream` is about to be sent upstream: its owner's word (Redis's count)."""
        return self._owner.continuing(stream)

    def rewrite(self, stream: Stream) -> None:
        """Redis lost `stream`: write it again from its first frame (counted again if live)."""
        if self._standing.rewrite(stream):
            log.warning("store_stream_rewritten", extra={"stream_id": stream.stream_id, "frames": stream.written})
            self.written(stream)

    def adopt(self, stream: Stream) -> None:
        """Write a stream taken over from a dead worker from its next frame (Redis holds the rest)."""
        self._standing.adopt(stream)
        stream.journal_to(self)

    def forget(self, stream: Stream) -> None:
        self._standing.forget(stream)  # write nothing more of it (it was deleted)

    def retry_now(self) -> None:
        """Redis answers again: send what waits without waiting out the backoff."""
        self.health.retry_at = 0.0
        self._wakeup.notify()

    def admitting(self, stream: Stream) -> bool:
        return stream.stream_id in self._standing.admitting  # Redis has yet to admit it

    def await_admission(self, stream: Stream, seconds: float) -> None:
        """Wait, at most `seconds`, until Redis has answered `stream`'s admission (through the
        journal's retries, when a send fails)."""
        deadline = time.monotonic() + seconds
        self._acks.awaited += 1
        self._wakeup.notify()
        try:
            while self.admitting(stream) and time.monotonic() < deadline:
                stream.wait(max(0.0, deadline - time.monotonic()))
        finally:
            self._acks.awaited -= 1

    def durable(self, stream: Stream) -> bool:
        return self._standing.durable(stream)  # Redis confirmed every frame written to it

    def idle(self) -> bool:
        """Whether nothing is waiting to be written or confirmed."""
        return self._standing.idle() and not self._pipe.in_flight

    def start(self) -> None:
        """Start the writer greenlet."""
        if self._writer is None:
            self._acks.start()
            self._writer = gevent.spawn(self._run)

    def close(self) -> None:
        """Stop the writer (whatever is unwritten stays unwritten) and close its connection."""
        if self._writer is not None:
            self._writer.kill(block=False)
            self._writer = None
        self._acks.close()
        self._pipe.close()

    def _run(self) -> None:
        gather = False
        while True:
            while not self._has_work() and not self._acks.due():
                self._wakeup.wait()
            if self._acks.due():
                self._acks.read()
            if not self._has_work():
                continue
            pause = self.health.retry_at - time.monotonic()
            if pause > 0:
                with gevent.Timeout(pause, False):  # the backoff; `retry_now` ends it
                    self._wakeup.wait()
                continue
            if gather and not self._urgent:
                with gevent.Timeout(FLUSH_WINDOW_SECONDS, False):  # gather; an urgent write ends it
                    self._wakeup.wait()
            calls = self.take()
            if not calls and self.health.healthy:
                self._rest()  # nothing due after all: never spin (the loop would hold the worker)
                continue
            gather = len(calls) >= GATHER_FROM_STREAMS  # busy: worth a window for the next batch
            self._send(calls)

    def _rest(self) -> None:
        """Wait for a wake-up, or until a stream paused for its failing node is due again."""
        now = time.monotonic()
        due = self._standing.next_due(now)
        with gevent.Timeout(None if due is None else due - now, False):
            self._wakeup.wait()

    def _has_work(self) -> bool:
        """Something to send; or, while Redis fails, a probe to learn that it is back (a worker
        with nothing to write would otherwise refuse new streams after Redis returned)."""
        return self._standing.has_work() or (not self.health.healthy and not self._pipe.in_flight)

    def take(self) -> list[Call]:
        """The next batch's calls (see Standing.take)."""
        self._urgent = False
        return self._standing.take(time.monotonic())

    def _send(self, calls: list[Call]) -> None:
        """Send `calls` in one write, then publish the frames sent to this worker's followers."""
        commands: list[tuple[object, ...]] = []
        context: list[Call] = []
        for call in calls:
            for command, part in self._batch.commands(call, *self._standing.flags(call)):
                commands.append(command)
                context.append(part)
        if not commands and self.health.healthy:
            return
        if not commands:
            commands, context = [("PING",)], [PROBE]
        self._standing.sending(calls)
        try:
            self._pipe.send(commands, context)
        except redis.RedisError as error:
            self._standing.requeue(calls)
            self._failed(error)
            return
        trusted = self._owner.trusted()
        self._acks.sent(soon=not trusted)
        if not trusted:  # another worker may own them now: shown once Redis takes them
            return
        for kind, stream, _, end in calls:
            if kind == "write" and end > stream.visible:
                stream.publish(end)

    def _confirmed(self, context: list[Call], results: list[object]) -> None:
        """A batch's replies: what Redis now holds; what it refused goes again or ends the stream."""
        again: list[Call] = []
        errors: list[Exception] = []
        for call, result in zip(context, results, strict=True):
            if isinstance(result, NodeFailing):
                self._node_failing(call, result)
            elif isinstance(result, Exception):
                again.append(call)
                errors.append(result)
            elif call[0] == "admit":
                self._admitted(call[1], result == 1)
            elif call[0] == "write":
                again += self._written(call, result)
        self._standing.requeue(again)
        self._after(errors)

    def _after(self, errors: list[Exception]) -> None:
        """Sort a batch's failures: scripts Redis lost, the slot map changing, or an outage."""
        if any(isinstance(error, redis.exceptions.NoScriptError) for error in errors):
            self._reload_scripts()  # Redis restarted or failed over: maybe without our keys
        failures = outages(errors)
        if failures:
            self._failed(failures[0])
        elif not errors:
            self.health.recovered()

    def _node_failing(self, call: Call, error: NodeFailing) -> None:
        """A call whose Cluster node fails: its stream waits alone (the others go on); past the
        outage grace it ends, shown without Redis, and is written once the node answers."""
        if call[0] == "probe":
            return
        stream = call[1]
        if self._standing.node_failing(call, error.retry_at, time.monotonic(), self.health.outage_seconds):
            stream.publish(stream.written)
            self._owner.cut(stream)
        elif call[0] == "admit":
            stream.publish(stream.visible)  # its POST, waiting for the admission, learns of it

    def _admitted(self, stream: Stream, admitted: bool) -> None:
        answer = self._standing.admitted(stream, admitted)
        if answer is None:
            return
        if not answer:
            self._owner.refused(stream)
        elif stream.written:
            self._wakeup.notify()
        stream.publish(stream.visible)  # wakes the POST waiting for the admission

    def _written(self, call: Call, result: Any) -> list[Call]:
        """What one write's answer means: the calls to send again."""
        stream = call[1]
        status = self._standing.booked(call, result)
        if status == "again":
            return [call]
        if status == "ok" and call[3] > stream.visible:  # sent while the lease was in doubt
            stream.publish(call[3])
        if status == "missing":
            self.rewrite(stream)
        elif status in ("ended", "taken"):  # another worker ended or continues it: this worker's lease had lapsed
            self._standing.forget(stream)
            self._owner.moved(stream)
        return []

    def _broken(self, contexts: list[list[Call]], error: Exception) -> None:
        """The connection failed with these batches in flight: send their streams again."""
        for context in contexts:
            self._standing.requeue(context)
        self._failed(error)

    def _failed(self, error: Exception) -> None:
        for stream in self._standing.admitting.values():
            stream.publish(stream.visible)  # a POST waiting for its admission learns of the failure
        healthy = self.health.healthy
        if self.health.failed(error):
            for stream in self._standing.dirty.values():
                stream.publish(stream.written)
            self._owner.outage()
        elif healthy:
            self._owner.failing()

    def _reload_scripts(self) -> None:
        try:
            self._scripts.reload()  # tells the store, which checks what else Redis lost
        except redis.RedisError as error:
            self._failed(error)
