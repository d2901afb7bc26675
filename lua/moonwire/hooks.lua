-- moonwire.hooks: the functions C calls into Lua (runtime/vm/mw_lvm.c keeps a reference to
-- each field of M.hooks: admit, on_invalid, on_runtime_error, on_message, on_connect, on_disconnect,
-- resume, spawn, on_redis_message, on_bus_op, on_redis_state, on_started, reload, on_api, adopt and
-- message_loop; raw_site, body and FINISHED are values), and the app's events they fire
-- (app.lua events.onConnect, onDisconnect, onJoinRoom, onLeaveRoom, onServerStarted,
-- onAuthenticate) and subscribers they run. Each hook returns to C at once: handlers run in
-- the scheduler's coroutines.
local core = require "moonwire.core"
local json = require "moonwire.json"
local frames = require "moonwire.frames"
local router = require "moonwire.router"
local scheduler = require "moonwire.scheduler"

local decode, null, envelope = json.decode, json.null, json.envelope
local envelope_error = frames.envelope_error
local spawn, run_message = scheduler.spawn, scheduler.run_message
local DONE, FAILED = scheduler.DONE, scheduler.FAILED

local M = {}
local hooks = {} -- the table runtime.start returns to C
hooks.message_loop, hooks.FINISHED, hooks.adopt = scheduler.message_loop, scheduler.FINISHED, scheduler.adopt
M.hooks = hooks

-- clientId -> {user = {userId, payload} or nil, metadata = {} or nil until set, request = the upgrade request
-- (kept only when onAuthenticate must see it again at auth/refresh)}: the local clients, shared
-- with the webSocketServer binding.
local clients = {}
M.clients = clients

local state = {
  config = nil,
  events = {},
  raw = nil,           -- app.lua raw: no protocol frames of ours
  body = nil,          -- the router's body for a message (router.handler())
  bindings = nil,
  queue_store = nil,
  subscribers = {},    -- channel or pattern -> {handler, ...}
  admitted_user = nil, -- handed from hooks.admit to the hooks.on_connect that follows it
  admitted_request = nil,
  reload = nil,        -- fn(changed): moonwire.reload's run
}

-- ctx = {config, events, raw, bindings, queue_store, reload}: once per worker, before C
-- calls any hook.
function M.setup(ctx)
  state.config, state.events, state.raw = ctx.config, ctx.events or {}, ctx.raw
  state.bindings, state.queue_store, state.reload = ctx.bindings, ctx.queue_store, ctx.reload
  state.body = router.handler()
  hooks.body = state.body -- C resumes its pooled coroutines with it (runtime/vm/mw_lco.c)
  hooks.raw_batch_body = router.handle_raw_batch -- ... and with this under app.lua raw
  hooks.raw_site = router.raw_site() -- read once by C, which pushes it for every raw message
end

-- Calls events[name](...) in its own coroutine when the app defined it.
local function fire(name, ...)
  local fn = state.events[name]
  if fn then spawn("events." .. name, fn, ...) end
end
M.fire = fire

-- Runs a hook that must answer at once (onAuthenticate): no coroutine, errors logged.
local function run_now(fn, ...)
  return scheduler.call("events.onAuthenticate", fn, ...)
end

-- Decides on an upgrade: returns status, reason, userKey, expiry ms (see moonwire.auth).
function hooks.admit(request, claims_json, token_error, has_token)
  local auth = require "moonwire.auth" -- required here: a reload may replace it
  -- behind a trusted proxy, the client's own address (config.trustedProxies)
  local forwarded = require("moonwire.proxy").client_address(state.config.trustedProxies,
    request.remoteAddress, request.headers["x-forwarded-for"])
  if forwarded then request.remoteAddress = forwarded end
  local status, reason, user, expires = auth.admit(state.config, request, claims_json, token_error,
    has_token, core.now_ms(), run_now)
  state.admitted_user = user
  -- onAuthenticate sees the original request again when the token is refreshed
  state.admitted_request = user and state.config.events and state.config.events.onAuthenticate and request or nil
  return status, reason, user and auth.user_key(user.userId), expires, forwarded
end

-- A message whose envelope was decoded and accepted: runs the router on its parts in a pooled
-- coroutine. Returns DONE, FAILED or PENDING. (The runtime's C side does the same with its own
-- pool, runtime/vm/mw_lco.c; this one serves on_message, for the Lua tests.)
function hooks.on_request(clientId, t, a, data, rid)
  local status, err = run_message(clientId, state.body, clientId, t, a, data, rid)
  if status then return status end
  -- a bug in the runtime itself: never leave the client without an answer
  core.log("error", "runtime error", { ["in"] = "on_message", error = tostring(err) })
  core.send(clientId, frames.error("Internal error", "internal"))
  return FAILED
end

-- The runtime itself failed on a message of clientId (C logged why): never leave the client
-- without an answer.
function hooks.on_runtime_error(clientId)
  core.send(clientId, frames.error("Internal error", "internal"))
  return FAILED
end

-- A message whose envelope C refused: kind says why (frames.envelope_error).
function hooks.on_invalid(clientId, kind)
  core.send(clientId, envelope_error(kind))
  return DONE
end

-- A message as the client sent it: under app.lua `raw` (C calls this one then, site_pushed true:
-- it pushed raw's site already), or the text of a protocol message, decoded here as C would
-- (the Lua tests send text).
function hooks.on_message(clientId, payload, isBinary, site_pushed)
  if not state.raw then
    local kind, t, a, data, rid = envelope(payload)
    if kind ~= 0 then return hooks.on_invalid(clientId, kind) end
    return hooks.on_request(clientId, t, a, data, rid)
  end
  local status, err = run_message(clientId, state.body, clientId, payload, isBinary, site_pushed)
  if status then return status end
  core.log("error", "runtime error", { ["in"] = "on_message", error = tostring(err) })
  return FAILED
end

function hooks.on_connect(clientId)
  local user = state.admitted_user
  state.admitted_user = nil
  -- fields only when set (metadata is made by the first setMetadata): an idle connection's
  -- record is one empty table, not three (memory per connection, issue 15)
  local rec = {}
  if user then rec.user = user end
  if state.admitted_request then rec.request = state.admitted_request end
  clients[clientId] = rec
  state.admitted_request = nil
  if user and not state.raw then core.send(clientId, frames.authenticated(user.userId)) end -- raw: the app owns every frame
  state.bindings.webSocketServer:_publishClient(clientId)
  if state.events.onConnect then
    fire("onConnect", clientId, state.bindings.webSocketServer:getClient(clientId))
  end
end

-- The client's token expires within auth.refreshBefore seconds (once per token).
function hooks.on_expiring(clientId)
  local c = clients[clientId]
  local exp = c and c.user and c.user.payload and c.user.payload.exp
  if type(exp) == "number" and not state.raw then core.send(clientId, frames.expiring(exp * 1000)) end
end

-- auth/refresh: the new token is checked exactly as at connect (C signature check, then
-- moonwire.auth with the original request and onAuthenticate), must name the same subject,
-- and then replaces the old one: the 4401 close moves, user.payload is the new claims. A
-- refusal raises a coded error and changes nothing. Returns the reply's response.
function M.refresh(clientId, token)
  local c = clients[clientId]
  if not c or not c.user then error({ code = "unauthorized", message = "Not authenticated" }, 0) end
  local auth = require "moonwire.auth"
  local claims_json, why
  if type(token) == "string" and token ~= "" then claims_json, why = core.jwt_verify(token)
  else why = "no token given" end
  local status, reason, user, expires = auth.admit(state.config, c.request or {}, claims_json, why, true,
    core.now_ms(), run_now)
  if status ~= 101 or not user then
    core.log("info", "token refresh refused", { clientId = clientId, reason = tostring(reason or why) })
    error({ code = "unauthorized", message = "Invalid token" }, 0)
  end
  if auth.user_key(user.userId) ~= auth.user_key(c.user.userId) then
    core.log("info", "token refresh refused", { clientId = clientId, reason = "another subject" })
    error({ code = "forbidden", message = "Token subject mismatch" }, 0)
  end
  core.token_expiry(clientId, expires)
  c.user.payload = user.payload
  state.bindings.webSocketServer:_publishClient(clientId)
  return { success = true, expiresAt = user.payload.exp * 1000 }
end

-- rooms_left: the rooms the C side removed the client from as it closed.
function hooks.on_disconnect(clientId, code, reason, rooms_left)
  local cluster = require "moonwire.cluster"
  local presence = require "moonwire.presence"
  for _, room in ipairs(rooms_left or {}) do
    cluster.room_left(clientId, room, #core.room_members(room) == 0)
    presence.left(clientId, room) -- leave events to the other members (joinLeave rooms)
  end
  cluster.remove_client(clientId)
  for _, room in ipairs(rooms_left or {}) do fire("onLeaveRoom", clientId, room) end
  fire("onDisconnect", clientId, code, reason)
  clients[clientId] = nil
end

-- An HTTP API call (POST /api/NAME): moonwire.api runs it in its own coroutine and answers.
function hooks.on_api(ticket, name, body)
  local api = require "moonwire.api"
  spawn("api " .. name:sub(1, 64), api.run, ticket, name, body)
end

-- From C: the reply to call number `call` of coroutine co arrived (see moonwire.scheduler).
hooks.resume = scheduler.resume

-- From C (timers): what names it in logs; fn runs in its own coroutine.
function hooks.spawn(what, fn, ...)
  spawn(what, fn, ...)
end

-- ---- app.lua subscribers: {channel = "name" or "pattern*", handler = fn(channel, payload)} --

local function is_pattern(channel)
  return channel:find("[%*%?%[]") ~= nil
end

function hooks.on_redis_message(pattern, channel, payload)
  local list = state.subscribers[pattern or channel]
  for _, handler in ipairs(list or {}) do
    scheduler.spawn_local("subscriber " .. (pattern or channel), handler, channel, payload)
  end
end

-- Checks app.lua `subscribers` and subscribes to their channels; raises a config error.
function M.subscribe(list)
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

-- ---- the cluster --------------------------------------------------------------------------

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

local started = false -- see run_started

-- onServerStarted (and the job runner) start once Redis is connected, so their first calls
-- work; when Redis is configured but unreachable they start after redis.timeout anyway (their
-- calls then return nil, err like during any outage).
local function run_started()
  if started then return end
  started = true
  require("moonwire.jobs").start({ store = state.queue_store, bindings = state.bindings })
  local fn = state.events.onServerStarted
  if fn then spawn("events.onServerStarted", fn, state.bindings) end
end

-- The command connection came back: write the local state again, then beat.
function hooks.on_redis_state(up)
  local cluster = require "moonwire.cluster"
  if not up then return end
  if cluster.enabled() then
    local ws = state.bindings.webSocketServer
    local infos = {}
    for id in pairs(clients) do
      local c = ws:_localClient(id)
      if c then c.lastActivity = nil; infos[#infos + 1] = c end
    end
    cluster.resync(infos)
    require("moonwire.presence").resync()
    cluster.heartbeat(core.room_names())
  end
  if not started then spawn("redis connected", run_started) end -- the first connection
end

function hooks.on_started()
  if core.redis_configured() and not core.redis_connected() then
    core.timer_start(state.config.redis.timeout, false, run_started)
    return
  end
  run_started()
end

-- changed: the files --dev saw change (empty for SIGHUP: reload everything of the app).
function hooks.reload(changed)
  state.reload(changed)
end

return M
