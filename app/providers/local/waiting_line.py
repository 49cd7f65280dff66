"""A first-come, first-served line for a few shared things (the embedded model's instances),
which tells each waiter its place whenever it changes."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import Any

from gevent.event import AsyncResult

Listener = Callable[[int], None]


class _Waiter:
    __slots__ = ("listener", "result")

    def __init__(self, listener: Listener | None) -> None:
        self.listener = listener
        self.result = AsyncResult()


class WaitingLine:
    """Hands free things out in arrival order. A waiter hears how many are ahead of it (the ones
    waiting before it, plus 1 for the thing in use that must be freed first), then 0 when served."""

    def __init__(self, things: Iterable[Any]) -> None:
        self._free: list[Any] = list(things)
        self._line: collections.deque[_Waiter] = collections.deque()

    def __len__(self) -> int:
        """How many wait."""
        return len(self._line)

    def take(self, listener: Listener | None = None) -> Any:
        """A free thing, at once if nobody waits, else once everyone before has had theirs."""
        if self._free and not self._line:
            return self._free.pop()
        waiter = _Waiter(listener)
        self._line.append(waiter)
        _tell(waiter, len(self._line))
        try:
            thing = waiter.result.get()
        except BaseException:
            if waiter in self._line:  # left the line (cancelled): the ones behind move up
                index = self._line.index(waiter)
                del self._line[index]
                self._tell_from(index)
            elif waiter.result.successful():  # served while being cancelled: pass it on
                self.give_back(waiter.result.value)
            raise
        _tell(waiter, 0)
        return thing

    def give_back(self, thing: Any) -> None:
        """Serve the first waiter with `thing`, or keep it free."""
        if not self._line:
            self._free.append(thing)
            return
        self._line.popleft().result.set(thing)
        self._tell_from(0)

    def _tell_from(self, index: int) -> None:
        for place in range(index, len(self._line)):
            _tell(self._line[place], place + 1)


def _tell(waiter: _Waiter, ahead: int) -> None:
    if waiter.listener is not None:
        waiter.listener(ahead)
