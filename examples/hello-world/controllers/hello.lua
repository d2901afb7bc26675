-- controllers/hello.lua: messages of type "hello".
-- {"type":"hello","action":"greet","data":{"name":"Ada","message":"Hi!"}} broadcasts a greeting
-- to every connected client (the sender included) and replies {"success": true}.
local Hello = {}

local MAX_NAME, MAX_MESSAGE = 40, 500

local function text(value, fallback, max)
  if type(value) ~= "string" or value:match("^%s*$") then return fallback end
  return value:sub(1, max)
end

function Hello:greet(clientId, data)
  data = type(data) == "table" and data or {}
  local name = text(data.name, "Anonymous", MAX_NAME)
  local message = text(data.message, nil, MAX_MESSAGE)
  if not message then
    error({ code = "invalid", message = "message is required" })
  end
  self.webSocketServer:sendMessageToAll({
    type = "hello",
    action = "greeting",
    data = { name = name, message = message, from = clientId, at = os.time() },
  })
  return { success = true }
end

return Hello
