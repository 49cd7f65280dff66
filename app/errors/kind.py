"""One catalogue entry (`ErrorKind`): the fixed part of an error body, shared by every error of
its code."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ErrorKind:
    """A catalogue entry: the fixed part of an error body."""

    status: int
    message: str
    action: str
    retryable: bool
    retry_after: float | None = None  # seconds for Retry-After when the raiser gives none
    operator: str = ""  # what the operator should check: logged, never sent (people read `action`)
