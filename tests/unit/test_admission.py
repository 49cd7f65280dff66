"""Fair admission (ADMISSION_WAIT_SECONDS): waiters served round-robin across keys, FIFO within
one, told their place; past the wait server_busy; no wait at all when it is 0."""

from __future__ import annotations

import gevent
import pytest

from app.errors import ApiError
from app.http.admission import Gate, waited


class Slots:
    """MAX_STREAMS slots: open one or answer server_busy."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.opened: list[str] = []

    def opener(self, who: str):
        def open_slot() -> str:
            if self.free <= 0:
                raise ApiError("server_busy", "full")
            self.free -= 1
            self.opened.append(who)
            return who

        return open_slot

    def has_room(self) -> bool:
        return self.free > 0


def _queue(gate: Gate, slots: Slots, key: str, who: str, places: dict[str, list[int]]) -> gevent.Greenlet:
    def run() -> str:
        opened = gate.try_now(key, slots.opener(who))
        if opened is not None:
            return opened
        turns = gate.turns(key, slots.opener(who), slots.has_room, tick_seconds=60)
        while True:
            try:
                place = next(turns)
            except StopIteration as done:
                return done.value
            if place is not None:
                places.setdefault(who, []).append(place)

    return gevent.spawn(run)


def test_a_busy_key_cannot_starve_another() -> None:
    gate, slots, places = Gate(5.0), Slots(0), {}
    a1 = _queue(gate, slots, "busy", "a1", places)
    gevent.sleep(0.01)
    a2 = _queue(gate, slots, "busy", "a2", places)
    gevent.sleep(0.01)
    b1 = _queue(gate, slots, "other", "b1", places)
    gevent.sleep(0.01)
    assert gate.waiting == 3
    assert places == {"a1": [0], "a2": [1], "b1": [1]}, "round by round: a1, then b1 beside a2"
    gate._served["busy"] = 1.0  # the busy key was served just now; the other never
    slots.free = 1
    gate.notify()
    gevent.sleep(0.05)
    assert slots.opened == ["b1"], "the key served longest ago goes first"
    slots.free = 2
    gate.notify()
    gevent.joinall([a1, a2, b1], timeout=2)
    assert slots.opened == ["b1", "a1", "a2"] and gate.waiting == 0


def test_a_new_request_queues_behind_the_waiting_ones() -> None:
    gate, slots, places = Gate(5.0), Slots(0), {}
    first = _queue(gate, slots, "k", "first", places)
    gevent.sleep(0.01)
    slots.free = 1  # freed elsewhere (Redis): no notify; the head waiter finds it when it looks
    late = _queue(gate, slots, "k", "late", places)
    gevent.joinall([first], timeout=2)
    assert first.value == "first" and slots.opened == ["first"]
    slots.free = 1
    gate.notify()
    gevent.joinall([late], timeout=2)
    assert late.value == "late"


def test_past_the_wait_server_busy_and_the_queue_is_left() -> None:
    gate, slots = Gate(0.3), Slots(0)
    assert gate.try_now("k", slots.opener("x")) is None
    with pytest.raises(ApiError) as raised:
        waited(gate.turns("k", slots.opener("x"), slots.has_room, 60))
    assert raised.value.error_code == "server_busy" and "0.3 s" in raised.value.detail
    assert gate.waiting == 0 and gate._queues == {}


def test_without_a_wait_busy_is_at_once_and_other_errors_pass_through() -> None:
    gate, slots = Gate(0.0), Slots(0)
    with pytest.raises(ApiError) as raised:
        gate.try_now("k", slots.opener("x"))
    assert raised.value.detail == "full", "the store's own words"

    def failing() -> str:
        raise ApiError("store_unavailable", "down")

    with pytest.raises(ApiError) as raised:
        Gate(5.0).try_now("k", failing)
    assert raised.value.error_code == "store_unavailable"


def test_a_waiter_that_leaves_frees_its_place() -> None:
    gate, slots, places = Gate(5.0), Slots(0), {}
    leaver = _queue(gate, slots, "k", "leaver", places)
    gevent.sleep(0.01)
    stayer = _queue(gate, slots, "k", "stayer", places)
    gevent.sleep(0.01)
    leaver.kill()
    gevent.sleep(0.3)
    assert places["stayer"] == [1, 0] and gate.waiting == 1
    slots.free = 1
    gate.notify()
    gevent.joinall([stayer], timeout=2)
    assert stayer.value == "stayer"
