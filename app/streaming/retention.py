"""How a stream is kept, as the API that starts it says (`Retention`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..generation.outcome import Outcome


@dataclasses.dataclass(frozen=True, slots=True)
class Retention:
    """How a stream is kept, as the API that starts it says: how long once finished (None: the
    store's STREAM_TTL_SECONDS), an opaque context stored with it (the Responses API's
    conversation, for `previous_response_id`), whether it is a foreground one, cancelled
    when nobody follows it for ABANDON_SECONDS, whether it is a stored response, and what its API
    records once its generation has ended: `ended(stream, outcome)`, called by its producer just
    before the terminal event, so that a client that saw the end finds it recorded."""

    finished_seconds: float | None = None
    context: bytes = b""
    foreground: bool = False
    stored: bool = False  # a stored response: counted against MAX_STORED_RESPONSES once finished
    ended: Callable[[Any, Outcome], None] | None = None  # called with the stream
    # What rebuilds `ended` on a worker that takes the stream over (JSON; its family's `revive`).
    ended_args: dict[str, Any] | None = None

    def kept_for(self, store_ttl: float) -> float:
        """Seconds a finished stream is kept: as its API asked, else the store's TTL."""
        return store_ttl if self.finished_seconds is None else self.finished_seconds


DEFAULT_RETENTION = Retention()


class Lifetime:
    """A stream's clocks for the store's sweeps: how many consumers follow it, since when nobody
    does (`idle_since`), and when followers saw its end (`finished_at`); monotonic seconds."""

    __slots__ = ("consumers", "finished_at", "idle_since")

    def __init__(self, now: float) -> None:
        self.consumers = 0
        self.idle_since = now
        self.finished_at = 0.0

    def attach(self) -> None:
        """Count a consumer in."""
        self.consumers += 1

    def detach(self, now: float) -> None:
        """Count a consumer out; the idle clock starts when the last one leaves."""
        self.consumers -= 1
        if self.consumers == 0:
            self.idle_since = now

    def unfollowed_for(self, now: float) -> float:
        """Seconds nobody has followed it (0 while someone does)."""
        return 0.0 if self.consumers else now - self.idle_since
