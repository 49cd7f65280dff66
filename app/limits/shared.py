"""Counters in Redis (STREAM_STORE=redis): every worker of every instance counts against the same
limits. One script call admits or refuses a generation (one round trip per request); a key's
counters share a hash tag, so the script runs on a Cluster too. All of it is bounded: a key's
minute is at most 61 one-second fields, its live generations a sorted set of leases (each
renewed every second by the worker running it, gone within LEASE_MS once that worker is), its
spend one integer per day and month (nano-USD), kept a day past the period's end; the minute's
keys expire a minute after their last use.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis

from ..accounts import budget
from ..config import ClientKey
from ..connect.redis import Later, Topology
from .counters import STREAMS_RETRY_SECONDS, Closing, Quota, Verdict
from .limits import CountersUnavailable
from .scripts import SHAS, SOURCES

PREFIX = "chatwait:limits"
CONNECTIONS = 32
TIMEOUT_SECONDS = 1.0  # a request waits this long at most for its admission
PAUSE_SECONDS = 1.0  # after a failure, calls do not wait on Redis again for this long
LEASE_MS = 5_000
KEPT_SECONDS = 86_400  # a period's spend outlives it by a day: generations admitted in it settle there

def counter_keys(name: str) -> tuple[str, str, str]:
    """A key's live generations, requests and tokens: one hash tag, one slot."""
    tag = f"{PREFIX}:{{{name}}}"
    return f"{tag}:live", f"{tag}:requests", f"{tag}:tokens"


def spend_keys(name: str, periods: tuple[str, str]) -> list[str]:
    """A key's spend in a day and a month (in the slot of its other counters)."""
    return [f"{PREFIX}:{{{name}}}:spent:{period}" for period in periods]


def taken_key(name: str, ticket: str) -> str:
    """What a ticket taken over has settled (in the slot of its key's other counters)."""
    return f"{PREFIX}:{{{name}}}:taken:{ticket}"


def held_key(name: str, ticket: str) -> str:
    """What a budgeted ticket reserved, until it settles (then `settled`: a late admission of it,
    or a second settlement, does nothing)."""
    return f"{PREFIX}:{{{name}}}:held:{ticket}"


def sockets_key(name: str) -> str:
    """A key's open WebSockets (in the slot of its other counters)."""
    return f"{PREFIX}:{{{name}}}:sockets"


class RedisCounters:
    """The counters of every key in Redis, through a small pool of its own."""

    def __init__(self, topology: Topology, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = Later(topology, CONNECTIONS, TIMEOUT_SECONDS)
        self._clock = clock
        self._paused_until = 0.0

    def admit(self, key: ClientKey, ticket: str, tokens: int, reserve: int = 0, cost: int = 0) -> Verdict:
        return self._look(key, "admit", ticket, tokens, reserve, cost)

    def peek(self, key: ClientKey) -> Verdict:
        return self._look(key, "peek", "", 0)

    def request(self, key: ClientKey) -> Verdict:
        return self._look(key, "request", "", 0)

    def spend(self, spent: Iterable[tuple[ClientKey, int]]) -> None:
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            for key, tokens in spent:
                self._queue(pipe, "spend", [counter_keys(key.name)[2]], [tokens])
            self._execute(client, pipe)

    def release(self, closing: Closing) -> None:
        key, ticket, settle = closing.key, closing.ticket, closing.settle
        live, _, tokens = counter_keys(key.name)
        keys, money = [live, tokens, taken_key(key.name, ticket)], [0, 0]
        if settle is not None and all(settle.periods):
            keys += [held_key(key.name, ticket), *spend_keys(key.name, settle.periods)]
            money = [settle.cost, settle.reserved, int(settle.unsure), round((31 * 86_400 + KEPT_SECONDS) * 1000)]
        with self._reaching() as client:
            self._run(client, "release", keys, [ticket, closing.spent, closing.refund, closing.second, *money])

    def charge(self, key: ClientKey, cost: int) -> None:
        at = budget.periods(time.time())
        lifetimes = [round((left + KEPT_SECONDS) * 1000) for left in (at.day_left, at.month_left)]
        with self._reaching() as client:
            self._run(client, "charge", spend_keys(key.name, (at.day, at.month)), [cost, *lifetimes])

    def take_over(self, key: ClientKey, ticket: str) -> None:
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            self._queue(pipe, "renew", [counter_keys(key.name)[0]], [LEASE_MS, ticket])
            pipe.set(taken_key(key.name, ticket), -1, px=KEPT_SECONDS * 1000, nx=True)
            self._execute(client, pipe)

    def renew(self, tickets: Iterable[tuple[ClientKey, str]], sockets: bool = False) -> None:
        by_key: dict[str, list[str]] = {}
        for key, ticket in tickets:
            by_key.setdefault(key.name, []).append(ticket)
        if not by_key:
            return
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            for name, ids in by_key.items():
                held = sockets_key(name) if sockets else counter_keys(name)[0]
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

    def _look(self, key: ClientKey, mode: str, ticket: str, tokens: int, reserve: int = 0, cost: int = 0) -> Verdict:
        limits = [-1 if value is None else value for value in (key.max_streams, key.rpm, key.tpm)]
        budgets = [-1 if value is None else budget.nano(value) for value in (key.budget_day, key.budget_month)]
        at = budget.periods_for(key, time.time())
        lifetimes = [round((left + KEPT_SECONDS) * 1000) for left in (at.day_left, at.month_left)]
        args = [mode, ticket, *limits, tokens, LEASE_MS, reserve, cost, *budgets, *lifetimes]
        keys = [*counter_keys(key.name), *spend_keys(key.name, (at.day, at.month))]
        if mode == "admit" and cost:
            keys.append(held_key(key.name, ticket))
        with self._reaching() as client:
            found = self._run(client, "look", keys, args)
        return _verdict(key, found, at)

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


def _verdict(key: ClientKey, found: list[Any], at: budget.Periods) -> Verdict:
    refused, retry_ms, live, requests, requests_reset, tokens, tokens_reset, second, reserved, day, month = found
    refused = refused.decode() if isinstance(refused, bytes) else refused
    retry = STREAMS_RETRY_SECONDS if refused == "max_streams" else int(retry_ms) / 1000
    if refused in budget.NAMES:
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
