"""A stream's delivery counted in Redis, in its meta hash, so that the consumers of every worker
add to one count: one script call when a consumer session ends (never per token)."""

from __future__ import annotations

import logging

import redis

from . import link as keys
from .link import Link

log = logging.getLogger("chatwait.store")

# KEYS: the stream's meta hash. ARGV: the session's chunks after (-1: a whole object, nothing
# counted as sent again: delivery.WHOLE), upto (none: upto <= after).
# Returns {new, again, delivered, replayed}: the session's, then the stream's totals. Nothing for
# a stream whose keys are gone (expired, or lost): never a key without its TTL.
_SESSION = """#!lua
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, 0, 0} end
local delivered = tonumber(redis.call('HGET', KEYS[1], 'delivered') or '0')
local replayed = tonumber(redis.call('HGET', KEYS[1], 'replayed') or '0')
local after, upto = tonumber(ARGV[1]), tonumber(ARGV[2])
local new, again = 0, 0
if upto > after then
  new = math.max(0, upto - delivered)
  if after >= 0 then again = math.max(0, math.min(delivered, upto) - after) end
end
if new > 0 then redis.call('HSET', KEYS[1], 'delivered', upto); delivered = upto end
if again > 0 then replayed = redis.call('HINCRBY', KEYS[1], 'replayed', again) end
return {new, again, delivered, replayed}
"""


class RedisDelivery:
    """A stream's delivery in its meta hash (the Redis store), for every worker's consumers."""

    __slots__ = ("_link", "_stream_id")

    def __init__(self, link: Link, stream_id: str) -> None:
        self._link, self._stream_id = link, stream_id

    def session(self, after: int, upto: int) -> tuple[int, int, int, int]:
        try:
            found = self._link.commands.eval(_SESSION, 1, keys.meta_key(self._stream_id), after, upto)
        except redis.RedisError as exc:  # the ledger's count, not the stream: never its client's problem
            log.warning("store_delivery_failed", extra={"error_type": type(exc).__name__, "chunks": upto - after})
            return 0, 0, max(0, upto), 0
        new, again, delivered, replayed = (int(value) for value in found)
        return new, again, delivered, replayed
