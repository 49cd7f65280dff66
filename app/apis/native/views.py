"""The native chat endpoints: wait, streaming, resume, stop (under /v1 and the short /chat paths)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from ...providers.call import ChatCall
from ...streaming.wire import NATIVE
from .. import streams
from ..family import kept
from ..request import correlation_id, services
from .intake import prepare
from .replies import stop_result, wait_reply

bp = Blueprint("chat", __name__)
NAME = "native"


@bp.post("/v1/chat/wait")
@bp.post("/chat/wait")
def wait() -> dict[str, Any]:
    """Generate the whole reply and return it as one JSON object."""
    call, prompt_tokens = _prepare()
    outcome = streams.wait(call, prompt_tokens)
    return wait_reply(correlation_id(), outcome.model or call.model, outcome)


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
    return streams.resume_by_id(stream_id, NATIVE.name, request.args.get("last_event_id"))


@bp.delete("/v1/chat/streaming/<stream_id>")
@bp.delete("/chat/streaming/<stream_id>")
def stop_stream(stream_id: str) -> dict[str, Any]:
    """Stop a generation: the upstream is closed and the stream ends with `done`/cancelled."""
    stream = streams.find(stream_id, NATIVE.name)
    status, last_event_id = streams.stop(stream)
    return stop_result(stream.stream_id, status, last_event_id)


def _prepare() -> tuple[ChatCall, int | None]:
    found = services()
    return prepare(request._get_current_object(), kept(NAME), found.settings, found.provider)
