"""The messages a Responses WebSocket sends besides a turn's own events: `error` events, the
`response.steer.failed` answer to steering, a lane's `stream_id` put in, and the events of
ChatWait's SSE answer taken out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson


def error_event(found: dict[str, Any], status: int, previous: Any) -> str:
    """An `error` event: OpenAI's event fields (code, message, param) and its WebSocket form (status, error)."""
    error = dict(found.get("error", found))
    if isinstance(previous, str) and error.get("code") == "response_not_found":
        error["code"], error["param"] = "previous_response_not_found", "previous_response_id"
    event = {
        "type": "error",
        "sequence_number": 0,
        "status": status,
        "code": error.get("code"),
        "message": error.get("message"),
        "param": error.get("param"),
        "error": error,
    }
    return orjson.dumps(event).decode()


def steer_failed(event: dict[str, Any]) -> str:
    """OpenAI's answer to steering a model cannot take: `response.steer.failed`, its input given
    back to be sent with the next `response.create` (`invalid_input` where the event is malformed)."""
    target, given = event.get("previous_response_id"), event.get("input")
    valid = isinstance(target, str) and isinstance(given, (str, list)) and bool(given)
    code, message = (
        ("steering_not_supported", "No model behind this server can be steered: send this input with the next turn.")
        if valid
        else ("invalid_input", "response.steer needs previous_response_id and a non-empty input.")
    )
    steer = {"input": given if valid else "", "previous_response_id": target if isinstance(target, str) else ""}
    error = {"code": code, "message": message, "type": "invalid_request_error"}
    failed = {"type": "response.steer.failed", "sequence_number": 0, "error": error, "steer": steer}
    return orjson.dumps(failed).decode()


def in_lane(data: str, lane: Any) -> str:
    """An event's JSON text with the `stream_id` of its turn's lane first (as it is, without one)."""
    return data if lane is None else '{"stream_id":' + orjson.dumps(lane).decode() + "," + data[1:]


def sse_data(body: Any) -> Iterator[str]:
    """The `data` of each event of a streamed answer (ChatWait's own SSE bytes), as it comes."""
    rest = b""
    for chunk in body:
        *frames, rest = (rest + chunk).split(b"\n\n")
        for frame in frames:
            data = [line[6:] for line in frame.split(b"\n") if line.startswith(b"data: ")]
            if data and data != [b"[DONE]"]:
                yield b"\n".join(data).decode()
