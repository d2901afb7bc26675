-- examples/chat: a chat with rooms and nicknames (controllers/chat.lua, public/ for the page).
-- Messages are stored in the database (SQLite in data/app.db by default, or --database
-- postgres://...) and the last 50 are shown on join; jobs/report.lua computes a room report
-- in the background.
-- A client is in one room at a time: joining another room leaves the previous one, and
-- leaving (or disconnecting, which leaves every room first) tells the people still in the
-- room that the member list changed.
local function memberList(server, room, leaving)
  local members = {}
  for _, id in ipairs(server:getRoomClients(room) or {}) do
    if id ~= leaving then
      local client = server:getClient(id)
      if client then
        members[#members + 1] = {
          clientId = id,
          nickname = client.metadata.nickname or ("guest-" .. id:sub(1, 6)),
        }
      end
    end
  end
  return members
end

return {
  rooms = { clientCanJoinMultipleRooms = false },
  events = {
    -- Every worker makes sure the table exists (the statements are idempotent).
    onServerStarted = function(mw)
      local postgres = mw.config.database.url:find("^postgres") ~= nil
      local ok, err = mw.database:exec("CREATE TABLE IF NOT EXISTS messages (" ..
        (postgres and "id BIGSERIAL PRIMARY KEY" or "id INTEGER PRIMARY KEY") ..
        ", room TEXT NOT NULL, clientId TEXT NOT NULL, nickname TEXT NOT NULL, text TEXT NOT NULL, at BIGINT NOT NULL)")
      if ok then ok, err = mw.database:exec("CREATE INDEX IF NOT EXISTS messages_room ON messages (room, id)") end
      if not ok then mw.log:error("chat: cannot create the messages table", { error = err }) end
    end,
    onLeaveRoom = function(clientId, room)
      local server = require("moonwire").webSocketServer
      local members = memberList(server, room, clientId)
      if #members == 0 then return end -- nobody left to tell
      server:sendMessageToRoom(room, {
        type = "chat", action = "members", data = { room = room, members = members },
      })
    end,
    -- A disconnect leaves every room first (onLeaveRoom above runs for each), so the rooms
    -- are already told; this only logs.
    onDisconnect = function(clientId, code)
      require("moonwire").log:info("chat: client left", { clientId = clientId, code = code })
    end,
  },
}
