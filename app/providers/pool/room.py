"""Requests waiting for a server's room (its `concurrency`), woken in turn across client keys: the
key served least recently first, each key's requests in the order they came. One key's burst then
holds another key's first token for about one slot's time, not for the whole burst (fair
admission does the same for MAX_STREAMS: `service.admission`)."""

from __future__ import annotations

import collections
import contextlib
import itertools
from collections.abc import Iterator

from gevent.event import Event

MAX_KEYS = 100_000  # keys whose latest turn is remembered (the oldest forgotten: served long ago)


class RoomQueue:
    """Who waits for room, and which key was served when."""

    def __init__(self, keys: int = MAX_KEYS) -> None:
        self._waiting: list[tuple[str, int, Event]] = []
        self._served: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._keys = keys
        self._arrivals = itertools.count()

    def arrival(self) -> int:
        """A request's place among those of its key (kept while it waits, woken or not)."""
        return next(self._arrivals)

    @contextlib.contextmanager
    def waiting(self, owner: str, arrival: int) -> Iterator[Event]:
        """Wait for some room to free, as `owner`'s request that came at `arrival`."""
        entry = (owner, arrival, Event())
        self._waiting.append(entry)
        try:
            yield entry[2]
        finally:
            if entry in self._waiting:
                self._waiting.remove(entry)

    def served(self, owner: str) -> None:
        """`owner`'s request has its room: its key goes to the back of the turns."""
        self._served.pop(owner, None)
        self._served[owner] = None
        if len(self._served) > self._keys:
            self._served.popitem(last=False)

    def wake(self) -> None:
        """Room freed: every waiter looks again, the least recently served key's first (the first
        to look takes the room; the others wait on)."""
        if not self._waiting:
            return
        rank = {owner: place for place, owner in enumerate(self._served)}
        waiting, self._waiting = sorted(self._waiting, key=lambda e: (rank.get(e[0], -1), e[1])), []
        for _, _, event in waiting:
            event.set()

    def __len__(self) -> int:
        return len(self._waiting)
