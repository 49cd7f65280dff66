"""The consumer side of a stream: one HTTP response replays what it missed, then follows live.

A consumer only detaches when its client goes away: the generation goes on, and the client
can resume from the last event id it received.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from ..errors import ApiError
from ..metrics.catalogue import Metrics
from .view import StreamView
from .wire.sse import RETRY_LINE, parse_last_event_id

log = logging.getLogger("chatwait.consumer")


def resume_position(stream: StreamView, header: str | None, query: str | None) -> int | None:
    """The last event id a resuming client received (None: replay all); ApiError if a live stream
    never sent it (a finished stream has nothing after it: see `nothing_left`)."""
    after = parse_last_event_id(header, query)
    if nothing_left(stream, after):
        log.info(
            "stream_resumed",
            extra={
                "last_event_id": after,
                "finished": True,
                "nothing_left": True,
                "stream_correlation_id": stream.correlation_id,
            },
        )
        return after
    if after is not None and after > stream.last_event_id:
        stream.catch_up(after)
    if after is not None and after > stream.last_event_id:
        raise ApiError("invalid_last_event_id", f"Event {after} was never sent; the newest is {stream.last_event_id}.")
    log.info(
        "stream_resumed",
        extra={"last_event_id": after, "finished": stream.finished, "stream_correlation_id": stream.correlation_id},
    )
    return after


def nothing_left(stream: StreamView, after_id: int | None) -> bool:
    """Whether a resume after `after_id` has nothing to get: the stream ended at or before it.
    Such a resume is answered 204, which tells EventSource to stop reconnecting."""
    return after_id is not None and stream.finished and after_id >= stream.last_event_id


def consume(
    stream: StreamView, after_id: int | None, keepalive_seconds: float, clock: Callable[[], float], metrics: Metrics
) -> Iterator[bytes]:
    """The SSE body of one consumer: the frames after `after_id`, then live ones. The first event
    carries the `retry:` field (a keepalive before it goes out as it is)."""
    stream.attach()
    metrics.follower(1)
    delivered = False
    try:
        frames = stream.follow(after_id, keepalive_seconds)
        for frame in frames:
            if frame.startswith(b":"):
                yield frame
                continue
            yield RETRY_LINE + frame
            break
        yield from frames
        delivered = True
    finally:
        stream.detach(clock())
        metrics.follower(-1)
        if not delivered:
            log.info("client_detached", extra={"stream_finished": stream.finished})
