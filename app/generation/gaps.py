"""The gaps between a generation's tokens, for its `stream_completed` line: the median and the
longest, in bounded memory whatever the reply's length."""

from __future__ import annotations

import array

SAMPLE_LIMIT = 4096  # gaps kept at most; past it, every other one is dropped and the stride doubles


class Gaps:
    """Inter-token gaps: the longest exactly, the median from an evenly spaced sample."""

    __slots__ = ("_due", "_last", "_sample", "_stride", "longest")

    def __init__(self) -> None:
        self._sample = array.array("d")
        self._last: float | None = None
        self._due = 1  # gaps until the next one sampled
        self._stride = 1
        self.longest = 0.0

    def tokens_at(self, now: float, count: int = 1) -> None:
        """`count` tokens arrived together at `now` (a monotonic clock, in seconds): one gap since
        the last, then count - 1 of none."""
        last, self._last = self._last, now
        if last is not None:
            gap = now - last
            if gap > self.longest:
                self.longest = gap
            self._due -= 1
            if not self._due:
                self._sample.append(gap)
                if len(self._sample) >= SAMPLE_LIMIT:
                    self._halved()
                self._due = self._stride
        if count > 1:
            self._zeros(count - 1)

    def _zeros(self, zeros: int) -> None:
        """Gaps of none (tokens read together): every stride-th of them is sampled."""
        while zeros:
            taken = min(zeros, self._due)
            zeros -= taken
            self._due -= taken
            if not self._due:
                self._sample.append(0.0)
                if len(self._sample) >= SAMPLE_LIMIT:
                    self._halved()
                self._due = self._stride

    def _halved(self) -> None:
        """Every other gap of the sample dropped; every other one sampled from now on."""
        self._sample = self._sample[1::2]
        self._stride *= 2

    def median(self) -> float | None:
        """The median gap (None: fewer than two tokens)."""
        if not self._sample:
            return None
        ordered = sorted(self._sample)
        return ordered[len(ordered) // 2]
