"""The Lua scripts of the Redis counters (`shared`): each one round trip, each on one key's
hash tag (Cluster-safe), each by Redis's clock."""

from __future__ import annotations

import hashlib

HELD_MS = 3_600_000  # how long a budgeted ticket's reservation is known (a longer generation settles as unsure)
SETTLED_MS = 600_000  # how long a settled ticket is known: a late admission or settlement of it is void

# Where a key's limits stand, and with ARGV[1] = 'admit' its new generation counted when no limit
# refuses (with 'request', a request that starts none: rpm alone), for the key and (a second
# level) its end user at once: every level is checked before any is counted. KEYS, eight per
# level: live (ZSET ticket -> lease end, ms), requests and tokens (HASH second -> count), the day's
# and the month's spend (nano-USD, reservations included), what the ticket holds (`held_key`; the
# key's: one settled already makes a late admission with a cost void), and what generations still
# running reserve of the day's and the month's spend. ARGV: mode (admit|request|peek), ticket, the
# prompt's tokens, lease ms, the completion's reservation (lowered to what every level's tpm has
# left once something is counted; at least one token must be), the cost reserved (nano-USD), the
# number of levels, then per level: max_streams, rpm, tpm (-1: none), budget_day, budget_month
# (nano-USD, -1: none), the day's and the month's keys' lifetimes (ms). Redis's clock for the
# minute, so every worker agrees. Returns {refused ('' none; an end user's limit as user_...),
# retry ms, live, requests used, requests reset ms, tokens used, tokens reset ms, the second
# counted in, the completion tokens reserved, the day's spend, the month's spend, the day's and the
# month's reservations} of the key, then {live, the day's spend, the month's spend, the day's and
# the month's reservations} of each further level.
_LOOK = """#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local second = math.floor(now / 1000)
local function minute(key)
  local seconds, counts, total = {}, {}, 0
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local s = tonumber(all[i])
    if s <= second - 60 then redis.call('HDEL', key, all[i])
    else table.insert(seconds, s); counts[s] = tonumber(all[i + 1]); total = total + counts[s] end
  end
  table.sort(seconds)
  return seconds, counts, total
end
local function free_after(seconds, counts, total, needed, limit)
  local left = total
  for _, s in ipairs(seconds) do
    if left + needed <= limit then return 0 end
    left = left - counts[s]
    if left + needed <= limit then return math.max(0, (s + 60) * 1000 - now) end
  end
  if left + needed <= limit then return 0 end
  return 60000
end
local function reset(seconds)
  if #seconds == 0 then return 0 end
  return math.max(0, (seconds[1] + 60) * 1000 - now)
end
local function add(key, count, seconds)
  redis.call('HINCRBY', key, second, count)
  redis.call('PEXPIRE', key, 61000)
  if #seconds == 0 or seconds[#seconds] ~= second then table.insert(seconds, second) end
end
local mode, ticket, prompt, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local reserve, cost = tonumber(ARGV[5]), tonumber(ARGV[6])
local needed, reserved = prompt + math.min(reserve, 1), 0
local levels = {}
for i = 1, tonumber(ARGV[7]) do
  local k, a = (i - 1) * 8, 7 + (i - 1) * 7
  local L = {keys = {KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], KEYS[k + 6], KEYS[k + 7],
    KEYS[k + 8]},
    max_streams = tonumber(ARGV[a + 1]), rpm = tonumber(ARGV[a + 2]), tpm = tonumber(ARGV[a + 3]),
    budgets = {tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])},
    lifetimes = {tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])}}
  redis.call('ZREMRANGEBYSCORE', L.keys[1], '-inf', now)
  L.live = redis.call('ZCARD', L.keys[1])
  L.rs, L.rc, L.rtotal = minute(L.keys[2])
  L.ts, L.tc, L.ttotal = minute(L.keys[3])
  L.spent = {tonumber(redis.call('GET', L.keys[4]) or '0'), tonumber(redis.call('GET', L.keys[5]) or '0')}
  L.held = {tonumber(redis.call('GET', L.keys[7]) or '0'), tonumber(redis.call('GET', L.keys[8]) or '0')}
  levels[i] = L
end
local function result(refused, retry)
  local K = levels[1]
  local found = {refused, retry, K.live, K.rtotal, reset(K.rs), K.ttotal, reset(K.ts), second, reserved,
    K.spent[1], K.spent[2], K.held[1], K.held[2]}
  for i = 2, #levels do
    local L = levels[i]
    for _, value in ipairs({L.live, L.spent[1], L.spent[2], L.held[1], L.held[2]}) do table.insert(found, value) end
  end
  return found
end
local function refusal(L)
  if mode == 'request' then
    if L.rpm >= 0 and L.rtotal >= L.rpm then return 'rpm', free_after(L.rs, L.rc, L.rtotal, 1, L.rpm) end
    return '', 0
  end
  if L.max_streams >= 0 and L.live >= L.max_streams then return 'max_streams', 0 end
  if L.rpm >= 0 and L.rtotal >= L.rpm then return 'rpm', free_after(L.rs, L.rc, L.rtotal, 1, L.rpm) end
  if L.tpm >= 0 and (L.ttotal >= L.tpm or (L.ttotal > 0 and L.ttotal + needed > L.tpm)) then
    return 'tpm', free_after(L.ts, L.tc, L.ttotal, math.min(needed, L.tpm), L.tpm)
  end
  for i, name in ipairs({'budget_day', 'budget_month'}) do
    if L.budgets[i] >= 0 and (L.spent[i] >= L.budgets[i] or L.spent[i] + cost > L.budgets[i]) then return name, 0 end
  end
  return '', 0
end
if mode == 'peek' then return result('', 0) end
if mode == 'admit' and cost > 0 and redis.call('EXISTS', levels[1].keys[6]) == 1 then return result('stale', 0) end
for i, L in ipairs(levels) do
  local refused, retry = refusal(L)
  if refused ~= '' then
    if i > 1 then refused = 'user_' .. refused end
    return result(refused, retry)
  end
end
if mode == 'request' then
  for _, L in ipairs(levels) do add(L.keys[2], 1, L.rs); L.rtotal = L.rtotal + 1 end
  return result('', 0)
end
reserved = reserve
for _, L in ipairs(levels) do
  if L.tpm >= 0 and L.ttotal > 0 then reserved = math.min(reserved, L.tpm - L.ttotal - prompt) end
end
for _, L in ipairs(levels) do
  redis.call('ZADD', L.keys[1], now + lease, ticket)
  redis.call('PEXPIRE', L.keys[1], lease + 60000)
  L.live = L.live + 1
  add(L.keys[2], 1, L.rs)
  L.rtotal = L.rtotal + 1
  if prompt + reserved > 0 then
    add(L.keys[3], prompt + reserved, L.ts)
    L.ttotal = L.ttotal + prompt + reserved
  end
  if L.budgets[1] >= 0 or L.budgets[2] >= 0 then
    for j = 1, 2 do
      if L.budgets[j] >= 0 then  -- a period without a budget keeps nothing (an end user's month: 32 days)
        L.spent[j] = redis.call('INCRBY', L.keys[3 + j], cost)
        redis.call('PEXPIRE', L.keys[3 + j], L.lifetimes[j])
        if cost > 0 then
          L.held[j] = redis.call('INCRBY', L.keys[6 + j], cost)
          redis.call('PEXPIRE', L.keys[6 + j], L.lifetimes[j])
        end
      end
    end
    if cost > 0 then redis.call('SET', L.keys[6], cost, 'PX', HELD_MS) end
  end
end
return result('', 0)
"""

# A worker's generations still running: their leases renewed by Redis's clock. KEYS: live.
# ARGV: lease ms, tickets. allow-oom: a few bytes, so that running generations keep counting.
_RENEW = """#!lua flags=allow-oom
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], until_ms, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 60000)
return #ARGV - 1
"""

# A generation ended: KEYS: live, tokens, its ticket's settlements (a ticket taken over: see
# take_over), what it held (`held_key`), the spend of the day and the month it was admitted in,
# and what generations still running reserve of each (its reservation given back from them once).
# ARGV: ticket, tokens produced beyond what was counted (counted now), tokens reserved and not
# produced (taken back off ARGV[4], the second it was admitted in, if that is still counted), what
# it cost and what it reserved (nano-USD), to the periods still counted; whether it is unsure
# (admitted or settled while Redis was out of reach: what it held is what it reserved, none if
# nothing; once settled, void) and the lifetime (ms) of a period's spend it creates. A ticket taken
# over and settled before gives nothing back and adds what it cost beyond the dearest settlement
# before (counters.Settlement.change). allow-oom: it frees more than it writes.
_RELEASE = """#!lua flags=allow-oom
redis.call('ZREM', KEYS[1], ARGV[1])
local cost, reserved = tonumber(ARGV[5] or '0'), tonumber(ARGV[6] or '0')
local unsure = ARGV[7] == '1'
if KEYS[5] then
  local held = redis.call('GET', KEYS[4])
  if unsure then
    if held == 'settled' then return 0 end
    reserved = tonumber(held or '0')
  end
  redis.call('SET', KEYS[4], 'settled', 'PX', SETTLED_MS)
end
local change, again, given = cost - reserved, false, reserved
local before = redis.call('GET', KEYS[3])
if before then
  before = tonumber(before)
  if before >= 0 then
    again, change, given = true, math.max(0, cost - before), 0
    cost = math.max(before, cost)
  end
  redis.call('SET', KEYS[3], cost, 'KEEPTTL')
end
if KEYS[5] and given > 0 then
  for i = 7, 8 do
    local held = tonumber(redis.call('GET', KEYS[i]) or '-1')
    if held > given then redis.call('DECRBY', KEYS[i], given)
    elseif held > 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  end
end
if change ~= 0 then
  for i = 5, 6 do
    local held = redis.call('GET', KEYS[i])
    if held then
      if tonumber(held) + change > 0 then redis.call('INCRBY', KEYS[i], change)
      else redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
    elseif unsure and change > 0 then redis.call('SET', KEYS[i], change, 'PX', tonumber(ARGV[8])) end
  end
end
local spent, refund = tonumber(ARGV[2]), tonumber(ARGV[3])
if spent > 0 then
  redis.call('HINCRBY', KEYS[2], tonumber(redis.call('TIME')[1]), spent)
  redis.call('PEXPIRE', KEYS[2], 61000)
end
if refund > 0 and not again then
  local held = tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0')
  if held > refund then redis.call('HINCRBY', KEYS[2], ARGV[4], -refund)
  elseif held > 0 then redis.call('HDEL', KEYS[2], ARGV[4]) end
end
return 1
"""

# Output that reached a client of a key that pays for delivery: KEYS: the spend of the day and
# the month. ARGV: nano-USD, each key's lifetime (ms).
_CHARGE = """#!lua
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], tonumber(ARGV[1]))
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[1 + i]))
end
return 1
"""

# Completion tokens produced: KEYS: tokens. ARGV: count. By Redis's clock.
_SPEND = """#!lua
local second = tonumber(redis.call('TIME')[1])
redis.call('HINCRBY', KEYS[1], second, tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[1], 61000)
return 1
"""

# A WebSocket opened, unless its key has ARGV[1] open already: KEYS: sockets (ZSET ticket ->
# lease end, ms). ARGV: max_sockets, ticket, lease ms. Returns 1 (counted) or 0.
_HOLD = """#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 60000)
return 1
"""

_LOOK = _LOOK.replace("HELD_MS", str(HELD_MS))
_RELEASE = _RELEASE.replace("SETTLED_MS", str(SETTLED_MS))
SOURCES = {"look": _LOOK, "renew": _RENEW, "spend": _SPEND, "release": _RELEASE, "hold": _HOLD, "charge": _CHARGE}
SHAS = {name: hashlib.sha1(source.encode("utf-8")).hexdigest() for name, source in SOURCES.items()}
