-- moonwire.presence: who is in a room (DESIGN 13) and the join/leave events of rooms whose
-- rooms.options entry says `presence = true` or `joinLeave = true` ("tracked" rooms).
-- Each worker records its own members of tracked rooms ({userId, joinedAt}); with Redis it
-- also writes them where every worker can read them:
--   {p}pr:{room}:{tag}   hash clientId -> "joinedAtMs|userKey" (userKey: "" anonymous,
--                        "s<string>" or "n<integer>"), one per room and worker
--   {p}w:{tag}:pr        set of the tracked rooms the worker has members in
-- Both live twice as long as the worker's alive marker ({p}w:{tag}, moonwire.cluster): when a
-- worker dies, its marker expires first, and the next heartbeat of any live worker claims the
-- dead worker's records in one atomic script (the tag leaves {p}workers: only one caller sees
-- it there), deletes them and sends their leave events (M.reap). getPresence is one script:
-- the records of every live worker, counted and sorted by joinedAt.
-- Events are room messages without offset (never stored in history): one send to the room
-- per change, so one bus message whatever the number of members.
local core = require "moonwire.core"
local json = require "moonwire.json"
local room_options = require "moonwire.room_options"

local encode = json.encode
local floor = math.floor

local M = {}

local members = {} -- room -> clientId -> {userId, ms}: this worker's members of tracked rooms
local P, TAG, TTL_MS
local enabled = false -- Redis configured

local fire = require("moonwire.cluster").fire -- counted: replies wait for these writes too
local function k_room(room, tag) return P .. "pr:" .. room .. ":" .. (tag or TAG) end
local function k_index() return P .. "w:" .. TAG .. ":pr" end

-- Sets up the Redis side (prefix, this worker's tag, heartbeat) when Redis is configured.
function M.init(config, tag)
  members = {}
  if not core.redis_configured() then return end
  enabled = true
  P, TAG = config.redis.prefix, tag
  -- twice the alive marker's life (moonwire.cluster: 2 heartbeats), so a live worker can
  -- still read a dead worker's members when it notices the marker is gone
  TTL_MS = math.max(math.floor(config.cluster.heartbeat * 4000), 400)
end

-- The room's options when the room is tracked (presence or joinLeave), else nil.
local function tracked(room)
  local o = room_options.match(room)
  if o and (o.presence or o.joinLeave) then return o end
  return nil
end
M.tracked = tracked

local function user_key(userId)
  if type(userId) == "string" then return "s" .. userId end
  if type(userId) == "number" then return "n" .. string.format("%.0f", userId) end
  return ""
end

local function user_of(key)
  local kind = key:sub(1, 1)
  if kind == "s" then return key:sub(2) end
  if kind == "n" then return tonumber(key:sub(2)) end
  return nil
end

local function iso8601(ms)
  return os.date("!%Y-%m-%dT%H:%M:%S", floor(ms / 1000)) .. string.format(".%03dZ", ms % 1000)
end
M.iso8601 = iso8601

local count_event = core.count_event or function() end -- C metrics (absent in `moonwire check`)

local function event(action, room, clientId, userId)
  count_event(action)
  -- userId absent for an anonymous client (nil is left out of the JSON object)
  local frame = encode({ type = "presence", action = action,
                         data = { roomName = room, clientId = clientId, userId = userId } })
  if action == "leave" and core.draining() then
    -- shutting down: every local member is being closed; only the other workers' members need
    -- it (10 000 local members leaving would otherwise queue 10 000² frames)
    core.room_publish(room, frame)
  else
    core.room_send(room, frame, action == "join" and clientId or nil, false)
  end
end

-- clientId (userId: nil when anonymous) became a member of room: recorded, and with joinLeave
-- every other member is told.
function M.joined(clientId, room, userId)
  local o = tracked(room)
  if not o then return end
  local ms = core.now_ms()
  local list = members[room]
  if not list then list = {}; members[room] = list end
  list[clientId] = { userId = userId, ms = ms }
  if enabled then
    fire("HSET", k_room(room), clientId, string.format("%.0f|", ms) .. user_key(userId))
    fire("PEXPIRE", k_room(room), TTL_MS)
    fire("SADD", k_index(), room)
    fire("PEXPIRE", k_index(), TTL_MS)
  end
  if o.joinLeave then event("join", room, clientId, userId) end
end

-- clientId is no longer a member of room: forgotten, and with joinLeave the members are told.
function M.left(clientId, room)
  local list = members[room]
  local rec = list and list[clientId]
  if not rec then return end
  list[clientId] = nil
  if next(list) == nil then members[room] = nil end
  if enabled then
    fire("HDEL", k_room(room), clientId)
    if not members[room] then fire("SREM", k_index(), room) end
  end
  local o = tracked(room)
  if o and o.joinLeave then event("leave", room, clientId, rec.userId) end
end

-- ---- reads --------------------------------------------------------------------------------

-- ARGV: prefix, room, limit (-1: all). Returns {count, users, id1, value1, id2, value2, ...}:
-- the members of every live worker, oldest joiner first, at most limit of them.
local SCRIPT_GET = [[
local p, room, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local all, seen, users = {}, {}, 0
for _, tag in ipairs(redis.call('SMEMBERS', p .. 'workers')) do
  if redis.call('EXISTS', p .. 'w:' .. tag) == 1 then
    local h = redis.call('HGETALL', p .. 'pr:' .. room .. ':' .. tag)
    for i = 1, #h, 2 do
      local v = h[i + 1]
      local bar = string.find(v, '|', 1, true) or #v
      local u = string.sub(v, bar + 1)
      if u == '' then users = users + 1
      elseif not seen[u] then seen[u] = true; users = users + 1 end
      all[#all + 1] = { tonumber(string.sub(v, 1, bar - 1)) or 0, h[i], v }
    end
  end
end
table.sort(all, function(a, b) if a[1] ~= b[1] then return a[1] < b[1] end return a[2] < b[2] end)
local out = { #all, users }
local n = #all
if limit >= 0 and n > limit then n = limit end
for i = 1, n do out[#out + 1] = all[i][2]; out[#out + 1] = all[i][3] end
return out]]

local function entry(clientId, ms, userId)
  return { clientId = clientId, userId = userId, joinedAt = iso8601(ms) }
end

-- {count, users, clients = {{clientId, userId, joinedAt}, ...} (oldest first, at most limit;
-- limit nil: all), truncated = true when clients holds fewer than count}. redis: the binding,
-- when the cluster is to be asked (waits); nil, err when Redis is unavailable.
function M.get(redis, room, limit)
  local clients = json.array({})
  local count, users = 0, 0
  if redis then
    local r, err = redis:call("EVAL", SCRIPT_GET, 0, P, room, limit or -1)
    if type(r) ~= "table" then return nil, err or "unexpected reply from Redis" end
    count, users = r[1], r[2]
    for i = 3, #r, 2 do
      local v = r[i + 1]
      local bar = v:find("|", 1, true) or #v
      clients[#clients + 1] = entry(r[i], tonumber(v:sub(1, bar - 1)) or 0, user_of(v:sub(bar + 1)))
    end
  else
    local seen, all = {}, {}
    for id, rec in pairs(members[room] or {}) do
      count = count + 1
      local u = user_key(rec.userId)
      if u == "" then users = users + 1
      elseif not seen[u] then seen[u] = true; users = users + 1 end
      all[#all + 1] = { id, rec }
    end
    table.sort(all, function(a, b)
      if a[2].ms ~= b[2].ms then return a[2].ms < b[2].ms end
      return a[1] < b[1]
    end)
    local n = #all
    if limit and n > limit then n = limit end
    for i = 1, n do clients[i] = entry(all[i][1], all[i][2].ms, all[i][2].userId) end
  end
  local out = { count = count, users = users, clients = clients }
  if #clients < count then out.truncated = true end
  return out
end

-- ---- the cluster --------------------------------------------------------------------------

-- Every heartbeat: keeps this worker's records alive.
function M.heartbeat()
  if not enabled or not core.redis_connected() then return end
  if next(members) == nil then return end
  fire("PEXPIRE", k_index(), TTL_MS)
  for room in pairs(members) do fire("PEXPIRE", k_room(room), TTL_MS) end
end

-- After (re)connecting to Redis: writes this worker's records again (moonwire.cluster's
-- resync has just forgotten them).
function M.resync()
  if not enabled then return end
  for room, list in pairs(members) do
    for id, rec in pairs(list) do
      fire("HSET", k_room(room), id, string.format("%.0f|", rec.ms) .. user_key(rec.userId))
    end
    fire("PEXPIRE", k_room(room), TTL_MS)
    fire("SADD", k_index(), room)
  end
  fire("PEXPIRE", k_index(), TTL_MS)
end

-- The script moonwire.cluster's forget runs for this worker's presence keys (ARGV: prefix, tag).
M.SCRIPT_FORGET = [[
local p, tag = ARGV[1], ARGV[2]
for _, room in ipairs(redis.call('SMEMBERS', p .. 'w:' .. tag .. ':pr')) do
  redis.call('DEL', p .. 'pr:' .. room .. ':' .. tag)
end
redis.call('DEL', p .. 'w:' .. tag .. ':pr')
return 1]]

-- Claims every dead worker (its alive marker is gone, it is still in {p}workers) and removes
-- it from {p}workers: atomic, so among workers racing exactly one claims each dead one. Returns
-- {mine, room, n, id1, value1, ..., room, n, ...}: whether the caller's own index (ARGV[2] its
-- tag) is there, then the dead workers' members of tracked rooms, whose records it deletes.
local SCRIPT_REAP = [[
local p = ARGV[1]
local out = { redis.call('EXISTS', p .. 'w:' .. ARGV[2] .. ':pr') }
for _, tag in ipairs(redis.call('SMEMBERS', p .. 'workers')) do
  if redis.call('EXISTS', p .. 'w:' .. tag) == 0 then
    redis.call('SREM', p .. 'workers', tag)
    local index = p .. 'w:' .. tag .. ':pr'
    for _, room in ipairs(redis.call('SMEMBERS', index)) do
      local key = p .. 'pr:' .. room .. ':' .. tag
      local h = redis.call('HGETALL', key)
      if #h > 0 then
        out[#out + 1] = room
        out[#out + 1] = #h / 2
        for i = 1, #h do out[#out + 1] = h[i] end
      end
      redis.call('DEL', key)
    end
    redis.call('DEL', index)
  end
end
return out]]

-- Run by every heartbeat (in a coroutine): claims the dead workers and sends the leave events
-- of their members in joinLeave rooms. Returns how many events were sent.
function M.reap(redis)
  if not enabled or not redis or not core.redis_connected() then return 0 end
  local r, err = redis:call("EVAL", SCRIPT_REAP, 0, P, TAG)
  if type(r) ~= "table" then
    if err then core.log("warn", "presence: could not check for dead workers", { error = tostring(err) }) end
    return 0
  end
  if r[1] == 0 and next(members) ~= nil then
    -- this worker was taken for dead (it missed heartbeats) and its records were removed
    core.log("warn", "presence: this worker's members were taken for gone; writing them again")
    M.resync()
  end
  local sent, i = 0, 2
  while i <= #r do
    local room, n = r[i], tonumber(r[i + 1]) or 0
    local o = tracked(room)
    for j = 0, n - 1 do
      local id, v = r[i + 2 + 2 * j], r[i + 3 + 2 * j]
      if o and o.joinLeave then
        local bar = v:find("|", 1, true) or #v
        event("leave", room, id, user_of(v:sub(bar + 1)))
        sent = sent + 1
      end
    end
    i = i + 2 + 2 * n
  end
  if sent > 0 then core.log("info", "presence: sent the leave events of a dead worker's clients", { events = sent }) end
  return sent
end

return M
