"""How long the relay waits before retrying an upstream: Retry-After when the upstream gave one,
else exponential with jitter, capped."""

from __future__ import annotations

import random

BASE_SECONDS = 0.25
CAP_SECONDS = 8.0


def delay(attempt: int, retry_after: float | None) -> float:
    """Seconds to wait before retry number `attempt + 1`: Retry-After if given, else exponential."""
    if retry_after is not None:
        return retry_after + random.uniform(0, 0.1 * retry_after + 0.05)
    top = ceiling(attempt)
    return random.uniform(top / 2, top)


def ceiling(attempt: int) -> float:
    """The longest backoff before retry number `attempt + 1`: exponential, capped."""
    return min(CAP_SECONDS, BASE_SECONDS * 2**attempt)
