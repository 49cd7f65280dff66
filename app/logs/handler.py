"""The stdout handler: in a gevent worker, lines are formatted and written off the request's path."""

from __future__ import annotations

import collections
import logging
from typing import Any

import gevent
from gevent import monkey

# libev's EV_MINPRI: in each loop turn, due watchers run from the highest priority to this one.
LOWEST_PRIORITY = -2


class DeferredStreamHandler(logging.StreamHandler):
    """A StreamHandler that, in a gevent-patched process, writes after the caller's work.

    `emit` queues the record (its ids were stamped by the filter already) and a timer formats
    and writes everything queued FLUSH_SECONDS later, in one write, while the request waits on
    its upstream or after its first chunk has gone out. The timer has the loop's lowest
    priority, so a read or write due in the same loop turn goes first. Order is kept and
    nothing is dropped; `flush` (also at logging shutdown) writes what is queued, and a queue
    of MAX_BACKLOG records is written at once. Unpatched (the gunicorn master, unit tests), or
    called from another OS thread (llama.cpp's threadpool), it writes inline like its base class.
    """

    FLUSH_SECONDS = 0.002
    MAX_BACKLOG = 256

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: collections.deque[logging.LogRecord] = collections.deque()
        loop, self._thread_id = _patched_loop()
        self._timer = None if loop is None else loop.timer(self.FLUSH_SECONDS)
        if self._timer is not None:
            self._timer.priority = LOWEST_PRIORITY

    def handle(self, record: logging.LogRecord) -> bool:
        """Queue the record without the handler's lock where only greenlets of the loop's own
        thread can call: queueing never yields, so no other caller can interleave."""
        if not self._defers():
            return super().handle(record)
        accepted = self.filter(record)
        if accepted:
            self._queue(record)
        return bool(accepted)

    def emit(self, record: logging.LogRecord) -> None:
        if not self._defers():
            super().emit(record)
            return
        self._queue(record)

    def _defers(self) -> bool:
        """Whether this call queues: the process is patched and the caller is the loop's thread."""
        return self._timer is not None and _os_thread_id() == self._thread_id

    def _queue(self, record: logging.LogRecord) -> None:
        self._pending.append(record)
        if len(self._pending) == 1:
            self._timer.start(self.flush)
        elif len(self._pending) >= self.MAX_BACKLOG:
            self.flush()

    def flush(self) -> None:
        """Write every queued record, then flush the stream."""
        if self._timer is not None:
            self._timer.stop()
        pending = self._pending
        if pending:
            terminator = self.terminator
            lines = []
            while pending:
                record = pending.popleft()
                try:
                    lines.append(self.format(record) + terminator)
                except Exception:
                    self.handleError(record)
            self.stream.write("".join(lines))
        super().flush()


def _patched_loop() -> tuple[Any, int]:
    """The gevent loop (None unless gevent patched threading) and this OS thread's id."""
    loop = gevent.get_hub().loop if monkey.is_module_patched("threading") else None
    return loop, _os_thread_id()


# The OS thread's id, even where gevent made threading.get_ident a greenlet id.
_os_thread_id = monkey.get_original("_thread", "get_ident")
