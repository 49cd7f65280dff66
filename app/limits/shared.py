"""Counters in Redis (STREAM_STORE=redis): every worker of every instance counts against the same
limits. One script call admits or refuses a generation (one round trip per request); a key's
counters share a hash tag, so the script runs on a Cluster too. All of it is bounded: a key's
minute is at most 61 one-second fields, its live generations a sorted set of leases (each
renewed every second by the worker running it, gone within LEASE_MS once that worker is), its
spend one integer per day and month (nano-USD), kept a day past the period's end; the minute's
keys expire a minute after their last use. A key's end users have counters of their own under the
key's hash tag, checked and counted with the key's in the same script call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis

from ..accounts import budget
from ..config import ClientKey
from ..connect.redis import Later, Topology
from .counters import STREAMS_RETRY_SECONDS, Closing, CountersUnavailable, EndUser, Quota, Verdict
from .scripts import SHAS, SOURCES

PREFIX = "chatwait:limits"
CONNECTIONS = 32
TIMEOUT_SECONDS = 1.0  # a request waits this long at most for its admission
PAUSE_SECONDS = 1.0  # after a failure, calls do not wait on Redis again for this long
LEASE_MS = 5_000
KEPT_SECONDS = 86_400  # a period's spend outlives it by a day: generations admitted in it settle there


def _tag(name: str, user: EndUser | None = None) -> str:
    """Where a key's counters live (or its end user's, in the key's slot)."""
    tag = f"{PREFIX}:{{{name}}}"
    return tag if user is None else f"{tag}:u:{user.id}"


def counter_keys(name: str, user: EndUser | None = None) -> tuple[str, str, str]:
    """A key's (or its end user's) live generations, requests and tokens: one hash tag, one slot."""
    tag = _tag(name, user)
    return f"{tag}:live", f"{tag}:requests", f"{tag}:tokens"


def spend_keys(name: str, periods: tuple[str, str], user: EndUser | None = None) -> list[str]:
    """A key's (or its end user's) spend in a day and a month (in the slot of its other counters)."""
    return [f"{_tag(name, user)}:spent:{period}" for period in periods]


def taken_key(name: str, ticket: str, user: EndUser | None = None) -> str:
    """What a ticket taken over has settled (in the slot of its key's other counters)."""
    return f"{_tag(name, user)}:taken:{ticket}"


def held_key(name: str, ticket: str, user: EndUser | None = None) -> str:
    """What a budgeted ticket reserved, until it settles (then `settled`: a late admission of it,
    or a second settlement, does nothing)."""
    return f"{_tag(name, user)}:held:{ticket}"


def sockets_key(name: str) -> str:
    """A key's open WebSockets (in the slot of its other counters)."""
    return f"{PREFIX}:{{{name}}}:sockets"


class RedisCounters:
    """The counters of every key in Redis, through a small pool of its own."""

    def __init__(self, topology: Topology, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = Later(topology, CONNECTIONS, TIMEOUT_SECONDS)
        self._clock = clock
        self._paused_until = 0.0

    def admit(
        self, key: ClientKey, ticket: str, tokens: int, reserve: int = 0, cost: int = 0, user: EndUser | None = None
    ) -> Verdict:
        return self._look(key, "admit", ticket, tokens, reserve, cost, user)

    def peek(self, key: ClientKey) -> Verdict:
        return self._look(key, "peek", "", 0)

    def request(self, key: ClientKey) -> Verdict:
        return self._look(key, "request", "", 0)

    def spend(self, spent: Iterable[tuple[ClientKey, EndUser | None, int]]) -> None:
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            for key, user, tokens in spent:
                for level in _levels(user):
                    self._queue(pipe, "spend", [counter_keys(key.name, level)[2]], [tokens])
            self._execute(client, pipe)

    def release(self, closing: Closing) -> None:
        key, ticket, settle = closing.key, closing.ticket, closing.settle
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            for user in _levels(closing.user):
                live, _, tokens = counter_keys(key.name, user)
                keys, money = [live, tokens, taken_key(key.name, ticket, user)], [0, 0]
                if settle is not None and all(settle.periods):
                    keys += [held_key(key.name, ticket, user), *spend_keys(key.name, settle.periods, user)]
                    lifetime = round((31 * 86_400 + KEPT_SECONDS) * 1000)
                    money = [settle.cost, settle.reserved, int(settle.unsure), lifetime]
                args = [ticket, closing.spent, closing.refund, closing.second, *money]
                self._queue(pipe, "release", keys, args)
            self._execute(client, pipe)

    def charge(self, key: ClientKey, cost: int, user: EndUser | None = None) -> None:
        at = budget.periods(time.time())
        lifetimes = [round((left + KEPT_SECONDS) * 1000) for left in (at.day_left, at.month_left)]
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            for level in _levels(user):
                self._queue(pipe, "charge", spend_keys(key.name, (at.day, at.month), level), [cost, *lifetimes])
            self._execute(client, pipe)

    def take_over(self, key: ClientKey, ticket: str, user: EndUser | None = None) -> None:
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            for level in _levels(user):
                self._queue(pipe, "renew", [counter_keys(key.name, level)[0]], [LEASE_MS, ticket])
                pipe.set(taken_key(key.name, ticket, level), -1, px=KEPT_SECONDS * 1000, nx=True)
            self._execute(client, pipe)

    def renew(self, tickets: Iterable[tuple[ClientKey, EndUser | None, str]], sockets: bool = False) -> None:
        by_holder: dict[str, list[str]] = {}
        for key, user, ticket in tickets:
            for level in () if sockets else _levels(user):
                by_holder.setdefault(counter_keys(key.name, level)[0], []).append(ticket)
            if sockets:
                by_holder.setdefault(sockets_key(key.name), []).append(ticket)
        if not by_holder:
            return
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            for held, ids in by_holder.items():
                self._queue(pipe, "renew", [held], [LEASE_MS, *ids])
            self._execute(client, pipe)

    def hold(self, key: ClientKey, ticket: str) -> bool:
        with self._reaching() as client:
            return bool(self._run(client, "hold", [sockets_key(key.name)], [key.max_sockets or 0, ticket, LEASE_MS]))

    def let_go(self, key: ClientKey, ticket: str) -> None:
        with self._reaching() as client:
            client.zrem(sockets_key(key.name), ticket)

    def reachable(self) -> bool:
        """Whether Redis answers now (for /ready)."""
        try:
            with self._reaching() as client:
                client.ping()
        except CountersUnavailable:
            return False
        return True

    def close(self) -> None:
        self._client.close()

    def _look(
        self,
        key: ClientKey,
        mode: str,
        ticket: str,
        tokens: int,
        reserve: int = 0,
        cost: int = 0,
        user: EndUser | None = None,
    ) -> Verdict:
        at = budget.periods_for(time.time(), key, user and user.limits)
        lifetimes = [round((left + KEPT_SECONDS) * 1000) for left in (at.day_left, at.month_left)]
        levels = [key] if user is None else [key, user.limits]
        args: list[object] = [mode, ticket, tokens, LEASE_MS, reserve, cost, len(levels)]
        keys: list[str] = []
        for limits, level in zip(levels, _levels(user), strict=True):
            counts = [-1 if value is None else value for value in (limits.max_streams, limits.rpm, limits.tpm)]
            money = (limits.budget_day, limits.budget_month)
            args += [*counts, *(-1 if value is None else budget.nano(value) for value in money), *lifetimes]
            keys += [*counter_keys(key.name, level), *spend_keys(key.name, (at.day, at.month), level)]
            keys.append(held_key(key.name, ticket, level))
        with self._reaching() as client:
            found = self._run(client, "look", keys, args)
        verdict = _verdict(key, found, at)
        if user is not None and user.limits.budgeted:
            spent = (int(found[12]), int(found[13]))
            verdict = dataclasses.replace(verdict, user_budgets=budget.standing(user.limits, spent, at, "user_"))
        return verdict

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[Any]:
        """The client, unless Redis failed less than PAUSE_SECONDS ago; a failure of Redis
        becomes CountersUnavailable (and pauses the calls that follow)."""
        if self._clock() < self._paused_until:
            raise CountersUnavailable("paused after a failure")
        try:
            yield self._client()
        except redis.RedisError as exc:
            self._paused_until = self._clock() + PAUSE_SECONDS
            raise CountersUnavailable(type(exc).__name__) from exc

    def _run(self, client: Any, name: str, keys: list[str], args: list[object]) -> Any:
        try:
            return client.execute_command("EVALSHA", SHAS[name], len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:  # Redis restarted, failed over, or was flushed
            return client.execute_command("EVAL", SOURCES[name], len(keys), *keys, *args)

    def _queue(self, pipe: Any, name: str, keys: list[str], args: list[object]) -> None:
        pipe.execute_command("EVAL", SOURCES[name], len(keys), *keys, *args)

    def _execute(self, client: Any, pipe: Any) -> None:
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, Exception):
                raise result


def _levels(user: EndUser | None) -> tuple[EndUser | None, ...]:
    """Whose counters a key's generation counts in: the key's, and its end user's."""
    return (None,) if user is None else (None, user)


def _verdict(key: ClientKey, found: list[Any], at: budget.Periods) -> Verdict:
    refused, retry_ms, live, requests, requests_reset, tokens, tokens_reset, second, reserved, day, month = found[:11]
    refused = refused.decode() if isinstance(refused, bytes) else refused
    retry = STREAMS_RETRY_SECONDS if refused.endswith("max_streams") else int(retry_ms) / 1000
    if budget.is_budget(refused):
        retry = at.left(refused)
    return Verdict(
        refused=refused or None,
        retry_after=retry if refused else 0.0,
        requests=None if key.rpm is None else _quota(key.rpm, requests, requests_reset),
        tokens=None if key.tpm is None else _quota(key.tpm, tokens, tokens_reset),
        streams=None if key.max_streams is None else (key.max_streams, int(live)),
        second=int(second),
        reserved=int(reserved),
        budgets=budget.standing(key, (int(day), int(month)), at) if key.budgeted else (),
        periods=(at.day, at.month),
    )


def _quota(limit: int, used: Any, reset_ms: Any) -> Quota:
    return Quota(limit, max(0, limit - int(used)), int(reset_ms) / 1000)
