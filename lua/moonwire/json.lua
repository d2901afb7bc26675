-- moonwire.json: the one cjson instance of the runtime, configured once: invalid numbers
-- (NaN, Infinity, hex) refused both ways, sparse arrays encoded as objects instead of failing.
-- Debian's lua-cjson 2.1.0 has no empty-array marker: an empty Lua table is encoded as {}.
local cjson = require "cjson"

local M = {}
local json = cjson.new()
json.decode_invalid_numbers(false)
json.encode_invalid_numbers(false)
json.encode_sparse_array(true)
json.encode_number_precision(14)

M.null = cjson.null
M.encode = json.encode

local raw_decode, find, type, pairs, huge = json.decode, string.find, type, pairs, math.huge

local function has_infinity(v)
  if type(v) == "number" then return v == huge or v == -huge end
  if type(v) == "table" then
    for k, x in pairs(v) do
      if has_infinity(x) or has_infinity(k) then return true end
    end
  end
  return false
end

-- cjson turns a number beyond the double range (1e400, a 400-digit integer) into an infinity,
-- which no reply can encode again: such text is a parse error instead. Only text with a
-- three-digit exponent or a 32-digit run can overflow, so other messages skip the walk.
function M.decode(text)
  local value = raw_decode(text)
  if type(value) == "table" and (find(text, "[eE][+-]?%d%d%d") or find(text, "%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d"))
      and has_infinity(value) then
    error("number out of range", 0)
  elseif value == huge or value == -huge then
    error("number out of range", 0)
  end
  return value
end

-- Sets how deeply nested a client's JSON may be (limits.jsonDepth).
function M.set_depth(depth)
  json.decode_max_depth(depth)
  json.encode_max_depth(math.max(depth, 64))
end

return M
