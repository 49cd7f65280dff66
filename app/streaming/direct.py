"""Followers the producer writes to itself: a follower that has caught up parks, and each new
chunk goes to its client from the producer as the chunk is appended, without waking it.

Waking a follower for each token costs two greenlet switches and a pass through the WSGI
server's write path; a follower that has caught up has nothing else to do. The producer sends
only what the client's socket takes at once (the server shell's `ClientWriter.write_now`).
Anything else wakes the parked follower, which then carries on as before: bytes the socket did
not take (it writes them itself, waiting as a write does), a failed write (it raises it, as
the server's own write would), and every frame that is not a chunk (the terminal frame, a
notice, a keepalive), which it yields to the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..hub.scheduling import Wakeup

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
    """The parked followers of one stream."""

    __slots__ = ("_parked",)

    def __init__(self) -> None:
        self._parked: list[Parked] = []

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
