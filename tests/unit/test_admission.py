"""Fair admission (ADMISSION_WAIT_SECONDS): waiters served round-robin across keys, FIFO within
one, told their place; past the wait server_busy; no wait at all when it is 0."""

from __future__ import annotations

import gevent
import pytest

from app.errors import ApiError
from app.service.admission import AdmissionQueue, ClientLeft, waited


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


def _queue(queue: AdmissionQueue, slots: Slots, key: str, who: str, places: dict[str, list[int]]) -> gevent.Greenlet:
    def run() -> str:
        opened = queue.try_now(key, slots.opener(who))
        if opened is not None:
            return opened
        positions = queue.positions(key, slots.opener(who), slots.has_room, tick_seconds=60)
        while True:
            try:
                place = next(positions)
            except StopIteration as done:
                return done.value
            if place is not None:
                places.setdefault(who, []).append(place)

    return gevent.spawn(run)


def test_a_busy_key_cannot_starve_another() -> None:
    queue, slots, places = AdmissionQueue(5.0), Slots(0), {}
    a1 = _queue(queue, slots, "busy", "a1", places)
    gevent.sleep(0.01)
    a2 = _queue(queue, slots, "busy", "a2", places)
    gevent.sleep(0.01)
    b1 = _queue(queue, slots, "other", "b1", places)
    gevent.sleep(0.01)
    assert queue.waiting == 3
    assert places == {"a1": [0], "a2": [1], "b1": [1]}, "round by round: a1, then b1 beside a2"
    queue._served["busy"] = 1.0  # the busy key was served just now; the other never
    slots.free = 1
    queue.notify()
    gevent.sleep(0.05)
    assert slots.opened == ["b1"], "the key served longest ago goes first"
    slots.free = 2
    queue.notify()
    gevent.joinall([a1, a2, b1], timeout=2)
    assert slots.opened == ["b1", "a1", "a2"] and queue.waiting == 0


def test_a_new_request_queues_behind_the_waiting_ones() -> None:
    queue, slots, places = AdmissionQueue(5.0), Slots(0), {}
    first = _queue(queue, slots, "k", "first", places)
    gevent.sleep(0.01)
    slots.free = 1  # freed elsewhere (Redis): no notify; the head waiter finds it when it looks
    late = _queue(queue, slots, "k", "late", places)
    gevent.joinall([first], timeout=2)
    assert first.value == "first" and slots.opened == ["first"]
    slots.free = 1
    queue.notify()
    gevent.joinall([late], timeout=2)
    assert late.value == "late"


def test_past_the_wait_server_busy_and_the_queue_is_left() -> None:
    queue, slots = AdmissionQueue(0.3), Slots(0)
    assert queue.try_now("k", slots.opener("x")) is None
    with pytest.raises(ApiError) as raised:
        waited(queue.positions("k", slots.opener("x"), slots.has_room, 60))
    assert raised.value.error_code == "server_busy" and "0.3 s" in raised.value.detail
    assert queue.waiting == 0 and queue._queues == {}


def test_without_a_wait_busy_is_at_once_and_other_errors_pass_through() -> None:
    queue, slots = AdmissionQueue(0.0), Slots(0)
    with pytest.raises(ApiError) as raised:
        queue.try_now("k", slots.opener("x"))
    assert raised.value.detail == "full", "the store's own words"

    def failing() -> str:
        raise ApiError("store_unavailable", "down")

    with pytest.raises(ApiError) as raised:
        AdmissionQueue(5.0).try_now("k", failing)
    assert raised.value.error_code == "store_unavailable"


def test_a_waiter_that_leaves_frees_its_place() -> None:
    queue, slots, places = AdmissionQueue(5.0), Slots(0), {}
    leaver = _queue(queue, slots, "k", "leaver", places)
    gevent.sleep(0.01)
    stayer = _queue(queue, slots, "k", "stayer", places)
    gevent.sleep(0.01)
    leaver.kill()
    gevent.sleep(0.3)
    assert places["stayer"] == [1, 0] and queue.waiting == 1
    slots.free = 1
    queue.notify()
    gevent.joinall([stayer], timeout=2)
    assert stayer.value == "stayer"


def _waiting(queue: AdmissionQueue, slots: Slots, key: str, who: str, ended: dict[str, ApiError]) -> gevent.Greenlet:
    """A request of `key` that takes its place at once (as the service does) and waits."""
    waiter = queue.join(key)

    def run() -> str | None:
        try:
            return waited(queue.positions(key, slots.opener(who), slots.has_room, 60, waiter))
        except ApiError as error:
            ended[who] = error
            return None

    return gevent.spawn(run)


def test_a_full_queue_gives_a_flooding_key_place_up_to_a_newcomer() -> None:
    told: list[str] = []
    queue, slots, ended = AdmissionQueue(30.0, over_share=told.append), Slots(0), {}
    flood = [_waiting(queue, slots, "flood", f"f{i}", ended) for i in range(1_000)]
    gevent.sleep(0)
    assert queue.waiting == 1_000 == queue.places
    other = _waiting(queue, slots, "other", "o1", ended)
    gevent.sleep(0.01)
    assert queue.waiting == 1_000, "one place changed hands"
    assert ended["f999"].error_code == "rate_limited" and "'flood' holds 1000 of the 1000" in ended["f999"].detail
    assert ended["f999"].status == 429 and "ADMISSION_QUEUE_SIZE" in ended["f999"].detail
    with pytest.raises(ApiError) as refused:
        queue.join("flood")
    assert refused.value.error_code == "rate_limited" and "'flood' holds 999" in refused.value.detail
    assert told == ["flood", "flood"], "each refusal and displacement is counted against the key"
    slots.free = 2
    queue.notify()
    gevent.joinall([other], timeout=2)
    assert other.value == "o1" and slots.opened == ["f0", "o1"], "served in the first round, beside the flood's first"
    gevent.killall(flood)
    assert queue.waiting == 0


def test_keys_holding_even_shares_are_refused_and_without_keys_it_is_busy() -> None:
    queue, slots, ended = AdmissionQueue(30.0, places=4), Slots(0), {}
    waiting = [_waiting(queue, slots, key, f"{key}{i}", ended) for key in ("a", "b") for i in range(2)]
    with pytest.raises(ApiError) as refused:
        queue.join("a")
    assert refused.value.error_code == "rate_limited" and ended == {}
    assert "holds 2 of the 4 places" in refused.value.detail
    gevent.killall(waiting)
    lone = AdmissionQueue(30.0, places=1)
    lone.join("")
    with pytest.raises(ApiError) as busy:
        lone.join("")
    assert busy.value.error_code == "server_busy" and busy.value.status == 503


def test_a_waiter_whose_client_hangs_up_leaves_at_once_and_never_opens() -> None:
    queue, slots, ended = AdmissionQueue(30.0), Slots(0), {}
    first = queue.join("k")
    behind = _waiting(queue, slots, "k", "behind", ended)
    runner = gevent.spawn(waited, queue.positions("k", slots.opener("first"), slots.has_room, 60, first))
    gevent.sleep(0.01)
    slots.free = 1
    queue.hang_up(first)  # its client left just as a slot freed
    assert queue.waiting == 1, "its place is given up at once"
    gevent.joinall([runner, behind], timeout=2)
    assert isinstance(runner.exception, ClientLeft) and slots.opened == ["behind"]
    queue.leave(first)  # giving the place up twice does nothing
    assert queue.waiting == 0
