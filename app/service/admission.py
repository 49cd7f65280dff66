"""Fair admission when MAX_STREAMS is reached: with ADMISSION_WAIT_SECONDS > 0 a new stream waits
for a slot instead of an instant 503, served round-robin across client keys (the key served
longest ago goes first, so one busy key cannot starve the others), FIFO within a key. Past the
wait: 503 server_busy. A worker's queue is its own; slots freed elsewhere (Redis) are found by
the head waiter looking again every POLL_SECONDS, slots freed here wake it at once.

The queue holds ADMISSION_QUEUE_SIZE waiters; when it is full each key is owed a fair share: a
newcomer whose key holds fewer places than the key holding most takes that key's newest place
(which ends with 429 rate_limited), else it is refused (429 naming its share; 503 without client
keys). A waiter whose client hangs up leaves the queue at once (`hang_up`) and opens nothing.

Also here: a new stream's place in the queue (`Pending`).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

import gevent

from ..errors import ApiError
from ..hub.disconnect import on_client_gone
from ..hub.scheduling import Wakeup

if TYPE_CHECKING:
    from ..streaming.stream import Stream

T = TypeVar("T")
POLL_SECONDS = 0.25
MAX_WAITERS = 1_000  # ADMISSION_QUEUE_SIZE's default
SHARE_RETRY_SECONDS = 1.0


class ClientLeft(ApiError):
    """The client of a waiting request hung up: its place is given up, nothing was started."""

    def __init__(self) -> None:
        super().__init__("server_busy", "The client hung up while its request waited for a slot; nothing was started.")


class Waiter:
    """One request waiting for a slot."""

    __slots__ = ("ended", "flagged", "key", "queued", "wakeup")

    def __init__(self, key: str) -> None:
        self.key = key
        self.wakeup = Wakeup()
        self.flagged = False  # woken while it was not waiting: it looks again at once
        self.queued = True  # until it leaves the queue
        self.ended: ApiError | None = None  # why its wait ends without a slot (displaced, hung up)

    def wake(self) -> None:
        self.flagged = True
        self.wakeup.notify()

    def end(self, reason: ApiError) -> None:
        """End the wait with `reason` (raised where it waits)."""
        self.ended = reason
        self.wake()

    def sleep(self, seconds: float) -> None:
        """Until woken, or `seconds` at most."""
        if not self.flagged:
            with gevent.Timeout(seconds, False):
                self.wakeup.wait()
        self.flagged = False


class AdmissionQueue:
    """The waiting requests of this worker, by key name."""

    def __init__(
        self,
        wait_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        places: int = MAX_WAITERS,
        over_share: Callable[[str], None] = lambda key: None,
    ) -> None:
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.places = places
        self.over_share = over_share  # told the key of each request a full queue refuses or displaces
        self._queues: dict[str, collections.deque[Waiter]] = {}
        self._served: dict[str, float] = {}  # by key name: when it last got a slot (bounded by MAX_KEYS)
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Requests waiting now."""
        return self._waiting

    def try_now(self, key: str, open_slot: Callable[[], T]) -> T | None:
        """`open_slot()` now if nobody waits; None when the request is to wait its turn (`join`,
        then `positions`); ApiError(server_busy) when it may not wait."""
        if not self._waiting:
            try:
                return self._served_now(key, open_slot())
            except ApiError as busy:
                if busy.error_code != "server_busy" or self.wait_seconds <= 0:
                    raise
        if self.wait_seconds <= 0:
            raise _busy(0.0)
        return None

    def join(self, key: str) -> Waiter:
        """A place in the queue for a request of `key`, taken now; ApiError when the queue is
        full and `key` holds its share of it already (see the module's docstring)."""
        self._make_place(key)
        waiter = Waiter(key)
        self._queues.setdefault(key, collections.deque()).append(waiter)
        self._waiting += 1
        return waiter

    def positions(
        self,
        key: str,
        open_slot: Callable[[], T],
        has_room: Callable[[], bool],
        tick_seconds: float,
        waiter: Waiter | None = None,
    ) -> Generator[int | None, None, T]:
        """Wait in turn for a slot, up to ADMISSION_WAIT_SECONDS: yields how many are served first
        whenever that changes (None every `tick_seconds` otherwise: a keepalive), and returns
        what `open_slot()` opened; ApiError(server_busy) past the wait, or why the wait ended
        (`Waiter.end`). `waiter`: the place `join` took (else one is taken when it starts)."""
        waiter = waiter or self.join(key)
        deadline = self.clock() + self.wait_seconds
        told, ticked = -1, self.clock()
        try:
            while True:
                ahead = self._ahead_or_ended(waiter)
                if ahead == 0 and has_room() and waiter.ended is None:
                    try:
                        return self._served_now(key, open_slot())
                    except ApiError as busy:
                        if busy.error_code != "server_busy":
                            raise
                if ahead != told or self.clock() - ticked >= tick_seconds:
                    yield None if ahead == told else ahead
                    told, ticked = ahead, self.clock()
                left = deadline - self.clock()
                if left <= 0:
                    raise _busy(self.wait_seconds)
                waiter.sleep(min(left, POLL_SECONDS))
        finally:
            self.leave(waiter)

    def leave(self, waiter: Waiter) -> None:
        """Give up `waiter`'s place (once; later calls do nothing); the next in turn looks now."""
        if not waiter.queued:
            return
        waiter.queued = False
        queue = self._queues[waiter.key]
        queue.remove(waiter)
        if not queue:
            del self._queues[waiter.key]
        self._waiting -= 1
        self.notify()  # the next in turn looks now (a slot, or its turn)

    def hang_up(self, waiter: Waiter) -> None:
        """`waiter`'s client hung up: its place goes at once, and its wait ends with ClientLeft."""
        self.leave(waiter)
        waiter.end(ClientLeft())

    def _ahead_or_ended(self, waiter: Waiter) -> int:
        if waiter.ended is not None:
            raise waiter.ended
        return self.ahead_of(waiter)

    def _make_place(self, key: str) -> None:
        """Room for one more waiter of `key`: the newest waiter of the key holding most places
        gives its place up when that key holds two more than `key`; else ApiError."""
        if self._waiting < self.places:
            return
        mine = len(self._queues.get(key, ()))
        largest = max(self._queues, key=lambda name: len(self._queues[name]))
        if len(self._queues[largest]) <= mine + 1:
            self.over_share(key)
            raise _over_share(key, mine, self.places)
        displaced = self._queues[largest][-1]
        self.leave(displaced)
        self.over_share(largest)
        displaced.end(_over_share(largest, len(self._queues.get(largest, ())) + 1, self.places))

    def notify(self) -> None:
        """A slot may have freed here: wake the waiter whose turn it is."""
        head = self._head()
        if head is not None:
            head.wake()

    def ahead_of(self, waiter: Waiter) -> int:
        """How many waiters are served before `waiter`: round by round, each key's next waiter in
        the order of when the keys were last served."""
        order = self._order()
        queue = self._queues[waiter.key]
        index = queue.index(waiter)
        rank = order.index(waiter.key)
        ahead = sum(min(len(self._queues[key]), index) for key in order)
        return ahead + sum(1 for key in order[:rank] if len(self._queues[key]) > index)

    def _order(self) -> list[str]:
        return sorted(self._queues, key=lambda key: self._served.get(key, float("-inf")))

    def _head(self) -> Waiter | None:
        order = self._order()
        return self._queues[order[0]][0] if order else None

    def _served_now(self, key: str, opened: T) -> T:
        self._served[key] = self.clock()
        return opened


def _busy(waited: float) -> ApiError:
    if waited:
        return ApiError(
            "server_busy", f"Every stream slot (MAX_STREAMS) stayed taken for {waited:g} s (ADMISSION_WAIT_SECONDS)."
        )
    return ApiError("server_busy", "Every stream slot (MAX_STREAMS) holds a live stream, and too many requests wait.")


def _over_share(key: str, held: int, places: int) -> ApiError:
    """The refusal of a request whose key holds its share of a full queue (no client keys: busy)."""
    if not key:
        return _busy(0.0)
    detail = (
        f"The key {key!r} holds {held} of the {places} places of this worker's admission queue "
        "(ADMISSION_QUEUE_SIZE), its share while other keys wait too."
    )
    return ApiError("rate_limited", detail, retry_after=SHARE_RETRY_SECONDS)


def waited(positions: Generator[int | None, None, T]) -> T:
    """What `positions` opens, waiting here (no client to tell its place)."""
    while True:
        try:
            next(positions)
        except StopIteration as done:
            return done.value


@dataclasses.dataclass(frozen=True)
class Pending:
    """A new stream waiting for a slot (MAX_STREAMS): its id, its positions in line
    (`AdmissionQueue.positions`: then the stream), what to do when it never opens, and when its client
    hangs up."""

    stream_id: str
    positions: Generator[int | None, None, Stream]
    never_opened: Callable[[], None]
    hang_up: Callable[[], None]

    def wait(self, sock: Any) -> Stream:
        """The stream, once it has a slot (waiting here, while the client of `sock` stays);
        ApiError(server_busy) past the wait or once the client left."""
        try:
            with on_client_gone(sock, self.hang_up):
                return waited(self.positions)
        except BaseException:
            self.never_opened()
            raise
