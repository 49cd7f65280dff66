"""Opening a generation's upstream until its first piece: retries of what may be retried (with
backoff and jitter, honouring Retry-After; at once on another server of a pool; a busy server's
preemption apart from UPSTREAM_RETRIES), fallback models
(UPSTREAMS_FILE's or the request's) and the first-token deadlines (TIMEOUT_SECONDS for it all,
UPSTREAM_ATTEMPT_SECONDS for one attempt, 10 s by default where a fallback model could answer).
An attempt that sends no first token in time is never tried again on its server."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

import gevent

from ..config import Settings
from ..metrics.catalogue import Metrics
from ..providers.base import Attempt, FirstTokenDeadline, Provider, UpstreamError, refusal
from ..providers.call import ChatCall, Route
from ..providers.deltas import REFUSAL, Delta
from ..traces import Parent
from ..traces import enabled as traces_enabled
from . import backoff
from .attempts import Attempts, requested
from .cancel import StreamCancelled

log = logging.getLogger("chatwait.relay")

# The first-token limit of one attempt where a fallback model could answer instead
# (UPSTREAM_ATTEMPT_SECONDS unset): about what gateways' users are advised to set. Not where only
# other servers of the model could: a busy self-hosted pool queues first tokens longer than that.
ATTEMPT_SECONDS = 10.0
# Retries after a busy server preempted the request before its first token (`UpstreamError.busy`),
# apart from UPSTREAM_RETRIES: busy is not sick, and a server that does fail later still gets its
# failover. A request ended early on a server alone with it counts as a failure.
MAX_BUSY_RETRIES = 8


# An opened generation: it, its first read of pieces (None: the reply has none) and the rest
# (`Attempt.reads`).
Opened = tuple[Attempt, list[str | Delta] | None, Iterator[list[str | Delta]]]


class Ended(Attempt):
    """An attempt with no upstream, an empty reply that ends at once as `finish_reason` says: a
    warmup's (`stop`); a reply cut after its text used max_tokens (`length`, as the upstream
    would have said had it lived); a refusal no fallback could continue (`content_filter`)."""

    def __init__(self, finish_reason: str) -> None:
        self.finish_reason = finish_reason

    def __iter__(self) -> Iterator[str | Delta]:
        return iter(())

    def close(self) -> None:
        pass


class Opener:
    """Opens one generation's upstream: `call` names the model that answers (a fallback's once
    one does), `route` the server of the current attempt (a pool's), named in the log lines;
    `attempts` keeps every attempt (its span a child of `parent`, the request's)."""

    def __init__(
        self,
        provider: Provider,
        settings: Settings,
        metrics: Metrics,
        call: ChatCall,
        route: Route,
        parent: Parent = None,
    ) -> None:
        self.provider = provider
        self.attempts = Attempts(parent, provider.name, requested(call) if traces_enabled() else {})
        self.settings = settings
        self.metrics = metrics
        self.call = call
        self.route = route
        if route.affinity is None:  # a takeover's, or one admitted without a server
            route.affinity = provider.affinity(call)
        self.preemptions = 0  # replies a busy server preempted mid-answer, continued so far
        # The fallback models not tried yet (the request's, else UPSTREAMS_FILE's), in order.
        self.spare = list(call.fallbacks if call.fallbacks is not None else settings.fallbacks_of(call.model))

    def open_routes(self, slot: Any) -> Opened:
        """Open the call's model, else its fallback models in turn, before the first token: a
        failure of its servers goes to `fallbacks`, an input too long to `context_window_fallbacks`.
        The first-token deadline is shared: each model gets its part of what is left. A call that
        asks for nothing to be generated opens no upstream."""
        if not self.call.generate:
            return Ended("stop"), None, iter(())
        deadline = time.monotonic() + self.settings.upstream.timeout_seconds
        model = self.call.model
        spare = self.spare
        wider = list(self.settings.fallbacks_of(model, too_long=True))
        while True:
            share = (deadline - time.monotonic()) / (1 + len(spare))
            try:
                return self._until_first_piece(slot, self.call, time.monotonic() + share)
            except UpstreamError as failure:
                if failure.error_code == "input_too_long":
                    models = wider
                else:
                    models = spare if failure.retryable or failure.refused or failure.misconfigured else []
                if not models or time.monotonic() >= deadline:
                    raise
                self.fall_back(models.pop(0), failure)

    def fall_back(self, model: str, failure: UpstreamError) -> None:
        """Answer with `model` instead: the failure of the one before is logged and counted."""
        log.warning(
            "upstream_fallback",
            extra={"model": self.call.model, "fallback": model, "error_code": failure.error_code, **self.server()},
        )
        self.metrics.upstream_fallback(failure.error_code)
        self.call = dataclasses.replace(self.call, model=model)
        self.route = Route(affinity=self.provider.affinity(self.call))

    def _until_first_piece(self, slot: Any, call: ChatCall, deadline: float) -> Opened:
        """Open the upstream and wait for its first piece (None: the reply has none), retrying
        what may be retried; returns the generation, its first read of pieces and the rest.

        The first-token `deadline` covers every attempt and the waits between.
        """
        failed = busy = 0  # retries after a failure, and after a busy server's preemption
        while True:
            try:
                return self.attempt(deadline, slot, call)
            except UpstreamError as failure:
                failover = failure.retryable and self.provider.can_fail_over(self.call.model, self.route)
                delay = 0.0 if failover else backoff.delay(failed + busy, failure.retry_after)
                if (
                    not failure.retryable
                    or "all_resting" in failure.log_fields
                    or (failure.error_code == "upstream_timeout" and not failover)  # a silent server: not again
                    or (busy >= self._busy_retries() if failure.busy else failed >= self._retries())
                    or time.monotonic() + delay >= deadline
                ):
                    raise
                busy, failed = (busy + 1, failed) if failure.busy else (busy, failed + 1)
                self.metrics.upstream_retry(failure.error_code)
                log.warning(
                    "upstream_retry",
                    extra={
                        "attempt": failed + busy,
                        "delay_ms": round(delay * 1000),
                        "error_code": failure.error_code,
                        "upstream_status": failure.upstream_status,
                        **self.server(),
                    },
                )
                gevent.sleep(delay)

    def _retries(self) -> int:
        """How many failures before the first token are retried (UPSTREAM_RETRIES)."""
        return self.settings.upstream.upstream_retries

    def _busy_retries(self) -> int:
        """How many preemptions before the first token are retried (none when UPSTREAM_RETRIES is 0)."""
        return MAX_BUSY_RETRIES if self._retries() else 0

    def attempt(self, deadline: float, slot: Any, call: ChatCall, cause: str | None = None) -> Opened:
        """One attempt of `call` up to its first piece (`cause`: it continues a reply that ended
        so); the UpstreamError it failed with, its attempt kept as failed."""
        self.attempts.begin(call.model, cause)
        try:
            return self._first_piece(deadline, slot, call)
        except UpstreamError as failure:
            self.attempts.end("failed", self.route.server, error_code=failure.error_code)
            raise
        except StreamCancelled:
            self.attempts.end("cancelled", self.route.server)
            raise

    def _first_piece(self, deadline: float, slot: Any, call: ChatCall) -> Opened:
        left = deadline - time.monotonic()
        per_attempt = self.attempt_seconds(call.model)
        timeout = gevent.Timeout(max(0.0, min(left, per_attempt or left)), FirstTokenDeadline)
        timeout.start()
        generation: Attempt | None = None
        try:
            with self.attempts.current():  # its request carries the attempt's traceparent
                generation = self.provider.open(call, slot, self.route)
            pieces = generation.reads()
            first = next(pieces, None)
            if self.refused(generation, first):  # before its first token: the fallback model answers
                generation.close()
                raise refusal(self.route)
        except FirstTokenDeadline:
            if generation is not None:
                generation.close()
            detail = f"No first token within TIMEOUT_SECONDS ({self.settings.upstream.timeout_seconds:g} s)."
            if per_attempt is not None and per_attempt < left:
                detail = f"No first token from the server within UPSTREAM_ATTEMPT_SECONDS ({per_attempt:g} s)."
            raise UpstreamError("upstream_timeout", detail) from None
        except BaseException as exc:
            if generation is not None and isinstance(exc, StreamCancelled):
                generation.stop()
            elif generation is not None:
                generation.close()
            raise
        finally:
            timeout.close()
        return generation, first, pieces

    def refused(self, generation: Attempt, first: list[str | Delta] | None) -> bool:
        """Whether the reply so far is a refusal to ask the fallback model about instead: its
        server says so (`fallback_on_refusal`), a fallback model is left, and the reply opens with
        a refusal (`first`), or ended with one (none: a content filter's or a model's refusal)."""
        if not self.spare or not self.provider.falls_back_on_refusal(self.route):
            return False
        if first:
            return isinstance(first[0], Delta) and first[0].kind == REFUSAL
        return generation.finish_reason == "content_filter"

    def attempt_seconds(self, model: str) -> float | None:
        """The first-token limit of one attempt on `model` (None: all of the deadline)."""
        configured = self.settings.upstream.upstream_attempt_seconds
        if configured is not None:
            return configured or None
        return ATTEMPT_SECONDS if self.spare else None

    def preempted_pause(self) -> None:
        """A busy server ended this generation's reply early, mid-answer (llama.cpp's servers
        preempt a request when another arrives): wait a little, with jitter, so that the replies it
        preempted do not all come back at once. (Before the first token a preemption is a retry
        like any other: nothing was delivered yet.)"""
        delay = backoff.delay(min(self.preemptions, 2), None)
        self.preemptions += 1
        log.info(
            "upstream_preempted",
            extra={"preemptions": self.preemptions, "delay_ms": round(delay * 1000), **self.server()},
        )
        gevent.sleep(delay)

    def server(self) -> dict[str, str]:
        """The log field naming the server of the current attempt (none for a single source)."""
        return {} if self.route.server is None else {"upstream_server": self.route.server}
