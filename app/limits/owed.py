"""Settlements this worker could not make while the key counters were out of reach (Redis away,
limits open): kept, bounded, and made once the counters answer again, so that an outage admits
(KEY_LIMITS_WITHOUT_REDIS=open) without forgetting what was spent. Each is made as `unsure`: the
counters take a reservation back only if they took it, and a settlement they already made is void."""

from __future__ import annotations

import dataclasses
import logging

from ..config import ClientKey
from ..config.keys import EndUser
from .counters import Closing, Counters, Settlement

log = logging.getLogger("chatwait.limits")

MAX_OWED = 10_000  # settlements a worker keeps (beyond: the oldest is given up, and logged)


class Owed:
    """Settlements to make, oldest first."""

    def __init__(self, entries: int = MAX_OWED) -> None:
        self._owed: dict[str, tuple[ClientKey, Settlement, EndUser | None]] = {}  # by ticket
        self._entries = entries

    def add(self, key: ClientKey, ticket: str, settle: Settlement, user: EndUser | None = None) -> None:
        """Keep `ticket`'s settlement (of `key`, and its end `user`) until the counters answer
        (the oldest given up past the bound)."""
        self._owed[ticket] = (key, dataclasses.replace(settle, unsure=True), user)
        if len(self._owed) > self._entries:
            oldest = next(iter(self._owed))
            lost, given_up, _ = self._owed.pop(oldest)
            log.warning("spend_unrecorded", extra={"client_name": lost.name, "usd": given_up.cost / 1e9})

    def pay(self, counters: Counters) -> None:
        """Make the kept settlements (raises CountersUnavailable, the rest kept, while the counters
        are still out of reach)."""
        while self._owed:
            ticket, (key, settle, user) = next(iter(self._owed.items()))
            counters.release(Closing(key, ticket, settle=settle, user=user))
            del self._owed[ticket]
            log.info("spend_recorded", extra={"client_name": key.name, "usd": settle.cost / 1e9})

    def __len__(self) -> int:
        return len(self._owed)
