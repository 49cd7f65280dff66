"""How a stream's events look on the wire, for the API family that started it.

Every stream has the same events: a priming one (id 0), one per chunk of text (ids 1..n) and one
terminal event (id n+1). A stream's `Wire` names its API family; its `WireWriter` writes the
events as SSE bytes (`sse`), once, when they are appended: the native API's
`stream`/`chunk`/`done`/`error` events (`native.NativeWriter`), or the OpenAI API's
`chat.completion.chunk` objects and `[DONE]` (`openai.OpenAIWriter`), or the Responses API's
numbered `response.*` events (`responses.ResponsesWriter`). A stream in Redis keeps its wire's
name and echoed parameters, so any worker writes the same bytes for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .native import NativeWriter
from .openai import OpenAIWriter
from .responses import ResponsesWriter
from .sse import Position

if TYPE_CHECKING:
    from ...errors import ApiError
    from ...generation.outcome import Outcome

WIRES = ("chatwait", "openai", "responses")


class WireWriter(Protocol):
    """Writes one stream's events as SSE frames."""

    name: str
    echo: Mapping[str, Any] | None  # the request parameters its events repeat (the Responses API's)

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


@dataclasses.dataclass(frozen=True, slots=True)
class Wire:
    """A stream's wire: its API family, (OpenAI) whether usage ends the stream, and (Responses)
    the request's parameters each response object repeats."""

    name: str = "chatwait"
    include_usage: bool = False
    echo: Mapping[str, Any] | None = None

    def writer(self, stream_id: str, correlation_id: str, model: str, created: float) -> WireWriter:
        """The writer of this wire for one stream."""
        if self.name == "openai":
            return OpenAIWriter(stream_id, correlation_id, model, created, self.include_usage)
        if self.name == "responses":
            return ResponsesWriter(stream_id, correlation_id, model, created, self.echo)
        return NativeWriter(stream_id, correlation_id, model, created)


NATIVE = Wire()
