"""What the Redis store's parts share: the clients, the scripts, the key names, this worker's id
and the keys' lifetimes; and Redis failures as catalogue errors.

One stream is two keys under one hash tag (so one Cluster slot): its events (a Redis Stream
whose entry `0-(n+1)` is SSE event n, so ids map one to one) and its metadata (a hash: state,
owner, correlation id, model, created, wire format, client; once ended, the last id and how it
ended). `live` maps every live stream of the cluster to its owner (the cluster-wide
MAX_STREAMS); `owners` holds each worker's lease; each worker listens on `stop:<id>`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import redis

from ...connect.redis import SlotMaps
from ...errors import ApiError
from .scripts import Scripts

log = logging.getLogger("chatwait.redis")

PREFIX = "chatwait"
COMMAND_TIMEOUT_SECONDS = 2.0
COMMAND_CONNECTIONS = 64
FOLLOW_CONNECTIONS = 512  # each remote follower blocked in XREAD holds one while it waits
LIVE_KEY = f"{PREFIX}:live"
OWNERS_KEY = f"{PREFIX}:owners"
LEASE_SECONDS = 3.0  # an owner whose lease is older than this is gone
RENEW_SECONDS = 1.0
SETTLE_SECONDS = LEASE_SECONDS + RENEW_SECONDS  # after an outage, what owners get to renew
RECOVERY_SECONDS = 12.0  # after Redis lost its keys, what owners get to write their streams again


def meta_key(stream_id: str) -> str:
    return f"{PREFIX}:{{{stream_id}}}:meta"


def events_key(stream_id: str) -> str:
    return f"{PREFIX}:{{{stream_id}}}:events"


def stream_keys(stream_id: str) -> list[str]:
    return [meta_key(stream_id), events_key(stream_id)]


def stop_channel(owner: str) -> str:
    return f"{PREFIX}:stop:{owner}"


def ready_key(worker: str) -> str:
    return f"{PREFIX}:ready:{worker}"


def entry_id(event_id: int) -> str:
    """The Redis Stream entry id of SSE event `event_id`."""
    return f"0-{event_id + 1}"


def event_id(entry: bytes) -> int:
    """The SSE event id of a Redis Stream entry id."""
    return int(entry.rpartition(b"-")[2]) - 1


@contextlib.contextmanager
def store_errors(operation: str) -> Iterator[None]:
    """Turn a Redis failure into ApiError(store_unavailable), logged without Redis's own text."""
    try:
        yield
    except (redis.RedisError, redis.exceptions.RedisClusterException) as error:  # a slot no node serves
        log.warning("store_failed", extra={"operation": operation, "error_type": type(error).__name__})
        raise ApiError("store_unavailable", f"Redis did not complete {operation} ({type(error).__name__}).") from None


@dataclasses.dataclass(frozen=True)
class Owners:
    """What the leases say: seconds since Redis last lost them (None: never); the owners that are
    gone; those that cannot write their streams (past their outage grace); and those whose
    writes fail or are refused (their clients may have events Redis does not hold yet)."""

    lost_age: float | None
    gone: set[str]
    stuck: set[str]
    behind: set[str]


@dataclasses.dataclass(frozen=True)
class Link:
    """What the Redis store's parts share: two clients (short commands; followers' blocking
    reads), the scripts, this worker's id, and how long keys live (while live, once finished)."""

    commands: Any  # redis.Redis or RedisCluster
    blocking: Any
    scripts: Scripts
    worker: str
    live_ttl_ms: int
    done_ttl_ms: int
    maps: SlotMaps = dataclasses.field(default_factory=SlotMaps)

    def failed(self) -> None:
        """A command failed: on a Cluster, both clients read the slot map again (a failover)."""
        self.maps.refresh(self.commands)
        self.maps.refresh(self.blocking)

    def gone(self, owners: list[str]) -> tuple[float | None, set[str]]:
        """Which of `owners` are gone (their lease lapsed), as far as this worker can tell (no
        verdict while its own lease has not been fresh for SETTLE_SECONDS); and how many seconds
        ago Redis was last found to have lost the leases (None: never)."""
        found = self.owners(owners)
        return found.lost_age, found.gone

    def owners(self, owners: list[str]) -> Owners:
        """What the leases say of `owners` (see Owners)."""
        args = [self.worker, int(LEASE_SECONDS * 1000), int(SETTLE_SECONDS * 1000), *owners]
        lost_ms, gone, stuck, behind = self.scripts.run(self.commands, "gone", [OWNERS_KEY], args)
        return Owners(None if lost_ms < 0 else lost_ms / 1000, _names(gone), _names(stuck), _names(behind))

    def mark(self, stream_id: str, field: str, value: object) -> bool:
        """Set `field` in a live stream's hash (never on one that is gone or finished)."""
        return bool(self.scripts.run(self.commands, "mark", [meta_key(stream_id)], [field, value]))


def _names(found: list[bytes]) -> set[str]:
    return {name.decode() for name in found}
