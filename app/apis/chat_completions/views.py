"""OpenAI's chat completions API: POST /v1/chat/completions (`stream` false or true), for the
clients people already have (the `openai` SDK, LangChain, Open WebUI), with what no other
OpenAI-compatible server offers: a streamed completion is a ChatWait stream, resumed with
GET /v1/chat/completions/{id}/stream and stopped with DELETE on the same path; DELETE
/v1/chat/completions/{id} (the SDK's `chat.completions.delete`) stops and deletes it.

`{id}` is the stream id (the X-Stream-Id header) or the completion id (`chatcmpl-` and it).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, request

from ...ids import random_id
from ...streaming.stream import Retention
from ...streaming.wire import Wire
from .. import streams
from ..family import kept
from ..request import services
from . import replies
from .intake import prepare_completion
from .wire import NAME as WIRE

bp = Blueprint("completions", __name__)
NAME = "chat_completions"


@bp.post("/v1/chat/completions")
def create() -> Response | dict[str, Any]:
    """A `chat.completion` object, or (`stream`: true) its chunks as Server-Sent Events."""
    found = services()
    completion = prepare_completion(request._get_current_object(), kept(NAME), found.settings, found.provider)
    call, prompt_tokens = completion.call, completion.prompt_tokens
    if completion.stream:
        wire = Wire(WIRE, {"include_usage": completion.include_usage})
        return streams.start(call, prompt_tokens, wire, Retention(foreground=True), streams.HOLD_SECONDS)
    created = time.time()
    outcome = streams.wait(call, prompt_tokens)
    return replies.completion(random_id(), created, outcome.model or call.model, outcome)


@bp.get("/v1/chat/completions/<completion_id>/stream")
def resume(completion_id: str) -> Response:
    """The chunks after the client's last event id (Last-Event-ID, else ?starting_after=N), then
    live ones and [DONE]; 204 when it already has the last one."""
    stream_id = completion_id.removeprefix(replies.COMPLETION_PREFIX)
    return streams.resume_by_id(stream_id, WIRE, request.args.get("starting_after"))


@bp.delete("/v1/chat/completions/<completion_id>/stream")
def stop(completion_id: str) -> dict[str, Any]:
    """Stop a streamed completion: the upstream is closed, the stream ends with its finish chunk."""
    stream = streams.find(completion_id.removeprefix(replies.COMPLETION_PREFIX), WIRE)
    status, last_event_id = streams.stop(stream)
    return replies.stopped(stream.stream_id, status, last_event_id)


@bp.delete("/v1/chat/completions/<completion_id>")
def delete(completion_id: str) -> dict[str, Any]:
    """Stop a streamed completion if it still runs and delete it (OpenAI's deletion object)."""
    stream = streams.find(completion_id.removeprefix(replies.COMPLETION_PREFIX), WIRE)
    streams.forget(stream)
    return replies.deleted(stream.stream_id)
