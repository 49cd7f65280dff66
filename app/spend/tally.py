"""A worker's tally of spend: each settled generation (and each delivery charged to a key that
pays for delivery) added to its day, key, end user and model in memory, and written to the store
once a second; kept (bounded) while the store is out of reach. What a worker had not written yet
when it is killed is lost: the budgets' counters (`limits`) are separate and exact."""

from __future__ import annotations

import functools
import logging
import time

import gevent

from ..accounts.budget import NANO, periods
from ..accounts.payer import Payer
from .store import Row, SpendStore, SpendUnavailable

log = logging.getLogger("chatwait.spend")

FLUSH_SECONDS = 1.0
MAX_PENDING = 50_000  # rows a worker holds unwritten (beyond: the oldest are given up, and logged)


class SpendTally:
    """Spend to write, summed by day, key, end user and model (see the module)."""

    def __init__(self, store: SpendStore) -> None:
        self.store = store
        self._pending: dict[tuple[str, str, str, str], list[int]] = {}
        self._flusher: gevent.Greenlet | None = None
        self._reached = True

    def add(self, payer: Payer, model: str, usd: float | None, tokens: tuple[int, int], requests: int = 1) -> None:
        """A generation of `payer` on `model` was charged `usd` for `tokens` (input, output)."""
        entry = (_day(int(time.time())), payer.name, payer.user or "", model)
        found = self._pending.get(entry)
        if found is None:
            if len(self._pending) >= MAX_PENDING:
                lost = next(iter(self._pending))
                del self._pending[lost]
                log.warning("spend_unrecorded", extra={"client_name": lost[1], "day": lost[0]})
            found = self._pending[entry] = [0, 0, 0, 0]
        found[0] += round((usd or 0.0) * NANO)
        found[1] += requests
        found[2] += tokens[0]
        found[3] += tokens[1]

    def start(self) -> None:
        self._flusher = gevent.spawn(self._flush_forever)

    def flush(self) -> None:
        """Write what is pending (kept while the store is out of reach)."""
        if not self._pending:
            return
        taken, self._pending = self._pending, {}
        try:
            self.store.add(Row(*entry, *counts) for entry, counts in taken.items())
        except SpendUnavailable as error:
            for entry, counts in taken.items():  # back, summed with what came meanwhile
                found = self._pending.setdefault(entry, [0, 0, 0, 0])
                for index, count in enumerate(counts):
                    found[index] += count
            if self._reached:
                log.warning("spend_unreached", extra={"error_type": str(error), "rows": len(self._pending)})
            self._reached = False
            return
        self._reached = True

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.kill(block=False)
        self.flush()
        self.store.close()

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:  # what it could not write is lost (and logged); the next second goes on
                log.exception("spend_unrecorded")


@functools.lru_cache(maxsize=2)
def _day(second: int) -> str:
    """The UTC day of a second (worked out once a second, not once a generation)."""
    return periods(second).day
