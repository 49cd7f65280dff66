"""The counts of one worker's memory: each worker (and instance) enforces its own limits. A key's
end users are counted beside it, the least recently seen forgotten past MAX_END_USERS."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..accounts import budget
from ..accounts.payer import Payer
from ..accounts.ticket import Ticket
from ..config import ClientKey
from ..config.keys import EndUserLimits
from .counters import STREAMS_RETRY_SECONDS, Closing, Quota, Verdict
from .window import Minute

MAX_HANDED_KEYS = 100_000  # keys (and end users) a worker takes over from one that drained
MAX_END_USERS = 100_000  # end users this worker's memory counts (the least recently seen forgotten)
USER_MARK = "\t"  # between a key's name and an end user's id, in a snapshot (a name holds no tab)
MAX_TAKEN = 4096  # tickets taken over that this worker's memory remembers the settlements of


class _Counts:
    __slots__ = ("live", "requests", "reserved", "sockets", "spent", "taken", "tokens")

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.sockets: set[str] = set()
        self.requests = Minute()
        self.tokens = Minute()
        self.spent: dict[str, int] = {}  # nano-USD by day (2026-11-27) and month (2026-11), reservations included
        self.reserved: dict[str, int] = {}  # what generations still running reserve of it
        self.taken: dict[str, int] = {}  # tickets taken over: what each settled (-1: nothing yet)

    def spend(self, at: budget.Periods) -> tuple[int, int]:
        """The day's and the month's spend; the periods before them forgotten."""
        if len(self.spent) > 2 or any(period not in (at.day, at.month) for period in self.spent):
            self.spent = {period: self.spent[period] for period in (at.day, at.month) if period in self.spent}
            self.reserved = {period: self.reserved[period] for period in (at.day, at.month) if period in self.reserved}
        return self.spent.get(at.day, 0), self.spent.get(at.month, 0)

    def budgets(self, limits: Any, at: budget.Periods, prefix: str = "") -> tuple[budget.Budget, ...]:
        """Where `limits`' budgets stand in these counts."""
        spent = self.spend(at)
        reserved = self.reserved.get(at.day, 0), self.reserved.get(at.month, 0)
        return budget.current(limits, spent, at, prefix, reserved)


class MemoryCounters:
    """Counts in this worker's memory: each worker (and instance) enforces its own limits."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._keys: dict[str, _Counts] = {}  # by key name: at most MAX_KEYS
        self._users: dict[tuple[str, str], _Counts] = {}  # by key name and end user, least recently seen first

    def admit(self, ticket: Ticket, tokens: int, cost: int = 0) -> Verdict:
        payer, now = ticket.payer, self._clock()
        key, counts = ticket.key, self._counts(ticket.key)
        at = budget.periods_for(now, key, payer.user_limits)
        levels = [("", key, counts)]
        if payer.user_limits is not None:
            levels.append(("user_", payer.user_limits, self._user_counts(payer)))  # type: ignore[arg-type]
        refused, retry_after = None, 0.0
        for prefix, limits, found in levels:
            refused, retry_after = _refusal(limits, found, now, tokens + min(ticket.reserved, 1))
            if refused is None and limits.budgeted:
                refused, retry_after = budget.refusal(limits, found.spend(at), cost, at)
            if refused is not None:
                refused = prefix + refused
                break
        reserved = 0
        if refused is None:
            reserved = min(_reservable(limits, found, now, tokens, ticket.reserved) for _, limits, found in levels)
            for _, limits, found in levels:
                _count(found, limits, now, ticket.id, tokens + reserved, cost, at)
        verdict = _verdict(key, counts, now, refused, retry_after, at)
        user = payer.user_limits
        user_budgets = () if user is None else _user_budgets(user, levels[-1][2], at)
        return dataclasses.replace(
            verdict, second=int(now), reserved=reserved, periods=(at.day, at.month), user_budgets=user_budgets
        )

    def peek(self, key: ClientKey) -> Verdict:
        now = self._clock()
        return _verdict(key, self._counts(key), now, None, 0.0, budget.periods_for(now, key))

    def request(self, key: ClientKey) -> Verdict:
        counts, now = self._counts(key), self._clock()
        refused, retry_after = None, 0.0
        if key.rpm is not None and counts.requests.total(now) >= key.rpm:
            refused, retry_after = "rpm", counts.requests.free_after(now, 1, key.rpm)
        else:
            counts.requests.add(now, 1)
        return _verdict(key, counts, now, refused, retry_after, budget.periods_for(now, key))

    def spend(self, spent: Iterable[tuple[Payer, int]]) -> None:
        now = self._clock()
        for payer, tokens in spent:
            for counts in self._levels(payer):
                counts.tokens.add(now, tokens)

    def release(self, closing: Closing) -> None:
        for counts in self._levels(closing.payer):
            self._release(counts, closing)

    def _release(self, counts: _Counts, closing: Closing) -> None:
        ticket, settle, now = closing.ticket, closing.settle, self._clock()
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
        for period in settle.periods if settle.reserved and (before is None or before < 0) else ():
            if period in counts.reserved:  # given back once
                counts.reserved[period] = max(0, counts.reserved[period] - settle.reserved)

    def charge(self, payer: Payer, cost: int) -> None:
        at = budget.periods(self._clock())
        for counts in self._levels(payer):
            counts.spend(at)  # the periods before forgotten
            for period in (at.day, at.month):
                counts.spent[period] = counts.spent.get(period, 0) + cost

    def take_over(self, ticket: Ticket) -> None:
        for counts in self._levels(ticket.payer):
            counts.taken.setdefault(ticket.id, -1)
            while len(counts.taken) > MAX_TAKEN:
                del counts.taken[next(iter(counts.taken))]

    def renew(self, tickets: Iterable[Ticket], sockets: bool = False) -> None:
        """Nothing to renew: a worker's memory goes with it."""

    def hold(self, key: ClientKey, ticket: str) -> bool:
        counts = self._counts(key)
        if key.max_sockets is not None and len(counts.sockets) >= key.max_sockets:
            return False
        counts.sockets.add(ticket)
        return True

    def let_go(self, key: ClientKey, ticket: str) -> None:
        self._counts(key).sockets.discard(ticket)

    def workers(self, worker: str) -> int:
        return 1

    def reachable(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to let go of."""

    def resume(self, spent: Iterable[tuple[str, str, str, int]]) -> None:
        """Start from what the spend report holds: each (key name, end user or "", day, nano-USD)
        counted in its day and month, for the key and for the end user."""
        for name, user, day, nano in spent:
            tables: list[_Counts] = [self._keys.setdefault(name, _Counts())]
            if user and (len(self._users) < MAX_END_USERS or (name, user) in self._users):
                tables.append(self._users.setdefault((name, user), _Counts()))
            for counts in tables:
                for period in (day, day[:7]):
                    counts.spent[period] = counts.spent.get(period, 0) + nano

    def snapshot(self) -> dict[str, Any]:
        """Every key's (and end user's) spend and minute windows, as JSON (what a reload hands
        over: `reload`)."""
        named = [*self._keys.items(), *((USER_MARK.join(pair), c) for pair, c in self._users.items())]
        return {
            name: {
                "spent": dict(c.spent),
                "reserved": dict(c.reserved),
                "requests": c.requests.buckets(),
                "tokens": c.tokens.buckets(),
            }
            for name, c in named
        }

    def merge(self, found: dict[str, Any]) -> None:
        """Add a snapshot (or a change) another worker of this instance handed over."""
        for name, held in found.items():
            counts = self._handed(name)
            if counts is None:
                continue
            for field in ("spent", "reserved"):
                table = getattr(counts, field)
                for period, nano in held.get(field, {}).items():
                    table[str(period)] = max(0, table.get(str(period), 0) + int(nano))
            counts.requests.merge(held.get("requests", []))
            counts.tokens.merge(held.get("tokens", []))

    def _counts(self, key: ClientKey) -> _Counts:
        counts = self._keys.get(key.name)
        if counts is None:
            counts = self._keys[key.name] = _Counts()
        return counts

    def _levels(self, payer: Payer) -> tuple[_Counts, ...]:
        """Whose counts a payer's generation counts in: its key's, and its end user's where the key
        holds them to limits of their own."""
        assert payer.key is not None, "only a key's generations are counted"
        found = self._counts(payer.key)
        return (found,) if payer.user_limits is None else (found, self._user_counts(payer))

    def _user_counts(self, payer: Payer) -> _Counts:
        """An end user's counts, now the most recently seen (the least recently seen forgotten
        past MAX_END_USERS: what they spent goes with them)."""
        pair = (payer.name, payer.user or "")
        counts = self._users.pop(pair, None)
        if counts is None:
            counts = _Counts()
            while len(self._users) >= MAX_END_USERS:
                del self._users[next(iter(self._users))]
        self._users[pair] = counts
        return counts

    def _handed(self, name: str) -> _Counts | None:
        """The counts a handed-over entry adds to (None: past the bound)."""
        key_name, mark, user_id = name.partition(USER_MARK)
        table: dict[Any, _Counts] = self._users if mark else self._keys
        found = (key_name, user_id) if mark else name
        counts = table.get(found)
        if counts is None and len(table) < MAX_HANDED_KEYS:
            counts = table[found] = _Counts()
        return counts


class _Limited(Protocol):
    """A key's limits, or those each of its end users is held to."""

    max_streams: int | None
    rpm: int | None
    tpm: int | None


def _refusal(key: _Limited, counts: _Counts, now: float, tokens: int) -> tuple[str | None, float]:
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


def _reservable(key: _Limited, counts: _Counts, now: float, tokens: int, reserve: int) -> int:
    """The completion tokens an admission reserves: `reserve`, lowered to what tpm has left once
    something is counted."""
    spent = counts.tokens.total(now)
    return reserve if not spent or key.tpm is None else min(reserve, key.tpm - spent - tokens)


def _count(counts: _Counts, key: Any, now: float, ticket: str, tokens: int, cost: int, at: budget.Periods) -> None:
    """Count an admitted generation: live, a request, its tokens, and (budgeted) its cost."""
    counts.live.add(ticket)
    counts.requests.add(now, 1)
    counts.tokens.add(now, tokens)
    if key.budgeted:
        for period in (at.day, at.month):
            counts.spent[period] = counts.spent.get(period, 0) + cost
            if cost:
                counts.reserved[period] = counts.reserved.get(period, 0) + cost


def _user_budgets(limits: EndUserLimits, counts: _Counts, at: budget.Periods) -> tuple[budget.Budget, ...]:
    return counts.budgets(limits, at, "user_") if limits.budgeted else ()


def _verdict(
    key: ClientKey, counts: _Counts, now: float, refused: str | None, retry_after: float, at: budget.Periods
) -> Verdict:
    budgets = counts.budgets(key, at) if key.budgeted else ()
    requests = tokens = None
    if key.rpm is not None:
        used = counts.requests.total(now)
        requests = Quota(key.rpm, max(0, key.rpm - used), counts.requests.reset_after(now))
    if key.tpm is not None:
        used = counts.tokens.total(now)
        tokens = Quota(key.tpm, max(0, key.tpm - used), counts.tokens.reset_after(now))
    streams = None if key.max_streams is None else (key.max_streams, len(counts.live))
    return Verdict(refused, retry_after, requests, tokens, streams, budgets=budgets)
