"""Followers the producer writes to itself: a follower that has caught up parks, and new chunks
go to its client from the producer's turn of the loop, without waking it.

Waking a follower for each token costs two greenlet switches and a pass through the WSGI
server's write path; a follower that has caught up has nothing else to do. The producer sends
only what the client's socket takes at once (the server shell's `ClientWriter.write_now`).
Anything else wakes the parked follower, which then carries on as before: bytes the socket did
not take (it writes them itself, waiting as a write does), a failed write (it raises it, as
the server's own write would), and every frame that is not a chunk (the terminal frame, a
notice, a keepalive), which it yields to the server.

A chunk goes out at once when it is the first of its turn of the loop; those that follow it in
the same turn (a burst of small events from one read of the upstream: an agent's reasoning, a
tool call's arguments) go out together, from a loop callback once the producer yields (`write_soon`):
one send per read of the upstream rather than one per event, and no wait for a stream of one
token per read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..hub.scheduling import Wakeup, soon, turn

CLIENT_WRITER = "chatwait.client_writer"  # the WSGI environ key under which the server shell puts it


class ClientWriter(Protocol):
    """Writes a streamed response's body bytes to its client (given by the server shell)."""

    def write_now(self, data: bytes) -> bytes:
        """Send `data` as the next body bytes, as far as the socket takes them without waiting;
        what is left of them, framed, to hand to `write_rest` (b"" when all went)."""
        ...

    def write_rest(self, rest: bytes) -> None:
        """Send what `write_now` left, waiting as long as the socket's write deadline allows."""
        ...


def client_writer(environ: Mapping[str, Any]) -> ClientWriter | None:
    """The writer of a request's streamed body, as the server shell put it in the WSGI environ
    (None under a server that does not, or on a connection it cannot write to at once: TLS)."""
    return environ.get(CLIENT_WRITER)


class Parked:
    """One follower's side of the arrangement: where its client is, and why it was woken."""

    __slots__ = ("cursor", "error", "parked", "rest", "wakeup", "writer", "wrote")

    def __init__(self, writer: ClientWriter) -> None:
        self.writer = writer
        self.wakeup = Wakeup()
        self.cursor = 0  # the next frame its client needs
        self.parked = False
        self.wrote = False  # the producer wrote to its client since it parked
        self.rest = b""  # bytes of a frame the socket did not take
        self.error: OSError | None = None  # a write to its client failed


class DirectFollowers:
    """The parked followers of one stream, and the chunks to send them at the producer's next yield."""

    __slots__ = ("_end", "_first", "_parked", "_soon", "_turn")

    def __init__(self) -> None:
        self._parked: list[Parked] = []
        self._soon: list[bytes] = []  # frames _first .. _end - 1, to write once the producer yields
        self._first = self._end = 0
        self._turn = 0.0  # the loop turn of the last chunk written at once

    def __bool__(self) -> bool:
        return bool(self._parked)

    def park(self, follower: Parked, cursor: int) -> int:
        """Wait, parked at frame `cursor`, until woken; the next frame the client needs then.
        Writes what the socket left of a frame first; raises the OSError a write met."""
        follower.cursor, follower.parked, follower.wrote = cursor, True, False
        self._parked.append(follower)
        try:
            follower.wakeup.wait()
        finally:
            self.wake(follower)
        rest, error = follower.rest, follower.error
        follower.rest, follower.error = b"", None
        if error is not None:
            raise error
        if rest:
            follower.writer.write_rest(rest)
        return follower.cursor

    def write_soon(self, first: int, data: bytes, count: int = 1) -> None:
        """Chunk frames `first` to `first + count - 1` (`data`; the next after those already
        visible) are visible now: send them at once if they are the first of this turn of the
        loop, else with the others that follow in this turn, from a loop callback. Nothing while
        no follower is parked."""
        if not self._parked:
            return
        if self._soon:
            self._soon.append(data)
            self._end = first + count
            return
        now = turn()
        if now != self._turn:
            self._turn = now
            self.write(first, first + count, data)
            return
        self._soon, self._first, self._end = [data], first, first + count
        soon(self._flush)

    def _flush(self) -> None:
        frames, self._soon = self._soon, []
        if frames:
            self.write(self._first, self._end, frames[0] if len(frames) == 1 else b"".join(frames))

    def write(self, first: int, end: int, data: bytes) -> None:
        """Frames `first` to `end - 1` (`data`) are visible now: send them to each parked follower
        that waits for `first`; wake the others, and those whose client did not take them all."""
        for follower in list(self._parked):
            if follower.cursor != first:
                self.wake(follower)
                continue
            try:
                rest = follower.writer.write_now(data)
            except OSError as error:
                follower.error = error
                self.wake(follower)
                continue
            follower.cursor, follower.wrote = end, True
            if rest:
                follower.rest = rest
                self.wake(follower)

    def wake(self, follower: Parked) -> None:
        """Wake a parked follower (nothing if it is not parked)."""
        if follower.parked:
            follower.parked = False
            self._parked.remove(follower)
            follower.wakeup.notify()

    def wake_all(self) -> None:
        """Wake every parked follower: there is more for them than a chunk."""
        for follower in list(self._parked):
            self.wake(follower)
