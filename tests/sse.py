"""Test-side SSE reading: an incremental parser and a streaming HTTP reader."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import httpx


@dataclasses.dataclass
class Event:
    """One dispatched SSE event (or a comment, with event == ":comment")."""

    id: int | None
    event: str
    data: Any


class SseParser:
    """Feed bytes, get complete events, line by line as the SSE spec reads them: a comment line is
    reported at once (as a ":comment" event, so tests see keepalives), a blank line dispatches
    the block's event if it has data, `retry` is kept."""

    def __init__(self) -> None:
        self._buffer = b""
        self._fields: dict[str, str] = {}
        self.retry: int | None = None

    def feed(self, data: bytes) -> list[Event]:
        *lines, self._buffer = (self._buffer + data).split(b"\n")  # in one pass: a big body is no quadratic copy
        events: list[Event] = []
        for raw in lines:
            line = raw.decode("utf-8")
            if line.startswith(":"):
                events.append(Event(None, ":comment", line[1:].strip()))
            elif line:
                name, _, value = line.partition(":")
                self._fields[name] = value[1:] if value.startswith(" ") else value
            else:
                fields, self._fields = self._fields, {}
                if "retry" in fields:
                    self.retry = int(fields["retry"])
                if "data" in fields:
                    event_id = int(fields["id"]) if "id" in fields else None
                    data = fields["data"]
                    parsed = data if data == "[DONE]" else json.loads(data)
                    events.append(Event(event_id, fields.get("event", "message"), parsed))
        return events


def parse(body: bytes) -> tuple[list[Event], SseParser]:
    """All events of a complete body."""
    parser = SseParser()
    return parser.feed(body), parser


def responses_events(body: bytes) -> list[Event]:
    """The events of a whole Responses stream, which Open Responses ends with `data: [DONE]` (no
    id, after the terminal event and nowhere else): checked, then left out."""
    events = parse(body)[0]
    assert events and events[-1].data == "[DONE]" and events[-1].id is None, events[-1:]
    assert all(event.data != "[DONE]" for event in events[:-1])
    return events[:-1]


def iter_events(response: httpx.Response) -> Iterator[Event]:
    """Events of a streaming httpx response as they arrive."""
    parser = SseParser()
    for data in response.iter_raw():
        yield from parser.feed(data)


def read_events(response: httpx.Response, limit: int | None) -> tuple[list[Event], bool]:
    """Up to `limit` events of a streaming response (all when None), comments skipped; True if
    the terminal event was among them."""
    events: list[Event] = []
    for event in iter_events(response):
        if event.event == ":comment":
            continue
        events.append(event)
        if event.event in ("done", "error"):
            return events, True
        if limit is not None and len(events) >= limit:
            break
    return events, False


def content_of(events: list[Event]) -> str:
    """The reply text carried by the chunk events."""
    return "".join(e.data["content"] for e in events if e.event == "chunk")


def expected_reply(tokens: int) -> str:
    """What the fake upstream answers with @tokens=N."""
    return "".join(f"tok{i} " for i in range(tokens))


def upstream_reply(*pieces: str) -> bytes:
    """An OpenAI-style streamed chat completion body: one chunk per piece, the finish, [DONE]."""
    chunks = [{"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]} for piece in pieces]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks).encode() + b"data: [DONE]\n\n"
