-- moonwire.server: the `webSocketServer` binding. Messages are encoded here once (a table) or
-- passed through (a JSON string); the C side frames them once for every recipient.
local core = require "moonwire.core"
local json = require "moonwire.json"
local auth = require "moonwire.auth"
local cluster = require "moonwire.cluster"
local room_options = require "moonwire.room_options"
local history = require "moonwire.history"
local presence = require "moonwire.presence"
local scheduler = require "moonwire.scheduler"

local running = coroutine.running

local Server = {}
Server.__index = Server

local encode = json.encode
local array = json.array -- lists go out as JSON arrays, also when empty

local function payload(msg, fname)
  local t = type(msg)
  if t == "string" then return msg end
  if t == "table" then return encode(msg) end
  error(fname .. ": msg must be a table or a JSON string, got " .. t, 3)
end

local function check_id(id, fname)
  if type(id) ~= "string" then
    error(fname .. ": clientId must be a string, got " .. type(id), 3)
  end
end

local MAX_ROOM_NAME = 255

-- ctx = {config = merged config, clients = clientId -> {user, metadata}, fire = fn(event, ...)}
function Server.new(ctx)
  return setmetatable({ _ctx = ctx }, Server)
end

local function deep_copy(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do out[deep_copy(k, seen)] = deep_copy(x, seen) end
  return setmetatable(out, getmetatable(v))
end
Server.deep_copy = deep_copy

--- Sends msg to one client. Returns true when it was queued for a connected client.
function Server:sendMessageToClient(clientId, msg)
  check_id(clientId, "sendMessageToClient")
  return core.send(clientId, payload(msg, "sendMessageToClient"), false, self._ctx.local_only())
end

--- Sends msg to every connected client, except opts.excludeClientId. Returns the count.
function Server:sendMessageToAll(msg, opts)
  local exclude = opts and opts.excludeClientId
  if exclude ~= nil and type(exclude) ~= "string" then
    error("sendMessageToAll: excludeClientId must be a string, got " .. type(exclude), 2)
  end
  return core.broadcast(payload(msg, "sendMessageToAll"), exclude, self._ctx.local_only())
end

--- A fresh table describing the client, or nil: changing it changes nothing on the server.
-- The local client's description (nil when it is not connected to this worker).
function Server:_localClient(clientId)
  local c = core.client_info(clientId)
  if c then
    local state = self._ctx.clients[clientId]
    c.user = state and deep_copy(state.user) or nil
    c.metadata = state and deep_copy(state.metadata) or {}
    if type(c.rooms) == "table" then array(c.rooms) end
  end
  return c
end

-- Writes the local client's record to the cluster state (rooms, metadata changed).
function Server:_publishClient(clientId)
  if not cluster.enabled() then return end
  local c = self:_localClient(clientId)
  if c then c.lastActivity = nil; cluster.put_client(c) end
end

-- Whether this call may ask Redis (cluster-wide reads wait for the reply).
local function cluster_read(self)
  return cluster.enabled() and self._ctx.redis and running() ~= nil
end

--- A fresh table describing the client wherever it is connected in the cluster, or nil.
--- During a Redis outage a client on another worker gives nil, err.
function Server:getClient(clientId)
  check_id(clientId, "getClient")
  local c = self:_localClient(clientId)
  if c or not cluster_read(self) or clientId:sub(1, #self._ctx.tag) == self._ctx.tag then return c end
  local remote_client, err = cluster.client(self._ctx.redis, clientId)
  if type(remote_client) == "table" and type(remote_client.rooms) == "table" then array(remote_client.rooms) end
  return remote_client, err
end

-- A call for a client of another worker: that worker performs it (its events fire there).
-- Returns true when it was sent, false when the client cannot be on another worker.
local function remote(self, clientId, op, ...)
  if self._ctx.clients[clientId] or not cluster.enabled() then return false end
  return core.bus_op(clientId, json.encode({ op, ... }))
end

-- From the bus: run op for our local client clientId.
function Server:_busOp(clientId, op, a, b)
  if op == "joinRoom" then self:joinRoom(clientId, a)
  elseif op == "leaveRoom" then self:leaveRoom(clientId, a)
  elseif op == "leaveAllRooms" then self:leaveAllRooms(clientId)
  elseif op == "updateClient" then self:updateClient(clientId, a, b) end
end

--- Sets metadata[key] = value for the client (nil removes it). Returns false for an unknown client.
function Server:updateClient(clientId, key, value)
  check_id(clientId, "updateClient")
  if type(key) ~= "string" then error("updateClient: key must be a string, got " .. type(key), 2) end
  local ok, why = pcall(json.encode, value)
  if not ok then error("updateClient: the value cannot be stored as JSON: " .. tostring(why), 2) end
  local state = self._ctx.clients[clientId]
  if not state then return remote(self, clientId, "updateClient", key, value) end
  state.metadata = state.metadata or {}
  state.metadata[key] = deep_copy(value)
  self:_publishClient(clientId)
  return true
end

-- The history options {size, ttl} of a room, or nil.
local function history_of(room)
  local o = room_options.match(room)
  return o and o.history
end

-- A join left undone (its history could not be read): the client leaves the room again.
local function undo_join(clientId, room)
  if core.room_leave(clientId, room) then cluster.room_left(clientId, room, #core.room_members(room) == 0) end
end

-- The local client's userId (nil when anonymous or unknown).
local function user_id(self, clientId)
  local s = self._ctx.clients[clientId]
  return s and s.user and s.user.userId
end

-- The client left room (C removed it already): the cluster state, presence (join/leave events).
local function after_leave(clientId, room)
  cluster.room_left(clientId, room, #core.room_members(room) == 0)
  presence.left(clientId, room)
end

--- Adds the client to a room. Returns true, or false and the reason. In a history room it
--- returns true, {offset, epoch [, recovered]}: opts.since = {offset, epoch} replays the
--- messages the client missed first, when they are all kept (waits with Redis).
function Server:joinRoom(clientId, room, opts)
  check_id(clientId, "joinRoom")
  if type(room) ~= "string" or room == "" then return false, "Room name is required" end
  if #room > MAX_ROOM_NAME then return false, "Room name is too long (max " .. MAX_ROOM_NAME .. " bytes)" end
  if room:find("\0", 1, true) then return false, "Room name must not contain NUL" end
  local since_offset, since_epoch
  if opts ~= nil then
    if type(opts) ~= "table" then error("joinRoom: opts must be a table, got " .. type(opts), 2) end
    since_offset, since_epoch = history.parse_since(opts.since)
    if since_offset == false then return false, "Invalid since" end
  end
  local rooms = core.client_rooms(clientId)
  if not rooms then
    if remote(self, clientId, "joinRoom", room) then return true end
    return false, "Unknown client"
  end
  local cfg = self._ctx.config.rooms
  local member = false
  for _, r in ipairs(rooms) do if r == room then member = true end end
  if not member and not cfg.clientCanJoinMultipleRooms then
    for _, r in ipairs(rooms) do
      if core.room_leave(clientId, r) then
        after_leave(clientId, r)
        self._ctx.fire("onLeaveRoom", clientId, r)
      end
    end
    rooms = {}
  end
  if not member and #rooms >= cfg.maxPerClient then
    return false, "Too many rooms (max " .. cfg.maxPerClient .. ")"
  end
  local joined = core.room_join(clientId, room)
  if joined == nil then return false, "Unknown client" end
  if joined then cluster.room_joined(clientId, room) end
  local h, info, err = history_of(room)
  if joined then self:_publishClient(clientId) end
  if h then
    -- the replay is queued before anything else can reach the client in this room
    local upto = cluster.fired()
    info, err = history.join(clientId, room, h, since_offset, since_epoch)
    if info == nil then
      if joined then undo_join(clientId, room); self:_publishClient(clientId) end
      return false, err
    end
    if type(info) == "table" and core.redis_configured() then
      -- its read came after the writes above on the same connection: they are applied, and
      -- the reply must not wait (live frames would pass it); see cluster.reply_now
      cluster.settled_upto(upto)
      cluster.reply_now()
    end
  end
  if joined then
    presence.joined(clientId, room, user_id(self, clientId))
    self._ctx.fire("onJoinRoom", clientId, room)
  end
  if info then
    -- single node: where the room stands after onJoinRoom ran (it may have sent to it)
    local last, epoch = history.position(room, h)
    if last and epoch == info.epoch and last > info.offset then info.offset = last end
    info.replayed = nil
    return true, info
  end
  return true
end

--- Removes the client from a room. Returns true when it was a member.
function Server:leaveRoom(clientId, room)
  check_id(clientId, "leaveRoom")
  if type(room) ~= "string" then return false end
  if not self._ctx.clients[clientId] then return remote(self, clientId, "leaveRoom", room) end
  if core.room_leave(clientId, room) then
    after_leave(clientId, room)
    self:_publishClient(clientId)
    self._ctx.fire("onLeaveRoom", clientId, room)
    return true
  end
  return false
end

--- Removes the client from every room; returns how many it left.
function Server:leaveAllRooms(clientId)
  check_id(clientId, "leaveAllRooms")
  if not self._ctx.clients[clientId] then
    return remote(self, clientId, "leaveAllRooms") and 0 or 0
  end
  local left = core.room_leave_all(clientId) or {}
  for _, r in ipairs(left) do after_leave(clientId, r) end
  if #left > 0 then self:_publishClient(clientId) end
  for _, r in ipairs(left) do self._ctx.fire("onLeaveRoom", clientId, r) end
  return #left
end

--- The clientIds in a room across the cluster (nil, err during a Redis outage).
function Server:getRoomClients(room)
  if type(room) ~= "string" then error("getRoomClients: room must be a string, got " .. type(room), 2) end
  local members, err
  if cluster_read(self) then members, err = cluster.room_clients(self._ctx.redis, room)
  else members = core.room_members(room) end
  if type(members) == "table" then array(members) end
  return members, err
end

--- The rooms with members across the cluster (nil, err during a Redis outage).
function Server:getRooms()
  local names, err
  if cluster_read(self) then names, err = cluster.rooms(self._ctx.redis)
  else names = core.room_names() end
  if type(names) == "table" then array(names) end
  return names, err
end

--- Sends msg to every member of room except opts.excludeClientId; returns the count. In a
--- history room msg must be a JSON object (a table or its text); it gets the next offset.
function Server:sendMessageToRoom(room, msg, opts)
  if type(room) ~= "string" then error("sendMessageToRoom: room must be a string, got " .. type(room), 2) end
  local exclude = opts and opts.excludeClientId
  if exclude ~= nil and type(exclude) ~= "string" then
    error("sendMessageToRoom: excludeClientId must be a string, got " .. type(exclude), 2)
  end
  local h = room_options.any_history() and history_of(room)
  if h then
    if room == "" or #room > MAX_ROOM_NAME or room:find("\0", 1, true) then
      error("sendMessageToRoom: room names are 1 to " .. MAX_ROOM_NAME .. " bytes long, without NUL bytes", 2)
    end
    return history.send(room, h, history.body(msg, "sendMessageToRoom"), exclude, self._ctx.local_only() and scheduler.local_key() or nil)
  end
  return core.room_send(room, payload(msg, "sendMessageToRoom"), exclude, self._ctx.local_only())
end

--- The kept messages of a history room after opts.since (0), oldest first, at most opts.limit
--- (100): {epoch, offset = the last offset, messages = {{offset, message}, ...}}. Raises for a
--- room without history; nil, err when Redis is unavailable (waits with Redis).
function Server:getHistory(room, opts)
  if type(room) ~= "string" then error("getHistory: room must be a string, got " .. type(room), 2) end
  if opts ~= nil and type(opts) ~= "table" then error("getHistory: opts must be a table, got " .. type(opts), 2) end
  local since, limit = opts and opts.since or 0, opts and opts.limit or 100
  if type(since) ~= "number" or since < 0 or since ~= since or math.floor(since) ~= since then
    error("getHistory: since must be an integer >= 0", 2)
  end
  if type(limit) ~= "number" or limit < 1 or math.floor(limit) ~= limit then
    error("getHistory: limit must be an integer >= 1", 2)
  end
  local h = history_of(room)
  if not h then error("getHistory: room '" .. room .. "' has no history (see rooms.options)", 2) end
  if limit > h.size then limit = h.size end
  return history.get(room, h, since, limit)
end

--- Who is in a room with presence, across the cluster: {count, users (distinct userIds, an
--- anonymous client counting as one), clients = {{clientId, userId, joinedAt}, ...}} with the
--- oldest joiner first; opts.limit caps `clients` (then `truncated = true` when it left some
--- out; count and users stay exact). Raises for a room without presence; nil, err when Redis is
--- unavailable (waits with Redis).
function Server:getPresence(room, opts)
  if type(room) ~= "string" then error("getPresence: room must be a string, got " .. type(room), 2) end
  if opts ~= nil and type(opts) ~= "table" then error("getPresence: opts must be a table, got " .. type(opts), 2) end
  local limit = opts and opts.limit
  if limit ~= nil and (type(limit) ~= "number" or limit < 0 or math.floor(limit) ~= limit) then
    error("getPresence: limit must be an integer >= 0", 2)
  end
  local o = room_options.match(room)
  if not (o and o.presence) then error("getPresence: room '" .. room .. "' has no presence (see rooms.options)", 2) end
  if cluster.enabled() and self._ctx.redis then
    scheduler.check("getPresence")
    return presence.get(self._ctx.redis, room, limit)
  end
  return presence.get(nil, room, limit)
end

--- Sends msg to every connection of a user (userId as in client.user.userId); returns the count.
function Server:sendMessageToUser(userId, msg)
  local key = auth.user_key(userId)
  if not key then error("sendMessageToUser: userId must be a number or a string, got " .. type(userId), 2) end
  return core.user_send(key, payload(msg, "sendMessageToUser"), self._ctx.local_only())
end

function Server:stats()
  return core.stats()
end

--- Connected clients across the cluster (nil, err during a Redis outage).
function Server:clientCount()
  if cluster_read(self) then return cluster.count(self._ctx.redis) end
  return core.client_count()
end

function Server:disconnectClient(clientId, code, reason)
  check_id(clientId, "disconnectClient")
  return core.disconnect(clientId, code or 1000, reason or "")
end

--- Raw mode: sends payload unchanged as a text (isBinary false) or binary frame.
function Server:sendRaw(clientId, data, isBinary)
  check_id(clientId, "sendRaw")
  if type(data) ~= "string" then error("sendRaw: payload must be a string, got " .. type(data), 2) end
  local sent = core.send(clientId, data, isBinary and true or false, self._ctx.local_only(), true)
  if sent == nil then -- C checked the text: not UTF-8, nothing was sent
    error("sendRaw: a text payload must be valid UTF-8 (send other bytes with isBinary = true)", 2)
  end
  return sent
end
-- the same in C while no subscriber handler runs (an echo server calls it once per message)
if core.send_raw_method then Server.sendRaw = core.send_raw_method(Server.sendRaw) end
-- ... and through LuaJIT's FFI where it has one: a classic C function ends a compiled trace, an
-- FFI call does not, so an echo loop stays in compiled code
local has_ffi, ffi = pcall(require, "ffi")
if has_ffi and core.send_raw_ffi then
  local send_raw_c = ffi.cast("int (*)(const char *, size_t, const char *, size_t, int)", core.send_raw_ffi)
  local send_raw_lua = Server.sendRaw
  function Server.sendRaw(self, clientId, data, isBinary)
    if type(clientId) == "string" and type(data) == "string" then
      local rv = send_raw_c(clientId, #clientId, data, #data, isBinary and 1 or 0)
      if rv >= 0 then return rv == 1 end
    end
    -- nothing was sent: argument errors, text that is not UTF-8, no memory to frame it (the
    -- method says why, with its own texts), subscriber handlers (their sends stay local)
    return send_raw_lua(self, clientId, data, isBinary)
  end
end

return Server
