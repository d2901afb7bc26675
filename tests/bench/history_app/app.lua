-- Benchmark app for room history (tests/bench/history.sh): every client joins the room named
-- by BENCH_ROOM when it connects, and bench/broadcast sends the tick to that room instead of
-- to everybody. Rooms matching "hist:*" keep a history, so running the same load once with
-- BENCH_ROOM=plain and once with BENCH_ROOM=hist:bench compares plain fan-out with fan-out
-- through the history (offset assignment, stored copy, "room"/"offset" added to each frame).
-- bench/publish sends N messages to a room at once (the recovery measurement's backlog).
local server -- the worker's webSocketServer binding, kept from onServerStarted
local room = os.getenv("BENCH_ROOM") or "plain"

return {
  limits = { rate = { messages = 1000000, per = 1, burst = 1000000 } },
  database = { url = "sqlite::memory:" },
  rooms = {
    options = { { pattern = "hist:*", history = { size = 1000, ttl = 600 } } },
  },
  events = {
    onServerStarted = function(bindings) server = bindings.webSocketServer end,
    onConnect = function(clientId)
      if server and os.getenv("BENCH_AUTOJOIN") ~= "0" then server:joinRoom(clientId, room) end
    end,
  },
}
