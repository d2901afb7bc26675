-- controllers/chat.lua: messages of type "chat" (see ../README.md for the whole protocol).
-- Rooms are joined with the built-in system/joinRoom (so the room's canJoin in app.lua applies,
-- and moonwire.js rejoins and recovers missed messages by itself); who is online comes from
-- system/presence and the presence/join, presence/leave events. This controller adds:
--   setNickname {nickname}  -> {nickname}            guests only; 1-32 characters, trimmed;
--                                                    the room is told with chat/renamed
--   send {text}             -> {id, delivered}       1-1000 characters, to the client's room;
--                                                    stored in the database (table messages)
--   history                 -> {room, messages}      the room's last 50 stored messages, oldest first
--   names {clientIds}       -> {names = {clientId = nickname}}  the guests' nicknames
--   report                  -> {jobId}               the room's statistics, computed by
--                              jobs/report.lua in the background and pushed as queue/completed
-- Pushed to a room: {"type":"chat","action":"message","data":{id, room, clientId, nickname, text, at},
-- "room":R,"offset":N} (room and offset added by the room's history) and
-- {"type":"chat","action":"renamed","data":{clientId, nickname}}.
-- Bad input is answered with an error frame: code "invalid" or "not_in_room".
local Chat = {}

local MAX_NICKNAME, MAX_TEXT, HISTORY, MAX_NAMES = 32, 1000, 50, 1000

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

-- How a client is shown: a signed-in user by the userId of its token, a guest by its nickname,
-- or "guest-" and the end of its clientId (the start is the worker's tag, shared by many).
local function nameOf(client)
  if client.user then return tostring(client.user.userId) end
  return client.metadata.nickname or ("guest-" .. client.clientId:sub(-6))
end

-- The client's room (one at a time, see app.lua), or an error frame "not_in_room".
local function roomOf(client)
  local room = client and client.rooms[1]
  if not room then error({ code = "not_in_room", message = "join a room first" }) end
  return room
end

function Chat:setNickname(clientId, data)
  local nick = field(data, "nickname", MAX_NICKNAME)
  if nick:find("%c") then error({ code = "invalid", message = "nickname has control characters" }) end
  local ws = self.webSocketServer
  local client = ws:getClient(clientId)
  if client.user then
    error({ code = "invalid", message = "signed-in users are named by their token (" .. nameOf(client) .. ")" })
  end
  ws:updateClient(clientId, "nickname", nick)
  local room = client.rooms[1]
  if room then -- the others' member lists show nicknames
    ws:sendMessageToRoom(room, { type = "chat", action = "renamed", data = { clientId = clientId, nickname = nick } })
  end
  return { nickname = nick }
end

-- The room's last HISTORY stored messages, oldest first (an empty list when the database
-- fails: the chat goes on without them, the log says why).
function Chat:history(clientId)
  local room = roomOf(self.webSocketServer:getClient(clientId))
  local rows, err = self.database:query(
    "SELECT id, clientId, nickname, text, at FROM messages WHERE room = ? ORDER BY id DESC LIMIT ?", room, HISTORY)
  if not rows then
    self.log:warn("chat: history unavailable", { room = room, error = err })
    rows = {}
  end
  local messages = {}
  for i = #rows, 1, -1 do
    local r = rows[i]
    messages[#messages + 1] = { id = r.id, room = room, clientId = r.clientId, nickname = r.nickname, text = r.text, at = r.at }
  end
  return { room = room, messages = messages }
end

-- Stored first, so that the message carries its row id: the page shows each id once, also
-- when a live message and the history reply cross.
function Chat:send(clientId, data)
  local text = field(data, "text", MAX_TEXT)
  local ws = self.webSocketServer
  local client = ws:getClient(clientId)
  local room = roomOf(client)
  local message = {
    room = room, clientId = clientId, nickname = nameOf(client), text = text,
    at = client.lastActivity or os.time() * 1000, -- ms; lastActivity = when this message arrived
  }
  local postgres = self.database:backend() == "postgres"
  local stored, err = self.database:exec(
    "INSERT INTO messages (room, clientId, nickname, text, at) VALUES (?, ?, ?, ?, ?)" ..
    (postgres and " RETURNING id" or ""), room, clientId, message.nickname, text, message.at)
  if stored then
    message.id = stored.lastInsertId
  else
    self.log:warn("chat: message not stored", { room = room, error = err }) -- sent all the same
  end
  local delivered = ws:sendMessageToRoom(room, { type = "chat", action = "message", data = message })
  return { id = message.id, delivered = delivered }
end

-- {clientIds = {...}} -> {names = {[clientId] = nickname}}: the nicknames of the guests among
-- them (signed-in users are listed by the userId that presence already gives).
function Chat:names(clientId, data)
  local ids = type(data) == "table" and data.clientIds
  if type(ids) ~= "table" or #ids > MAX_NAMES then
    error({ code = "invalid", message = "clientIds must be a list of at most " .. MAX_NAMES .. " clientIds" })
  end
  local ws, names = self.webSocketServer, {}
  for _, id in ipairs(ids) do
    local client = type(id) == "string" and ws:getClient(id)
    if client and not client.user and client.metadata.nickname then names[id] = client.metadata.nickname end
  end
  return { names = names }
end

function Chat:report(clientId)
  local room = roomOf(self.webSocketServer:getClient(clientId))
  local jobId, err = self.queue:add("report", { room = room, clientId = clientId }, { attempts = 2 })
  if not jobId then error({ code = "unavailable", message = "the report cannot be queued now: " .. err }) end
  return { jobId = jobId }
end

return Chat
