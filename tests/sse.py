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
    """Feed bytes, get complete events; keeps `retry` and comments as the spec says."""

    def __init__(self) -> None:
        self._buffer = b""
        self.retry: int | None = None

    def feed(self, data: bytes) -> list[Event]:
        self._buffer += data
        events = []
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            fields: dict[str, str] = {}
            comment = None
            for line in block.decode("utf-8").split("\n"):
                if line.startswith(":"):
                    comment = line[1:].strip()
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
            if "retry" in fields:
                self.retry = int(fields["retry"])
            if "data" in fields:
                events.append(
                    Event(
                        int(fields["id"]) if "id" in fields else None,
                        fields.get("event", "message"),
                        json.loads(fields["data"]),
                    )
                )
            elif comment is not None:
                events.append(Event(None, ":comment", comment))
        return events


def parse(body: bytes) -> tuple[list[Event], SseParser]:
    """All events of a complete body."""
    parser = SseParser()
    return parser.feed(body), parser


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
