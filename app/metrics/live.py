"""Gauges of what is open now (generations, followers, generations per server and per key),
counted in this process and written to Prometheus when sampled: each second, and before this
process answers a scrape. A request opens and closes each of them, so writing every change (an
mmap write each under gunicorn) cost every request writes that net to zero. The gauges sampled
each second (streams held, replies queued, the response cache's size) are written only when
they changed: an idle worker writes nothing."""

from __future__ import annotations

from typing import Any


class LiveGauges:
    """This process's counts of open things, by gauge child; `flush` writes those that changed."""

    __slots__ = ("_counts", "_written")

    def __init__(self) -> None:
        self._counts: dict[Any, int] = {}
        self._written: dict[Any, int] = {}

    def add(self, child: Any, delta: int) -> None:
        """One more (or fewer, with a negative `delta`) open on `child` (a gauge or a labelled child)."""
        self._counts[child] = self._counts.get(child, 0) + delta

    def put(self, child: Any, value: int) -> None:
        """`child` holds `value` now (a sampled gauge: written at the next flush only if it changed)."""
        self._counts[child] = value

    def flush(self) -> None:
        """Write each count that changed since the last flush to its gauge."""
        written = self._written
        for child, count in self._counts.items():
            if written.get(child) != count:
                child.set(count)
                written[child] = count
