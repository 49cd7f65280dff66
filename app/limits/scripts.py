"""The Lua scripts of the Redis counters (`shared`): each one round trip, each on one key's
hash tag (Cluster-safe), each by Redis's clock."""

from __future__ import annotations

import hashlib

HELD_MS = 3_600_000  # how long a budgeted ticket's reservation is known (a longer generation settles as unsure)
SETTLED_MS = 600_000  # how long a settled ticket is known: a late admission or settlement of it is void

# Where a key's limits stand, and with ARGV[1] = 'admit' its new generation counted when no limit
# refuses (with 'request', a request that starts none: rpm alone). KEYS: live (ZSET ticket ->
# lease end, ms), requests and tokens (HASH second -> count), the day's and the month's spend
# (nano-USD), and (admit with a cost) what the ticket holds (`held_key`; one settled already: a
# late admission, void). ARGV: mode (admit|request|peek), ticket, max_streams, rpm, tpm (-1: none), the
# prompt's tokens, lease ms, the completion's reservation (lowered to what tpm has left once
# something is counted; at least one token must be), the cost reserved (nano-USD), budget_day,
# budget_month (nano-USD, -1: none), the day's and the month's keys' lifetimes (ms). Redis's
# clock for the minute, so every worker agrees. Returns {refused ('' none), retry ms, live,
# requests used, requests reset ms, tokens used, tokens reset ms, the second counted in, the
# completion tokens reserved, the day's spend, the month's spend}.
_LOOK = """#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local second = math.floor(now / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
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
local max_streams, rpm, tpm = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local prompt, reserve = tonumber(ARGV[6]), tonumber(ARGV[8] or '0')
local needed, reserved = prompt + math.min(reserve, 1), 0
local live = redis.call('ZCARD', KEYS[1])
local rs, rc, rtotal = minute(KEYS[2])
local ts, tc, ttotal = minute(KEYS[3])
local cost, budgets = tonumber(ARGV[9] or '0'), {tonumber(ARGV[10] or '-1'), tonumber(ARGV[11] or '-1')}
local spent = {tonumber(redis.call('GET', KEYS[4]) or '0'), tonumber(redis.call('GET', KEYS[5]) or '0')}
local refused, retry = '', 0
if ARGV[1] == 'request' then
  if rpm >= 0 and rtotal >= rpm then refused = 'rpm'; retry = free_after(rs, rc, rtotal, 1, rpm)
  else
    redis.call('HINCRBY', KEYS[2], second, 1)
    redis.call('PEXPIRE', KEYS[2], 61000)
    if #rs == 0 or rs[#rs] ~= second then table.insert(rs, second) end
    rtotal = rtotal + 1
  end
elseif ARGV[1] == 'admit' then
  if KEYS[6] and redis.call('EXISTS', KEYS[6]) == 1 then
    return {'stale', 0, live, rtotal, reset(rs), ttotal, reset(ts), second, 0, spent[1], spent[2]}
  end
  if max_streams >= 0 and live >= max_streams then refused = 'max_streams'
  elseif rpm >= 0 and rtotal >= rpm then refused = 'rpm'; retry = free_after(rs, rc, rtotal, 1, rpm)
  elseif tpm >= 0 and (ttotal >= tpm or (ttotal > 0 and ttotal + needed > tpm)) then
    refused = 'tpm'; retry = free_after(ts, tc, ttotal, math.min(needed, tpm), tpm)
  else
    for i, name in ipairs({'budget_day', 'budget_month'}) do
      local over = spent[i] >= budgets[i] or spent[i] + cost > budgets[i]
      if refused == '' and budgets[i] >= 0 and over then refused = name end
    end
  end
  if refused == '' then
    reserved = reserve
    if tpm >= 0 and ttotal > 0 then reserved = math.min(reserve, tpm - ttotal - prompt) end
    prompt = prompt + reserved
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[7]), ARGV[2])
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]) + 60000)
    live = live + 1
    redis.call('HINCRBY', KEYS[2], second, 1)
    redis.call('PEXPIRE', KEYS[2], 61000)
    if #rs == 0 or rs[#rs] ~= second then table.insert(rs, second) end
    rtotal = rtotal + 1
    if prompt > 0 then
      redis.call('HINCRBY', KEYS[3], second, prompt)
      redis.call('PEXPIRE', KEYS[3], 61000)
      if #ts == 0 or ts[#ts] ~= second then table.insert(ts, second) end
      ttotal = ttotal + prompt
    end
    if budgets[1] >= 0 or budgets[2] >= 0 then
      for i = 1, 2 do
        spent[i] = redis.call('INCRBY', KEYS[3 + i], cost)
        redis.call('PEXPIRE', KEYS[3 + i], tonumber(ARGV[11 + i]))
      end
      if KEYS[6] and cost > 0 then redis.call('SET', KEYS[6], cost, 'PX', HELD_MS) end
    end
  end
end
return {refused, retry, live, rtotal, reset(rs), ttotal, reset(ts), second, reserved, spent[1], spent[2]}
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
# take_over), what it held (`held_key`), the spend of the day and the month it was admitted in.
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
local change, again = cost - reserved, false
local before = redis.call('GET', KEYS[3])
if before then
  before = tonumber(before)
  if before >= 0 then
    again, change = true, math.max(0, cost - before)
    cost = math.max(before, cost)
  end
  redis.call('SET', KEYS[3], cost, 'KEEPTTL')
end
if change ~= 0 then
  for i = 5, #KEYS do
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
