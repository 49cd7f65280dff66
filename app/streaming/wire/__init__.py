"""How a stream's events look on the wire, for the API family that started it.

Every stream has the same events: a priming one (id 0), one per chunk of text (ids 1..n) and one
terminal event (id n+1). A stream's `Wire` names its family's format; the family's
`WireWriter` writes the events as SSE bytes (`sse`), once, when they are appended. Families
register their writer by name when the app is built (`register`), so this package knows none
of them. A stream in Redis keeps its wire's name and its writer's `echo` (the options other
workers need), so any worker writes the same bytes for it. A writer whose events depend on the
chunks before them (the Responses API's, which lays them out among output items) also has
`learned` (the chunks it has placed) and `learn(event_id, kind, payload)`: a worker that follows
a stream another one writes feeds it the stored chunks before the first it writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ...providers.deltas import TEXT_KIND, Delta, decode
from .sse import Position

if TYPE_CHECKING:
    from ...errors import ApiError
    from ...generation.outcome import Outcome

NATIVE_NAME = "chatwait"  # the native API's wire, every stream's unless its family says otherwise


class WireWriter(Protocol):
    """Writes one stream's events as SSE frames."""

    name: str
    echo: Mapping[str, Any] | None  # the options other workers need to write its events (kept in Redis)
    # Whether its clients take the answer's model from the priming event (so that a fallback's
    # stream holds it back until the answering model is known).
    model_first: bool

    def position(self, seen: int | None, last_event_id: int, finished: bool) -> Position | None:
        """Where a resume after the SSE id `seen` starts in a stream whose last event is
        `last_event_id` (None: the stream ended and nothing is left after it)."""
        ...

    def numbered(self, event_id: int) -> int:
        """The SSE id a client last received with stream event `event_id`."""
        ...

    def priming(self) -> bytes:
        """The event with id 0, sent at once so that even a drop before the first token can resume."""
        ...

    def chunk(self, sequence: int, content: str) -> bytes:
        """The event of chunk `sequence` (stream event 1..n; its SSE id is `numbered(sequence)`); the hot path."""
        ...

    def delta(self, sequence: int, delta: Delta) -> bytes:
        """The event of chunk `sequence` when it is a typed delta (only families whose calls are
        `typed` get any)."""
        ...

    def terminal(self, last_chunk: int, content_length: int, outcome: Outcome) -> bytes:
        """The one terminal event (stream event `last_chunk` + 1): how the generation ended."""
        ...

    def queued(self, ahead: int) -> bytes:
        """A notice without an id (never replayed): the reply waits for the model, `ahead` before it."""
        ...

    def interrupted(self, last_id: int, error: ApiError) -> bytes:
        """The end of one response, not of the stream (no id: never replayed): `error` says why,
        and a resume after `last_id` continues the stream."""
        ...


# (stream id, correlation id, model, created, options) -> the writer of one stream
WriterFactory = Callable[[str, str, str, float, "Mapping[str, Any] | None"], WireWriter]
_WRITERS: dict[str, WriterFactory] = {}


def register(name: str, factory: WriterFactory) -> None:
    """Streams whose wire is `name` are written by what `factory` makes (registering again replaces)."""
    _WRITERS[name] = factory


def known(name: str) -> bool:
    """Whether a family has registered the wire `name`."""
    return name in _WRITERS


@dataclasses.dataclass(frozen=True, slots=True)
class Wire:
    """A stream's wire: the name its family registered, and the options its writer takes (the
    request's parameters its events repeat, whether usage ends the stream)."""

    name: str = NATIVE_NAME
    options: Mapping[str, Any] | None = None

    def writer(self, stream_id: str, correlation_id: str, model: str, created: float) -> WireWriter:
        """The writer of this wire for one stream."""
        return _WRITERS[self.name](stream_id, correlation_id, model, created, self.options)


NATIVE = Wire()


def chunk_frame(writer: WireWriter, event_id: int, kind: bytes, stored: bytes | bytearray) -> bytes:
    """The event of a stored chunk (its kind and UTF-8 text or payload), re-written by `writer`."""
    if kind == TEXT_KIND:
        return writer.chunk(event_id, stored.decode("utf-8", "replace"))
    return writer.delta(event_id, decode(kind, bytes(stored)))
