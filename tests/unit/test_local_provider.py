"""The embedded model's plumbing with a stand-in model: threadpool steps, the FIFO instance
pool, and that an instance is reused only after its last step has finished."""

from __future__ import annotations

import threading
import time

import gevent
import pytest
from gevent.queue import Queue

from app.generation.cancel import StreamCancelled
from app.providers.base import UpstreamError
from app.providers.call import ChatCall, Usage
from app.providers.local.attempt import Lease, LocalAttempt
from app.providers.local.waiting_line import WaitingLine

CALL = ChatCall(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=5)


class FakeLlama:
    """Yields OpenAI-style chunks, sleeping in the calling (pool) thread like real decoding."""

    def __init__(self, pieces: list[str], step_seconds: float = 0.0, finish: str | None = "stop") -> None:
        self.pieces, self.step_seconds, self.finish = pieces, step_seconds, finish
        self.busy = threading.Lock()
        self.overlapped = False
        self.closed_generators = 0
        self.options: dict = {}

    def create_chat_completion(self, **options):
        self.options = options

        def chunks():
            try:
                for piece in self.pieces:
                    yield self._step({"content": piece}, None)
                yield self._step({}, self.finish)
            finally:
                self.closed_generators += 1

        return chunks()

    def _step(self, delta, finish):
        if not self.busy.acquire(blocking=False):
            self.overlapped = True
            self.busy.acquire()
        try:
            time.sleep(self.step_seconds)
        finally:
            self.busy.release()
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _lease(llama: FakeLlama, pool: Queue | None = None, idle: float = 5.0) -> Lease:
    return Lease(llama, (pool if pool is not None else Queue()).put, idle)


def test_generation_yields_pieces_and_finish_reason() -> None:
    llama = FakeLlama(["Hel", "lo"])
    call = ChatCall(model="m", messages=[], max_tokens=7, temperature=0.5)
    generation = LocalAttempt(_lease(llama), call, repeat_penalty=1.2)
    assert list(generation) == ["Hel", "lo"] and generation.finish_reason == "stop"
    assert llama.options == {"messages": [], "max_tokens": 7, "stream": True, "temperature": 0.5, "repeat_penalty": 1.2}


class WordCounter:
    """Counts tokens as words, the way a model's own tokenizer would count its tokens."""

    def prompt_tokens(self, messages) -> int:
        return sum(len(m["content"].split()) for m in messages) + 10

    def completion_tokens(self, text: str) -> int:
        return len(text.split())


def test_usage_is_the_models_own_count_not_an_estimate() -> None:
    generation = LocalAttempt(_lease(FakeLlama(["one ", "two ", "three"])), CALL, counter=WordCounter())
    assert list(generation) == ["one ", "two ", "three"]
    assert generation.usage == Usage(11, 3) and generation.usage.source == "upstream"


def test_a_generation_stopped_early_reports_no_usage_of_its_own() -> None:
    generation = LocalAttempt(_lease(FakeLlama(["one ", "two"])), CALL, counter=WordCounter())
    pieces = iter(generation)
    next(pieces)
    generation.close()
    assert list(pieces) == [], "nothing more once closed"
    assert generation.usage is None, "the relay counts what was sent (estimated)"


def test_steps_run_off_the_event_loop() -> None:
    llama = FakeLlama(["a"] * 5, step_seconds=0.05)
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(100)])
    list(LocalAttempt(_lease(llama), CALL))
    ticker.kill()
    assert len(ticks) >= 10, "other greenlets ran while the model computed"


def test_a_model_that_ends_without_finish_reason_is_an_error() -> None:
    with pytest.raises(UpstreamError) as raised:
        list(LocalAttempt(_lease(FakeLlama(["a"], finish=None)), CALL))
    assert raised.value.error_code == "upstream_interrupted"


def test_idle_deadline() -> None:
    llama = FakeLlama(["slow"], step_seconds=0.5)
    with pytest.raises(UpstreamError) as raised:
        list(LocalAttempt(_lease(llama, idle=0.1), CALL))
    assert raised.value.error_code == "upstream_timeout" and "IDLE_TIMEOUT_SECONDS" in raised.value.detail


def test_cancel_releases_the_instance_only_after_the_step_in_flight() -> None:
    llama = FakeLlama(["a"] * 50, step_seconds=0.05)
    pool: Queue = Queue()
    got: list[str] = []

    def run() -> None:
        lease = _lease(llama, pool)
        generation = LocalAttempt(lease, CALL)
        try:
            with generation:
                for piece in generation:
                    got.append(piece)
        finally:
            lease.release()

    producer = gevent.spawn(run)
    deadline = time.monotonic() + 10  # the first piece, however long a loaded machine takes to step
    while not got and time.monotonic() < deadline:
        gevent.sleep(0.01)
    seen = len(got)
    producer.kill(StreamCancelled(), block=True)
    assert seen >= 1 and len(got) <= seen + 1, "the stop lands at once, not after the reply"
    assert pool.qsize() == 0, "the step in flight still owns the instance"
    instance = pool.get(timeout=1)  # handed back once that step finished
    assert instance is llama and llama.closed_generators == 1 and not llama.overlapped


def test_waiters_are_served_first_come_first_served_and_told_their_place() -> None:
    line = WaitingLine(["instance"])
    order: list[int] = []
    heard: dict[int, list[int]] = {index: [] for index in range(5)}

    def waiter(index: int) -> None:
        item = line.take(heard[index].append)
        order.append(index)
        gevent.sleep(0.01)
        line.give_back(item)

    greenlets = []
    for index in range(5):
        greenlets.append(gevent.spawn(waiter, index))
        gevent.sleep(0)
    gevent.joinall(greenlets, timeout=2)
    assert order == [0, 1, 2, 3, 4]
    assert heard[0] == []  # served at once: never waited
    assert heard[1] == [1, 0] and heard[2] == [2, 1, 0] and heard[4] == [4, 3, 2, 1, 0]
    assert len(line) == 0 and line.take() == "instance"


def test_a_waiter_that_leaves_moves_the_ones_behind_it_up() -> None:
    line = WaitingLine(["instance"])
    held = line.take()
    heard: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    greenlets = {name: gevent.spawn(line.take, heard[name].append) for name in heard}
    gevent.sleep(0)
    assert len(line) == 3 and heard == {"a": [1], "b": [2], "c": [3]}
    greenlets["b"].kill(StreamCancelled(), block=True)
    assert len(line) == 2 and heard["a"] == [1] and heard["c"] == [3, 2]
    line.give_back(held)
    assert greenlets["a"].get(timeout=1) == "instance" and heard["c"] == [3, 2, 1]


def test_a_waiter_cancelled_as_it_is_served_passes_the_instance_on() -> None:
    line = WaitingLine(["instance"])
    held = line.take()
    first = gevent.spawn(line.take)
    second = gevent.spawn(line.take)
    gevent.sleep(0)
    first.kill(StreamCancelled(), block=False)  # the kill lands after it is served, before it runs
    line.give_back(held)
    first.join(timeout=1)
    assert isinstance(first.exception, StreamCancelled)
    assert second.get(timeout=1) == "instance" and len(line) == 0


def test_an_outer_deadline_is_not_mistaken_for_the_idle_one() -> None:
    llama = FakeLlama(["slow"], step_seconds=0.5)
    outer = gevent.Timeout(0.1)
    with pytest.raises(gevent.Timeout) as raised, outer:
        list(LocalAttempt(_lease(llama, idle=5), CALL))
    assert raised.value is outer
