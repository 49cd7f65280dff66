"""What the Redis store tells of Redis itself: the link to one that can hold streams (checked at
start-up), whether it is ready now, and whether a stream it does not know may yet come back
(Redis lost keys moments ago and their owners are writing them again) or does not exist."""

from __future__ import annotations

from typing import Any

import redis

from ...connect.redis import StoreUnusable, Topology, connect, disconnect, problems
from ...errors import ApiError
from ..lost import StreamLost
from . import link as keys
from .link import Link
from .scripts import Scripts

READY_PROBE_MS = 5000


def check_at_start(commands: Any, scripts: Scripts, topology: Topology) -> None:
    """Refuse to start on a Redis that does not answer, is too old, or may evict our keys."""
    where = topology.describe()
    try:
        found = problems(commands)
        if not found:
            scripts.load()
    except redis.RedisError as error:
        raise StoreUnusable(not_answering(topology, error)) from None
    if found:
        raise StoreUnusable(f"STREAM_STORE=redis, but {where} cannot hold streams: " + " ".join(found))


def not_answering(topology: Topology, error: Exception) -> str:
    """What to tell when Redis does not answer."""
    return (
        f"STREAM_STORE=redis, but {topology.describe()} did not answer ({type(error).__name__}): "
        "start Redis, fix REDIS_URL, or set STREAM_STORE=memory."
    )


def ready(link: Link) -> tuple[bool, str, int]:
    """Whether Redis takes writes now and keeps our keys, how it went (every problem found),
    and the cluster's live streams (0 if unknown)."""
    live, found, failing = 0, [], []
    try:
        found = problems(link.commands, failing)
        live = link.commands.hlen(keys.LIVE_KEY)
        if not failing:  # this worker's key may sit in a failing node's slots
            link.commands.set(keys.ready_key(link.worker), 1, px=READY_PROBE_MS)
    except redis.exceptions.OutOfMemoryError:
        found.append("Redis refuses writes: it is out of memory (maxmemory). Raise maxmemory or free memory.")
    except redis.RedisError as error:
        return False, f"Redis did not answer ({type(error).__name__}).", live
    if found:
        return False, " ".join(found), live
    if failing:
        nodes = ", ".join(sorted(failing))
        return (
            True,
            f"Redis answers and takes writes, except the Cluster node(s) {nodes}: the streams in their "
            "slots wait, then end (REDIS_OUTAGE_SECONDS); new streams go to the other slots.",
            live,
        )
    return True, "Redis answers and takes writes.", live


def not_found(link: Link, duties: Any) -> None:
    """Raise stream_not_found; or store_unavailable while Redis may have lost the stream (it lost
    keys moments ago: a restart, a failover, an eviction; or it may evict now): its owner may
    not have written it again yet."""
    lost_now = not link.scripts.loaded() or problems(link.commands) or duties.evicted_since_sweep()
    age = 0.0 if lost_now else link.gone([])[0]
    if age is not None and age < keys.RECOVERY_SECONDS:
        detail = "Redis lost keys moments ago (a restart, a failover, an eviction); their workers write them again."
        raise ApiError("store_unavailable", detail, retry_after=keys.RECOVERY_SECONDS - age)
    if age is not None and age < link.done_ttl_ms / 1000:
        detail = "The id is unknown, or Redis lost the stream (a restart, a failover) after its worker stopped."
        raise StreamLost("stream_not_found", detail)
    raise ApiError("stream_not_found", "The id is unknown, or the stream ended and expired.")


def linked(topology: Topology, worker_id: str, live_ttl_ms: int, done_ttl_ms: int) -> Link:
    """The link to a Redis fit to hold streams (checked, its scripts loaded); StoreUnusable,
    saying what was found and what to do, when it does not answer or cannot hold them."""
    try:
        commands = connect(topology, keys.COMMAND_CONNECTIONS, keys.COMMAND_TIMEOUT_SECONDS)
        blocking = connect(topology, keys.FOLLOW_CONNECTIONS, keys.COMMAND_TIMEOUT_SECONDS + 2.0)
    except (redis.RedisError, redis.exceptions.RedisClusterException) as error:  # a Cluster's client connects at once
        raise StoreUnusable(not_answering(topology, error)) from None
    scripts = Scripts(commands)
    try:
        check_at_start(commands, scripts, topology)
    except StoreUnusable:
        disconnect(commands)
        disconnect(blocking)
        raise
    return Link(commands, blocking, scripts, worker_id, live_ttl_ms, done_ttl_ms)
