-- tests/bench/history_app's bench controller: broadcast sends the tick to BENCH_ROOM (joined by
-- every client on connect); publish sends data.n messages {seq = i} to data.room in one go.
local Bench = {}
local room = os.getenv("BENCH_ROOM") or "plain"

function Bench:echo(clientId, data) return data end

function Bench:broadcast(clientId, data)
  self.webSocketServer:sendMessageToRoom(room, { type = "bench", action = "tick", data = data })
end

function Bench:publish(clientId, data)
  for i = 1, data.n do
    self.webSocketServer:sendMessageToRoom(data.room, { type = "bench", action = "msg", data = { seq = i } })
  end
  return { sent = data.n }
end

return Bench
