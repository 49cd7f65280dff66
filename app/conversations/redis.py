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

from ..connect.redis import Client, Topology, connect, disconnect
from ..errors import ApiError
from . import Bounds, Conversation, ConversationStore, encoded, new_id

PREFIX = "chatwait:conv"
CONNECTIONS = 32
TIMEOUT_SECONDS = 2.0

# Adds items (ARGV[6..]) at a conversation's end and keeps it within its bounds. KEYS: index,
# meta, items. ARGV: now ms, ttl ms, max items, max bytes, conversation id, then 'add' and the
# items; or, for a new conversation, 'new', its created_at, metadata and the key's bound (its
# oldest conversations beyond it are popped and returned: the caller deletes their keys), then
# the items. Returns -1 when the conversation is gone, else {evicted ids}.
_APPEND = """#!lua
local first = 7
local evicted = {}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if ARGV[6] == 'new' then
  redis.call('HSET', KEYS[2], 'created_at', ARGV[7], 'metadata', ARGV[8], 'bytes', 0)
  first = 10
  local over = redis.call('ZCARD', KEYS[1]) + 1 - tonumber(ARGV[9])
  if over > 0 then
    for _, entry in ipairs(redis.call('ZPOPMIN', KEYS[1], over)) do
      if _ % 2 == 1 then table.insert(evicted, entry) end
    end
  end
elseif redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local size = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
for i = first, #ARGV do
  redis.call('RPUSH', KEYS[3], ARGV[i])
  size = size + string.len(ARGV[i])
end
local n = redis.call('LLEN', KEYS[3])
while n > 1 and (n > tonumber(ARGV[3]) or size > tonumber(ARGV[4])) do
  size = size - string.len(redis.call('LPOP', KEYS[3]))
  n = n - 1
end
redis.call('HSET', KEYS[2], 'bytes', size)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if n > 0 then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return evicted
"""

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

# Removes a conversation's first item whose id is ARGV[1]; KEYS: meta, items. Returns -1 when
# the conversation is gone, 0 when no item has that id, 1 once removed.
_DELETE_ITEM = """#!lua
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if cjson.decode(entry)['id'] == ARGV[1] then
    redis.call('LREM', KEYS[2], 1, entry)
    redis.call('HINCRBY', KEYS[1], 'bytes', -string.len(entry))
    return 1
  end
end
return 0
"""


# Forgets a conversation; KEYS: index, meta, items; ARGV: its id. Returns whether it was there.
_DELETE = """#!lua
local found = redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return found
"""


def _tag(client: str) -> str:
    return f"{PREFIX}:{{{client or '-'}}}"


def _keys(client: str, conversation_id: str) -> list[str]:
    """A conversation's index, meta and items keys."""
    tag = _tag(client)
    return [tag, f"{tag}:{conversation_id}", f"{tag}:{conversation_id}:items"]


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
        self._client: Client = connect(topology, CONNECTIONS, TIMEOUT_SECONDS)
        self._append = self._client.register_script(_APPEND)
        self._update = self._client.register_script(_UPDATE)
        self._delete_item = self._client.register_script(_DELETE_ITEM)
        self._delete = self._client.register_script(_DELETE)

    def _bounds(self, conversation_id: str) -> list[Any]:
        ttl_ms = int(self.bounds.ttl_seconds * 1000)
        return [int(time.time() * 1000), ttl_ms, self.bounds.items, self.bounds.bytes, conversation_id]

    def create(self, client: str, metadata: dict[str, str], items: list[dict[str, Any]]) -> Conversation:
        conversation = Conversation(new_id(), int(time.time()), dict(metadata))
        head = ["new", conversation.created_at, orjson.dumps(metadata), self.bounds.per_key]
        with _reached():
            evicted = self._append(
                _keys(client, conversation.id),
                [*self._bounds(conversation.id), *head, *map(encoded, items)],
            )
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
            created = self._update(_keys(client, conversation_id), args)
        return None if created is None else Conversation(conversation_id, int(created), dict(metadata))

    def delete(self, client: str, conversation_id: str) -> bool:
        with _reached():
            return bool(self._delete(_keys(client, conversation_id), [conversation_id]))

    def append(self, client: str, conversation_id: str, items: list[dict[str, Any]]) -> bool:
        with _reached():
            found = self._append(
                _keys(client, conversation_id), [*self._bounds(conversation_id), "add", *map(encoded, items)]
            )
        return found != -1

    def items(self, client: str, conversation_id: str) -> list[dict[str, Any]] | None:
        _, meta, items = _keys(client, conversation_id)
        with _reached():
            pipe = self._client.pipeline(transaction=False)
            pipe.exists(meta)
            pipe.lrange(items, 0, -1)
            exists, found = pipe.execute()
        return [orjson.loads(entry) for entry in found] if exists else None

    def delete_item(self, client: str, conversation_id: str, item_id: str) -> bool | None:
        with _reached():
            found = self._delete_item(_keys(client, conversation_id)[1:], [item_id])
        return None if found == -1 else bool(found)

    def close(self) -> None:
        disconnect(self._client)
