"""Abandoned generations: a foreground stream (an OpenAI API's, `background` false) that nobody
has followed for ABANDON_SECONDS is cancelled, as OpenAI's clients expect when they disconnect;
any live stream that nobody has followed for LOCAL_ABANDON_SECONDS gives up its turn at the
embedded model while other requests wait for it. Its partial reply stays resumable and ends
`cancelled`."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable

from ..generation.cancel import StreamCancelled
from .stream import Stream

log = logging.getLogger("chatwait.store")


@dataclasses.dataclass(frozen=True)
class Abandon:
    """When to cancel unfollowed streams: a foreground one after `foreground_seconds` without a
    consumer, any after `seconds` while `crowded()`."""

    seconds: float
    crowded: Callable[[], bool]
    foreground_seconds: float = math.inf

    def candidates(self, streams: Iterable[Stream], now: float) -> list[tuple[Stream, float]]:
        """The live streams unfollowed here for longer than their limit, each with that limit."""
        crowded = math.inf if not self.crowded() else self.seconds
        found = []
        for stream in streams:
            if stream.finished or stream.lifetime.consumers:
                continue
            limit = min(crowded, self.foreground_seconds if stream.retention.foreground else math.inf)
            if now - stream.lifetime.idle_since > limit:
                found.append((stream, limit))
        return found

    @property
    def shortest(self) -> float:
        """The shortest time after which a stream may be abandoned."""
        return min(self.seconds, self.foreground_seconds)


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
