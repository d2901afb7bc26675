-- tests/browser/app/controllers/probe.lua: what the browser-client tests need from a server.
--   echo D               -> D                      (request() resolves with `response`)
--   fail {code, message} -> error frame with that code
--   sleep {seconds}      -> {slept = seconds}      after waiting (request() timeouts)
--   say {room, text}     -> {delivered = n}        pushes probe/said {room, text} to the room
--   whoami               -> {clientId, userId, rooms}
--   dropAndSay {room, text, after} drops the caller's connection (4000), then `after` s later
--                        pushes probe/said {room, text} to the room: a message it must recover
local Probe = {}

function Probe:echo(clientId, data)
  return data
end

function Probe:fail(clientId, data)
  error({ code = data and data.code or "failed", message = data and data.message or "failed on purpose" })
end

function Probe:sleep(clientId, data)
  local seconds = math.min(tonumber(data and data.seconds) or 1, 5)
  self.timer:sleep(seconds)
  return { slept = seconds }
end

function Probe:say(clientId, data)
  local n = self.webSocketServer:sendMessageToRoom(data.room,
    { type = "probe", action = "said", data = { room = data.room, text = data.text } })
  return { delivered = n }
end

function Probe:dropAndSay(clientId, data)
  local ws = self.webSocketServer
  self.timer:after(tonumber(data.after) or 0.2, function()
    ws:sendMessageToRoom(data.room, { type = "probe", action = "said", data = { room = data.room, text = data.text } })
  end)
  ws:disconnectClient(clientId, 4000, "dropped by the test")
end

function Probe:whoami(clientId)
  local client = self.webSocketServer:getClient(clientId)
  return { clientId = clientId, userId = client.user and client.user.userId, rooms = client.rooms }
end

return Probe
