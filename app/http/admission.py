"""Fair admission when MAX_STREAMS is reached: with ADMISSION_WAIT_SECONDS > 0 a new stream waits
for a slot instead of an instant 503, served round-robin across client keys (the key served
longest ago goes first, so one busy key cannot starve the others), FIFO within a key. Past the
wait: 503 server_busy. A worker's queue is its own; slots freed elsewhere (Redis) are found by
the head waiter looking again every POLL_SECONDS, slots freed here wake it at once.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Generator
from typing import TypeVar

import gevent

from ..errors import ApiError
from ..hub.scheduling import Wakeup

T = TypeVar("T")
POLL_SECONDS = 0.25
MAX_WAITERS = 1_000  # past this many waiting, a request is refused at once


class Waiter:
    """One request waiting for a slot."""

    __slots__ = ("flagged", "key", "wakeup")

    def __init__(self, key: str) -> None:
        self.key = key
        self.wakeup = Wakeup()
        self.flagged = False  # woken while it was not waiting: it looks again at once

    def wake(self) -> None:
        self.flagged = True
        self.wakeup.notify()

    def sleep(self, seconds: float) -> None:
        """Until woken, or `seconds` at most."""
        if not self.flagged:
            with gevent.Timeout(seconds, False):
                self.wakeup.wait()
        self.flagged = False


class Gate:
    """The waiting requests of this worker, by key name."""

    def __init__(self, wait_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.wait_seconds = wait_seconds
        self.clock = clock
        self._queues: dict[str, collections.deque[Waiter]] = {}
        self._served: dict[str, float] = {}  # by key name: when it last got a slot (bounded by MAX_KEYS)
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Requests waiting now."""
        return self._waiting

    def try_now(self, key: str, open_slot: Callable[[], T]) -> T | None:
        """`open_slot()` now if nobody waits; None when the request is to wait its turn (`turns`);
        ApiError(server_busy) when it may not wait."""
        if not self._waiting:
            try:
                return self._served_now(key, open_slot())
            except ApiError as busy:
                if busy.error_code != "server_busy" or self.wait_seconds <= 0:
                    raise
        if self.wait_seconds <= 0 or self._waiting >= MAX_WAITERS:
            raise _busy(0.0)
        return None

    def turns(
        self, key: str, open_slot: Callable[[], T], has_room: Callable[[], bool], tick_seconds: float
    ) -> Generator[int | None, None, T]:
        """Wait in turn for a slot, up to ADMISSION_WAIT_SECONDS: yields how many are served first
        whenever that changes (None every `tick_seconds` otherwise: a keepalive), and returns
        what `open_slot()` opened; ApiError(server_busy) past the wait."""
        waiter = Waiter(key)
        deadline = self.clock() + self.wait_seconds
        self._queues.setdefault(key, collections.deque()).append(waiter)
        self._waiting += 1
        told, ticked = -1, self.clock()
        try:
            while True:
                ahead = self.ahead_of(waiter)
                if ahead == 0 and has_room():
                    try:
                        return self._served_now(key, open_slot())
                    except ApiError as busy:
                        if busy.error_code != "server_busy":
                            raise
                if ahead != told or self.clock() - ticked >= tick_seconds:
                    yield None if ahead == told else ahead
                    told, ticked = ahead, self.clock()
                left = deadline - self.clock()
                if left <= 0:
                    raise _busy(self.wait_seconds)
                waiter.sleep(min(left, POLL_SECONDS))
        finally:
            self._leave(waiter)

    def notify(self) -> None:
        """A slot may have freed here: wake the waiter whose turn it is."""
        head = self._head()
        if head is not None:
            head.wake()

    def ahead_of(self, waiter: Waiter) -> int:
        """How many waiters are served before `waiter`: round by round, each key's next waiter in
        the order of when the keys were last served."""
        order = self._order()
        queue = self._queues[waiter.key]
        index = queue.index(waiter)
        rank = order.index(waiter.key)
        ahead = sum(min(len(self._queues[key]), index) for key in order)
        return ahead + sum(1 for key in order[:rank] if len(self._queues[key]) > index)

    def _order(self) -> list[str]:
        return sorted(self._queues, key=lambda key: self._served.get(key, float("-inf")))

    def _head(self) -> Waiter | None:
        order = self._order()
        return self._queues[order[0]][0] if order else None

    def _served_now(self, key: str, opened: T) -> T:
        self._served[key] = self.clock()
        return opened

    def _leave(self, waiter: Waiter) -> None:
        queue = self._queues[waiter.key]
        queue.remove(waiter)
        if not queue:
            del self._queues[waiter.key]
        self._waiting -= 1
        self.notify()  # the next in turn looks now (a slot, or its turn)


def _busy(waited: float) -> ApiError:
    if waited:
        return ApiError(
            "server_busy", f"Every stream slot (MAX_STREAMS) stayed taken for {waited:g} s (ADMISSION_WAIT_SECONDS)."
        )
    return ApiError("server_busy", "Every stream slot (MAX_STREAMS) holds a live stream, and too many requests wait.")


def waited(turns: Generator[int | None, None, T]) -> T:
    """What `turns` opens, waiting here (no client to tell its place)."""
    while True:
        try:
            next(turns)
        except StopIteration as done:
            return done.value

