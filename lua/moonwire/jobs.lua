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
local loader = require "moonwire.loader"
local frames = require "moonwire.frames"
local scheduler = require "moonwire.scheduler"

local spawn, spawn_at = scheduler.spawn, scheduler.spawn_at

local M = {}

local POLL_INTERVAL = 0.2 -- s between polls of a queue with free slots (and delay precision)
local RECOVER_INTERVAL = 5 -- s between looks for jobs whose runner is gone (SQL store)
local DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, MAX_TIMEOUT = 1, 60, 86400
local GRACE_MS = 30000    -- a job entry idle this long past its timeout has no live runner

-- queue name -> {name, fn, concurrency, timeout, running, polling}: one object per queue for the
-- life of the worker; a reload updates fn, concurrency and timeout in place, so the jobs and
-- polls under way keep counting on the same object.
local processors = {}
local names = {}          -- sorted queue names with a processor here
local store, bindings
local poll_timer
local store_down = false

-- ---- loading ------------------------------------------------------------------------------

local function load_processor(path, name)
  if not queue.valid_name(name) then
    error(path .. ": a job file name must be a queue name (letters, digits, '_', '.', '-')", 0)
  end
  local chunk, err = loader.loadfile(path) -- --dev: interpreted, so the time limit can stop it
  if not chunk then error(err, 0) end
  local ok, def = pcall(chunk)
  if not ok then error(path .. ": error while loading: " .. tostring(def), 0) end
  if type(def) == "function" then def = { process = def } end
  if type(def) ~= "table" or type(def.process) ~= "function" then
    error(path .. ": a job file must return function(job) or {process = function(job), concurrency =, timeout =}", 0)
  end
  local c, t = def.concurrency or DEFAULT_CONCURRENCY, def.timeout or DEFAULT_TIMEOUT
  if type(c) ~= "number" or c < 1 or c % 1 ~= 0 then error(path .. ": concurrency must be an integer >= 1", 0) end
  if type(t) ~= "number" or not (t > 0 and t <= MAX_TIMEOUT) then
    error(path .. ": timeout must be a number of seconds > 0 and <= " .. MAX_TIMEOUT, 0)
  end
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

-- Installs the processors (at start, and when jobs/ is reloaded); running jobs finish with the
-- code they started with. failed_names: queues whose new file did not load keep their processor.
function M.set_processors(found, failed_names)
  local next_set = {}
  for name, p in pairs(found) do
    local cur = processors[name]
    if cur then
      cur.fn, cur.concurrency, cur.timeout = p.fn, p.concurrency, p.timeout
      next_set[name] = cur
    else
      next_set[name] = p
    end
  end
  for name in pairs(failed_names or {}) do
    if not next_set[name] then next_set[name] = processors[name] end
  end
  processors = next_set
  names = {}
  for name in pairs(processors) do names[#names + 1] = name end
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

-- The queue/completed or queue/failed frame (frames.job), to job.data.clientId when there is one.
local function notify(rec, action, key, value)
  local d = rec.data
  local clientId = type(d) == "table" and d.clientId or nil
  if type(clientId) ~= "string" then return end
  local ok, tail = true, "null"
  if value ~= nil then ok, tail = pcall(json.encode, value) end
  if not ok then
    core.log("warn", "queue: a job result cannot be sent as JSON; the client gets null", {
      queue = rec.queue, jobId = rec.id, error = tostring(tail) })
    tail = "null"
  end
  local frame = frames.job(action, rec.id, rec.queue, key, tail)
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
  p.running = p.running - 1
  if rec.timeout_timer then core.timer_stop(rec.timeout_timer); rec.timeout_timer = nil end
  if ok then
    persist("complete", rec, store.complete, rec)
    core.job_count("completed")
    notify(rec, "completed", "result", result)
  elseif rec.attempt < rec.attempts then
    local delay = math.min(rec.backoff * 2 ^ (rec.attempt - 1), 315360000)
    core.log("warn", "job attempt failed; it will run again", { queue = rec.queue, jobId = rec.id,
      attempt = rec.attempt, attempts = rec.attempts, retryIn = delay, error = error_text(result),
      traceback = rec.traceback })
    rec.attempt = rec.attempt + 1
    persist("retry", rec, store.retry, rec, stored(rec), delay)
    core.job_count("retried")
  else
    fail_for_good(rec, result)
  end
  core.job_active(-1) -- recorded: a draining worker may stop now
  M.poll_soon(p.name)
end

-- xpcall handler: coded errors ({code, message}) as they are, anything else with its traceback
local function capture(e)
  if type(e) == "table" then return e end
  return { message = tostring(e), traceback = debug.traceback(tostring(e), 2) }
end

local function run(p, rec)
  p.running = p.running + 1
  core.job_active(1)
  local job = { id = rec.id, queue = rec.queue, data = rec.data, attempt = rec.attempt }
  if job.data == json.null then job.data = nil end
  local timeout = p.timeout
  rec.timeout_timer = core.timer_start(timeout, false, function()
    rec.timeout_timer = nil
    if rec.settled then return end
    -- cancelled: the coroutine waits on I/O (a running one would block this timer), and the
    -- reply it waits for will not resume it
    if rec.co then scheduler.cancel(rec.co) end
    settle(p, rec, false, string.format("timed out after %gs", timeout))
  end)
  spawn_at("job " .. p.name, p.fn, function() -- the watchdog names the job's function
    rec.co = coroutine.running()
    local ok, result = xpcall(p.fn, capture, job, bindings)
    if not ok then rec.traceback = result.traceback end
    settle(p, rec, ok, result)
  end)
end

-- ---- polling --------------------------------------------------------------------------------

-- Jobs the store failed because their worker died too often while running them.
function M.report_lost(lost)
  for _, rec in ipairs(lost or {}) do
    core.job_count("failed")
    core.log("error", "job failed", { queue = rec.queue, jobId = rec.id, error = rec.error })
    notify(rec, "failed", "error", rec.error)
  end
end

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
  M.report_lost(lost)
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

-- Takes back the jobs whose runner is gone (the SQL store; Redis does it in every poll):
-- at start those of any other owner, later those whose lease ran out. Retried until it works.
local recovered_once, last_recover_ms, recovering = false, 0, false

local function recover()
  if not store.recover or recovering or #names == 0 then return end
  recovering = true
  local ok, lost = store.recover(names, not recovered_once)
  recovering = false
  last_recover_ms = core.now_ms()
  if not ok then
    core.log("warn", "queue: could not take back interrupted jobs; trying again", { error = tostring(lost) })
    return
  end
  recovered_once = true
  M.report_lost(lost)
end

-- Every POLL_INTERVAL: a poll per queue, also when all its slots are busy (it still moves
-- delayed jobs, takes back those of dead workers and measures the depth).
local function tick()
  if core.draining() then return end
  if not recovered_once or core.now_ms() - last_recover_ms > RECOVER_INTERVAL * 1000 then recover() end
  for _, name in ipairs(names) do
    local p = processors[name]
    if p and not p.polling then spawn("queue poll " .. name, poll, p) end
  end
end

-- Starts polling (from onServerStarted time on); the poll timer runs even without processors,
-- so a jobs/ file added later (reload) is served. opts = {store, bindings}.
function M.start(opts)
  store, bindings = opts.store, opts.bindings
  if core.draining() then return end
  poll_timer = bindings.timer:every(POLL_INTERVAL, tick)
  if #names > 0 then spawn("queue start", recover) end
end

-- The kick queue:add gives: a job due now on a queue this worker processes is taken at once.
function M.kick(name, delay)
  if delay == 0 and poll_timer then M.poll_soon(name) end
end

return M
