"""Turns a generation into SSE frames on a Stream: the `stream`, `chunk`, `done`/`error` events."""

from __future__ import annotations

import logging

import gevent

from .errors import ApiError
from .providers.base import Usage
from .relay import Outcome
from .sse import SseEvent
from .streams import Stream
from .wakeup import let_local_reader_run

log = logging.getLogger("chatwait.writer")


class StreamWriter:
    """The relay's listener in streaming mode; writes the priming `stream` event at once.

    Chunk sequences equal their event ids (1..n); the terminal event has id n+1 and tells
    the last chunk sequence and the total content length so a client can check it has all.
    """

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.content_length = 0
        self._debug = log.isEnabledFor(logging.DEBUG)
        stream.append(
            SseEvent(
                0,
                "stream",
                {
                    "stream_id": stream.stream_id,
                    "correlation_id": stream.correlation_id,
                    "model": stream.model,
                    "created": int(stream.created),
                },
            ).encode()
        )

    def chunk(self, content: str) -> None:
        """Append one `chunk` event. The first one is written to the clients before this
        returns: the producer yields to them once, before its own bookkeeping, and then lets
        a client on this machine read it (`let_local_reader_run`)."""
        self.content_length += len(content)
        self.stream.append_chunk(content)
        if self.stream.chunks == 1:
            gevent.sleep(0)
            let_local_reader_run()
        if self._debug:
            log.debug("chunk_sent", extra={"sequence": self.stream.chunks, "chars": len(content)})

    def abort(self) -> None:
        """End the stream with internal_error if its producer died without ending it."""
        if not self.stream.finished:
            error = ApiError("internal_error", "The generation stopped unexpectedly.")
            chunks = self.stream.chunks
            self.end(Outcome(text="", chunks=chunks, usage=Usage(0, 0), duration_ms=0.0, ttft_ms=None, error=error))

    def end(self, outcome: Outcome) -> None:
        """Append the one terminal event: `done`, or `error` with the catalogue fields."""
        last = self.stream.chunks
        sequence = last + 1
        data = {
            "sequence": sequence,
            "is_final": True,
            "last_sequence": last,
            "content_length": self.content_length,
            "duration_ms": outcome.duration_ms,
            "usage": outcome.usage.as_dict(),
        }
        if outcome.error is not None:
            event = SseEvent(sequence, "error", {**data, **outcome.error.body(self.stream.correlation_id)})
        else:
            event = SseEvent(sequence, "done", {**data, "finish_reason": outcome.finish_reason})
        self.stream.append(event.encode(), final=True)
