-- runtime.start and runtime.check on a small app in a temporary folder, then the hooks C calls:
-- admit and on_connect (the auth greeting, events.onConnect), on_message, on_disconnect
-- (onLeaveRoom, onDisconnect), on_started (onServerStarted), reload and a global-write warning.
local t = require "harness"
local core = require "moonwire.core"
local json = require "moonwire.json"
local config = require "moonwire.config"
local runtime = require "moonwire.runtime"
local test, eq, truthy = t.test, t.eq, t.truthy

local here, root = ...
local app = t.tmpdir()
local rt = t.tmpdir()
t.write(rt .. "/controllers/system.lua", "return { ping = function() return 'pong' end }\n")
t.write(app .. "/controllers/notes.lua", [[
local N = {}
function N:version() return 'v1' end
function N:where(clientId) return self.worker.id end
return N
]])
t.write(app .. "/app.lua", [[
local function noop() end
return {
  events = { onConnect = noop, onLeaveRoom = noop, onDisconnect = noop, onServerStarted = noop },
  routes = { { type = "n", action = "v", controller = "notes", method = "version" } },
}
]])

local cfg = config.load(app, {})
local log = {} -- the events fired, with their arguments
for name in pairs(cfg.events) do
  cfg.events[name] = function(...) log[#log + 1] = { name, ... } end
end
local opts = { config = cfg, app_dir = app, runtime_dir = rt, dev = false,
               worker = { id = "w1", index = 1, count = 1, tag = "t1" } }

local hooks
test("start loads the controllers and returns the hooks C keeps", function()
  hooks = runtime.start(opts)
  for _, name in ipairs({ "admit", "on_message", "on_connect", "on_disconnect", "on_started", "resume",
                          "spawn", "on_redis_message", "on_redis_state", "on_bus_op", "reload" }) do
    eq(type(hooks[name]), "function", "hook " .. name)
  end
  eq(package.loaded["moonwire"].worker.id, "w1", "require('moonwire') gives the bindings")
end)

local function ask(type_, action)
  core.sent = {}
  eq(hooks.on_message("c1", json.encode({ type = type_, action = action }), false), 0)
  return core.sent[1][2]
end

test("messages reach the app's and the runtime's controllers and app.lua routes", function()
  eq(ask("notes", "version"), '{"type":"notes","action":"version","response":"v1"}')
  eq(ask("notes", "where"), '{"type":"notes","action":"where","response":"w1"}')
  eq(ask("system", "ping"), '{"type":"system","action":"ping","response":"pong"}')
  eq(ask("n", "v"), '{"type":"n","action":"v","response":"v1"}')
end)

test("admit then on_connect: the authenticated greeting and events.onConnect", function()
  core.sent = {}
  local request = { path = "/", query = "", headers = {}, remoteAddress = "127.0.0.1:5000" }
  local claims = json.encode({ sub = "ada", exp = core.now / 1000 + 60 })
  local status, reason, key = hooks.admit(request, claims, nil, true)
  eq({ status, reason, key }, { 101, nil, "ada" })
  hooks.on_connect("c1")
  eq(core.sent[1][2],
     '{"type":"auth","action":"authenticated","data":{"userId":"ada","message":"Authentication successful"}}')
  eq(#log, 1)
  eq({ log[1][1], log[1][2] }, { "onConnect", "c1" })
  -- without a token: no greeting
  core.sent = {}
  eq(hooks.admit(request, nil, nil, false), 101)
  hooks.on_connect("c2")
  eq(core.sent, {})
end)

test("on_disconnect fires onLeaveRoom for each room left, then onDisconnect", function()
  log = {}
  hooks.on_disconnect("c1", 1000, "bye", { "lobby", "games" })
  eq(log, { { "onLeaveRoom", "c1", "lobby" }, { "onLeaveRoom", "c1", "games" },
            { "onDisconnect", "c1", 1000, "bye" } })
end)

test("on_started starts the job runner and fires onServerStarted once", function()
  log = {}
  hooks.on_started()
  eq(#log, 1)
  eq(log[1][1], "onServerStarted")
  eq(log[1][2].worker.id, "w1", "it gets the bindings")
  hooks.on_redis_state(true)
  eq(#log, 1, "not again when Redis connects")
end)

test("reload serves a changed controller; a broken one keeps its previous version", function()
  t.write(app .. "/controllers/notes.lua", "return { version = function() return 'v2' end }\n")
  hooks.reload({})
  eq(ask("notes", "version"), '{"type":"notes","action":"version","response":"v2"}')
  eq(ask("n", "v"), '{"type":"n","action":"v","response":"v2"}', "app.lua routes follow")
  core.logs = {}
  t.write(app .. "/controllers/notes.lua", "return {\n")
  hooks.reload({})
  eq(ask("notes", "version"), '{"type":"notes","action":"version","response":"v2"}')
  local messages = {}
  for _, l in ipairs(core.logs) do messages[#messages + 1] = l.message end
  eq(messages, { "reload: a controller does not load; its previous version keeps serving",
                 "reloaded, with errors" })
  t.write(app .. "/controllers/fresh.lua", "return {\n")
  hooks.reload({})
  truthy(ask("fresh", "x"):find('"code":"unavailable"', 1, true), "a new broken file answers unavailable")
end)

test("reload asks for a restart when a runtime module keeping state changed", function()
  core.logs = {}
  hooks.reload({ rt .. "/lua/moonwire/scheduler.lua" })
  eq(core.logs[1].message, "reload: this runtime module keeps the worker's state; restart the server to use the change")
  eq(core.logs[1].fields.module, "moonwire.scheduler")
end)

test("a write to a global variable is reported once per place", function()
  core.logs = {}
  for _ = 1, 2 do mw_test_global = 1 end -- luacheck: ignore
  eq(#core.logs, 1)
  eq(core.logs[1].fields.name, "mw_test_global")
  rawset(_G, "mw_test_global", nil)
end)

test("check compiles the app and names a broken file", function()
  t.write(app .. "/controllers/notes.lua", "return { version = function() return 'v3' end }\n")
  os.remove(app .. "/controllers/fresh.lua")
  t.write(app .. "/lib/util/strings.lua", "return {}\n")
  local out, err, good = t.capture_output(function() return runtime.check(opts) end)
  eq(good, true, err)
  eq(out, "ok: app.lua and 3 Lua file(s) in " .. app .. " compile\n")
  t.write(app .. "/lib/bad.lua", "local = 1\n")
  out, err, good = t.capture_output(function() return runtime.check(opts) end)
  eq(good, false)
  truthy(err:find(app .. "/lib/bad.lua:1:", 1, true), err)
  out, err, good = t.capture_output(function() return runtime.check({ config = cfg, app_dir = app,
    runtime_dir = rt, quiet = true }) end)
  eq({ out, err, good }, { "", "", true }, "the quiet pre-check does not compile lib/")
end)
