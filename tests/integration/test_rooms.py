"""Rooms and client records (CONTRACT-2of5 "Lua webSocketServer" and
"system controller"): the built-in system joinRoom/leaveRoom, the room bindings, room
broadcasts, getClient/updateClient, disconnectClient.

The `rooms` controller (apps/basic/controllers/rooms.lua) wraps each binding; `w` is a
RawWS witness that joins no room and must still be served afterwards.
"""
import re
import time

import pytest

import mwtest
from mwtest import RawWS, wait_until

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def err(text, **extra):
    return {"type": "error", "action": "message", "data": {"error": text, **extra}}


def lst(value):
    """An empty Lua array may be encoded as {} (contract): read it as []."""
    return [] if value == {} else value


def join(c, room, rid=1):
    return c.request("system", "joinRoom", {"roomName": room}, request_id=rid)


def leave(c, room, rid=2):
    return c.request("system", "leaveRoom", {"roomName": room}, request_id=rid)


def send_rooms(c, action, data=None, rid="r"):
    msg = {"type": "rooms", "action": action, "requestId": rid}
    if data is not None:
        msg["data"] = data
    c.send_json(msg)


def reply_of(c, action, rid="r"):
    reply = c.recv_json()
    assert reply.get("type") == "rooms" and reply.get("action") == action and reply.get("requestId") == rid, \
        f"expected the reply to rooms:{action}, got {reply}"
    return reply.get("response")


def call(c, action, data=None, rid="r"):
    """rooms:ACTION(data) -> the response; the next frame must be that reply."""
    send_rooms(c, action, data, rid)
    return reply_of(c, action, rid)


def joined_ok(reply, room, rid=1):
    assert set(reply) == {"type", "action", "response", "requestId"}, reply
    assert reply["type"] == "system" and reply["action"] == "joinRoom" and reply["requestId"] == rid, reply
    resp = reply["response"]
    assert set(resp) == {"success", "message", "data"}, resp
    assert resp["success"] is True
    assert resp["message"] == f"Successfully joined room: {room}"
    assert set(resp["data"]) == {"roomName", "joinedAt"}, resp
    assert resp["data"]["roomName"] == room
    assert isinstance(resp["data"]["joinedAt"], str) and ISO_MS.match(resp["data"]["joinedAt"]), resp
    return resp


def members(c, room):
    return sorted(lst(call(c, "members", {"room": room})["clients"]))


# --------------------------------------------------------------------------- system controller

def test_system_join_and_leave_room_shapes(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    joined_ok(join(c, "lobby"), "lobby")
    reply = leave(c, "lobby", rid=2)
    assert set(reply) == {"type", "action", "response", "requestId"}, reply
    assert reply["type"] == "system" and reply["action"] == "leaveRoom" and reply["requestId"] == 2
    resp = reply["response"]
    assert set(resp) == {"success", "message", "data"}, resp
    assert resp["success"] is True
    assert resp["message"] == "Successfully left room: lobby"
    assert set(resp["data"]) == {"roomName", "leftAt"}
    assert resp["data"]["roomName"] == "lobby"
    assert ISO_MS.match(resp["data"]["leftAt"]), resp
    # leaving again: not a member any more
    assert leave(c, "lobby", rid=3) == {"type": "system", "action": "leaveRoom",
                                        "response": {"success": False, "error": "Not in room"}, "requestId": 3}
    assert leave(c, "never-joined", rid=4)["response"] == {"success": False, "error": "Not in room"}
    c.assert_served()
    w.assert_served()


ABSENT = object()


@pytest.mark.parametrize("data", [{}, {"roomName": ""}, {"roomName": 5}, {"roomName": None},
                                  {"roomName": {"a": 1}}, {"roomName": True}, None, ABSENT],
                         ids=["missing", "empty", "number", "null", "object", "bool", "null-data", "no-data"])
def test_join_room_name_required(server, data):
    srv = server()
    w = srv.client()
    c = srv.client()
    reply = c.request("system", "joinRoom", None if data is ABSENT else data, request_id=9,
                      with_data=data is not ABSENT)
    assert reply == {"type": "system", "action": "joinRoom",
                     "response": {"success": False, "error": "Room name is required"}, "requestId": 9}
    assert lst(call(c, "list")["rooms"]) == []
    c.assert_served()
    w.assert_served()


def test_room_name_too_long(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    too_long = {"success": False, "error": "Room name is too long (max 255 bytes)"}
    assert join(c, "x" * 256)["response"] == too_long
    # the limit is in bytes: 128 two-byte characters are 256 bytes
    assert join(c, "é" * 128)["response"] == too_long
    assert join(c, "y" * 10000)["response"] == too_long
    assert lst(call(c, "list")["rooms"]) == []
    # exactly 255 bytes is fine
    joined_ok(join(c, "x" * 255), "x" * 255)
    # the binding says the same
    assert call(c, "join", {"room": "z" * 256}) == {"ok": False, "reason": "Room name is too long (max 255 bytes)"}
    assert call(c, "join", {"room": ""}) == {"ok": False, "reason": "Room name is required"}
    c.assert_served()
    w.assert_served()


def test_join_more_than_max_per_client(server):
    srv = server(app_lua="return { rooms = { maxPerClient = 3 } }\n")
    w = srv.client()
    c = srv.client()
    for i in range(3):
        joined_ok(join(c, f"room{i}", rid=i), f"room{i}", rid=i)
    reply = join(c, "room3", rid=10)
    assert reply == {"type": "system", "action": "joinRoom",
                     "response": {"success": False, "error": "Too many rooms (max 3)"}, "requestId": 10}
    assert call(c, "join", {"room": "room4"}) == {"ok": False, "reason": "Too many rooms (max 3)"}
    # joining a room already joined succeeds again, without a duplicate membership
    joined_ok(join(c, "room1", rid=11), "room1", rid=11)
    assert members(c, "room1") == [c.client_id]
    info = call(c, "get")["client"]
    assert sorted(lst(info["rooms"])) == ["room0", "room1", "room2"]
    assert members(c, "room3") == []
    # after leaving one, a new one fits again
    assert leave(c, "room0")["response"]["success"] is True
    joined_ok(join(c, "room3", rid=12), "room3", rid=12)
    # another client has its own budget
    d = srv.client()
    joined_ok(join(d, "room3", rid=13), "room3", rid=13)
    assert members(d, "room3") == sorted([c.client_id, d.client_id])
    c.assert_served()
    w.assert_served()


# --------------------------------------------------------------------------- bindings

def test_room_bindings_return_values(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    d = srv.client()
    assert call(c, "join", {"room": "a"}) == {"ok": True}
    assert call(c, "join", {"room": "a"}) == {"ok": True}      # again: fine, no duplicate
    assert call(c, "join", {"room": "b"}) == {"ok": True}
    # a client can be put into a room by another one's handler
    assert call(c, "join", {"room": "a", "id": d.client_id}) == {"ok": True}
    assert members(c, "a") == sorted([c.client_id, d.client_id])
    assert members(c, "b") == [c.client_id]
    assert sorted(lst(call(c, "list")["rooms"])) == ["a", "b"]
    # unknown client
    assert call(c, "join", {"room": "a", "id": "no-such-client-0000000"}) == {"ok": False, "reason": "Unknown client"}
    # leaveRoom: true when it was a member, false otherwise
    assert call(c, "leave", {"room": "b"}) == {"ok": True}
    assert call(c, "leave", {"room": "b"}) == {"ok": False}
    assert call(c, "leave", {"room": "nope"}) == {"ok": False}
    assert sorted(lst(call(c, "list")["rooms"])) == ["a"], "a room without members is not listed"
    # leaveAllRooms: the number of rooms left
    assert call(c, "join", {"room": "b"}) == {"ok": True}
    assert call(c, "join", {"room": "c"}) == {"ok": True}
    assert call(c, "leaveAll") == {"n": 3}
    assert call(c, "leaveAll") == {"n": 0}
    assert members(c, "a") == [d.client_id]
    assert members(c, "c") == []
    assert sorted(lst(call(c, "list")["rooms"])) == ["a"]
    # misuse (a non-string clientId) raises
    assert call(c, "misuse") == {"raised": True}
    c.assert_served()
    d.assert_served()
    w.assert_served()


def test_room_broadcast_with_exclude_client_id(server):
    srv = server()
    w = srv.client()
    a, b, c = (srv.client() for _ in range(3))
    outsider = srv.client()
    for i, x in enumerate((a, b, c)):
        joined_ok(join(x, "r", rid=i), "r", rid=i)
    # excluding the sender: b and c get it, a gets only its reply
    assert call(a, "send", {"room": "r", "payload": {"n": 1}, "exclude": True}, rid="s1") == {"n": 2}
    expected = {"type": "room", "action": "message", "data": {"room": "r", "payload": {"n": 1}, "from": a.client_id}}
    assert b.recv_json() == expected
    assert c.recv_json() == expected
    # excluding somebody else: the sender gets the broadcast (sent during its handler) and then its reply
    send_rooms(a, "send", {"room": "r", "payload": {"n": 2}, "exclude": c.client_id}, rid="s2")
    expected2 = {"type": "room", "action": "message", "data": {"room": "r", "payload": {"n": 2}, "from": a.client_id}}
    assert a.recv_json() == expected2
    assert reply_of(a, "send", rid="s2") == {"n": 2}
    assert b.recv_json() == expected2
    # nobody excluded: all three
    send_rooms(a, "send", {"room": "r", "payload": {"n": 3}}, rid="s3")
    expected3 = {"type": "room", "action": "message", "data": {"room": "r", "payload": {"n": 3}, "from": a.client_id}}
    assert a.recv_json() == expected3
    assert reply_of(a, "send", rid="s3") == {"n": 3}
    assert b.recv_json() == expected3
    # c was excluded from n=2: its next frame is n=3
    assert c.recv_json() == expected3
    # an empty / unknown room reaches nobody
    assert call(a, "send", {"room": "empty", "payload": 0}, rid="s4") == {"n": 0}
    # the next frame of each is its echo reply: nothing else was delivered
    for x in (a, b, c, outsider):
        x.assert_served()
    w.assert_served()


def test_single_room_mode_leaves_other_rooms(server):
    app = """
local function log() return require("moonwire").log end
return {
  rooms = { clientCanJoinMultipleRooms = false },
  events = {
    onJoinRoom = function(clientId, room) log():info("EV join " .. clientId .. " " .. room) end,
    onLeaveRoom = function(clientId, room) log():info("EV leave " .. clientId .. " " .. room) end,
  },
}
"""
    srv = server(app_lua=app)
    w = srv.client()
    c = srv.client()
    other = srv.client()
    joined_ok(join(c, "r1"), "r1")
    joined_ok(join(other, "r1"), "r1")
    joined_ok(join(c, "r2", rid=2), "r2", rid=2)
    assert lst(call(c, "get")["client"]["rooms"]) == ["r2"]
    assert members(c, "r1") == [other.client_id]
    assert members(c, "r2") == [c.client_id]
    assert call(c, "join", {"room": "r3"}) == {"ok": True}
    assert lst(call(c, "get")["client"]["rooms"]) == ["r3"]
    assert members(c, "r2") == []
    assert sorted(lst(call(c, "list")["rooms"])) == ["r1", "r3"]
    log = srv.wait_log(lambda t: f"EV leave {c.client_id} r2" in t, timeout=3)
    assert log and f"EV leave {c.client_id} r1" in log, srv.log()
    assert log.index(f"EV leave {c.client_id} r1") < log.index(f"EV join {c.client_id} r2")
    assert f"EV leave {other.client_id}" not in log
    c.assert_served()
    w.assert_served()


def test_disconnected_client_leaves_all_rooms(server):
    srv = server()
    w = srv.client()
    a = srv.client()
    b = srv.client()
    for room in ("r1", "r2", "r3"):
        joined_ok(join(a, room), room)
    joined_ok(join(b, "r1"), "r1")
    assert members(b, "r1") == sorted([a.client_id, b.client_id])
    a.send_frame(mwtest.OP_CLOSE, mwtest.close_payload(1000))
    assert a.expect_close() == 1000
    assert wait_until(lambda: members(b, "r1") == [b.client_id], timeout=3), members(b, "r1")
    assert members(b, "r2") == []
    assert members(b, "r3") == []
    assert sorted(lst(call(b, "list")["rooms"])) == ["r1"]
    # a room broadcast now reaches only b
    assert call(b, "send", {"room": "r1", "payload": 1, "exclude": True}) == {"n": 0}
    # a client that vanishes without a close handshake leaves its rooms too
    c = srv.client()
    joined_ok(join(c, "r2"), "r2")
    c.close()
    assert wait_until(lambda: members(b, "r2") == [], timeout=3)
    assert sorted(lst(call(b, "list")["rooms"])) == ["r1"]
    b.assert_served()
    w.assert_served()


# --------------------------------------------------------------------------- client records

def test_get_client_shape_and_update_client(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    before_ms = time.time() * 1000
    got = call(c, "get")
    assert got["found"] is True
    info = got["client"]
    keys = {"clientId", "rooms", "metadata", "connectedAt", "lastActivity", "workerId"}
    assert keys <= set(info), f"getClient lacks {keys - set(info)}: {info}"
    assert "user" not in info, f"anonymous client: no `user` expected, got {info}"
    assert info["clientId"] == c.client_id
    assert lst(info["rooms"]) == []
    assert info["metadata"] == {}
    assert isinstance(info["connectedAt"], (int, float)) and isinstance(info["lastActivity"], (int, float))
    assert abs(info["connectedAt"] - before_ms) < 10_000, "connectedAt is in milliseconds"
    assert info["lastActivity"] >= info["connectedAt"]
    assert info["workerId"] is not None
    joined_ok(join(c, "alpha"), "alpha")
    joined_ok(join(c, "beta"), "beta")
    assert call(c, "update", {"key": "nick", "value": "bob"}) == {"ok": True}
    assert call(c, "update", {"key": "level", "value": 3}) == {"ok": True}
    assert call(c, "update", {"key": "tags", "value": {"x": True}}) == {"ok": True}
    info2 = call(c, "get")["client"]
    assert sorted(lst(info2["rooms"])) == ["alpha", "beta"]
    assert info2["metadata"] == {"nick": "bob", "level": 3, "tags": {"x": True}}
    assert info2["connectedAt"] == info["connectedAt"]
    assert info2["lastActivity"] >= info["lastActivity"]
    # overwrite and remove (value nil)
    assert call(c, "update", {"key": "nick", "value": "robert"}) == {"ok": True}
    assert call(c, "update", {"key": "level", "remove": True}) == {"ok": True}
    assert call(c, "get")["client"]["metadata"] == {"nick": "robert", "tags": {"x": True}}
    # another client sees the same record; the table is a fresh copy each time
    d = srv.client()
    seen = call(d, "get", {"id": c.client_id})["client"]
    assert seen["clientId"] == c.client_id and seen["metadata"] == {"nick": "robert", "tags": {"x": True}}
    assert call(d, "update", {"key": "by", "value": "d", "id": c.client_id}) == {"ok": True}
    assert call(c, "get")["client"]["metadata"] == {"nick": "robert", "tags": {"x": True}, "by": "d"}
    # unknown client: getClient nil, updateClient false
    assert call(c, "get", {"id": "no-such-client-0000000"}) == {"found": False}
    assert call(c, "update", {"key": "k", "value": 1, "id": "no-such-client-0000000"}) == {"ok": False}
    # a non-string key is misuse: it raises (internal error frame), the connection lives on
    reply = c.request("rooms", "update", {"key": 5, "value": 1}, request_id="bad")
    assert reply == err("Internal error", code="internal", type="rooms", action="update", requestId="bad")
    c.assert_served()
    d.assert_served()
    w.assert_served()


def test_disconnect_client_known_and_unknown(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    victim = srv.client()
    # unknown id: false, never an error
    assert call(c, "kick", {"id": "no-such-client-0000000", "code": 4000, "reason": "x"}) == {"ok": False}
    assert call(c, "kick", {"id": "", "code": 4000, "reason": "x"}) == {"ok": False}
    assert call(c, "kick", {"id": "no-such-client-0000000"}) == {"ok": False}
    # known id: closed with the given code and reason
    assert call(c, "kick", {"id": victim.client_id, "code": 4000, "reason": "kicked"}) == {"ok": True}
    assert victim.expect_close() == 4000
    assert victim.close_frame.payload[2:] == b"kicked"
    assert victim.tcp_closed
    # gone: a second kick is false, getClient is nil
    assert wait_until(lambda: call(c, "get", {"id": victim.client_id}) == {"found": False}, timeout=3)
    assert call(c, "kick", {"id": victim.client_id, "code": 4000, "reason": "again"}) == {"ok": False}
    c.assert_served()
    w.assert_served()


def test_stats_shape(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    joined_ok(join(c, "s1"), "s1")
    joined_ok(join(c, "s2"), "s2")
    st = call(c, "stats")
    assert set(st) == {"connections", "rooms", "workerId", "messagesIn", "messagesOut"}, st
    assert st["connections"] == 2
    assert st["rooms"] == 2
    assert isinstance(st["messagesIn"], (int, float)) and st["messagesIn"] >= 2
    assert isinstance(st["messagesOut"], (int, float)) and st["messagesOut"] >= 2
    assert st["workerId"] == call(c, "get")["client"]["workerId"]
    c.assert_served()
    w.assert_served()
