-- moonwire.history: room history and recovery (DESIGN 12), the Lua half of
-- runtime/vm/mw_lapi_history.c. A room has history when its rooms.options entry says so
-- (moonwire.room_options). Every message to it must be a JSON object: a table, or a string
-- holding one; it gets the room's next offset and members receive it with "room" and "offset"
-- added. Single node: the worker's memory, answered at once. With Redis: one stream per room,
-- and a join or a read waits for Redis.
local core = require "moonwire.core"
local json = require "moonwire.json"
local wire = require "moonwire.wire"
local scheduler = require "moonwire.scheduler"

local encode, null = json.encode, json.null
local array_mt = json.array_mt
local byte, find = string.byte, string.find
local floor = math.floor

local M = {}

local DECODE_DEPTH = 1000 -- what the encoder writes at most
local MAX_OFFSET = 9007199254740992 -- 2^53: beyond it an offset is ahead of every room

-- Whether the history lives in Redis (else in the worker's memory).
local function in_redis() return core.redis_configured() end

-- A shallow copy of t without the keys the server adds.
local function without_position(t)
  local out = {}
  for k, v in pairs(t) do
    if k ~= "room" and k ~= "offset" then out[k] = v end
  end
  return out
end

-- The JSON object text of a message to a history room; raises (at the caller of fname) on
-- anything that is not an object. A message's own "room" and "offset" are dropped: the server's
-- take their place.
function M.body(msg, fname)
  local t = type(msg)
  if t == "table" then
    if getmetatable(msg) == array_mt or msg == json.emptyArray then
      error(fname .. ": a message to a history room must be a JSON object, got an array", 3)
    end
    if msg.room ~= nil or msg.offset ~= nil then msg = without_position(msg) end
    local text = encode(msg)
    if byte(text, 1) ~= 123 then -- '{'
      error(fname .. ": a message to a history room must be a JSON object, got an array", 3)
    end
    return text
  elseif t == "string" then
    local ok, v = pcall(wire.decode, msg, DECODE_DEPTH)
    if not ok or type(v) ~= "table" or getmetatable(v) == array_mt or not find(msg, "^%s*{") then
      error(fname .. ": a message to a history room must be a table or a JSON object text", 3)
    end
    if v.room ~= nil or v.offset ~= nil then return encode(without_position(v)) end
    return msg
  end
  error(fname .. ": a message to a history room must be a table or a JSON object text, got " .. t, 3)
end

-- Sends body (M.body) to the room as its next message; returns the local recipients.
-- h: the room's history options {size, ttl}. dedupe: for a subscriber's send (Redis only).
function M.send(room, h, body, exclude, dedupe)
  if in_redis() then
    return core.history_publish(room, body, h.size, h.ttl, exclude, dedupe)
  end
  return (core.history_send(room, body, h.size, h.ttl, exclude))
end

-- Sends body as the room's next message and returns its offset (waits for Redis), or nil, err.
function M.publish_wait(room, h, body)
  if in_redis() then
    scheduler.check("publish")
    local call = scheduler.next_token()
    local ok, err = core.history_publish_async(call, room, body, h.size, h.ttl)
    if not ok then return nil, err end
    return scheduler.wait(call)
  end
  local _, offset = core.history_send(room, body, h.size, h.ttl)
  return offset
end

-- since as a client sent it: nil (absent or JSON null), or offset, epoch; false when malformed
-- (not an object, a negative or non-integer offset, a non-string epoch).
function M.parse_since(since)
  if since == nil or since == null then return nil end
  if type(since) ~= "table" or getmetatable(since) == array_mt then return false end
  local offset, epoch = since.offset, since.epoch
  if type(offset) ~= "number" or offset < 0 or offset ~= offset or floor(offset) ~= offset then return false end
  if type(epoch) ~= "string" then return false end
  if offset > MAX_OFFSET then offset = MAX_OFFSET end
  return offset, epoch
end

-- The client (a member of the room now) learns its position; with since (offset, epoch) the
-- messages it missed are replayed first when they can be. Returns {offset, epoch [,recovered]},
-- false when the caller cannot wait for Redis (a plain join), or nil, err (Redis unavailable,
-- the client gone).
function M.join(clientId, room, h, since_offset, since_epoch)
  if in_redis() then
    if not coroutine.isyieldable() then return false end
    local call = scheduler.next_token()
    local ok, err = core.history_join_async(call, clientId, room, h.size, h.ttl, since_offset, since_epoch)
    if not ok then return nil, err end
    return scheduler.wait(call)
  end
  local info = core.history_join(clientId, room, h.size, h.ttl, since_offset, since_epoch)
  if not info then return nil, "Unknown client" end
  return info
end

-- The room's last offset and epoch now (single node: after the join's events ran).
function M.position(room, h)
  if in_redis() then return nil end
  return core.history_info(room, h.size, h.ttl)
end

-- {epoch, offset, messages = {{offset, message}, ...}}: the kept messages after since, oldest
-- first, at most limit; nil, err when Redis is unavailable.
function M.get(room, h, since, limit)
  if since > MAX_OFFSET then since = MAX_OFFSET end
  if in_redis() then
    scheduler.check("getHistory")
    local call = scheduler.next_token()
    local ok, err = core.history_get_async(call, room, h.size, h.ttl, since, limit)
    if not ok then return nil, err end
    return scheduler.wait(call)
  end
  return core.history_get(room, h.size, h.ttl, since, limit)
end

return M
