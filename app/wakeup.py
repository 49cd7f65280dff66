"""Wakeup: how a stream's producer wakes its followers right after it yields, how a new
greenlet (a producer, a connection's handler) runs before anything else the loop has ready
(`run_first`), and how a client on this machine reads what the worker wrote at once
(`let_local_reader_run`).

A gevent Event wakes its waiters through `loop.run_callback`, and the loop runs such
callbacks only once it has handled every other event of the current turn. On a busy worker
a turn is dozens of upstream reads, so a token waited for all of them before its follower
wrote it to the client (0.32 ms typical, 1.66 ms at the 99th percentile, with 100 streams;
`load/relay_latency.py`).

Here `notify` feeds an event to a watcher that is never started (libev's `ev_feed_event`).
libev runs that watcher's callback as a pending event of the current turn, and runs the
most recently added pending event first. So the followers run as soon as the producer
yields, which is usually when it waits for the next upstream read. Each follower writes
before any other upstream read is handled.

The waits and the wakeups all happen in one OS thread, on its gevent hub.
"""

from __future__ import annotations

import os

from gevent import Greenlet, get_hub, getcurrent
from gevent.hub import Waiter

# libev's EV_CUSTOM: an event type of its own, so it can never be mistaken for I/O or a timer.
_EV_CUSTOM = 0x01000000


class Wakeup:
    """Greenlets wait until the next `notify`; one notify wakes every greenlet waiting then."""

    __slots__ = ("_hub", "_waiters", "_watcher")

    def __init__(self) -> None:
        self._hub = get_hub()
        self._waiters: list[Waiter] = []
        loop = self._hub.loop
        # A timer that is never started, only fed; None where the loop cannot feed (libuv).
        self._watcher = loop.timer(0) if _feeds_events(loop) else None

    def wait(self) -> None:
        """Block the current greenlet until the next notify."""
        waiter = Waiter(self._hub)
        self._waiters.append(waiter)
        try:
            waiter.get()
        finally:
            if waiter in self._waiters:  # left by a kill or timeout rather than a notify
                self._waiters.remove(waiter)

    def notify(self) -> None:
        """Wake every waiting greenlet as soon as the caller yields to the hub."""
        if not self._waiters:
            return
        if self._watcher is None:
            self._hub.loop.run_callback(self._wake_all)  # the way a gevent Event does it
        else:
            self._watcher.feed(_EV_CUSTOM, self._wake_all)

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.switch(None)


def _feeds_events(loop: object) -> bool:
    """Whether the gevent loop is libev's (the default), whose watchers can be fed events."""
    return type(loop).__module__.startswith("gevent.libev")


def run_first(greenlet: Greenlet) -> None:
    """Run a greenlet that was just spawned now, ahead of every event the loop has ready;
    return once it waits for something (or ends).

    `spawn` queues the start behind the loop's pending events: on a busy worker, dozens of
    upstream reads. Switching to the greenlet directly skips them; its `run` cancels the
    queued start. A calling greenlet is queued to resume the way `gevent.sleep(0)` would;
    the hub itself (a server accepting in a loop callback) carries on where it was as soon
    as the greenlet waits, as it does after any wake-up it hands to a greenlet.
    """
    caller = getcurrent()
    hub = get_hub()
    if caller is not hub:
        hub.loop.run_callback(caller.switch)
    greenlet.switch()


def let_local_reader_run() -> None:
    """Give up the worker's CPU for a moment, right after a write that a client waits for.

    Linux wakes the reader of a local socket on the writer's CPU, expecting the writer to
    sleep next. The worker goes on instead (its bookkeeping, the next upstream read, the
    other streams), and a client on the same machine waited for it: at 100 streams, 0.14-0.34
    ms before it read the first token, against 0.03 ms with this. ChatWait calls it twice per
    response: after the response head (the added first token p50 fell by a further 0.10-0.16
    ms) and after a new stream's first chunk. It is one system call, which returns at once
    when nothing else waits for the CPU, as when the client is on another machine.
    """
    os.sched_yield()
