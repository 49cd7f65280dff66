"""run_first: a just-spawned greenlet runs before what the loop already has ready, once."""

from __future__ import annotations

import gevent
from gevent import get_hub

from app.hub.scheduling import Wakeup, run_first


def test_the_greenlet_runs_before_ready_callbacks_and_the_caller_resumes_after_it_waits() -> None:
    order: list[str] = []

    def producer() -> None:
        order.append("producer starts")
        gevent.sleep(0.01)
        order.append("producer ends")

    def caller() -> None:
        get_hub().loop.run_callback(order.append, "ready callback")
        greenlet = gevent.spawn(producer)
        run_first(greenlet)
        order.append("caller resumes")
        greenlet.join()

    gevent.spawn(caller).join()
    assert order == ["producer starts", "ready callback", "caller resumes", "producer ends"]


def test_a_greenlet_that_ends_without_waiting_runs_once_and_the_caller_resumes() -> None:
    runs: list[int] = []

    def caller() -> gevent.Greenlet:
        greenlet = gevent.spawn(runs.append, 1)
        run_first(greenlet)
        return greenlet

    done = gevent.spawn(caller)
    greenlet = done.get(timeout=5)
    gevent.sleep(0.01)  # the start queued by spawn has had its turn
    assert runs == [1] and greenlet.successful() and greenlet.dead


def test_a_greenlet_that_raises_reports_like_a_spawned_one() -> None:
    def fails() -> None:
        raise ValueError("boom")

    def caller() -> gevent.Greenlet:
        greenlet = gevent.spawn(fails)
        run_first(greenlet)
        return greenlet

    greenlet = gevent.spawn(caller).get(timeout=5)
    assert isinstance(greenlet.exception, ValueError)


def test_from_the_hub_the_greenlet_runs_at_once_and_the_hub_carries_on_when_it_waits() -> None:
    """As a server calls it from its accept callback, which runs in the hub."""
    order: list[str] = []
    hub = get_hub()

    def handler() -> None:
        order.append("handler starts")
        gevent.sleep(0.01)
        order.append("handler ends")

    def accept_callback() -> None:
        assert gevent.getcurrent() is hub
        hub.loop.run_callback(order.append, "ready callback")
        run_first(gevent.spawn(handler))
        order.append("hub carries on")

    hub.loop.run_callback(accept_callback)
    gevent.sleep(0.05)
    assert order == ["handler starts", "hub carries on", "ready callback", "handler ends"]


def test_a_greenlet_a_notify_woke_is_seen_ending_before_the_loop_next_blocks() -> None:
    """A notify from the loop's callback phase (a producer resumed by a callback) wakes a follower
    that ends; whoever joins the follower hears of its end at once, not at the loop's next timer
    (a waited-for Responses request answered up to a second late)."""
    wakeup = Wakeup()
    follower = gevent.spawn(wakeup.wait)
    gevent.sleep(0)  # the follower waits
    late: list[bool] = []
    timer = get_hub().loop.timer(5.0)
    timer.start(late.append, True)
    try:
        get_hub().loop.run_callback(wakeup.notify)
        follower.join(timeout=10)
        assert follower.dead and not late, "the join waited for the next timer"
    finally:
        timer.close()
