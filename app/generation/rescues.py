"""A reply's continuations after its upstream broke mid-answer (or its worker died): whether one
more fits UPSTREAM_RESCUES, the model and route that continue it, opening it, and what they cost
(the tokens the attempts before the last one generated, the input sent again). The pieces of a
continuation are `rescue`'s."""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

from ..config import Settings
from ..metrics.catalogue import Metrics
from ..providers.base import Attempt, Provider, UpstreamError
from ..providers.call import ChatCall, Route, Usage
from . import continuation
from .opening import Ended, Opened, Opener
from .reply import Reply

log = logging.getLogger("chatwait.relay")


class Rescues:
    """The continuations of one reply. `continuing()`: the listener's word that the stream's
    allowance, shared by every worker that generates it, allows one more (None in wait mode)."""

    def __init__(
        self, opener: Opener, provider: Provider, settings: Settings, metrics: Metrics, reply: Reply, continuing: Any
    ) -> None:
        self._opener, self._provider, self._settings, self._metrics = opener, provider, settings, metrics
        self._reply, self._continuing = reply, continuing
        self.count = 0  # continuations opened
        self._spent = 0  # those counted against UPSTREAM_RESCUES
        self._generated = 0  # tokens the attempts before the current one generated
        self.resent = 0  # input tokens sent again by continuations (the prompt and the text so far)
        self._attempt_from = 0  # where the current attempt's text begins in the reply's pieces
        self._produced_from = reply.produced()  # and its chunks (a takeover's start after its prefix)
        self._last_usage: Usage | None = None  # the upstream's count of the last attempt

    def ended(self, generation: Attempt) -> None:
        """The attempt that ended the reply: its upstream's count, for `over_attempts`."""
        self._last_usage = generation.usage

    def over_attempts(self) -> int | None:
        """The tokens every attempt generated (None: there was only one)."""
        return self._generated + self.attempt_tokens(self._last_usage) if self.count else None

    def rescued(self, failure: UpstreamError, slot: Any, broken: Attempt | None, cause: str | None = None) -> Opened:
        """The continuation of a reply `failure` cut (`cause`: else the failure's), opened on the
        route the provider picks; raises `failure` (or the continuation's own) when none can be made."""
        self._generated += self.attempt_tokens(None if broken is None else broken.usage)
        self._attempt_from, self._produced_from = len(self._reply.pieces), self._reply.produced()
        cause = cause or continuation.cause(failure)
        text = self._reply.text()
        left = self._call.max_tokens - self._provider.completion_tokens(text)
        if cause is not None and left <= 0 and continuation.continuable(text, self._reply.parts):
            log.warning("upstream_cut_at_limit", extra={"error_code": failure.error_code, **self._opener.server()})
            return Ended("length"), None, iter(())
        while cause is not None and continuation.continuable(text, self._reply.parts):
            if not self._may_continue(cause):
                break
            failed_on = self._opener.server()
            self._rescue_model(failure)
            strategy = self._provider.continuation(self._call.model, self._opener.route)
            if strategy not in continuation.STRATEGIES:
                break
            self.count += 1
            self._log(failure, cause, strategy, failed_on, broken)
            try:
                return self._continue(strategy, text, left, slot, cause)
            except UpstreamError as again:  # tried again (the server rests) while it may help
                failure, cause = again, continuation.after_failed_continuation(again)
        if failure.refused:  # no fallback model could continue it: it ends as the model ended it
            return Ended("content_filter"), None, iter(())
        raise failure

    @property
    def _call(self) -> ChatCall:
        return self._opener.call

    def _may_continue(self, cause: str) -> bool:
        """Whether one more continuation fits UPSTREAM_RESCUES, then counted: one allowance for
        rescues, preemptions (after a short wait: a busy server) and takeovers (counted by the
        claim), shared by every worker that generates the stream (its listener's word)."""
        if cause == continuation.TAKEOVER:
            return True
        if self._spent >= self._settings.upstream.upstream_rescues:
            return False
        if self._continuing is not None and not self._continuing():
            return False
        self._spent += 1
        if cause == "preempted":
            self._opener.preempted_pause()
        return True

    def _rescue_model(self, failure: UpstreamError) -> None:
        """When no other server of the model can continue the reply (all rest), the first fallback
        model one of whose servers can does; else the model's own servers are tried, resting or not.
        A refusal goes to the first fallback model."""
        spare = self._opener.spare
        if failure.refused and spare:
            self._opener.fall_back(spare.pop(0), failure)
            return
        if self._provider.can_continue(self._call.model, self._opener.route):
            return
        for model in list(spare):
            if self._provider.can_continue(model, Route()):
                spare.remove(model)
                self._opener.fall_back(model, failure)
                return

    def _continue(self, strategy: str, text: str, left: int, slot: Any, cause: str) -> Opened:
        """Open one continuation by `strategy`; a server that refuses a prefill is asked by message."""
        deadline = time.monotonic() + self._settings.upstream.timeout_seconds
        try:
            opened = self._opener.attempt(deadline, slot, self._continuation(text, strategy, left), cause)
        except UpstreamError as refused:
            if strategy != "prefill" or refused.error_code != "upstream_rejected":
                raise
            self._provider.prefill_refused(self._opener.route)
            self._opener.route.pinned, strategy = True, "message"
            opened = self._opener.attempt(deadline, slot, self._continuation(text, strategy, left), cause)
        self._metrics.upstream_rescue(cause, strategy)
        generation, first, rest = opened
        pieces = itertools.chain.from_iterable(itertools.chain(() if first is None else (first,), rest))
        pieces = continuation.continued(pieces, text, strategy)
        if strategy == "message":
            pieces = continuation.capped(pieces, generation, left, self._provider.completion_tokens)
        return generation, None, ([piece] for piece in pieces)

    def _continuation(self, text: str, strategy: str, left: int) -> ChatCall:
        """The call that continues the reply from `text`; its input is counted (charged to the key)."""
        repeat = self._provider.completion_tokens(continuation.repeatable(text)) if strategy == "message" else 0
        call = continuation.continuation_call(self._call, text, strategy, left, repeat)
        resent = self._provider.prompt_tokens(call.counted())
        self.resent += resent
        self._opener.attempts.resending(resent)
        return call

    def attempt_tokens(self, usage: Usage | None) -> int:
        """What the current attempt generated: its upstream's count, else its chunks where its
        server streams a token a chunk, else ChatWait's count of its text."""
        if usage is not None:
            return usage.completion_tokens
        if self._provider.chunk_tokens(self._opener.route):
            return self._reply.produced() - self._produced_from
        return self._provider.completion_tokens("".join(self._reply.pieces[self._attempt_from :]))

    def _log(
        self, failure: UpstreamError, cause: str, strategy: str, failed_on: dict[str, str], broken: Attempt | None
    ) -> None:
        usage = None if broken is None else broken.usage
        log.warning(
            "upstream_rescue",
            extra={
                "rescue": self.count,
                "cause": cause,
                "strategy": strategy,
                "error_code": failure.error_code,
                "detail": failure.detail,
                "chunks_sent": self._reply.produced(),
                "failed_server": failed_on.get("upstream_server"),
                "attempt_completion_tokens": None if usage is None else usage.completion_tokens,
                **self._opener.server(),
            },
        )
