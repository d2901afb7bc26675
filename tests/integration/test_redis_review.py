"""Regression tests from the review of the Redis and cluster code: a reply never reaches the
wrong handler, subscriber sends reach each client once however many workers there are, bad
metadata is refused before it can break the cluster state, NUL bytes never route a message to
another room, app channels under the prefix reach the app, and transactions are refused on the
shared connection."""
import time

import mwtest
from mwtest import RawWS
from test_redis import redis_server, start  # noqa: F401  (the fixture)

TRICKY = """
local T = {}
function T:inGsub(id, d)
  return (string.gsub("x", "x", function() return self.redis:call("GET", d.key) end))
end
function T:get(id, d) return (self.redis:call("GET", d.key)) end
function T:call(id, d) local v, err = self.redis:call(unpack(d)); return { v = v, err = err } end
function T:meta(id, d) return self.webSocketServer:updateClient(id, "ratio", 1 / 0) end
function T:join(id, d) return { self.webSocketServer:joinRoom(id, d.room) } end
function T:toRoom(id, d) return self.webSocketServer:sendMessageToRoom(d.room, { type = "t", action = "room" }) end
return T
"""


def test_a_reply_never_reaches_another_clients_handler(redis_server, server):
    r = redis_server
    r.cli("SET", "secretA", "A-private")
    r.cli("SET", "keyB", "B-value")
    srv = start(server, r, files={"controllers/t.lua": TRICKY})
    a, b, c = RawWS(srv.port), RawWS(srv.port), RawWS(srv.port)
    r.cli("CLIENT", "PAUSE", "500")
    a.send_json({"type": "t", "action": "inGsub", "data": {"key": "secretA"}, "requestId": 1})
    err = a.recv_json(timeout=5)
    assert err["type"] == "error" and err["data"]["code"] == "internal", err
    assert b.request("t", "get", {"key": "keyB"}, request_id=2, timeout=5)["response"] == "B-value"
    for i in range(5):  # the coroutine pool is healthy
        assert c.request("t", "get", {"key": "keyB"}, request_id=10 + i)["response"] == "B-value"
    assert "cannot run here" in srv.log()


def test_transactions_are_refused_on_the_shared_connection(redis_server, server):
    srv = start(server, redis_server, files={"controllers/t.lua": TRICKY})
    c = RawWS(srv.port)
    for cmd in (["MULTI"], ["EXEC"], ["WATCH", "k"], ["CLIENT", "REPLY", "OFF"]):
        reply = c.request("t", "call", cmd)
        assert reply["type"] == "error" and reply["data"]["code"] == "internal", (cmd, reply)
    assert c.request("t", "call", ["PING"])["response"] == {"v": "PONG"}


def test_metadata_that_is_not_json_is_refused(redis_server, server):
    srv = start(server, redis_server, files={"controllers/t.lua": TRICKY})
    c = RawWS(srv.port)
    reply = c.request("t", "meta")
    assert reply["type"] == "error" and reply["data"]["code"] == "internal", reply
    assert "cannot be stored as JSON" in srv.log()
    assert c.request("t", "join", {"room": "ok"})["response"] == [True]


def test_nul_in_a_room_name_is_refused(redis_server, server):
    srv = start(server, redis_server, files={"controllers/t.lua": TRICKY})
    c = RawWS(srv.port)
    c.send_text('{"type":"t","action":"join","data":{"room":"a\\u0000b"},"requestId":1}')
    assert c.recv_json()["response"] == [False, "Room name must not contain NUL"]
    c.send_text('{"type":"t","action":"toRoom","data":{"room":"a\\u0000secret"},"requestId":2}')
    assert c.recv_json()["data"]["code"] == "internal"


def test_subscriber_sends_reach_each_client_once_with_two_workers(redis_server, server):
    app = """return { subscribers = { { channel = "fanout", handler = function(ch, msg)
      require("moonwire").webSocketServer:sendMessageToAll({ type = "fan", action = "out", data = msg })
    end } } }"""
    srv = start(server, redis_server, app_lua=app, args=("--workers", "2"))
    clients = [RawWS(srv.port) for _ in range(8)]
    time.sleep(0.3)
    redis_server.cli("PUBLISH", "fanout", "tick-1")
    for c in clients:
        assert c.recv_json(timeout=5) == {"type": "fan", "action": "out", "data": "tick-1"}
        c.sock.settimeout(0.5)
        try:
            extra = c.recv_json(timeout=0.5)
        except (TimeoutError, OSError):
            extra = None
        assert extra is None, f"a second copy: {extra}"


def test_app_subscribers_under_the_prefix_run(redis_server, server):
    app = """return { subscribers = { { channel = "moonwire:appchan", handler = function(ch, msg)
      require("moonwire").log:info("APPCHAN " .. msg)
    end } } }"""
    srv = start(server, redis_server, app_lua=app)
    time.sleep(0.3)
    redis_server.cli("PUBLISH", "moonwire:appchan", "hello")
    assert srv.wait_log(lambda t: "APPCHAN hello" in t, timeout=3)
