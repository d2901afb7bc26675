-- examples/chat: a chat with rooms, nicknames, presence and a private room (controllers/chat.lua,
-- public/ for the page). Messages are stored in the database (SQLite in data/app.db by default,
-- or --database postgres://...) so the page shows the last 50 on join; jobs/report.lua computes
-- a room report in the background.
-- The rooms are declared below: every room keeps its recent messages (history), so a page that
-- reconnects gets what it missed, and lists who is online (presence) with join/leave events.
-- Rooms "vip:*" are only for tokens with the claim vip = true (examples/chat/token.py).

-- For trying the example only: anybody who reads this file can sign tokens with it. In
-- production set CHAT_SECRET (32+ characters) and let your login service issue the tokens.
local DEV_SECRET = "chat-example-dev-secret-change-me-0123456789"

return {
  auth = { secret = os.getenv("CHAT_SECRET") or DEV_SECRET, required = false }, -- guests welcome
  rooms = {
    clientCanJoinMultipleRooms = false, -- one room at a time: joining another leaves the first
    options = { -- the first entry whose pattern matches applies
      { pattern = "vip:*", history = { size = 100, ttl = 3600 }, presence = true, joinLeave = true,
        -- checked for every join a client asks for (system/joinRoom, and moonwire.js's rejoins)
        canJoin = function(clientId, room, client)
          if client.user and client.user.payload.vip == true then return true end
          return "VIP rooms need a token with the vip claim" -- the page shows this reason
        end },
      -- every other room: the last 100 messages (kept for an hour after the last one), who
      -- is online, and presence/join + presence/leave events to the members
      { pattern = "*", history = { size = 100, ttl = 3600 }, presence = true, joinLeave = true },
    },
  },
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
    onDisconnect = function(clientId, code)
      require("moonwire").log:info("chat: client left", { clientId = clientId, code = code })
    end,
  },
}
