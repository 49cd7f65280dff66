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

from ..ids import random_id
from ..streaming.openai_wire import COMPLETION_PREFIX, completion_object
from ..streaming.relay import Relay
from ..streaming.wire import Format
from . import streams
from .completion_intake import prepare_completion
from .services import services

bp = Blueprint("completions", __name__)

DIALECT = "openai"


@bp.post("/v1/chat/completions")
def create() -> Response | dict[str, Any]:
    """A `chat.completion` object, or (`stream`: true) its chunks as Server-Sent Events."""
    found = services()
    completion = prepare_completion(request, found)
    call = completion.call
    if completion.stream:
        return streams.start(call, completion.prompt_tokens, Format(DIALECT, completion.include_usage))
    relay = Relay(
        found.provider, found.settings, call, completion.prompt_tokens, None, g.correlation_id, metrics=found.metrics
    )
    created = time.time()
    outcome = found.waits.run(relay, request.environ.get("gunicorn.socket"))  # cancelled if the client leaves
    if outcome.error is not None:
        raise outcome.error
    return completion_object(random_id(), created, call.model, outcome)


@bp.get("/v1/chat/completions/<completion_id>/stream")
def resume(completion_id: str) -> Response:
    """The chunks after the client's last event id (Last-Event-ID, else ?starting_after=N), then
    live ones and [DONE]; 204 when it already has the last one."""
    stream = streams.find(completion_id.removeprefix(COMPLETION_PREFIX), DIALECT)
    return streams.resume(stream, request.args.get("starting_after"))


@bp.delete("/v1/chat/completions/<completion_id>/stream")
def stop(completion_id: str) -> dict[str, Any]:
    """Stop a streamed completion: the upstream is closed, the stream ends with its finish chunk."""
    stream = streams.find(completion_id.removeprefix(COMPLETION_PREFIX), DIALECT)
    status, last_event_id = streams.stop(stream)
    return {
        "id": COMPLETION_PREFIX + stream.stream_id,
        "object": "chat.completion.stream",
        "status": status,
        "last_event_id": last_event_id,
    }


@bp.delete("/v1/chat/completions/<completion_id>")
def delete(completion_id: str) -> dict[str, Any]:
    """Stop a streamed completion if it still runs and delete it (OpenAI's deletion object)."""
    stream = streams.find(completion_id.removeprefix(COMPLETION_PREFIX), DIALECT)
    streams.forget(stream)
    return {"id": COMPLETION_PREFIX + stream.stream_id, "object": "chat.completion.deleted", "deleted": True}
