-- examples/ticker/lib/market.lua: the symbols the ticker knows, their opening prices, and the
-- last price of each (what a new subscriber is shown before the next tick). Shared by app.lua
-- (the publisher) and controllers/ticker.lua; `require "market"` finds it in the app's lib/.
local cjson = require "cjson"

local M = {}

M.ROOM_PREFIX = "price:"  -- one room per symbol: "price:AAPL"
M.LAST_KEY = "ticker:last" -- Redis hash: symbol -> JSON of the last price message's data

-- In display order. The prices are where every walk starts (and restarts after a failover,
-- unless Redis still has the last ones).
M.symbols = { "AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA", "META", "NFLX", "AMD", "INTC" }
M.opening = {
  AAPL = 189.50, MSFT = 415.20, GOOG = 141.80, AMZN = 178.25, TSLA = 175.40,
  NVDA = 880.10, META = 495.60, NFLX = 610.30, AMD = 178.90, INTC = 43.15,
}

M.known = {}
for _, s in ipairs(M.symbols) do M.known[s] = true end

-- symbol -> {symbol, price, change, at} as last published by this worker (when it leads).
M.last = {}

function M.room(symbol) return M.ROOM_PREFIX .. symbol end

-- The last known price of each symbol in `symbols` (a map; symbols never priced are absent).
-- With Redis it asks the hash the leader writes, so any worker on any host can answer.
function M.snapshot(redis, symbols)
  local out = {}
  if not redis then
    for _, s in ipairs(symbols) do out[s] = M.last[s] end
    return out
  end
  local values = redis:call("HMGET", M.LAST_KEY, unpack(symbols))
  if type(values) ~= "table" then return out end -- Redis trouble: the next tick will do
  for i, s in ipairs(symbols) do out[s] = M.decode(values[i]) end
  return out
end

function M.encode(data) return cjson.encode(data) end

-- JSON text -> table, or nil (for nil, cjson.null and anything that is not a JSON object).
function M.decode(text)
  if type(text) ~= "string" then return nil end
  local ok, data = pcall(cjson.decode, text)
  return ok and type(data) == "table" and data or nil
end

return M
