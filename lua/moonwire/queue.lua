-- moonwire.queue: the `queue` binding. queue:add(name, data, {delay, attempts, backoff}) stores
-- a job durably and returns its id once the store has it, so an accepted job survives a crash
-- of this worker or of the whole server (at least once). The store is Redis (a stream per
-- queue, see queue_redis.lua) when Redis is configured, else a table in the database
-- (queue_sql.lua). Jobs run in the workers that have jobs/<name>.lua (see jobs.lua).
local core = require "moonwire.core"
local json = require "moonwire.json"
local scheduler = require "moonwire.scheduler"

local M = {}

local Queue = {}
Queue.__index = Queue

local DEFAULT_ATTEMPTS, DEFAULT_BACKOFF = 3, 1
M.DEFAULT_ATTEMPTS, M.DEFAULT_BACKOFF = DEFAULT_ATTEMPTS, DEFAULT_BACKOFF

-- Queue names become Redis keys, SQL values and metric labels: keep them plain.
function M.valid_name(name)
  return type(name) == "string" and #name >= 1 and #name <= 64 and name:find("^[%w_%.%-]+$") ~= nil
end

local MAX_SECONDS = 315360000 -- ten years: beyond it a delay is a mistake (and overflows ms)

local function check_number(opts, key, min, integer, max)
  local v = opts[key]
  if v == nil or v == json.null then return nil end
  if type(v) ~= "number" or v ~= v or v < min or v > max or (integer and v % 1 ~= 0) then
    error("queue:add: opts." .. key .. " must be " .. (integer and "an integer" or "a number") ..
          " from " .. min .. " to " .. max .. ", got " .. tostring(v), 3)
  end
  return v
end

-- A job record as stored: the job's own fields plus what the runner needs to retry it.
--   id, queue, data, attempt (the number of the next run, 1 first), attempts, backoff (s),
--   lost (runs cut short because their worker stopped)
function M.record(name, data, attempts, backoff)
  return {
    id = core.random_id(), queue = name, data = data, attempt = 1,
    attempts = attempts, backoff = backoff, lost = 0,
  }
end

function M.new(store)
  return setmetatable({ _store = store, _kick = nil }, Queue)
end

--- Adds a job to queue `name`; returns its id once it is stored, or nil, err when the store
--- is unreachable. opts: delay (s before the first run), attempts (runs before it fails, 3),
--- backoff (s before the first retry, doubling each retry, 1).
function Queue:add(name, data, opts)
  if getmetatable(self) ~= Queue then error("queue:add must be called with ':'", 2) end
  if not M.valid_name(name) then
    error("queue:add: the queue name must be 1-64 letters, digits, '_', '.' or '-', got " ..
          (type(name) == "string" and string.format("%q", name) or type(name)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("queue:add: opts must be a table", 2) end
  opts = opts or {}
  local delay = check_number(opts, "delay", 0, false, MAX_SECONDS) or 0
  local attempts = check_number(opts, "attempts", 1, true, 1000) or DEFAULT_ATTEMPTS
  local backoff = check_number(opts, "backoff", 0, false, MAX_SECONDS) or DEFAULT_BACKOFF
  if data == nil then data = json.null end
  local record = M.record(name, data, attempts, backoff)
  local ok, encoded = pcall(json.encode, record)
  if not ok then error("queue:add: data cannot be stored as JSON: " .. tostring(encoded), 2) end
  -- what cannot be read back (nested deeper than limits.jsonDepth) would be lost: refuse it now
  if not pcall(json.decode, encoded) then
    error("queue:add: data is nested too deeply to be read back (limits.jsonDepth)", 2)
  end
  scheduler.check("queue:add")
  local stored, err = self._store.add(name, record.id, encoded, delay)
  if not stored then return nil, "queue:add: " .. tostring(err) end
  core.job_count("added")
  if self._kick then self._kick(name, delay) end
  return record.id
end

return M
