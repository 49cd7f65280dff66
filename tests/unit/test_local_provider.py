"""The embedded model's plumbing with a stand-in model: threadpool steps, the FIFO instance
pool, and that an instance is reused only after its last step has finished."""

from __future__ import annotations

import threading
import time

import gevent
import pytest
from gevent.queue import Queue

from app.providers.base import ChatCall, UpstreamError
from app.providers.local import Lease, LocalGeneration
from app.streaming.stream import StreamCancelled

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
    return Lease(llama, pool if pool is not None else Queue(), idle)


def test_generation_yields_pieces_and_finish_reason() -> None:
    llama = FakeLlama(["Hel", "lo"])
    generation = LocalGeneration(_lease(llama), ChatCall(model="m", messages=[], max_tokens=7, temperature=0.5))
    assert list(generation) == ["Hel", "lo"] and generation.finish_reason == "stop"
    assert llama.options == {"messages": [], "max_tokens": 7, "stream": True, "temperature": 0.5}


def test_steps_run_off_the_event_loop() -> None:
    llama = FakeLlama(["a"] * 5, step_seconds=0.05)
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(100)])
    list(LocalGeneration(_lease(llama), CALL))
    ticker.kill()
    assert len(ticks) >= 10, "other greenlets ran while the model computed"


def test_a_model_that_ends_without_finish_reason_is_an_error() -> None:
    with pytest.raises(UpstreamError) as raised:
        list(LocalGeneration(_lease(FakeLlama(["a"], finish=None)), CALL))
    assert raised.value.error_code == "upstream_interrupted"


def test_idle_deadline() -> None:
    llama = FakeLlama(["slow"], step_seconds=0.5)
    with pytest.raises(UpstreamError) as raised:
        list(LocalGeneration(_lease(llama, idle=0.1), CALL))
    assert raised.value.error_code == "upstream_timeout" and "IDLE_TIMEOUT_SECONDS" in raised.value.detail


def test_cancel_releases_the_instance_only_after_the_step_in_flight() -> None:
    llama = FakeLlama(["a"] * 50, step_seconds=0.05)
    pool: Queue = Queue()
    got: list[str] = []

    def run() -> None:
        lease = _lease(llama, pool)
        generation = LocalGeneration(lease, CALL)
        try:
            with generation:
                for piece in generation:
                    got.append(piece)
        finally:
            lease.release()

    producer = gevent.spawn(run)
    gevent.sleep(0.12)
    producer.kill(StreamCancelled(), block=True)
    assert 1 <= len(got) <= 3
    assert pool.qsize() == 0, "the step in flight still owns the instance"
    instance = pool.get(timeout=1)  # handed back once that step finished
    assert instance is llama and llama.closed_generators == 1 and not llama.overlapped


def test_waiters_are_served_first_come_first_served() -> None:
    pool: Queue = Queue()
    pool.put("instance")
    order: list[int] = []

    def waiter(index: int) -> None:
        item = pool.get()
        order.append(index)
        gevent.sleep(0.01)
        pool.put(item)

    greenlets = []
    for index in range(5):
        greenlets.append(gevent.spawn(waiter, index))
        gevent.sleep(0)
    gevent.joinall(greenlets, timeout=2)
    assert order == [0, 1, 2, 3, 4]


def test_an_outer_deadline_is_not_mistaken_for_the_idle_one() -> None:
    llama = FakeLlama(["slow"], step_seconds=0.5)
    outer = gevent.Timeout(0.1)
    with pytest.raises(gevent.Timeout) as raised, outer:
        list(LocalGeneration(_lease(llama, idle=5), CALL))
    assert raised.value is outer
