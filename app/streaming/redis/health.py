"""How the journal stands with Redis: healthy; failing (it retries, with backoff, and frames
wait); or, past the outage grace, degraded (the store ends its live streams, and frames go to
clients without waiting for Redis). Any batch Redis takes whole makes it healthy again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

log = logging.getLogger("chatwait.journal")

# Errors after which a batch is simply sent again: Redis lost its scripts (they are loaded
# again), or a Cluster's slot map changed under the batch. Not an outage.
_NOT_OUTAGES = (
    redis.exceptions.NoScriptError,
    redis.exceptions.MovedError,
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
)
RETRY_FIRST_SECONDS = 0.2
RETRY_MAX_SECONDS = 2.0


class Health:
    """The journal's standing with Redis, and when it may send again."""

    def __init__(self, outage_seconds: float, on_outage: Callable[[], None]) -> None:
        self.healthy = True
        self.degraded = False
        self.retry_at = 0.0  # after a failure, the next send waits until then
        self.outage_seconds = outage_seconds
        self._on_outage = on_outage
        self._delay = RETRY_FIRST_SECONDS
        self._failing_since = 0.0

    def failed(self, error: Exception) -> bool:
        """Redis failed a send or a batch; True when this failure starts the outage (degraded)."""
        now = time.monotonic()
        log.warning("store_write_failed", extra={"error_type": type(error).__name__, "healthy": self.healthy})
        self.retry_at = now + self._delay
        self._delay = min(RETRY_MAX_SECONDS, self._delay * 2)
        if self.healthy:
            self.healthy = False
            self._failing_since = now
        elif not self.degraded and now - self._failing_since >= self.outage_seconds:
            self.degraded = True
            log.warning("store_outage", extra={"seconds": round(now - self._failing_since, 1)})
            return True
        return False

    def failing_for(self) -> float:
        """How long Redis has been failing (0 while healthy)."""
        return 0.0 if self.healthy else time.monotonic() - self._failing_since

    def recovered(self) -> None:
        """Redis took a batch whole."""
        self._delay = RETRY_FIRST_SECONDS
        if not self.healthy:
            self.healthy = True
            self.degraded = False
            log.info("store_recovered", extra={"seconds": round(time.monotonic() - self._failing_since, 1)})


def outages(errors: list[Exception]) -> list[Exception]:
    """The errors of a batch that count against Redis's health."""
    return [error for error in errors if not isinstance(error, _NOT_OUTAGES)]
