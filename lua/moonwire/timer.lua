-- moonwire.timer: the `timer` binding. timer:every(seconds, fn) and timer:after(seconds, fn)
-- return a handle with :stop(); every run of fn is its own coroutine (it may use redis:call).
-- timer:sleep(seconds) pauses the calling coroutine without blocking the worker.
local core = require "moonwire.core"
local scheduler = require "moonwire.scheduler"

local Timer = {}
Timer.__index = Timer

local Handle = {}
Handle.__index = Handle

function Handle:stop()
  if self.id then
    core.timer_stop(self.id)
    self.id = nil
  end
end

function Timer.new()
  return setmetatable({}, Timer)
end

local function start(seconds, fn, repeat_, name)
  if type(seconds) ~= "number" or seconds < 0 then
    error("timer:" .. name .. ": seconds must be a number >= 0, got " .. tostring(seconds), 3)
  end
  if type(fn) ~= "function" then error("timer:" .. name .. ": fn must be a function", 3) end
  return setmetatable({ id = core.timer_start(seconds, repeat_, fn) }, Handle)
end

--- Runs fn every `seconds` seconds until :stop().
function Timer:every(seconds, fn) return start(seconds, fn, true, "every") end

--- Runs fn once after `seconds` seconds (unless :stop() comes first).
function Timer:after(seconds, fn) return start(seconds, fn, false, "after") end

--- Pauses the calling handler for `seconds` seconds; the worker keeps serving meanwhile.
function Timer:sleep(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("timer:sleep: seconds must be a number >= 0, got " .. tostring(seconds), 2)
  end
  scheduler.check("timer:sleep")
  local token = scheduler.next_token()
  core.timer_sleep(token, seconds)
  scheduler.wait(token)
end

return Timer
