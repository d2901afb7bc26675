-- moonwire.jobs: runs the app's job processors. jobs/<queue>.lua returns either
--   function(job) ... end                                   (job = {id, queue, data, attempt})
-- or a table { process = function(job) ... end, concurrency = 1, timeout = 60 }.
-- Each worker polls the store (queue_redis.lua or queue_sql.lua) of every queue it has a
-- processor for, takes at most `concurrency` jobs of that queue at a time and runs each in its
-- own coroutine, so a job may use every binding and waits on I/O without blocking anything.
-- A returned value completes the job; an error, or running past `timeout` seconds, fails the
-- attempt: the job runs again after backoff * 2^(attempt-1) seconds until `attempts` runs
-- failed, then it is failed and logged. A job whose data has clientId sends that client
-- exactly one queue/completed or queue/failed message, wherever it is connected.
local core = require "moonwire.core"
local json = require "moonwire.json"
local queue = require "moonwire.queue"

local M = {}

local POLL_INTERVAL = 0.2 -- s between polls of a queue with free slots (and delay precision)
local DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT = 1, 60
local GRACE_MS = 30000    -- a job entry idle this long past its timeout has no live runner

local processors = {}     -- queue name -> {name, fn, concurrency, timeout, running, polling}
local names = {}          -- sorted queue names with a processor here
local store, bindings, spawn
local poll_timer
local store_down = false

-- ---- loading ------------------------------------------------------------------------------

local function load_processor(path, name)
  if not queue.valid_name(name) then
    error(path .. ": a job file name must be a queue name (letters, digits, '_', '.', '-')", 0)
  end
  local chunk, err = loadfile(path)
  if not chunk then error(err, 0) end
  local ok, def = pcall(chunk)
  if not ok then error(path .. ": error while loading: " .. tostring(def), 0) end
  if type(def) == "function" then def = { process = def } end
  if type(def) ~= "table" or type(def.process) ~= "function" then
    error(path .. ": a job file must return function(job) or {process = function(job), concurrency =, timeout =}", 0)
  end
  local c, t = def.concurrency or DEFAULT_CONCURRENCY, def.timeout or DEFAULT_TIMEOUT
  if type(c) ~= "number" or c < 1 or c % 1 ~= 0 then error(path .. ": concurrency must be an integer >= 1", 0) end
  if type(t) ~= "number" or t <= 0 then error(path .. ": timeout must be a number of seconds > 0", 0) end
  return { name = name, fn = def.process, concurrency = c, timeout = t, running = 0, polling = false }
end

-- Loads every jobs/*.lua of the app; raises file:line on the first that does not load.
function M.load(dir)
  local found = {}
  for _, file in ipairs(core.list_dir(dir)) do
    local name = file:sub(1, -5)
    found[name] = load_processor(dir .. "/" .. file, name)
  end
  return found
end

-- For a reload: every job file that loads, and the errors of those that do not.
-- Returns {processors = name -> processor, errors = {{name, error}}}.
function M.load_each(dir)
  local out = { processors = {}, errors = {} }
  for _, file in ipairs(core.list_dir(dir)) do
    local name = file:sub(1, -5)
    local ok, p = pcall(load_processor, dir .. "/" .. file, name)
    if ok then out.processors[name] = p
    else out.errors[#out.errors + 1] = { name = name, error = tostring(p) } end
  end
  return out
end

-- Replaces the processors (at start, and when jobs/ is reloaded); running jobs finish with the
-- code they started with. keep_failed: a queue whose new file did not load keeps its processor.
function M.set_processors(found, keep_failed, failed_names)
  local old = processors
  if keep_failed then
    for name, p in pairs(old) do
      if not found[name] and failed_names and failed_names[name] then found[name] = p end
    end
  end
  processors = found
  names = {}
  for name, p in pairs(found) do
    if old[name] and old[name] ~= p then
      p.running = old[name].running -- the jobs running now settle on the new processor (settle)
    end
    names[#names + 1] = name
  end
  table.sort(names)
end

-- ---- waiting --------------------------------------------------------------------------------

local function sleep(seconds) bindings.timer:sleep(seconds) end

-- Runs a store operation, retrying for a while when the store is unreachable: the job is safe
-- in the store either way (an unacknowledged job runs again), this only avoids running it twice.
local function persist(what, rec, fn, ...)
  local delay = 0.25
  for try = 1, 6 do
    local ok, err = fn(...)
    if ok then return true end
    if try == 6 then
      core.log("warn", "queue: could not record a job's outcome; it will run again", {
        queue = rec.queue, jobId = rec.id, step = what, error = tostring(err) })
      return false
    end
    sleep(delay)
    delay = math.min(delay * 2, 2)
  end
end

-- ---- running one job ----------------------------------------------------------------------

-- {"type":"queue","action":A,"data":{"jobId":..,"queue":..,"result"|"error":..}} in this key
-- order (DESIGN §5), to job.data.clientId when there is one.
local function notify(rec, action, key, value)
  local d = rec.data
  local clientId = type(d) == "table" and d.clientId or nil
  if type(clientId) ~= "string" then return end
  local encode = json.encode
  local head = '{"type":"queue","action":"' .. action .. '","data":{"jobId":' .. encode(rec.id) ..
               ',"queue":' .. encode(rec.queue)
  local ok, tail = true, "null"
  if value ~= nil then ok, tail = pcall(encode, value) end
  if not ok then
    core.log("warn", "queue: a job result cannot be sent as JSON; the client gets null", {
      queue = rec.queue, jobId = rec.id, error = tostring(tail) })
    tail = "null"
  end
  local frame = head .. ',"' .. key .. '":' .. tail .. "}}"
  local sent, err = pcall(bindings.webSocketServer.sendMessageToClient, bindings.webSocketServer, clientId, frame)
  if not sent then core.log("warn", "queue: could not notify the client", { clientId = clientId, error = tostring(err) }) end
end

-- The error a client is told: a coded error's message, or a raised string without the
-- "file:line: " position the log keeps (server paths are not the client's business).
local function error_text(e, for_client)
  if type(e) == "table" then
    if type(e.message) == "string" then e = e.message
    else
      local ok, s = pcall(json.encode, e)
      return ok and s or tostring(e)
    end
  end
  e = tostring(e)
  if for_client then e = e:gsub("^[^\n]-%.lua:%d+: ", "", 1) end
  return e
end

local STORED = { "id", "queue", "data", "attempt", "attempts", "backoff", "lost" }

local function stored(rec, extra)
  local out = extra or {}
  for _, k in ipairs(STORED) do out[k] = rec[k] end
  return json.encode(out)
end

local function fail_for_good(rec, err)
  local message = error_text(err)
  persist("fail", rec, store.fail, rec, stored(rec, { error = message }), message)
  core.job_count("failed")
  core.log("error", "job failed", { queue = rec.queue, jobId = rec.id, attempts = rec.attempt,
    error = message, traceback = rec.traceback })
  notify(rec, "failed", "error", error_text(err, true))
end

-- After an attempt ended (ok = it returned `result`, else `result` is its error).
local function settle(p, rec, ok, result)
  if rec.settled then return end
  rec.settled = true
  local current = processors[p.name] or p -- a reload may have replaced p
  current.running = current.running - 1
  if rec.timeout_timer then core.timer_stop(rec.timeout_timer); rec.timeout_timer = nil end
  if ok then
    persist("complete", rec, store.complete, rec)
    core.job_count("completed")
    notify(rec, "completed", "result", result)
  elseif rec.attempt < rec.attempts then
    local delay = rec.backoff * 2 ^ (rec.attempt - 1)
    core.log("warn", "job attempt failed; it will run again", { queue = rec.queue, jobId = rec.id,
      attempt = rec.attempt, attempts = rec.attempts, retryIn = delay, error = error_text(result),
      traceback = rec.traceback })
    rec.attempt = rec.attempt + 1
    persist("retry", rec, store.retry, rec, stored(rec), delay)
    core.job_count("retried")
  else
    fail_for_good(rec, result)
  end
  M.poll_soon(p.name)
end

-- xpcall handler: coded errors ({code, message}) as they are, anything else with its traceback
local function capture(e)
  if type(e) == "table" then return e end
  return { message = tostring(e), traceback = debug.traceback(tostring(e), 2) }
end

local function run(p, rec)
  p.running = p.running + 1
  local job = { id = rec.id, queue = rec.queue, data = rec.data, attempt = rec.attempt }
  if job.data == json.null then job.data = nil end
  rec.timeout_timer = core.timer_start(p.timeout, false, function()
    rec.timeout_timer = nil
    settle(p, rec, false, string.format("timed out after %gs", p.timeout))
  end)
  spawn("job " .. p.name, function()
    local ok, result = xpcall(p.fn, capture, job, bindings)
    if not ok then rec.traceback = result.traceback end
    settle(p, rec, ok, result)
  end)
end

-- ---- polling --------------------------------------------------------------------------------

local function poll(p)
  if p.polling or core.draining() then return end
  p.polling = true
  local free = p.concurrency - p.running
  local records, depth, lost = store.claim(p.name, math.max(free, 0),
    math.floor(p.timeout * 1000) + GRACE_MS)
  p.polling = false
  if not records then
    if not store_down then
      store_down = true
      core.log("warn", "queue: the job store is unreachable; jobs wait until it is back",
        { queue = p.name, error = tostring(depth) })
    end
    return
  end
  if store_down then
    store_down = false
    core.log("info", "queue: the job store is reachable again")
  end
  core.queue_depth(p.name, depth)
  for _, rec in ipairs(lost) do
    core.job_count("failed")
    core.log("error", "job failed", { queue = rec.queue, jobId = rec.id, error = rec.error })
    notify(rec, "failed", "error", rec.error)
  end
  for _, rec in ipairs(records) do
    rec.attempt = tonumber(rec.attempt) or 1
    rec.attempts = tonumber(rec.attempts) or queue.DEFAULT_ATTEMPTS
    rec.backoff = tonumber(rec.backoff) or queue.DEFAULT_BACKOFF
    rec.lost = tonumber(rec.lost) or 0
    rec.queue = p.name
    if core.draining() then break end -- left pending: another worker takes it back
    run(p, rec)
  end
  if #records > 0 and p.running < p.concurrency then M.poll_soon(p.name) end
end

-- Polls a queue now (in its own coroutine) unless a poll is under way.
function M.poll_soon(name)
  local p = processors[name]
  if p and not p.polling and p.running < p.concurrency then
    spawn("queue poll " .. name, poll, p)
  end
end

-- Every POLL_INTERVAL: a poll per queue, also when all its slots are busy (it still moves
-- delayed jobs, takes back those of dead workers and measures the depth).
local function tick()
  for _, name in ipairs(names) do
    local p = processors[name]
    if p and not p.polling then spawn("queue poll " .. name, poll, p) end
  end
end

-- Starts polling (from onServerStarted time on). The store is (queue_redis|queue_sql).init()ed.
function M.start(opts)
  store, bindings, spawn = opts.store, opts.bindings, opts.spawn
  if #names == 0 then return end
  spawn("queue start", function()
    if core.draining() then return end
    if store.recover then
      local ok, err = store.recover(names)
      if not ok then core.log("warn", "queue: could not take back interrupted jobs", { error = tostring(err) }) end
    end
    if core.draining() then return end -- stopped while taking jobs back
    poll_timer = bindings.timer:every(POLL_INTERVAL, tick)
  end)
end

-- The kick queue:add gives: a job due now on a queue this worker processes is taken at once.
function M.kick(name, delay)
  if delay == 0 and poll_timer then M.poll_soon(name) end
end

return M
