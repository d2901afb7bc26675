-- spin: a handler that keeps the CPU busy for data.seconds (default 0.5) and then answers.
local Spin = {}

function Spin:wait(clientId, data)
  local seconds = (type(data) == "table" and type(data.seconds) == "number") and data.seconds or 0.5
  local t = os.clock() + seconds
  while os.clock() < t do end
  return "done"
end

return Spin
