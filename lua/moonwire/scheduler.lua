-- moonwire.scheduler: runs the worker's Lua code in coroutines and owns their whole life:
-- a pool of reusable coroutines for messages, spawn for events, timers, subscribers and jobs,
-- the wait of a binding on I/O (check, token, wait) and the resume (or cancel) that ends it,
-- and the handler sites the watchdog names. The bindings (redis, database, timer, queue) and
-- jobs.lua use this API; nothing else touches a suspended coroutine.
--
-- How a binding waits (in the spirit of OpenResty: check -> start the I/O -> yield):
--   scheduler.check("redis:call")        -- raises unless the caller may yield here
--   local token = scheduler.next_token() -- numbers this call
--   core.redis_call(token, ...)          -- C keeps the coroutine and the token
--   return scheduler.wait(token)         -- yields until scheduler.resume(co, token, ...)
-- resume(co, token, ...) resumes the coroutine only if it still waits for that very call, so a
-- late reply to a cancelled or abandoned call is dropped.
local core = require "moonwire.core"
local errors = require "moonwire.errors"

local co_create, co_resume, co_yield, co_status, running, isyieldable =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.status, coroutine.running,
  coroutine.isyieldable
local getinfo = debug.getinfo
local byte = string.byte
local capture, failure = errors.capture, errors.failure

local M = {}

-- What a message handler came to (hooks.on_message returns it to C: runtime/vm/mw_lvm.h).
local DONE, FAILED, PENDING = 0, 1, 2
M.DONE, M.FAILED, M.PENDING = DONE, FAILED, PENDING

-- ---- handler sites ------------------------------------------------------------------------
-- What the watchdog names when a handler costs the worker (runtime/vm/mw_lguard.c): a label
-- ("chat:send", "timer", "job mail") and the file:line where the handler's function is
-- defined, pushed when a handler starts or resumes and popped when it returns or yields (the
-- C side forgets them all when Lua returns to C). No watchdog in `moonwire check`: no-ops.
local site_push = core.site_push or function() end
local site_pop = core.site_pop or function() end
local site_cache = setmetatable({}, { __mode = "k" }) -- fn -> {source, line}: getinfo allocates
local sites = setmetatable({}, { __mode = "k" })      -- waiting coroutine -> {label, source, line}

-- The file and line where fn is defined ("?", 0 when it is not a Lua function).
local function site_of(fn)
  local s = site_cache[fn]
  if not s then
    local info = type(fn) == "function" and getinfo(fn, "S") or nil
    local src = info and info.source or "?"
    if byte(src, 1) == 64 then src = src:sub(2) end -- "@path": a file
    s = { src, info and info.linedefined or 0 }
    site_cache[fn] = s
  end
  return s[1], s[2]
end
M.site_of = site_of

-- The site of the message handler that ran last (run_message keeps it when it waits on I/O).
local running_site

-- Called by a message handler as it starts: names site {label, source, line} to the watchdog
-- (the C side pops it when Lua returns to it: this is the outermost handler).
function M.enter(site)
  site_push(site.label, site.source, site.line)
  running_site = site
end

-- enter, for a site C already pushed (the raw handler's: runtime/vm/mw_lvm.c).
function M.entered(site)
  running_site = site
end

-- ---- waiting and resuming -----------------------------------------------------------------

local waiting = setmetatable({}, { __mode = "k" }) -- coroutine -> the token of the call it waits for
local pending = {}                                 -- waiting message coroutine -> clientId
local local_only = setmetatable({}, { __mode = "k" }) -- subscriber handler coroutine -> {channel, payload, sends}
local n_local = 0 -- subscriber handlers started and not finished (one never finished keeps it above 0)
local set_local_handlers = core.local_handlers or function() end -- C's copy (sendRaw in C)
local last_token = 0

-- A new number for one call of a binding.
function M.next_token()
  last_token = last_token + 1
  return last_token
end

-- Raises unless the caller may yield here (inside a handler, not inside a C function).
function M.check(what)
  if not isyieldable() then
    error(what .. " waits for I/O and cannot run here (outside a handler, or inside a C function " ..
          "such as string.gsub, table.sort or a metamethod)", 3)
  end
end

-- Yields until resume(co, token, ...) and returns those values.
function M.wait(token)
  waiting[running()] = token
  return co_yield()
end

-- True when the running coroutine is a subscriber handler's: its webSocketServer sends reach
-- local clients only (every worker received the Redis message, so each client gets it once).
function M.local_only()
  -- no subscriber handler is running (the common case): answered without coroutine.running(),
  -- a call that ends the JIT's trace, on every send
  if n_local == 0 then return false end
  return local_only[running()] ~= nil
end

-- In a subscriber handler: a key naming this send of this handler run, the same on every worker
-- that received the same Redis message (its channel, its payload, the how-manieth send). A send
-- to a history room is stored once per key (moonwire.history), not once per worker.
function M.local_key()
  local ctx = local_only[running()]
  if not ctx then return nil end
  ctx[3] = ctx[3] + 1
  return tostring(ctx[1]) .. "\n" .. tostring(ctx[2]) .. "\n" .. ctx[3]
end

-- Message coroutines are reused: each runs handlers in a loop and yields FINISHED between
-- them, so a message costs no coroutine allocation. A handler that yields anything else is
-- waiting on I/O; the binding resumes it later through M.resume.
local FINISHED = {}
local idle, n_idle, MAX_IDLE = {}, 0, 256

local function message_loop(fn, a, b, c, d, e)
  while true do
    fn, a, b, c, d, e = co_yield(FINISHED, fn(a, b, c, d, e))
  end
end

local function release(co)
  if n_idle < MAX_IDLE then
    n_idle = n_idle + 1
    idle[n_idle] = co
  end
end

-- Runs fn(a, b, c, d, e) for clientId's message in a pooled coroutine; fn returns DONE or FAILED.
-- Returns DONE or FAILED when it finished, PENDING when it waits on I/O (resume calls
-- core.handler_finished(clientId, failed) when it ends), or nil, err when the runtime itself
-- failed.
function M.run_message(clientId, fn, a, b, c, d, e)
  local co
  if n_idle > 0 then
    co = idle[n_idle]
    idle[n_idle] = nil
    n_idle = n_idle - 1
  else
    co = co_create(message_loop)
  end
  local ok, mark, status = co_resume(co, fn, a, b, c, d, e)
  if not ok then return nil, mark end
  if mark == FINISHED then
    release(co)
    return status
  end
  pending[co] = clientId
  sites[co] = running_site
  return PENDING
end

-- C resumes message coroutines of its own pool (runtime/vm/mw_lco.c) running the same loop:
-- one that waits on I/O is handed over here, and resumed and released like run_message's.
M.message_loop, M.FINISHED = message_loop, FINISHED
function M.adopt(co, clientId)
  pending[co] = clientId
  sites[co] = running_site
end

-- Resumes a coroutine that waited on I/O; used by the yielding bindings and by C. call is the
-- number of the call the reply answers: a coroutine that is not waiting for it (it failed to
-- yield, moved on, or was cancelled) is left alone.
function M.resume(co, call, ...)
  if waiting[co] ~= call then return end
  waiting[co] = nil
  local site = sites[co]
  if site then site_push(site.label, site.source, site.line) end
  local ok, mark, status = co_resume(co, ...)
  if site then site_pop() end
  if ok and mark ~= FINISHED then return end -- waits again
  sites[co] = nil
  local clientId = pending[co]
  pending[co] = nil
  if ok then
    release(co)
  else
    core.log("error", "runtime error", { ["in"] = "resume", error = tostring(mark) })
  end
  if clientId then core.handler_finished(clientId, not ok or status == FAILED) end
end

-- Gives up on a coroutine that waits on I/O (a job past its timeout): the reply it waits for
-- will not resume it, and it is collected with whatever it holds. Only for spawned coroutines:
-- a message's coroutine must end, so that C hears its handler finished.
function M.cancel(co)
  waiting[co] = nil
end

-- True when co waits on I/O (for tests and assertions).
function M.is_waiting(co)
  return waiting[co] ~= nil
end

-- ---- spawning -----------------------------------------------------------------------------

-- Runs fn(...) in a new coroutine; errors are logged, never raised. what names it in logs and
-- to the watchdog; site_fn is the function the watchdog names (fn unless fn is a wrapper).
local function spawn_co(what, fn, mark_local, site_fn, ...)
  local co = co_create(function(...)
    local ok, err = xpcall(fn, capture, ...)
    if mark_local then n_local = n_local - 1; set_local_handlers(n_local) end
    if not ok then
      err = failure(err)
      if err.__internal then errors.log(what, err)
      else core.log("error", "handler error", { route = what, error = tostring(err.message), code = tostring(err.code) }) end
    end
  end)
  if mark_local then
    local_only[co] = { (...), (select(2, ...)), 0 }
    n_local = n_local + 1
    set_local_handlers(n_local)
  end
  local source, line = site_of(site_fn or fn)
  site_push(what, source, line)
  local ok, err = co_resume(co, ...)
  site_pop()
  if not ok then core.log("error", "handler error", { route = what, error = tostring(err) }) end
  if co_status(co) == "suspended" then sites[co] = { label = what, source = source, line = line } end
end

-- fn(...) in its own coroutine, for an event or a timer.
function M.spawn(what, fn, ...) return spawn_co(what, fn, false, nil, ...) end

-- spawn, naming site_fn (a job's function, not the wrapper around it) to the watchdog.
function M.spawn_at(what, site_fn, fn, ...) return spawn_co(what, fn, false, site_fn, ...) end

-- spawn for a subscriber handler: its sends reach local clients only (see local_only).
function M.spawn_local(what, fn, ...) return spawn_co(what, fn, true, nil, ...) end

-- Runs fn(...) at once, outside any coroutine, for a hook that must answer now
-- (onAuthenticate): returns its result, or nil, err after logging the error.
function M.call(what, fn, ...)
  site_push(what, site_of(fn))
  local ok, result = xpcall(fn, capture, ...)
  site_pop()
  if ok then return result end
  result = failure(result)
  if result.__internal then errors.log(what, result)
  else core.log("error", "handler error", { route = what, error = tostring(result.message) }) end
  return nil, result
end

return M
