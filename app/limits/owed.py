"""Settlements this worker could not make while the key counters were out of reach (Redis away,
limits open): kept, bounded, and made once the counters answer again, so that an outage admits
(KEY_LIMITS_WITHOUT_REDIS=open) without forgetting what was spent. Each is made as `unsure`: the
counters take a reservation back only if they took it, and a settlement they already made is void."""

from __future__ import annotations

import dataclasses
import logging

from .counters import Closing, Counters

log = logging.getLogger("chatwait.limits")

MAX_OWED = 10_000  # settlements a worker keeps (beyond: the oldest is given up, and logged)


class Owed:
    """Settlements to make, oldest first."""

    def __init__(self, entries: int = MAX_OWED) -> None:
        self._owed: dict[str, Closing] = {}  # by ticket
        self._entries = entries

    def add(self, closing: Closing) -> None:
        """Keep a closing's settlement until the counters answer (the oldest given up past the bound)."""
        assert closing.settle is not None, "only a settlement is owed"
        settle = dataclasses.replace(closing.settle, unsure=True)
        self._owed[closing.ticket] = Closing(closing.payer, closing.ticket, settle=settle)
        if len(self._owed) > self._entries:
            lost = self._owed.pop(next(iter(self._owed)))
            log.warning("spend_unrecorded", extra={"client_name": lost.payer.name, "usd": _usd(lost)})

    def pay(self, counters: Counters) -> None:
        """Make the kept settlements (raises CountersUnavailable, the rest kept, while the counters
        are still out of reach)."""
        while self._owed:
            ticket, closing = next(iter(self._owed.items()))
            counters.release(closing)
            del self._owed[ticket]
            log.info("spend_recorded", extra={"client_name": closing.payer.name, "usd": _usd(closing)})

    def __len__(self) -> int:
        return len(self._owed)


def _usd(closing: Closing) -> float:
    return 0.0 if closing.settle is None else closing.settle.cost / 1e9
