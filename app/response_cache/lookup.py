"""What the response cache made of one request (`Lookup`): its header's word, and the provider
its generation runs on, whose first open the cache answers or records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..providers.base import Attempt, Provider
from ..providers.call import ChatCall, Route
from ..providers.deltas import Delta
from .attempts import Follow, Recording, Replay
from .kept import Kept
from .providers import Answering
from .terms import HIT

if TYPE_CHECKING:
    from .flights import Flight


class Keeper(Protocol):
    """What a lookup asks of its cache (`cache.ResponseCache`)."""

    idle_seconds: float

    def landed(self, lookup: Lookup, answer: Kept | None) -> None: ...
    def awaited(self, digest: str) -> Kept | None: ...


class Lookup:
    """What the cache made of one request: `state` (its header's word), and the provider its
    generation runs on (`provider`); `finish` once it has run (or never will)."""

    def __init__(
        self,
        state: str,
        cache: Keeper | None = None,
        digest: str | None = None,
        scope: str = "",
        kept: Kept | None = None,
        flight: Flight | None = None,
        lead: bool = False,
        call: ChatCall | None = None,
        remote: bool = False,
    ) -> None:
        self.state, self.digest, self.scope = state, digest, scope
        self._cache, self._kept, self._flight, self._lead, self._call = cache, kept, flight, lead, call
        self._remote = remote  # another worker leads its generation
        self._opened = False

    def provider(self, real: Provider) -> Provider:
        """The provider its generation runs on: `real`, its first open answered or recorded."""
        if self._kept is not None:
            return Answering(real, self._replay, replaying=True)
        if self._remote:
            return Answering(real, self._follow_remote)
        if self._flight is not None:
            return Answering(real, self._record if self._lead else self._follow)
        return real

    def finish(self) -> None:
        """Its generation is over: a flight it led and never ended ends without an answer (one
        handed over to its followers ends as the hand-over does)."""
        flight = self._flight
        if self._lead and flight is not None and not flight.ended and not flight.handed and self._cache is not None:
            self._cache.landed(self, None)

    def _replay(self, call: ChatCall, slot: Any, route: Route | None, real: Provider) -> Attempt:
        if self._opened or self._kept is None:
            return real.open(call, slot, route)
        self._opened = True
        return Replay(self._kept)

    def _follow(self, call: ChatCall, slot: Any, route: Route | None, real: Provider) -> Attempt:
        flight = self._flight
        if self._opened or flight is None or self._cache is None:
            return real.open(call, slot, route)
        self._opened = True
        if not flight.started(self._cache.idle_seconds):  # the leader ended with nothing to follow
            return real.open(call, slot, route)
        return Follow(flight, self._cache.idle_seconds)

    def _follow_remote(self, call: ChatCall, slot: Any, route: Route | None, real: Provider) -> Attempt:
        """Wait (up to RESPONSE_CACHE's follow time) for the answer another worker generates,
        then play it back; the model itself where it is not kept by then."""
        cache = self._cache
        if self._opened or cache is None or self.digest is None:
            return real.open(call, slot, route)
        self._opened = True
        kept = cache.awaited(self.digest)
        return real.open(call, slot, route) if kept is None else Replay(kept)

    def _record(self, call: ChatCall, slot: Any, route: Route | None, real: Provider) -> Attempt:
        attempt = real.open(call, slot, route)
        flight, asked = self._flight, self._call
        if flight is None or flight.ended or self._cache is None or asked is None:
            return attempt
        if flight.reads or call.model != asked.model or call.messages is not asked.messages:
            self._cache.landed(self, None)  # a fallback model's or a continuation's: not one whole attempt
            return attempt
        return Recording(attempt, flight, self._recorded)

    def _recorded(self, attempt: Attempt, whole: bool) -> None:
        """The relay is done with the recorded attempt: the flight lands with its answer where it
        is whole (the cache keeps it where it may); one that failed before its first read waits
        for a retry."""
        flight = self._flight
        if self._cache is None or flight is None or (not whole and not flight.reads):
            return
        self._cache.landed(self, _answer(attempt, flight.reads) if whole else None)

    @property
    def hit(self) -> bool:
        """Whether a kept answer (or another request's generation) answers it: nothing is delivered
        that its payer pays for."""
        return self.state == HIT

    @property
    def flight(self) -> Flight | None:
        return self._flight

    @property
    def kept(self) -> Kept | None:
        return self._kept


def _answer(attempt: Attempt, reads: list[list[str | Delta]]) -> Kept:
    """The whole answer a recorded attempt gave: its reads and how it ended."""
    ending = (attempt.finish_reason or "stop", attempt.upstream_finish_reason, attempt.stop_sequence)
    return Kept(tuple(tuple(read) for read in reads), *ending, attempt.usage, attempt.response_id)
