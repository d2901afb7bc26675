-- c: cluster test controller: every webSocketServer send, plus the worker that serves the caller.
local C = {}
local ws = function(self) return self.webSocketServer end
function C:who(id) return self.worker.id end
function C:join(id, d) return ws(self):joinRoom(id, d.room) end
function C:leave(id, d) return ws(self):leaveRoom(id, d.room) end
function C:all(id, d) return ws(self):sendMessageToAll({ type = "c", action = "all", data = d.n }, { excludeClientId = d.exclude and id or nil }) end
function C:room(id, d) return ws(self):sendMessageToRoom(d.room, { type = "c", action = "room", data = d.n }, { excludeClientId = d.exclude and id or nil }) end
function C:user(id, d) return ws(self):sendMessageToUser(d.user, { type = "c", action = "user", data = d.n }) end
function C:to(id, d) return ws(self):sendMessageToClient(d.target, { type = "c", action = "direct", data = d.n }) end
function C:kick(id, d) return ws(self):disconnectClient(d.target, 4000, "kicked") end
function C:members(id, d) local m, err = ws(self):getRoomClients(d.room); return { members = m, err = err } end
function C:rooms(id) local r, err = ws(self):getRooms(); return { rooms = r, err = err } end
function C:count(id) local n, err = ws(self):clientCount(); return { count = n, err = err } end
function C:info(id, d)
  local c, err = ws(self):getClient(d.target)
  return { found = c ~= nil, err = err, workerId = c and c.workerId, rooms = c and c.rooms,
           nick = c and c.metadata and c.metadata.nick, userId = c and c.user and c.user.userId }
end
function C:nick(id, d) return ws(self):updateClient(id, "nick", d.nick) end
function C:joinOther(id, d) return ws(self):joinRoom(d.target, d.room) end
function C:leaveOther(id, d) return ws(self):leaveRoom(d.target, d.room) end
function C:tagOther(id, d) return ws(self):updateClient(d.target, "tag", d.value) end
return C
