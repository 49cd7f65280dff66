"""Adaptive throttling for a server that is the only route to a model: its load is shed in
proportion to its recent failures, never cut off.

A circuit breaker that opens on a few failures turns one client's unlucky or poisonous request
into an outage for everyone when the server is the last route. Instead (Google SRE's client-side
throttling), over the last WINDOW_SECONDS each request is refused here with probability
max(0, (requests - K * accepts) / (requests + 1)), where `accepts` are the requests the server
answered: a healthy server takes everything; a failing one gets a share that shrinks with its
failure ratio; a hard-down one a trickle (a probe at least every PROBE_SECONDS), so that its
recovery is seen within seconds and traffic returns as its failures age out of the window.
Nothing is shed until failures come from `evidence` distinct requests within the window: one
request's retries never throttle the others.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable

WINDOW_SECONDS = 30
K = 2.0  # accepts each count for this many requests (SRE's K: 2 lets through about twice what succeeds)
PROBE_SECONDS = 5.0  # however high the ratio, one request tries the server this often
MAX_SHED_WAIT_SECONDS = 5.0  # Retry-After of a refused request, at most
MAX_REQUESTERS = 64  # failing requests remembered per second (distinct ones counted up to this)


class Bucket:
    """One second of the window: requests, accepts, and the failing requests (their ids)."""

    __slots__ = ("accepts", "failing", "requests", "second")

    def __init__(self, second: int) -> None:
        self.second = second
        self.requests = 0
        self.accepts = 0
        self.failing: set[int] = set()


class Throttle:
    """The window of one lone server (see the module)."""

    def __init__(self, evidence: int, clock: Callable[[], float], draw: Callable[[], float] = random.random) -> None:
        self.evidence = evidence  # distinct failing requests before anything is shed (0: never)
        self._clock = clock
        self._draw = draw
        self._buckets: collections.deque[Bucket] = collections.deque()
        self._tried_at = float("-inf")  # when a request was last let through
        self.ratio = 0.0  # the share of requests refused at the last admission
        self.retry_after: tuple[float, float] | None = None  # a 429's Retry-After: (until, seconds)

    def _now_bucket(self) -> Bucket:
        second = int(self._clock())
        while self._buckets and self._buckets[0].second <= second - WINDOW_SECONDS:
            self._buckets.popleft()
        if not self._buckets or self._buckets[-1].second != second:
            self._buckets.append(Bucket(second))
        return self._buckets[-1]

    def shed_ratio(self) -> float:
        """The share of requests refused now: 0 until `evidence` distinct requests failed."""
        self._now_bucket()
        failing: set[int] = set()
        requests = accepts = 0
        for bucket in self._buckets:
            requests += bucket.requests
            accepts += bucket.accepts
            failing |= bucket.failing
        if not self.evidence or len(failing) < self.evidence:
            return 0.0
        return max(0.0, (requests - K * accepts) / (requests + 1))

    def admit(self) -> bool:
        """Whether this request goes to the server (counted either way); `ratio` keeps the share
        refused now."""
        ratio = self.ratio = self.shed_ratio()
        now = self._clock()
        self._now_bucket().requests += 1
        if ratio <= 0.0 or now - self._tried_at >= PROBE_SECONDS or self._draw() >= ratio:
            self._tried_at = now
            return True
        return False

    def accepted(self) -> None:
        """The server answered a request (its first token, or a good end)."""
        self._now_bucket().accepts += 1
        self.retry_after = None

    def failed(self, requester: int, retry_after: float | None = None) -> None:
        """A request (`requester`: its number, the same for its retries) failed by the server's
        fault; a 429's Retry-After is kept to tell the requests refused meanwhile."""
        bucket = self._now_bucket()
        if len(bucket.failing) < MAX_REQUESTERS:
            bucket.failing.add(requester)
        if retry_after is not None:
            self.retry_after = (self._clock() + retry_after, retry_after)

    def wait_seconds(self) -> tuple[float, bool]:
        """What a refused request is told: seconds to wait, and whether the server is rate limiting."""
        if self.retry_after is not None:
            left = self.retry_after[0] - self._clock()
            if left > 0:
                return max(1.0, left), True
        return 1.0 + self._draw() * (MAX_SHED_WAIT_SECONDS - 1.0), False
