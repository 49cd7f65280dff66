"""A sliding minute counted in one-second buckets: what a key spent in the last 60 seconds, and
when enough of it leaves the window. Bounded: at most 61 buckets, whatever the traffic. The
Redis store's script counts the same way (`shared`)."""

from __future__ import annotations

import collections

WINDOW_SECONDS = 60


class Minute:
    """Counts in the last minute, in whole-second buckets (a count at second s leaves at s + 60)."""

    __slots__ = ("_buckets", "_total")

    def __init__(self) -> None:
        self._buckets: collections.deque[list[int]] = collections.deque()  # [second, count], oldest first
        self._total = 0

    def total(self, now: float) -> int:
        """What was counted in the last minute before `now`."""
        self._prune(now)
        return self._total

    def add(self, now: float, count: int) -> None:
        """Count `count` at `now`."""
        if count <= 0:
            return
        self._prune(now)
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
        self._total += count

    def take(self, now: float, second: int, count: int) -> None:
        """Take up to `count` back off what second `second` counted, if it is still in the window."""
        if count <= 0:
            return
        self._prune(now)
        for index, bucket in enumerate(self._buckets):
            if bucket[0] == second:
                taken = min(count, bucket[1])
                bucket[1] -= taken
                self._total -= taken
                if not bucket[1]:
                    del self._buckets[index]
                return

    def free_after(self, now: float, needed: int, limit: int) -> float:
        """Seconds until the window holds at most `limit - needed` (0: it does now)."""
        self._prune(now)
        left = self._total
        for second, count in self._buckets:
            if left + needed <= limit:
                break
            left -= count
            if left + needed <= limit:
                return max(0.0, second + WINDOW_SECONDS - now)
        return 0.0 if left + needed <= limit else float(WINDOW_SECONDS)

    def reset_after(self, now: float) -> float:
        """Seconds until the oldest count leaves the window (0: nothing is counted)."""
        self._prune(now)
        return max(0.0, self._buckets[0][0] + WINDOW_SECONDS - now) if self._buckets else 0.0

    def buckets(self) -> list[list[int]]:
        """Its [second, count] buckets, oldest first (what a reload hands over)."""
        return [list(bucket) for bucket in self._buckets]

    def merge(self, buckets: list[list[int]]) -> None:
        """Add another window's buckets (a worker's that drained) to this one's."""
        counts: dict[int, int] = {}
        for second, count in [*self._buckets, *buckets]:
            counts[int(second)] = counts.get(int(second), 0) + int(count)
        self._buckets = collections.deque([second, count] for second, count in sorted(counts.items()) if count > 0)
        self._total = sum(count for _, count in self._buckets)

    def _prune(self, now: float) -> None:
        oldest = int(now) - WINDOW_SECONDS
        buckets = self._buckets
        while buckets and buckets[0][0] <= oldest:
            self._total -= buckets.popleft()[1]
