"""Abandoned generations: a live stream that nobody has followed for LOCAL_ABANDON_SECONDS gives
up its turn at the embedded model while other requests wait for it. Its partial reply stays
resumable and ends `cancelled`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable

from ..generation.cancel import StreamCancelled
from .stream import Stream

log = logging.getLogger("chatwait.store")


@dataclasses.dataclass(frozen=True)
class Abandon:
    """When to cancel unfollowed streams: after `seconds` without a consumer, while `crowded()`."""

    seconds: float
    crowded: Callable[[], bool]

    def candidates(self, streams: Iterable[Stream], now: float) -> list[Stream]:
        """The live streams unfollowed here for `seconds`, when someone waits (else none)."""
        if not self.crowded():
            return []
        return [s for s in streams if not s.finished and s.consumers == 0 and now - s.idle_since > self.seconds]


def cancel(stream: Stream, idle_seconds: float) -> None:
    """Stop an abandoned stream's generation (once) and say so in the log."""
    if stream.cancel(StreamCancelled("abandoned")):
        log.info(
            "stream_abandoned",
            extra={
                "correlation_id": stream.correlation_id,
                "stream_id": stream.stream_id,
                "idle_seconds": round(idle_seconds, 1),
            },
        )
