"""One generation from a provider into a listener, whatever happens.

The relay opens the upstream (`opening`: retries, failover and fallback models before the
first token, counted once the provider's turn has come), continues a reply the upstream broke
mid-answer (`rescue`), and owns the total cap (queueing included; the idle deadline between
tokens is the provider's read timeout), cancellation (StreamCancelled raised into the producer
greenlet), usage (the upstream's count, else our own) and the lifecycle log lines. Streaming
and wait mode share it; only the listener differs.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any, NamedTuple, Protocol

import gevent

from ..config import Settings
from ..errors import ApiError
from ..logs import bind
from ..metrics.catalogue import Metrics
from ..providers.base import ChatCall, Generation, Provider, Route, UpstreamError, Usage
from ..providers.deltas import LOGPROBS, Delta, ReplyParts
from . import report, rescue
from .cancel import StreamCancelled
from .gaps import Gaps
from .opening import Opened, Opener
from .outcome import Outcome

log = logging.getLogger("chatwait.relay")

# A reply longer than this many characters per token asked for is not a model's reply: a broken
# or hostile upstream that ignores max_tokens would otherwise fill memory.
MAX_CHARS_PER_TOKEN = 64
REPLY_CHARS_FLOOR = 65_536


class Listener(Protocol):
    """Receives a generation as it happens (a stream writer; nothing in wait mode)."""

    def answering(self, model: str) -> None: ...

    def chunk(self, content: str | Delta) -> None: ...

    def queued(self, ahead: int) -> None: ...

    def continuing(self) -> bool: ...

    def end(self, outcome: Outcome) -> None: ...


class Prefix(NamedTuple):
    """What a generation taken over from a worker that died had delivered: its text, its typed
    deltas' parts, and how many chunks it took."""

    text: str
    parts: ReplyParts
    chunks: int


class Relay:
    """One generation: `run()` drives the provider and tells the listener; returns the Outcome.
    With a `prefix` (a takeover), it continues that reply instead of starting one."""

    def __init__(
        self,
        provider: Provider,
        settings: Settings,
        call: ChatCall,
        prompt_tokens: int | None,
        listener: Listener | None,
        correlation_id: str,
        stream_id: str | None = None,
        *,
        metrics: Metrics,
        route: Route | None = None,
        prefix: Prefix | None = None,
    ) -> None:
        self.provider = provider
        self._prefix = prefix
        self._opener = Opener(provider, settings, metrics, call, route or Route())
        self.metrics = metrics
        self.settings = settings
        self.prompt_tokens = prompt_tokens
        self.listener = listener
        self.correlation_id = correlation_id
        self.stream_id = stream_id
        self._pieces: list[str] = []
        self._parts = ReplyParts()  # the typed deltas (a family that carries them)
        self._deltas = self._chars = 0  # typed deltas relayed; characters of the reply so far
        self._max_chars = call.max_tokens * MAX_CHARS_PER_TOKEN + REPLY_CHARS_FLOOR
        self._first_token_at: float | None = None
        self._started = 0.0
        self._ended_by: Generation | None = None  # the attempt that ended the reply (its own words)
        self._gaps = Gaps()
        self._mode = "wait" if listener is None else "streaming"
        self._rescues = 0  # continuations opened after the upstream broke mid-answer
        self._spent = 0  # those counted against UPSTREAM_RESCUES
        self._generated = 0  # tokens the attempts before the current one generated (rescued replies)
        self._resent = 0  # input tokens sent again by continuations (the prompt and the text so far)
        self._attempt_from = 0  # where the current attempt's text begins in `_pieces`
        self._last_usage: Usage | None = None  # the upstream's count of a rescued reply's last attempt
        self._requested = call.model  # `call` names a fallback model once one answers instead
        self._inherited = self._inherit(prefix)

    def _inherit(self, prefix: Prefix | None) -> int:
        """Take a taken-over reply's text and parts as its own; the chunks it had besides its
        text (kept here as one piece)."""
        if prefix is None:
            return 0
        self._pieces, self._parts = [prefix.text], prefix.parts
        return prefix.chunks - 1

    def run(self) -> Outcome:
        """Generate to the end, cancellation or failure; always ends the listener exactly once."""
        with bind(self.correlation_id, self.stream_id):
            self._started = time.monotonic()
            log.info(
                "stream_started",
                extra={
                    "provider": self.provider.name,
                    "model": self.call.model,
                    "mode": self._mode,
                    "max_tokens": self.call.max_tokens,
                    **self._server(),
                },
            )
            self.metrics.generation_started(self.call.model, self.provider.name, self._mode)
            try:
                finish_reason, usage, error = self._generate()
                outcome = self._outcome(finish_reason, usage, error)
                self._report_end(outcome)
                if self.listener is not None:
                    self.listener.end(outcome)
                return outcome
            finally:
                self.metrics.generation_closed(self._mode)  # however run() ends

    def produced(self) -> int:
        """How many pieces it has produced so far (about the completion tokens)."""
        return len(self._pieces) + self._deltas + self._inherited

    def _generate(self) -> tuple[str | None, Usage | None, ApiError | None]:
        total = gevent.Timeout(self.settings.max_stream_seconds)
        total.start()
        try:
            on_wait = None if self.listener is None else self.listener.queued
            with self.provider.reserve(on_wait) as slot:  # a line for the embedded model; no wait otherwise
                if self.provider.takes_turns:
                    self.metrics.queue_waited(time.monotonic() - self._started)
                opened = self._taken_over(slot) if self._prefix is not None else self._opener.open_routes(slot)
                generation = self._relay_all(opened, slot)
            self._ended_by = generation
            if not self._rescues:
                return generation.finish_reason, generation.usage, None
            self._last_usage = generation.usage
            return generation.finish_reason, None, None  # a rescued reply's usage is ChatWait's count
        except StreamCancelled as stop:
            return ("cancelled", None, None) if stop.error is None else (None, None, stop.error)
        except gevent.Timeout as timeout:
            if timeout is not total:
                raise
            detail = f"The reply took longer than MAX_STREAM_SECONDS ({self.settings.max_stream_seconds:g} s)."
            return None, None, self._upstream_failure(UpstreamError("upstream_timeout", detail))
        except UpstreamError as failure:
            return None, None, self._upstream_failure(failure)
        except Exception as exc:
            log.exception("error_occurred", extra={"error_code": "internal_error", "error_type": type(exc).__name__})
            return None, None, ApiError("internal_error")
        finally:
            total.close()

    def _relay_all(self, opened: Opened, slot: Any) -> Generation:
        """Relay the opened generation to its end, continuing it on another route when the
        upstream breaks mid-answer and it can be (`rescue`); returns the generation that ended it."""
        while True:
            generation, first, rest = opened
            try:
                with generation:
                    try:
                        if first is not None:
                            self._emit(first)
                        for piece in rest:
                            self._emit(piece)
                    except StreamCancelled:
                        generation.stop()  # nobody wants the rest: an upstream ChatWait stops too
                        raise
                return generation
            except UpstreamError as failure:
                opened = self._rescued(failure, slot, generation)

    def _taken_over(self, slot: Any) -> Opened:
        """The continuation of a reply whose worker died, from the text its clients have."""
        self._first_token_at = self._started  # its first token went out long ago
        failure = UpstreamError("generation_lost", "The worker generating this reply stopped.")
        return self._rescued(failure, slot, None, rescue.TAKEOVER)

    def _rescued(
        self, failure: UpstreamError, slot: Any, broken: Generation | None, cause: str | None = None
    ) -> Opened:
        """The continuation of a reply `failure` cut (`cause`: else the failure's), opened on the
        route the provider picks; raises `failure` (or the continuation's own) when none can be made."""
        self._generated += self._attempt_tokens(None if broken is None else broken.usage)
        self._attempt_from = len(self._pieces)
        cause = cause or rescue.cause(failure)
        text = "".join(self._pieces)
        left = self.call.max_tokens - self.provider.completion_tokens(text)
        if cause is not None and left <= 0 and rescue.continuable(text, self._parts):
            log.warning("upstream_cut_at_limit", extra={"error_code": failure.error_code, **self._server()})
            return rescue.AtLimit(), None, iter(())
        while cause is not None and rescue.continuable(text, self._parts):
            if not self._may_continue(cause):
                break
            failed_on = self._server()
            self._rescue_model(failure)
            strategy = self.provider.continuation(self.call.model, self.route)
            if strategy not in rescue.STRATEGIES:
                break
            self._rescues += 1
            self._log_rescue(failure, cause, strategy, failed_on, broken)
            try:
                return self._continue(strategy, text, left, slot, cause)
            except UpstreamError as again:  # tried again (the server rests) while it may help
                failure, cause = again, rescue.after_failed_continuation(again)
        raise failure

    def _may_continue(self, cause: str) -> bool:
        """Whether one more continuation fits UPSTREAM_RESCUES, then counted: one budget for
        rescues, preemptions (after a short wait: a busy server) and takeovers (counted by the
        claim), shared by every worker that generates the stream (its listener's word)."""
        if cause == rescue.TAKEOVER:
            return True
        if self._spent >= self.settings.upstream_rescues:
            return False
        if self.listener is not None and not self.listener.continuing():
            return False
        self._spent += 1
        if cause == "preempted":
            self._opener.preempted_pause()
        return True

    def _rescue_model(self, failure: UpstreamError) -> None:
        """When no other server of the model can continue the reply (all rest), the first fallback
        model one of whose servers can does; else the model's own servers are tried, resting or not."""
        spare = self._opener.spare
        if self.provider.can_continue(self.call.model, self.route):
            return
        for model in list(spare):
            if self.provider.can_continue(model, Route()):
                spare.remove(model)
                self._opener.fall_back(model, failure)
                return

    def _continue(self, strategy: str, text: str, left: int, slot: Any, cause: str) -> Opened:
        """Open one continuation by `strategy`; a server that refuses a prefill is asked by message."""
        deadline = time.monotonic() + self.settings.timeout_seconds
        try:
            opened = self._opener.attempt(deadline, slot, self._continuation(text, strategy, left))
        except UpstreamError as refused:
            if strategy != "prefill" or refused.error_code != "upstream_rejected":
                raise
            self.provider.prefill_refused(self.route)
            self.route.pinned, strategy = True, "message"
            opened = self._opener.attempt(deadline, slot, self._continuation(text, strategy, left))
        self.metrics.upstream_rescue(cause, strategy)
        generation, first, rest = opened
        pieces = itertools.chain(() if first is None else (first,), rest)
        return generation, None, rescue.continued(pieces, text, strategy)

    def _continuation(self, text: str, strategy: str, left: int) -> ChatCall:
        """The call that continues the reply from `text`; its input is counted (charged to the key)."""
        call = rescue.continuation_call(self.call, text, strategy, left)
        self._resent += self.provider.prompt_tokens(call.counted())
        return call

    def _attempt_tokens(self, usage: Usage | None) -> int:
        """What the current attempt generated: its upstream's count, else ChatWait's of its text."""
        if usage is not None:
            return usage.completion_tokens
        return self.provider.completion_tokens("".join(self._pieces[self._attempt_from :]))

    def _log_rescue(
        self, failure: UpstreamError, cause: str, strategy: str, failed_on: dict[str, str], broken: Generation | None
    ) -> None:
        usage = None if broken is None else broken.usage
        log.warning(
            "upstream_rescue",
            extra={
                "rescue": self._rescues,
                "cause": cause,
                "strategy": strategy,
                "error_code": failure.error_code,
                "detail": failure.detail,
                "chunks_sent": self.produced(),
                "failed_server": failed_on.get("upstream_server"),
                "attempt_completion_tokens": None if usage is None else usage.completion_tokens,
                **self._server(),
            },
        )

    def _emit(self, piece: str | Delta) -> None:
        text = type(piece) is str
        if not text and piece.kind == LOGPROBS and not self.call.typed:  # type: ignore[union-attr]
            piece, text = piece.text, True  # type: ignore[union-attr]
        if not (text or self.call.typed):
            return  # a family that carries the text only gets nothing else, as before
        self._chars += len(piece) if text else piece.size  # type: ignore[arg-type,union-attr]
        if self._chars > self._max_chars:
            detail = f"The reply is longer than {self.call.max_tokens} tokens (max_tokens) can be."
            raise UpstreamError("upstream_bad_response", detail, log_fields={"limit": "max_tokens"})
        if text:
            self._pieces.append(piece)  # type: ignore[arg-type]
        else:
            self._parts.add(piece)  # type: ignore[arg-type]
            self._deltas += 1
            if piece.kind == LOGPROBS:  # type: ignore[union-attr]
                self._pieces.append(piece.text)  # type: ignore[union-attr]
        if self.listener is not None:
            if self._first_token_at is None:
                self.listener.answering(self.call.model)
            self.listener.chunk(piece)
        now = time.monotonic()
        self._gaps.token_at(now)
        if self._first_token_at is None:
            self._first_token_at = now
            log.info("first_token", extra={"ttft_ms": _ms(now - self._started)})
            self.metrics.first_token_after(self.call.model, self.provider.name, now - self._started)

    def _upstream_failure(self, failure: UpstreamError) -> ApiError:
        extra = {"chunks_sent": self.produced(), **self._server()}
        return report.upstream_failure(failure, self.metrics, self.settings.upstream_retries, extra)

    def _outcome(self, finish_reason: str | None, usage: Usage | None, error: ApiError | None) -> Outcome:
        text = "".join(self._pieces)
        if usage is None:
            prompt = self.prompt_tokens
            if prompt is None:  # not counted at intake: the upstream's usage was expected
                prompt = self.provider.prompt_tokens(self.call.counted())
            generated = text + self._parts.counted_text() if self._deltas or self._inherited else text
            over_attempts = self._generated + self._attempt_tokens(self._last_usage) if self._rescues else None
            usage = Usage(prompt, self.provider.completion_tokens(generated), True, over_attempts, resent=self._resent)
        first = self._first_token_at
        return Outcome(
            text=text,
            chunks=self.produced(),
            usage=usage,
            duration_ms=_ms(time.monotonic() - self._started),
            ttft_ms=None if first is None else _ms(first - self._started),
            finish_reason=finish_reason,
            error=error,
            parts=self._parts if self._deltas or self._prefix is not None else None,
            model=self.call.model if self.call.model != self._requested else None,
            stop_sequence=None if self._ended_by is None else self._ended_by.stop_sequence,
        )

    def _report_end(self, outcome: Outcome) -> None:
        """The generation's last log line, and its metrics."""
        median = self._gaps.median()
        fields = {
            "gap_p50_ms": None if median is None else _ms(median),
            "gap_max_ms": _ms(self._gaps.longest),
            "rescues": self._rescues,
            "model": self.call.model,  # the fallback model, when one answered
            **self._server(),
        }
        if self._ended_by is not None and self._ended_by.upstream_finish_reason is not None:  # mapped
            fields["upstream_finish_reason"] = self._ended_by.upstream_finish_reason
        report.ended(outcome, self.metrics, (self.call.model, self.provider.name), fields)

    @property
    def call(self) -> ChatCall:
        """The request, naming the model that answers (a fallback's once one does)."""
        return self._opener.call

    @property
    def route(self) -> Route:
        """The server of the current attempt (a pool's)."""
        return self._opener.route

    def _server(self) -> dict[str, str]:
        return self._opener.server()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
