"""What the Responses API reads back for a later request: a response of this client by its id
(a stored one; one created with store false only for its events), what a stored response keeps
(its conversation and input items), its output items (`item_reference`), the conversation a
`previous_response_id` continues, and a conversation's turns (`conversation`)."""

from __future__ import annotations

import functools
import json
from typing import Any

from ...errors import ApiError
from ...streaming.view import StreamView
from .. import streams
from ..items.kept import conversation_items
from ..items.references import OutputItem
from .chat import Earlier, Stored, earlier_of
from .layout import ITEM_PREFIXES
from .replies import RESPONSE_PREFIX
from .wire import NAME as WIRE
from .wire import ResponsesWriter


def find_response(response_id: str, stored_only: bool = True) -> StreamView:
    """This client's response by its id: a stored one, or (not `stored_only`) one created with
    store false, whose events alone can be read, while it runs and for STREAM_TTL_SECONDS."""
    try:
        stream = streams.find(response_id.removeprefix(RESPONSE_PREFIX), WIRE)
    except ApiError as error:
        if error.error_code != "stream_not_found":
            raise
        raise ApiError("response_not_found", f"No response {response_id[:80]!r} is kept here.") from None
    writer = stream.writer
    assert isinstance(writer, ResponsesWriter)  # `streams.find` finds streams of this wire only
    if stored_only and not writer.head.echo["store"]:
        detail = "This response was created with store false: only its events can be read (GET with stream=true)."
        raise ApiError("response_not_found", detail)
    return stream


def kept_by(stream: StreamView) -> dict[str, Any]:
    """What a stored response keeps for later requests: its conversation's `messages` (earlier
    turns and its input), its `input` items and the `tools` its chain's items added (an earlier
    release kept the messages alone, then no tools)."""
    kept = json.loads(stream.context or b"[]")
    return {"tools": [], **kept} if isinstance(kept, dict) else {"messages": kept, "input": [], "tools": []}


def references() -> Stored:
    """Where this request's references are read (each referenced response read once)."""
    return Stored(_earlier_turns, output_items(), conversation_turns)


def output_items() -> OutputItem:
    """Where the output items of this client's stored responses are found by id, for one request
    (each response read once)."""
    outputs: dict[str, list[dict[str, Any]]] = {}
    return functools.partial(_output_item, outputs)


def conversation_turns(conversation_id: str) -> Earlier:
    """The turns a conversation's items make (404 when this client has none by that id)."""
    return earlier_of(conversation_items(conversation_id))


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


def _earlier_turns(response_id: str) -> Earlier:
    """The conversation a stored response continues: its input (with the turns before it) and its
    output; the tools its chain's items added."""
    stream = find_response(response_id)
    if not stream.finished:
        detail = f"The response {response_id[:80]!r} is still in progress."
        raise ApiError("validation_error", detail, fields={"previous_response_id": ["Wait until it has ended."]})
    kept = kept_by(stream)
    writer = stream.writer
    if isinstance(writer, ResponsesWriter) and writer.prepared:  # a warmup: its input, no reply
        return Earlier(kept["messages"], kept["tools"])
    found = stream.result()
    text, calls = (found[0], found[2].tool_calls) if found else ("", [])
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        reply["tool_calls"] = [call.as_openai() for call in calls]
    return Earlier([*kept["messages"], reply], kept["tools"])
