-- users: sendMessageToUser and the caller's own client record (tests/integration/test_auth.py).
local cjson = require "cjson"

local Users = {}

-- data = {userId (number or string), payload}
function Users:send(clientId, data)
  local n = self.webSocketServer:sendMessageToUser(data.userId,
    { type = "user", action = "message", data = { payload = data.payload, from = clientId } })
  return { n = n }
end

function Users:me(clientId, data)
  return self.webSocketServer:getClient(clientId)
end

return Users
