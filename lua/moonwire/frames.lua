-- moonwire.frames: the wire-protocol frames the Lua side writes: replies,
-- error frames and the auth/authenticated greeting. Built by hand with a fixed key order, so
-- they are byte-for-byte predictable (cjson would order the keys as the table hashes them).
local json = require "moonwire.json"
local wire = require "moonwire.wire"

local encode = json.encode
local format = string.format
local huge = math.huge
local concat = table.concat

local M = {}

-- A requestId is echoed exactly: integers up to 2^53 in full (cjson would keep 14 digits),
-- other numbers with 17 significant digits. NaN and infinities are not ids (nil). Encoded in C
-- (runtime/vm/mw_reply.c), which also writes it into every reply (core.reply).
M.encode_id = wire.encode_id

-- An error code is a string or a finite number; anything else is sent as its tostring.
local function encode_code(code)
  local t = type(code)
  if t == "string" then return encode(code) end
  if t == "number" and code == code and code ~= huge and code ~= -huge then return encode(code) end
  return encode(tostring(code))
end

-- {"type":"error","action":"message","data":{"error":text[,"code"][,"type"][,"action"]
-- [,"requestId"][,"traceback"]}}; every argument after text may be nil. rid is already
-- encoded (encode_id).
function M.error(text, code, t, a, rid, tb)
  local parts = { '{"type":"error","action":"message","data":{"error":', encode(text) }
  if code ~= nil then parts[#parts + 1] = ',"code":' .. encode_code(code) end
  if t ~= nil then parts[#parts + 1] = ',"type":' .. encode(t) end
  if a ~= nil then parts[#parts + 1] = ',"action":' .. encode(a) end
  if rid ~= nil then parts[#parts + 1] = ',"requestId":' .. rid end
  if tb ~= nil then parts[#parts + 1] = ',"traceback":' .. encode(tb) end
  parts[#parts + 1] = "}}"
  return concat(parts)
end

-- The refusals of a message's envelope, by the kind C reports (runtime/vm/mw_envelope.h:
-- MW_ENVELOPE_NOT_JSON = 1, NOT_OBJECT = 2, NO_TYPE = 3, NO_ACTION = 4).
local ENVELOPE_ERRORS = {
  "Failed to parse JSON",
  "Invalid WebSocket message",
  "Missing WebSocket message type",
  "Missing WebSocket message action",
}

-- The error frame for envelope refusal `kind`.
function M.envelope_error(kind)
  return M.error(ENVELOPE_ERRORS[kind])
end

-- '{"type":T,"action":A': the start of every reply to route T/A (the router caches it).
function M.reply_prefix(t, a)
  return '{"type":' .. encode(t) .. ',"action":' .. encode(a)
end

-- A reply: prefix (reply_prefix) [,"response":response] [,"requestId":rid] }. rid is the
-- requestId as the client sent it (encoded as encode_id does; no key when it is no id); raises
-- when response cannot be encoded as JSON. The router does not build this string: core.reply
-- encodes the same frame in C straight into the frame it sends (runtime/vm/mw_reply.c owns the
-- format; this is its text form).
M.reply = wire.reply

-- {"type":"queue","action":action,"data":{"jobId":..,"queue":..,key:value}} in this key order
--: what a job's client is told when it completed or failed. value is
-- already encoded JSON text.
function M.job(action, jobId, queue, key, value)
  return '{"type":"queue","action":"' .. action .. '","data":{"jobId":' .. encode(jobId) ..
         ',"queue":' .. encode(queue) .. ',"' .. key .. '":' .. value .. "}}"
end

-- The greeting a client with a valid token gets once connected.
-- {"type":"auth","action":"expiring","data":{"expiresAt":MS}}: the token expires soon, refresh it.
function M.expiring(expires_ms)
  return '{"type":"auth","action":"expiring","data":{"expiresAt":' .. format("%.0f", expires_ms) .. '}}'
end

function M.authenticated(userId)
  local id
  if type(userId) == "number" then id = format("%.0f", userId)
  elseif userId == nil then id = "null"
  else id = encode(userId) end
  return '{"type":"auth","action":"authenticated","data":{"userId":' .. id ..
         ',"message":"Authentication successful"}}'
end

return M
