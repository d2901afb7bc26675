-- moonwire.router: from a message {type, action, data, requestId} to the controller method that
-- answers it, and the reply or error frame it earns. Loads controllers/*.lua (the runtime's,
-- then the app's), applies app.lua `routes`, and resolves type/action to controllers/<type>.lua
-- method <action> unless a route says otherwise; "_private" methods are never routable.
-- handle() is the body of one message's coroutine (the scheduler runs it).
local core = require "moonwire.core"
local json = require "moonwire.json"
local loader = require "moonwire.loader"
local frames = require "moonwire.frames"
local errors = require "moonwire.errors"
local scheduler = require "moonwire.scheduler"
local cluster = require "moonwire.cluster"

local null = json.null
local byte = string.byte
local capture, failure = errors.capture, errors.failure
local error_frame, encode_id = frames.error, frames.encode_id
local reply = core.reply -- encodes and sends the reply frame in C (runtime/vm/mw_reply.c)
local enter, entered, site_of = scheduler.enter, scheduler.entered, scheduler.site_of
local DONE, FAILED = scheduler.DONE, scheduler.FAILED
local MEMORY_MESSAGE = errors.MEMORY_MESSAGE

local M = {}

local state = {
  dev = false,        -- --dev: internal error frames carry the traceback
  controllers = {},   -- type -> controller table
  routes = {},        -- type -> action -> { controller = table, fn = function }
  broken = {},        -- type -> load error of a controller file that never loaded (reload)
  raw = nil,          -- app.lua raw = fn(clientId, payload, isBinary): no protocol at all
  raw_site = nil,     -- raw's site for the watchdog
}

-- ---- controllers --------------------------------------------------------------------------

-- Loads one controller file; base (the bindings) backs the methods it does not define.
-- Raises path:line on a file that does not compile, load or return a table.
function M.load_controller(path, name, base)
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

-- The folders controllers load from, in order: the runtime's, then the app's.
function M.controller_dirs(opts)
  return { opts.runtime_dir .. "/controllers", opts.app_dir .. "/controllers" }
end

-- Loads every controllers/*.lua of the runtime, then of the app (an app file of the same name
-- replaces the built-in one). Returns type -> controller.
function M.load_controllers(dirs, base)
  local out = {}
  for _, dir in ipairs(dirs) do
    for _, file in ipairs(core.list_dir(dir)) do
      local name = file:sub(1, -5)
      out[name] = M.load_controller(dir .. "/" .. file, name, base)
    end
  end
  return out
end

-- app.lua `routes` ({type, action, controller?, method?}) -> type -> action -> {controller, fn};
-- raises a config error naming the route that does not match the controllers.
function M.build_routes(list, controllers)
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

-- type -> action -> {controller, fn, prefix, label, source, line}; filled on the first
-- successful lookup only, so its size is bounded by the routes that exist. Cleared when the
-- controllers change.
local resolved = {}

-- Serves these controllers, routes and broken files (type -> load error) from now on.
function M.install(controllers, routes, broken)
  state.controllers, state.routes, state.broken = controllers, routes, broken or {}
  for k in pairs(resolved) do resolved[k] = nil end
end

-- The controllers served now (type -> controller).
function M.controllers() return state.controllers end

-- {dev = bool, raw = fn or nil}: set once per worker before the first message.
function M.setup(opts)
  state.dev = opts.dev and true or false
  state.raw = opts.raw
  if state.raw then
    state.raw_site = { label = "raw" }
    state.raw_site.source, state.raw_site.line = site_of(state.raw)
  end
end

-- The route of a new controller file that never compiled: its calls get an error frame until
-- it does. (Apart from resolve: a closure made there would keep the JIT from compiling resolve,
-- and with it every message's path.)
local function broken_route(t, a)
  local fn = function()
    error({ code = "unavailable", message = "Controller does not load: " .. state.broken[t] }, 0)
  end
  return { controller = {}, fn = fn, prefix = frames.reply_prefix(t, a),
           label = t .. ":" .. a, source = "controllers/" .. t .. ".lua (does not load)", line = 0 }
end

-- The route of type t, action a, or nil when there is none.
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
    if ctrl == nil and state.broken[t] and byte(a, 1) ~= 95 then return broken_route(t, a) end
    if ctrl == nil or byte(a, 1) == 95 then return nil end -- "_private" methods are not routable
    fn = rawget(ctrl, a)
    if type(fn) ~= "function" then return nil end
  end
  hit = { controller = ctrl, fn = fn, prefix = frames.reply_prefix(t, a), label = t .. ":" .. a }
  hit.source, hit.line = site_of(fn)
  if not by_type then by_type = {}; resolved[t] = by_type end
  by_type[a] = hit
  return hit
end
M.resolve = resolve

-- ---- one message --------------------------------------------------------------------------

-- The body of one message's coroutine: t, a, data, rid are the parts of its envelope, which C
-- decoded and checked (runtime/vm/mw_envelope.c: t and a are strings, data is nil for null, rid
-- a string, a number or nil). Calls the route's method and sends its reply or error frame.
-- Returns DONE or FAILED (an internal error).
function M.handle(clientId, t, a, data, rid)
  local route = resolve(t, a)
  if not route then
    core.send(clientId, error_frame("Unknown route", "not_found", t, a, encode_id(rid)))
    return DONE
  end
  enter(route)
  local ran, result = xpcall(route.fn, capture, route.controller, clientId, data)
  if not ran and result == MEMORY_MESSAGE then collectgarbage() end -- free what the handler built
  -- the cluster state this worker wrote (a join, updateClient, the client's own record) is in
  -- Redis before the reply: every worker's reads see it once the client has the reply
  if cluster.unsettled() then cluster.settle_for_reply() end
  if ran then
    local sent, why = reply(clientId, route.prefix, result, rid)
    if sent ~= nil then return DONE end
    result = capture(t .. ":" .. a .. " returned a value that cannot be sent as JSON: " .. tostring(why))
  end
  result = failure(result)
  rid = encode_id(rid)
  if not result.__internal then
    local m = result.message
    if m == nil or m == null then m = "Error" end
    core.send(clientId, error_frame(tostring(m), result.code, t, a, rid))
    return DONE
  end
  errors.log(t .. ":" .. a, result)
  core.send(clientId, errors.internal_frame(result, t, a, rid, state.dev))
  return FAILED
end

-- The body of one message's coroutine under app.lua `raw`: the app owns every frame.
function M.handle_raw(clientId, payload, isBinary, site_pushed)
  if site_pushed then entered(state.raw_site) else enter(state.raw_site) end
  local ran, err = xpcall(state.raw, capture, clientId, payload, isBinary)
  if ran then return DONE end
  if err == MEMORY_MESSAGE then collectgarbage() end -- free what it built, so the report can be made
  err = failure(err)
  if err.__internal then errors.log("raw", err) end
  return FAILED
end

-- Several raw messages of one client that arrived in one read (runtime/vm/mw_lvm.c batches
-- them): batch = {payload1, payload2, ...}, binary nil when all are text, else binary[i] ==
-- true for each binary one, n messages. Each runs as handle_raw would, with its own time limit
-- (core.guard_next); DONE, or FAILED when one of them raised. One xpcall covers the messages up
-- to the first that raises, and batch[0] says where to go on after one did: with the FFI calls
-- below, jit.v shows the loop in run_batch as one compiled trace.
local guard_next = core.guard_next or function() end
do -- through LuaJIT's FFI where it has one: a classic C function would end the compiled loop
  local has_ffi, ffi = pcall(require, "ffi")
  if has_ffi and core.guard_next_ffi then
    local next_c = ffi.cast("int (*)(void *)", core.guard_next_ffi)
    local guard, classic = ffi.cast("void *", core.guard), guard_next
    guard_next = function()
      if next_c(guard) ~= 0 then classic() end
    end
  end
end
local function run_batch(clientId, batch, n, binary, raw)
  for i = batch[0], n do
    if i > 1 then guard_next() end
    local payload, isBinary = batch[i], binary ~= nil and binary[i] == true
    batch[0] = i + 1 -- as late as can be: an error before message i starts must not skip it
    raw(clientId, payload, isBinary)
  end
end

function M.handle_raw_batch(clientId, site_pushed, batch, binary, n)
  if site_pushed then entered(state.raw_site) else enter(state.raw_site) end
  local status, raw = DONE, state.raw
  batch[0] = 1
  repeat
    local ran, err = xpcall(run_batch, capture, clientId, batch, n, binary, raw)
    if not ran then
      -- as in handle_raw; the next message gets its own memory verdict (guard_next)
      if err == MEMORY_MESSAGE then collectgarbage() end
      err = failure(err)
      if err.__internal then errors.log("raw", err) end
      status = FAILED
    end
  until ran or batch[0] > n
  return status
end

-- Under app.lua `raw`, raw's site for the watchdog ({label, source, line}), which C pushes
-- itself for every message (hooks.raw_site); nil otherwise.
function M.raw_site()
  return state.raw_site
end

-- The body for every message of this worker: handle, or handle_raw under app.lua `raw`.
function M.handler()
  return state.raw and M.handle_raw or M.handle
end

return M
