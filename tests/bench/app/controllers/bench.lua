-- The benchmark controller: echo answers with the request's data; broadcast sends a tick to
-- every client (the sender's own reply is the bare {"type":"bench","action":"broadcast"}).
local Bench = {}

function Bench:echo(clientId, data) return data end

function Bench:broadcast(clientId, data)
  self.webSocketServer:sendMessageToAll({ type = "bench", action = "tick", data = data })
end

return Bench
