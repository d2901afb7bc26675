-- examples/chat: a chat with rooms and nicknames (controllers/chat.lua, public/ for the page).
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
