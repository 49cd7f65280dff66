"""The consumer side of a stream: one HTTP response replays what it missed, then follows live.

A consumer only detaches when its client goes away: the generation goes on, and the client
can resume from the last event id it received.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from ..errors import ApiError
from ..logs import bind
from .sse import RETRY_FRAME, parse_last_event_id
from .stream import StreamView

log = logging.getLogger("chatwait.consumer")


def resume_position(stream: StreamView, header: str | None, query: str | None) -> int | None:
    """The last event id a resuming client received (None: replay all); ApiError if never sent."""
    after = parse_last_event_id(header, query)
    if after is not None and after > stream.last_event_id:
        stream.catch_up(after)
    if after is not None and after > stream.last_event_id:
        raise ApiError("invalid_last_event_id", f"Event {after} was never sent; the newest is {stream.last_event_id}.")
    log.info("stream_resumed", extra={"last_event_id": after, "finished": stream.finished})
    return after


def consume(
    stream: StreamView, after_id: int | None, keepalive_seconds: float, clock: Callable[[], float]
) -> Iterator[bytes]:
    """The SSE body of one consumer: the retry frame, the frames after `after_id`, then live ones."""
    with bind(stream.correlation_id, stream.stream_id):
        stream.attach()
        delivered = False
        try:
            frames = stream.follow(after_id, keepalive_seconds)
            yield RETRY_FRAME + next(frames, b"")
            yield from frames
            delivered = True
        finally:
            stream.detach(clock())
            if not delivered:
                log.info("client_detached", extra={"stream_finished": stream.finished})
