-- rd: thin wrappers over the redis and timer bindings (tests/integration/test_redis.py).
-- Copied next to apps/basic's controllers by the tests (files=...).
local cjson = require "cjson"
local unpack = unpack or table.unpack

local Rd = {}

-- a JSON-safe description of a Lua value (tells nil, cjson.null, "" and tables apart)
local function describe(v)
  if v == nil then return { kind = "nil" } end
  if v == cjson.null then return { kind = "null" } end
  local t = type(v)
  if t == "table" then
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    local items = {}
    for i = 1, #v do items[i] = describe(v[i]) end
    return { kind = "table", n = n, len = #v, items = items }
  end
  return { kind = t, value = v }
end

-- data = {"CMD", args...}: {reply = describe(v), err = err, nret = select("#", ...)}
function Rd:call(clientId, data)
  local r = { self.redis:call(unpack(data)) }
  return { reply = describe(r[1]), err = r[2], errtype = type(r[2]) }
end

-- data = {"CMD", args...}: the reply itself (tables straight to JSON), no pcall
function Rd:raw(clientId, data)
  local v, err = self.redis:call(unpack(data))
  return { v = v, err = err }
end

-- data = {"CMD", args...}: does the binding raise?
function Rd:refused(clientId, data)
  local ok, e = pcall(self.redis.call, self.redis, unpack(data))
  return { raised = not ok, msg = (not ok) and tostring(e) or nil }
end

-- binary-safe arguments and bulk replies (an embedded NUL)
function Rd:binary(clientId, data)
  local value = "a\0b\255c"
  local ok = self.redis:call("SET", data.key, value)
  local v = self.redis:call("GET", data.key)
  local len = self.redis:call("STRLEN", data.key)
  return { ok = ok, same = (v == value), len = #v, strlen = len }
end

function Rd:publish(clientId, data)
  local n, err = self.redis:publish(data.channel, data.message)
  return { n = n, err = err, kind = type(n) }
end

-- data = {key, value, pings}: `pings` round trips, then RPUSH key value; returns value
function Rd:seq(clientId, data)
  for _ = 1, data.pings do
    local pong = self.redis:call("PING")
    assert(pong == "PONG", "PING answered " .. tostring(pong))
  end
  self.redis:call("RPUSH", data.key, data.value)
  return data.value
end

function Rd:nilcheck(clientId, data)
  local mw = require("moonwire")
  return { selfNil = self.redis == nil, moduleNil = mw.redis == nil,
           timer = type(self.timer), log = type(self.log) }
end

-- ------------------------------------------------------------------ timers
local T = { ticks = 0, fired = 0, redisTicks = 0, redisErrs = 0, after2 = 0, errTicks = 0 }
local handles = {}

-- data = {every, after, key}
function Rd:timerStart(clientId, data)
  local timer = self.timer
  handles.every = timer:every(data.every, function() T.ticks = T.ticks + 1 end)
  handles.after = timer:after(data.after, function() T.fired = T.fired + 1 end)
  -- an `after` stopped before it is due never runs
  handles.after2 = timer:after(data.after, function() T.after2 = T.after2 + 1 end)
  handles.after2:stop()
  -- a timer callback may call redis (its own coroutine)
  handles.redis = timer:every(data.every, function()
    local mw = require("moonwire")
    local n, err = mw.redis:call("INCR", data.key)
    if n then T.redisTicks = n else T.redisErrs = T.redisErrs + 1 end
  end)
  -- a timer that raises every time: logged and isolated
  handles.err = timer:every(data.every, function()
    T.errTicks = T.errTicks + 1
    error("timer exploded " .. T.errTicks)
  end)
  return { every = type(handles.every), after = type(handles.after) }
end

function Rd:timerStop(clientId, data)
  for _, name in ipairs(data) do
    handles[name]:stop()
  end
  return T
end

function Rd:timerRead(clientId, data)
  return T
end

return Rd
