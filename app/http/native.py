"""The chat endpoints: wait, streaming, resume, stop (under /v1 and the short /chat paths)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from ..contract.native import ChatReplySchema, StopResultSchema
from ..contract.serve import serialise
from ..providers.base import ChatCall
from ..streaming.wire import NATIVE
from . import auth, streams
from .intake import build_call, read_json, refuse_oversized, validate_chat_request
from .services import current_services

bp = Blueprint("chat", __name__)


@bp.post("/v1/chat/wait")
@bp.post("/chat/wait")
def wait() -> dict[str, Any]:
    """Generate the whole reply and return it as one JSON object."""
    call, prompt_tokens = _prepare()
    correlation_id = g._get_current_object().correlation_id
    outcome = current_services().wait(call, prompt_tokens, correlation_id, request.environ, auth.client_key())
    reply = {
        "id": correlation_id,
        "correlation_id": correlation_id,
        "model": call.model,
        "content": outcome.text,
        "finish_reason": outcome.finish_reason,
        "usage": outcome.usage.as_dict(),
        "usage_source": outcome.usage.source,
        "duration_ms": outcome.duration_ms,
    }
    return serialise(ChatReplySchema, reply)


@bp.post("/v1/chat/streaming")
@bp.post("/chat/streaming")
def start_stream() -> Response:
    """Start a generation in its own greenlet and follow it as Server-Sent Events."""
    call, prompt_tokens = _prepare()
    return streams.start(call, prompt_tokens, NATIVE)


@bp.get("/v1/chat/streaming/<stream_id>")
@bp.get("/chat/streaming/<stream_id>")
def resume_stream(stream_id: str) -> Response:
    """Replay a stream after the client's last event id, then follow it live (204: nothing left)."""
    return streams.resume(streams.find(stream_id, NATIVE.name), request.args.get("last_event_id"))


@bp.delete("/v1/chat/streaming/<stream_id>")
@bp.delete("/chat/streaming/<stream_id>")
def stop_stream(stream_id: str) -> dict[str, Any]:
    """Stop a generation: the upstream is closed and the stream ends with `done`/cancelled."""
    stream = streams.find(stream_id, NATIVE.name)
    status, last_event_id = streams.stop(stream)
    reply = {"stream_id": stream.stream_id, "status": status, "last_event_id": last_event_id}
    return serialise(StopResultSchema, reply)


def _prepare() -> tuple[ChatCall, int | None]:
    services = current_services()
    data = read_json(request._get_current_object())
    refuse_oversized(data, services.settings, services.provider)  # before any per-message work
    fields = validate_chat_request(data, services.chat_schema)
    return build_call(fields, services.settings, services.provider)
