"""Conversations in Redis (STREAM_STORE=redis), shared by every worker and instance.

A key's conversations share one hash tag (so one Cluster slot): its index (a sorted set of its
conversation ids by their last change, ms), and per conversation a hash (created_at, metadata,
the bytes of its items) and a list of its items (JSON). Every change is one script, which
applies the bounds (`conversations`) and renews the TTL; what the index evicts is deleted after.
Each script declares itself (`#!lua`, no `allow-oom`): out of memory, Redis refuses it whole.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import orjson
import redis

from ..connect.redis import Client, Later, Topology
from ..errors import ApiError
from . import Bounds, Conversation, ConversationStore, encoded, new_id

PREFIX = "chatwait:conv"
CONNECTIONS = 32
TIMEOUT_SECONDS = 2.0

# A key's conversations all live under its hash tag: the index, each conversation's meta and
# items, and `sizes` (conversation id -> bytes of its items, `_total` -> all of them).
_SIZES = """
local function forget(id)  -- a conversation leaves the index: its bytes leave the key's total
  local held = tonumber(redis.call('HGET', KEYS[4], id) or '0')
  if held ~= 0 then
    redis.call('HDEL', KEYS[4], id)
    redis.call('HINCRBY', KEYS[4], '_total', 0 - held)
  end
end
"""

# Adds items (ARGV[..]) at a conversation's end and keeps it within its bounds. KEYS: index,
# meta, items, sizes. ARGV: now ms, ttl ms, max items, max bytes, conversation id, the key's
# bytes (CONVERSATION_KEY_BYTES), then 'add' and the items; or, for a new conversation, 'new', its
# created_at, metadata and the key's bound (its oldest conversations beyond it are popped), then
# the items. Items beyond the bounds go from the oldest by whole turns (up to the next message);
# the key's least recently changed conversations go while its bytes are over its bound. Returns
# -1 when the conversation is gone, else {evicted ids} (the caller deletes their keys).
_APPEND = (
    "#!lua\n"
    + _SIZES
    + """
local first = 8
local evicted = {}
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl)) do forget(id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
if ARGV[7] == 'new' then
  redis.call('HSET', KEYS[2], 'created_at', ARGV[8], 'metadata', ARGV[9], 'bytes', 0)
  first = 11
  local over = redis.call('ZCARD', KEYS[1]) + 1 - tonumber(ARGV[10])
  if over > 0 then
    for i, entry in ipairs(redis.call('ZPOPMIN', KEYS[1], over)) do
      if i % 2 == 1 then table.insert(evicted, entry); forget(entry) end
    end
  end
elseif redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local size = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
local before = size
for i = first, #ARGV do
  redis.call('RPUSH', KEYS[3], ARGV[i])
  size = size + string.len(ARGV[i])
end
local n = redis.call('LLEN', KEYS[3])
local dropped = false
while n > 1 and (n > tonumber(ARGV[3]) or size > tonumber(ARGV[4])) do
  size = size - string.len(redis.call('LPOP', KEYS[3]))
  n = n - 1
  dropped = true
end
while dropped and n > 0 do  -- whole turns: never a tool output without its call
  local item = cjson.decode(redis.call('LINDEX', KEYS[3], 0))
  if item['type'] == 'message' or (item['type'] == nil and item['role'] ~= nil) then break end
  size = size - string.len(redis.call('LPOP', KEYS[3]))
  n = n - 1
end
redis.call('HSET', KEYS[2], 'bytes', size)
redis.call('PEXPIRE', KEYS[2], ttl)
if n > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('HSET', KEYS[4], ARGV[5], size)
local total = redis.call('HINCRBY', KEYS[4], '_total', size - before)
while total > tonumber(ARGV[6]) do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 1)
  local victim = oldest[1]
  if victim == ARGV[5] then victim = oldest[2] end
  if not victim then break end
  redis.call('ZREM', KEYS[1], victim)
  total = total - tonumber(redis.call('HGET', KEYS[4], victim) or '0')
  forget(victim)
  table.insert(evicted, victim)
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[4], ttl)
return evicted
"""
)

# Replaces a conversation's metadata (ARGV[3]) and renews it; KEYS: index, meta, items. ARGV:
# now ms, ttl ms, metadata, conversation id. Returns its created_at, or false when it is gone.
_UPDATE = """#!lua
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
redis.call('HSET', KEYS[2], 'metadata', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
return redis.call('HGET', KEYS[2], 'created_at')
"""

# Removes a conversation's first item whose id is ARGV[1]; KEYS: meta, items, sizes; ARGV[2]:
# the conversation's id. Returns -1 when the conversation is gone, 0 when no item has that id,
# 1 once removed.
_DELETE_ITEM = """#!lua
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if cjson.decode(entry)['id'] == ARGV[1] then
    redis.call('LREM', KEYS[2], 1, entry)
    redis.call('HINCRBY', KEYS[1], 'bytes', -string.len(entry))
    if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then
      redis.call('HINCRBY', KEYS[3], ARGV[2], -string.len(entry))
      redis.call('HINCRBY', KEYS[3], '_total', -string.len(entry))
    end
    return 1
  end
end
return 0
"""


# Forgets a conversation; KEYS: index, meta, items, sizes; ARGV: its id. Returns whether it was there.
_DELETE = (
    "#!lua\n"
    + _SIZES
    + """
local found = redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
forget(ARGV[1])
return found
"""
)


def _tag(client: str) -> str:
    return f"{PREFIX}:{{{client or '-'}}}"


def _keys(client: str, conversation_id: str) -> list[str]:
    """A conversation's index, meta and items keys, and its key's sizes."""
    tag = _tag(client)
    return [tag, f"{tag}:{conversation_id}", f"{tag}:{conversation_id}:items", f"{tag}:sizes"]


@contextlib.contextmanager
def _reached() -> Iterator[None]:
    try:
        yield
    except (redis.RedisError, redis.exceptions.RedisClusterException):
        raise ApiError("store_unavailable", "Redis did not answer: the conversation was not read or changed.") from None


class RedisConversations(ConversationStore):
    """Conversations in Redis; one round trip per read or change (two when one is evicted)."""

    def __init__(self, topology: Topology, bounds: Bounds) -> None:
        super().__init__(bounds)
        self._later = Later(topology, CONNECTIONS, TIMEOUT_SECONDS)
        self._scripts: dict[str, Any] = {}

    @property
    def _client(self) -> Client:
        return self._later()

    def _script(self, source: str) -> Any:
        """A script, registered on the client once it can be made."""
        if source not in self._scripts:
            self._scripts[source] = self._client.register_script(source)
        return self._scripts[source]

    def _append(self, keys: list[str], args: list[Any]) -> Any:
        return self._script(_APPEND)(keys, args)

    def _update(self, keys: list[str], args: list[Any]) -> Any:
        return self._script(_UPDATE)(keys, args)

    def _delete_item(self, keys: list[str], args: list[Any]) -> Any:
        return self._script(_DELETE_ITEM)(keys, args)

    def _delete(self, keys: list[str], args: list[Any]) -> Any:
        return self._script(_DELETE)(keys, args)

    def _bounds(self, conversation_id: str) -> list[Any]:
        ttl_ms = int(self.bounds.ttl_seconds * 1000)
        bounds = [self.bounds.items, self.bounds.bytes, conversation_id, self.bounds.key_bytes]
        return [int(time.time() * 1000), ttl_ms, *bounds]

    def create(self, client: str, metadata: dict[str, str], items: list[dict[str, Any]]) -> Conversation:
        conversation = Conversation(new_id(), int(time.time()), dict(metadata))
        head = ["new", conversation.created_at, orjson.dumps(metadata), self.bounds.per_key]
        added = [encoded(item) for item in items]
        with _reached():
            evicted = self._append(_keys(client, conversation.id), [*self._bounds(conversation.id), *head, *added])
            for gone in evicted:
                self._delete(_keys(client, gone.decode()), [gone])
        return conversation

    def get(self, client: str, conversation_id: str) -> Conversation | None:
        with _reached():
            found = self._client.hmget(_keys(client, conversation_id)[1], "created_at", "metadata")
        if found[0] is None:
            return None
        return Conversation(conversation_id, int(found[0]), orjson.loads(found[1] or b"{}"))

    def update(self, client: str, conversation_id: str, metadata: dict[str, str]) -> Conversation | None:
        args = [*self._bounds(conversation_id)[:2], orjson.dumps(metadata), conversation_id]
        with _reached():
            created = self._update(_keys(client, conversation_id)[:3], args)
        return None if created is None else Conversation(conversation_id, int(created), dict(metadata))

    def delete(self, client: str, conversation_id: str) -> bool:
        with _reached():
            return bool(self._delete(_keys(client, conversation_id), [conversation_id]))

    def append(self, client: str, conversation_id: str, items: list[dict[str, Any]]) -> bool:
        added = [encoded(item) for item in items]
        with _reached():
            found = self._append(_keys(client, conversation_id), [*self._bounds(conversation_id), "add", *added])
            for gone in [] if found == -1 else found:
                self._delete(_keys(client, gone.decode()), [gone])
        return found != -1

    def items(self, client: str, conversation_id: str) -> list[dict[str, Any]] | None:
        _, meta, items, _ = _keys(client, conversation_id)
        with _reached():
            pipe = self._client.pipeline(transaction=False)
            pipe.exists(meta)
            pipe.lrange(items, 0, -1)
            exists, found = pipe.execute()
        return [orjson.loads(entry) for entry in found] if exists else None

    def delete_item(self, client: str, conversation_id: str, item_id: str) -> bool | None:
        with _reached():
            found = self._delete_item(_keys(client, conversation_id)[1:], [item_id, conversation_id])
        return None if found == -1 else bool(found)

    def close(self) -> None:
        self._later.close()
