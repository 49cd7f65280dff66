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

from flask import Blueprint, Response, g, request

from ..contract.openai_replies import CompletionDeletedSchema, CompletionSchema, CompletionStopSchema
from ..contract.serve import serialise
from ..ids import random_id
from ..streaming.stream import Retention
from ..streaming.wire import Wire
from ..streaming.wire.openai import COMPLETION_PREFIX, completion_object
from . import auth, streams
from .intake.openai import prepare_completion
from .services import current_services

bp = Blueprint("completions", __name__)

WIRE = "openai"


@bp.post("/v1/chat/completions")
def create() -> Response | dict[str, Any]:
    """A `chat.completion` object, or (`stream`: true) its chunks as Server-Sent Events."""
    services = current_services()
    completion = prepare_completion(request._get_current_object(), services)
    call = completion.call
    if completion.stream:
        wire = Wire(WIRE, completion.include_usage)
        return streams.start(call, completion.prompt_tokens, wire, Retention(foreground=True))
    created = time.time()
    correlation_id = g._get_current_object().correlation_id
    outcome = services.wait(call, completion.prompt_tokens, correlation_id, request.environ, auth.client_key())
    return serialise(CompletionSchema, completion_object(random_id(), created, call.model, outcome))


@bp.get("/v1/chat/completions/<completion_id>/stream")
def resume(completion_id: str) -> Response:
    """The chunks after the client's last event id (Last-Event-ID, else ?starting_after=N), then
    live ones and [DONE]; 204 when it already has the last one."""
    stream = streams.find(completion_id.removeprefix(COMPLETION_PREFIX), WIRE)
    return streams.resume(stream, request.args.get("starting_after"))


@bp.delete("/v1/chat/completions/<completion_id>/stream")
def stop(completion_id: str) -> dict[str, Any]:
    """Stop a streamed completion: the upstream is closed, the stream ends with its finish chunk."""
    stream = streams.find(completion_id.removeprefix(COMPLETION_PREFIX), WIRE)
    status, last_event_id = streams.stop(stream)
    reply = {
        "id": COMPLETION_PREFIX + stream.stream_id,
        "object": "chat.completion.stream",
        "status": status,
        "last_event_id": last_event_id,
    }
    return serialise(CompletionStopSchema, reply)


@bp.delete("/v1/chat/completions/<completion_id>")
def delete(completion_id: str) -> dict[str, Any]:
    """Stop a streamed completion if it still runs and delete it (OpenAI's deletion object)."""
    stream = streams.find(completion_id.removeprefix(COMPLETION_PREFIX), WIRE)
    streams.forget(stream)
    reply = {"id": COMPLETION_PREFIX + stream.stream_id, "object": "chat.completion.deleted", "deleted": True}
    return serialise(CompletionDeletedSchema, reply)
