"""How a stream's events look on the wire, for the API family that started it.

Every stream has the same events: a priming one (id 0), one per chunk of text (ids 1..n) and one
terminal event (id n+1). A stream's `Wire` names its API family; its `WireWriter` writes the
events as SSE bytes (`sse`), once, when they are appended: the native API's
`stream`/`chunk`/`done`/`error` events (`native.NativeWriter`), or the OpenAI API's
`chat.completion.chunk` objects and `[DONE]` (`openai.OpenAIWriter`). A stream in Redis keeps its
wire's name, so any worker writes the same bytes for it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

from .native import NativeWriter
from .openai import OpenAIWriter

if TYPE_CHECKING:
    from ...errors import ApiError
    from ...generation.outcome import Outcome

WIRES = ("chatwait", "openai")


class WireWriter(Protocol):
    """Writes one stream's events as SSE frames."""

    name: str

    def priming(self) -> bytes:
        """The event with id 0, sent at once so that even a drop before the first token can resume."""
        ...

    def chunk(self, sequence: int, content: str) -> bytes:
        """The event of one chunk of text; its id is `sequence` (the hot path)."""
        ...

    def terminal(self, last_chunk: int, content_length: int, outcome: Outcome) -> bytes:
        """The one terminal event (id `last_chunk` + 1): how the generation ended."""
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
    """A stream's wire: its API family, and (OpenAI) whether usage ends the stream."""

    name: str = "chatwait"
    include_usage: bool = False

    def writer(self, stream_id: str, correlation_id: str, model: str, created: float) -> WireWriter:
        """The writer of this wire for one stream."""
        if self.name == "openai":
            return OpenAIWriter(stream_id, correlation_id, model, created, self.include_usage)
        return NativeWriter(stream_id, correlation_id, model, created)


NATIVE = Wire()
