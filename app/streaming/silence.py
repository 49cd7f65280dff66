"""A follower's keepalive clock: one repeating timer per follower, not one restarted per write."""

from __future__ import annotations

from collections.abc import Callable

from ..hub.scheduling import RestartableTimer
from .direct import Parked


class Silence:
    """A follower's keepalive clock: a keepalive is due once a whole half of `seconds` passed
    without a write to its client (so within `seconds` of silence), checked by one repeating
    timer rather than a timer restarted after every write."""

    __slots__ = ("_timer", "_wake", "due", "parked", "quiet")

    def __init__(self, seconds: float, wake: Callable[[Parked | None], None]) -> None:
        self._wake = wake  # wakes the follower
        self.parked: Parked | None = None  # the follower's side of direct writes, once it may park
        self.quiet = self.due = False  # no write since the last tick; a keepalive is due
        self._timer = RestartableTimer(seconds / 2)
        self._timer.again(self._tick)

    def wrote(self) -> None:
        """The follower wrote to its client."""
        self.quiet = self.due = False

    def _tick(self) -> None:
        if self.parked is not None and self.parked.wrote:  # the producer wrote for it meanwhile
            self.parked.wrote = self.quiet = False
        if self.quiet:
            self.due = True
            self._wake(self.parked)
        self.quiet = True

    def close(self) -> None:
        self._timer.close()
