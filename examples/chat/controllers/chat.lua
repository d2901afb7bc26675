-- controllers/chat.lua: messages of type "chat" (see ../README.md for the whole protocol).
--   setNickname {nickname}  -> {nickname}             1-32 characters, trimmed
--   join {room}             -> {room, members, history} leaves the previous room (app.lua);
--                              history: the room's last 50 messages, oldest first
--   send {text}             -> {delivered = n}        1-1000 characters, to the client's room;
--                              stored in the database (table messages, see app.lua)
--   members                 -> {room, members}
--   report                  -> {jobId}                the room's statistics are computed by
--                              jobs/report.lua in the background and pushed as queue/completed
-- Pushed to a room: {"type":"chat","action":"message","data":{room, clientId, nickname, text, at}}
-- and {"type":"chat","action":"members","data":{room, members = {{clientId, nickname}, ...}}}.
-- Bad input is answered with an error frame: code "invalid" or "not_in_room".
local Chat = {}

local MAX_NICKNAME, MAX_ROOM, MAX_TEXT, HISTORY = 32, 64, 1000, 50

-- Characters, not bytes: counts the bytes that do not continue a UTF-8 sequence.
local function length(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

-- data[key] as a trimmed string of 1..max characters, or a coded error naming the field.
local function field(data, key, max)
  local value = type(data) == "table" and data[key] or nil
  if type(value) ~= "string" then
    error({ code = "invalid", message = key .. " is required" })
  end
  value = value:match("^%s*(.*%S)") or "" -- trim (linear: no backtracking over long input)
  if value == "" then error({ code = "invalid", message = key .. " is required" }) end
  if length(value) > max then
    error({ code = "invalid", message = key .. " is too long (max " .. max .. " characters)" })
  end
  return value
end

local function nickname(client)
  return client.metadata.nickname or ("guest-" .. client.clientId:sub(1, 6))
end

-- The room the client is in (one at a time, see app.lua), or nil.
local function roomOf(client)
  return client and client.rooms[1]
end

function Chat:_members(room)
  local ws = self.webSocketServer
  local members = {}
  for _, id in ipairs(ws:getRoomClients(room) or {}) do
    local client = ws:getClient(id)
    if client then members[#members + 1] = { clientId = id, nickname = nickname(client) } end
  end
  return members
end

function Chat:_announceMembers(room, members, excludeClientId)
  self.webSocketServer:sendMessageToRoom(room, {
    type = "chat", action = "members", data = { room = room, members = members },
  }, { excludeClientId = excludeClientId })
end

function Chat:setNickname(clientId, data)
  local nick = field(data, "nickname", MAX_NICKNAME)
  if nick:find("%c") then error({ code = "invalid", message = "nickname has control characters" }) end
  local ws = self.webSocketServer
  ws:updateClient(clientId, "nickname", nick)
  local room = roomOf(ws:getClient(clientId))
  if room then self:_announceMembers(room, self:_members(room)) end -- the list shows nicknames
  return { nickname = nick }
end

-- The room's last HISTORY messages, oldest first (an empty list when the database fails: the
-- chat goes on without history, the log says why).
function Chat:_history(room)
  local rows, err = self.database:query(
    "SELECT clientId, nickname, text, at FROM messages WHERE room = ? ORDER BY id DESC LIMIT ?", room, HISTORY)
  if not rows then
    self.log:warn("chat: history unavailable", { room = room, error = err })
    return {}
  end
  local history = {}
  for i = #rows, 1, -1 do
    local r = rows[i]
    history[#history + 1] = { room = room, clientId = r.clientId, nickname = r.nickname, text = r.text, at = r.at }
  end
  return history
end

function Chat:join(clientId, data)
  local room = field(data, "room", MAX_ROOM)
  local ws = self.webSocketServer
  local ok, reason = ws:joinRoom(clientId, room) -- leaves the previous room first
  if not ok then error({ code = "invalid", message = reason or "cannot join " .. room }) end
  local members = self:_members(room)
  self:_announceMembers(room, members, clientId) -- the joiner gets the list in the reply
  return { room = room, members = members, history = self:_history(room) }
end

function Chat:send(clientId, data)
  local text = field(data, "text", MAX_TEXT)
  local ws = self.webSocketServer
  local client = ws:getClient(clientId)
  local room = roomOf(client)
  if not room then error({ code = "not_in_room", message = "join a room first" }) end
  local message = {
    room = room, clientId = clientId, nickname = nickname(client), text = text,
    at = client.lastActivity or os.time() * 1000, -- ms; lastActivity = when this message arrived
  }
  local delivered = ws:sendMessageToRoom(room, { type = "chat", action = "message", data = message })
  local stored, err = self.database:exec(
    "INSERT INTO messages (room, clientId, nickname, text, at) VALUES (?, ?, ?, ?, ?)",
    room, clientId, message.nickname, text, message.at)
  if not stored then self.log:warn("chat: message not stored", { room = room, error = err }) end
  return { delivered = delivered }
end

function Chat:report(clientId)
  local room = roomOf(self.webSocketServer:getClient(clientId))
  if not room then error({ code = "not_in_room", message = "join a room first" }) end
  local jobId, err = self.queue:add("report", { room = room, clientId = clientId }, { attempts = 2 })
  if not jobId then error({ code = "unavailable", message = "the report cannot be queued now: " .. err }) end
  return { jobId = jobId }
end

function Chat:members(clientId)
  local room = roomOf(self.webSocketServer:getClient(clientId))
  if not room then error({ code = "not_in_room", message = "join a room first" }) end
  return { room = room, members = self:_members(room) }
end

return Chat
