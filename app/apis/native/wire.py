"""The native API's wire: `stream`, `chunk`, then `done` or `error` events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...streaming.wire import NATIVE_NAME
from ...streaming.wire.sse import SseEvent, dumps, encode_chunk, one_id_per_event

if TYPE_CHECKING:
    from ...errors import ApiError
    from ...generation.outcome import Outcome
    from ...providers.deltas import Delta


class NativeWriter:
    """The native API's events: `stream`, `chunk`, then `done` or `error`."""

    name = NATIVE_NAME
    echo = None  # no request parameters repeated in its events
    model_first = False
    chunk = staticmethod(encode_chunk)
    position = staticmethod(one_id_per_event)

    def __init__(self, stream_id: str, correlation_id: str, model: str, created: float) -> None:
        self.stream_id = stream_id
        self.correlation_id = correlation_id
        self.model = model
        self.created = int(created)

    @staticmethod
    def numbered(event_id: int) -> int:
        """The SSE id of stream event `event_id`: the same."""
        return event_id

    def priming(self) -> bytes:
        data = {"stream_id": self.stream_id, "correlation_id": self.correlation_id, "model": self.model}
        return SseEvent(0, "stream", {**data, "created": self.created}).encode()

    @staticmethod
    def delta(sequence: int, delta: Delta) -> bytes:
        """Never called: the native API's calls are not typed: it carries the text only."""
        raise TypeError("this wire carries text only")

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
            "usage": outcome.usage_and_cost(),
            "usage_source": outcome.usage.source,
        }
        if outcome.error is not None:
            return SseEvent(sequence, "error", {**data, **outcome.error.body(self.correlation_id)}).encode()
        if outcome.model is not None:  # a fallback model answered
            data["model"] = outcome.model
        return SseEvent(sequence, "done", {**data, "finish_reason": outcome.finish_reason}).encode()


def writer(
    stream_id: str, correlation_id: str, model: str, created: float, _: Mapping[str, Any] | None
) -> NativeWriter:
    """The native wire's writer of one stream (it takes no options)."""
    return NativeWriter(stream_id, correlation_id, model, created)
