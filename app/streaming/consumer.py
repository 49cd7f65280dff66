"""The consumer side of a stream: one HTTP response replays what it missed, then follows live.

A consumer only detaches when its client goes away: the generation goes on, and the client
can resume from the last event id it received.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from ..errors import ApiError
from ..metrics.catalogue import Metrics
from ..traces import event
from .delivery import WHOLE, Progress, chunks_of
from .direct import ClientWriter
from .view import StreamView
from .wire.sse import KEEPALIVE_FRAME, RETRY_LINE, Position, parse_last_event_id, skip_numbered

log = logging.getLogger("chatwait.consumer")
OnDelivery = Callable[[str, int], None]  # told a stream's model and its chunks delivered for the first time


def resume_position(stream: StreamView, header: str | None, query: str | None) -> Position | None:
    """Where a resuming client starts, from the last SSE id it received (None: replay all);
    None when the stream ended and nothing is left after it (answered 204, which tells
    EventSource to stop reconnecting); ApiError if a live stream never sent that id."""
    seen = parse_last_event_id(header, query)
    position = stream.writer.position(seen, stream.last_event_id, stream.finished)
    if position is not None and position.after is not None and position.after > stream.last_event_id:
        stream.catch_up(position.after)
        position = stream.writer.position(seen, stream.last_event_id, stream.finished)
    extra = {"last_event_id": seen, "finished": stream.finished, "stream_correlation_id": stream.correlation_id}
    event("chatwait.resume", {"chatwait.last_event_id": -1 if seen is None else seen})
    if position is None:
        log.debug("stream_resumed", extra={**extra, "nothing_left": True})
        return None
    if position.after is not None and position.after > stream.last_event_id:
        newest = stream.writer.numbered(stream.last_event_id)
        raise ApiError("invalid_last_event_id", f"Event {seen} was never sent; the newest is {newest}.")
    log.debug("stream_resumed", extra=extra)  # the request's completion line says it too
    return position


def consume(
    stream: StreamView,
    position: Position,
    keepalive_seconds: float,
    clock: Callable[[], float],
    metrics: Metrics,
    writer: ClientWriter | None = None,
    on_delivery: OnDelivery | None = None,
) -> Iterator[bytes]:
    """The SSE body of one consumer: the frames from `position`, then live ones (written by the
    producer through `writer` while the consumer keeps up). The first event carries `retry:`; a
    keepalive is the wire's own where it has one (Anthropic's `ping`), else an SSE comment. What
    the session wrote is counted as it ends (`count_session`, `on_delivery` there)."""
    stream.attach()
    metrics.follower(1)
    delivered = False
    keepalive = getattr(stream.writer, "keepalive", KEEPALIVE_FRAME)
    progress = Progress(position.after)
    try:
        frames = stream.follow(position.after, keepalive_seconds, writer, progress)
        for frame in frames:
            if frame.startswith(b":"):
                yield keepalive if frame is KEEPALIVE_FRAME else frame
                continue
            if position.skip_through is not None:
                frame = skip_numbered(frame, position.skip_through)
            yield RETRY_LINE + frame
            break
        if keepalive is KEEPALIVE_FRAME:
            yield from frames
        else:
            yield from (keepalive if frame is KEEPALIVE_FRAME else frame for frame in frames)
        delivered = True
    finally:
        stream.detach(clock())
        metrics.follower(-1)
        if not delivered:
            log.debug("client_detached", extra={"stream_finished": stream.finished})  # and `client_left`
        count_session(stream, progress, metrics, on_delivery)


def count_session(
    stream: StreamView, progress: Progress, metrics: Metrics, on_delivery: OnDelivery | None = None
) -> None:
    """Count what a session wrote to its client in the stream's ledger: chunks delivered for the
    first time (told to `on_delivery`, which charges a key that pays for delivery), and chunks
    sent again that a consumer had been written before (a resume)."""
    finished = stream.finished or progress.terminal is not None
    last = stream.last_event_id if progress.terminal is None else progress.terminal
    written = chunks_of(progress, last, finished)
    if written is not None:
        _counted(stream, *written, metrics, on_delivery)


def whole(stream: StreamView, metrics: Metrics, on_delivery: OnDelivery | None = None) -> tuple[int, int]:
    """A client was handed the stream's reply so far as one object (a Responses object, whole or
    in the background): its chunks delivered, none counted as sent again (an object fetched
    again is no resume); the stream's chunks delivered and sent again."""
    last = stream.last_event_id - 1 if stream.finished else stream.last_event_id
    return (0, 0) if last < 1 else _counted(stream, WHOLE, last, metrics, on_delivery)  # none yet: nothing to count


def _counted(
    stream: StreamView, after: int, upto: int, metrics: Metrics, on_delivery: OnDelivery | None
) -> tuple[int, int]:
    new, again, delivered, replayed = stream.delivery.session(after, upto)
    metrics.delivery(stream.model, new, again)
    if new and on_delivery is not None:
        on_delivery(stream.model, new)
    return delivered, replayed
