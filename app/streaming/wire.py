"""How a stream's events look on the wire, for the API family that started it.

Every stream has the same events: a priming one (id 0), one per chunk of text (ids 1..n) and one
terminal event (id n+1). A `Wire` writes them as SSE bytes, once, when they are appended: the
native API's `stream`/`chunk`/`done`/`error` events (`ChatWaitWire`), or the OpenAI API's
`chat.completion.chunk` objects and `[DONE]` (`openai_wire.OpenAIWire`). A stream in Redis
keeps its format's name, so any worker writes the same bytes for it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

from .openai_wire import OpenAIWire
from .sse import SseEvent, dumps, encode_chunk

if TYPE_CHECKING:
    from ..errors import ApiError
    from .relay import Outcome

DIALECTS = ("chatwait", "openai")


class Wire(Protocol):
    """Writes one stream's events as SSE frames."""

    dialect: str

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
class Format:
    """The wire format of a stream: its API family, and (OpenAI) whether usage ends the stream."""

    dialect: str = "chatwait"
    include_usage: bool = False

    def wire(self, stream_id: str, correlation_id: str, model: str, created: float) -> Wire:
        """The writer of this format for one stream."""
        if self.dialect == "openai":
            return OpenAIWire(stream_id, correlation_id, model, created, self.include_usage)
        return ChatWaitWire(stream_id, correlation_id, model, created)


NATIVE = Format()


class ChatWaitWire:
    """The native API's events: `stream`, `chunk`, then `done` or `error`."""

    dialect = "chatwait"
    chunk = staticmethod(encode_chunk)

    def __init__(self, stream_id: str, correlation_id: str, model: str, created: float) -> None:
        self.stream_id = stream_id
        self.correlation_id = correlation_id
        self.model = model
        self.created = int(created)

    def priming(self) -> bytes:
        data = {"stream_id": self.stream_id, "correlation_id": self.correlation_id, "model": self.model}
        return SseEvent(0, "stream", {**data, "created": self.created}).encode()

    def queued(self, ahead: int) -> bytes:
        return b'event: queued\ndata: {"ahead":%d}\n\n' % ahead

    def interrupted(self, last_id: int, error: ApiError) -> bytes:
        data = {**error.body(self.correlation_id), "is_final": True, "resume_after": last_id}
        return b"event: error\ndata: %s\n\n" % dumps(data).encode("utf-8", "replace")

    def terminal(self, last_chunk: int, content_length: int, outcome: Outcome) -> bytes:
        """`done`, or `error` with the catalogue's fields; both tell the last chunk and the length
        of the whole text, so a client can check it has everything."""
        sequence = last_chunk + 1
        data = {
            "sequence": sequence,
            "is_final": True,
            "last_sequence": last_chunk,
            "content_length": content_length,
            "duration_ms": outcome.duration_ms,
            "usage": outcome.usage.as_dict(),
            "usage_source": outcome.usage.source,
        }
        if outcome.error is not None:
            return SseEvent(sequence, "error", {**data, **outcome.error.body(self.correlation_id)}).encode()
        return SseEvent(sequence, "done", {**data, "finish_reason": outcome.finish_reason}).encode()
