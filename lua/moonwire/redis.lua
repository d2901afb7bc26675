-- moonwire.redis: the `redis` binding. redis:call(cmd, ...) sends the command on the worker's
-- shared connection and yields the calling coroutine until the reply arrives, so code reads
-- synchronously while the worker keeps serving everybody else. Failures return nil, err.
local core = require "moonwire.core"

local Redis = {}
Redis.__index = Redis

local scheduler = require "moonwire.scheduler"
local array = require("moonwire.json").array

-- Marks a reply's arrays (nested too) so they encode as JSON arrays, also when empty.
local function mark_arrays(v)
  if type(v) == "table" then
    array(v)
    for i = 1, #v do mark_arrays(v[i]) end
  end
  return v
end

-- Commands that block the connection or turn it into a subscriber: use app.lua subscribers.
local refused = {
  BLPOP = true, BRPOP = true, BRPOPLPUSH = true, BLMOVE = true, BLMPOP = true, BZPOPMIN = true,
  BZPOPMAX = true, BZMPOP = true, SUBSCRIBE = true, PSUBSCRIBE = true, SSUBSCRIBE = true,
  UNSUBSCRIBE = true, PUNSUBSCRIBE = true, SUNSUBSCRIBE = true, MONITOR = true, SYNC = true,
  PSYNC = true, WAIT = true, QUIT = true, RESET = true, SELECT = true,
  MULTI = true, EXEC = true, DISCARD = true, WATCH = true, UNWATCH = true, -- use EVAL for atomicity
}

function Redis.new()
  return setmetatable({}, Redis)
end

--- Runs a Redis command. Returns its reply (status/bulk -> string, integer -> number, nil ->
--- nil, array -> table with cjson.null for nil elements), or nil, err.
function Redis:call(cmd, ...)
  if type(self) ~= "table" then error("redis:call must be called with ':'", 2) end
  if type(cmd) ~= "string" then error("redis:call: the command must be a string, got " .. type(cmd), 2) end
  local name = cmd:upper()
  if refused[name] then
    error("redis:call: " .. name .. " blocks or subscribes the shared connection; use subscribers in app.lua", 2)
  end
  if name == "CLIENT" and type((...)) == "string" and (...):upper() == "REPLY" then
    error("redis:call: CLIENT REPLY would break the shared connection's reply order", 2)
  end
  scheduler.check("redis:call")
  if name == "XREAD" or name == "XREADGROUP" then
    for i = 1, select("#", ...) do
      local a = select(i, ...)
      if type(a) == "string" and a:upper() == "BLOCK" then
        error("redis:call: " .. name .. " with BLOCK would block the shared connection", 2)
      end
    end
  end
  local call = scheduler.next_token()
  local sent, err = core.redis_call(call, cmd, ...)
  if not sent then return nil, err end
  local reply, why = scheduler.wait(call)
  return mark_arrays(reply), why
end

--- PUBLISH channel message; returns the number of receivers, or nil, err.
function Redis:publish(channel, message)
  if type(channel) ~= "string" then error("redis:publish: channel must be a string", 2) end
  if type(message) ~= "string" then error("redis:publish: message must be a string", 2) end
  return self:call("PUBLISH", channel, message)
end

return Redis
