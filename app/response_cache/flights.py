"""Single flight: identical requests in flight at once in one worker share one generation. The
first (the leader) generates and records its pieces here as they come; the others follow them
from the start, as a resume follows a stream, and end as it ends: with its whole answer, or,
where it could not be kept (an error, a cut, a stop), with a failure that sends each follower to
the model itself."""

from __future__ import annotations

from collections.abc import Iterator

from gevent.event import Event

from ..providers.deltas import Delta
from .kept import Kept


class Flight:
    """One leader's generation as it goes: its reads so far, then its end (`kept`: the whole
    answer, or None: none to share)."""

    def __init__(self) -> None:
        self.reads: list[list[str | Delta]] = []
        self.ended = False
        self.kept: Kept | None = None
        self._changed = Event()
        self.waiting = 0  # followers waiting for its next read or its end now
        self.followers = 0  # followers following it now (its leader's client stopping hands it over to them)
        self.handed = False  # its leader's client stopped: the generation goes on for the followers

    def add(self, read: list[str | Delta]) -> None:
        """A read of the leader's generation."""
        self.reads.append(read)
        if self.waiting:
            self.wake()

    def end(self, kept: Kept | None) -> None:
        """The leader's generation ended (idempotent: the first end holds)."""
        if not self.ended:
            self.ended, self.kept = True, kept
            self.wake()

    def started(self, seconds: float) -> bool:
        """Wait up to `seconds` for its first read or its end: whether there is anything to
        follow (a read, or a whole answer without one)."""
        while not self.reads and not self.ended:
            if not self._waited(self._changed, seconds):
                return False
        return bool(self.reads) or self.kept is not None

    def follow(self, idle_seconds: float) -> Iterator[list[str | Delta]]:
        """Its reads from the first, as they come, until it ends; stops with TimeoutError when
        nothing comes for `idle_seconds`."""
        index = 0
        while True:
            changed = self._changed
            if index < len(self.reads):
                index += 1
                yield self.reads[index - 1]
            elif self.ended:
                return
            elif not self._waited(changed, idle_seconds):
                raise TimeoutError

    def _waited(self, changed: Event, seconds: float) -> bool:
        self.waiting += 1
        try:
            return changed.wait(seconds)
        finally:
            self.waiting -= 1

    def wake(self) -> None:
        """Wake the followers waiting for what came (none: nothing to do)."""
        if self.waiting:
            changed, self._changed = self._changed, Event()
            changed.set()


class Flights:
    """This worker's flights by digest (at most one each; bounded by the generations running)."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def joined(self, digest: str) -> Flight | None:
        """The flight in progress under `digest` (None: none)."""
        return self._flights.get(digest)

    def lead(self, digest: str) -> Flight | None:
        """A new flight under `digest`, led by the caller (None: one is in progress)."""
        if digest in self._flights:
            return None
        self._flights[digest] = flight = Flight()
        return flight

    def land(self, digest: str, flight: Flight, kept: Kept | None) -> None:
        """The leader's generation ended: its followers end with it, and new requests look in the store."""
        flight.end(kept)
        if self._flights.get(digest) is flight:
            del self._flights[digest]

    def __len__(self) -> int:
        return len(self._flights)
