"""The attempts the response cache makes: a kept answer played back (`Replay`), a flight
followed (`Follow`), and a leader's attempt recorded as it goes (`Recording`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gevent

from ..providers.base import Attempt, UpstreamError
from ..providers.call import Usage
from ..providers.deltas import Delta
from .flights import Flight
from .kept import Kept

LEFT = "The identical request this one followed ended without a whole answer."
YIELD_EVERY = 64  # reads a replay gives before it lets the worker's other greenlets run


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
    attempt once the relay is done with it, whole (read to its end, never stopped) or not."""

    def __init__(self, inner: Attempt, flight: Flight, ended: Callable[[Recording, bool], None]) -> None:
        self.inner = inner
        self._flight, self._ended = flight, ended
        self._whole = self._done = False

    def __iter__(self) -> Iterator[str | Delta]:
        for read in self.reads():
            yield from read

    def reads(self) -> Iterator[list[str | Delta]]:
        flight = self._flight
        kept = flight.reads.append  # a read costs an append; followers are woken only when one waits
        for read in self.inner.reads():
            kept(read)
            if flight.waiting:
                flight.wake()
            yield read
        self._whole = True

    def finish(self, reason: str) -> None:
        self.inner.finish(reason)

    def close(self) -> None:
        self.inner.close()
        self._end()

    def stop(self) -> None:
        self._whole = False  # the relay stopped it (a ceiling, a refusal, a cancellation): not whole
        self.inner.stop()
        self._end()

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
