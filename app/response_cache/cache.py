"""The response cache of one worker (`ResponseCache`): what it makes of a request (a hit, a miss
that leads a flight, a bypass), the answers it keeps, and the flights in progress."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import gevent

from ..accounts.payer import Payer
from ..ids import random_id
from ..providers.call import ChatCall
from . import keying
from .flights import Flights
from .kept import Kept, Unreadable
from .lookup import Lookup
from .terms import BYPASS, HIT, KEPT_ENDINGS, MISS, Answers, Directives, Times

if TYPE_CHECKING:
    from ..config import ClientKey
    from ..config.caching import CacheSettings

log = logging.getLogger("chatwait.response_cache")

FOLLOW_POLL_SECONDS = 0.05  # how often a follower looks for another worker's answer


class ResponseCache:
    """The response cache of one worker: its kept answers (`answers`) and its flights."""

    def __init__(self, settings: CacheSettings, answers: Answers, times: Times, metrics: Any) -> None:
        self.settings, self.answers, self._times, self._metrics = settings, answers, times, metrics
        self.idle_seconds = times.idle_seconds
        self.flights: Flights = Flights()
        self._token = random_id()  # this worker's, on the flights it leads across workers

    def on_for(self, key: ClientKey | None) -> bool:
        """Whether `key`'s answers are kept: its `cache=`, else RESPONSE_CACHE."""
        chosen = None if key is None else key.cache
        return self.settings.response_cache if chosen is None else chosen

    def lookup(self, call: ChatCall, payer: Payer, cache_header: str | None, fixed: bool = False) -> Lookup | None:
        """What the cache makes of a generation of `call` for `payer` (its key's answers, its end
        user's apart with RESPONSE_CACHE_SCOPE=end_user), as the client's Cache-Control asks (None:
        it is off for the key: nothing looked up, counted or said). A request naming no sampling
        is replayed where its model's sampling is `fixed` (not the client's to choose) or its key
        (else RESPONSE_CACHE_UNSAMPLED) says so (`keying.sampled`)."""
        key = payer.key
        if not self.on_for(key):
            return None
        asked = Directives.of(cache_header)
        settings = self.settings
        unsampled = (
            settings.response_cache_unsampled if key is None or key.cache_unsampled is None else key.cache_unsampled
        )
        sampled = keying.sampled(call, fixed or unsampled) and not settings.response_cache_sampled
        if not call.generate or sampled or not (asked.lookup or asked.store):
            return self._counted(Lookup(BYPASS))
        scope = "" if settings.response_cache_shared or key is None else key.name
        apart = payer.user or "" if settings.response_cache_scope == "end_user" else ""
        digest = keying.digest(call, scope, apart)
        if digest is None:
            return self._counted(Lookup(BYPASS))
        if asked.lookup:
            found = self._found(digest, scope)
            if found is not None:
                return self._counted(found)
        state = MISS if asked.lookup else BYPASS
        if not asked.store:
            return self._counted(Lookup(state))
        # The claim first (a round trip to Redis): a request of this worker that comes meanwhile
        # finds no flight here, tries to claim too, and follows from Redis; once claimed, the
        # flight is registered at once, and those that come after follow it here.
        if not self.answers.claim(digest, self._token, self._times.claim_seconds):
            remote = Lookup(HIT, self, digest, scope, remote=True)  # another worker leads it
            return self._counted(remote if asked.lookup else Lookup(state))
        flight = self.flights.lead(digest)
        if flight is None:  # Redis out of reach (every claim holds) and one leads here already
            joined = self._found(digest, scope)
            return self._counted(joined if joined is not None and asked.lookup else Lookup(state))
        return self._counted(Lookup(state, self, digest, scope, flight=flight, lead=True, call=call))

    def _found(self, digest: str, scope: str) -> Lookup | None:
        """A hit under `digest`: a flight in progress, else a kept answer (None: neither)."""
        flight = self.flights.joined(digest)
        if flight is not None:
            return Lookup(HIT, self, digest, scope, flight=flight)
        blob = self.answers.get(digest)
        if blob is None:
            return None
        try:
            return Lookup(HIT, self, digest, scope, kept=Kept.decode(blob))
        except Unreadable as error:
            log.warning("response_cache_unreadable", extra={"detail": str(error)})
            return None

    def keeps(self, answer: Kept) -> bool:
        """Whether a whole answer may be kept: it ended as a whole answer ends (at its length
        limit only where RESPONSE_CACHE_LENGTH says), and the model did not refuse."""
        reason = answer.finish_reason
        if reason not in KEPT_ENDINGS and not (reason == "length" and self.settings.response_cache_length):
            return False
        return not answer.refused

    def landed(self, lookup: Lookup, answer: Kept | None) -> None:
        """A flight's leader ended, with its whole `answer` (None: none, a cut or a failure): its
        followers end as it ended, and the answer is kept where it may be (within
        RESPONSE_CACHE_ENTRY_BYTES)."""
        flight = lookup.flight
        if flight is None or lookup.digest is None:
            return
        self.flights.land(lookup.digest, flight, answer)
        blob = answer.encode() if answer is not None and self.keeps(answer) else None
        if blob is not None and len(blob) <= self.settings.response_cache_entry_bytes:
            self.answers.put(lookup.digest, lookup.scope, blob)
            self._metrics.response_cache_kept(len(blob))
        self.answers.release(lookup.digest, self._token)  # after the put: a follower elsewhere finds it

    def awaited(self, digest: str) -> Kept | None:
        """The answer another worker generates under `digest`, once kept (None: it was not, or
        not within the follow time: TIMEOUT_SECONDS' half, within the first-token deadline)."""
        deadline = time.monotonic() + self._times.follow_seconds
        while True:
            found = self._found(digest, "")
            if found is not None and found.kept is not None:
                return found.kept
            if time.monotonic() >= deadline or not self.answers.claimed(digest):
                return None
            gevent.sleep(FOLLOW_POLL_SECONDS)

    def clear(self, scope: str | None = None, digest: str | None = None) -> int:
        """Forget every kept answer, or one key's (`scope`), or one (`digest`); how many went."""
        return self.answers.clear(scope, digest)

    def held(self) -> tuple[int, int]:
        """Kept answers and their bytes now."""
        return self.answers.held()

    def close(self) -> None:
        self.answers.close()

    def _counted(self, lookup: Lookup) -> Lookup:
        self._metrics.response_cache(lookup.state)
        return lookup
