"""Server-Sent Events on the wire: exact frame bytes, and Last-Event-ID parsing.

Every frame is encoded once, when the producer appends it, and the same bytes are shared by
every consumer of the stream. Data is always one line of JSON.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ...errors import ApiError

RECONNECT_MILLISECONDS = 2000
# The reconnection delay for EventSource, sent inside the first event's block: a block of its own
# would be an event without data, which common SSE parsers hand on as an empty event.
RETRY_LINE = b"retry: %d\n" % RECONNECT_MILLISECONDS
# A comment line without the blank line that would end a block: it joins the next event's block,
# where every parser skips it. A block of its own would dispatch an empty event in parsers that
# keep the last event id across events (the `openai` SDK's, httpx-sse's), and `json.loads("")` fails.
KEEPALIVE_FRAME = b": keepalive\n"

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
quote = json.encoder.encode_basestring  # a str as a JSON string, as `dumps` writes it (C)


@dataclasses.dataclass(frozen=True, slots=True)
class SseEvent:
    """One SSE event: `id`, `event` name and a JSON object as data."""

    id: int
    event: str
    data: Mapping[str, Any]

    def encode(self) -> bytes:
        """The exact bytes of this event on the wire."""
        # "replace" turns an unpaired surrogate from upstream into U+FFFD instead of failing.
        payload = dumps(self.data).encode("utf-8", "replace")
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (self.id, self.event.encode("ascii"), payload)


@dataclasses.dataclass(frozen=True, slots=True)
class Position:
    """Where a resume starts: after stream event `after` (None: from the first), skipping the
    numbered events up to `skip_through` in the first frame it gets (None: none to skip)."""

    after: int | None
    skip_through: int | None = None


def one_id_per_event(seen: int | None, last_event_id: int, finished: bool) -> Position | None:
    """The resume position of a wire whose SSE ids are the stream's event ids (None: nothing left)."""
    if seen is not None and finished and seen >= last_event_id:
        return None
    return Position(seen)


def skip_numbered(frames: bytes, skip_through: int) -> bytes:
    """`frames` without their events numbered up to `skip_through` (blocks that start `id: N`)."""
    kept = []
    for block in frames.split(b"\n\n"):
        if block.startswith(b"id: ") and int(block[4:].split(b"\n", 1)[0]) <= skip_through:
            continue
        kept.append(block)
    return b"\n\n".join(kept)


def encode_chunk(sequence: int, content: str) -> bytes:
    """The `chunk` frame for one piece of generated text (the hot path: no intermediate objects)."""
    return b'id: %d\nevent: chunk\ndata: {"sequence":%d,"content":%s,"is_final":false}\n\n' % (
        sequence,
        sequence,
        quote(content).encode("utf-8", "replace"),
    )


def parse_last_event_id(header: str | None, query: str | None) -> int | None:
    """The event id a resuming client last received: the header wins over the query parameter.

    Returns None when neither is given (replay from the start); raises ApiError when malformed.
    """
    raw = header if header is not None else query
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    if not raw.isdigit() or not raw.isascii() or len(raw) > 12:
        raise ApiError("invalid_last_event_id", f"{raw[:40]!r} is not a non-negative whole number.")
    return int(raw)
