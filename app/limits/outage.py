"""What a worker admits of a budgeted payer while the counters are out of reach and limits are
open (KEY_LIMITS_WITHOUT_REDIS=open): its share of what each budget had left when the counters
last answered, that left split among the workers that counted then, so that together they pass a
budget by no more than one reservation each. A payer never seen since the worker started cannot
be shared out: refused until the counters answer. What was admitted settles once they do (`owed`).
"""

from __future__ import annotations

import time

from ..accounts import budget
from ..accounts.payer import Payer
from .counters import Verdict

MAX_SEEN = 100_000  # payers (keys and end users) whose budgets a worker remembers


class Outage:
    """The budgets as last seen, and what this worker admitted since the counters went away."""

    __slots__ = ("_seen", "_taken", "workers")

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[budget.Budget, ...]] = {}
        self._taken: dict[tuple[str, str], int] = {}  # nano-USD reserved while out of reach
        self.workers = 1  # the workers counting, as the counters last said

    def saw(self, payer: Payer, verdict: Verdict) -> None:
        """Where `payer`'s budgets stood after an admission the counters answered (and so the
        outage, if there was one, is over)."""
        if self._taken:
            self._taken.clear()
        if verdict.budgets:
            self._keep((payer.name, ""), verdict.budgets)
        if verdict.user_budgets:
            self._keep((payer.name, payer.user or ""), verdict.user_budgets)

    def allows(self, payer: Payer, cost: int) -> bool:
        """Whether this worker may admit a generation of `payer` reserving `cost` (nano-USD) while
        the counters are away: each of its budgets has share left (then counted), none unknown."""
        users = payer.user_limits
        levels = [(payer.name, "")] if payer.key is not None and payer.key.budgeted else []
        levels += [(payer.name, payer.user or "")] if users is not None and users.budgeted else []
        at = budget.periods(time.time())
        for level in levels:
            seen = self._seen.get(level)
            if seen is None:
                return False
            taken = self._taken.get(level, 0)
            if any(taken >= _left(found, at) // max(1, self.workers) for found in seen):
                return False
        for level in levels:
            self._taken[level] = self._taken.get(level, 0) + cost
        return True

    def _keep(self, level: tuple[str, str], budgets: tuple[budget.Budget, ...]) -> None:
        if level not in self._seen and len(self._seen) >= MAX_SEEN:
            self._seen.clear()
        self._seen[level] = budgets


def _left(found: budget.Budget, at: budget.Periods) -> int:
    """What `found` has left now (nano-USD): all of it in a period after the one it was seen in."""
    if found.period != at.period(found.name):
        return budget.nano(found.limit)
    return max(0, budget.nano(found.limit) - budget.nano(found.used))
