-- moonwire.server: the `webSocketServer` binding. Messages are encoded here once (a table) or
-- passed through (a JSON string); the C side frames them once for every recipient.
local core = require "moonwire.core"
local json = require "moonwire.json"

local Server = {}
Server.__index = Server

local encode = json.encode

local function payload(msg, fname)
  local t = type(msg)
  if t == "string" then return msg end
  if t == "table" then return encode(msg) end
  error(fname .. ": msg must be a table or a JSON string, got " .. t, 3)
end

local function check_id(id, fname)
  if type(id) ~= "string" then
    error(fname .. ": clientId must be a string, got " .. type(id), 3)
  end
end

function Server.new()
  return setmetatable({}, Server)
end

--- Sends msg to one client. Returns true when it was queued for a connected client.
function Server:sendMessageToClient(clientId, msg)
  check_id(clientId, "sendMessageToClient")
  return core.send(clientId, payload(msg, "sendMessageToClient"))
end

--- Sends msg to every connected client, except opts.excludeClientId. Returns the count.
function Server:sendMessageToAll(msg, opts)
  local exclude = opts and opts.excludeClientId
  if exclude ~= nil and type(exclude) ~= "string" then
    error("sendMessageToAll: excludeClientId must be a string, got " .. type(exclude), 2)
  end
  return core.broadcast(payload(msg, "sendMessageToAll"), exclude)
end

function Server:getClient(clientId)
  check_id(clientId, "getClient")
  local c = core.client_info(clientId)
  if c then
    c.rooms = c.rooms or {}
    c.metadata = c.metadata or {}
  end
  return c
end

function Server:clientCount()
  return core.client_count()
end

function Server:disconnectClient(clientId, code, reason)
  check_id(clientId, "disconnectClient")
  return core.disconnect(clientId, code or 1000, reason or "")
end

--- Raw mode: sends payload unchanged as a text (isBinary false) or binary frame.
function Server:sendRaw(clientId, data, isBinary)
  check_id(clientId, "sendRaw")
  if type(data) ~= "string" then error("sendRaw: payload must be a string, got " .. type(data), 2) end
  return core.send(clientId, data, isBinary and true or false)
end

return Server
