-- controllers/work.lua (queue tests): adds jobs and reports what queue:add said.
--   add {queue, payload, opts, notify}  -> {jobId}; notify puts the caller's clientId in the data
--   bad {name, payload, opts}            -> {error = <what queue:add raised>}
--   many {queue, count, payload, notify} -> {jobIds}
local W = {}

local function payload_of(clientId, data)
  local p = {}
  for k, v in pairs(type(data.payload) == "table" and data.payload or {}) do p[k] = v end
  if data.notify then p.clientId = clientId end
  return p
end

function W:add(clientId, data)
  local id, err = self.queue:add(data.queue, payload_of(clientId, data), data.opts)
  if not id then error({ code = "queue_unavailable", message = err }) end
  return { jobId = id }
end

function W:many(clientId, data)
  local ids = {}
  for i = 1, data.count do
    local p = payload_of(clientId, data)
    p.n = i
    local id, err = self.queue:add(data.queue, p, data.opts)
    if not id then error({ code = "queue_unavailable", message = err }) end
    ids[#ids + 1] = id
  end
  return { jobIds = ids }
end

function W:bad(_, data)
  local payload = data.payload
  if payload == "function" then payload = { f = function() end } end
  if payload == "deep" then -- 40 levels: encodable, but deeper than limits.jsonDepth reads back
    payload = {}
    local t = payload
    for _ = 1, 40 do t.x = {}; t = t.x end
  end
  local ok, err = pcall(self.queue.add, self.queue, data.name, payload, data.opts)
  return { ok = ok, error = not ok and tostring(err) or nil }
end

return W
