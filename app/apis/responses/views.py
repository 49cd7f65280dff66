"""OpenAI's Responses API: POST /v1/responses (foreground or background, streamed or not),
GET /v1/responses/{id} (the object as it stands, or with `stream=true` its events after
`starting_after`), POST /v1/responses/{id}/cancel and DELETE /v1/responses/{id}.

Every response is a ChatWait stream in the `responses` wire: its events resume on any worker,
and its stored conversation (`store`, the default) lets a later request continue it with
`previous_response_id` for RESPONSE_TTL_SECONDS. Its object is built from the stream's text
and outcome (`objects`), never from its events' bytes.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from flask import Blueprint, Response, request

from ...errors import ApiError
from ...streaming.view import StreamView
from ...streaming.wire import Wire
from .. import streams
from ..family import kept
from ..request import correlation_id, services
from .intake import prepare_response
from .layout import ITEM_PREFIXES
from .objects import RESPONSE_PREFIX, deleted_reply, response_reply
from .wire import LAYOUT_MARK, ResponsesWriter
from .wire import NAME as WIRE

bp = Blueprint("responses", __name__)
NAME = "responses"


@bp.post("/v1/responses")
def create() -> Response | dict[str, Any]:
    """Start a response: its events as Server-Sent Events (`stream`), else its object once it
    has ended, or at once (`background`)."""
    found = services()
    req = request._get_current_object()
    outputs: dict[str, list[dict[str, Any]]] = {}  # each referenced response's output, read once
    lookup = functools.partial(_output_item, outputs)
    asked = prepare_response(req, kept(NAME), found.settings, found.provider, _earlier_turns, lookup)
    retention, wire = asked.retention(found.settings), Wire(WIRE, {**asked.echo, LAYOUT_MARK: 1})
    if asked.stream:
        return streams.start(asked.call, asked.prompt_tokens, wire, retention)
    stream = streams.begin(asked.call, asked.prompt_tokens, wire, retention)
    if not asked.background:
        streams.wait_for_end(stream, request.environ)
        _raise_failure(stream)
    return _object(stream)


@bp.get("/v1/responses/<response_id>")
def retrieve(response_id: str) -> Response | dict[str, Any]:
    """The response object as it stands; with `stream=true`, its events after `starting_after`
    (or Last-Event-ID), then live ones."""
    stream = _find(response_id)
    if request.args.get("stream") == "true":
        return streams.resume(stream, request.args.get("starting_after"))
    return _object(stream, stored_only=True)


@bp.post("/v1/responses/<response_id>/cancel")
def cancel(response_id: str) -> dict[str, Any]:
    """Stop a response's generation (its partial text and usage are kept); the object as it ended."""
    stream = _find(response_id)
    streams.stop(stream)
    return _object(stream)


@bp.delete("/v1/responses/<response_id>")
def delete(response_id: str) -> dict[str, Any]:
    """Stop a response if it still runs, and forget it."""
    stream = _find(response_id)
    streams.forget(stream)
    return deleted_reply(stream.stream_id)


def _raise_failure(stream: StreamView) -> None:
    """A response awaited in the foreground that failed answers with the failure's HTTP status and
    OpenAI's error object, as chat completions does (a 200 with status `failed` is read as a
    success by the SDKs); the failed response is still kept, for GET and a resume."""
    found = stream.result()
    if found is not None and found[1] is not None and found[1].error is not None:
        raise found[1].error


def _find(response_id: str) -> StreamView:
    try:
        return streams.find(response_id.removeprefix(RESPONSE_PREFIX), WIRE)
    except ApiError as error:
        if error.error_code != "stream_not_found":
            raise
        raise ApiError("response_not_found", f"No response {response_id[:80]!r} is kept here.") from None


def _object(stream: StreamView, stored_only: bool = False) -> dict[str, Any]:
    found = stream.result()
    if found is None:  # its events are gone (Redis lost them): only its metadata is left
        raise ApiError("response_not_found", "This response's events are no longer kept.")
    writer = stream.writer
    assert isinstance(writer, ResponsesWriter)  # `_find` finds streams of this wire only
    if stored_only and not writer.head.echo["store"]:
        raise ApiError("response_not_found", "This response was created with store false: it is not kept.")
    text, outcome, parts = found
    return response_reply(writer.head, outcome, correlation_id(), writer.output(text, parts, outcome))


def _output_item(outputs: dict[str, list[dict[str, Any]]], item_id: str) -> dict[str, Any] | None:
    """An output item of a finished stored response of this client, by its id (which names the
    response: `msg_`, `rs_` or `fc_`, the stream's id, and a call's place); None when there is
    none. `outputs`: the outputs of the responses already read for this request."""
    kind, _, rest = item_id.partition("_")
    if kind not in ITEM_PREFIXES or not rest:
        return None
    stream_id = rest.split("_", 1)[0]
    if stream_id not in outputs:
        outputs[stream_id] = _stored_output(stream_id)
    return next((item for item in outputs[stream_id] if item["id"] == item_id), None)


def _stored_output(stream_id: str) -> list[dict[str, Any]]:
    """The output items of this client's finished stored response (none when there is no such response)."""
    try:
        stream = streams.find(stream_id, WIRE)
    except ApiError:
        return []
    found = stream.result() if stream.finished and stream.context else None
    if found is None:
        return []
    writer = stream.writer
    assert isinstance(writer, ResponsesWriter)
    return writer.output(found[0], found[2], found[1])


def _earlier_turns(response_id: str) -> list[dict[str, Any]]:
    """The conversation a stored response continues: its input (with the turns before it) and its output."""
    stream = _find(response_id)
    if not stream.context:
        raise ApiError("response_not_found", "That response was created with store false: it is not kept.")
    if not stream.finished:
        detail = f"The response {response_id[:80]!r} is still in progress."
        raise ApiError("validation_error", detail, fields={"previous_response_id": ["Wait until it has ended."]})
    found = stream.result()
    text, calls = (found[0], found[2].tool_calls) if found else ("", [])
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        reply["tool_calls"] = [call.as_openai() for call in calls]
    return [*json.loads(stream.context), reply]
