"""ChatWait's connection to Redis: clients with bounded pools and deadlines, key names, the
Lua scripts that keep a stream's log consistent, and Redis failures as catalogue errors.

One stream is two keys: its events (a Redis Stream whose entry `0-(n+1)` is SSE event n, so
ids map one to one) and its metadata (a hash: state, owner, correlation id, model, created,
last). `live` maps every live stream of the cluster to its owner (the cluster-wide MAX_STREAMS);
each worker holds `owner:<id>`, a lease it renews, and listens on `stop:<id>`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import urllib.parse
from collections.abc import Iterator, Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import ApiError

log = logging.getLogger("chatwait.redis")

PREFIX = "chatwait"
CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0
POOL_WAIT_SECONDS = 2.0  # for a free connection when the pool is at its bound
COMMAND_CONNECTIONS = 64
FOLLOW_CONNECTIONS = 512  # each remote follower blocked in XREAD holds one while it waits

# Writes a stream's next entries, ARGV[13..] as (event id, field, value) triples: field h (the
# priming frame), c (a chunk's text) or t (the terminal frame). ARGV[4] is how the stream ended
# when this batch ends it (finish_reason or error_code), else 0. With ARGV[6..12] (max live
# streams, owner, correlation id, model, created, wire format, the client's key digest), the
# first batch also creates the stream,
# unless the cluster already holds MAX_STREAMS live ones (-4). Entries already there are
# skipped, so a batch can be sent again after a failure; a batch that would leave a gap (an
# earlier one, sent on the same connection, failed) is refused (-5) and is sent again from the
# newest entry. Refused (-1) once the stream is no longer live (declared lost). With a 4th key
# (a dead owner's lease), it writes only if that lease is gone and the newest entry is still
# ARGV[5]: whoever calls it then ends the stream.
WRITE_SCRIPT = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state and ARGV[6] ~= '' then
  if redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[6]) then return -4 end
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[7])
  redis.call('HSET', KEYS[1], 'state', 'live', 'owner', ARGV[7], 'correlation_id', ARGV[8],
    'model', ARGV[9], 'created', ARGV[10], 'wire', ARGV[11], 'client', ARGV[12])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  state = 'live'
end
if state ~= 'live' then
  redis.call('HDEL', KEYS[3], ARGV[1])
  return -1
end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local next_id = 0
if #top > 0 then next_id = tonumber(string.match(top[1][1], '%-(%d+)$')) end
if KEYS[4] then
  if redis.call('EXISTS', KEYS[4]) == 1 then return -2 end
  if next_id - 1 ~= tonumber(ARGV[5]) then return -3 end
end
if #ARGV >= 13 and tonumber(ARGV[13]) > next_id then return -5 end
local last = -1
for i = 13, #ARGV, 3 do
  last = tonumber(ARGV[i])
  if last >= next_id then
    local ok = redis.pcall('XADD', KEYS[2], '0-' .. (last + 1), ARGV[i + 1], ARGV[i + 2])
    if type(ok) == 'table' and ok.err then return ok end
  end
end
if ARGV[13] == '0' then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
if ARGV[4] ~= '0' then
  redis.call('HSET', KEYS[1], 'state', 'finished', 'last', last, 'ending', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return 1
"""
NOT_CREATING = ("",) * 7  # ARGV[6..12] of a batch that does not create its stream


def meta_key(stream_id: str) -> str:
    return f"{PREFIX}:{{{stream_id}}}:meta"


def events_key(stream_id: str) -> str:
    return f"{PREFIX}:{{{stream_id}}}:events"


def lease_key(owner: str) -> str:
    return f"{PREFIX}:owner:{owner}"


def stop_channel(owner: str) -> str:
    return f"{PREFIX}:stop:{owner}"


LIVE_KEY = f"{PREFIX}:live"


def entry_id(event_id: int) -> str:
    """The Redis Stream entry id of SSE event `event_id`."""
    return f"0-{event_id + 1}"


def event_id(entry: bytes) -> int:
    """The SSE event id of a Redis Stream entry id."""
    return int(entry.rpartition(b"-")[2]) - 1


def connect(url: str, max_connections: int, socket_timeout: float) -> redis.Redis:
    """A client with a bounded pool: no retries of its own (the caller decides), every wait timed."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        socket_timeout=socket_timeout,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 0),
    )
    return redis.Redis(connection_pool=pool)


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def store_errors(operation: str) -> Iterator[None]:
    """Turn a Redis failure into ApiError(store_unavailable), logged without Redis's own text."""
    try:
        yield
    except redis.RedisError as error:
        log.warning("store_failed", extra={"operation": operation, "error_type": type(error).__name__})
        raise ApiError("store_unavailable", f"Redis did not complete {operation} ({type(error).__name__}).") from None


@dataclasses.dataclass(frozen=True)
class Link:
    """What the Redis store's parts share: two clients (short commands; followers' blocking
    reads), the scripts, this worker's id, and how long keys live (while live, once finished)."""

    commands: redis.Redis
    blocking: redis.Redis
    scripts: Scripts
    worker: str
    live_ttl_ms: int
    done_ttl_ms: int


class Scripts:
    """The Lua scripts, called by their SHA1 (EVALSHA) and loaded again when Redis lost them."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._sources = {"write": WRITE_SCRIPT}
        self._shas = {name: _sha1(source) for name, source in self._sources.items()}

    def command(self, name: str, keys: Sequence[str], args: Sequence[object]) -> tuple[object, ...]:
        """The EVALSHA command calling a script, as arguments to send."""
        return ("EVALSHA", self._shas[name], len(keys), *keys, *args)

    def call(self, target: redis.Redis, name: str, keys: Sequence[str], args: Sequence[object]) -> object:
        """EVALSHA on `target` (a client or a pipeline); the caller loads on NoScriptError."""
        return target.execute_command(*self.command(name, keys, args))

    def load(self) -> None:
        """Load every script into Redis (after a restart of Redis, or at start-up)."""
        for source in self._sources.values():
            self._client.script_load(source)

    def run(self, name: str, keys: Sequence[str], args: Sequence[object]) -> object:
        """Call one script now, loading the scripts first if Redis lost them."""
        try:
            return self.call(self._client, name, keys, args)
        except redis.exceptions.NoScriptError:
            self.load()
            return self.call(self._client, name, keys, args)


def _sha1(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest()
