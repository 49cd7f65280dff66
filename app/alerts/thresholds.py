"""Which budget thresholds an admission's verdict reaches, each marked once per period (in Redis
for every instance, in DATA_DIR's SQLite file for one, else in this worker's memory), and the
alert each newly reached one makes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import redis

from ..accounts.budget import Budget
from ..accounts.payer import Payer
from ..connect import sqlite
from ..connect.redis import Later, Topology

MARK_SECONDS = 32 * 86_400  # a mark outlives the longest period (a month)
MAX_SEEN = 100_000  # marks a worker remembers having seen (so it asks the store once)
FILE_NAME = "alerts.sqlite3"


class Marks(Protocol):
    def mark(self, name: str) -> bool:
        """Mark `name`; whether it was not marked before (this caller is the one to alert)."""
        ...

    def close(self) -> None: ...


class MemoryMarks:
    """Marks in this worker's memory (each worker alerts once)."""

    def __init__(self) -> None:
        self._marked: set[str] = set()

    def mark(self, name: str) -> bool:
        if name in self._marked:
            return False
        self._marked.add(name)
        return True

    def close(self) -> None:
        """Nothing held."""


class RedisMarks:
    """Marks in Redis, for every worker of every instance (SET NX, expiring after the period)."""

    def __init__(self, topology: Topology) -> None:
        self._client = Later(topology, 2, 1.0)

    def mark(self, name: str) -> bool:
        return bool(self._client().set(f"chatwait:alerts:{name}", 1, nx=True, ex=MARK_SECONDS))

    def close(self) -> None:
        self._client.close()


class SqliteMarks:
    """Marks in an SQLite file, for an instance's workers."""

    def __init__(self, folder: Path) -> None:
        table = "CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, at REAL)"
        self._path = sqlite.prepare(folder, FILE_NAME, (table,), sqlite3.OperationalError)

    def mark(self, name: str) -> bool:
        with sqlite.transaction(self._path, sqlite3.OperationalError) as db:
            db.execute("DELETE FROM marks WHERE at < ?", (time.time() - MARK_SECONDS,))
            return db.execute("INSERT OR IGNORE INTO marks VALUES (?, ?)", (name, time.time())).rowcount == 1

    def close(self) -> None:
        """Nothing held open."""


class Sender(Protocol):
    """Where alerts go (`webhook.Webhook`)."""

    def send(self, alert: dict[str, Any]) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class Alerts:
    """What an admission's budgets make: the alerts of thresholds newly reached, to the webhook."""

    def __init__(self, thresholds: Thresholds, sender: Sender) -> None:
        self.thresholds, self.sender = thresholds, sender

    def check(self, payer: Payer, budgets: Iterable[Budget], refused: str | None = None) -> None:
        """Send the alerts `payer`'s budgets (its key's, and its end user's: `user_`) newly make
        (`refused`: the budget that refused the admission: it is reached whole)."""
        for alert in self.thresholds.reached(payer, budgets, refused):
            self.sender.send(alert)

    def start(self) -> None:
        self.sender.start()

    def close(self) -> None:
        self.sender.close()
        self.thresholds.marks.close()


class Thresholds:
    """The thresholds (percent of a budget) that alert, and the marks that make each alert once."""

    def __init__(self, percents: tuple[int, ...], marks: Marks) -> None:
        self.percents = tuple(sorted(percents))
        self.marks = marks
        self._seen: set[str] = set()

    def reached(self, payer: Payer, budgets: Iterable[Budget], refused: str | None = None) -> list[dict[str, Any]]:
        """The alerts `budgets` (where `payer`'s budgets stand, its key's and its end user's `user_`
        ones, before the admission that asks) newly make: each threshold its spend reached, and
        (`refused`: the budget that refused the admission) a budget that refuses before its spend
        reaches all of it, in an alert of its own kind."""
        alerts = []
        for budget in budgets:
            user = _end_user(payer, budget)
            name = f"{{{payer.name}}}:{user or ''}:{budget.name}:{budget.period}:"
            for percent in self.percents:
                if budget.spent * 100 < budget.limit * percent:
                    break
                if self._first(name + str(percent)):
                    alerts.append(_alert(payer, budget, percent))
            if budget.name == refused and budget.spent < budget.limit and self._first(name + "refusing"):
                alerts.append(_alert(payer, budget, None))
        return alerts

    def _first(self, name: str) -> bool:
        """Whether this worker is the first of all to mark `name` (never twice; a store out of
        reach: not now, asked again at the next admission)."""
        if name in self._seen:
            return False
        try:
            first = self.marks.mark(name)
        except (redis.RedisError, sqlite3.Error):
            return False
        if len(self._seen) >= MAX_SEEN:
            self._seen.clear()
        self._seen.add(name)
        return first


def _end_user(payer: Payer, budget: Budget) -> str | None:
    """The end user whose budget `budget` is (None: the key's own)."""
    return payer.user if budget.name.startswith("user_") else None


def _alert(payer: Payer, budget: Budget, percent: int | None) -> dict[str, Any]:
    """The JSON an alert POSTs: of `payer`'s key's budget, or its end user's, at a threshold's
    `percent`, or (None) refusing before its spend reaches the whole budget (what is left is less
    than the least answer costs)."""
    return {
        "type": "budget.threshold" if percent is not None else "budget.refusing",
        "key": payer.name,
        "end_user": _end_user(payer, budget),
        "budget": budget.name,
        "period": budget.period,
        "threshold_percent": percent,
        "budget_usd": budget.limit,
        "spent_usd": round(budget.spent, 9),
        "resets_in_seconds": round(budget.resets_in),
        "created": int(time.time()),
    }
