-- Benchmark app for moonwire's raw mode (run.sh's moonwire-raw): examples/echo's raw echo with tests/bench/app's limits.
-- Every message goes back unchanged (sendRaw, same frame kind): no JSON, no routing, no
-- `connected` frame. The rate limit is lifted as in tests/bench/app (in raw mode a limited
-- message is dropped silently, which would stall the load generator's pipeline).
local server -- webSocketServer; the bindings exist once the worker runs, so look it up lazily

return {
  raw = function(clientId, payload, isBinary)
    server = server or require("moonwire").webSocketServer
    server:sendRaw(clientId, payload, isBinary)
  end,
  limits = { rate = { messages = 1000000, per = 1, burst = 1000000 } },
  database = { url = "sqlite::memory:" },
}
