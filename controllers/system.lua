-- controllers/system.lua: the built-in `system` message type (docs/reference.md section 5): rooms
-- and ping. The reply shapes are those of the seed framework, kept for its browser clients.
local core = require "moonwire.core"

local System = {}

local function iso8601(ms)
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(ms / 1000)) .. string.format(".%03dZ", ms % 1000)
end

local function room_name(data)
  local name = type(data) == "table" and data.roomName or nil
  if type(name) ~= "string" or name == "" then return nil end
  return name
end

--- {"roomName": NAME [, "since": {"offset": N, "epoch": E}]} ->
--- {"success":true,"message":"Successfully joined room: NAME","data":{"roomName":NAME,"joinedAt":ISO8601}}
--- In a history room data also carries "offset" and "epoch", and with since "recovered": the
--- missed messages were sent before this reply (true), or could not be (false).
function System:joinRoom(clientId, data)
  local name = room_name(data)
  if not name then return { success = false, error = "Room name is required" } end
  local since = type(data) == "table" and data.since or nil
  local ok, info = self.webSocketServer:joinRoom(clientId, name, since ~= nil and { since = since } or nil)
  if not ok then return { success = false, error = info } end
  local reply = { roomName = name, joinedAt = iso8601(core.now_ms()) }
  if type(info) == "table" then
    reply.offset, reply.epoch = info.offset, info.epoch
    if since ~= nil then reply.recovered = info.recovered end
  end
  return { success = true, message = "Successfully joined room: " .. name, data = reply }
end

--- {"roomName": NAME} -> {"success":true,"message":"Successfully left room: NAME","data":{"roomName":NAME,"leftAt":ISO8601}}
function System:leaveRoom(clientId, data)
  local name = room_name(data)
  if not name then return { success = false, error = "Room name is required" } end
  if not self.webSocketServer:leaveRoom(clientId, name) then
    return { success = false, error = "Not in room" }
  end
  return { success = true, message = "Successfully left room: " .. name,
           data = { roomName = name, leftAt = iso8601(core.now_ms()) } }
end

--- -> {"pong": <server ms timestamp>}
function System:ping(clientId, data)
  return { pong = core.now_ms() }
end

return System
