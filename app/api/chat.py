"""The chat endpoints: wait, streaming, resume, stop (versioned and the seed's unversioned paths)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, g, request

from ..providers.base import ChatCall
from ..streaming import consumer, producer
from ..streaming.relay import Relay
from ..streaming.stream import StreamView
from .intake import build_call, read_json, refuse_oversized, validate_chat_request
from .services import services
from .tracing import trace_stream

bp = Blueprint("chat", __name__)


@bp.post("/v1/chat/wait")
@bp.post("/chat/wait")
def wait() -> dict[str, Any]:
    """Generate the whole reply and return it as one JSON object."""
    call, prompt_tokens = _prepare()
    found = services()
    relay = Relay(found.provider, found.settings, call, prompt_tokens, None, g.correlation_id)
    outcome = found.waits.run(relay, request.environ.get("gunicorn.socket"))  # cancelled if the client leaves
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
    producer.start(stream, found.provider, found.settings, call, prompt_tokens)
    found.store.admit(stream)  # the Redis store registers the stream meanwhile
    return _event_stream(stream, None)


@bp.get("/v1/chat/streaming/<stream_id>")
@bp.get("/chat/streaming/<stream_id>")
def resume_stream(stream_id: str) -> Response:
    """Replay a stream after the client's last event id, then follow it live."""
    stream = _find(stream_id)
    after = consumer.resume_position(stream, request.headers.get("Last-Event-ID"), request.args.get("last_event_id"))
    return _event_stream(stream, after)


@bp.delete("/v1/chat/streaming/<stream_id>")
@bp.delete("/chat/streaming/<stream_id>")
def stop_stream(stream_id: str) -> dict[str, Any]:
    """Stop a generation: the upstream is closed and the stream ends with `done`/cancelled."""
    stream = _find(stream_id)
    stopped = services().store.stop(stream)
    return {
        "stream_id": stream.stream_id,
        "status": "cancelled" if stopped else "already_finished",
        "last_event_id": stream.last_event_id,
    }


def _prepare() -> tuple[ChatCall, int | None]:
    found = services()
    data = read_json(request)
    refuse_oversized(data, found.settings, found.provider)  # before any per-message work
    fields = validate_chat_request(data, found.chat_schema)
    return build_call(fields, found.settings, found.provider)


def _find(stream_id: str) -> StreamView:
    stream = services().store.get(stream_id)
    trace_stream(stream.stream_id, stream.correlation_id)  # a resume or stop is traced with its stream
    return stream


def _event_stream(stream: StreamView, after_id: int | None) -> Response:
    """The SSE response of one consumer of `stream` (HEAD: the same head, and no consumer)."""
    found = services()
    body: Iterator[bytes] = iter(())
    if request.method != "HEAD":
        body = consumer.consume(stream, after_id, found.settings.keepalive_seconds, found.store.clock)
    return Response(
        body,
        direct_passthrough=True,  # the server iterates the frames itself, without werkzeug's wrappers
        mimetype="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "X-Stream-Id": stream.stream_id,
            "X-Correlation-Id": stream.correlation_id,
        },
    )
