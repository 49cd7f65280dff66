"""What every API family's stream endpoints share: starting a stream (admitted under the client
key's limits, at once or after a place in the admission queue), finding one for this client,
the SSE response of a consumer (or 204 when nothing is left), a stop, a deletion.

Each family registers where its streams start and resume (`register_paths`), so that a stream
asked for on another family's path is pointed to its own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flask import Response, request

from ..accounts.account import Asked
from ..errors import ApiError
from ..generation.outcome import Outcome
from ..hub.disconnect import client_socket, until_client_gone
from ..providers.call import ChatCall
from ..service.admission import Pending
from ..service.admitting import Admission
from ..streaming import consumer
from ..streaming.direct import client_writer
from ..streaming.lost import LostStream, StreamLost
from ..streaming.stream import DEFAULT_RETENTION, Retention, Stream
from ..streaming.view import StreamView
from ..streaming.wire import Wire
from ..streaming.wire.sse import Position, parse_last_event_id
from . import queued
from .request import (
    admitted,
    client,
    correlation_id,
    costed,
    event_response,
    note,
    on_delivery,
    origin,
    owns,
    payer,
    services,
    trace_stream,
)

HOLD_SECONDS = 5.0  # an OpenAI family's streamed answer waits this long at most for its first chunk
# Where each wire's streams start and resume, for the errors that point a client there.
_STARTED_AT: dict[str, str] = {}
_RESUMED_AT: dict[str, str] = {}


def register_paths(wire: str, started_at: str, resumed_at: str) -> None:
    """Streams of `wire` start with POST `started_at` and resume with GET `resumed_at` (`{id}`: the stream's)."""
    _STARTED_AT[wire] = started_at
    _RESUMED_AT[wire] = resumed_at


def started_at(wire: str) -> str:
    """The path a stream of `wire` was started at (the wire's name if none registered it)."""
    return _STARTED_AT.get(wire, wire)


def start(
    call: ChatCall,
    prompt_tokens: int | None,
    wire: Wire,
    retention: Retention = DEFAULT_RETENTION,
    hold_seconds: float = 0.0,
) -> Response:
    """Start a generation in its own greenlet and answer with its event stream (when it waits
    for a slot, at once: its place in `queued` notices, then the stream). With `hold_seconds`,
    the answer waits that long at most for the first chunk: a failure before it is raised, so
    the client gets its HTTP status (and Retry-After) as the family's error, not a 200."""
    opened = _open(call, prompt_tokens, wire, retention)
    if isinstance(opened, Pending):
        trace_stream(opened.stream_id, correlation_id())
        return queued.response(opened, wire, call.model, _headers(opened))
    if hold_seconds > 0:
        _hold(opened, hold_seconds)
    return event_stream(opened, Position(None))


def _hold(stream: Stream, seconds: float) -> None:
    """Wait for the stream's first chunk or its end, at most `seconds`; raise its error if it
    ended before any chunk."""
    deadline = time.monotonic() + seconds
    while stream.chunks == 0 and not stream.ended:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        stream.wait(left)
    outcome = stream.outcome
    if stream.chunks == 0 and outcome is not None and outcome.error is not None:
        raise outcome.error


def begin(call: ChatCall, prompt_tokens: int | None, wire: Wire, retention: Retention = DEFAULT_RETENTION) -> Stream:
    """Start a generation in its own greenlet (waiting here for a slot if it must); its stream,
    traced with this request."""
    opened = _open(call, prompt_tokens, wire, retention)
    if isinstance(opened, Pending):
        opened = opened.wait(client_socket(request.environ))
        trace_stream(opened.stream_id, opened.correlation_id)
    return opened


def _open(call: ChatCall, prompt_tokens: int | None, wire: Wire, retention: Retention) -> Stream | Pending:
    admission = _admit(call, prompt_tokens, streamed=True)
    opened = services().stream(admission.account, wire, client(), retention)
    if isinstance(opened, Stream):
        trace_stream(opened.stream_id, opened.correlation_id)
    return opened


def _admit(call: ChatCall, prompt_tokens: int | None, streamed: bool = False) -> Admission:
    """Admit a generation of this request, for its payer (its account; where its payer's limits
    stand, kept for its answer)."""
    asked = Asked(call, prompt_tokens)
    return admitted(services().admit(asked, payer(call.options), origin(streamed)))


def wait(call: ChatCall, prompt_tokens: int | None) -> Outcome:
    """Admit and generate a whole reply for a wait-mode request (cancelled if its client leaves
    first); raises the ApiError it ended with."""
    found, admission = services(), _admit(call, prompt_tokens)
    outcome = found.wait(admission.account, client_socket(request.environ))
    if outcome.finish_reason == "cancelled":  # only its client leaving cancels a wait-mode generation
        note(client_left=True)
    costed(outcome)
    found.metrics.delivery(outcome.model or call.model, outcome.chunks, 0)  # the whole reply, in its answer
    return outcome


def wait_for_end(stream: StreamView, environ: Mapping[str, Any]) -> None:
    """Follow a stream until its terminal event, as one of its clients, or until this request's
    client leaves (the stream is then unfollowed: see ABANDON_SECONDS)."""
    found = services()
    keepalive, clock = found.settings.streams.keepalive_seconds, found.store.clock
    until_client_gone(lambda: _follow_to_end(stream, keepalive, clock), client_socket(environ))


def _follow_to_end(stream: StreamView, keepalive_seconds: float, clock: Callable[[], float]) -> None:
    stream.attach()
    try:
        for _ in stream.follow(None, keepalive_seconds):
            pass
    finally:
        stream.detach(clock())


def find(stream_id: str, wire: str) -> StreamView:
    """This client's stream with this id, started on the endpoint family of `wire`;
    ApiError(stream_not_found) otherwise (another client's stream does not exist for it)."""
    stream = services().store.get(stream_id)
    action = f"Send the request again with POST {_STARTED_AT[wire]}."
    if not owns(stream.client):
        raise ApiError("stream_not_found", "The id is unknown, or the stream ended and expired.", action=action)
    trace_stream(stream.stream_id, stream.correlation_id)  # a resume or stop is traced with its stream
    if stream.wire_name != wire:
        other = stream.wire_name
        detail = f"This stream was started with POST {_STARTED_AT[other]}."
        raise ApiError("stream_not_found", detail, action=f"Resume it with GET {_RESUMED_AT[other]}.")
    return stream


def resume_by_id(stream_id: str, wire: str, query: str | None) -> Response:
    """`resume` this client's stream `stream_id` of `wire`. One that Redis lost after its worker
    died (nothing holds it any more) ends, for a client that names the last event it received,
    with one terminal generation_lost event after it; else stream_not_found."""
    try:
        stream = find(stream_id, wire)
    except StreamLost:
        seen = parse_last_event_id(request.headers.get("Last-Event-ID"), query)
        if seen is None:
            raise
        stream = LostStream(stream_id, wire, seen, client(), correlation_id())
    return resume(stream, query)


def resume(stream: StreamView, query: str | None) -> Response:
    """The events after the client's last event id (`Last-Event-ID`, else `query`), then live ones."""
    header = request.headers.get("Last-Event-ID")
    position = consumer.resume_position(stream, header, query)
    services().metrics.resumed(stream.writer.name)
    note(resumed=True, last_event_id=parse_last_event_id(header, query), finished=stream.finished)
    if position is None:
        note(nothing_left=True)
        return Response(status=204, headers=_headers(stream))
    return event_stream(stream, position)


def stop(stream: StreamView) -> tuple[str, int]:
    """Stop a stream's generation: `cancelled`, or `already_finished`; and its last event id."""
    found = services()
    result = "cancelled" if found.store.stop(stream) else "already_finished"
    found.metrics.stopped(result)
    return result, stream.last_event_id


def forget(stream: StreamView) -> None:
    """Stop a stream's generation (if it runs) and delete the stream."""
    found = services()
    found.metrics.stopped("cancelled" if found.store.forget(stream) else "already_finished")


def event_stream(stream: StreamView, position: Position) -> Response:
    """The SSE response of one consumer of `stream` (HEAD: the same head, and no consumer)."""
    found = services()
    body: Iterator[bytes] = iter(())
    req = request._get_current_object()
    if req.method != "HEAD":
        keepalive = found.settings.streams.keepalive_seconds
        writer = client_writer(req.environ)
        body = consumer.consume(stream, position, keepalive, found.store.clock, found.metrics, writer, on_delivery())
    return event_response(body, stream.stream_id, _headers(stream))


def handed_whole(stream: StreamView) -> tuple[int, int]:
    """A client was handed the stream's reply so far as one object: its chunks delivered (and
    charged, where its key pays for delivery); the stream's chunks delivered and sent again."""
    return consumer.whole(stream, services().metrics, on_delivery())


def _headers(stream: StreamView | Pending) -> dict[str, str]:
    return {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        "X-Stream-Id": stream.stream_id,
        "X-Correlation-Id": correlation_id(),
    }
