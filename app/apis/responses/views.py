"""OpenAI's Responses API: POST /v1/responses (foreground or background, streamed or not),
GET /v1/responses/{id} (the object as it stands, or with `stream=true` its events after
`starting_after`), POST /v1/responses/{id}/cancel, DELETE /v1/responses/{id}, and
POST /v1/responses/compact (a conversation summarised by the model: `compaction`).

Every response is a ChatWait stream in the `responses` wire: its events resume on any worker,
and its stored conversation (`store`, the default) lets a later request continue it with
`previous_response_id` for RESPONSE_TTL_SECONDS. Its object is built from the stream's text
and outcome (`replies`), never from its events' bytes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.routing import BaseConverter

from ...errors import ApiError
from ...service.services import Reviver, Services
from ...streaming.view import StreamView
from ...streaming.wire import Wire
from .. import streams
from ..family import kept
from ..items.listing import page
from ..request import client, correlation_id, costed, counted, services
from . import socket
from .conversation import appender
from .intake import count_input_tokens, prepare_compaction, prepare_response
from .replies import compacted_reply, deleted_reply, input_tokens_reply, response_reply
from .stored import find_response, kept_by, references
from .wire import LAYOUT_MARK, ResponsesWriter
from .wire import NAME as WIRE

bp = Blueprint("responses", __name__)
bp.record_once(lambda state: state.app.url_map.converters.setdefault("response_id", ResponseId))
NAME = "responses"


class ResponseId(BaseConverter):
    """A response id: any path segment but the API's own names (`input_tokens`, `compact`)."""

    regex = r"(?!(?:input_tokens|compact)$)[^/]+"


def revive_turns(found: Services) -> Reviver:
    """A response another worker takes over (its own died) appends its turn to its conversation there."""
    return lambda digest, turn: appender(found, digest, turn["conversation_id"], turn["input_items"])


@bp.post("/v1/responses")
def create() -> Response | dict[str, Any]:
    """Start a response: its events as Server-Sent Events (`stream`), else its object once it
    has ended, or at once (`background`)."""
    found, req = services(), request._get_current_object()
    asked = prepare_response(req, kept(NAME), found.settings, found.provider, references())
    if asked.compaction is not None:  # server-side compaction: the model's summary first
        summary = streams.wait(asked.compaction.call, asked.compaction.prompt_tokens).text
        asked = asked.compacted(summary, found.provider)
    ended = appender(found, client(), asked.conversation_id, asked.input_items) if asked.conversation_id else None
    retention, wire = asked.retention(found.settings, ended), Wire(WIRE, {**asked.echo, LAYOUT_MARK: 1})
    if asked.stream:  # a failure before the first token is an HTTP status, as OpenAI answers (not in the background)
        hold = 0.0 if asked.background else streams.HOLD_SECONDS
        return streams.start(asked.call, asked.prompt_tokens, wire, retention, hold)
    stream = streams.begin(asked.call, asked.prompt_tokens, wire, retention)
    if not asked.background:
        streams.wait_for_end(stream, request.environ)
        _raise_failure(stream)
    return _object(stream)


@bp.route("/v1/responses", methods=["GET"], websocket=True)  # matched by upgrade requests only
def connect() -> Response:
    """WebSocket mode: an upgrade request becomes a socket whose messages are turns (`socket`)."""
    return socket.serve()


@bp.post("/v1/responses/input_tokens")
def input_tokens() -> dict[str, Any]:
    """The input tokens a create with this body would send the model (nothing is generated)."""
    counted()
    found, req = services(), request._get_current_object()
    return input_tokens_reply(count_input_tokens(req, kept(NAME), found.settings, found.provider, references()))


@bp.post("/v1/responses/compact")
def compact() -> dict[str, Any]:
    """The conversation compacted: its user messages and one item with the model's summary of it."""
    found, req = services(), request._get_current_object()
    call, tokens, conversation = prepare_compaction(req, kept(NAME), found.settings, found.provider, references())
    return compacted_reply(conversation, streams.wait(call, tokens))


@bp.get("/v1/responses/<response_id:response_id>")
def retrieve(response_id: str) -> Response | dict[str, Any]:
    """The response object as it stands; with `stream=true`, its events after `starting_after`
    (or Last-Event-ID), then live ones (the only way to a response not stored)."""
    if request.args.get("stream") == "true":
        return streams.resume(find_response(response_id, stored_only=False), request.args.get("starting_after"))
    return _object(find_response(response_id))


@bp.get("/v1/responses/<response_id:response_id>/input_items")
def input_items(response_id: str) -> dict[str, Any]:
    """The items of a stored response's input, a page at a time (`after`, `limit`, `order`)."""
    return page(kept_by(find_response(response_id))["input"], request.args)


@bp.post("/v1/responses/<response_id:response_id>/cancel")
def cancel(response_id: str) -> dict[str, Any]:
    """Stop a response's generation (its partial text and usage are kept); the object as it ended."""
    stream = find_response(response_id)
    streams.stop(stream)
    return _object(stream)


@bp.delete("/v1/responses/<response_id:response_id>")
def delete(response_id: str) -> dict[str, Any]:
    """Stop a response if it still runs, and forget it."""
    stream = find_response(response_id)
    streams.forget(stream)
    return deleted_reply(stream.stream_id)


def _raise_failure(stream: StreamView) -> None:
    """A response awaited in the foreground that failed answers with the failure's HTTP status and
    OpenAI's error object, as chat completions does (a 200 with status `failed` is read as a
    success by the SDKs); the failed response is still kept, for GET and a resume."""
    found = stream.result()
    if found is not None and found[1] is not None and found[1].error is not None:
        raise found[1].error


def _object(stream: StreamView) -> dict[str, Any]:
    found = stream.result()
    if found is None:  # its events are gone (Redis lost them): only its metadata is left
        raise ApiError("response_not_found", "This response's events are no longer kept.")
    writer = stream.writer
    assert isinstance(writer, ResponsesWriter)
    text, outcome, parts = found
    costed(outcome)
    delivered, replayed = streams.handed_whole(stream)  # its reply so far reached this client
    if outcome is not None:
        outcome = dataclasses.replace(outcome, delivered=delivered, replayed=replayed)
    return response_reply(writer.head, outcome, correlation_id(), writer.output(text, parts, outcome))
