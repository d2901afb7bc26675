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
M.decode = json.decode

-- Sets how deeply nested a client's JSON may be (limits.jsonDepth).
function M.set_depth(depth)
  json.decode_max_depth(depth)
  json.encode_max_depth(math.max(depth, 64))
end

return M
