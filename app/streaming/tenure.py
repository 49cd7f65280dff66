"""A stream's tenure in the Redis store: what another worker continues it with if this one dies,
the fencing token its writes carry, and where its followers here go on once another worker took
it over (`Handover`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .delivery import Progress

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
