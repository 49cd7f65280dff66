"""The x-ratelimit-* headers of an answer to a key with limits, as OpenAI sends them."""

from __future__ import annotations

import math

from .counters import Quota, Verdict


def headers(verdict: Verdict | None) -> dict[str, str]:
    """The x-ratelimit-* headers of an answer to a key with limits, as OpenAI sends them (and
    ChatWait's own pair for max_streams)."""
    found: dict[str, str] = {}
    if verdict is None:
        return found
    for kind, quota in (("requests", verdict.requests), ("tokens", verdict.tokens)):
        if quota is not None:
            found |= _quota(kind, quota)
    if verdict.streams is not None:
        limit, live = verdict.streams
        found["x-ratelimit-limit-streams"] = str(limit)
        found["x-ratelimit-remaining-streams"] = str(max(0, limit - live))
    return found


def _quota(kind: str, quota: Quota) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(quota.limit),
        f"x-ratelimit-remaining-{kind}": str(quota.remaining),
        f"x-ratelimit-reset-{kind}": duration(quota.reset),
    }


def duration(seconds: float) -> str:
    """A duration the way OpenAI writes it in x-ratelimit-reset-*: `250ms`, `12s`, `1m3s`."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"
