-- moonwire.json: the runtime's JSON, the C wire codec (runtime/vm/mw_json.c, loaded as
-- "moonwire.wire"): integers up to 2^53 exact, other numbers in the shortest text that reads
-- back the same, [] and {} kept apart (decoded arrays carry the array metatable; emptyArray and
-- array(t) mark them), NaN and infinities refused, numbers beyond the double range a parse
-- error. lua-cjson stays available to apps as require "cjson"; its null is the same value.
local wire = require "moonwire.wire"

local M = {}
M.null = wire.null
M.emptyArray = wire.emptyArray
M.array = wire.array
M.array_mt = wire.array_mt
M.encode = wire.encode

local wire_decode = wire.decode
local depth = 32 -- limits.jsonDepth

function M.decode(text)
  return wire_decode(text, depth)
end

local wire_envelope = wire.envelope

-- A client's message text -> kind (0: accepted), type, action, data, requestId: the envelope as C
-- decodes it before calling hooks.on_request (runtime/vm/mw_envelope.h).
function M.envelope(text)
  return wire_envelope(text, depth)
end

-- Sets how deeply nested a client's JSON may be (limits.jsonDepth).
function M.set_depth(d)
  depth = d
end

return M
