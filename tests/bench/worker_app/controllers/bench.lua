-- tests/bench/app's bench controller, except that a broadcast tick also carries data.w, the
-- id of the worker the sender is connected to (mw_loadgen --by-worker compares it with the
-- receiver's own worker from the hello message).
local Bench = {}
local worker_id -- this worker's id, looked up once

function Bench:echo(clientId, data) return data end

function Bench:broadcast(clientId, data)
  worker_id = worker_id or self.webSocketServer:stats().workerId
  data.w = worker_id
  self.webSocketServer:sendMessageToAll({ type = "bench", action = "tick", data = data })
end

return Bench
