"""One server's health as this worker sees it: healthy, resting after a failure (with backoff,
or for a 429's Retry-After), then tried again by one request (half-open) before it takes others."""

from __future__ import annotations

from ..base import UpstreamError
from .throttle import Throttle

REST_CEILING_SECONDS = 15.0  # doubling rests stop here (or at UPSTREAM_REST_SECONDS when larger): a
# server back from a long outage is tried again within this long, whatever the outage's length
STREAK_SECONDS = 60.0  # a rest that ended this long before the next failure starts the doubling over
RETRY_AFTER_CEILING_SECONDS = 300.0  # a 429's Retry-After rests a server at most this long
# Failure kinds (a bounded label): the server's fault, which rest it; `preempted` (a reply ended
# cleanly without a finish_reason: llama.cpp's servers end a request another one preempts) is
# the server being busy, not sick; `rejected` (401, 403, other 4xx) is the request's or the
# configuration's. Neither of the last two rests a server.
KINDS = tuple("connection unavailable rate_limited tls timeout interrupted bad_response preempted rejected".split())
RESTING_KINDS = frozenset(KINDS[:-2])
_KIND_OF_CODE = {
    "upstream_rate_limited": "rate_limited",
    "upstream_tls_failed": "tls",
    "upstream_timeout": "timeout",
    "upstream_interrupted": "interrupted",
    "upstream_bad_response": "bad_response",
}


def failure_kind(error: UpstreamError) -> str:
    """How a server failed: refused or reset (`connection`), 5xx/408/409 (`unavailable`), 429,
    TLS, no first token or silence (`timeout`), a reply cut off (`interrupted`) or ended early
    (`preempted`), a broken answer, or `rejected`."""
    if error.error_code == "upstream_unavailable":
        return "connection" if error.upstream_status is None else "unavailable"
    if error.preempted:
        return "preempted"
    return _KIND_OF_CODE.get(error.error_code, "rejected")


class Health:
    """The state machine of one server: `healthy`, `resting` until `rest_until`, `probing` (one
    request tries it after its rest). Rests double from `rest_seconds` up to REST_CEILING_SECONDS,
    and start over after a success or STREAK_SECONDS without a failure. It rests after
    `threshold` failures in a row of distinct requests (a request's retries count once): 1 for a
    server with others serving its models, UPSTREAM_BREAKER_FAILURES for one alone in serving a
    model that has fallback models (a circuit breaker: an outage then costs one attempt per rest;
    0: never rested). A server that is the only route to a model never rests: its `throttle`
    sheds load in proportion to its failures."""

    def __init__(self, rest_seconds: float, threshold: int, throttle: Throttle | None = None) -> None:
        self.rest_seconds = rest_seconds
        self.threshold = threshold
        self.throttle = throttle
        self.state = "healthy"
        self.rests = 0  # rests in a row, for the backoff
        self.failures = 0  # failures in a row while healthy
        self._failing = 0  # the request that failed last (its retries count once)
        self.rest_until = 0.0

    def usable(self, now: float) -> bool:
        """Whether a request may go to this server now (a rest that is over lets one probe in)."""
        return self.state == "healthy" or (self.state == "resting" and now >= self.rest_until)

    def take(self, now: float) -> bool:
        """A request goes to this server; True when it is the probe after a rest."""
        if self.state == "resting" and now >= self.rest_until:
            self.state = "probing"
            return True
        return False

    def succeeded(self, probe: bool) -> bool:
        """A generation got its first token (or ended well); True when this ends a rest."""
        if not (probe or self.state == "healthy"):
            return False  # an older request's success does not cut a rest short
        if self.throttle is not None:
            self.throttle.accepted()
        recovered = self.state != "healthy"
        self.state, self.rests, self.failures = "healthy", 0, 0
        return recovered

    def failed(self, kind: str, retry_after: float | None, probe: bool, now: float, requester: int = 0) -> float | None:
        """A request (`requester`: its id) failed with `kind`; the rest it starts, in seconds
        (None: no rest)."""
        if kind not in RESTING_KINDS or not self.threshold:
            self.released(probe, now)
            return None
        if self.throttle is not None:
            self.throttle.failed(requester, retry_after if kind == "rate_limited" else None)
            return None
        if not (probe or self.state == "healthy"):
            return None  # already resting: a request sent before the rest failed too
        if requester != self._failing or not requester:
            self.failures += 1
        self._failing = requester
        if not probe and self.failures < self.threshold:
            return None
        if now - self.rest_until >= STREAK_SECONDS:  # idle since its last rest: a new outage
            self.rests = 0
        self.rests += 1
        if kind == "rate_limited" and retry_after is not None:
            rest = min(retry_after, RETRY_AFTER_CEILING_SECONDS)
        else:
            rest = min(self.rest_seconds * 2 ** (self.rests - 1), max(REST_CEILING_SECONDS, self.rest_seconds))
        self.state, self.rest_until = "resting", now + rest
        return rest

    def released(self, probe: bool, now: float) -> None:
        """The probe ended without a verdict (cancelled, or the request's fault): another may probe."""
        if probe and self.state == "probing":
            self.state, self.rest_until = "resting", now
