"""The counts of one worker's memory: each worker (and instance) enforces its own limits."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..accounts import budget
from ..config import ClientKey
from .counters import STREAMS_RETRY_SECONDS, Closing, Quota, Verdict
from .window import Minute

MAX_HANDED_KEYS = 100_000  # keys a worker takes over from one that drained
MAX_TAKEN = 4096  # tickets taken over that this worker's memory remembers the settlements of


class _Counts:
    __slots__ = ("live", "requests", "sockets", "spent", "taken", "tokens")

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.sockets: set[str] = set()
        self.requests = Minute()
        self.tokens = Minute()
        self.spent: dict[str, int] = {}  # nano-USD by day (2026-11-27) and month (2026-11)
        self.taken: dict[str, int] = {}  # tickets taken over: what each settled (-1: nothing yet)

    def spend(self, at: budget.Periods) -> tuple[int, int]:
        """The day's and the month's spend; the periods before them forgotten."""
        if len(self.spent) > 2 or any(period not in (at.day, at.month) for period in self.spent):
            self.spent = {period: self.spent[period] for period in (at.day, at.month) if period in self.spent}
        return self.spent.get(at.day, 0), self.spent.get(at.month, 0)


class MemoryCounters:
    """Counts in this worker's memory: each worker (and instance) enforces its own limits."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._keys: dict[str, _Counts] = {}  # by key name: at most MAX_KEYS

    def admit(self, key: ClientKey, ticket: str, tokens: int, reserve: int = 0, cost: int = 0) -> Verdict:
        counts, now = self._counts(key), self._clock()
        at = budget.periods_for(key, now)
        refused, retry_after = _refusal(key, counts, now, tokens + min(reserve, 1))
        if refused is None and key.budgeted:
            refused, retry_after = budget.refusal(key, counts.spend(at), cost, at)
        reserved = 0
        if refused is None:
            spent = counts.tokens.total(now)
            reserved = reserve if not spent or key.tpm is None else min(reserve, key.tpm - spent - tokens)
            counts.live.add(ticket)
            counts.requests.add(now, 1)
            counts.tokens.add(now, tokens + reserved)
            if key.budgeted:
                for period in (at.day, at.month):
                    counts.spent[period] = counts.spent.get(period, 0) + cost
        verdict = _verdict(key, counts, now, refused, retry_after)
        return dataclasses.replace(verdict, second=int(now), reserved=reserved, periods=(at.day, at.month))

    def peek(self, key: ClientKey) -> Verdict:
        return _verdict(key, self._counts(key), self._clock(), None, 0.0)

    def request(self, key: ClientKey) -> Verdict:
        counts, now = self._counts(key), self._clock()
        refused, retry_after = None, 0.0
        if key.rpm is not None and counts.requests.total(now) >= key.rpm:
            refused, retry_after = "rpm", counts.requests.free_after(now, 1, key.rpm)
        else:
            counts.requests.add(now, 1)
        return _verdict(key, counts, now, refused, retry_after)

    def spend(self, spent: Iterable[tuple[ClientKey, int]]) -> None:
        now = self._clock()
        for key, tokens in spent:
            self._counts(key).tokens.add(now, tokens)

    def release(self, closing: Closing) -> None:
        key, ticket, settle = closing.key, closing.ticket, closing.settle
        counts, now = self._counts(key), self._clock()
        admitted = ticket in counts.live
        counts.live.discard(ticket)
        counts.tokens.add(now, closing.spent)
        before = counts.taken.get(ticket)
        if before is None or before < 0:  # a second settlement gives nothing back
            counts.tokens.take(now, closing.second, closing.refund)
        if settle is None:
            return
        if settle.unsure and not admitted:  # never taken here: nothing reserved to give back
            settle = dataclasses.replace(settle, reserved=0)
        change, settled = settle.change(before)
        if before is not None:
            counts.taken[ticket] = settled
        for period in settle.periods if change else ():
            if period in counts.spent or (settle.unsure and change > 0):  # one forgotten stays as it ended
                counts.spent[period] = max(0, counts.spent.get(period, 0) + change)

    def charge(self, key: ClientKey, cost: int) -> None:
        counts, at = self._counts(key), budget.periods(self._clock())
        counts.spend(at)  # the periods before forgotten
        for period in (at.day, at.month):
            counts.spent[period] = counts.spent.get(period, 0) + cost

    def take_over(self, key: ClientKey, ticket: str) -> None:
        taken = self._counts(key).taken
        taken.setdefault(ticket, -1)
        while len(taken) > MAX_TAKEN:
            del taken[next(iter(taken))]

    def renew(self, tickets: Iterable[tuple[ClientKey, str]], sockets: bool = False) -> None:
        """Nothing to renew: a worker's memory goes with it."""

    def hold(self, key: ClientKey, ticket: str) -> bool:
        counts = self._counts(key)
        if key.max_sockets is not None and len(counts.sockets) >= key.max_sockets:
            return False
        counts.sockets.add(ticket)
        return True

    def let_go(self, key: ClientKey, ticket: str) -> None:
        self._counts(key).sockets.discard(ticket)

    def reachable(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to let go of."""

    def snapshot(self) -> dict[str, Any]:
        """Every key's spend and minute windows, as JSON (what a reload hands over: `reload`)."""
        return {
            name: {"spent": dict(c.spent), "requests": c.requests.buckets(), "tokens": c.tokens.buckets()}
            for name, c in self._keys.items()
        }

    def merge(self, found: dict[str, Any]) -> None:
        """Add a snapshot (or a change) another worker of this instance handed over."""
        for name, held in found.items():
            counts = self._keys.get(name)
            if counts is None:
                if len(self._keys) >= MAX_HANDED_KEYS:
                    continue
                counts = self._keys[name] = _Counts()
            for period, nano in held.get("spent", {}).items():
                counts.spent[str(period)] = max(0, counts.spent.get(str(period), 0) + int(nano))
            counts.requests.merge(held.get("requests", []))
            counts.tokens.merge(held.get("tokens", []))

    @staticmethod
    def change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        """What the spend of each key changed from one snapshot to the next."""
        found = {}
        for name, held in after.items():
            was = before.get(name, {}).get("spent", {})
            moved = {period: nano - was.get(period, 0) for period, nano in held["spent"].items()}
            if any(moved.values()):
                found[name] = {"spent": {period: nano for period, nano in moved.items() if nano}}
        return found

    def _counts(self, key: ClientKey) -> _Counts:
        counts = self._keys.get(key.name)
        if counts is None:
            counts = self._keys[key.name] = _Counts()
        return counts


def _refusal(key: ClientKey, counts: _Counts, now: float, tokens: int) -> tuple[str | None, float]:
    """Which limit refuses a new generation needing `tokens`, and when to try again (None: none
    refuses). With nothing counted, one that needs more than tpm alone still goes."""
    if key.max_streams is not None and len(counts.live) >= key.max_streams:
        return "max_streams", STREAMS_RETRY_SECONDS
    if key.rpm is not None and counts.requests.total(now) >= key.rpm:
        return "rpm", counts.requests.free_after(now, 1, key.rpm)
    if key.tpm is not None:
        spent = counts.tokens.total(now)
        if spent >= key.tpm or (spent and spent + tokens > key.tpm):
            return "tpm", counts.tokens.free_after(now, min(tokens, key.tpm), key.tpm)
    return None, 0.0


def _verdict(key: ClientKey, counts: _Counts, now: float, refused: str | None, retry_after: float) -> Verdict:
    at = budget.periods_for(key, now)
    budgets = budget.standing(key, counts.spend(at), at) if key.budgeted else ()
    requests = tokens = None
    if key.rpm is not None:
        used = counts.requests.total(now)
        requests = Quota(key.rpm, max(0, key.rpm - used), counts.requests.reset_after(now))
    if key.tpm is not None:
        used = counts.tokens.total(now)
        tokens = Quota(key.tpm, max(0, key.tpm - used), counts.tokens.reset_after(now))
    streams = None if key.max_streams is None else (key.max_streams, len(counts.live))
    return Verdict(refused, retry_after, requests, tokens, streams, budgets=budgets)
