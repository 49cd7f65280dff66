"""The attempts the response cache makes: a kept answer played back (`Replay`), a flight
followed (`Follow`), and a leader's attempt recorded as it goes (`Recording`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gevent
from gevent.event import Event

from ..providers.base import Attempt, UpstreamError
from ..providers.call import Usage
from ..providers.deltas import Delta
from .flights import Flight
from .kept import Kept

LEFT = "The identical request this one followed ended without a whole answer."
YIELD_EVERY = 64  # reads a replay gives before it lets the worker's other greenlets run
HANDOVER_SECONDS = 600.0  # the most a stopped leader's generation goes on for its followers


class Replay(Attempt):
    """A kept answer, at full speed: its reads as they came, its end as it ended."""

    replayed = True

    def __init__(self, kept: Kept) -> None:
        self._kept = kept

    def __iter__(self) -> Iterator[str | Delta]:
        for read in self.reads():
            yield from read

    def reads(self) -> Iterator[list[str | Delta]]:
        for index, read in enumerate(self._kept.reads, 1):
            yield list(read)
            if index % YIELD_EVERY == 0:  # a long answer at full speed lets the worker's others run too
                gevent.sleep(0)
        _ended_as(self, self._kept)

    def close(self) -> None:
        pass


class Follow(Replay):
    """A leader's generation in this worker followed from its first read to its end; a leader
    that ends without a whole answer (or sends nothing for `idle_seconds`) cuts it
    (upstream_interrupted): the relay continues it with the model, as any cut reply."""

    def __init__(self, flight: Flight, idle_seconds: float) -> None:
        self._flight, self._idle = flight, idle_seconds
        self._following = True
        flight.followers += 1

    def close(self) -> None:
        if self._following:
            self._following = False
            self._flight.followers -= 1

    def reads(self) -> Iterator[list[str | Delta]]:
        try:
            yield from self._flight.follow(self._idle)
        except TimeoutError:
            raise UpstreamError("upstream_interrupted", LEFT) from None
        if self._flight.kept is None:
            raise UpstreamError("upstream_interrupted", LEFT)
        _ended_as(self, self._flight.kept)


class Recording(Attempt):
    """An upstream attempt whose reads are added to `flight` as they come; `ended` is told the
    attempt once the relay is done with it, whole (read to its end, never stopped) or not. A
    greenlet of its own reads the upstream (the relay reads what it added), so that a stop of the
    leader's client lands in the relay, not in the upstream's read: with followers, the
    generation goes on for them (`abandon`)."""

    def __init__(self, inner: Attempt, flight: Flight, ended: Callable[[Recording, bool], None]) -> None:
        self.inner = inner
        self._flight, self._ended = flight, ended
        self._whole = self._done = self._handed = False
        self._pump: gevent.Greenlet | None = None
        self._read_all = False  # the upstream's reads are all in the flight
        self._failure: BaseException | None = None  # what ended the upstream's reads early
        self._came = Event()

    def __iter__(self) -> Iterator[str | Delta]:
        for read in self.reads():
            yield from read

    def reads(self) -> Iterator[list[str | Delta]]:
        reads, index = self._flight.reads, len(self._flight.reads)
        self._pump = gevent.spawn(self._read_upstream)
        while True:
            if index < len(reads):
                index += 1
                yield reads[index - 1]
            elif self._read_all:
                if self._failure is not None:
                    raise self._failure
                self._whole = True
                return
            else:
                self._came.wait(HANDOVER_SECONDS)
                self._came.clear()

    def _read_upstream(self) -> None:
        """The upstream's reads into the flight, as they come (its followers woken, the relay told)."""
        flight = self._flight
        try:
            for read in self.inner.reads():
                flight.reads.append(read)
                flight.wake()
                self._came.set()
        except Exception as failure:  # an upstream's failure reaches the relay, as it would unrecorded
            self._failure = failure
        finally:
            self._read_all = True
            self._came.set()
            if self._handed:
                self.inner.close()
                self._ended(self, self._failure is None)

    def finish(self, reason: str) -> None:
        self.inner.finish(reason)

    def close(self) -> None:
        if self._handed:
            return  # the upstream's reads go on for the followers, and end it
        self._stop_reading()
        self.inner.close()
        self._end()

    def abandon(self) -> None:
        """Its client stopped: where identical requests follow it, the rest is generated for them
        (at no one's charge: a follower is a hit), and lands as it ends; else stopped."""
        flight = self._flight
        if flight.followers and not flight.ended and not self._done and self._pump is not None:
            self._handed = self._done = flight.handed = True
            if self._read_all:  # it ended meanwhile: land it now
                self._handed = False
                self.inner.close()
                self._ended(self, self._failure is None)
            return
        self.stop()

    def stop(self) -> None:
        self._whole = False  # the relay stopped it (a ceiling, a refusal, a cancellation): not whole
        self._stop_reading()
        self.inner.stop()
        self._end()

    def _stop_reading(self) -> None:
        if self._pump is not None and not self._read_all:
            self._pump.kill(block=False)

    def _end(self) -> None:
        if not self._done:
            self._done = True
            self._ended(self, self._whole)

    @property  # type: ignore[override]
    def finish_reason(self) -> str | None:
        return self.inner.finish_reason

    @property  # type: ignore[override]
    def upstream_finish_reason(self) -> str | None:
        return self.inner.upstream_finish_reason

    @property  # type: ignore[override]
    def stop_sequence(self) -> str | None:
        return self.inner.stop_sequence

    @property  # type: ignore[override]
    def usage(self) -> Usage | None:
        return self.inner.usage

    @property  # type: ignore[override]
    def upstream_request_id(self) -> str | None:
        return self.inner.upstream_request_id

    @property  # type: ignore[override]
    def response_id(self) -> str | None:
        return self.inner.response_id


def _ended_as(attempt: Attempt, kept: Kept) -> None:
    attempt.finish_reason, attempt.upstream_finish_reason = kept.finish_reason, kept.upstream_finish_reason
    attempt.stop_sequence, attempt.usage, attempt.response_id = kept.stop_sequence, kept.usage, kept.response_id
