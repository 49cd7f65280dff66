"""One member of the pool: its client, its health, the generations open on it, and a generation
wrapper that tells the health what happened (first token, failure, or neither)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from ...config import UpstreamServer
from ...metrics.catalogue import Metrics, NoMetrics
from ..base import Attempt, FirstTokenDeadline, Provider, UpstreamError
from ..call import ChatCall
from ..deltas import Delta
from ..httpapi.client import origin
from .health import KINDS, Health, failure_kind

log = logging.getLogger("chatwait.pool")
UNREACHED = frozenset(("connection", "unavailable", "timeout", "tls"))  # failures that are no answer


class Server:
    """A model server of the pool, as this worker sees it."""

    def __init__(
        self,
        config: UpstreamServer,
        provider: Provider,
        health: Health,
        metrics: Metrics | NoMetrics,
        clock: Callable[[], float] = time.monotonic,
        on_release: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.on_release = on_release  # the pool wakes the requests waiting for room
        self.name = config.name
        self.provider = provider
        self.health = health
        self.metrics = metrics
        self.clock = clock
        self.outstanding = 0
        self.waiting = 0  # requests this worker holds for its room (a server with slots)
        self.continuation = config.continuation  # `message` once it refused a prefill
        self.slots = config.concurrency  # 1 once it preempted a request: it serves one at a time
        self.checked: tuple[bool, str] = (True, "Not checked yet.")
        self.answered = False  # a check or a generation it answered, since this worker started
        self.refusing_since: float | None = None  # its first failure, while it has never answered
        self._shedding = False  # a model's only server refusing part of its requests (`throttle`)
        metrics.server_known(self.name, KINDS)

    def serves(self, model: str) -> bool:
        return self.config.serves(model)

    def has_room(self) -> bool:
        """Whether it takes one more request now (a server with slots holds no more at once)."""
        return self.slots is None or self.outstanding < self.slots

    def load(self) -> float:
        """Least outstanding requests first, weighted: the score this request would give it."""
        return (self.outstanding + 1) / self.config.weight

    def open(self, call: ChatCall, requester: int = 0) -> Attempt:
        """Send the request to this server; its generation reports back to this server's health
        (`requester`: the id of the request, the same for its retries)."""
        probe = self.health.take(self.clock())
        self.count_open(1)
        self.metrics.server_request(self.name)
        try:
            with self.judging(probe, requester):
                inner = self.provider.open(call)
        except BaseException:
            self.count_open(-1)
            self.health.released(probe, self.clock())  # no verdict yet (a failure rested it already)
            raise
        return PooledAttempt(inner, self, probe, requester)

    def admit(self) -> tuple[float, bool] | None:
        """Whether a new request may go to this server (always, unless it is a model's only
        route and sheds load: then how long to wait, and whether it is rate limiting)."""
        throttle = self.health.throttle
        if throttle is None:
            return None
        admitted = throttle.admit()
        if (throttle.ratio > 0) != self._shedding:  # it began or stopped shedding: said once
            self._shedding = throttle.ratio > 0
            self.metrics.server_resting(self.name, self._shedding)
            extra = {"upstream_server": self.name, "shed": round(throttle.ratio, 2)}
            if self._shedding:
                log.warning("upstream_shedding", extra=extra)
            else:
                log.info("upstream_recovered", extra=extra)
        return None if admitted else throttle.wait_seconds()

    @contextlib.contextmanager
    def judging(self, probe: bool, requester: int = 0) -> Iterator[None]:
        """Count a failure inside against this server: an upstream error, or no first token in time."""
        try:
            yield
        except UpstreamError as failure:
            if failure.preempted and (self.slots is not None or self.outstanding > 1):
                failure.log_fields["busy"] = True  # not alone on it, or it is known to preempt
            self.failed(failure_kind(failure), failure.retry_after, probe, requester)
            raise
        except FirstTokenDeadline:
            self.failed("timeout", None, probe, requester)
            raise

    def reached(self, ok: bool) -> None:
        """Its check passed (it answered) or failed (a refusal, while it never answered)."""
        if ok:
            self.answered, self.refusing_since = True, None
        elif not self.answered and self.refusing_since is None:
            self.refusing_since = self.clock()

    def misconfigured(self, now: float, after: float) -> bool:
        """Whether it has refused every attempt (checks too) for `after` seconds or more since
        this worker started: a configuration error, not a passing one (0: never said)."""
        since = self.refusing_since
        return bool(after) and not self.answered and since is not None and now - since >= after

    def succeeded(self, probe: bool) -> None:
        self.reached(True)
        if self.health.succeeded(probe):
            self.metrics.server_resting(self.name, False)
            log.info("upstream_recovered", extra={"upstream_server": self.name})

    def failed(self, kind: str, retry_after: float | None, probe: bool, requester: int = 0) -> None:
        """Count a failure of `kind`; rest the server when it is the server's fault. A server that
        preempted one of this worker's requests while it held another (llama-cpp-python's on its
        defaults does when a request arrives) gets one at a time from then on."""
        self.metrics.server_failure(self.name, kind)
        if kind in UNREACHED:
            self.reached(False)
        if kind == "preempted" and self.slots is None and self.outstanding > 1:
            self.slots = 1
            log.warning("upstream_one_at_a_time", extra={"upstream_server": self.name})
        rest = self.health.failed(kind, retry_after, probe, self.clock(), requester)
        if rest is not None:
            self.metrics.server_resting(self.name, True)
            extra = {"upstream_server": self.name, "failure": kind, "rest_seconds": round(rest, 1)}
            log.warning("upstream_rested", extra=extra)

    def count_open(self, delta: int) -> None:
        """A generation opened on this server (1) or closed (-1)."""
        self.outstanding += delta
        self.metrics.server_open_delta(self.name, delta)
        if delta < 0 and self.on_release is not None:
            self.on_release()

    def report(self, now: float, unlisted: list[str]) -> dict[str, Any]:
        """What /ready shows of this server (never a credential), with the configured models
        its own list does not hold (`unlisted`)."""
        ok, detail = self.checked
        resting = max(0.0, self.health.rest_until - now) if self.health.state != "healthy" else 0.0
        return {
            "name": self.name,
            "url": origin(self.config.url),
            "kind": self.config.kind,
            "models": list(self.config.models),
            "weight": self.config.weight,
            # One story with `ok`: a server its routing counts healthy whose check fails is failing.
            "state": "failing" if not ok and self.health.state == "healthy" else self.health.state,
            "shed": 0.0 if self.health.throttle is None else round(self.health.throttle.shed_ratio(), 2),
            "rest_seconds": round(resting, 1),
            "open": self.outstanding,
            "concurrency": self.slots,
            "ok": ok,
            "detail": detail,
            "listed": None if (names := self.provider.listed_models()) is None else len(names),
            "unlisted": unlisted,
        }


class PooledAttempt(Attempt):
    """A server's generation: the first token (or a good end) is the server's success; a failure
    before or after it counts against the server; closing it frees the server's slot once."""

    def __init__(self, inner: Attempt, server: Server, probe: bool, requester: int = 0) -> None:
        self.inner = inner
        self.server = server
        self.probe = probe
        self.requester = requester
        self.upstream_request_id = inner.upstream_request_id
        self._open = True

    def __iter__(self) -> Iterator[str | Delta]:
        return itertools.chain.from_iterable(self.reads())

    def reads(self) -> Iterator[list[str | Delta]]:
        reads = self.inner.reads()
        with self.server.judging(self.probe, self.requester):
            first = next(reads, None)
            self.server.succeeded(self.probe)
            if first is None:
                return
            yield first
            yield from reads

    @property
    def finish_reason(self) -> str | None:  # type: ignore[override]
        return self.inner.finish_reason

    def finish(self, reason: str) -> None:
        self.inner.finish(reason)

    @property
    def upstream_finish_reason(self) -> str | None:  # type: ignore[override]
        return self.inner.upstream_finish_reason

    @property
    def stop_sequence(self) -> str | None:  # type: ignore[override]
        return self.inner.stop_sequence

    @property
    def usage(self) -> Any:  # type: ignore[override]
        return self.inner.usage

    @property
    def response_id(self) -> str | None:  # type: ignore[override]
        return self.inner.response_id

    def close(self) -> None:
        self.inner.close()
        self._release()

    def stop(self) -> None:
        self.inner.stop()
        self._release()

    def _release(self) -> None:
        if self._open:
            self._open = False
            self.server.count_open(-1)
            self.server.health.released(self.probe, self.server.clock())
