"""The response cache in Redis (the Redis stream store), shared by every worker and instance and
surviving their restarts: its own key space under one hash tag (one Cluster slot).

`lru` (a sorted set: digest -> last use, ms) orders the entries, `meta` (a hash: digest ->
"bytes:scope", `_total` -> every entry's bytes, `_key:NAME` -> a key's) bounds them, and each entry is one string with
the TTL. A write is one script that applies the bounds (the least recently used out) and returns
what it evicted, whose strings are unlinked after. An entry is written whole by one SET or not at
all (out of memory, the script is refused whole): a read never sees part of one."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from ..connect.redis import Client, Later, Topology
from .terms import Bounds, CacheUnavailable

log = logging.getLogger("chatwait.response_cache")

PREFIX = "chatwait:rc:{cache}"
CONNECTIONS = 16
TIMEOUT_SECONDS = 1.0  # a cache that does not answer in time is a miss, not a wait
FAILURES = (redis.RedisError, redis.exceptions.RedisClusterException)

# Forgetting one entry: its meta field, its bytes from the total and from its key's (`_key:NAME`),
# its place in the order (its string is unlinked by the caller).
_FORGET = """
local function forget(digest)
  local held = redis.call('HGET', KEYS[2], digest)
  if held then
    local size, owner = string.match(held, '^(%d+):(.*)$')
    redis.call('HDEL', KEYS[2], digest)
    redis.call('HINCRBY', KEYS[2], '_total', 0 - tonumber(size))
    if owner ~= '' and redis.call('HINCRBY', KEYS[2], '_key:' .. owner, 0 - tonumber(size)) <= 0 then
      redis.call('HDEL', KEYS[2], '_key:' .. owner)
    end
  end
  redis.call('ZREM', KEYS[1], digest)
end
"""

# KEYS: lru, meta, the entry. ARGV: now ms, ttl ms, max entries, max bytes, digest, scope, blob,
# a key's bytes. The key's own least recently used go while it holds more than its bytes (a key
# churning its answers evicts its own), then anyone's while the whole is over its bounds.
_PUT = (
    "#!lua"
    + _FORGET
    + """
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local evicted = {}
for _, digest in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl)) do forget(digest) end
forget(ARGV[5])
local size, scope = string.len(ARGV[7]), ARGV[6]
redis.call('SET', KEYS[3], ARGV[7], 'PX', ttl)
redis.call('HSET', KEYS[2], ARGV[5], size .. ':' .. scope)
redis.call('HINCRBY', KEYS[2], '_total', size)
redis.call('ZADD', KEYS[1], now, ARGV[5])
if scope ~= '' and redis.call('HINCRBY', KEYS[2], '_key:' .. scope, size) > tonumber(ARGV[8]) then
  for _, digest in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if tonumber(redis.call('HGET', KEYS[2], '_key:' .. scope) or '0') <= tonumber(ARGV[8]) then break end
    local held = redis.call('HGET', KEYS[2], digest)
    if digest ~= ARGV[5] and held and string.match(held, '^%d+:(.*)$') == scope then
      forget(digest)
      table.insert(evicted, digest)
    end
  end
end
while redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[3])
    or tonumber(redis.call('HGET', KEYS[2], '_total') or '0') > tonumber(ARGV[4]) do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if oldest == nil or oldest == ARGV[5] then break end
  forget(oldest)
  table.insert(evicted, oldest)
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return evicted
"""
)

# KEYS: lru, the entry. ARGV: now ms, digest. The entry, now the most recently used.
_GET = """#!lua flags=allow-oom
local found = redis.call('GET', KEYS[2])
if found then redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[2]) end
return found
"""

# KEYS: lru, meta. ARGV: scope ('*': every one), digest ('*': every one). The digests forgotten.
_CLEAR = (
    "#!lua"
    + _FORGET
    + """
local gone = {}
local held = redis.call('HGETALL', KEYS[2])
for i = 1, #held, 2 do
  local digest, owner = held[i], string.match(held[i + 1], '^%d+:(.*)$')
  if string.sub(digest, 1, 1) ~= '_' and (ARGV[1] == '*' or owner == ARGV[1])
      and (ARGV[2] == '*' or digest == ARGV[2]) then
    forget(digest)
    table.insert(gone, digest)
  end
end
return gone
"""
)


# KEYS: a claim. ARGV: its holder's token. Deletes the claim where it is still this holder's.
_RELEASE = """#!lua flags=allow-oom
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisAnswers:
    """Kept answers in Redis; a failure of Redis is a miss (or an answer not kept), logged."""

    def __init__(self, topology: Topology, bounds: Bounds) -> None:
        self._bounds = bounds
        self._later = Later(topology, CONNECTIONS, TIMEOUT_SECONDS)
        self._scripts: dict[str, Any] = {}

    def get(self, digest: str) -> bytes | None:
        try:
            return self._run(_GET, [_LRU, _entry(digest)], [_now(), digest])
        except FAILURES as error:
            _failed("get", error)
            return None

    def put(self, digest: str, scope: str, blob: bytes) -> None:
        bounds = self._bounds
        args = [_now(), int(bounds.ttl_seconds * 1000), bounds.entries, bounds.bytes, digest, scope, blob]
        args.append(bounds.per_key)
        try:
            evicted = self._run(_PUT, [_LRU, _META, _entry(digest)], args)
            if evicted:
                self._client.unlink(*(_entry(found.decode()) for found in evicted))
        except FAILURES as error:
            _failed("put", error)

    def claim(self, digest: str, token: str, seconds: float) -> bool:
        """Lead the generation under `digest` across workers for up to `seconds` (False: another
        worker leads it now). Redis out of reach: every worker leads its own."""
        try:
            return bool(self._client.set(_claim(digest), token, nx=True, px=int(seconds * 1000)))
        except FAILURES as error:
            _failed("claim", error)
            return True

    def claimed(self, digest: str) -> bool:
        """Whether a worker leads the generation under `digest` now."""
        try:
            return bool(self._client.exists(_claim(digest)))
        except FAILURES:
            return False

    def release(self, digest: str, token: str) -> None:
        """The generation this worker led under `digest` ended."""
        try:
            self._run(_RELEASE, [_claim(digest)], [token])
        except FAILURES as error:
            _failed("release", error)

    def clear(self, scope: str | None = None, digest: str | None = None) -> int:
        """Forget entries as `MemoryAnswers.clear` does (CacheUnavailable: Redis out of reach)."""
        try:
            gone = self._run(_CLEAR, [_LRU, _META], [scope if scope is not None else "*", digest or "*"])
            if gone:
                self._client.unlink(*(_entry(found.decode()) for found in gone))
        except FAILURES as error:
            _failed("clear", error)
            raise CacheUnavailable from None
        return len(gone)

    def held(self) -> tuple[int, int]:
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.zcard(_LRU)
            pipe.hget(_META, "_total")
            entries, total = pipe.execute()
            return int(entries), int(total or 0)
        except FAILURES:
            return 0, 0

    def close(self) -> None:
        self._later.close()

    @property
    def _client(self) -> Client:
        return self._later()

    def _run(self, source: str, keys: list[str], args: list[Any]) -> Any:
        if source not in self._scripts:
            self._scripts[source] = self._client.register_script(source)
        return self._scripts[source](keys, args)


_LRU, _META = f"{PREFIX}:lru", f"{PREFIX}:meta"


def _entry(digest: str) -> str:
    return f"{PREFIX}:e:{digest}"


def _claim(digest: str) -> str:
    return f"{PREFIX}:f:{digest}"


def _now() -> int:
    return int(time.time() * 1000)


_said: dict[str, float] = {}  # operation -> when its failure was last logged (monotonic)
SAY_AGAIN_SECONDS = 10.0  # a Redis away fails every request's lookup: one line per operation this often


def _failed(what: str, error: BaseException) -> None:
    now = time.monotonic()
    if now - _said.get(what, -SAY_AGAIN_SECONDS) >= SAY_AGAIN_SECONDS:
        _said[what] = now
        log.warning("response_cache_unavailable", extra={"operation": what, "error_type": type(error).__name__})
