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
return C
