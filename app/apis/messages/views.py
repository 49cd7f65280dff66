"""Anthropic's Messages API: POST /v1/messages (`stream` false or true) and POST
/v1/messages/count_tokens, for Claude Code and the `anthropic` SDKs. A streamed message is a
ChatWait stream: resumed with GET /v1/messages/streams/{id} (`Last-Event-ID`, or
`?last_event_id=N`) and stopped with DELETE on the same path.

`{id}` is the stream id (the X-Stream-Id header) or the message id (`msg_` and it).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from ...ids import random_id
from ...streaming.stream import Retention
from ...streaming.wire import Wire
from .. import streams
from ..family import kept
from ..request import counted, services
from . import replies
from .intake import count_tokens, prepare_message
from .wire import NAME as WIRE

bp = Blueprint("messages", __name__)
NAME = "messages"


@bp.post("/v1/messages")
def create() -> Response | dict[str, Any]:
    """A `message` object, or (`stream`: true) its events as Server-Sent Events."""
    found = services()
    asked = prepare_message(request._get_current_object(), kept(NAME).create, found.settings, found.provider)
    call, prompt_tokens = asked.call, asked.prompt_tokens
    if asked.stream:
        return streams.start(call, prompt_tokens, Wire(WIRE), Retention(foreground=True), streams.HOLD_SECONDS)
    outcome = streams.wait(call, prompt_tokens)
    return replies.message(random_id(), outcome.model or call.model, outcome)


@bp.post("/v1/messages/count_tokens")
def tokens() -> dict[str, Any]:
    """How many input tokens the model would read for this request."""
    counted()
    found = services()
    counted_tokens = count_tokens(request._get_current_object(), kept(NAME).count, found.settings, found.provider)
    return replies.token_count(counted_tokens)


@bp.get("/v1/messages/streams/<message_id>")
def resume(message_id: str) -> Response:
    """The events after the client's last event id (Last-Event-ID, else ?last_event_id=N), then
    live ones; 204 when it already has the last one."""
    stream_id = message_id.removeprefix(replies.MESSAGE_PREFIX)
    return streams.resume_by_id(stream_id, WIRE, request.args.get("last_event_id"))


@bp.delete("/v1/messages/streams/<message_id>")
def stop(message_id: str) -> dict[str, Any]:
    """Stop a streamed message: the upstream is closed, the stream ends with its usage."""
    stream = streams.find(message_id.removeprefix(replies.MESSAGE_PREFIX), WIRE)
    status, last_event_id = streams.stop(stream)
    return replies.stopped(stream.stream_id, status, last_event_id)
