"""How ChatWait's greenlets are scheduled on the gevent hub, in one place.

- `Wakeup`: a stream's producer wakes its followers as soon as it yields, ahead of the other
  events the loop has ready in the same turn (a gevent Event wakes them only after all of them).
- `run_first`: a greenlet just spawned (a stream's producer) runs at once.
- `RestartableTimer`: one (repeating) timer per waiter, rather than a Timeout per wait.

Everything here runs in one OS thread, on its gevent hub.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent.queue
from gevent import Greenlet, get_hub, getcurrent
from gevent.hub import Waiter

# libev's EV_CUSTOM: an event type of its own, so it can never be mistaken for I/O or a timer.
_EV_CUSTOM = 0x01000000


class Wakeup:
    """Greenlets wait until the next `notify`; one notify wakes every greenlet waiting then.

    `notify` feeds an event to a watcher that is never started (libev's `ev_feed_event`): libev
    runs its callback as a pending event of the current turn, most recently added first, so the
    followers run as soon as the notifying greenlet yields. Where the loop cannot feed events
    (libuv), it falls back to `run_callback`, the way a gevent Event wakes its waiters.
    """

    __slots__ = ("_hub", "_kick", "_waiters", "_watcher")

    def __init__(self) -> None:
        self._hub = get_hub()
        self._waiters: list[Waiter] = []
        loop = self._hub.loop
        fed = _feeds_events(loop)
        self._watcher = loop.timer(0) if fed else None
        self._kick = loop.timer(0) if fed else None

    def wait(self) -> None:
        """Block the current greenlet until the next notify."""
        waiter = Waiter(self._hub)
        self._waiters.append(waiter)
        try:
            waiter.get()
        except BaseException:  # left by a kill or timeout rather than a notify
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def notify(self) -> None:
        """Wake every waiting greenlet as soon as the caller yields to the hub."""
        if not self._waiters:
            return
        if self._watcher is None:
            self._hub.loop.run_callback(self._wake_all)
        else:
            self._watcher.feed(_EV_CUSTOM, self._wake_all)

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.switch(None)
        if self._kick is not None:
            # What the woken greenlets scheduled as loop callbacks (a greenlet's end told to
            # those joining it) runs at the loop's next turn; fed from the prepare phase, this
            # runs after gevent's callbacks, so without a due timer the poll would block first.
            self._kick.start(_nothing)


def _nothing() -> None:
    """A timer callback that only keeps the loop turning (see `Wakeup._wake_all`)."""


def _feeds_events(loop: object) -> bool:
    """Whether the gevent loop is libev's (the default), whose watchers can be fed events."""
    return type(loop).__module__.startswith("gevent.libev")


def run_first(greenlet: Greenlet) -> None:
    """Run a greenlet that was just spawned now, ahead of every event the loop has ready;
    return once it waits for something (or ends).

    `spawn` queues the start behind the loop's pending events (on a busy worker, dozens of
    upstream reads). Switching to the greenlet directly skips them; its `run` cancels the
    queued start. A calling greenlet is queued to resume the way `gevent.sleep(0)` would;
    the hub itself (a server accepting in a loop callback) carries on where it was as soon as
    the greenlet waits.
    """
    caller = getcurrent()
    hub = get_hub()
    if caller is not hub:
        hub.loop.run_callback(caller.switch)
    greenlet.switch()


def turn() -> float:
    """The loop's time as of its current iteration: the same for everything that runs before the
    loop next polls (libev's cached `now`)."""
    return get_hub().loop.now()


def soon(callback: Callable[[], None]) -> None:
    """Call `callback` in the hub, once the running greenlet yields to the loop (to wait on I/O,
    a timer or an event), before the loop polls for more."""
    get_hub().loop.run_callback(callback)


class RestartableTimer:
    """A repeating timer on the hub's loop: `again(callback)` (re)starts it, `close` ends it."""

    __slots__ = ("_timer",)

    def __init__(self, seconds: float) -> None:
        self._timer = get_hub().loop.timer(seconds, seconds)

    def again(self, callback: Callable[[], None]) -> None:
        """Call `callback` after the full period from now (and every period after)."""
        self._timer.again(callback)

    def stop(self) -> None:
        """Stop it until the next `again`."""
        self._timer.stop()

    def close(self) -> None:
        self._timer.close()


class Inbox:
    """A queue of at most `bound` items for one reader; `close` always gets in, after the items."""

    _CLOSED = object()

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._queue: gevent.queue.Queue = gevent.queue.Queue()

    def offer(self, item: object) -> bool:
        """Queue `item`; False (and nothing queued) when `bound` items wait already."""
        if self._queue.qsize() >= self.bound:
            return False
        self._queue.put_nowait(item)
        return True

    def close(self) -> None:
        self._queue.put_nowait(self._CLOSED)

    def take(self, timeout: float) -> object:
        """The next item; raises EOFError once closed, TimeoutError after `timeout` with none."""
        try:
            item = self._queue.get(timeout=timeout)
        except gevent.queue.Empty:
            raise TimeoutError from None
        if item is self._CLOSED:
            self._queue.put_nowait(item)  # closed for good
            raise EOFError
        return item
