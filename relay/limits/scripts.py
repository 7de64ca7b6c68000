"""The Lua scripts that count limits in Redis, each run atomically by the server (EVALSHA).

relay/limits/local.py follows the same rules in Python; keep them in step. Times are milliseconds; `now`
is Redis's own clock (TIME) so instances with skewed clocks still share one window, unless the caller
passes one (tests' injected clocks). Keys are "<prefix><scope>:<kind>":
  :r   sorted set of request ids scored by admission time (RPM's window log)
  :t   sorted set of "<request id>:<tokens>" scored by admission time (TPM's log), :tt its running total
  :c   sorted set of request ids scored by their lease's expiry (concurrency)
  :d:<day start>  the day's request count (RPD)
The scopes' keys are built here from their names: every scope's key lives on the one Redis the gateway uses
(a Redis Cluster would need them under one hash tag).
"""

COMMON = r"""
-- Redis before 5 refuses writes after TIME unless told to replicate the script's effects (later ones always do).
if redis.replicate_commands then redis.replicate_commands() end
local WINDOW = 60000
local function clock(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function tokens_of(member)
  return tonumber(string.match(member, ':(%d+)$'))
end
-- A request the gateway refused (or whose client left) before any upstream call: it leaves every count, as if
-- never admitted. An end may be sent twice (its call timed out after running), so the day's count, which has no
-- member to remove, notes the requests taken off it.
local function undo(base, rid, reserved, day)
  redis.call('ZREM', base .. ':c', rid)
  redis.call('ZREM', base .. ':r', rid)
  if redis.call('ZREM', base .. ':t', rid .. ':' .. reserved) == 1 then  -- else pruned, its tokens with it
    redis.call('DECRBY', base .. ':tt', reserved)
  end
  local k = base .. ':d:' .. day
  if redis.call('EXISTS', k) == 1 and redis.call('SADD', k .. ':u', rid) == 1 then
    redis.call('DECR', k)
    redis.call('PEXPIRE', k .. ':u', redis.call('PTTL', k))
  end
end
-- The requests that ended, from ARGV[i] on: per request its id, tokens reserved, tokens billed (-1: as
-- reserved; -2: undone, followed by the day start it was admitted in), number of scopes and the scopes' keys.
-- Its leases go, and its TPM entries hold what it was billed.
local function finish_from(prefix, now, i)
  while i <= #ARGV do
    local rid, reserved, tokens = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    local day = nil
    if tokens == -2 then
      day = ARGV[i + 3]
      i = i + 1
    end
    local count = tonumber(ARGV[i + 3])
    for j = i + 4, i + 3 + count do
      local base = prefix .. ARGV[j]
      if day then
        undo(base, rid, reserved, day)
      else
        redis.call('ZREM', base .. ':c', rid)
      end
      if tokens >= 0 then
        local k, member = base .. ':t', rid .. ':' .. reserved
        local at = redis.call('ZSCORE', k, member)
        -- Once out of the window an entry counts no more; the next admission prunes it with what it holds.
        if at and tonumber(at) > now - WINDOW then
          redis.call('ZREM', k, member)  -- the key goes with its last member, and ZADD makes it anew:
          redis.call('ZADD', k, at, rid .. ':' .. tokens)
          redis.call('INCRBY', base .. ':tt', tokens - tonumber(reserved))
          redis.call('PEXPIRE', k, WINDOW)  -- both keys keep expiring together, the log and its total
          redis.call('PEXPIRE', base .. ':tt', WINDOW)
        end
      end
    end
    i = i + 4 + count
  end
end
"""

# ARGV: prefix, now ('' = server time), request id, tokens, day start, day end (ms), lease ttl (ms),
# number of fixed scopes, number of channel scopes, spare (1: a channel without caps follows them), then per
# scope: key, rpm, tpm, concurrency, rpd; then the requests of this instance that ended since its last call, as
# FINISH takes them, ended first (so an admission never waits for a lease its own instance has let go).
# Returns {1, channel index (0-based; -1: no channel scopes; their count: the spare one), requests limit,
# remaining, reset, tokens limit, remaining, reset} (limit 0: no such limit) or {0, scope index (0-based;
# -1: every channel), kind, limit, retry ms, too large (0/1), tokens remaining (of a request too large: what
# the window has left, else 0)}.
ADMIT = COMMON + r"""
local prefix, now, rid, tokens = ARGV[1], clock(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local day, day_end, lease_ttl = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local fixed, channels, spare = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10] == '1'
local need = math.max(tokens, 1)
finish_from(prefix, now, 11 + (fixed + channels) * 5)

local function scope(i)
  local at = 11 + i * 5
  return ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
end

local function tighter(u, limit, remaining, reset)
  if u == nil or remaining < u[2] or (remaining == u[2] and limit < u[1]) then
    return {limit, math.max(remaining, 0), math.max(reset, 0)}
  end
  return u
end

-- nil and the usage when the scope has room, else kind, limit, retry ms, too large (and then what is left)
local function check(i, usage)
  local name, rpm, tpm, conc, rpd = scope(i)
  local base = prefix .. name
  if rpm > 0 then
    local k = base .. ':r'
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now - WINDOW)
    local n = redis.call('ZCARD', k)
    if n >= rpm then
      local leaving = redis.call('ZRANGE', k, n - rpm, n - rpm, 'WITHSCORES')
      return 'rpm', rpm, tonumber(leaving[2]) + WINDOW - now, 0
    end
    local oldest = now
    if n > 0 then oldest = tonumber(redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')[2]) end
    usage[1] = tighter(usage[1], rpm, rpm - n - 1, oldest + WINDOW - now)
  end
  if tpm > 0 then
    local k, tk = base .. ':t', base .. ':tt'
    local gone = redis.call('ZRANGEBYSCORE', k, '-inf', now - WINDOW)
    local total
    if #gone > 0 then
      local freed = 0
      for _, m in ipairs(gone) do freed = freed + tokens_of(m) end
      redis.call('ZREMRANGEBYSCORE', k, '-inf', now - WINDOW)
      total = redis.call('DECRBY', tk, freed)
    else
      total = tonumber(redis.call('GET', tk) or '0')
    end
    if total < 0 then  -- the total outlived its log (never, while both expire together): count it again
      total = 0
      for _, m in ipairs(redis.call('ZRANGE', k, 0, -1)) do total = total + tokens_of(m) end
      redis.call('SET', tk, total, 'PX', WINDOW)
    end
    if need > tpm then return 'tpm', tpm, WINDOW, 1, math.max(tpm - total, 0) end
    if total + need > tpm then
      local entries = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
      local freed = 0
      for j = 1, #entries, 2 do
        freed = freed + tokens_of(entries[j])
        if total - freed + need <= tpm then return 'tpm', tpm, tonumber(entries[j + 1]) + WINDOW - now, 0 end
      end
      return 'tpm', tpm, WINDOW, 0
    end
    local oldest = now
    local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    if #first > 0 then oldest = tonumber(first[2]) end
    usage[2] = tighter(usage[2], tpm, tpm - total - need, oldest + WINDOW - now)
  end
  if conc > 0 then
    local k = base .. ':c'
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
    if redis.call('ZCARD', k) >= conc then return 'concurrency', conc, 1000, 0 end
  end
  if rpd > 0 then
    local n = tonumber(redis.call('GET', base .. ':d:' .. day) or '0')
    if n >= rpd then return 'rpd', rpd, day_end - now, 0 end
    usage[1] = tighter(usage[1], rpd, rpd - n - 1, day_end - now)
  end
  return nil
end

local function commit(i)
  local name, rpm, tpm, conc, rpd = scope(i)
  local base = prefix .. name
  if rpm > 0 then
    redis.call('ZADD', base .. ':r', now, rid)
    redis.call('PEXPIRE', base .. ':r', WINDOW)
  end
  if tpm > 0 then
    redis.call('ZADD', base .. ':t', now, rid .. ':' .. need)
    redis.call('INCRBY', base .. ':tt', need)
    redis.call('PEXPIRE', base .. ':t', WINDOW)
    redis.call('PEXPIRE', base .. ':tt', WINDOW)
  end
  if conc > 0 then
    redis.call('ZADD', base .. ':c', now + lease_ttl, rid)
    redis.call('PEXPIRE', base .. ':c', lease_ttl)
  end
  if rpd > 0 then
    local k = base .. ':d:' .. day
    redis.call('INCR', k)
    redis.call('PEXPIRE', k, math.max(day_end - now, 0) + WINDOW)
  end
end

local usage = {}
for i = 0, fixed - 1 do
  local kind, limit, retry, large, left = check(i, usage)
  if kind then return {0, i, kind, limit, retry, large, left or 0} end
end
local chosen = -1
if channels > 0 then
  local soonest = nil
  for i = fixed, fixed + channels - 1 do
    local tried = {usage[1], usage[2]}
    local kind, limit, retry, large = check(i, tried)
    if not kind then
      chosen, usage = i, tried
      break
    end
    if soonest == nil or retry < soonest[3] then soonest = {kind, limit, retry} end
  end
  if chosen < 0 then
    if not spare then return {0, -1, soonest[1], soonest[2], soonest[3], 0, 0} end
    chosen = fixed + channels
  end
end
for i = 0, fixed - 1 do commit(i) end
if chosen >= 0 and chosen < fixed + channels then commit(chosen) end
local r, t = usage[1] or {0, 0, 0}, usage[2] or {0, 0, 0}
local index = -1
if chosen >= 0 then index = chosen - fixed end
return {1, index, r[1], r[2], r[3], t[1], t[2], t[3]}
"""

# ARGV: prefix, now ('' = server time), then the requests that ended (finish_from). Several in one call: the
# relay sends the ends that no admission has carried within END_DELAY together.
FINISH = COMMON + r"""
finish_from(ARGV[1], clock(ARGV[2]), 3)
return 1
"""

# ARGV: prefix, now ('' = server time), lease ttl (ms), then pairs of scope key and request id.
# Keeps the leases of requests still running (a long stream) from lapsing; one that already lapsed stays gone.
RENEW = COMMON + r"""
local prefix, now, ttl = ARGV[1], clock(ARGV[2]), tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  local k = prefix .. ARGV[i] .. ':c'
  if redis.call('ZADD', k, 'XX', 'CH', now + ttl, ARGV[i + 1]) > 0 then redis.call('PEXPIRE', k, ttl) end
end
return 1
"""
