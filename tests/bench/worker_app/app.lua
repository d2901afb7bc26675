-- Benchmark app for cross-worker latency (tests/bench/cluster.sh, mw_loadgen --by-worker):
-- tests/bench/app plus two things the load generator needs to tell the paths apart. Each
-- client is told which worker it landed on ({"type":"bench","action":"hello","data":
-- {"worker":ID}} after "connected"), and each tick carries data.w, the sender's worker, so
-- a delivery is either local (same worker) or went through Redis (other worker).
local server -- the worker's webSocketServer binding, kept from onServerStarted

return {
  limits = { rate = { messages = 1000000, per = 1, burst = 1000000 } },
  database = { url = "sqlite::memory:" },
  events = {
    onServerStarted = function(bindings) server = bindings.webSocketServer end,
    onConnect = function(clientId, client)
      if server and client then
        server:sendMessageToClient(clientId,
          { type = "bench", action = "hello", data = { worker = client.workerId } })
      end
    end,
  },
}
