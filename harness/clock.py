"""The fake upstream's timing: wake-ups at exact times (`PreciseClock`), and one streamed reply's
sending, each frame at its time, watching for the client closing (`Sending`). Imported by
`fake_openai` beside it, once gevent has patched."""

from __future__ import annotations

import heapq
import time

import gevent
import gevent.event
from gevent import monkey


class ClientGone(Exception):
    """The client closed the connection."""


class PreciseClock:
    """Wake-ups at exact times: gevent's timers ride on epoll's millisecond timeouts and fire up
    to a millisecond late, so one real OS thread sleeps until each due time (sub-millisecond
    precision) and then wakes the waiting greenlet through the hub."""

    def __init__(self) -> None:
        allocate_lock = monkey.get_original("_thread", "allocate_lock")
        self._mutex = allocate_lock()
        self._wake = allocate_lock()
        self._wake.acquire()
        self._heap: list[tuple[float, int, object]] = []
        self._order = 0
        self._hub = gevent.get_hub()
        monkey.get_original("_thread", "start_new_thread")(self._run, ())

    def event_at(self, due: float):
        """An event that is set at monotonic time `due`."""
        event = gevent.event.Event()
        with self._mutex:
            self._order += 1
            heapq.heappush(self._heap, (due, self._order, event))
            earliest = self._heap[0][2] is event
        if earliest and self._wake.locked():
            self._wake.release()  # the sleeper re-reads the earliest due time
        return event

    def _run(self) -> None:
        sleep = monkey.get_original("time", "sleep")
        while True:
            with self._mutex:
                due = self._heap[0][0] if self._heap else None
            delay = 1.0 if due is None else due - time.monotonic()
            if delay > 0.0002:
                if self._wake.acquire(timeout=min(delay - 0.0001, 1.0)):
                    continue
                continue
            if delay > 0:
                sleep(delay)
            fired = []
            now = time.monotonic()
            with self._mutex:
                while self._heap and self._heap[0][0] <= now + 0.00005:
                    fired.append(heapq.heappop(self._heap)[2])
            for event in fired:
                self._hub.loop.run_callback_threadsafe(event.set)


class Sending:
    """One streamed reply's sending: chunked frames on the socket, each at its time from the
    start, and a watch for the client closing (ClientGone)."""

    def __init__(self, sock, clock) -> None:
        self.sock, self.clock = sock, clock
        self.start = time.monotonic()
        self.watcher = gevent.spawn(sock.recv, 1)  # returns b"" when the client closes
        self.sent = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def wait_until(self, offset_ms: float) -> None:
        target = self.start + offset_ms / 1000
        if target > time.monotonic():
            gevent.wait([self.clock.event_at(target), self.watcher], count=1)
        if self.watcher.ready():
            raise ClientGone
