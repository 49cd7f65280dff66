"""The chat endpoints: wait, streaming, resume, stop (versioned and the seed's unversioned paths)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import gevent
from flask import Blueprint, Response, g, request

from .errors import ApiError
from .intake import build_call, read_json, validate_chat_request
from .logs import bind, log_greenlet_failure
from .providers.base import ChatCall
from .relay import Relay
from .services import services
from .sse import RETRY_FRAME, parse_last_event_id
from .streams import Stream
from .tracing import trace_stream
from .wakeup import let_local_reader_run, run_first
from .writer import StreamWriter

bp = Blueprint("chat", __name__)
log = logging.getLogger("chatwait.chat")

STOP_WAIT_SECONDS = 2.0


def _prepare() -> tuple[ChatCall, int]:
    found = services()
    fields = validate_chat_request(read_json(request), found.chat_schema)
    return build_call(fields, found.settings, found.provider)


@bp.post("/v1/chat/wait")
@bp.post("/chat/wait")
def wait() -> dict[str, Any]:
    """Generate the whole reply and return it as one JSON object."""
    call, prompt_tokens = _prepare()
    found = services()
    outcome = Relay(found.provider, found.settings, call, prompt_tokens, None, g.correlation_id).run()
    if outcome.error is not None:
        raise outcome.error
    return {
        "id": g.correlation_id,
        "correlation_id": g.correlation_id,
        "model": call.model,
        "content": outcome.text,
        "finish_reason": outcome.finish_reason,
        "usage": outcome.usage.as_dict(),
        "duration_ms": outcome.duration_ms,
    }


@bp.post("/v1/chat/streaming")
@bp.post("/chat/streaming")
def start_stream() -> Response:
    """Start a generation in its own greenlet and follow it as Server-Sent Events."""
    call, prompt_tokens = _prepare()
    found = services()
    stream = found.store.create(g.correlation_id, call.model)
    trace_stream(stream.stream_id, stream.correlation_id)
    writer = StreamWriter(stream)
    relay = Relay(found.provider, found.settings, call, prompt_tokens, writer, g.correlation_id, stream.stream_id)
    stream.producer = gevent.spawn(relay.run)
    stream.producer.link_exception(log_greenlet_failure)
    stream.producer.link_exception(lambda _: writer.abort())
    run_first(stream.producer)  # it sends its upstream request first; this response is written meanwhile
    return _event_stream(stream, None)


@bp.get("/v1/chat/streaming/<stream_id>")
@bp.get("/chat/streaming/<stream_id>")
def resume_stream(stream_id: str) -> Response:
    """Replay a stream after the client's last event id, then follow it live."""
    stream = _find(stream_id)
    after = parse_last_event_id(request.headers.get("Last-Event-ID"), request.args.get("last_event_id"))
    if after is not None and after > stream.last_event_id:
        raise ApiError("invalid_last_event_id", f"Event {after} was never sent; the newest is {stream.last_event_id}.")
    log.info("stream_resumed", extra={"last_event_id": after, "finished": stream.finished})
    return _event_stream(stream, after)


@bp.delete("/v1/chat/streaming/<stream_id>")
@bp.delete("/chat/streaming/<stream_id>")
def stop_stream(stream_id: str) -> dict[str, Any]:
    """Stop a generation: the upstream is closed and the stream ends with `done`/cancelled."""
    stream = _find(stream_id)
    log.info("stop_requested", extra={"last_event_id": stream.last_event_id, "finished": stream.finished})
    stopped = stream.cancel()
    if stopped and stream.producer is not None:
        stream.producer.join(timeout=STOP_WAIT_SECONDS)
    return {
        "stream_id": stream.stream_id,
        "status": "cancelled" if stopped else "already_finished",
        "last_event_id": stream.last_event_id,
    }


def _find(stream_id: str) -> Stream:
    stream = services().store.get(stream_id)
    trace_stream(stream.stream_id, stream.correlation_id)  # a resume or stop is traced with its stream
    return stream


def _event_stream(stream: Stream, after_id: int | None) -> Response:
    """The SSE response of one consumer: replay after `after_id`, then follow live frames."""
    keepalive = services().settings.keepalive_seconds
    clock = services().store.clock

    def consume() -> Iterator[bytes]:
        with bind(stream.correlation_id, stream.stream_id):
            stream.attach()
            delivered = False
            try:
                frames = stream.follow(after_id, keepalive)
                yield RETRY_FRAME + next(frames, b"")
                let_local_reader_run()  # the response head is out
                yield from frames
                delivered = True
            finally:
                stream.detach(clock())
                if not delivered:
                    log.info("client_detached", extra={"stream_finished": stream.finished})

    return Response(
        consume(),
        direct_passthrough=True,  # the server iterates the frames itself, without werkzeug's wrappers
        mimetype="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "X-Stream-Id": stream.stream_id,
            "X-Correlation-Id": stream.correlation_id,
        },
    )
