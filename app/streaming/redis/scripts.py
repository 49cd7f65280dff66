"""The Lua scripts that keep the Redis store consistent, and how they are called (EVALSHA).

Each script touches the keys of one hash slot only (a stream's two keys share a hash tag), so
they run on Redis Cluster too. Each declares its flags (Redis 7): a script without `allow-oom`
is refused as a whole when Redis is out of memory, never half run; the few with it (a stream's
ending, a lease, a stop) write a few bytes, so that every stream can still end and every owner
still be seen alive while memory is full.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import redis

# Writes a stream's next entries: KEYS = meta, events. ARGV: [1] live TTL ms, [2] TTL once
# finished, [3] how the stream ends with this batch (finish_reason or error_code) or 0, [4] 1 to
# create the stream (its first batch, or again once Redis lost it), [5] the newest entry id
# expected (compare and set: a lost stream's ending) or '', [6..14] owner, correlation id, model,
# created, wire format, client key digest, the wire's echoed parameters (JSON), the API's context,
# the call that another worker continues it with if this one dies (JSON, or '') (all empty unless
# [4] is 1, but the model with the priming frame: the model that answers); [15] the worker writing
# (its owner); [16] how the generation ended (the outcome's record, JSON) with the ending, else
# ''; [17] the writer's epoch (the fencing token: 0 for the worker that started the stream, raised
# by each claim); [18] 1 to fence the writer out once the ending is written (a lost stream's
# ending, written by a worker that is not its owner); [19..] (event id, field, value) triples,
# field h (the priming frame), c (a chunk's text) or t (the terminal frame). Entries Redis holds
# already are skipped, so a batch can be sent again by the same owner and epoch, even once the
# stream has ended. Returns {status, n}: ok (n: entries held), gap (an earlier batch is missing:
# send again from entry n), missing (the stream's hash is gone: create it again), ended (someone
# else ended it), moved (the newest entry is not the one expected), taken (another owner or epoch
# holds it now: it was taken over from this writer, whose lease had lapsed). A write from any
# other owner or epoch is refused whole.
_WRITE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  if ARGV[4] ~= '1' then return {'missing', 0} end
  redis.call('HSET', KEYS[1], 'state', 'live', 'owner', ARGV[6], 'correlation_id', ARGV[7],
    'model', ARGV[8], 'created', ARGV[9], 'wire', ARGV[10], 'client', ARGV[11], 'echo', ARGV[12],
    'context', ARGV[13], 'epoch', ARGV[17])
  if ARGV[14] ~= '' then redis.call('HSET', KEYS[1], 'call', ARGV[14]) end
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  state = 'live'
end
local fenced = redis.call('HGET', KEYS[1], 'owner') ~= ARGV[15]
  or tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0') ~= tonumber(ARGV[17])
if state == 'live' and fenced then return {'taken', 0} end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local next_id = 0
if #top > 0 then next_id = tonumber(string.match(top[1][1], '%-(%d+)$')) end
if state ~= 'live' then
  if not fenced and tonumber(ARGV[#ARGV - 2]) < next_id then return {'ok', next_id} end  -- all held: sent again
  return {'ended', 0}
end
if ARGV[5] ~= '' and next_id - 1 ~= tonumber(ARGV[5]) then return {'moved', next_id} end
if #ARGV >= 19 and tonumber(ARGV[19]) > next_id then return {'gap', next_id} end
if ARGV[4] ~= '1' and ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'model', ARGV[8]) end
local last = next_id - 1
for i = 19, #ARGV, 3 do
  last = tonumber(ARGV[i])
  if last >= next_id then redis.call('XADD', KEYS[2], '0-' .. (last + 1), ARGV[i + 1], ARGV[i + 2]) end
end
if next_id == 0 and last >= 0 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
if ARGV[3] ~= '0' then
  redis.call('HSET', KEYS[1], 'state', 'finished', 'last', last, 'ending', ARGV[3], 'outcome', ARGV[16])
  if ARGV[18] == '1' then redis.call('HINCRBY', KEYS[1], 'epoch', 1) end
  redis.call('HDEL', KEYS[1], 'call')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return {'ok', last + 1}
"""

# Counts a new live stream in the cluster's registry: KEYS = live. ARGV: stream id, MAX_STREAMS,
# owner, 1 to count it whatever the count (a stream Redis lost, written again). 1, or 0 when full.
_ADMIT = """#!lua
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
if ARGV[4] ~= '1' and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# A worker's lease, in the owners hash (KEYS), by Redis's clock: ARGV = worker, lease ms, 1 if
# this worker has renewed before (2: and has seen Redis lose its scripts), how its writes go (0
# well; 1 refused or failing: its clients may be ahead of Redis; 2 past its outage grace:
# followers elsewhere stop waiting for its streams). Also when
# its renewals last began again after a gap (<worker>:since), when the hash was made (_since),
# and when Redis was last seen to lose data (_lost: a worker that had renewed found its lease
# gone, or saw the scripts gone; a restart, an eviction, a failover); returns 1 then.
_RENEW = """#!lua flags=allow-oom
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local previous = redis.call('HGET', KEYS[1], ARGV[1])
local lost = 0
if (not previous and ARGV[3] == '1') or ARGV[3] == '2' then
  redis.call('HSET', KEYS[1], '_lost', now)
  lost = 1
end
if now - tonumber(previous or '0') > tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1] .. ':since', now)
end
redis.call('HSET', KEYS[1], ARGV[1], now, ARGV[1] .. ':writes', ARGV[4])
redis.call('HSETNX', KEYS[1], '_since', now)
return lost
"""

# Which of ARGV[4..] (owners) are gone, as seen by ARGV[1] (this worker), lease ARGV[2] ms: an
# owner whose lease is older than that, or missing from a hash older than ARGV[3] ms. No verdict
# (an empty list) unless this worker's own lease has been fresh for ARGV[3] ms: after an outage
# every lease is old, and their owners get time to renew. Also how many ms ago Redis was last
# found to have lost the hash (-1: never), which owners cannot write their streams, and which
# may be ahead of Redis (their writes fail or are refused).
_GONE = """#!lua flags=no-writes
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease, settle = tonumber(ARGV[2]), tonumber(ARGV[3])
local lost = redis.call('HGET', KEYS[1], '_lost')
local lost_age = -1
if lost then lost_age = now - tonumber(lost) end
local hash_age = now - tonumber(redis.call('HGET', KEYS[1], '_since') or now)
local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local since = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':since') or now)
local gone, stuck, behind = {}, {}, {}
for i = 4, #ARGV do
  local writes = redis.call('HGET', KEYS[1], ARGV[i] .. ':writes')
  if writes == '2' then stuck[#stuck + 1] = ARGV[i] end
  if writes == '1' or writes == '2' then behind[#behind + 1] = ARGV[i] end
end
if now - mine > lease or now - since < settle then return {lost_age, gone, stuck, behind} end
for i = 4, #ARGV do
  local seen = redis.call('HGET', KEYS[1], ARGV[i])
  if seen then
    if now - tonumber(seen) > lease then gone[#gone + 1] = ARGV[i] end
  elseif hash_age > settle then
    gone[#gone + 1] = ARGV[i]
  end
end
return {lost_age, gone, stuck, behind}
"""

# Marks a live stream for a stop (its owner reads it again after a reconnect) or as followed
# (ARGV[1] = field, ARGV[2] = value): never on a hash that is gone or finished. 1 when marked.
_MARK = """#!lua flags=allow-oom
if redis.call('HGET', KEYS[1], 'state') ~= 'live' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# Claims a live stream whose owner is gone, for one worker of the cluster to continue it: KEYS =
# meta, events. ARGV: the owner found gone, the claiming worker (never the owner itself), how
# many takeovers a stream may have (UPSTREAM_TAKEOVERS, counted in `taken`),
# the newest event id and the epoch the claimer read (-1: no event). A compare-and-set on the
# owner, the epoch and the newest event: the claim fails against any owner or epoch but the one
# found gone, so one worker of the cluster wins, and a stream is never claimed from a live owner
# that claimed it meanwhile. Raises the epoch (the fencing token the new owner's writes carry:
# the former owner's are refused from then on). Returns {status, call, epoch}: ok (the call to
# continue it with), ended, moved (another worker claimed it, or its owner wrote meanwhile),
# none (no call kept: it cannot be continued) or spent.
_CLAIM = """#!lua flags=allow-oom
if redis.call('HGET', KEYS[1], 'state') ~= 'live' then return {'ended', '', 0} end
if ARGV[1] == ARGV[2] or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {'moved', '', 0} end
if tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0') ~= tonumber(ARGV[5]) then return {'moved', '', 0} end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local newest = -1
if #top > 0 then newest = tonumber(string.match(top[1][1], '%-(%d+)$')) - 1 end
if newest ~= tonumber(ARGV[4]) then return {'moved', '', 0} end
local call = redis.call('HGET', KEYS[1], 'call')
if not call or call == '' then return {'none', '', 0} end
if tonumber(redis.call('HGET', KEYS[1], 'taken') or '0') >= tonumber(ARGV[3]) then return {'spent', '', 0} end
redis.call('HINCRBY', KEYS[1], 'taken', 1)
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
return {'ok', call, epoch}
"""

# Counts one continuation of a live stream's reply after a cut (a rescue, a preemption) against
# its allowance (`spent`; takeovers count apart): KEYS = meta. ARGV: the worker, its epoch, the allowance
# (UPSTREAM_RESCUES). Returns ok (counted), spent (none left), taken (another owner or epoch
# holds it: the caller's copy is stale) or missing (Redis lost the hash: the caller counts alone).
_CONTINUE = """#!lua flags=allow-oom
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state ~= 'live' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1]
  or tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0') ~= tonumber(ARGV[2]) then return 'taken' end
if tonumber(redis.call('HGET', KEYS[1], 'spent') or '0') >= tonumber(ARGV[3]) then return 'spent' end
redis.call('HINCRBY', KEYS[1], 'spent', 1)
return 'ok'
"""

# Counts a client key's finished stored responses (MAX_STORED_RESPONSES): KEYS = its index (ZSET
# member -> when it finished, ms). ARGV: the bound, ms they are kept, now (ms), then members
# (`<stream id>@<owner>`) and when each finished. Drops what expired, adds the new ones, and
# pops the oldest over the bound: returns those, for their keys to be deleted. allow-oom: it
# adds a few bytes so that many more can be freed.
_STORED = """#!lua flags=allow-oom
local kept, now = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - kept)
for i = 4, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i]) end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
local evicted = {}
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #popped, 2 do evicted[#evicted + 1] = popped[i] end
end
redis.call('PEXPIRE', KEYS[1], kept)
return evicted
"""

SOURCES = {
    "write": "#!lua\n" + _WRITE,
    "end": "#!lua flags=allow-oom\n" + _WRITE,  # a batch with the ending: every stream can end
    "admit": _ADMIT,
    "renew": _RENEW,
    "gone": _GONE,
    "mark": _MARK,
    "claim": _CLAIM,
    "continue": _CONTINUE,
    "stored": _STORED,
}


class Scripts:
    """The scripts by name, called by their SHA1 and loaded again when Redis lost them (then
    `on_reload` is told: Redis restarted or failed over, and may have lost keys too)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._shas = {name: hashlib.sha1(source.encode("utf-8")).hexdigest() for name, source in SOURCES.items()}
        self.on_reload: Callable[[], None] = lambda: None

    def command(self, name: str, keys: Sequence[str], args: Sequence[object]) -> tuple[object, ...]:
        """The EVALSHA command calling a script, as arguments to send."""
        return ("EVALSHA", self._shas[name], len(keys), *keys, *args)

    def load(self) -> None:
        """Load every script (at start-up)."""
        for source in SOURCES.values():
            self._client.script_load(source)

    def reload(self) -> None:
        """Load every script again: Redis lost them (a restart, a failover)."""
        self.load()
        self.on_reload()

    def loaded(self) -> bool:
        """Whether Redis holds the scripts (it lost them when it restarted or failed over)."""
        return all(self._client.script_exists(*self._shas.values()))

    def run(self, target: Any, name: str, keys: Sequence[str], args: Sequence[object]) -> Any:
        """Call one script now on `target` (a client), loading the scripts first if Redis lost them."""
        try:
            return target.execute_command(*self.command(name, keys, args))
        except redis.exceptions.NoScriptError:
            self.reload()
            return target.execute_command(*self.command(name, keys, args))
