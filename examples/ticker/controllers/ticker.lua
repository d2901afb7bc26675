-- controllers/ticker.lua: messages of type "ticker" (see ../README.md for the whole protocol).
--   symbols                  -> {symbols = {"AAPL", ...}}             the known symbols
--   subscribe {symbols}      -> {subscribed = {...}, prices = {SYM = {symbol, price, change, at}}}
--   unsubscribe {symbols}    -> {unsubscribed = {...}}
--   subscriptions            -> {symbols = {...}}                      what this client gets
--   whoami                   -> {clientId, workerId, workerIndex}
-- A subscription is membership of the room "price:SYM", so system/joinRoom works as well.
-- Pushed to each room twice a second (app.lua):
--   {"type":"ticker","action":"price","data":{symbol, price, change, at}}
-- Bad input is answered with an error frame, code "invalid".
local market = require "market"

local Ticker = {}

local MAX_SYMBOLS = 64 -- per request; more than there are symbols, so a bigger list is a mistake

-- data.symbols as a list of known symbols (upper-cased, duplicates dropped), or a coded error.
-- The whole request is refused when one symbol is unknown, so nothing half-happens.
local function symbolList(data)
  local list = type(data) == "table" and data.symbols or nil
  if type(list) ~= "table" or #list == 0 then
    error({ code = "invalid", message = "symbols must be a non-empty list, e.g. [\"AAPL\"]" })
  end
  if #list > MAX_SYMBOLS then
    error({ code = "invalid", message = "too many symbols (max " .. MAX_SYMBOLS .. ")" })
  end
  local out, seen = {}, {}
  for i = 1, #list do
    local s = list[i]
    if type(s) ~= "string" then
      error({ code = "invalid", message = "symbols[" .. i .. "] must be a string" })
    end
    s = s:upper()
    if not market.known[s] then
      error({ code = "invalid", message = "unknown symbol: " .. s:sub(1, 16) })
    end
    if not seen[s] then
      seen[s] = true
      out[#out + 1] = s
    end
  end
  return out
end

function Ticker:symbols()
  return { symbols = market.symbols }
end

function Ticker:subscribe(clientId, data)
  local symbols = symbolList(data)
  local ws = self.webSocketServer
  for _, s in ipairs(symbols) do
    local ok, reason = ws:joinRoom(clientId, market.room(s))
    if not ok then error({ code = "invalid", message = reason or ("cannot subscribe to " .. s) }) end
  end
  -- The last prices, so the page shows numbers before the next tick (an empty map arrives as {}).
  return { subscribed = symbols, prices = market.snapshot(self.redis, symbols) }
end

function Ticker:unsubscribe(clientId, data)
  local symbols = symbolList(data)
  for _, s in ipairs(symbols) do
    self.webSocketServer:leaveRoom(clientId, market.room(s)) -- false when not subscribed: fine
  end
  return { unsubscribed = symbols }
end

-- An empty list may arrive as {} (the server's JSON encoder has no empty-array marker).
function Ticker:subscriptions(clientId)
  local client = self.webSocketServer:getClient(clientId)
  local symbols = {}
  for _, room in ipairs(client and client.rooms or {}) do
    local s = room:sub(#market.ROOM_PREFIX + 1)
    if room:sub(1, #market.ROOM_PREFIX) == market.ROOM_PREFIX and market.known[s] then
      symbols[#symbols + 1] = s
    end
  end
  return { symbols = symbols }
end

-- Which worker holds this connection: handy to see the cluster at work.
function Ticker:whoami(clientId)
  return { clientId = clientId, workerId = self.worker.id, workerIndex = self.worker.index }
end

return Ticker
