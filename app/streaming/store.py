"""Where streams live between requests: the store interface and its in-memory implementation.

A store keeps streams by id for resumes and stops, bounded: it never evicts a stream that is
still producing, refusing new ones instead (`503 server_busy`), and it expires streams after
their TTL. The memory store holds them in this worker's memory.
"""

from __future__ import annotations

import abc
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import gevent

from ..errors import ApiError
from ..generation.cancel import STOPPING_DETAIL, restarting
from ..ids import random_id
from . import producer
from .abandon import Abandon
from .abandon import cancel as cancel_abandoned
from .live import LiveStream, newest
from .stored import StoredIndex
from .stream import DEFAULT_RETENTION, Journal, Retention, Stream
from .view import StreamView
from .wire import NATIVE, Wire

log = logging.getLogger("chatwait.store")

DEFAULT_MAX_STORED = 1000  # MAX_STORED_RESPONSES


class StreamStore(abc.ABC):
    """What the API needs from a stream store."""

    clock: Callable[[], float]
    journal: Journal | None = None  # where a stream's frames go before its followers see them (Redis)
    worker_id: str = "local"
    _accepting = True  # until `stop_accepting`

    @abc.abstractmethod
    def __len__(self) -> int:
        """How many streams the store holds."""

    def stop(self, stream: StreamView, wait_seconds: float = producer.STOP_WAIT_SECONDS) -> bool:
        """Stop a stream's generation and wait for it to end; False if it had ended."""
        assert isinstance(stream, Stream)
        return producer.stop(stream, wait_seconds)

    def forget(self, stream: StreamView) -> bool:
        """Stop a stream (as `stop`) and delete it: later resumes get stream_not_found."""
        stopped = self.stop(stream)
        self._drop(stream.stream_id)
        return stopped

    @abc.abstractmethod
    def _drop(self, stream_id: str) -> None:
        """Delete a stream that has ended."""

    def admit(self, stream: Stream) -> None:
        """Confirm a new stream whose generation has started (the Redis store registers it
        meanwhile); raises ApiError when it cannot be kept, after stopping its generation. A
        stored response is counted against its key's MAX_STORED_RESPONSES once it has ended."""
        self._watch_stored(stream)

    def _watch_stored(self, stream: Stream) -> None:
        """Have a stored response's end counted (`_stored_ended`)."""
        if stream.retention.stored and stream.producer is not None:
            stream.producer.link(lambda _: self._stored_ended(stream))

    def _stored_ended(self, stream: Stream) -> None:
        """A stored response's generation has ended (the Redis store counts it once it is durable)."""

    def take_over_with(self, adopt: Callable[[Stream, dict[str, Any]], bool]) -> None:
        """Continue here, with `adopt`, the streams of workers that died (a shared store's; the
        memory store's streams die with their worker)."""

    def ready(self) -> tuple[bool, str, int]:
        """Whether the store can serve streams now, why not, and how many live streams it
        counts (this worker's here; the whole cluster's in Redis)."""
        return True, "In this worker's memory.", self.live()

    def create(
        self,
        correlation_id: str,
        model: str,
        wire: Wire = NATIVE,
        client: str = "",
        retention: Retention = DEFAULT_RETENTION,
        stream_id: str | None = None,
    ) -> Stream:
        """A new, empty stream in wire format `wire`, started by `client` (a key digest, or ""),
        kept as `retention` says (its id chosen here unless given). ApiError when the store cannot
        take it now (`_make_room`), and service_restarting once the worker stops."""
        self._refuse_when_stopping()
        self._make_room()
        stream_id = stream_id or self.new_id()
        stream = Stream(stream_id, correlation_id, model, self.clock(), self.journal, wire, client, retention)
        self._hold(stream)
        return stream

    def new_id(self) -> str:
        """A new stream's id."""
        return random_id()

    @abc.abstractmethod
    def has_room(self) -> bool:
        """Whether a new stream would find a slot now (MAX_STREAMS): a hint, for waiters."""

    @abc.abstractmethod
    def _make_room(self) -> None:
        """Make room for a new stream, or refuse it with ApiError."""

    @abc.abstractmethod
    def _hold(self, stream: Stream) -> None:
        """Keep a new stream."""

    @abc.abstractmethod
    def get(self, stream_id: str) -> StreamView:
        """The stream with this id; ApiError(stream_not_found) when it is unknown or expired."""

    @abc.abstractmethod
    def _own(self) -> Iterable[Stream]:
        """The streams whose generation runs in this worker."""

    def live(self) -> int:
        """How many of this worker's streams are still generating."""
        return sum(1 for stream in self._own() if not stream.finished)

    def live_streams(self, limit: int) -> tuple[int, list[LiveStream]]:
        """How many streams are generating, and the `limit` newest of them (this worker's here;
        the whole cluster's in Redis)."""
        found = [
            LiveStream(s.stream_id, s.model, s.wire_name, s.client, s.created, s.visible, self.worker_id)
            for s in self._own()
            if not s.finished
        ]
        return len(found), newest(found, limit)

    def flushed(self) -> bool:
        """Whether every frame shown to this worker's clients is kept where other workers can
        read it (always, in memory: nobody else reads it)."""
        return True

    def stop_accepting(self) -> None:
        """Refuse new streams from now on (ApiError(service_restarting)): the worker stops."""
        self._accepting = False

    def _refuse_when_stopping(self) -> None:
        if not self._accepting:
            raise ApiError("service_restarting", STOPPING_DETAIL)

    def end_live(self) -> list[gevent.Greenlet]:
        """End every stream still generating here with a terminal service_restarting error; their producers."""
        return [stream.producer for stream in list(self._own()) if stream.cancel(restarting())]

    @abc.abstractmethod
    def start(self) -> None:
        """Start background work (expiry)."""

    @abc.abstractmethod
    def close(self, timeout: float = 0.0) -> None:
        """Stop background work and every live stream, waiting up to `timeout` s for them to end."""


class MemoryStreamStore(StreamStore):
    """Streams by id in this process: bounded, LRU among finished streams, expired after `ttl_seconds`."""

    def __init__(
        self,
        max_streams: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        abandon: Abandon | None = None,
        max_stored: int = DEFAULT_MAX_STORED,
    ) -> None:
        self.max_streams = max_streams
        self.ttl_seconds = ttl_seconds
        self.abandon = abandon
        self.clock = clock
        self._streams: OrderedDict[str, Stream] = OrderedDict()
        self._stored = StoredIndex(max_stored)
        self._reaper: gevent.Greenlet | None = None

    def __len__(self) -> int:
        return len(self._streams)

    def has_room(self) -> bool:
        return len(self._streams) < self.max_streams or any(
            stream.finished and stream.lifetime.consumers == 0 for stream in self._streams.values()
        )

    def _make_room(self) -> None:
        """Evict the least recently used finished stream when full; ApiError(server_busy) when
        every stream held is still live: those are never evicted."""
        if len(self._streams) >= self.max_streams and not self._evict_one_finished():
            raise ApiError("server_busy", f"All {self.max_streams} stream slots (MAX_STREAMS) hold live streams.")

    def _hold(self, stream: Stream) -> None:
        self._streams[stream.stream_id] = stream

    def get(self, stream_id: str) -> Stream:
        """The stream with this id (marked recently used); ApiError(stream_not_found) otherwise."""
        stream = self._streams.get(stream_id)
        if stream is None:
            raise ApiError("stream_not_found", "The id is unknown, or the stream ended and expired.")
        self._streams.move_to_end(stream_id)
        return stream

    def _drop(self, stream_id: str) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._stored.discard(stream.client, stream_id)

    def _evict_one_finished(self) -> bool:
        for stream_id, stream in self._streams.items():
            if stream.finished and stream.lifetime.consumers == 0:
                self._drop(stream_id)
                return True
        return False

    def _stored_ended(self, stream: Stream) -> None:
        """Count a finished stored response; drop its key's oldest ones over MAX_STORED_RESPONSES."""
        if self._streams.get(stream.stream_id) is not stream:
            return  # dropped meanwhile
        for stream_id in self._stored.add(stream.client, stream.stream_id):
            self._streams.pop(stream_id, None)

    def reap(self) -> int:
        """Drop finished streams older than the TTL; cancel and drop live ones unfollowed for the TTL;
        cancel (and keep) abandoned ones. How many were dropped."""
        now = self.clock()
        expired = [
            stream
            for stream in self._streams.values()
            if (stream.finished and now - stream.lifetime.finished_at > stream.retention.kept_for(self.ttl_seconds))
            or (not stream.finished and stream.lifetime.unfollowed_for(now) > self.ttl_seconds)
        ]
        for stream in expired:
            self._drop(stream.stream_id)
            if stream.cancel():
                log.info(
                    "stream_expired",
                    extra={
                        "correlation_id": stream.correlation_id,
                        "stream_id": stream.stream_id,
                        "reason": "no_consumer",
                    },
                )
        if self.abandon is not None:
            for stream, _ in self.abandon.candidates(self._streams.values(), now):
                cancel_abandoned(stream, now - stream.lifetime.idle_since)
        return len(expired)

    def _own(self) -> Iterable[Stream]:
        return self._streams.values()

    def start(self) -> None:
        """Run `reap` periodically in a background greenlet (a few times per TTL)."""
        if self._reaper is None:
            every = min(5.0, self.ttl_seconds / 4, self.abandon.shortest / 4 if self.abandon else 5.0)
            self._reaper = gevent.spawn(self._reap_forever, every)

    def _reap_forever(self, interval: float) -> None:
        while True:
            gevent.sleep(interval)
            self.reap()

    def close(self, timeout: float = 0.0) -> None:
        """Stop the reaper; end every live stream and wait up to `timeout` s for their producers."""
        self._accepting = False
        if self._reaper is not None:
            self._reaper.kill(block=False)
            self._reaper = None
        self.end_live()
        stopping = [s.producer for s in self._streams.values() if s.producer is not None and not s.producer.dead]
        if stopping and timeout > 0:
            gevent.joinall(stopping, timeout=timeout)
