"""What a stream's entries and hash in Redis mean: the chunks they hold, their SSE bytes, the wire
they were written in, how the stream ended, and a writer taught the layout they record."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

from ...errors import CATALOGUE, ApiError
from ...generation.outcome import Outcome
from ...providers.call import Usage
from ..wire import NATIVE_NAME, Wire, WireWriter, chunk_frame, known
from . import link as keys

STATELESS = sys.maxsize  # what a writer that writes any event on its own has `learned`
Entries = list[tuple[bytes, dict[bytes, bytes]]]  # (entry id, fields), as XRANGE and XREAD give them


def outcome_of_ending(text: str, chunks: int, ending: str) -> Outcome:
    """How a stream ended, from its hash's `ending` alone (a finish reason or an error code)."""
    usage = Usage(0, 0, estimated=True)
    if ending in CATALOGUE:
        return Outcome(text, chunks, usage, 0.0, None, error=ApiError(ending))
    return Outcome(text, chunks, usage, 0.0, None, finish_reason=ending or "stop")


def stored_chunks(entries: Entries) -> Iterator[tuple[bytes, bytes]]:
    """The (kind, payload) of each chunk among Redis entries (the priming and terminal ones left out)."""
    for _, fields in entries:
        if b"h" not in fields and b"t" not in fields:
            ((kind, payload),) = fields.items()
            yield kind, payload


def teach(writer: WireWriter, entries: Entries) -> None:
    """Feed a writer that lays a stream's events out the chunks among `entries` it has not placed yet."""
    learned = getattr(writer, "learned", STATELESS)
    for entry, fields in entries:
        event_id = keys.event_id(entry)
        if event_id == learned + 1 and b"h" not in fields and b"t" not in fields:
            ((kind, payload),) = fields.items()
            writer.learn(event_id, kind, payload)  # type: ignore[attr-defined]
            learned = event_id


def wire_of(meta: dict[bytes, bytes]) -> Wire:
    """The wire (and the echoed parameters) a stream's hash in Redis records."""
    name = meta.get(b"wire", b"").decode()
    echo = json.loads(meta[b"echo"]) if meta.get(b"echo") else None
    return Wire(name if known(name) else NATIVE_NAME, echo)


def writer_of(stream_id: str, meta: dict[bytes, bytes]) -> WireWriter:
    """The writer of a stream's events, as its hash in Redis records them."""
    correlation_id, model = meta.get(b"correlation_id", b"").decode(), meta.get(b"model", b"").decode()
    return wire_of(meta).writer(stream_id, correlation_id, model, float(meta.get(b"created", b"0")))


def frames_of(entries: Entries, writer: WireWriter) -> tuple[bytes, int, bool]:
    """The SSE bytes of Redis entries, the next event id wanted, and whether the last one ends the stream."""
    out: list[bytes] = []
    ended = False
    event_id = -1
    for entry, fields in entries:
        event_id = keys.event_id(entry)
        text = fields.get(b"c")
        if text is not None:
            out.append(writer.chunk(event_id, text.decode("utf-8", "replace")))
        elif b"t" in fields or b"h" in fields:
            ended = b"t" in fields
            out.append(fields[b"t"] if ended else fields[b"h"])
        else:  # a typed delta: its kind's letter is its field
            ((kind, payload),) = fields.items()
            out.append(chunk_frame(writer, event_id, kind, payload))
    return b"".join(out), event_id + 1, ended
