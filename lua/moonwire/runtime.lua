-- moonwire.runtime: the Lua half of a worker. Loads the controllers, routes each message
-- {type, action, data, requestId} to controllers/<type>.lua method <action> in its own
-- coroutine, and writes the replies and error frames of the wire protocol (docs/reference.md)
-- with a fixed key order, so they are byte-for-byte predictable.
local core = require "moonwire.core"
local json = require "moonwire.json"
local loader = require "moonwire.loader"

local encode, decode, null = json.encode, json.decode, json.null
local co_create, co_resume, co_yield =
  coroutine.create, coroutine.resume, coroutine.yield
local traceback = debug.traceback
local byte, find, format = string.byte, string.find, string.format
local huge = math.huge
local concat = table.concat

local M = {}

local DONE, FAILED, PENDING = 0, 1, 2

-- ---- handler sites ------------------------------------------------------------------------
-- What the watchdog names when a handler costs the worker (runtime/mw_lguard.c): a label
-- ("chat:send", "timer", "job mail") and the file:line where the handler's function is
-- defined, pushed when a handler starts or resumes and popped when it returns or yields (the
-- C side forgets them all when Lua returns to C). No watchdog in `moonwire check`: no-ops.
local site_push = core.site_push or function() end
local site_pop = core.site_pop or function() end
local getinfo, co_status = debug.getinfo, coroutine.status
local site_cache = setmetatable({}, { __mode = "k" }) -- fn -> {source, line}: getinfo allocates
local sites = setmetatable({}, { __mode = "k" })      -- waiting coroutine -> {label, source, line}

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

local state = {
  dev = false,
  controllers = {},   -- type -> controller table
  routes = {},        -- type -> action -> { controller = table, fn = function }
  broken = {},        -- type -> load error of a controller file that never loaded (reload)
  events = {},
  raw = nil,
  pending = {},       -- suspended message coroutines -> clientId
  clients = {},       -- clientId -> {user = {userId, payload} or nil, metadata = {}}
  admitted_user = nil, -- handed from hooks.admit to the hooks.on_connect that follows it
}

-- ---- wire frames --------------------------------------------------------------------------

-- A requestId is echoed exactly: integers up to 2^53 in full (cjson would keep 14 digits),
-- other numbers with 17 significant digits. NaN and infinities are not ids (nil).
local function encode_id(rid)
  if type(rid) == "string" then return encode(rid) end
  if rid ~= rid or rid == huge or rid == -huge then return nil end
  if rid % 1 == 0 and rid < 9007199254740992 and rid > -9007199254740992 then
    return format("%.0f", rid)
  end
  return format("%.17g", rid)
end

-- An error code is a string or a finite number; anything else is sent as its tostring.
local function encode_code(code)
  local t = type(code)
  if t == "string" then return encode(code) end
  if t == "number" and code == code and code ~= huge and code ~= -huge then return encode(code) end
  return encode(tostring(code))
end

-- rid is already encoded (encode_id)
local function error_frame(text, code, t, a, rid, tb)
  local parts = { '{"type":"error","action":"message","data":{"error":', encode(text) }
  if code ~= nil then parts[#parts + 1] = ',"code":' .. encode_code(code) end
  if t ~= nil then parts[#parts + 1] = ',"type":' .. encode(t) end
  if a ~= nil then parts[#parts + 1] = ',"action":' .. encode(a) end
  if rid ~= nil then parts[#parts + 1] = ',"requestId":' .. rid end
  if tb ~= nil then parts[#parts + 1] = ',"traceback":' .. encode(tb) end
  parts[#parts + 1] = "}}"
  return concat(parts)
end

-- prefix is '{"type":T,"action":A' (cached per route: see resolve); rid is already encoded
local function reply_with_prefix(prefix, response, rid)
  if response ~= nil then
    if rid ~= nil then
      return prefix .. ',"response":' .. encode(response) .. ',"requestId":' .. rid .. "}"
    end
    return prefix .. ',"response":' .. encode(response) .. "}"
  end
  if rid ~= nil then return prefix .. ',"requestId":' .. rid .. "}" end
  return prefix .. "}"
end

-- ---- errors -------------------------------------------------------------------------------

-- The limits' errors (see runtime/mw_lguard.h): the time hook's message, and LuaJIT's for a
-- failed allocation (the Lua memory cap), which reaches xpcall without its handler.
local TIMEOUT_MARK, MEMORY_MESSAGE = "handler timed out", "not enough memory"

-- xpcall handler: keeps coded errors ({code=, message=}) as they are, wraps anything else with
-- its traceback.
local function capture(e)
  if type(e) == "table" and e.code ~= nil and not e.__internal then return e end
  local text = type(e) == "string" and e or ("(error object: " .. tostring(e) .. ")")
  if type(e) == "table" and type(e.message) == "string" then text = e.message end
  return { __internal = true, message = text, traceback = traceback(text, 2) }
end

-- What a failed xpcall left: capture's table, or a bare string when capture itself could not
-- run (out of memory, an error inside the handler).
local function failure(result)
  if type(result) == "table" then return result end
  return { __internal = true, message = tostring(result) }
end

-- The error frame for an internal failure: a timeout and the memory cap get their own code.
local function internal_frame(err, t, a, rid)
  local m = err.message
  if type(m) == "string" and find(m, TIMEOUT_MARK, 1, true) then
    return error_frame("Handler timed out", "timeout", t, a, rid)
  end
  if m == MEMORY_MESSAGE or (type(m) == "string" and find(m, MEMORY_MESSAGE, 1, true)) then
    return error_frame("Out of memory", "out_of_memory", t, a, rid)
  end
  return error_frame("Internal error", "internal", t, a, rid, state.dev and err.traceback or nil)
end

local function log_handler_error(route, err)
  core.log("error", "handler error", { route = route, error = err.message, traceback = err.traceback })
end

-- ---- controllers --------------------------------------------------------------------------

local function load_controller(path, name, base)
  local chunk, err = loader.loadfile(path) -- --dev: interpreted, so the time limit can stop it
  if not chunk then error(err, 0) end
  local ok, ctrl = pcall(chunk)
  if not ok then error(path .. ": error while loading: " .. tostring(ctrl), 0) end
  if type(ctrl) ~= "table" then
    error(path .. ": a controller must return a table of methods, got " .. type(ctrl), 0)
  end
  if base then
    local mt = getmetatable(ctrl)
    if mt == nil then
      setmetatable(ctrl, { __index = base })
    else
      for k, v in pairs(base) do
        if rawget(ctrl, k) == nil then rawset(ctrl, k, v) end
      end
    end
  end
  return ctrl
end

local function controller_dirs(opts)
  return { opts.runtime_dir .. "/controllers", opts.app_dir .. "/controllers" }
end

-- Loads every controllers/*.lua of the runtime, then of the app (an app file of the same name
-- replaces the built-in one). Returns type -> controller.
local function load_controllers(dirs, base)
  local out = {}
  for _, dir in ipairs(dirs) do
    for _, file in ipairs(core.list_dir(dir)) do
      local name = file:sub(1, -5)
      out[name] = load_controller(dir .. "/" .. file, name, base)
    end
  end
  return out
end

local function build_routes(list, controllers)
  local routes = {}
  for i, r in ipairs(list or {}) do
    local where = "config error: routes[" .. i .. "]"
    if type(r) ~= "table" or type(r.type) ~= "string" or type(r.action) ~= "string" then
      error(where .. " needs string fields type and action", 0)
    end
    local cname = r.controller or r.type
    local ctrl = controllers[cname]
    if not ctrl then error(where .. ": no controller named '" .. tostring(cname) .. "' in controllers/", 0) end
    local mname = r.method or r.action
    local fn = ctrl[mname]
    if type(fn) ~= "function" then
      error(where .. ": controller '" .. cname .. "' has no method '" .. tostring(mname) .. "'", 0)
    end
    routes[r.type] = routes[r.type] or {}
    routes[r.type][r.action] = { controller = ctrl, fn = fn }
  end
  return routes
end

-- type -> action -> {controller, fn, prefix}; filled on the first successful lookup only,
-- so its size is bounded by the routes that exist. Cleared when controllers are reloaded.
local resolved = {}

local function resolve(t, a)
  local by_type = resolved[t]
  local hit = by_type and by_type[a]
  if hit then return hit end
  local ctrl, fn
  local over = state.routes[t]
  local r = over and over[a]
  if r then
    ctrl, fn = r.controller, r.fn
  else
    ctrl = state.controllers[t]
    if ctrl == nil and state.broken[t] and byte(a, 1) ~= 95 then
      -- a new controller file that never compiled: its calls get an error frame until it does
      ctrl, fn = {}, function()
        error({ code = "unavailable", message = "Controller does not load: " .. state.broken[t] }, 0)
      end
      return { controller = ctrl, fn = fn, prefix = '{"type":' .. encode(t) .. ',"action":' .. encode(a),
               label = t .. ":" .. a, source = "controllers/" .. t .. ".lua (does not load)", line = 0 }
    end
    if ctrl == nil or byte(a, 1) == 95 then return nil end -- "_private" methods are not routable
    fn = rawget(ctrl, a)
    if type(fn) ~= "function" then return nil end
  end
  hit = { controller = ctrl, fn = fn, prefix = '{"type":' .. encode(t) .. ',"action":' .. encode(a),
          label = t .. ":" .. a }
  hit.source, hit.line = site_of(fn)
  if not by_type then by_type = {}; resolved[t] = by_type end
  by_type[a] = hit
  return hit
end

-- ---- running code in coroutines -----------------------------------------------------------

-- Coroutines of subscriber handlers: their webSocketServer sends reach local clients only
-- (every worker received the Redis message, so each client gets it once).
local local_only = setmetatable({}, { __mode = "k" })

-- Runs fn(...) in a new coroutine for an event/timer; errors are logged, never raised.
-- site_fn: the function the watchdog names (fn itself unless fn is the runtime's wrapper).
local function spawn_co(what, fn, mark_local, site_fn, ...)
  local co = co_create(function(...)
    local ok, err = xpcall(fn, capture, ...)
    if not ok then
      err = failure(err)
      if err.__internal then log_handler_error(what, err)
      else core.log("error", "handler error", { route = what, error = tostring(err.message), code = tostring(err.code) }) end
    end
  end)
  if mark_local then local_only[co] = true end
  local source, line = site_of(site_fn or fn)
  site_push(what, source, line)
  local ok, err = co_resume(co, ...)
  site_pop()
  if not ok then core.log("error", "handler error", { route = what, error = tostring(err) }) end
  if co_status(co) == "suspended" then sites[co] = { label = what, source = source, line = line } end
end

local function spawn(what, fn, ...) return spawn_co(what, fn, false, nil, ...) end
M.spawn = spawn
-- spawn, naming site_fn (the job's function, not the runtime's wrapper around it) as the site.
local function spawn_at(what, site_fn, fn, ...) return spawn_co(what, fn, false, site_fn, ...) end

-- The site of the message handler that ran last (hooks.on_message keeps it when it waits on I/O).
local running_site

-- The body of one message's coroutine. Returns DONE or FAILED.
local function handle(clientId, text)
  local ok, msg = pcall(decode, text)
  if not ok then
    core.send(clientId, error_frame("Failed to parse JSON"))
    return DONE
  end
  if type(msg) ~= "table" or not find(text, "^%s*{") then
    core.send(clientId, error_frame("Invalid WebSocket message"))
    return DONE
  end
  local t, a, rid = msg.type, msg.action, msg.requestId
  if type(t) ~= "string" then
    core.send(clientId, error_frame("Missing WebSocket message type"))
    return DONE
  end
  if type(a) ~= "string" then
    core.send(clientId, error_frame("Missing WebSocket message action"))
    return DONE
  end
  local rt = type(rid)
  if rt == "string" or rt == "number" then rid = encode_id(rid) else rid = nil end
  local route = resolve(t, a)
  if not route then
    core.send(clientId, error_frame("Unknown route", "not_found", t, a, rid))
    return DONE
  end
  local data = msg.data
  if data == null then data = nil end
  -- popped by the C side when Lua returns to it (this is the outermost handler)
  site_push(route.label, route.source, route.line)
  running_site = route
  local ran, result = xpcall(route.fn, capture, route.controller, clientId, data)
  if not ran and result == MEMORY_MESSAGE then collectgarbage() end -- free what the handler built
  if ran then
    local encoded, frame = pcall(reply_with_prefix, route.prefix, result, rid)
    if encoded then
      core.send(clientId, frame)
      return DONE
    end
    result = capture(t .. ":" .. a .. " returned a value that cannot be sent as JSON: " .. tostring(frame))
  end
  result = failure(result)
  if not result.__internal then
    local m = result.message
    if m == nil or m == null then m = "Error" end
    core.send(clientId, error_frame(tostring(m), result.code, t, a, rid))
    return DONE
  end
  log_handler_error(t .. ":" .. a, result)
  core.send(clientId, internal_frame(result, t, a, rid))
  return FAILED
end

local raw_site -- set by M.start
local function handle_raw(clientId, payload, isBinary)
  site_push(raw_site.label, raw_site.source, raw_site.line)
  running_site = raw_site
  local ran, err = xpcall(state.raw, capture, clientId, payload, isBinary)
  if ran then return DONE end
  err = failure(err)
  if err.__internal then log_handler_error("raw", err) end
  return FAILED
end

-- Message coroutines are reused: each runs handlers in a loop and yields FINISHED between
-- them, so a message costs no coroutine allocation. A handler that yields anything else is
-- waiting on I/O; the binding resumes it later through M.resume.
local FINISHED = {}
local idle, n_idle, MAX_IDLE = {}, 0, 256

local function message_loop(fn, a, b, c)
  while true do
    fn, a, b, c = co_yield(FINISHED, fn(a, b, c))
  end
end

local function release(co)
  if n_idle < MAX_IDLE then
    n_idle = n_idle + 1
    idle[n_idle] = co
  end
end

-- Runs fn(a, b, c) in a pooled coroutine. Returns true, status when it finished; false, err
-- when the runtime itself failed; nil, co when the handler waits on I/O.
local function run_pooled(fn, a, b, c)
  local co
  if n_idle > 0 then
    co = idle[n_idle]
    idle[n_idle] = nil
    n_idle = n_idle - 1
  else
    co = co_create(message_loop)
  end
  local ok, mark, status = co_resume(co, fn, a, b, c)
  if not ok then return false, mark end
  if mark == FINISHED then
    release(co)
    return true, status
  end
  return nil, co
end

-- Resumes a message coroutine that waited on I/O; used by the yielding bindings. call is the
-- number of the call the reply answers: a coroutine that is not waiting for it (it failed to
-- yield, or moved on) is left alone.
function M.resume(co, call, ...)
  local waiting = require("moonwire.await").waiting
  if waiting[co] ~= call then return end
  waiting[co] = nil
  local site = sites[co]
  if site then site_push(site.label, site.source, site.line) end
  local ok, mark, status = co_resume(co, ...)
  if site then site_pop() end
  if ok and mark ~= FINISHED then return end -- waits again
  sites[co] = nil
  local clientId = state.pending[co]
  state.pending[co] = nil
  if ok then
    release(co)
  else
    core.log("error", "runtime error", { ["in"] = "resume", error = tostring(mark) })
  end
  if clientId then core.handler_finished(clientId, not ok or status == FAILED) end
end

-- ---- hooks called from C ------------------------------------------------------------------

local hooks = {}
local started, run_started = false, nil -- see hooks.on_started

-- Calls events[name](...) in its own coroutine when the app defined it.
local function fire(name, ...)
  local fn = state.events[name]
  if fn then spawn("events." .. name, fn, ...) end
end

-- Runs a hook that must answer at once (onAuthenticate): no coroutine, errors logged.
local function run_now(fn, ...)
  site_push("events.onAuthenticate", site_of(fn))
  local ok, result = xpcall(fn, capture, ...)
  site_pop()
  if ok then return result end
  result = failure(result)
  if result.__internal then log_handler_error("events.onAuthenticate", result)
  else core.log("error", "handler error", { route = "events.onAuthenticate", error = tostring(result.message) }) end
  return nil, result
end

-- Decides on an upgrade: returns status, reason, userKey, expiry ms (see moonwire.auth).
function hooks.admit(request, claims_json, token_error, has_token)
  local auth = require "moonwire.auth"
  -- behind a trusted proxy, the client's own address (config.trustedProxies)
  local forwarded = require("moonwire.proxy").client_address(state.config.trustedProxies,
    request.remoteAddress, request.headers["x-forwarded-for"])
  if forwarded then request.remoteAddress = forwarded end
  local status, reason, user, expires = auth.admit(state.config, request, claims_json, token_error,
    has_token, core.now_ms(), run_now)
  state.admitted_user = user
  return status, reason, user and auth.user_key(user.userId), expires, forwarded
end

local function authenticated_frame(userId)
  local id
  if type(userId) == "number" then id = format("%.0f", userId)
  elseif userId == nil then id = "null"
  else id = encode(userId) end
  return '{"type":"auth","action":"authenticated","data":{"userId":' .. id ..
         ',"message":"Authentication successful"}}'
end

function hooks.on_message(clientId, payload, isBinary)
  local finished, status = run_pooled(state.raw and handle_raw or handle, clientId, payload, isBinary)
  if finished then return status end
  if finished == nil then
    state.pending[status] = clientId
    sites[status] = running_site
    return PENDING
  end
  -- a bug in the runtime itself: never leave the client without an answer
  core.log("error", "runtime error", { ["in"] = "on_message", error = tostring(status) })
  if not state.raw then core.send(clientId, error_frame("Internal error", "internal")) end
  return FAILED
end

function hooks.on_connect(clientId)
  local user = state.admitted_user
  state.admitted_user = nil
  state.clients[clientId] = { user = user, metadata = {} }
  if user and not state.raw then core.send(clientId, authenticated_frame(user.userId)) end -- raw: the app owns every frame
  state.bindings.webSocketServer:_publishClient(clientId)
  if state.events.onConnect then
    fire("onConnect", clientId, state.bindings.webSocketServer:getClient(clientId))
  end
end

-- rooms_left: the rooms the C side removed the client from as it closed.
function hooks.on_disconnect(clientId, code, reason, rooms_left)
  local cluster = require "moonwire.cluster"
  for _, room in ipairs(rooms_left or {}) do cluster.room_left(clientId, room, #core.room_members(room) == 0) end
  cluster.remove_client(clientId)
  for _, room in ipairs(rooms_left or {}) do fire("onLeaveRoom", clientId, room) end
  fire("onDisconnect", clientId, code, reason)
  state.clients[clientId] = nil
end

hooks.resume = M.resume

-- From C (timers): what names it in logs; fn runs in its own coroutine.
function hooks.spawn(what, fn, ...)
  spawn(what, fn, ...)
end

-- app.lua subscribers: {channel = "name" or "pattern*", handler = fn(channel, payload)}
local function is_pattern(channel)
  return channel:find("[%*%?%[]") ~= nil
end

function hooks.on_redis_message(pattern, channel, payload)
  local list = state.subscribers[pattern or channel]
  for _, handler in ipairs(list or {}) do
    spawn_co("subscriber " .. (pattern or channel), handler, true, nil, channel, payload)
  end
end

local function register_subscribers(list)
  state.subscribers = {}
  for i, sub in ipairs(list or {}) do
    local where = "config error: subscribers[" .. i .. "]"
    if type(sub) ~= "table" or type(sub.channel) ~= "string" or sub.channel == "" then
      error(where .. " needs a channel (string)", 0)
    end
    if type(sub.handler) ~= "function" then error(where .. " needs a handler (function)", 0) end
    if not core.redis_configured() then
      error(where .. ": subscribers need Redis (start with --redis URL)", 0)
    end
    local key = sub.channel
    if not state.subscribers[key] then
      state.subscribers[key] = {}
      core.redis_subscribe(key, is_pattern(key))
    end
    table.insert(state.subscribers[key], sub.handler)
  end
end

-- Another worker asks for a webSocketServer call on one of our clients.
function hooks.on_bus_op(clientId, payload)
  local ok, call = pcall(decode, payload)
  if not ok or type(call) ~= "table" or type(call[1]) ~= "string" then
    core.log("warn", "bus: ignoring a malformed operation")
    return
  end
  local a, b = call[2], call[3]
  if a == null then a = nil end
  if b == null then b = nil end
  spawn("bus " .. call[1], function() state.bindings.webSocketServer:_busOp(clientId, call[1], a, b) end)
end

-- The command connection came back: write the local state again, then beat.
function hooks.on_redis_state(up)
  local cluster = require "moonwire.cluster"
  if not up then return end
  if cluster.enabled() then
    local ws = state.bindings.webSocketServer
    local infos = {}
    for id in pairs(state.clients) do
      local c = ws:_localClient(id)
      if c then c.lastActivity = nil; infos[#infos + 1] = c end
    end
    cluster.resync(infos)
    cluster.heartbeat(core.room_names())
  end
  if not started then spawn("redis connected", run_started) end -- the first connection
end

-- ---- reload (--dev file changes, SIGHUP) ----------------------------------------------------

-- Runtime modules that keep no state of their own and can be loaded again; the others hold the
-- worker's state (clients, pending calls, the cluster, the queue) and need a restart.
local RELOADABLE = { ["moonwire.auth"] = true, ["moonwire.log"] = true, ["moonwire.timer"] = true,
                     ["moonwire.redis"] = true, ["moonwire.queue"] = true }

local function reload_runtime_module(name)
  local b = state.bindings
  package.loaded[name] = nil
  local ok, mod = pcall(require, name)
  if not ok then
    core.log("error", "reload: the runtime module does not load; the previous version keeps serving",
      { module = name, error = tostring(mod) })
    return
  end
  -- the bindings are instances of these modules' classes: make new ones
  if name == "moonwire.log" then b.log = mod.new()
  elseif name == "moonwire.timer" then b.timer = mod.new()
  elseif name == "moonwire.redis" and b.redis then
    b.redis = mod.new()
    b.webSocketServer._ctx.redis = b.redis
  elseif name == "moonwire.queue" then
    local q = mod.new(state.queue_store)
    q._kick = b.queue._kick
    b.queue = q
  end
end

-- Forgets the app's lib/ modules, so the next require loads them again.
local function forget_lib_modules()
  local lib = state.opts.app_dir .. "/lib/?.lua;" .. state.opts.app_dir .. "/lib/?/init.lua"
  for name in pairs(package.loaded) do
    if type(name) == "string" and package.searchpath(name, lib) then package.loaded[name] = nil end
  end
end

-- Loads every controller file again; one that fails keeps its previous version (or, new,
-- answers with an error frame). Returns the number of files that failed.
local function reload_controllers()
  local failed = 0
  local controllers, broken = {}, {}
  for _, dir in ipairs(controller_dirs(state.opts)) do
    for _, file in ipairs(core.list_dir(dir)) do
      local name = file:sub(1, -5)
      local ok, ctrl = pcall(load_controller, dir .. "/" .. file, name, state.bindings)
      if ok then
        controllers[name], broken[name] = ctrl, nil
      else
        failed = failed + 1
        local old = state.controllers[name]
        core.log("error", old and "reload: a controller does not load; its previous version keeps serving"
                             or "reload: a new controller does not load; its calls get an error frame",
          { error = tostring(ctrl) })
        controllers[name] = controllers[name] or old
        if not controllers[name] then broken[name] = (tostring(ctrl):gsub("^.*/(controllers/[^/]+%.lua:)", "%1")) end
      end
    end
  end
  local ok, routes = pcall(build_routes, state.config.routes, controllers)
  if not ok then
    failed = failed + 1
    core.log("error", "reload: app.lua routes do not match the controllers; keeping the previous ones",
      { error = tostring(routes) })
    return failed
  end
  state.controllers, state.routes, state.broken = controllers, routes, broken
  for k in pairs(resolved) do resolved[k] = nil end
  return failed
end

local function reload_jobs()
  local jobs = require "moonwire.jobs"
  local ok, found = pcall(jobs.load_each, state.opts.app_dir .. "/jobs")
  if not ok then
    core.log("error", "reload: jobs/ cannot be read", { error = tostring(found) })
    return 1
  end
  local failed, names = 0, {}
  for _, e in ipairs(found.errors) do
    failed = failed + 1
    names[e.name] = true
    core.log("error", "reload: a job file does not load; its previous version keeps running",
      { queue = e.name, error = e.error })
  end
  jobs.set_processors(found.processors, names)
  return failed
end

-- changed: the files --dev saw change (empty for SIGHUP: reload everything of the app).
function hooks.reload(changed)
  local started_ms = core.now_ms()
  local runtime_lua = state.opts.runtime_dir .. "/lua/"
  for _, path in ipairs(changed or {}) do
    if path:sub(1, #runtime_lua) == runtime_lua then
      local name = path:sub(#runtime_lua + 1, -5):gsub("/", ".")
      if RELOADABLE[name] then
        reload_runtime_module(name)
      elseif package.loaded[name] ~= nil then
        core.log("warn", "reload: this runtime module keeps the worker's state; restart the server to use the change",
          { module = name })
      end
    end
  end
  forget_lib_modules()
  local failed = reload_controllers() + reload_jobs()
  core.log(failed > 0 and "warn" or "info", failed > 0 and "reloaded, with errors" or "reloaded", {
    files = #(changed or {}) > 0 and #changed or nil, failed = failed > 0 and failed or nil,
    ms = core.now_ms() - started_ms })
end

-- onServerStarted (and the job runner) start once Redis is connected, so their first calls
-- work; when Redis is configured but unreachable they start after redis.timeout anyway (their
-- calls then return nil, err like during any outage).
function run_started()
  if started then return end
  started = true
  require("moonwire.jobs").start({ store = state.queue_store, bindings = state.bindings, spawn = spawn,
                                   spawn_at = spawn_at })
  local fn = state.events.onServerStarted
  if fn then spawn("events.onServerStarted", fn, state.bindings) end
end

function hooks.on_started()
  if core.redis_configured() and not core.redis_connected() then
    core.timer_start(state.config.redis.timeout, false, run_started)
    return
  end
  run_started()
end

-- ---- start and check ----------------------------------------------------------------------


-- Reports a write to a global variable (a missing `local`, usually) once per name and place;
-- the write still happens: this is a warning, not a sandbox.
local function report_global_writes()
  local seen = {}
  setmetatable(_G, { __newindex = function(t, k, v)
    local level, info = 2, debug.getinfo(2, "Sl")
    while info and info.what == "C" do -- module() and other C functions: name the Lua caller
      level = level + 1
      info = debug.getinfo(level, "Sl")
    end
    local src = info and info.source or "?"
    local where = (src:sub(1, 1) == "@" and src:sub(2) or src) .. ":" .. tostring(info and info.currentline)
    local key = tostring(k) .. "@" .. where
    if not seen[key] then
      seen[key] = true
      core.log("warn", "a global variable was set (missing `local`?)", { name = tostring(k), where = where })
    end
    rawset(t, k, v)
  end })
end

-- Called once per worker with {config, app_dir, runtime_dir, dev, worker}. Returns the hooks.
function M.start(opts)
  local config = opts.config
  report_global_writes()
  state.opts = opts
  state.dev = opts.dev
  state.events = config.events or {}
  state.raw = config.raw
  loader.setup(opts) -- before anything of the app loads: --dev interprets it
  if state.raw then raw_site = { label = "raw" }; raw_site.source, raw_site.line = site_of(state.raw) end
  json.set_depth(config.limits.jsonDepth)

  local Server = require "moonwire.server"
  local Log = require "moonwire.log"
  local Redis = require "moonwire.redis"
  local Timer = require "moonwire.timer"
  local Database = require "moonwire.database"
  state.config = config
  local bindings = {
    webSocketServer = Server.new({ config = config, clients = state.clients, fire = fire,
                                   tag = opts.worker.tag,
                                   local_only = function() return local_only[coroutine.running()] == true end }),
    log = Log.new(),
    config = config,
    worker = opts.worker,
    redis = core.redis_configured() and Redis.new() or nil,
    timer = Timer.new(),
    database = Database.new(),
    clock = setmetatable({}, { __index = {
      --- Milliseconds since the epoch (os.time() has only seconds).
      now = function() return core.now_ms() end,
    } }),
  }
  local Queue = require "moonwire.queue"
  local jobs = require "moonwire.jobs"
  if bindings.redis then
    state.queue_store = require("moonwire.queue_redis").init(config, opts.worker.tag, bindings.redis)
  else
    state.queue_store = require("moonwire.queue_sql").init(config, opts.worker.tag, bindings.database)
  end
  bindings.queue = Queue.new(state.queue_store)
  bindings.queue._kick = jobs.kick
  state.bindings = bindings
  bindings.webSocketServer._ctx.redis = bindings.redis
  package.loaded["moonwire"] = bindings -- require("moonwire") from anywhere

  state.controllers = load_controllers(controller_dirs(opts), bindings)
  state.routes = build_routes(config.routes, state.controllers)
  register_subscribers(config.subscribers)
  jobs.set_processors(jobs.load(opts.app_dir .. "/jobs"))
  local cluster = require "moonwire.cluster"
  cluster.init(config, opts.worker.tag)
  if cluster.enabled() then
    bindings.timer:every(config.cluster.heartbeat, function() cluster.heartbeat(core.room_names()) end)
  end
  return hooks
end

-- The *.lua files under dir and its subfolders, in a stable order (each folder's files sorted,
-- then its subfolders sorted).
local function lua_files_under(dir, out)
  out = out or {}
  for _, file in ipairs(core.list_dir(dir)) do out[#out + 1] = dir .. "/" .. file end
  for _, sub in ipairs(core.list_dir(dir, true)) do lua_files_under(dir .. "/" .. sub, out) end
  return out
end

-- `moonwire check`: compiles and loads every controller and job, compiles every lib/ module;
-- prints file:line errors.
function M.check(opts)
  local config = opts.config
  package.loaded["moonwire"] = package.loaded["moonwire"] or { config = config }
  local good = true
  local count = 0
  -- lib/ is only compiled, not run (a module runs when something requires it), and only by
  -- `moonwire check`: serve's quiet pre-check must not refuse to start over a module nothing
  -- uses. First, so a broken module is named before the controllers that require it.
  if not opts.quiet then
    for _, path in ipairs(lua_files_under(opts.app_dir .. "/lib")) do
      local chunk, err = loadfile(path)
      count = count + 1
      if not chunk then
        io.stderr:write(err, "\n")
        good = false
      end
    end
  end
  local dirs = controller_dirs(opts)
  dirs[#dirs + 1] = opts.app_dir .. "/jobs"
  local controllers = {}
  for _, dir in ipairs(dirs) do
    for _, file in ipairs(core.list_dir(dir)) do
      local path = dir .. "/" .. file
      local chunk, err = loadfile(path)
      count = count + 1
      if not chunk then
        io.stderr:write(err, "\n")
        good = false
      elseif not dir:match("/jobs$") then
        local ok, ctrl = pcall(load_controller, path, file:sub(1, -5), {})
        if ok then controllers[file:sub(1, -5)] = ctrl
        else io.stderr:write(tostring(ctrl), "\n"); good = false end
      end
    end
  end
  if good then
    local ok, err = pcall(build_routes, config.routes, controllers)
    if not ok then io.stderr:write(tostring(err), "\n"); good = false end
  end
  if good and not opts.quiet then
    io.stdout:write(string.format("ok: app.lua and %d Lua file(s) in %s compile\n", count, opts.app_dir))
  end
  return good
end

return M
