-- moonwire.cluster: the cluster-wide state in Redis, so any worker on any host can answer
-- getClient, getRoomClients, getRooms and clientCount. Each worker owns its keys:
--   {p}w:{tag}              alive marker, expires after 2 heartbeats
--   {p}w:{tag}:clients      hash clientId -> JSON {clientId, user, rooms, metadata, connectedAt, workerId}
--   {p}w:{tag}:rooms        set of the rooms it has members in
--   {p}r:{room}:{tag}       set of its members of that room
--   {p}workers              set of worker tags (pruned of dead ones by every heartbeat)
--   {p}w:{tag}:stats        JSON {workerId, messagesIn, messagesOut} as of its last heartbeat
-- The heartbeat refreshes every TTL in one pipeline, so a killed worker's clients vanish from
-- every lookup within two heartbeats; reads are one Lua script each (one round trip) that
-- skips workers whose alive marker is gone. No worker keeps a copy of every client. Dead
-- workers leave {p}workers in moonwire.presence's reap (it sends their leave events).
local core = require "moonwire.core"
local json = require "moonwire.json"
local scheduler = require "moonwire.scheduler"

local M = {}

local P, TAG, TTL_MS
local enabled = false

-- Every write of the cluster state (and of moonwire.presence, which fires through M.fire) is
-- counted, so a reply can wait until Redis has applied them (M.settle).
local fired, settled = 0, 0
local function fire(...)
  fired = fired + 1
  return core.redis_fire(...)
end
M.fire = fire

local function k_alive() return P .. "w:" .. TAG end
local function k_clients() return P .. "w:" .. TAG .. ":clients" end
local function k_rooms() return P .. "w:" .. TAG .. ":rooms" end
local function k_room(room) return P .. "r:" .. room .. ":" .. TAG end

local SCRIPT_ROOM_CLIENTS = [[
local out = {}
for _, tag in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'workers')) do
  if redis.call('EXISTS', ARGV[1] .. 'w:' .. tag) == 1 then
    for _, id in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'r:' .. ARGV[2] .. ':' .. tag)) do out[#out + 1] = id end
  end
end
return out]]

local SCRIPT_ROOMS = [[
local seen, out = {}, {}
for _, tag in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'workers')) do
  if redis.call('EXISTS', ARGV[1] .. 'w:' .. tag) == 1 then
    for _, r in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'w:' .. tag .. ':rooms')) do
      if not seen[r] then seen[r] = true; out[#out + 1] = r end
    end
  end
end
return out]]

local SCRIPT_COUNT = [[
local n = 0
for _, tag in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'workers')) do
  if redis.call('EXISTS', ARGV[1] .. 'w:' .. tag) == 1 then
    n = n + redis.call('HLEN', ARGV[1] .. 'w:' .. tag .. ':clients')
  end
end
return n]]

-- Every room with members: a flat list name, count, name, count, ...
local SCRIPT_ROOM_COUNTS = [[
local counts, names = {}, {}
for _, tag in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'workers')) do
  if redis.call('EXISTS', ARGV[1] .. 'w:' .. tag) == 1 then
    for _, r in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'w:' .. tag .. ':rooms')) do
      local n = redis.call('SCARD', ARGV[1] .. 'r:' .. r .. ':' .. tag)
      if n > 0 then
        if not counts[r] then counts[r] = 0; names[#names + 1] = r end
        counts[r] = counts[r] + n
      end
    end
  end
end
local out = {}
for _, r in ipairs(names) do out[#out + 1] = r; out[#out + 1] = counts[r] end
return out]]

-- Each live worker: its stats record and client count (a flat list), then the number of rooms
-- with members.
local SCRIPT_STATS = [[
local out, seen, rooms = {}, {}, 0
for _, tag in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'workers')) do
  if redis.call('EXISTS', ARGV[1] .. 'w:' .. tag) == 1 then
    out[#out + 1] = redis.call('GET', ARGV[1] .. 'w:' .. tag .. ':stats') or ''
    out[#out + 1] = redis.call('HLEN', ARGV[1] .. 'w:' .. tag .. ':clients')
    for _, r in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'w:' .. tag .. ':rooms')) do
      if not seen[r] then seen[r] = true; rooms = rooms + 1 end
    end
  end
end
out[#out + 1] = rooms
return out]]

local SCRIPT_CLIENT = [[
if redis.call('EXISTS', ARGV[1] .. 'w:' .. ARGV[2]) == 0 then return false end
return redis.call('HGET', ARGV[1] .. 'w:' .. ARGV[2] .. ':clients', ARGV[3])]]

-- Forgets everything this worker wrote (before a resync): its client hash, its room list and
-- each of its room member sets.
local SCRIPT_FORGET = [[
local p, tag = ARGV[1], ARGV[2]
for _, room in ipairs(redis.call('SMEMBERS', p .. 'w:' .. tag .. ':rooms')) do
  redis.call('DEL', p .. 'r:' .. room .. ':' .. tag)
end
redis.call('DEL', p .. 'w:' .. tag .. ':clients', p .. 'w:' .. tag .. ':rooms')
return 1]]


function M.init(config, tag)
  if not core.redis_configured() then return end
  enabled = true
  P = config.redis.prefix
  TAG = tag
  TTL_MS = math.max(math.floor(config.cluster.heartbeat * 2000), 200)
end

function M.enabled() return enabled end

-- ---- writes (queued in order on this worker's connection) ---------------------------------

function M.put_client(info)
  if not enabled then return end
  fire("HSET", k_clients(), info.clientId, json.encode(info))
  fire("PEXPIRE", k_clients(), TTL_MS)
end

function M.remove_client(id, rooms_left_empty)
  if not enabled then return end
  fire("HDEL", k_clients(), id)
end

function M.room_joined(id, room)
  if not enabled then return end
  fire("SADD", k_room(room), id)
  fire("PEXPIRE", k_room(room), TTL_MS)
  fire("SADD", k_rooms(), room)
  fire("PEXPIRE", k_rooms(), TTL_MS)
end

-- last: no local member is left in the room
function M.room_left(id, room, last)
  if not enabled then return end
  fire("SREM", k_room(room), id)
  if last then fire("SREM", k_rooms(), room) end
end

-- Refreshes every TTL of this worker (rooms: the ones it has members in).
function M.heartbeat(local_rooms)
  if not enabled or not core.redis_connected() then return end
  fire("SET", k_alive(), "1", "PX", TTL_MS)
  fire("SADD", P .. "workers", TAG)
  local s = core.stats() -- the HTTP API's stats method reads it
  fire("SET", k_alive() .. ":stats", json.encode({ workerId = s.workerId, messagesIn = s.messagesIn,
    messagesOut = s.messagesOut }), "PX", TTL_MS)
  fire("PEXPIRE", k_clients(), TTL_MS)
  fire("PEXPIRE", k_rooms(), TTL_MS)
  for _, room in ipairs(local_rooms) do fire("PEXPIRE", k_room(room), TTL_MS) end
  -- dead workers leave {p}workers in moonwire.presence's reap, which sends their clients'
  -- leave events (it runs right after this, in the heartbeat's coroutine)
end

-- After (re)connecting: write the whole local state again (Redis may have lost it).
function M.resync(clients)
  if not enabled then return end
  fire("EVAL", SCRIPT_FORGET, 0, P, TAG)
  fire("EVAL", require("moonwire.presence").SCRIPT_FORGET, 0, P, TAG)
  for _, info in ipairs(clients) do
    local ok, err = pcall(M.put_client, info)
    if not ok then core.log("warn", "cluster: a client record could not be written", { clientId = info.clientId, error = tostring(err) }) end
    for _, room in ipairs(info.rooms or {}) do M.room_joined(info.clientId, room) end
  end
end

-- ---- settling: a reply waits for the writes before it (DESIGN 6) ---------------------------

-- True while some write of this worker has not been acknowledged by Redis yet.
function M.unsettled() return settled < fired end

-- The writes fired so far, and a mark that Redis applied all of them up to n: a reply read on
-- the command connection (history.join's) comes after every write queued before it.
function M.fired() return fired end
function M.settled_upto(n) if n > settled then settled = n end end

-- The running handler's reply must go out at once, without waiting for the writes after
-- that mark: a history join's reply carries the offset of the last frame its client got, and
-- the room's live frames reach the client from then on, so a wait would let them pass it.
local reply_now
function M.reply_now() reply_now = coroutine.running() end

-- Before a reply: settles unless the running handler asked for reply_now.
function M.settle_for_reply()
  local co = coroutine.running()
  if reply_now ~= nil then
    local skip = reply_now == co
    reply_now = nil
    if skip then return end
  end
  M.settle()
end

-- Waits (yields) until Redis has applied every write this worker fired so far: a PING on the
-- same connection is answered only after every command queued before it. The router calls it
-- before a handler's reply, so a client that got the reply of a join (or updateClient, or its
-- connection's first reply) finds that state in every worker's reads. Gives up at once when
-- Redis is down (the writes are replayed on reconnect) or the caller cannot yield.
function M.settle()
  if settled >= fired then return true end
  if not core.redis_connected() or not coroutine.isyieldable() then return false end
  local upto = fired
  local call = scheduler.next_token()
  if not core.redis_call(call, "PING") then return false end
  local pong = scheduler.wait(call)
  if pong == nil then return false end
  if upto > settled then settled = upto end
  return true
end

-- ---- reads (yield the calling coroutine; nil, err when Redis is unavailable) ---------------

local function eval(redis, script, ...)
  return redis:call("EVAL", script, 0, P, ...)
end

function M.room_clients(redis, room) return eval(redis, SCRIPT_ROOM_CLIENTS, room) end
function M.rooms(redis) return eval(redis, SCRIPT_ROOMS) end
function M.count(redis) return eval(redis, SCRIPT_COUNT) end

-- room -> member count, for every room with members (nil, err during an outage).
function M.room_counts(redis)
  local flat, err = eval(redis, SCRIPT_ROOM_COUNTS)
  if type(flat) ~= "table" then return nil, err end
  local out = {}
  for i = 1, #flat, 2 do out[flat[i]] = flat[i + 1] end
  return out
end

-- The live workers [{workerId, connections, messagesIn, messagesOut}] and the number of rooms
-- with members (nil, err during an outage). A worker that has not beaten yet has no figures.
function M.stats(redis)
  local flat, err = eval(redis, SCRIPT_STATS)
  if type(flat) ~= "table" then return nil, err end
  local workers = {}
  for i = 1, #flat - 1, 2 do
    local ok, rec = pcall(json.decode, flat[i])
    if not ok or type(rec) ~= "table" then rec = {} end
    workers[#workers + 1] = { workerId = rec.workerId or "?", connections = flat[i + 1],
                              messagesIn = rec.messagesIn or 0, messagesOut = rec.messagesOut or 0 }
  end
  return workers, flat[#flat]
end

function M.client(redis, id)
  local raw, err = eval(redis, SCRIPT_CLIENT, id:sub(1, #TAG), id)
  if raw == nil then return nil, err end
  if type(raw) ~= "string" then return nil end -- unknown, or its worker is gone
  local ok, info = pcall(json.decode, raw)
  if not ok then return nil, "bad client record in Redis" end
  return info
end

return M
