"""When the journal reads the replies of its batches in flight: together, without a wake-up of
their own — at the next send once the oldest is ACK_SECONDS old, ACK_IDLE_SECONDS after a batch
when nothing more is sent, at once while a new stream's POST awaits its admission, or when
MAX_IN_FLIGHT batches are out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ...hub.scheduling import RestartableTimer

MAX_IN_FLIGHT = 64  # batches sent whose replies are not read yet
ACK_SECONDS = 0.05  # replies are read at the next send once their batch is this old
ACK_IDLE_SECONDS = 0.1  # or, when nothing more is sent, this long after the batch


class Acks:
    """The reading of one pipe's replies; `wake` wakes the journal's writer when they fall due."""

    def __init__(self, pipe: Any, wake: Callable[[], None]) -> None:
        self._pipe = pipe
        self._wake = wake
        self.awaited = 0  # new streams whose POST waits for their admission
        self._now = False  # the idle timer fired: read them
        self._timer: RestartableTimer | None = None

    def start(self) -> None:
        self._timer = RestartableTimer(ACK_IDLE_SECONDS)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def due(self) -> bool:
        """Whether to read the replies in flight now."""
        in_flight = self._pipe.in_flight
        if not in_flight:
            return False
        return bool(self.awaited or self._now or in_flight >= MAX_IN_FLIGHT) or (
            time.monotonic() - self._pipe.oldest >= ACK_SECONDS
        )

    def read(self) -> None:
        """Hand back every reply in flight."""
        self._now = False
        self._pipe.receive()
        if not self._pipe.in_flight and self._timer is not None:
            self._timer.stop()

    def sent(self, soon: bool) -> None:
        """A batch went out: the idle timer starts with the first in flight; `soon`: read its
        replies at the writer's next turn (frames shown only once Redis took them)."""
        if self._pipe.in_flight == 1 and self._timer is not None:
            self._timer.again(self._fire)
        if soon:
            self._now = True

    def _fire(self) -> None:
        self._now = True
        self._wake()
