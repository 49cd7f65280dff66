"""A worker whose Redis store cannot start boots all the same.

Redis may be down, failing over, or unfit to hold streams (too old, or evicting) when a worker
starts: a crash's respawn, a deploy's SIGHUP, a new instance. A worker that failed to boot would
halt gunicorn's master and every healthy worker with it, so the worker boots: until Redis is
fit, every stream operation answers 503 store_unavailable saying what was found and what to do
(so does /ready), /health and wait mode serve, and a greenlet tries again every RETRY_SECONDS.
Once Redis is fit the real store is built, started and serves from then on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent

from ...connect.redis import StoreUnusable
from ...errors import ApiError
from .. import producer
from ..retention import DEFAULT_RETENTION, Retention
from ..store import StreamStore
from ..stream import Stream
from ..view import StreamView
from ..wire import NATIVE, Wire
from .store import RedisStreamStore

log = logging.getLogger("chatwait.store")

RETRY_SECONDS = 1.0
# What a client is told (the reason names Redis's host and user: the log and /ready carry it).
CLIENT_DETAIL = "The service's stream store (Redis) cannot hold streams yet; its operator's log says why."
Adopt = Callable[[Stream, dict[str, Any]], bool]


def open_store(build: Callable[[], RedisStreamStore]) -> StreamStore:
    """The Redis store `build` makes; if Redis cannot hold streams now, one that answers
    store_unavailable until it can."""
    try:
        return build()
    except StoreUnusable as error:
        return DeferredRedisStore(build, str(error))


class DeferredRedisStore(StreamStore):
    """The Redis store of a worker that booted while Redis could not hold streams (see the module)."""

    def __init__(self, build: Callable[[], RedisStreamStore], reason: str) -> None:
        self.clock = time.monotonic
        self._build = build
        self._reason = reason
        self._store: RedisStreamStore | None = None
        self._adopt: Adopt | None = None
        self._retrying: gevent.Greenlet | None = None
        log.error("store_unavailable", extra={"detail": reason, "action": "Until then, streams are refused (503)."})

    def _ready_store(self) -> RedisStreamStore:
        """The real store; store_unavailable, with what was found, until Redis can hold streams."""
        if self._store is None:
            raise ApiError("store_unavailable", CLIENT_DETAIL, retry_after=RETRY_SECONDS)
        return self._store

    def start(self) -> None:
        """Try again in the background until Redis can hold streams."""
        self._retrying = gevent.spawn(self._retry)

    def _retry(self) -> None:
        while self._store is None:
            gevent.sleep(RETRY_SECONDS)
            try:
                store = self._build()
            except StoreUnusable as error:
                if str(error) != self._reason:
                    self._reason = str(error)
                    log.error("store_unavailable", extra={"detail": self._reason})
                continue
            if self._adopt is not None:
                store.take_over_with(self._adopt)
            if not self._accepting:
                store.stop_accepting()
            store.start()
            self._store = store
            log.warning("store_available", extra={"detail": "Redis can hold streams: they are served again."})

    def close(self, timeout: float = 0.0) -> None:
        if self._retrying is not None:
            self._retrying.kill(block=False)
        if self._store is not None:
            self._store.close(timeout)

    def ready(self) -> tuple[bool, str, int]:
        return (False, self._reason, 0) if self._store is None else self._store.ready()

    def take_over_with(self, adopt: Adopt) -> None:
        self._adopt = adopt
        if self._store is not None:
            self._store.take_over_with(adopt)

    def stop_accepting(self) -> None:
        super().stop_accepting()
        if self._store is not None:
            self._store.stop_accepting()

    def create(
        self,
        correlation_id: str,
        model: str,
        wire: Wire = NATIVE,
        client: str = "",
        retention: Retention = DEFAULT_RETENTION,
        stream_id: str | None = None,
    ) -> Stream:
        self._refuse_when_stopping()
        return self._ready_store().create(correlation_id, model, wire, client, retention, stream_id)

    def admit(self, stream: Stream) -> None:
        self._ready_store().admit(stream)

    def new_id(self) -> str:
        return super().new_id() if self._store is None else self._store.new_id()

    def get(self, stream_id: str) -> StreamView:
        return self._ready_store().get(stream_id)

    def stop(self, stream: StreamView, wait_seconds: float = producer.STOP_WAIT_SECONDS) -> bool:
        return self._ready_store().stop(stream, wait_seconds)

    def _drop(self, stream_id: str) -> None:
        self._ready_store()._drop(stream_id)

    def has_room(self) -> bool:
        """A hint for waiters: trying tells what Redis says."""
        return self._store is None or self._store.has_room()

    def _make_room(self) -> None:
        self._ready_store()._make_room()

    def _hold(self, stream: Stream) -> None:
        self._ready_store()._hold(stream)

    def _own(self) -> Iterable[Stream]:
        return () if self._store is None else self._store._own()

    def __len__(self) -> int:
        return 0 if self._store is None else len(self._store)
