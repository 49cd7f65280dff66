"""How a generation ended, in any mode: what wait mode answers and a stream's terminal event says."""

from __future__ import annotations

import dataclasses

from ..errors import ApiError
from ..providers.base import Usage


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a generation ended: exactly one of `finish_reason` and `error` is set."""

    text: str
    chunks: int
    usage: Usage
    duration_ms: float
    ttft_ms: float | None
    finish_reason: str | None = None
    error: ApiError | None = None
