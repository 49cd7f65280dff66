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
from redis.cluster import RedisCluster
from redis.crc import key_slot

from ..accounts import budget
from ..accounts.payer import Payer
from ..accounts.ticket import Ticket
from ..config import ClientKey
from ..connect.redis import Later, Topology, on_slot
from .counters import STREAMS_RETRY_SECONDS, Closing, CountersUnavailable, Quota, Verdict
from .scripts import SHAS, SOURCES
from .tags import (
    PREFIX,
    counter_keys,
    held_key,
    key_tag,
    reserved_keys,
    sockets_key,
    spend_keys,
    tags,
    taken_key,
    user_tag,
)

CONNECTIONS = 32
TIMEOUT_SECONDS = 1.0  # a request waits this long at most for its admission
PAUSE_SECONDS = 1.0  # after a failure, calls do not wait on Redis again for this long
LEASE_MS = 5_000
KEPT_SECONDS = 86_400  # a period's spend outlives it by a day: generations admitted in it settle there
WORKERS = f"{{{PREFIX}}}:workers"  # the workers counting lately (ZSET worker -> second last seen)
WORKERS_SECONDS = 10.0


class RedisCounters:
    """The counters of every key in Redis, through a small pool of its own."""

    def __init__(self, topology: Topology, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = Later(topology, CONNECTIONS, TIMEOUT_SECONDS)
        self._clock = clock
        self._paused_until: dict[str, float] = {}  # by node ("": the server, or calls of many keys)

    def admit(self, ticket: Ticket, tokens: int, cost: int = 0) -> Verdict:
        return self._look(ticket.key, "admit", tokens, ticket, cost)

    def peek(self, key: ClientKey) -> Verdict:
        return self._look(key, "peek", 0)

    def request(self, key: ClientKey) -> Verdict:
        return self._look(key, "request", 0)

    def spend(self, spent: Iterable[tuple[Payer, int]]) -> None:
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            for payer, tokens in spent:
                for tag in tags(payer):
                    self._queue(pipe, "spend", [counter_keys(tag)[2]], [tokens])
            self._execute(client, pipe)

    def release(self, closing: Closing) -> None:
        ticket, settle = closing.ticket, closing.settle
        with self._reaching(key_tag(closing.payer.name)) as client:
            pipe = client.pipeline(transaction=False)
            for tag in tags(closing.payer):
                live, _, tokens = counter_keys(tag)
                keys, money = [live, tokens, taken_key(tag, ticket)], [0, 0]
                if settle is not None and all(settle.periods):
                    keys += [
                        held_key(tag, ticket),
                        *spend_keys(tag, settle.periods),
                        *reserved_keys(tag, settle.periods),
                    ]
                    lifetime = round((31 * 86_400 + KEPT_SECONDS) * 1000)
                    money = [settle.cost, settle.reserved, int(settle.unsure), lifetime]
                args = [ticket, closing.spent, closing.refund, closing.second, *money]
                self._queue(pipe, "release", keys, args)
            self._execute(client, pipe)

    def charge(self, payer: Payer, cost: int) -> None:
        at = budget.periods(time.time())
        lifetimes = [round((left + KEPT_SECONDS) * 1000) for left in (at.day_left, at.month_left)]
        with self._reaching(key_tag(payer.name)) as client:
            pipe = client.pipeline(transaction=False)
            for tag in tags(payer):
                self._queue(pipe, "charge", spend_keys(tag, (at.day, at.month)), [cost, *lifetimes])
            self._execute(client, pipe)

    def take_over(self, ticket: Ticket) -> None:
        with self._reaching(key_tag(ticket.payer.name)) as client:
            pipe = client.pipeline(transaction=False)
            for tag in tags(ticket.payer):
                self._queue(pipe, "renew", [counter_keys(tag)[0]], [LEASE_MS, ticket.id])
                pipe.set(taken_key(tag, ticket.id), -1, px=KEPT_SECONDS * 1000, nx=True)
            self._execute(client, pipe)

    def renew(self, tickets: Iterable[Ticket], sockets: bool = False) -> None:
        by_holder: dict[str, list[str]] = {}
        for ticket in tickets:
            if sockets:
                by_holder.setdefault(sockets_key(ticket.payer.name), []).append(ticket.id)
                continue
            for tag in tags(ticket.payer):
                by_holder.setdefault(counter_keys(tag)[0], []).append(ticket.id)
        if not by_holder:
            return
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            for held, ids in by_holder.items():
                self._queue(pipe, "renew", [held], [LEASE_MS, *ids])
            self._execute(client, pipe)

    def hold(self, key: ClientKey, ticket: str) -> bool:
        with self._reaching(key_tag(key.name)) as client:
            return bool(self._run(client, "hold", [sockets_key(key.name)], [key.max_sockets or 0, ticket, LEASE_MS]))

    def let_go(self, key: ClientKey, ticket: str) -> None:
        with self._reaching(key_tag(key.name)) as client:
            client.zrem(sockets_key(key.name), ticket)

    def workers(self, worker: str) -> int:
        now = time.time()
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            pipe.zadd(WORKERS, {worker: now})
            pipe.zremrangebyscore(WORKERS, "-inf", now - WORKERS_SECONDS)
            pipe.pexpire(WORKERS, round(WORKERS_SECONDS * 1000))
            pipe.zcard(WORKERS)
            return max(1, int(pipe.execute()[-1]))

    def resume(self, spent: Iterable[tuple[str, str, str, int]], keys: Iterable[ClientKey]) -> None:
        """Add what DATA_DIR's spend report holds this month to the budgets' spend (a move to
        Redis): each (key name, end user or "", day, nano-USD) to its key's day (today's only) and
        month, and to its end user's where the key (of `keys`) holds end users to budgets."""
        users = {key.name: key.users for key in keys if key.users is not None and key.users.budgeted}
        at = budget.periods(time.time())
        lifetimes = {at.day: at.day_left, at.month: at.month_left}
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            for name, user, day, nano in spent:
                held = users.get(name)
                levels = [(key_tag(name), (True, True))]
                if user and held is not None:
                    levels.append((user_tag(name, user), (held.budget_day is not None, held.budget_month is not None)))
                for tag, (daily, monthly) in levels:
                    periods = tuple(
                        period for period, kept in ((day, daily and day == at.day), (at.month, monthly)) if kept
                    )
                    for period, spend in zip(periods, spend_keys(tag, periods), strict=True):
                        pipe.incrby(spend, nano)
                        pipe.pexpire(spend, round((lifetimes[period] + KEPT_SECONDS) * 1000))
            self._execute(client, pipe)

    def reachable(self) -> bool:
        """Whether Redis answers now (for /ready; a Cluster: any of its primaries, as the keys on
        the others are counted)."""
        try:
            with self._reaching() as client:
                if not isinstance(client, RedisCluster):
                    client.ping()
                elif not any(_answers(node) for node in client.get_primaries()):
                    raise redis.ConnectionError("no primary of the Cluster answers")
        except CountersUnavailable:
            return False
        return True

    def close(self) -> None:
        self._client.close()

    def _look(self, key: ClientKey, mode: str, tokens: int, ticket: Ticket | None = None, cost: int = 0) -> Verdict:
        """One call of the `look` script: admit `ticket` (its payer's key is `key`), count a request,
        or peek."""
        user = None if ticket is None else ticket.payer.user_limits
        at = budget.periods_for(time.time(), key, user)
        lifetimes = [round((left + KEPT_SECONDS) * 1000) for left in (at.day_left, at.month_left)]
        levels = [key] if user is None else [key, user]
        names = (key_tag(key.name),) if ticket is None else tags(ticket.payer)
        held, reserve = ("", 0) if ticket is None else (ticket.id, ticket.reserved)
        args: list[object] = [mode, held, tokens, LEASE_MS, reserve, cost, len(levels)]
        keys: list[str] = []
        for limits, tag in zip(levels, names, strict=True):
            counts = [-1 if value is None else value for value in (limits.max_streams, limits.rpm, limits.tpm)]
            money = (limits.budget_day, limits.budget_month)
            args += [*counts, *(-1 if value is None else budget.nano(value) for value in money), *lifetimes]
            periods = (at.day, at.month)
            keys += [*counter_keys(tag), *spend_keys(tag, periods), held_key(tag, held), *reserved_keys(tag, periods)]
        with self._reaching(key_tag(key.name)) as client:
            found = self._run(client, "look", keys, args)
        verdict = _verdict(key, found, at)
        if user is not None and user.budgeted:
            spent, reserved = (int(found[14]), int(found[15])), (int(found[16]), int(found[17]))
            verdict = dataclasses.replace(verdict, user_budgets=budget.current(user, spent, at, "user_", reserved))
        return verdict

    @contextlib.contextmanager
    def _reaching(self, tag: str | None = None) -> Iterator[Any]:
        """The client, unless the node holding `tag`'s slot (a Cluster's; else the server) failed
        less than PAUSE_SECONDS ago; a failure becomes CountersUnavailable and pauses the calls
        that follow to that node (the keys on other nodes go on)."""
        where = ""
        try:
            client = self._client()
            where = _node_of(client, tag)
            if self._clock() < self._paused_until.get(where, 0.0):
                raise CountersUnavailable("paused after a failure")
            yield client
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:  # a slot no node serves
            self._paused_until[where] = self._clock() + PAUSE_SECONDS
            raise CountersUnavailable(type(exc).__name__) from exc

    def _run(self, client: Any, name: str, keys: list[str], args: list[object]) -> Any:
        try:
            return client.execute_command("EVALSHA", SHAS[name], len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:  # Redis restarted, failed over, or was flushed
            return client.execute_command("EVAL", SOURCES[name], len(keys), *keys, *args)

    def _queue(self, pipe: Any, name: str, keys: list[str], args: list[object]) -> None:
        pipe.execute_command("EVAL", SOURCES[name], len(keys), *keys, *args, **on_slot(pipe, keys[0]))

    def _execute(self, client: Any, pipe: Any) -> None:
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, Exception):
                raise result


def _answers(node: Any) -> bool:
    try:
        return node.redis_connection is not None and bool(node.redis_connection.ping())
    except redis.RedisError:
        return False


def _node_of(client: Any, tag: str | None) -> str:
    """Where the counters under `tag` live: a Cluster's node ("" for one server, or no tag)."""
    if tag is None or not isinstance(client, RedisCluster):
        return ""
    try:
        return str(client.nodes_manager.get_node_from_slot(key_slot(tag.encode())).name)
    except redis.exceptions.SlotNotCoveredError:
        return "(slots no node serves)"


def _verdict(key: ClientKey, found: list[Any], at: budget.Periods) -> Verdict:
    refused, retry_ms, live, requests, requests_reset, tokens, tokens_reset, second, reserved, day, month = found[:11]
    held = int(found[11]), int(found[12])
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
        budgets=budget.current(key, (int(day), int(month)), at, reserved=held) if key.budgeted else (),
        periods=(at.day, at.month),
    )


def _quota(limit: int, used: Any, reset_ms: Any) -> Quota:
    return Quota(limit, max(0, limit - int(used)), int(reset_ms) / 1000)
