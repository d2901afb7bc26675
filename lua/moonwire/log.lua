-- moonwire.log: the `log` binding. log:info("message", {key = value}) writes one line through
-- the runtime's logger (text or JSON, --log-level applies).
local core = require "moonwire.core"

local Log = {}
Log.__index = Log

for _, level in ipairs({ "debug", "info", "warn", "error" }) do
  Log[level] = function(self, message, fields)
    if type(self) ~= "table" then
      error("log:" .. level .. " must be called with ':' (log:" .. level .. "(message))", 2)
    end
    core.log(level, tostring(message), fields)
  end
end

function Log.new()
  return setmetatable({}, Log)
end

return Log
