-- controllers/system.lua: the built-in `system` message type (docs/reference.md section 5): rooms,
-- presence and ping. The reply shapes are those of the seed framework, kept for its browser
-- clients. A client's join is checked by the room's canJoin option (moonwire.can_join); server
-- code's webSocketServer:joinRoom never is.
local core = require "moonwire.core"
local room_options = require "moonwire.room_options"
local can_join = require "moonwire.can_join"

-- system/presence lists at most this many members (count and users stay exact; the reply then
-- says truncated = true): 10 000 members would make a reply of about a megabyte.
local PRESENCE_LIMIT = 1000

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
  local options = room_options.match(name)
  if options and options.canJoin ~= nil then
    local ws = self.webSocketServer
    local refused = can_join.ask(options.canJoin, clientId, name, ws:getClient(clientId),
      self.config.limits.handlerTimeout)
    if refused then return { success = false, error = refused } end
  end
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

--- {"roomName": NAME} -> {"success":true,"data":{"roomName":NAME,"count":N,"users":U,"clients":[{"clientId",
--- "userId","joinedAt"}, ...]}} for a member of a room with presence; clients lists the first
--- PRESENCE_LIMIT joiners (oldest first) and data.truncated is true when there are more.
function System:presence(clientId, data)
  local name = room_name(data)
  if not name then return { success = false, error = "Room name is required" } end
  local options = room_options.match(name)
  if not (options and options.presence) then
    return { success = false, error = "Presence is not enabled for this room" }
  end
  local member = false
  for _, r in ipairs(core.client_rooms(clientId) or {}) do
    if r == name then member = true; break end
  end
  if not member then return { success = false, error = "Not in room" } end
  local p, err = self.webSocketServer:getPresence(name, { limit = PRESENCE_LIMIT })
  if not p then return { success = false, error = "Presence is unavailable: " .. tostring(err) } end
  p.roomName = name
  return { success = true, data = p }
end

--- -> {"pong": <server ms timestamp>}
function System:ping(clientId, data)
  return { pong = core.now_ms() }
end

return System
