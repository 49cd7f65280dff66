"""How a stream's followers follow it: each replays from its own position, then takes live frames
as they become visible; one that has caught up parks and the producer writes new chunks to its
client itself (`direct`); a notice (a frame outside the log) reaches those following now; a
keepalive goes out after a silence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import gevent

from ..hub.scheduling import Wakeup
from .delivery import Progress
from .direct import ClientWriter, DirectFollowers, Parked
from .silence import Silence
from .tenure import Tenure
from .wire.sse import KEEPALIVE_FRAME


class Followed(Protocol):
    """What followers read of their stream (`Stream`)."""

    visible: int
    finished: bool
    tenure: Tenure

    def next_write(self, cursor: int, end: int) -> bytes: ...


class Followers:
    """A stream's followers: what wakes them, those parked (`direct`), and the notice shown now."""

    __slots__ = ("direct", "notice", "wakeup")

    def __init__(self) -> None:
        self.wakeup = Wakeup()
        self.direct = DirectFollowers()  # followers the producer writes to (see `direct`)
        # (serial, frame): a live frame outside the log (the place in line; None: none)
        self.notice: tuple[int, bytes | None] = (0, None)

    def wake_all(self) -> None:
        """Wake every follower, parked or not (to see the stream's end, a move, a notice)."""
        self.direct.wake_all()
        self.wakeup.notify()

    def show(self, frame: bytes | None) -> None:
        """Show followers a frame outside the log (to those following now, never replayed); None: no more."""
        self.notice = (self.notice[0] + 1, frame)
        self.wake_all()

    def wait(self, timeout: float) -> None:
        """Block until the stream changes or `timeout` passes."""
        with gevent.Timeout(timeout, False):
            self.wakeup.wait()

    def published(self, seen: int, end: int, finished: bool, next_write: Callable[[int, int], bytes]) -> None:
        """Frames `seen`.. `end - 1` became visible: parked followers' clients get the chunks, the
        end wakes them; every other follower wakes."""
        if self.direct:
            if finished or end <= seen:
                self.direct.wake_all()
            else:
                self.direct.write(seen, end, next_write(seen, end))
        self.wakeup.notify()

    def follow(
        self,
        stream: Followed,
        after_id: int | None,
        keepalive_seconds: float,
        writer: ClientWriter | None,
        progress: Progress | None,
    ) -> Iterator[bytes]:
        """`Stream.follow`'s frames, one follower's way through them."""
        cursor, progress = (0 if after_id is None else after_id + 1), progress or Progress(after_id)
        notice_seen = 0
        silence = Silence(keepalive_seconds, self._wake_follower)
        try:
            while True:
                end = stream.visible
                if cursor < end:
                    yield stream.next_write(cursor, end)
                    cursor, progress.upto = end, end - 1  # the server wrote it: it asks for more
                    silence.wrote()
                    if silence.parked is None and writer is not None:
                        silence.parked = Parked(writer)  # the server wrote the head: the producer may write now
                elif stream.finished:
                    return
                elif stream.tenure.moved is not None:
                    yield from stream.tenure.moved(cursor - 1, keepalive_seconds, progress)
                    return
                elif self.notice[0] != notice_seen and cursor > 0:
                    notice_seen, notice = self.notice
                    if notice is not None:
                        yield notice
                elif silence.due:
                    silence.wrote()
                    yield KEEPALIVE_FRAME
                elif silence.parked is not None:
                    cursor = progress.parked(self.direct.park(silence.parked, cursor))
                else:
                    self.wakeup.wait()
        finally:
            if silence.parked is not None:  # the producer's own writes to its client
                progress.upto = max(progress.upto, silence.parked.cursor - 1)
            silence.close()

    def _wake_follower(self, parked: Parked | None) -> None:
        """Wake a follower (parked or not) that owes its client a keepalive."""
        if parked is not None:
            self.direct.wake(parked)
        self.wakeup.notify()
