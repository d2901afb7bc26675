-- rooms: thin wrappers over the webSocketServer room / client bindings (tests/integration/test_rooms.py).
-- Multiple return values are packed into tables so the test sees both.
local cjson = require "cjson"

local Rooms = {}

local function arg(v)
  if v == cjson.null then return nil end
  return v
end

local function target(clientId, data)
  if type(data) == "table" and arg(data.id) ~= nil then return data.id end
  return clientId
end

function Rooms:join(clientId, data)
  local ok, reason = self.webSocketServer:joinRoom(target(clientId, data), data.room)
  return { ok = ok, reason = reason }
end

function Rooms:leave(clientId, data)
  return { ok = self.webSocketServer:leaveRoom(target(clientId, data), data.room) }
end

function Rooms:leaveAll(clientId, data)
  return { n = self.webSocketServer:leaveAllRooms(target(clientId, data)) }
end

function Rooms:members(clientId, data)
  return { clients = self.webSocketServer:getRoomClients(data.room) }
end

function Rooms:list(clientId, data)
  return { rooms = self.webSocketServer:getRooms() }
end

-- data = {room, payload, exclude = true (the caller) | clientId | nil}
function Rooms:send(clientId, data)
  local opts
  if data.exclude == true then
    opts = { excludeClientId = clientId }
  elseif type(data.exclude) == "string" then
    opts = { excludeClientId = data.exclude }
  end
  local n = self.webSocketServer:sendMessageToRoom(data.room,
    { type = "room", action = "message", data = { room = data.room, payload = arg(data.payload), from = clientId } }, opts)
  return { n = n }
end

function Rooms:get(clientId, data)
  local c = self.webSocketServer:getClient(target(clientId, data))
  if c == nil then return { found = false } end
  return { found = true, client = c }
end

-- data = {key, value, remove = true -> value nil, id}
function Rooms:update(clientId, data)
  local value = arg(data.value)
  if data.remove then value = nil end
  return { ok = self.webSocketServer:updateClient(target(clientId, data), data.key, value) }
end

function Rooms:kick(clientId, data)
  return { ok = self.webSocketServer:disconnectClient(data.id, arg(data.code), arg(data.reason)) }
end

function Rooms:stats(clientId, data)
  return self.webSocketServer:stats()
end

-- misuse of a binding raises (a non-string clientId)
function Rooms:misuse(clientId, data)
  local ok = pcall(function() return self.webSocketServer:joinRoom(42, "r") end)
  return { raised = not ok }
end

return Rooms
