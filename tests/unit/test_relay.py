"""The producer: retries only before the first token, deadlines, cancellation, usage, one end."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import gevent
import pytest

from app.accounts.account import Account, Origin
from app.config import load_settings
from app.generation import opening
from app.generation.cancel import StreamCancelled
from app.generation.relay import Relay
from app.metrics.catalogue import Metrics
from app.providers.base import ENDED_EARLY, Attempt, Provider, UpstreamError
from app.providers.call import ChatCall, Usage
from app.providers.deltas import LOGPROBS, Delta

CALL = ChatCall(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=5)


class ScriptedAttempt(Attempt):
    def __init__(self, pieces: list, finish: str | None = "stop", usage: Usage | None = None, delay: float = 0) -> None:
        self.pieces, self.finish_at_end, self.delay = pieces, finish, delay
        self.usage_at_end = usage
        self.closed = self.stopped = False

    def __iter__(self) -> Iterator[str]:
        for piece in self.pieces:
            if self.delay:
                gevent.sleep(self.delay)
            if isinstance(piece, BaseException):
                raise piece
            yield piece
        self.finish_reason, self.usage = self.finish_at_end, self.usage_at_end

    def close(self) -> None:
        self.closed = True

    def stop(self) -> None:
        self.stopped = True
        self.close()


class ScriptedProvider(Provider):
    """Each open() takes the next scripted item: a Attempt, or an exception to raise."""

    name = "scripted"
    check_name = "upstream"

    def __init__(self, *script: object, open_delay: float = 0) -> None:
        self.script = list(script)
        self.opened: list[Attempt] = []
        self.open_delay = open_delay

    def open(self, call: ChatCall, slot=None, route=None) -> Attempt:
        if self.open_delay:
            gevent.sleep(self.open_delay)
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        self.opened.append(item)
        return item

    def message_costs(self, messages):
        return [len(m["content"]) for m in messages]

    def prompt_tokens(self, messages):
        return 10

    def completion_tokens(self, text):
        return len(text.split())

    def describe(self):
        return {"provider": self.name, "model": "m"}

    def check(self):
        return True, "Scripted."


class Recorder:
    """A listener; `budget`: the continuations its stream's shared count still allows (None: any)."""

    def __init__(self, budget: int | None = None) -> None:
        self.chunks: list[str] = []
        self.models: list[str] = []  # the model named when the reply begins
        self.places: list[int] = []
        self.ends: list = []
        self.budget = budget
        self.asked = 0

    def continuing(self) -> bool:
        self.asked += 1
        if self.budget is None:
            return True
        self.budget -= 1
        return self.budget >= 0

    def answering(self, model: str) -> None:
        self.models.append(model)

    def write(self, pieces: list) -> None:
        for piece in pieces:
            self.chunk(piece)

    def chunk(self, content: str) -> None:
        self.chunks.append(content)

    def queued(self, ahead: int) -> None:
        self.places.append(ahead)

    def end(self, outcome) -> None:
        self.ends.append(outcome)


def _relay(provider: Provider, listener=None, metrics: Metrics | None = None, **settings: str) -> Relay:
    config = load_settings(
        {"TIMEOUT_SECONDS": "2", "UPSTREAM_RETRIES": "2", **settings}, environ={"OPENAI_API_KEY": "sk-x"}
    )
    return Relay(provider, config, Account(CALL, 10, Origin("cid", "sid")), listener, metrics=metrics or Metrics())


def test_success_with_upstream_usage() -> None:
    listener = Recorder()
    outcome = _relay(ScriptedProvider(ScriptedAttempt(["a ", "b"], usage=Usage(7, 2))), listener).run()
    assert listener.chunks == ["a ", "b"] and listener.ends == [outcome]
    assert outcome.text == "a b" and outcome.finish_reason == "stop" and outcome.error is None
    assert outcome.usage == Usage(7, 2) and outcome.chunks == 2 and outcome.ttft_ms is not None
    assert outcome.usage.source == "upstream"


def test_usage_is_counted_when_the_upstream_gives_none() -> None:
    outcome = _relay(ScriptedProvider(ScriptedAttempt(["one ", "two ", "three"]))).run()
    assert outcome.usage == Usage(10, 3, estimated=True) and outcome.usage.source == "estimated"


def test_prompt_tokens_not_counted_at_intake_are_counted_for_the_usage() -> None:
    config = load_settings({}, environ={"OPENAI_API_KEY": "sk-x"})
    provider = ScriptedProvider(ScriptedAttempt(["one ", "two"]))
    outcome = Relay(provider, config, Account(CALL, None, Origin("cid")), None, metrics=Metrics()).run()
    assert outcome.usage == Usage(10, 2, estimated=True)


def test_retryable_failure_before_the_first_token_is_retried(sleeps) -> None:
    failure = UpstreamError("upstream_rate_limited", "429", retry_after=1.0)
    provider = ScriptedProvider(failure, UpstreamError("upstream_unavailable", "503"), ScriptedAttempt(["ok"]))
    outcome = _relay(provider).run()
    assert outcome.text == "ok" and outcome.error is None
    assert 1.0 <= sleeps[0] <= 1.2, "Retry-After is honoured"
    assert 0 < sleeps[1] <= 0.5, "then exponential backoff with jitter"


def test_failure_while_waiting_for_the_first_token_is_retried(sleeps) -> None:
    broken = ScriptedAttempt([UpstreamError("upstream_interrupted", "reset")])
    fine = ScriptedAttempt(["x"])
    outcome = _relay(ScriptedProvider(broken, fine)).run()
    assert outcome.text == "x" and broken.closed and fine.closed


def test_no_retry_after_the_first_token(sleeps) -> None:
    generation = ScriptedAttempt(["a", UpstreamError("upstream_interrupted", "reset")])
    provider = ScriptedProvider(generation, ScriptedAttempt(["never"]))
    listener = Recorder()
    outcome = _relay(provider, listener).run()
    assert outcome.error.error_code == "upstream_interrupted"
    assert outcome.text == "a" and listener.chunks == ["a"] and len(listener.ends) == 1
    assert len(provider.script) == 1 and generation.closed and sleeps == []


def test_non_retryable_is_not_retried(sleeps) -> None:
    provider = ScriptedProvider(UpstreamError("upstream_auth_failed", "401"), ScriptedAttempt(["x"]))
    outcome = _relay(provider).run()
    assert outcome.error.error_code == "upstream_auth_failed" and outcome.error.status == 502
    assert len(provider.script) == 1 and sleeps == []


def test_retries_are_bounded(sleeps) -> None:
    provider = ScriptedProvider(*[UpstreamError("upstream_unavailable", "503") for _ in range(5)])
    outcome = _relay(provider, UPSTREAM_RETRIES="2").run()
    assert outcome.error.error_code == "upstream_unavailable" and len(sleeps) == 2 and len(provider.script) == 2


def test_a_busy_servers_preemptions_do_not_spend_the_retries_a_failure_needs(sleeps) -> None:
    """Preempted before its first token by a busy server (llama.cpp's ends it without a finish
    reason; the pool says busy when the server held another request or is known to preempt), a
    request is tried again apart from UPSTREAM_RETRIES, at most MAX_BUSY_RETRIES times: the
    retries are left for a server that does fail. UPSTREAM_RETRIES=0 retries nothing; a request
    that ended early alone on its server is a failure like any."""
    busy = UpstreamError("upstream_interrupted", "early", log_fields={"upstream_ended": ENDED_EARLY, "busy": True})
    down = UpstreamError("upstream_unavailable", "refused")
    provider = ScriptedProvider(busy, busy, busy, down, down, ScriptedAttempt(["x"]))
    outcome = _relay(provider, UPSTREAM_RETRIES="2", TIMEOUT_SECONDS="300").run()
    assert outcome.error is None and outcome.text == "x" and len(sleeps) == 5
    endless = ScriptedProvider(*[busy] * (opening.MAX_BUSY_RETRIES + 5))
    outcome = _relay(endless, UPSTREAM_RETRIES="2", TIMEOUT_SECONDS="300").run()
    assert outcome.error.error_code == "upstream_interrupted" and len(endless.script) == 4, "bounded"
    provider = ScriptedProvider(busy, ScriptedAttempt(["x"]))
    assert _relay(provider, UPSTREAM_RETRIES="0").run().error is not None and len(provider.script) == 1
    alone = UpstreamError("upstream_interrupted", "early", log_fields={"upstream_ended": ENDED_EARLY})
    provider = ScriptedProvider(alone, alone, alone, ScriptedAttempt(["x"]))
    assert _relay(provider, UPSTREAM_RETRIES="2").run().error is not None, "ended early, alone: a failure"


def test_retry_after_beyond_the_deadline_gives_up_at_once(sleeps) -> None:
    limited = UpstreamError("upstream_rate_limited", "429", retry_after=60)
    provider = ScriptedProvider(limited, ScriptedAttempt(["x"]))
    outcome = _relay(provider).run()
    assert outcome.error.error_code == "upstream_rate_limited" and sleeps == []
    assert outcome.error.retry_after == 60


def test_first_token_deadline_closes_the_generation() -> None:
    slow = ScriptedAttempt(["late"], delay=5)
    outcome = _relay(ScriptedProvider(slow), TIMEOUT_SECONDS="0.1", UPSTREAM_RETRIES="0").run()
    assert outcome.error.error_code == "upstream_timeout" and "TIMEOUT_SECONDS" in outcome.error.detail
    assert slow.closed


def test_total_deadline_keeps_the_partial_reply() -> None:
    slow = ScriptedAttempt(["a", "b", "c", "d"], delay=0.1)
    outcome = _relay(ScriptedProvider(slow), MAX_STREAM_SECONDS="0.25").run()
    assert outcome.error.error_code == "upstream_timeout" and "MAX_STREAM_SECONDS" in outcome.error.detail
    assert outcome.text in ("a", "ab") and slow.closed


def _stopped_midway(reason: StreamCancelled) -> tuple[Recorder, ScriptedAttempt]:
    """A generation of four pieces 50 ms apart, stopped with `reason` after the second."""
    generation = ScriptedAttempt(["one ", "two ", "three ", "four "], delay=0.05)
    listener = Recorder()
    producer = gevent.spawn(_relay(ScriptedProvider(generation), listener).run)
    gevent.sleep(0.12)
    producer.kill(reason, block=True)
    return listener, generation


def test_cancel_ends_with_cancelled_and_partial_usage() -> None:
    listener, generation = _stopped_midway(StreamCancelled())
    outcome = listener.ends[0]
    assert len(listener.ends) == 1
    assert outcome.finish_reason == "cancelled" and outcome.error is None
    assert outcome.usage == Usage(10, len(listener.chunks), estimated=True) and 1 <= len(listener.chunks) < 4
    assert generation.closed


def test_cancel_during_backoff() -> None:
    provider = ScriptedProvider(UpstreamError("upstream_unavailable", "503"), ScriptedAttempt(["x"]))
    listener = Recorder()
    producer = gevent.spawn(_relay(provider, listener, TIMEOUT_SECONDS="30").run)
    gevent.sleep(0.01)
    producer.kill(StreamCancelled(), block=True)
    assert listener.ends[0].finish_reason == "cancelled" and listener.chunks == []


def test_a_bug_becomes_internal_error() -> None:
    outcome = _relay(ScriptedProvider(ValueError("bug"))).run()
    assert outcome.error.error_code == "internal_error" and outcome.error.status == 500


def test_a_stop_while_the_first_chunk_is_written_closes_the_upstream() -> None:
    """The first chunk is emitted inside the generation's block: a cancellation raised while
    it is written (the writer yields to the followers there) still closes the upstream."""

    class StoppedAtFirstChunk(Recorder):
        def chunk(self, content: str) -> None:
            super().chunk(content)
            raise StreamCancelled()

    generation = ScriptedAttempt(["a", "b"])
    listener = StoppedAtFirstChunk()
    outcome = _relay(ScriptedProvider(generation), listener).run()
    assert outcome.finish_reason == "cancelled" and listener.chunks == ["a"]
    assert generation.closed and len(listener.ends) == 1


def test_a_restart_ends_the_generation_with_its_error_and_keeps_the_partial_reply() -> None:
    from app.generation.cancel import restarting

    listener, generation = _stopped_midway(restarting())
    outcome = listener.ends[0]
    assert outcome.error is not None and outcome.error.error_code == "service_restarting"
    assert outcome.error.retry_after == 1.0 and outcome.finish_reason is None
    assert outcome.text == "".join(listener.chunks) and 1 <= len(listener.chunks) < 4
    assert generation.closed


def test_a_reply_longer_than_max_tokens_allows_is_a_bad_response() -> None:
    """An upstream whose pieces hold more characters than max_tokens (5 here) can is cut before
    it fills memory."""
    flood = ScriptedAttempt(["x" * 20_000] * 5)
    listener = Recorder()
    outcome = _relay(ScriptedProvider(flood), listener).run()
    assert outcome.error is not None and outcome.error.error_code == "upstream_bad_response"
    assert "max_tokens" in outcome.error.detail
    assert len(listener.chunks) == 3 and flood.closed


@pytest.mark.parametrize("batch", [1, 3])
def test_a_reply_is_cut_at_the_tokens_reserved_whatever_the_upstream_was_told(batch: int) -> None:
    """An upstream that reads a limit of its own (llama.cpp's n_predict) or none goes on past
    max_tokens (5 here): the reply ends there, as at its length, and the upstream is let go."""
    flood = BatchedAttempt(["tok "] * 1000, size=batch)
    listener = Recorder()
    outcome = _relay(ScriptedProvider(flood), listener).run()
    assert outcome.error is None and outcome.finish_reason == "length"
    assert outcome.text == "tok " * 5 and "".join(listener.chunks) == outcome.text and flood.closed
    assert outcome.usage.completion_tokens == 5 and outcome.usage.estimated


class BatchedAttempt(ScriptedAttempt):
    """Its pieces `size` at a time, as an HTTP upstream's reads give them."""

    def __init__(self, pieces: list, size: int) -> None:
        super().__init__(pieces)
        self.size = size

    def reads(self):
        pieces = list(self)
        for start in range(0, len(pieces), self.size):
            yield pieces[start : start + self.size]


def test_a_batch_that_breaks_the_bound_delivers_the_pieces_before_it() -> None:
    """Pieces read together are kept and written as one batch; where one of them passes the
    reply's bound, those before it are still written, as they would be one by one."""
    flood = BatchedAttempt(["x" * 20_000] * 5, size=3)
    listener = Recorder()
    outcome = _relay(ScriptedProvider(flood), listener).run()
    assert outcome.error is not None and outcome.error.error_code == "upstream_bad_response"
    one_by_one = Recorder()
    _relay(ScriptedProvider(ScriptedAttempt(["x" * 20_000] * 5)), one_by_one).run()
    assert listener.chunks == one_by_one.chunks and outcome.text == "".join(listener.chunks) and flood.closed


@pytest.mark.parametrize("code", ["upstream_rate_limited", "upstream_unavailable"])
def test_rate_limits_and_outages_without_a_delay_get_the_backoff_estimate(sleeps, code) -> None:
    outcome = _relay(ScriptedProvider(*[UpstreamError(code, "x")] * 3)).run()
    assert outcome.error.error_code == code
    assert outcome.error.retry_after == 2.0  # 0.25 s doubled per retry: the next wait after 2 retries
    given = _relay(ScriptedProvider(*[UpstreamError(code, "x", retry_after=0.01)] * 3)).run()
    assert given.error.retry_after == 0.01


@pytest.mark.parametrize("typed", [True, False])
def test_text_with_log_probabilities_is_the_replys_text_in_every_family(typed: bool) -> None:
    """A family that carries typed deltas gets the log probabilities with the text; the others
    (the native API) get the text alone: never nothing."""
    entries = [{"token": "He", "logprob": -0.1}]
    pieces = [Delta(LOGPROBS, "He", data=entries), "llo"]
    recorder = Recorder()
    config = load_settings({"TIMEOUT_SECONDS": "2"}, environ={"OPENAI_API_KEY": "sk-x"})
    call = dataclasses.replace(CALL, typed=typed)
    account = Account(call, 10, Origin("c", "s"))
    outcome = Relay(ScriptedProvider(ScriptedAttempt(pieces)), config, account, recorder, metrics=Metrics()).run()
    assert outcome.text == "Hello"
    if typed:
        assert recorder.chunks == pieces and outcome.parts is not None and outcome.parts.logprobs == entries
    else:
        assert recorder.chunks == ["He", "llo"] and outcome.parts is None


def test_log_probabilities_without_text_still_end_an_endless_reply() -> None:
    """A hostile upstream that sends log-probability entries with no text forever is cut at
    max_tokens as any reply (each entry counts)."""
    entry = [{"token": "", "logprob": -0.1}]
    flood = ScriptedAttempt([Delta(LOGPROBS, "", data=entry)] * 100_000)
    config = load_settings({"TIMEOUT_SECONDS": "2"}, environ={"OPENAI_API_KEY": "sk-x"})
    call = dataclasses.replace(CALL, typed=True)
    account = Account(call, 10, Origin("c", "s"))
    outcome = Relay(ScriptedProvider(flood), config, account, Recorder(), metrics=Metrics()).run()
    assert outcome.error is None and outcome.finish_reason == "length"
    assert flood.closed
