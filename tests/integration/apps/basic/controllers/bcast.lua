-- bcast: the webSocketServer delivery and lookup bindings.
local Bcast = {}

function Bcast:all(clientId, data)
  self.webSocketServer:sendMessageToAll({ type = "bcast", action = "all", data = data })
  return true
end

function Bcast:others(clientId, data)
  self.webSocketServer:sendMessageToAll({ type = "bcast", action = "others", data = data },
    { excludeClientId = clientId })
  return true
end

function Bcast:allString(clientId, data)
  self.webSocketServer:sendMessageToAll('{"type":"bcast","action":"string","data":"raw json"}')
  return true
end

function Bcast:to(clientId, data)
  self.webSocketServer:sendMessageToClient(data.target,
    { type = "bcast", action = "direct", data = { from = clientId, text = data.text } })
  return true
end

function Bcast:info(clientId, data)
  local id = clientId
  if type(data) == "table" and type(data.id) == "string" then
    id = data.id
  end
  local c = self.webSocketServer:getClient(id)
  if c == nil then
    return { found = false }
  end
  return { found = true, clientId = c.clientId, connectedAt = c.connectedAt }
end

function Bcast:count(clientId, data)
  return { count = self.webSocketServer:clientCount() }
end

return Bcast
