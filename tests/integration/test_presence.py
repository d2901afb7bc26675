"""Join permissions (canJoin), presence and join/leave events on one server (DESIGN 11, 13, 14;
docs/reference.md "Presence and join permissions"). Each test runs single node (the worker's
memory) and with one worker on --redis (the records in Redis). Several workers and servers on
one Redis, and dead workers: test_presence_cluster.py."""
import asyncio
import json
import os
import time

import jwt
import pytest

import mwtest
from mwtest import arun, ws_connect
from test_redis import REDIS_SERVER, RedisProc

SECRET = "s3cr3t-for-moonwire-tests-0123456789abcdef"

PRESENCE_APP = """
local mw = function() return require("moonwire") end
return {
  auth = { secret = %(secret)r, algorithm = "HS256" },
  cluster = { heartbeat = 0.5 },
  limits = { handlerTimeout = 1 },
  rooms = { options = {
    { pattern = "p:*", presence = true, joinLeave = true },
    { pattern = "quiet:*", presence = true },
    { pattern = "ev:*", joinLeave = true },
    { pattern = "hp:*", history = { size = 10 }, presence = true, joinLeave = true },
    { pattern = "nobody:*", canJoin = false },
    { pattern = "user:*", canJoin = function(clientId, room, client)
        return client.user ~= nil and room == "user:" .. tostring(client.user.userId) end },
    { pattern = "vip:*", canJoin = function(clientId, room, client)
        return (client.user ~= nil and client.user.payload.vip == true) or "VIP only" end },
    { pattern = "odd:nil", canJoin = function() end },
    { pattern = "odd:num", canJoin = function() return 1 end },
    { pattern = "odd:tab", canJoin = function() return {} end },
    { pattern = "odd:empty", canJoin = function() return "" end },
    { pattern = "odd:raise", canJoin = function() error("boom in canJoin") end },
    { pattern = "slow:*", canJoin = function() mw().timer:sleep(3) return true end },
    { pattern = "io:*", canJoin = function(clientId, room)
        if mw().redis then return mw().redis:call("SISMEMBER", "allowed", room) == 1 end
        mw().timer:sleep(0.05)
        return room == "io:open"
      end },
    { pattern = "hist:*", history = { size = 10 }, canJoin = function(clientId, room, client)
        return client.metadata.ok == true end },
  } },
}
"""

PT_CONTROLLER = r"""
local cjson = require "cjson"
local P = {}
local function arg(v) if v == cjson.null then return nil end return v end
function P:who(clientId) return self.worker.id end
-- server code: never checked by canJoin
function P:join(clientId, data)
  local ok, info = self.webSocketServer:joinRoom(arg(data.clientId) or clientId, data.room)
  return { ok = ok, info = info }
end
function P:leave(clientId, data)
  return { ok = self.webSocketServer:leaveRoom(arg(data.clientId) or clientId, data.room) }
end
function P:presence(clientId, data)
  local ok, p, err = pcall(self.webSocketServer.getPresence, self.webSocketServer, data.room,
    arg(data.limit) and { limit = data.limit } or nil)
  if not ok then return { error = tostring(p) } end
  return { presence = p, err = err }
end
function P:meta(clientId, data)
  return self.webSocketServer:updateClient(clientId, data.key, data.value)
end
function P:allow(clientId, data)
  if self.redis then self.redis:call("SADD", "allowed", data.room) end
  return true
end
function P:send(clientId, data)
  return self.webSocketServer:sendMessageToRoom(data.room, { text = data.text })
end
return P
"""


def token(sub, **extra):
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 600, **extra}, SECRET, algorithm="HS256")


def app_lua():
    return PRESENCE_APP % {"secret": SECRET}


@pytest.fixture(params=["single", "redis"])
def mode(request, tmp_path):
    if request.param == "single":
        yield None
        return
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server not installed")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    r = RedisProc(workdir, mwtest.free_port()).start()
    yield r
    r.kill()


@pytest.fixture
def pres(server, mode):
    def start(workers=1):
        args = ("--redis", mode.url, "--workers", str(workers)) if mode else ()
        srv = server(app_lua=app_lua(), files={"controllers/pt.lua": PT_CONTROLLER}, args=args)
        srv.redis = mode
        return srv
    return start


async def connect(srv, sub=None, **claims):
    path = None if sub is None else srv.path + "?token=" + token(sub, **claims)
    c = await ws_connect(srv, path=path)
    c.inbox = []
    if sub is not None:
        auth = await c.recv()
        assert auth["action"] == "authenticated", auth
    return c


async def req(c, type_, action, data, rid=None):
    """A request; frames that arrive before its reply are kept in c.inbox."""
    rid = rid or f"{action}-{time.monotonic_ns()}"
    await c.send({"type": type_, "action": action, "data": data, "requestId": rid})
    while True:
        m = await c.recv()
        if m.get("requestId") == rid or (m.get("type") == "error" and m["data"].get("requestId") == rid):
            return m.get("response", m)
        c.inbox.append(m)


async def join(c, room, **extra):
    return await req(c, "system", "joinRoom", {"roomName": room, **extra})


async def pt(c, action, **data):
    return await req(c, "pt", action, data)


async def events(c, n, timeout=15):
    """The next n presence frames of c (inbox first)."""
    out = [m for m in c.inbox if m.get("type") == "presence"]
    c.inbox = [m for m in c.inbox if m.get("type") != "presence"]
    deadline = time.monotonic() + timeout
    while len(out) < n:
        m = await c.recv(max(0.1, deadline - time.monotonic()))
        if m.get("type") == "presence":
            out.append(m)
    return out


async def no_presence_frame(c, seconds=0.5):
    assert not [m for m in c.inbox if m.get("type") == "presence"], c.inbox
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            m = await c.recv(max(0.05, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return
        assert m.get("type") != "presence", m


NOT_ALLOWED = {"success": False, "error": "Not allowed"}


# ---------------------------------------------------------------------------- canJoin

def test_can_join_refusals_and_server_code(pres):
    srv = pres()

    async def run():
        anon = await connect(srv)
        alice = await connect(srv, "alice")
        vip = await connect(srv, "victor", vip=True)
        assert await join(anon, "nobody:x") == NOT_ALLOWED
        assert await join(alice, "nobody:x") == NOT_ALLOWED
        # server code is never checked
        r = await pt(alice, "join", room="nobody:x")
        assert r["ok"] is True
        # personal rooms: only the owner
        assert (await join(alice, "user:alice"))["success"] is True
        assert await join(alice, "user:bob") == NOT_ALLOWED
        assert await join(anon, "user:alice") == NOT_ALLOWED
        # a string is the refusal's text
        assert await join(alice, "vip:lounge") == {"success": False, "error": "VIP only"}
        assert (await join(vip, "vip:lounge"))["success"] is True
        # a check that waits on I/O
        assert await join(alice, "io:closed") == NOT_ALLOWED
        if srv.redis:
            await pt(alice, "allow", room="io:open")
        assert (await join(alice, "io:open"))["success"] is True
        # a refused client is not a member
        assert await req(alice, "system", "leaveRoom", {"roomName": "user:bob"}) == \
            {"success": False, "error": "Not in room"}
        # rooms without canJoin are open as before
        assert (await join(anon, "free"))["success"] is True
    arun(run())


def test_can_join_odd_values_refuse_and_log(pres):
    srv = pres()

    async def run():
        c = await connect(srv)
        for room in ("odd:nil", "odd:num", "odd:tab", "odd:empty", "odd:raise"):
            assert await join(c, room) == NOT_ALLOWED, room
        assert await pt(c, "who")  # still served
    arun(run())
    log = srv.wait_log(lambda t: "boom in canJoin" in t and t.count("canJoin returned neither") >= 3)
    assert log, srv.log()


def test_can_join_slow_check_is_refused(pres):
    srv = pres()

    async def run():
        slow = await connect(srv)
        other = await connect(srv)
        t0 = time.monotonic()
        task = asyncio.ensure_future(join(slow, "slow:1"))
        # others are served while the check sleeps
        await asyncio.sleep(0.2)
        assert (await req(other, "system", "ping", {}))["pong"] > 0
        assert (await join(other, "free"))["success"] is True
        assert await task == NOT_ALLOWED
        assert time.monotonic() - t0 < 2.9, "refused at the handler timeout, not when the check woke up"
        assert (await req(slow, "system", "ping", {}))["pong"] > 0
        # the late answer of the sleeping check changes nothing
        await asyncio.sleep(3)
        assert await req(slow, "system", "leaveRoom", {"roomName": "slow:1"}) == \
            {"success": False, "error": "Not in room"}
    arun(run())
    assert srv.wait_log(lambda t: "canJoin did not answer in time" in t), srv.log()


def test_can_join_applies_to_recovery_joins(pres):
    srv = pres()

    async def run():
        c = await connect(srv)
        r = await join(c, "hist:a", since={"offset": 0, "epoch": "x"})
        assert r == NOT_ALLOWED
        await pt(c, "meta", key="ok", value=True)
        r = await join(c, "hist:a", since={"offset": 0, "epoch": "x"})
        assert r["success"] is True and r["data"]["recovered"] is False
    arun(run())


# ---------------------------------------------------------------------------- presence

def test_presence_reply_shape_and_errors(pres):
    srv = pres()

    async def run():
        a1 = await connect(srv, "alice")
        a2 = await connect(srv, "alice")
        n1 = await connect(srv, 42)
        anon = await connect(srv)
        outsider = await connect(srv)
        for c in (a1, a2, n1, anon):
            assert (await join(c, "quiet:r"))["success"] is True
            await asyncio.sleep(0.01)  # joinedAt has milliseconds: one apart
        r = await req(a1, "system", "presence", {"roomName": "quiet:r"})
        assert r["success"] is True
        d = r["data"]
        assert set(d) == {"roomName", "count", "users", "clients"}, d
        assert d["roomName"] == "quiet:r" and d["count"] == 4 and d["users"] == 3
        by_id = {e["clientId"]: e for e in d["clients"]}
        assert set(by_id) == {a1.client_id, a2.client_id, n1.client_id, anon.client_id}
        assert by_id[a1.client_id]["userId"] == "alice" and by_id[n1.client_id]["userId"] == 42
        assert "userId" not in by_id[anon.client_id]
        for e in d["clients"]:
            assert e["joinedAt"].endswith("Z") and "T" in e["joinedAt"]
        # oldest joiner first
        assert [e["clientId"] for e in d["clients"]] == [a1.client_id, a2.client_id, n1.client_id, anon.client_id]
        assert await req(outsider, "system", "presence", {"roomName": "quiet:r"}) == \
            {"success": False, "error": "Not in room"}
        await join(outsider, "plain")
        assert await req(outsider, "system", "presence", {"roomName": "plain"}) == \
            {"success": False, "error": "Presence is not enabled for this room"}
        assert await req(outsider, "system", "presence", {"roomName": "ev:x"}) == \
            {"success": False, "error": "Presence is not enabled for this room"}
        assert await req(outsider, "system", "presence", {}) == \
            {"success": False, "error": "Room name is required"}
        # leaving and disconnecting leave the list
        await req(a2, "system", "leaveRoom", {"roomName": "quiet:r"})
        await anon.close()
        for _ in range(100):
            d = (await req(a1, "system", "presence", {"roomName": "quiet:r"}))["data"]
            if d["count"] == 2:
                break
            await asyncio.sleep(0.05)
        assert d["count"] == 2 and d["users"] == 2
        # getPresence from server code: empty rooms give a JSON array, limit caps clients
        r = await pt(a1, "presence", room="quiet:empty")
        assert r["presence"] == {"count": 0, "users": 0, "clients": []}
        r = await pt(a1, "presence", room="quiet:r", limit=1)
        assert r["presence"]["count"] == 2 and len(r["presence"]["clients"]) == 1
        assert r["presence"]["truncated"] is True
        r = await pt(a1, "presence", room="plain")
        assert "has no presence" in r["error"]
        await no_presence_frame(a1)  # quiet rooms send no join/leave events
    arun(run())


# ---------------------------------------------------------------------------- join/leave

def test_join_leave_events(pres):
    srv = pres()

    async def run():
        a = await connect(srv, "alice")
        b = await connect(srv, 7)
        anon = await connect(srv)
        await join(a, "p:r")
        await join(b, "p:r")
        [e] = await events(a, 1)
        assert e == {"type": "presence", "action": "join",
                     "data": {"roomName": "p:r", "clientId": b.client_id, "userId": 7}}
        await join(anon, "p:r")
        ea, eb = (await events(a, 1))[0], (await events(b, 1))[0]
        assert ea == eb == {"type": "presence", "action": "join",
                            "data": {"roomName": "p:r", "clientId": anon.client_id}}
        await no_presence_frame(anon)  # not told about itself
        # joining again changes nothing: no event
        await join(b, "p:r")
        await no_presence_frame(a, 0.3)
        # leave by request
        await req(anon, "system", "leaveRoom", {"roomName": "p:r"})
        for c in (a, b):
            [e] = await events(c, 1)
            assert e == {"type": "presence", "action": "leave",
                         "data": {"roomName": "p:r", "clientId": anon.client_id}}
        # joined and left by server code
        await pt(a, "join", clientId=anon.client_id, room="p:r")
        for c in (a, b):
            assert (await events(c, 1))[0]["action"] == "join"
        await pt(a, "leave", clientId=anon.client_id, room="p:r")
        for c in (a, b):
            assert (await events(c, 1))[0]["action"] == "leave"
        # disconnecting
        await b.close()
        [e] = await events(a, 1)
        assert e == {"type": "presence", "action": "leave",
                     "data": {"roomName": "p:r", "clientId": b.client_id, "userId": 7}}
        await no_presence_frame(a)
        # an events-only room (no presence list)
        await join(a, "ev:x")
        await join(anon, "ev:x")
        assert (await events(a, 1))[0]["data"] == {"roomName": "ev:x", "clientId": anon.client_id}
        assert await join(a, "nobody:1") == NOT_ALLOWED
    arun(run())
    text = srv.http("/metrics").body.decode()
    assert mwtest.metric_sum(text, "moonwire_presence_join_events_total") == 6
    assert mwtest.metric_sum(text, "moonwire_presence_leave_events_total") >= 3  # + the disconnects at the end
    assert mwtest.metric_sum(text, "moonwire_joins_refused_total") == 1


def test_presence_frames_are_not_history(pres):
    srv = pres()

    async def run():
        a = await connect(srv)
        b = await connect(srv)
        await join(a, "hp:r")
        await pt(a, "send", room="hp:r", text="one")
        await join(b, "hp:r")
        [e] = await events(a, 1)
        assert "offset" not in e and "room" not in e
        await pt(a, "send", room="hp:r", text="two")
        # a late joiner recovering from 0 gets the two messages (offsets 1, 2), no presence frame
        c = await connect(srv)
        r = await join(c, "hp:r")
        epoch = r["data"]["epoch"]
        assert r["data"]["offset"] == 2
        d = await connect(srv)
        r = await join(d, "hp:r", since={"offset": 0, "epoch": epoch})
        assert r["data"]["recovered"] is True
        before = [m for m in d.inbox]
        assert [m.get("offset") for m in before] == [1, 2], before
    arun(run())


def test_thousand_clients_join_at_once(pres):
    """1000 raw clients send their joinRoom at once; the observer gets the 1000 join events, and
    the worker keeps serving. The raw clients do not read: the ~100 KB of events each is sent
    stays within its send queue (1 MiB)."""
    srv = pres()
    n = 1000
    observer = srv.client()
    r = observer.request("system", "joinRoom", {"roomName": "p:storm"}, request_id="j")
    assert r["response"]["success"] is True
    raws = [srv.client() for _ in range(n)]
    for i, c in enumerate(raws):
        c.send_json({"type": "system", "action": "joinRoom", "data": {"roomName": "p:storm"}})
    seen = set()
    deadline = time.monotonic() + 120
    while len(seen) < n and time.monotonic() < deadline:
        m = observer.recv_json(timeout=60)
        if m.get("type") == "presence":
            assert m["action"] == "join"
            assert m["data"]["clientId"] not in seen, "one event per change"
            seen.add(m["data"]["clientId"])
    assert seen == {c.client_id for c in raws}
    r = observer.request("system", "presence", {"roomName": "p:storm"}, request_id="p", timeout=30)
    d = r["response"]["data"]
    assert d["count"] == n + 1 and d["users"] == n + 1
    assert len(d["clients"]) == 1000 and d["truncated"] is True
    assert d["clients"][0]["clientId"] == observer.client_id  # the oldest first
    observer.assert_served()
    for c in raws[:10]:
        c.close()
    left = set()
    while len(left) < 10:
        m = observer.recv_json(timeout=30)
        if m.get("type") == "presence" and m["action"] == "leave":
            left.add(m["data"]["clientId"])
    assert left == {c.client_id for c in raws[:10]}
