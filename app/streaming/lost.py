"""A stream nothing holds any more: Redis lost it after the worker generating it died (a restart
or failover came before anyone could take it over). Its events are gone from every store, so it
can only end: each client gets one terminal generation_lost event after the last one it had."""

from __future__ import annotations

import time
from collections.abc import Iterator

from ..errors import ApiError
from ..generation.outcome import Outcome
from ..providers.call import Usage
from ..providers.deltas import ReplyParts
from .delivery import LocalDelivery, Progress
from .direct import ClientWriter
from .wire import Wire, WireWriter

DETAIL = "Redis lost this reply's events (a restart or failover) after the worker generating it stopped."


class StreamLost(ApiError):
    """stream_not_found for a stream the store may have held and lost with its generation."""


def lost_ending(writer: WireWriter, last_id: int) -> bytes:
    """The terminal generation_lost event that follows event `last_id` of a lost stream."""
    last_chunk = max(0, last_id)
    error = ApiError("generation_lost", DETAIL)
    return writer.terminal(last_chunk, 0, Outcome("", last_chunk, Usage(0, 0, estimated=True), 0.0, None, error=error))


class LostStream:
    """What a client that resumes a lost stream after event `seen` reads: its ending."""

    def __init__(self, stream_id: str, wire_name: str, seen: int, client: str, correlation_id: str) -> None:
        self.stream_id = stream_id
        self.correlation_id = correlation_id
        self.model = ""
        self.created = time.time()
        self.finished = True
        self.client = client  # the client's own: the stream's is lost with it
        self.wire_name = wire_name
        self.context = b""
        self.writer = Wire(wire_name).writer(stream_id, correlation_id, "", self.created)
        self._seen = seen
        self.delivery = LocalDelivery()  # its chunks are gone: nothing more reaches anyone

    @property
    def last_event_id(self) -> int:
        return self._seen + 1

    def follow(
        self,
        after_id: int | None,
        keepalive_seconds: float,
        writer: ClientWriter | None = None,
        progress: Progress | None = None,
    ) -> Iterator[bytes]:
        if after_id is None or after_id <= self._seen:
            if progress is not None:
                progress.terminal = self.last_event_id
            yield lost_ending(self.writer, self._seen)

    def catch_up(self, event_id: int) -> None:
        """Nothing will come."""

    def result(self) -> tuple[str, Outcome | None, ReplyParts] | None:
        return None

    def attach(self) -> None:
        """Nobody follows it: it has ended."""

    def detach(self, now: float) -> None:
        """See attach."""
