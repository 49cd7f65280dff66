"""Where a stream's frames go before its followers see them: the journal (the Redis store's,
which makes them durable first), or nowhere once another worker has taken the stream over; and
where that stream's followers here go on (`Handover`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from ..errors import ApiError
from ..generation.cancel import StreamCancelled
from .delivery import Progress

Stream = Any  # a streaming.stream.Stream (which imports this module)


class Journal(Protocol):
    """Makes a stream's written frames durable, then calls `stream.publish` (the Redis store)."""

    def written(self, stream: Stream) -> None: ...

    def continuing(self, stream: Stream) -> bool: ...


# Where the followers of a stream another worker took over go on: the frames after an event id
# (with a keepalive after so many seconds of silence), as the new owner writes them.
Handover = Callable[[int, float, Progress], Iterator[bytes]]


class Tenure:
    """What the Redis store keeps of a stream besides its frames: what another worker continues it
    with if this one dies (`revival`), the fencing token its writes carry (`epoch`, raised by each
    takeover), and where its followers here go once another worker took it over (`moved`)."""

    __slots__ = ("epoch", "moved", "revival")

    def __init__(self) -> None:
        self.revival = ""
        self.epoch = 0
        self.moved: Handover | None = None


class Nowhere:
    """The journal of a stream another worker took over: what is written here stays unseen."""

    def written(self, stream: Stream) -> None:
        """Nothing: the stream's frames are the new owner's to write."""

    def continuing(self, stream: Stream) -> bool:
        """Never: the reply is the new owner's to continue."""
        raise StreamCancelled("moved", ApiError("generation_lost", "Another worker continues this reply."))


NOWHERE = Nowhere()
