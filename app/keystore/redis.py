"""Managed keys in Redis (STREAM_STORE=redis), for every worker of every instance: one hash of
records by id, one of ids by name, one of revisions by id, and a version, under one hash tag (a
Cluster's one slot); a new key or a change, the check of its name or its revision, and the
version in one script."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import redis

from ..connect.redis import Later, Topology
from .record import StoredKey
from .store import StoreUnavailable

TAG = "{chatwait:keys}"
RECORDS, NAMES, VERSION, REVISIONS = f"{TAG}:records", f"{TAG}:names", f"{TAG}:version", f"{TAG}:revisions"
CONNECTIONS = 4
TIMEOUT_SECONDS = 2.0

# KEYS: records, names, version, revisions. ARGV: id, name, record, its revision, 'add' (refused,
# 0, when the name is taken) or 'replace' (refused, 0, unless the stored revision is the one
# before). Returns 1. Never evicted: no TTL (Redis must not evict: `noeviction`, checked).
_WRITE = """#!lua
if ARGV[5] == 'add' then
  if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[1]) == 0 then return 0 end
else
  if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
  local stored = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
  if stored + 1 ~= tonumber(ARGV[4]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
redis.call('INCR', KEYS[3])
return 1
"""


class RedisKeys:
    """Keys in Redis, through a small pool of their own."""

    def __init__(self, topology: Topology) -> None:
        self._client = Later(topology, CONNECTIONS, TIMEOUT_SECONDS)

    def version(self) -> int:
        with self._reaching() as client:
            return int(client.get(VERSION) or 0)

    def all(self) -> list[StoredKey]:
        with self._reaching() as client:
            found: dict[Any, Any] = client.hgetall(RECORDS)
        return sorted((StoredKey.decoded(raw) for raw in found.values()), key=lambda key: (key.created_at, key.id))

    def add(self, key: StoredKey) -> bool:
        return self._write(key, "add")

    def get(self, key_id: str) -> StoredKey | None:
        with self._reaching() as client:
            raw = client.hget(RECORDS, key_id)
        return None if raw is None else StoredKey.decoded(raw)

    def replace(self, key: StoredKey) -> bool:
        return self._write(key, "replace")

    def close(self) -> None:
        self._client.close()

    def _write(self, key: StoredKey, mode: str) -> bool:
        with self._reaching() as client:
            keys = (RECORDS, NAMES, VERSION, REVISIONS)
            return bool(client.eval(_WRITE, 4, *keys, key.id, key.name, key.encoded(), key.revision, mode))

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[Any]:
        try:
            yield self._client()
        except redis.RedisError as error:
            raise StoreUnavailable(type(error).__name__) from error
