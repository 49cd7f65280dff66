"""One generation from a provider into a listener, whatever happens.

The relay opens the upstream (`opening`: retries, failover and fallback models before the
first token, counted once the provider's turn has come), continues a reply the upstream broke
mid-answer (`rescues`), hands its pieces out (`emission`), and owns the total cap (queueing
included; the idle deadline between tokens is the provider's read timeout), cancellation
(StreamCancelled raised into the producer greenlet), usage (the upstream's count, else our own)
and the lifecycle log lines. Streaming and wait mode share it; only the listener differs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from ..accounts.account import Account
from ..config import Settings
from ..errors import ApiError
from ..logs import bind
from ..metrics.catalogue import Metrics
from ..providers.base import Attempt, Provider, UpstreamError, refusal
from ..providers.call import ChatCall, Route, Usage
from ..providers.surcharge import surcharge
from . import continuation, report
from .cancel import StreamCancelled
from .emission import Emission, Listener, ms
from .opening import Opened, Opener
from .outcome import Outcome
from .reply import Ceiling, Prefix, Reply
from .rescues import Rescues

log = logging.getLogger("chatwait.relay")


class Relay:
    """One generation: `run()` drives the provider and tells the listener; returns the Outcome.
    With a `prefix` (a takeover), it continues that reply instead of starting one."""

    def __init__(
        self,
        provider: Provider,
        settings: Settings,
        account: Account,
        listener: Listener | None,
        *,
        metrics: Metrics,
        prefix: Prefix | None = None,
    ) -> None:
        self.provider = provider
        self.account = account
        self._prefix = prefix
        call, handoff = account.call, account.origin.handoff
        parent = None if handoff is None else handoff.trace
        self._opener = Opener(provider, settings, metrics, call, account.route, parent)
        self.metrics = metrics
        self.settings = settings
        self.listener = listener
        self._reply = Reply(call.max_tokens, prefix)
        continuing = None if listener is None else listener.continuing
        self._rescues = Rescues(self._opener, provider, settings, metrics, self._reply, continuing)
        self._emission = Emission(self._reply, listener, self._opener, metrics, provider.name)
        self._emit = self._emission.emit
        self._ended_by: Attempt | None = None  # the attempt that ended the reply (its own words)
        self._mode = "wait" if listener is None else "streaming"
        self._requested = call.model  # `call` names a fallback model once one answers instead

    def run(self) -> Outcome:
        """Generate to the end, cancellation or failure; always ends the listener exactly once."""
        with bind(self.account.origin.correlation_id, self.account.origin.stream_id):
            self._emission.started = time.monotonic()
            if log.isEnabledFor(logging.DEBUG):
                log.debug("stream_started", extra={**self._asked(), "model": self.call.model, **self._server()})
            self.metrics.generation_started(self.call.model, self.provider.name, self._mode)
            try:
                finish_reason, usage, error = self._generate()
                outcome = self._outcome(finish_reason, usage, error)
                if error is None and finish_reason != "cancelled":  # before the end: a next turn may come at once
                    self.provider.answered(self.call, self.route, outcome.text, self._reply.parts.tool_calls)
                self._report_end(outcome)
                if self.listener is not None:
                    self.listener.end(outcome)
                return outcome
            finally:
                self._opener.attempts.close()  # an attempt still open ends with its generation
                self.metrics.generation_closed(self._mode)  # however run() ends

    def produced(self) -> int:
        """How many pieces it has produced so far (about the completion tokens)."""
        return self._reply.produced()

    def _generate(self) -> tuple[str | None, Usage | None, ApiError | None]:
        total = gevent.Timeout(self.settings.streams.max_stream_seconds)
        total.start()
        try:
            on_wait = None if self.listener is None else self.listener.queued
            with self.provider.reserve(on_wait) as slot:  # a line for the embedded model; no wait otherwise
                if self.provider.takes_turns:
                    self.metrics.queue_waited(time.monotonic() - self._emission.started)
                opened = self._taken_over(slot) if self._prefix is not None else self._opener.open_routes(slot)
                generation = self._relay_all(opened, slot)
            self._ended_by = generation
            if not self._rescues.count:
                return generation.finish_reason, generation.usage, None
            self._rescues.ended(generation)
            return generation.finish_reason, None, None  # a rescued reply's usage is ChatWait's count
        except StreamCancelled as stop:
            return ("cancelled", None, None) if stop.error is None else (None, None, stop.error)
        except gevent.Timeout as timeout:
            if timeout is not total:
                raise
            detail = f"The reply took longer than MAX_STREAM_SECONDS ({self.settings.streams.max_stream_seconds:g} s)."
            return None, None, self._upstream_failure(UpstreamError("upstream_timeout", detail))
        except UpstreamError as failure:
            return None, None, self._upstream_failure(failure)
        except Exception as exc:
            log.exception("error_occurred", extra={"error_code": "internal_error", "error_type": type(exc).__name__})
            return None, None, ApiError("internal_error")
        finally:
            total.close()

    def _relay_all(self, opened: Opened, slot: Any) -> Attempt:
        """Relay the opened generation to its end, continuing it on another route when the
        upstream breaks mid-answer and it can be (`rescues`); returns the generation that ended it."""
        while True:
            generation, first, rest = opened
            try:
                with generation:
                    try:
                        if first is not None:
                            self._emit(first)
                        for pieces in rest:
                            self._emit(pieces)
                        if generation.finish_reason == "content_filter" and self._opener.refused(generation, None):
                            raise refusal(self.route)  # mid-answer: continued by the fallback model
                    except StreamCancelled:
                        generation.abandon()  # its client wants no more: stopped, unless others follow it
                        self._attempt_ended(generation, "cancelled")
                        raise
                    except Ceiling:
                        self._cut_at_ceiling(generation)
                self._attempt_ended(generation, "completed")
                return generation
            except UpstreamError as failure:
                self._attempt_ended(generation, "cut", failure.error_code)
                opened = self._rescues.rescued(failure, slot, generation)

    def _cut_at_ceiling(self, generation: Attempt) -> None:
        """The reply reached the tokens reserved for it and the upstream went on (it read a limit
        of its own, or none): stopped there, ended as at its length."""
        generation.stop()
        generation.finish("length")
        log.warning("reply_ceiling", extra={"max_tokens": self.call.max_tokens, **self._server()})

    def _attempt_ended(self, generation: Attempt, outcome: str, error_code: str | None = None) -> None:
        """The ledger's and the trace's word on the attempt that just ended."""
        usage = generation.usage
        output = self._rescues.attempt_tokens(usage)
        finish = generation.upstream_finish_reason or generation.finish_reason
        counts = (
            {}
            if usage is None
            else {
                "input": usage.prompt_tokens,
                "cached": usage.cached_tokens,
                "written": usage.cache_write_tokens,
                "written_long": usage.cache_write_long_tokens,
                "reasoning": usage.reasoning_tokens,
            }
        )
        server = self.route.server
        if generation.replayed:  # the response cache answered: nothing read or generated upstream
            output, counts, server = 0, {"input": 0}, None
            outcome = "cached" if outcome == "completed" else outcome
        self._opener.attempts.end(
            outcome,
            server,
            output,
            finish_reason=finish,
            error_code=error_code,
            response_id=generation.response_id,
            **counts,
        )

    def _taken_over(self, slot: Any) -> Opened:
        """The continuation of a reply whose worker died, from the text its clients have."""
        self._emission.first_token_at = self._emission.started  # its first token went out long ago
        self._opener.attempts.lost(self.call.model, self._prefix.chunks if self._prefix is not None else 0)
        failure = UpstreamError("generation_lost", "The worker generating this reply stopped.")
        return self._rescues.rescued(failure, slot, None, continuation.TAKEOVER)

    def _upstream_failure(self, failure: UpstreamError) -> ApiError:
        extra = {"chunks_sent": self.produced(), **self._server()}
        return report.upstream_failure(failure, self.metrics, self.settings.upstream.upstream_retries, extra)

    def _outcome(self, finish_reason: str | None, usage: Usage | None, error: ApiError | None) -> Outcome:
        reply = self._reply
        text = reply.text()
        if usage is None:
            prompt = self.account.prompt_tokens
            if prompt is None:  # not counted at intake: the upstream's usage was expected
                prompt = self.provider.prompt_tokens(self.call.counted())
            prompt += surcharge((self.call.model,), self.call.messages)  # images and files as its model bills them
            completion = reply.capped or self.provider.completion_tokens(reply.counted_text())
            usage = Usage(prompt, completion, True, self._rescues.over_attempts(), resent=self._rescues.resent)
        self._opener.attempts.close(usage.prompt_tokens)
        attempts = self._opener.attempts.ledger(self.settings)
        started, first = self._emission.started, self._emission.first_token_at
        return Outcome(
            text=text,
            chunks=self.produced(),
            usage=usage,
            duration_ms=ms(time.monotonic() - started),
            ttft_ms=None if first is None else ms(first - started),
            finish_reason=finish_reason,
            error=error,
            parts=reply.parts if reply.deltas or self._prefix is not None else None,
            model=self.call.model if self.call.model != self._requested else None,
            stop_sequence=None if self._ended_by is None else self._ended_by.stop_sequence,
            cost_usd=self.account.cost(attempts, usage, self.call.model),
            attempts=attempts,
        )

    def _report_end(self, outcome: Outcome) -> None:
        """The generation's last log line, and its metrics."""
        gaps = self._emission.gaps
        median = gaps.median()
        fields = {
            "gap_p50_ms": None if median is None else ms(median),
            "gap_max_ms": ms(gaps.longest),
            "rescues": self._rescues.count,
            **self._asked(),
            "model": self.call.model,  # the fallback model, when one answered
            **self._server(),
        }
        if self._ended_by is not None and self._ended_by.upstream_finish_reason is not None:  # mapped
            fields["upstream_finish_reason"] = self._ended_by.upstream_finish_reason
        report.ended(outcome, self.metrics, (self.call.model, self.provider.name), fields, self.account.origin.handoff)

    @property
    def call(self) -> ChatCall:
        """The request, naming the model that answers (a fallback's once one does)."""
        return self._opener.call

    @property
    def route(self) -> Route:
        """The server of the current attempt (a pool's)."""
        return self._opener.route

    def _asked(self) -> dict[str, Any]:
        return {"provider": self.provider.name, "mode": self._mode, "max_tokens": self.call.max_tokens}

    def _server(self) -> dict[str, str]:
        return self._opener.server()
