-- controllers/system.lua: the built-in `system` message type (DESIGN.md section 4).
-- joinRoom and leaveRoom arrive with rooms; ping answers with the server's clock.
local core = require "moonwire.core"

local System = {}

--- {"type":"system","action":"ping"} -> response {"pong": <server ms timestamp>}
function System:ping(clientId, data)
  return { pong = core.now_ms() }
end

return System
