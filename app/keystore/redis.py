"""Managed keys in Redis (STREAM_STORE=redis), for every worker of every instance: one hash of
records by id, one of ids by name, and a version, under one hash tag (a Cluster's one slot); a
new key, its name's place and the version in one script."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import redis

from ..connect.redis import Later, Topology
from .record import StoredKey
from .store import StoreUnavailable

TAG = "{chatwait:keys}"
RECORDS, NAMES, VERSION = f"{TAG}:records", f"{TAG}:names", f"{TAG}:version"
CONNECTIONS = 4
TIMEOUT_SECONDS = 2.0

# KEYS: records, names, version. ARGV: id, name, record, 'add' (refused, 0, when the name is
# taken) or 'put'. Returns 1. Never evicted: no TTL (Redis must not evict: `noeviction`, checked).
_WRITE = """#!lua
if ARGV[4] == 'add' then
  if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[1]) == 0 then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
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

    def put(self, key: StoredKey) -> None:
        self._write(key, "put")

    def close(self) -> None:
        self._client.close()

    def _write(self, key: StoredKey, mode: str) -> bool:
        with self._reaching() as client:
            return bool(client.eval(_WRITE, 3, RECORDS, NAMES, VERSION, key.id, key.name, key.encoded(), mode))

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[Any]:
        try:
            yield self._client()
        except redis.RedisError as error:
            raise StoreUnavailable(type(error).__name__) from error
