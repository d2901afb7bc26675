-- flood: room broadcasts of a given size (slow-consumer tests).
local Flood = {}

-- data = {room, size, count, start}: sends `count` messages {seq = start + i, p = size bytes}
function Flood:room(clientId, data)
  local chunk = string.rep("z", data.size)
  local total = 0
  for i = 1, data.count do
    total = total + (self.webSocketServer:sendMessageToRoom(data.room,
      { type = "flood", action = "part", data = { seq = data.start + i, p = chunk } }) or 0)
  end
  return { sent = total }
end

return Flood
