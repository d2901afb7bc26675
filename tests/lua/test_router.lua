-- The router: type/action -> controller method, the reply and error frames it earns (unknown
-- route, coded error, internal error), requestId echo, app.lua routes, and loading controllers.
-- Messages go in through hooks.on_message, as C sends them.
local t = require "harness"
local core = require "moonwire.core"
local json = require "moonwire.json"
local scheduler = require "moonwire.scheduler"
local router = require "moonwire.router"
local hooks_mod = require "moonwire.hooks"
local hooks = hooks_mod.hooks
local test, eq, truthy = t.test, t.eq, t.truthy

json.set_depth(32)

local Chat = {}
function Chat:echo(clientId, data) return { [clientId] = data or "none" } end
function Chat:nothing() end
function Chat:coded() error({ code = "bad_input", message = "Text is required" }) end
function Chat:coded_number() error({ code = 42 }) end
function Chat:boom() error("exploded") end
function Chat:slow() error("handler timed out (limits.handlerTimeout)") end
function Chat:unsendable() return { f = print } end
function Chat:_secret() return "hidden" end
function Chat:wait(clientId)
  scheduler.check("fake:op")
  local token = scheduler.next_token()
  Chat.waiting = { co = coroutine.running(), token = token }
  return { got = scheduler.wait(token) }
end
Chat.notAFunction = 5

local function setup(opts)
  opts = opts or {}
  router.setup({ dev = opts.dev, raw = opts.raw })
  router.install({ chat = Chat }, opts.routes or {}, opts.broken or {})
  hooks_mod.setup({ config = {}, events = {}, raw = opts.raw })
end

t.before = function() core.reset(); setup() end

-- Sends one message as C does; returns the status and the frames the client got.
local function message(msg, clientId)
  clientId = clientId or "c1"
  local text = type(msg) == "table" and json.encode(msg) or msg
  local first = #core.sent + 1
  local status = hooks.on_message(clientId, text, false)
  local frames = {}
  for i = first, #core.sent do
    eq(core.sent[i][1], clientId, "frames go to the sender")
    frames[#frames + 1] = core.sent[i][2]
  end
  return status, frames
end

local function one_frame(msg)
  local status, frames = message(msg)
  eq(#frames, 1, "one frame per message")
  return status, frames[1]
end

test("a message reaches controllers/<type>.lua method <action>", function()
  local status, frame = one_frame('{"type":"chat","action":"echo","data":{"n":1},"requestId":"r1"}')
  eq(status, scheduler.DONE)
  eq(frame, '{"type":"chat","action":"echo","response":{"c1":{"n":1}},"requestId":"r1"}')
end)

test("a method that returns nothing gets a reply without response", function()
  local _, frame = one_frame('{"type":"chat","action":"nothing","requestId":7}')
  eq(frame, '{"type":"chat","action":"nothing","requestId":7}')
  _, frame = one_frame('{"type":"chat","action":"nothing"}')
  eq(frame, '{"type":"chat","action":"nothing"}')
end)

test("data null arrives as nil", function()
  local _, frame = one_frame('{"type":"chat","action":"echo","data":null}')
  eq(frame, '{"type":"chat","action":"echo","response":{"c1":"none"}}')
end)

test("the requestId is echoed exactly, and only a string or number is one", function()
  local _, frame = one_frame('{"type":"chat","action":"nothing","requestId":9007199254740993}')
  eq(frame, '{"type":"chat","action":"nothing","requestId":9007199254740992}')
  _, frame = one_frame('{"type":"chat","action":"nothing","requestId":0.1}')
  eq(frame, '{"type":"chat","action":"nothing","requestId":0.10000000000000001}')
  _, frame = one_frame('{"type":"chat","action":"nothing","requestId":{"a":1}}')
  eq(frame, '{"type":"chat","action":"nothing"}')
end)

test("an unknown route gets not_found with type, action and requestId", function()
  local status, frame = one_frame('{"type":"nope","action":"x","requestId":3}')
  eq(status, scheduler.DONE)
  eq(frame, '{"type":"error","action":"message","data":{"error":"Unknown route","code":"not_found",' ..
            '"type":"nope","action":"x","requestId":3}}')
  _, frame = one_frame('{"type":"chat","action":"missing"}')
  truthy(frame:find('"code":"not_found"', 1, true), "a method that does not exist")
  _, frame = one_frame('{"type":"chat","action":"notAFunction"}')
  truthy(frame:find('"code":"not_found"', 1, true), "a field that is not a function")
  _, frame = one_frame('{"type":"chat","action":"_secret"}')
  truthy(frame:find('"code":"not_found"', 1, true), "_private methods are not routable")
end)

test("malformed messages get their own error frames", function()
  local cases = {
    { "{nope", "Failed to parse JSON" },
    { "[1,2]", "Invalid WebSocket message" },
    { '"text"', "Invalid WebSocket message" },
    { '{"action":"x"}', "Missing WebSocket message type" },
    { '{"type":"chat"}', "Missing WebSocket message action" },
    { '{"type":"chat","action":5}', "Missing WebSocket message action" },
  }
  for _, c in ipairs(cases) do
    local status, frame = one_frame(c[1])
    eq(status, scheduler.DONE)
    eq(frame, '{"type":"error","action":"message","data":{"error":"' .. c[2] .. '"}}', c[1])
  end
end)

test("the envelope is read as a decoded table would be", function()
  local cases = {
    { '{"typ\\u0065":"chat","action":"echo","data":1}', '{"type":"chat","action":"echo","response":{"c1":1}}' },
    { '{"type":"x","type":"chat","action":"echo","data":2}', '{"type":"chat","action":"echo","response":{"c1":2}}' },
    { '{"type":"chat","action":"echo","data":null,"requestId":"r"}',
      '{"type":"chat","action":"echo","response":{"c1":"none"},"requestId":"r"}' },
    { ' {"requestId":true,"x":[1,{"y":null}],"type":"chat","action":"echo"} ',
      '{"type":"chat","action":"echo","response":{"c1":"none"}}' },
    { '{"type":"chat","action":"echo","requestId":7,"requestId":[1]}', '{"type":"chat","action":"echo","response":{"c1":"none"}}' },
    { '{"type":"chat","action":"echo","data":' .. string.rep("[", 40) .. string.rep("]", 40) .. '}',
      '{"type":"error","action":"message","data":{"error":"Failed to parse JSON"}}' },
    { '{"type":"chat","action":"echo"} x', '{"type":"error","action":"message","data":{"error":"Failed to parse JSON"}}' },
    { '{"type":"chat","action":"echo","data":1e400}', '{"type":"error","action":"message","data":{"error":"Failed to parse JSON"}}' },
  }
  for _, c in ipairs(cases) do
    local status, frame = one_frame(c[1])
    eq(status, scheduler.DONE)
    eq(frame, c[2], c[1])
  end
end)

test("a coded error reaches the client as it is, and is not logged", function()
  local status, frame = one_frame('{"type":"chat","action":"coded","requestId":1}')
  eq(status, scheduler.DONE)
  eq(frame, '{"type":"error","action":"message","data":{"error":"Text is required","code":"bad_input",' ..
            '"type":"chat","action":"coded","requestId":1}}')
  _, frame = one_frame('{"type":"chat","action":"coded_number"}')
  eq(frame, '{"type":"error","action":"message","data":{"error":"Error","code":42,"type":"chat","action":"coded_number"}}')
  eq(#core.logs, 0)
end)

test("an internal error is logged with its traceback; the client learns only 'Internal error'", function()
  local status, frame = one_frame('{"type":"chat","action":"boom","requestId":2}')
  eq(status, scheduler.FAILED)
  eq(frame, '{"type":"error","action":"message","data":{"error":"Internal error","code":"internal",' ..
            '"type":"chat","action":"boom","requestId":2}}')
  eq(#core.logs, 1)
  eq(core.logs[1].message, "handler error")
  eq(core.logs[1].fields.route, "chat:boom")
  truthy(core.logs[1].fields.error:find("exploded", 1, true))
  truthy(core.logs[1].fields.traceback:find("stack traceback", 1, true))
end)

test("--dev adds the traceback to the internal error frame", function()
  setup({ dev = true })
  local _, frame = one_frame('{"type":"chat","action":"boom"}')
  local data = json.decode(frame).data
  eq(data.code, "internal")
  truthy(data.traceback and data.traceback:find("exploded", 1, true))
end)

test("a timed-out handler and an unsendable reply", function()
  local status, frame = one_frame('{"type":"chat","action":"slow"}')
  eq(status, scheduler.FAILED)
  eq(frame, '{"type":"error","action":"message","data":{"error":"Handler timed out","code":"timeout",' ..
            '"type":"chat","action":"slow"}}')
  status, frame = one_frame('{"type":"chat","action":"unsendable"}')
  eq(status, scheduler.FAILED)
  truthy(frame:find('"code":"internal"', 1, true))
  truthy(core.logs[#core.logs].fields.error:find("chat:unsendable returned a value that cannot be sent as JSON", 1, true))
end)

test("the handler's site is named to the watchdog", function()
  one_frame('{"type":"chat","action":"echo"}')
  local site = core.site_log[1]
  eq(site.label, "chat:echo")
  truthy(site.source:find("test_router.lua", 1, true))
  eq(site.line, debug.getinfo(Chat.echo, "S").linedefined)
end)

test("a handler that waits answers when the reply comes", function()
  local status, frames = message('{"type":"chat","action":"wait","requestId":4}', "c9")
  eq(status, scheduler.PENDING)
  eq(frames, {})
  core.site_stack = {} -- C pops the handler's site when on_message returns
  hooks.resume(Chat.waiting.co, Chat.waiting.token, "it")
  eq(core.sent[1][2], '{"type":"chat","action":"wait","response":{"got":"it"},"requestId":4}')
  eq(core.finished, { { "c9", false } })
end)

test("app.lua routes map a type/action to any controller method", function()
  local routes = router.build_routes({
    { type = "talk", action = "say", controller = "chat", method = "echo" },
    { type = "chat", action = "shout", method = "echo" },
  }, { chat = Chat })
  setup({ routes = routes })
  local _, frame = one_frame('{"type":"talk","action":"say","data":1}')
  eq(frame, '{"type":"talk","action":"say","response":{"c1":1}}')
  _, frame = one_frame('{"type":"chat","action":"shout","data":2}')
  eq(frame, '{"type":"chat","action":"shout","response":{"c1":2}}')
  t.raises(function() router.build_routes({ { type = "x" } }, {}) end,
    "config error: routes[1] needs string fields type and action")
  t.raises(function() router.build_routes({ { type = "x", action = "y" } }, {}) end,
    "config error: routes[1]: no controller named 'x' in controllers/")
  t.raises(function() router.build_routes({ { type = "chat", action = "y" } }, { chat = Chat }) end,
    "config error: routes[1]: controller 'chat' has no method 'y'")
end)

test("a controller that never loaded answers unavailable until it does", function()
  setup({ broken = { notes = "controllers/notes.lua:3: syntax error" } })
  local status, frame = one_frame('{"type":"notes","action":"add","requestId":1}')
  eq(status, scheduler.DONE)
  eq(frame, '{"type":"error","action":"message","data":{"error":"Controller does not load: ' ..
            'controllers/notes.lua:3: syntax error","code":"unavailable","type":"notes","action":"add","requestId":1}}')
  _, frame = one_frame('{"type":"notes","action":"_add"}')
  truthy(frame:find('"code":"not_found"', 1, true))
end)

test("installing new controllers forgets the resolved routes", function()
  one_frame('{"type":"chat","action":"echo"}')
  router.install({ chat = { echo = function() return "v2" end } }, {}, {})
  local _, frame = one_frame('{"type":"chat","action":"echo"}')
  eq(frame, '{"type":"chat","action":"echo","response":"v2"}')
end)

test("raw mode hands every message to app.lua raw and writes no frames of its own", function()
  local got
  setup({ raw = function(clientId, payload, isBinary) got = { clientId, payload, isBinary } end })
  local status, frames = message("not json at all")
  eq(status, scheduler.DONE)
  eq(frames, {})
  eq(got, { "c1", "not json at all", false })
  setup({ raw = function() error("raw failed") end })
  status, frames = message("x")
  eq(status, scheduler.FAILED)
  eq(frames, {})
  eq(core.logs[1].fields.route, "raw")
end)

test("controllers load from the runtime's folder, then the app's, backed by the bindings", function()
  local rt, app = t.tmpdir(), t.tmpdir()
  t.write(rt .. "/controllers/system.lua", "return { ping = function() return 'pong' end }\n")
  t.write(app .. "/controllers/notes.lua",
    "local N = {}\nfunction N:count() return self.counter end\nreturn N\n")
  t.write(app .. "/controllers/mt.lua",
    "return setmetatable({ own = 1 }, { __index = function() return nil end })\n")
  local dirs = router.controller_dirs({ runtime_dir = rt, app_dir = app })
  eq(dirs, { rt .. "/controllers", app .. "/controllers" })
  local ctrls = router.load_controllers(dirs, { counter = 3 })
  eq(ctrls.system.ping(), "pong")
  eq(ctrls.notes:count(), 3, "a method reaches the bindings through self")
  eq(rawget(ctrls.mt, "counter"), 3, "a controller with its own metatable gets the bindings copied in")
  t.write(app .. "/controllers/system.lua", "return { where = function() return 'app' end }\n")
  ctrls = router.load_controllers(dirs, {})
  eq(ctrls.system.ping, nil, "an app file replaces the built-in one")
  eq(ctrls.system.where(), "app")
end)

test("a controller that does not load names its file", function()
  local dir = t.tmpdir()
  t.write(dir .. "/syntax.lua", "return {\n")
  t.raises(function() router.load_controller(dir .. "/syntax.lua", "syntax") end, dir .. "/syntax.lua:")
  t.write(dir .. "/number.lua", "return 42\n")
  t.raises(function() router.load_controller(dir .. "/number.lua", "number") end,
    "a controller must return a table of methods, got number")
  t.write(dir .. "/raises.lua", "error('nope')\n")
  t.raises(function() router.load_controller(dir .. "/raises.lua", "raises") end, "error while loading")
end)
