-- moonwire.api: the methods of the HTTP API (DESIGN 16), POST /api/METHOD. The C side
-- (runtime/net/mw_httpd.c) has checked the key, the body size, the rate and draining; each call
-- runs here in its own coroutine (it may wait for Redis) through the same webSocketServer
-- binding as controller code, so every method acts on the whole cluster, and answers once
-- through core.api_reply(ticket, status, json).
--   200 {"result": ...}; errors {"error": {"code": C, "message": M}}: 400 invalid (bad JSON or
--   parameters), 404 not_found (unknown method, or a clientId connected nowhere), 503
--   unavailable (Redis down for a read that needs it), 500 internal (a bug: logged).
-- Unknown fields in a body are ignored.
local core = require "moonwire.core"
local json = require "moonwire.json"
local auth = require "moonwire.auth"
local cluster = require "moonwire.cluster"
local room_options = require "moonwire.room_options"
local history = require "moonwire.history"

local encode, decode, null, array, array_mt = json.encode, json.decode, json.null, json.array, json.array_mt

local M = {}

local MAX_ROOM_NAME = 255
local MAX_REASON = 123 -- a close frame's reason, in bytes

-- Raises an answer that is not 200 (caught by M.run).
local function fail(status, code, message)
  error({ api_status = status, code = code, message = message }, 0)
end
local function invalid(message) fail(400, "invalid", message) end
local function unavailable(err)
  fail(503, "unavailable", "Redis is unavailable" .. (err and (": " .. tostring(err)) or ""))
end

local function server() return require("moonwire").webSocketServer end

-- ---- parameters -----------------------------------------------------------------------------

local function is_object(v)
  return type(v) == "table" and getmetatable(v) ~= array_mt and v ~= json.emptyArray
end

local function opt(p, key)
  local v = p[key]
  if v == null then return nil end
  return v
end

local function need_string(p, key)
  local v = opt(p, key)
  if type(v) ~= "string" or v == "" then invalid(key .. " must be a non-empty string") end
  return v
end

local function need_room(p)
  local room = need_string(p, "room")
  if #room > MAX_ROOM_NAME then invalid("room must be at most " .. MAX_ROOM_NAME .. " bytes long") end
  if room:find("\0", 1, true) then invalid("room must not contain NUL") end
  return room
end

local function need_message(p)
  local m = opt(p, "message")
  if not is_object(m) then invalid("message must be a JSON object") end
  return m
end

-- A userId as tokens give it: a string, or an integer a double holds exactly.
local function need_user(p)
  local u = opt(p, "userId")
  if not auth.user_key(u) or u == "" or (type(u) == "number" and (u ~= u or u % 1 ~= 0 or math.abs(u) > 2 ^ 53)) then
    invalid("userId must be a non-empty string or an integer")
  end
  return u
end

local function opt_int(p, key, min)
  local v = opt(p, key)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v % 1 ~= 0 or v < min or v > 2 ^ 53 then
    invalid(key .. " must be an integer >= " .. min)
  end
  return v
end

-- The client wherever it is connected, or a 404 (503 when Redis cannot tell).
local function need_client(p)
  local id = need_string(p, "clientId")
  local c, err = server():getClient(id)
  if c == nil and err then unavailable(err) end
  if c == nil then fail(404, "not_found", "No client " .. id .. " is connected") end
  return id, c
end

-- ---- the methods ----------------------------------------------------------------------------

local methods = {}

function methods.publish(p)
  local room, message = need_room(p), need_message(p)
  local h = room_options.any_history() and room_options.match(room)
  h = h and h.history
  if not h then
    server():sendMessageToRoom(room, message)
    return {}
  end
  local offset, err = history.publish_wait(room, h, history.body(message, "publish"))
  if not offset then unavailable(err) end
  return { offset = offset }
end

function methods.broadcast(p)
  server():sendMessageToAll(need_message(p))
  return {}
end

function methods.sendToUser(p)
  local user, message = need_user(p), need_message(p)
  server():sendMessageToUser(user, message)
  return {}
end

function methods.sendToClient(p)
  local id, message = need_string(p, "clientId"), need_message(p)
  server():sendMessageToClient(id, message)
  return {}
end

function methods.disconnect(p)
  local id, user = opt(p, "clientId"), opt(p, "userId")
  if (id == nil) == (user == nil) then invalid("give either clientId or userId") end
  local code = opt_int(p, "code", 1000) or 1000
  if code ~= 1000 and (code < 3000 or code > 4999) then invalid("code must be 1000 or 3000-4999") end
  local reason = opt(p, "reason") or ""
  if type(reason) ~= "string" or #reason > MAX_REASON then
    invalid("reason must be a string of at most " .. MAX_REASON .. " bytes")
  end
  if id ~= nil then
    need_client(p)
    server():disconnectClient(id, code, reason)
  else
    core.user_disconnect(auth.user_key(need_user(p)), code, reason)
  end
  return {}
end

function methods.joinRoom(p)
  local id = need_client(p)
  local room = need_room(p)
  local ok, info = server():joinRoom(id, room)
  if not ok then
    if info == "Unknown client" then fail(404, "not_found", "No client " .. id .. " is connected") end
    if info and tostring(info):find("unavailable", 1, true) then unavailable(info) end
    invalid(tostring(info or "the client could not join"))
  end
  return {} -- the same wherever the client is (a join on another worker is done there)
end

function methods.leaveRoom(p)
  local id = need_client(p)
  server():leaveRoom(id, need_room(p))
  return {}
end

-- getPresence's table: {count, users, clients = [{clientId, userId, joinedAt}, ...]}; limit caps
-- clients (then truncated = true).
function methods.presence(p)
  local room = need_room(p)
  local limit = opt_int(p, "limit", 0)
  local o = room_options.match(room)
  if not (o and o.presence) then invalid("room " .. room .. " has no presence (see rooms.options)") end
  local t, err = server():getPresence(room, limit and { limit = limit } or nil)
  if not t then unavailable(err) end
  return t
end

function methods.history(p)
  local room = need_room(p)
  local since, limit = opt_int(p, "since", 0), opt_int(p, "limit", 1)
  local o = room_options.match(room)
  if not (o and o.history) then invalid("room " .. room .. " has no history (see rooms.options)") end
  local h, err = server():getHistory(room, { since = since, limit = limit })
  if not h then unavailable(err) end
  return h
end

function methods.client(p)
  local id = need_string(p, "clientId")
  local c, err = server():getClient(id)
  if c == nil and err then unavailable(err) end
  if c == nil then return null end
  return c
end

-- [{room, members}] largest first (then by name); limit: at most that many (all by default).
function methods.rooms(p)
  local limit = opt_int(p, "limit", 1)
  local list = {}
  if cluster.enabled() then
    local counts, err = cluster.room_counts(require("moonwire").redis)
    if not counts then unavailable(err) end
    for room, n in pairs(counts) do list[#list + 1] = { room = room, members = n } end
  else
    for _, room in ipairs(core.room_names()) do
      list[#list + 1] = { room = room, members = #core.room_members(room) }
    end
  end
  table.sort(list, function(a, b)
    if a.members ~= b.members then return a.members > b.members end
    return a.room < b.room
  end)
  if limit then for i = #list, limit + 1, -1 do list[i] = nil end end
  return array(list)
end

-- {connections, rooms, workers = [{workerId, connections, messagesIn, messagesOut}]}
function methods.stats()
  local me = core.stats()
  local mine = { workerId = me.workerId, connections = me.connections, messagesIn = me.messagesIn,
                 messagesOut = me.messagesOut }
  if not cluster.enabled() then
    return { connections = me.connections, rooms = me.rooms, workers = array({ mine }) }
  end
  local workers, rooms_or_err = cluster.stats(require("moonwire").redis)
  if not workers then unavailable(rooms_or_err) end
  local total, list = 0, {}
  for _, w in ipairs(workers) do
    if w.workerId == me.workerId then w = mine end
    total = total + w.connections
    list[#list + 1] = w
  end
  table.sort(list, function(a, b) return a.workerId < b.workerId end)
  return { connections = total, rooms = rooms_or_err, workers = array(list) }
end

M.methods = methods

-- ---- running a call -------------------------------------------------------------------------

local function error_body(code, message)
  return encode({ error = { code = code, message = message } })
end

-- Runs method `name` with the JSON body text and answers ticket. Called in its own coroutine.
function M.run(ticket, name, body)
  local fn = rawget(methods, name)
  if type(fn) ~= "function" then
    return core.api_reply(ticket, 404, error_body("not_found", "Unknown method (see docs/reference.md, HTTP API)"))
  end
  local params = {}
  if body:find("%S") then
    local ok, v = pcall(decode, body)
    if not ok then return core.api_reply(ticket, 400, error_body("invalid", "The body is not valid JSON")) end
    if not is_object(v) then return core.api_reply(ticket, 400, error_body("invalid", "The body must be a JSON object")) end
    params = v
  end
  local ok, result = pcall(fn, params)
  if cluster.unsettled() then cluster.settle() end -- what the call wrote is in Redis before the answer
  local text
  if ok then
    ok, text = pcall(encode, { result = result == nil and null or result })
    if ok then return core.api_reply(ticket, 200, text) end
    result = text
  end
  if type(result) == "table" and result.api_status then
    return core.api_reply(ticket, result.api_status, error_body(result.code, result.message))
  end
  -- a binding refused an argument (a message holding NaN, ...): the caller's mistake
  local msg = type(result) == "table" and tostring(result.message) or tostring(result)
  if msg:find("NaN", 1, true) or msg:find("inf", 1, true) or msg:find("must be", 1, true) then
    return core.api_reply(ticket, 400, error_body("invalid", (msg:gsub("^[^:]*:%d+: ", ""))))
  end
  core.log("error", "api: method failed", { method = name, error = msg })
  return core.api_reply(ticket, 500, error_body("internal", "Internal error"))
end

return M
