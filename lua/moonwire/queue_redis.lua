-- moonwire.queue_redis: the queue's store when Redis is configured. Per queue:
--   {p}q:{name}            a stream; each entry has one field, "job" = the JSON job record
--   {p}q:{name}:delayed    a sorted set of records waiting for their time (score = ms, Redis clock)
--   {p}q:{name}:failed     a list of the last 1000 failed records (with their error)
-- and one consumer group, "moonwire", whose consumers are worker tags. A running job stays in
-- its worker's pending list until it is acknowledged and deleted, so a worker killed midway
-- leaves it there: the next poll of any worker sees that the owner's alive marker ({p}w:{tag},
-- see cluster.lua) is gone, claims the entry (XCLAIM) and puts it back in the stream. XAUTOCLAIM
-- also takes back entries idle far longer than any job may run. Every step that moves a job is
-- one Lua script, so a crash between two commands cannot lose it. Times come from Redis' clock
-- (TIME), so hosts need not agree on theirs.
local core = require "moonwire.core"
local json = require "moonwire.json"

local M = {}

local GROUP = "moonwire"
local MAX_LOST = 5 -- a job whose worker stopped this many times while running it is failed

local P, TAG, redis, TTL_MS

-- KEYS: stream, delayed; ARGV: record, delay ms
local SCRIPT_ADD = [[
if tonumber(ARGV[2]) > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
else
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[1])
end
return 1]]

-- One poll: moves due delayed jobs into the stream, takes back entries of dead consumers and
-- long-idle ones (putting them back into the stream, or failing those lost too often), reads up
-- to ARGV[4] new entries for this consumer and measures the depth.
-- A consumer is dead when its worker's alive marker is gone and it has not touched the stream
-- for as long (a live worker whose marker lapsed in a Redis outage is still polling).
-- KEYS: stream, delayed, failed; ARGV: group, consumer, prefix, count, min idle ms, max lost,
-- dead idle ms
-- Returns {depth, {id, record, id, record, ...} read, {record, ...} failed}
local SCRIPT_POLL = [[
local stream, delayed, failed = KEYS[1], KEYS[2], KEYS[3]
local group, me, prefix = ARGV[1], ARGV[2], ARGV[3]
local count, min_idle, max_lost = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local dead_idle = tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, rec in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('XADD', stream, '*', 'job', rec)
  redis.call('ZREM', delayed, rec)
end
local made = redis.pcall('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
local lost_out = {}
local function take_back(entries)
  for _, e in ipairs(entries) do
    local id, fields = e[1], e[2]
    if fields then
      local rec = nil
      for i = 1, #fields, 2 do if fields[i] == 'job' then rec = fields[i + 1] end end
      local ok, job = pcall(cjson.decode, rec or '')
      if ok and type(job) == 'table' then
        job.lost = (tonumber(job.lost) or 0) + 1
        if job.lost >= max_lost then
          job.error = 'the worker running this job stopped ' .. job.lost .. ' times'
          local out = cjson.encode(job)
          redis.call('LPUSH', failed, out)
          redis.call('LTRIM', failed, 0, 999)
          lost_out[#lost_out + 1] = out
        else
          redis.call('XADD', stream, '*', 'job', cjson.encode(job))
        end
      end
    end
    redis.call('XACK', stream, group, id)
    redis.call('XDEL', stream, id)
  end
end
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
  local name, pending, idle = nil, 0, 0
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1] end
  end
  if name and name ~= me and idle >= dead_idle and redis.call('EXISTS', prefix .. 'w:' .. name) == 0 then
    if pending > 0 then
      local ids = {}
      for _, p in ipairs(redis.call('XPENDING', stream, group, '-', '+', 100, name)) do ids[#ids + 1] = p[1] end
      if #ids > 0 then take_back(redis.call('XCLAIM', stream, group, me, 0, unpack(ids))) end
      pending = pending - #ids
    end
    if pending <= 0 then redis.call('XGROUP', 'DELCONSUMER', stream, group, name) end
  end
end
local auto = redis.call('XAUTOCLAIM', stream, group, me, min_idle, '0-0', 'COUNT', 20)
take_back(auto[2])
local read = {}
if count > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', count, 'STREAMS', stream, '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      local rec = nil
      for i = 1, #e[2], 2 do if e[2][i] == 'job' then rec = e[2][i + 1] end end
      if rec then read[#read + 1] = e[1]; read[#read + 1] = rec
      else redis.call('XACK', stream, group, e[1]); redis.call('XDEL', stream, e[1]) end
    end
  end
end
return {redis.call('XLEN', stream) + redis.call('ZCARD', delayed), read, lost_out}]]

-- KEYS: stream; ARGV: group, entry id
local SCRIPT_DONE = [[
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1]]

-- KEYS: stream, delayed; ARGV: group, entry id, new record, delay ms
local SCRIPT_RETRY = [[
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1]]

-- KEYS: stream, failed; ARGV: group, entry id, failed record
local SCRIPT_FAIL = [[
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, 999)
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1]]

local function k_stream(name) return P .. "q:" .. name end
local function k_delayed(name) return P .. "q:" .. name .. ":delayed" end
local function k_failed(name) return P .. "q:" .. name .. ":failed" end

function M.init(config, tag, redis_binding)
  P, TAG, redis = config.redis.prefix, tag, redis_binding
  TTL_MS = math.max(math.floor(config.cluster.heartbeat * 2000), 200) -- as cluster.lua's markers
  return M
end

M.kind = "redis"

function M.add(name, _, encoded, delay)
  return redis:call("EVAL", SCRIPT_ADD, 2, k_stream(name), k_delayed(name), encoded,
    string.format("%d", math.floor(delay * 1000)))
end

-- Returns records (each with _ref = its entry id), depth, failed records; or nil, err.
-- min_idle_ms: entries idle longer belong to nobody alive.
function M.claim(name, count, min_idle_ms)
  local r, err = redis:call("EVAL", SCRIPT_POLL, 3, k_stream(name), k_delayed(name), k_failed(name),
    GROUP, TAG, P, count, string.format("%d", min_idle_ms), MAX_LOST, TTL_MS)
  if not r then return nil, err end
  local records = {}
  local read = r[2] or {}
  for i = 1, #read, 2 do
    local ok, rec = pcall(json.decode, read[i + 1])
    if ok and type(rec) == "table" then
      rec._ref = read[i]
      records[#records + 1] = rec
    else -- unreadable: fail it loudly rather than loop on it
      core.log("error", "queue: a job record cannot be read; it is failed", { queue = name, entry = read[i] })
      core.job_count("failed")
      M.fail({ queue = name, _ref = read[i] }, read[i + 1])
    end
  end
  local lost = {}
  for _, raw in ipairs(r[3] or {}) do
    local ok, rec = pcall(json.decode, raw)
    if ok and type(rec) == "table" then lost[#lost + 1] = rec end
  end
  return records, tonumber(r[1]) or 0, lost
end

function M.complete(rec)
  return redis:call("EVAL", SCRIPT_DONE, 1, k_stream(rec.queue), GROUP, rec._ref)
end

function M.retry(rec, encoded, delay)
  return redis:call("EVAL", SCRIPT_RETRY, 2, k_stream(rec.queue), k_delayed(rec.queue), GROUP, rec._ref,
    encoded, string.format("%d", math.floor(delay * 1000)))
end

function M.fail(rec, encoded)
  return redis:call("EVAL", SCRIPT_FAIL, 2, k_stream(rec.queue), k_failed(rec.queue), GROUP, rec._ref, encoded)
end

return M
