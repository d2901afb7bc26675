-- examples/ticker: a server-side price feed. One room per symbol ("price:AAPL"); a timer in
-- every worker ticks twice a second, but only one worker in the whole cluster moves the prices
-- and publishes them: with Redis, whoever holds the lease "ticker:leader"; without Redis, worker
-- 0 (without Redis there is one worker per server anyway). sendMessageToRoom reaches the
-- members on every worker and host. Clients subscribe through controllers/ticker.lua.
local market = require "market"

local TICK = 0.5            -- seconds between price updates
local LEASE_KEY = "ticker:leader"
local LEASE_MS = 2000       -- a dead leader is replaced within this
-- Renews the lease only while it is still ours (another worker may hold it by now).
local RENEW = [[
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0]]

local function round2(x) return math.floor(x * 100 + 0.5) / 100 end

-- Milliseconds since the epoch (the runtime's clock binding).
local function now_ms() return require("moonwire").clock:now() end

local Ticker = { leading = false, busy = false, prices = nil }

-- Whether this worker publishes this tick: takes or renews the lease (true), or sees somebody
-- else holding it or Redis unreachable (false: better a skipped tick than two publishers).
function Ticker:holdLease(server)
  if not server.redis then return server.worker.index == 0 end
  local redis, me = server.redis, server.worker.id
  if self.leading and redis:call("EVAL", RENEW, 1, LEASE_KEY, me, LEASE_MS) == 1 then
    return true
  end
  -- Not the leader, or the lease ran out while we were slow: try to take it.
  return redis:call("SET", LEASE_KEY, me, "NX", "PX", LEASE_MS) == "OK"
end

-- The prices to walk on from: the last published ones (Redis keeps them across a failover;
-- this worker remembers its own if it led before), else the opening prices.
function Ticker:startPrices(server)
  local prices = {}
  local shared = server.redis and market.snapshot(server.redis, market.symbols) or {}
  for _, s in ipairs(market.symbols) do
    local last = shared[s] or market.last[s]
    local p = last and tonumber(last.price)
    prices[s] = p and p > 0 and p or market.opening[s]
  end
  return prices
end

-- One step of a random walk per symbol (up to about ±0.4 %, never below a cent), sent to the
-- symbol's room; the new prices are also written to Redis for new subscribers and failovers.
function Ticker:publish(server)
  local at = now_ms()
  local hash = {}
  for _, s in ipairs(market.symbols) do
    local old = self.prices[s]
    local price = math.max(0.01, round2(old * (1 + (math.random() - 0.5) * 0.008)))
    self.prices[s] = price
    local data = { symbol = s, price = price, change = round2(price - old), at = at }
    market.last[s] = data
    server.webSocketServer:sendMessageToRoom(market.room(s),
      { type = "ticker", action = "price", data = data })
    hash[#hash + 1] = s
    hash[#hash + 1] = market.encode(data)
  end
  if server.redis then server.redis:call("HSET", market.LAST_KEY, unpack(hash)) end
end

function Ticker:tick(server)
  if self.busy then return end -- the previous tick still waits on Redis
  self.busy = true
  local ok, err = pcall(function()
    local leading = self:holdLease(server)
    if leading ~= self.leading then
      self.leading = leading
      server.log:info(leading and "ticker: this worker publishes prices" or "ticker: lost the lease",
        { worker = server.worker.id })
      if leading then self.prices = self:startPrices(server) end
    end
    if leading then self:publish(server) end
  end)
  self.busy = false
  if not ok then server.log:error("ticker: tick failed", { error = tostring(err) }) end
end

return {
  events = {
    onServerStarted = function(server)
      math.randomseed(os.time() + server.worker.index * 7919)
      server.timer:every(TICK, function() Ticker:tick(server) end)
    end,
  },
}
