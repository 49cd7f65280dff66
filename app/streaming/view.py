"""What resumes and stops need of a stream, wherever it lives (this worker, or Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..generation.outcome import Outcome
from ..providers.deltas import ReplyParts
from .delivery import Delivery, Progress
from .direct import ClientWriter
from .wire import WireWriter


class StreamView(Protocol):
    """What resumes and stops need of a stream: a local `Stream`, or one followed through Redis."""

    stream_id: str
    correlation_id: str
    model: str
    created: float  # Unix time it was started
    finished: bool
    client: str  # the key digest of the client that started it ("" when the API is open)
    writer: WireWriter  # writes its events in the wire format of the API that started it
    wire_name: str  # that wire's name (read without laying out the events, as `writer` may)
    context: bytes  # what the API that started it stored with it (Retention.context)
    delivery: Delivery  # what reached its clients (`delivery`)

    @property
    def last_event_id(self) -> int: ...

    def follow(
        self,
        after_id: int | None,
        keepalive_seconds: float,
        writer: ClientWriter | None = None,
        progress: Progress | None = None,
    ) -> Iterator[bytes]: ...

    def catch_up(self, event_id: int) -> None: ...

    def result(self) -> tuple[str, Outcome | None, ReplyParts] | None:
        """The text so far, what its typed deltas add up to and, once ended, how the generation
        ended (what the API's objects are built from); None when its events are gone (Redis lost them)."""
        ...

    def attach(self) -> None: ...

    def detach(self, now: float) -> None: ...
