"""Room history and recovery on one server (DESIGN 12, docs/reference.md "Room history"):
offsets and the frame shape, joinRoom's offset/epoch and since, recovery with a burst racing
the join, getHistory from every kind of caller, expiry, bad input, and the metrics. Each test
runs twice: single node (the worker's memory) and one worker with --redis (the history in
Redis); the memory cap is the single node's. Several workers and servers on one Redis:
test_history_cluster.py."""
import asyncio
import json
import re
import time

import pytest

import mwtest
from mwtest import arun, ws_connect
from test_redis import REDIS_SERVER, RedisProc

HIST_APP = """
return {
  rooms = { options = {
    { pattern = "h:*", history = { size = 50, ttl = 600 } },
    { pattern = "small:*", history = { size = 3, ttl = 600 } },
    { pattern = "ttl:*", history = { size = 10, ttl = 1 } },
    { pattern = "big:*", history = { size = 2000, ttl = 600 } },
    { pattern = "plain:*" },
  } },
  events = {
    onJoinRoom = function(clientId, room)
      local ws = require("moonwire").webSocketServer
      if room:sub(1, 7) == "h:greet" then
        ws:sendMessageToRoom(room, { hello = clientId })
      elseif room:sub(1, 8) == "plain:gh" then -- getHistory from a hook
        ws:sendMessageToClient(clientId, { type = "fromhook", history = ws:getHistory("h:" .. room:sub(10)) })
      end
    end,
  },
  %s
}
"""

H_CONTROLLER = r"""
local cjson = require "cjson"
local H = {}
local function arg(v) if v == cjson.null then return nil end return v end

function H:who(clientId) return self.worker.id end

-- data = {room, msg (table) | text (string), exclude = true}
function H:send(clientId, data)
  local msg = arg(data.msg)
  if data.text ~= nil then msg = data.text end
  local ok, n = pcall(self.webSocketServer.sendMessageToRoom, self.webSocketServer, data.room, msg,
    data.exclude and { excludeClientId = clientId } or nil)
  if not ok then return { error = tostring(n) } end
  return { n = n }
end

-- data = {room, n, start}: n messages {seq = start + i} in one go
function H:burst(clientId, data)
  for i = 1, data.n do
    self.webSocketServer:sendMessageToRoom(data.room, { seq = (data.start or 0) + i })
  end
  return { sent = data.n }
end

-- data = {room, n, every}: n messages {seq = i}, one every `every` seconds, from a timer
function H:drip(clientId, data)
  local i = 0
  local t
  t = self.timer:every(data.every, function()
    i = i + 1
    self.webSocketServer:sendMessageToRoom(data.room, { seq = i })
    if i >= data.n then t:stop() end
  end)
  return { started = true }
end

-- data = {prefix, n, msg}: one message to each of n rooms PREFIX1..PREFIXn
function H:rooms(clientId, data)
  local total = 0
  for i = 1, data.n do total = total + self.webSocketServer:sendMessageToRoom(data.prefix .. i, data.msg) end
  return { n = total }
end

function H:get(clientId, data)
  local ok, h, err = pcall(self.webSocketServer.getHistory, self.webSocketServer, data.room,
    { since = arg(data.since), limit = arg(data.limit) })
  if not ok then return { error = tostring(h) } end
  return { history = h, err = err }
end

-- getHistory from a job: the result is sent to the client
function H:job(clientId, data)
  return { id = self.queue:add("hist", { room = data.room, cid = clientId }) }
end

-- getHistory from a timer callback: the result is sent to the client
function H:get_later(clientId, data)
  self.timer:after(0, function()
    local h = self.webSocketServer:getHistory(data.room)
    self.webSocketServer:sendMessageToClient(clientId, { type = "later", history = h })
  end)
  return true
end

-- joinRoom from server code, with since
function H:join(clientId, data)
  local ok, info = self.webSocketServer:joinRoom(clientId, data.room, data.since and { since = data.since } or nil)
  return { ok = ok, info = info }
end
return H
"""


def app_lua(extra=""):
    return HIST_APP % extra


JOB = """
return function(job, mw)
  local h, err = mw.webSocketServer:getHistory(job.data.room)
  mw.webSocketServer:sendMessageToClient(job.data.cid, { type = "fromjob", history = h, err = err })
end
"""


def start(server, extra="", args=(), files=None):
    f = {"controllers/h.lua": H_CONTROLLER, "jobs/hist.lua": JOB}
    f.update(files or {})
    return server(app_lua=app_lua(extra), files=f, args=args)


@pytest.fixture(params=["memory", "redis"])
def hist(request, server, tmp_path):
    """Factory: a server on the history app, single node or with its own redis-server."""
    redis = None
    if request.param == "redis":
        import os
        if not os.path.exists(REDIS_SERVER):
            pytest.skip("redis-server not installed")
        workdir = tmp_path / "redis"
        workdir.mkdir()
        redis = RedisProc(workdir, mwtest.free_port()).start()

    def factory(extra="", args=(), files=None):
        argv = list(args) + (["--redis", redis.url] if redis else [])
        srv = start(server, extra, argv, files)
        srv.redis = redis
        return srv
    factory.mode = request.param
    yield factory
    if redis:
        redis.kill()


async def call(c, action, rid=None, **data):
    """h:ACTION(data) -> the response; other frames that arrive first are kept in c.inbox."""
    rid = rid or f"{action}-{time.monotonic_ns()}"
    await c.send({"type": "h", "action": action, "data": data, "requestId": rid})
    while True:
        text = await asyncio.wait_for(c.ws.recv(), mwtest.POSITIVE_WAIT)
        m = json.loads(text)
        if isinstance(m, dict) and m.get("requestId") == rid:
            return m.get("response", m)
        c.inbox.append(m)
        c.raw.append(text)


async def join(c, room, since=None, rid=None, raw_since=False):
    """system:joinRoom; returns (frames received before the reply, the reply's response)."""
    rid = rid or f"join-{time.monotonic_ns()}"
    data = {"roomName": room}
    if since is not None or raw_since:
        data["since"] = since
    await c.send({"type": "system", "action": "joinRoom", "data": data, "requestId": rid})
    before = []
    while True:
        m = await c.recv()
        if m.get("requestId") == rid:
            return before, m["response"]
        before.append(m)


async def connect(srv):
    c = await ws_connect(srv)
    c.inbox = []
    c.raw = []
    return c


async def raw_frames(c, n, timeout=15):
    """The raw text of the next n room messages of c (those kept by call first)."""
    out = [t for t in c.raw if '"offset"' in t]
    c.raw = []
    c.inbox = [m for m in c.inbox if not (isinstance(m, dict) and "offset" in m)]
    deadline = time.monotonic() + timeout
    while len(out) < n:
        text = await asyncio.wait_for(c.ws.recv(), max(0.1, deadline - time.monotonic()))
        if '"offset"' in text:
            out.append(text)
    return out


async def collect(c, n, timeout=15):
    """The next n room messages of c (inbox first)."""
    out = [m for m in c.inbox if "offset" in m]
    c.inbox = [m for m in c.inbox if "offset" not in m]
    deadline = time.monotonic() + timeout
    while len(out) < n:
        m = await c.recv(max(0.1, deadline - time.monotonic()))
        if "offset" in m:
            out.append(m)
    return out


def test_offsets_frame_shape_and_join_position(hist):
    srv = hist()

    async def run():
        a = await connect(srv)
        before, r = await join(a, "h:1")
        assert before == []
        assert r["success"] is True and r["data"]["roomName"] == "h:1"
        assert r["data"]["offset"] == 0 and isinstance(r["data"]["epoch"], str) and r["data"]["epoch"]
        assert "recovered" not in r["data"]
        epoch = r["data"]["epoch"]
        # a table, and JSON object texts (with spaces, empty)
        assert (await call(a, "send", room="h:1", msg={"type": "chat", "text": "one"}))["n"] == 1
        assert (await call(a, "send", room="h:1", text=' {"type":"chat","text":"two"} '))["n"] == 1
        assert (await call(a, "send", room="h:1", text="{}"))["n"] == 1
        # the message's own room and offset are replaced by the server's
        assert (await call(a, "send", room="h:1", msg={"room": "mine", "offset": 99, "k": 1}))["n"] == 1
        raw = await raw_frames(a, 4)
        assert raw[0] == '{"type":"chat","text":"one","room":"h:1","offset":1}' or \
            json.loads(raw[0]) == {"type": "chat", "text": "one", "room": "h:1", "offset": 1}, raw[0]
        assert raw[1] == ' {"type":"chat","text":"two","room":"h:1","offset":2}', raw[1]
        assert raw[2] == '{"room":"h:1","offset":3}', raw[2]
        assert json.loads(raw[3]) == {"k": 1, "room": "h:1", "offset": 4}, raw[3]
        assert raw[3].count('"room"') == 1 and raw[3].count('"offset"') == 1
        # a second client joins later: its position is the last offset, the same epoch
        b = await connect(srv)
        _, r = await join(b, "h:1")
        assert r["data"]["offset"] == 4 and r["data"]["epoch"] == epoch
        # rooms without history are unchanged
        _, r = await join(b, "plain:x")
        assert "offset" not in r["data"] and "epoch" not in r["data"]
        await call(b, "send", room="plain:x", msg=[1, 2])
        assert b.inbox == [[1, 2]]
        assert len(await collect(a, 0)) == 0
    arun(run())


def test_bad_messages_raise(hist):
    srv = hist()

    async def run():
        a = await connect(srv)
        for kw in ({"msg": [1, 2]}, {"text": "[1]"}, {"text": "not json"}, {"text": '{"a":1} x'},
                   {"text": '"str"'}, {"msg": 5}, {"text": ""}):
            r = await call(a, "send", room="h:bad", **kw)
            assert "history room must be" in r.get("error", ""), (kw, r)
        # nothing got an offset: the first good one is 1
        await join(a, "h:bad")
        await call(a, "send", room="h:bad", msg={"ok": True})
        assert (await collect(a, 1))[0]["offset"] == 1
    arun(run())


def test_recovery_replays_missed_frames_then_reply_then_live(hist):
    srv = hist()

    async def run():
        a = await connect(srv)
        sender = await connect(srv)
        _, r = await join(a, "h:rec")
        epoch = r["data"]["epoch"]
        await call(sender, "burst", room="h:rec", n=3)
        got = await collect(a, 3)
        assert [m["offset"] for m in got] == [1, 2, 3]
        await a.close()
        # a reconnects after three more
        await call(sender, "burst", room="h:rec", n=3, start=3)
        a2 = await connect(srv)
        before, r = await join(a2, "h:rec", since={"offset": 3, "epoch": epoch})
        assert [m["offset"] for m in before] == [4, 5, 6]
        assert [m["seq"] for m in before] == [4, 5, 6]
        assert all(m["room"] == "h:rec" for m in before)
        assert r["success"] is True
        assert r["data"]["recovered"] is True and r["data"]["offset"] == 6 and r["data"]["epoch"] == epoch
        await call(sender, "send", room="h:rec", msg={"seq": 7})
        assert [m["offset"] for m in await collect(a2, 1)] == [7]
        # nothing missed: recovered, nothing replayed
        a3 = await connect(srv)
        before, r = await join(a3, "h:rec", since={"offset": 7, "epoch": epoch})
        assert before == [] and r["data"]["recovered"] is True and r["data"]["offset"] == 7
        # since 0: everything kept is replayed
        a4 = await connect(srv)
        before, r = await join(a4, "h:rec", since={"offset": 0, "epoch": epoch})
        assert [m["offset"] for m in before] == [1, 2, 3, 4, 5, 6, 7] and r["data"]["recovered"] is True
    arun(run())


def test_recovery_fails_cleanly(hist):
    srv = hist()

    async def run():
        a = await connect(srv)
        _, r = await join(a, "small:r")
        epoch = r["data"]["epoch"]
        await call(a, "burst", room="small:r", n=5)
        await collect(a, 5)
        cases = [
            {"offset": 1, "epoch": epoch},              # 2 was trimmed (size 3 keeps 3, 4, 5)
            {"offset": 6, "epoch": epoch},              # ahead of the room
            {"offset": 10 ** 30, "epoch": epoch},        # huge
            {"offset": 2, "epoch": "someone-else"},      # foreign epoch
            {"offset": 2, "epoch": "x" * 5000},          # a long foreign epoch
        ]
        joined = []
        for since in cases:
            b = await connect(srv)
            before, r = await join(b, "small:r", since=since)
            assert before == [], (since, before)
            assert r["success"] is True and r["data"]["recovered"] is False, (since, r)
            assert r["data"]["offset"] == 5 and r["data"]["epoch"] == epoch
            joined.append(b)
        # joined all the same: live messages arrive
        await call(a, "send", room="small:r", msg={"live": 1})
        await collect(a, 1)
        for b in joined:
            got = await collect(b, 1)
            assert got[0]["live"] == 1 and got[0]["offset"] == 6
            await b.close()
        # offset 2 is the oldest recoverable point: 3, 4, 5 kept (and the lives since)
        b = await connect(srv)
        _, r = await join(b, "small:r")
        last = r["data"]["offset"]
        before, r = await join(b, "small:r", since={"offset": last - 3, "epoch": epoch})
        assert r["data"]["recovered"] is True and [m["offset"] for m in before] == [last - 2, last - 1, last]
    arun(run())


@pytest.mark.parametrize("since", [5, "x", [1], {"offset": -1, "epoch": "e"}, {"offset": 1.5, "epoch": "e"},
                                   {"offset": "1", "epoch": "e"}, {"offset": 1, "epoch": 7}, {"offset": 1},
                                   {"epoch": "e"}, True])
def test_malformed_since(hist, since):
    srv = hist()

    async def run():
        a = await connect(srv)
        for room in ("h:m", "plain:m"):
            before, r = await join(a, room, since=since)
            assert before == [] and r == {"success": False, "error": "Invalid since"}, (room, r)
        # not joined
        await call(a, "send", room="h:m", msg={"x": 1})
        await a.expect_nothing(0.3)
    arun(run())


def test_since_null_and_since_on_plain_room(hist):
    srv = hist()

    async def run():
        a = await connect(srv)
        _, r = await join(a, "h:n", since=None, raw_since=True)
        assert r["success"] is True and "recovered" not in r["data"] and r["data"]["offset"] == 0
        _, r = await join(a, "plain:n", since={"offset": 3, "epoch": "e"})
        assert r["success"] is True and set(r["data"]) == {"roomName", "joinedAt"}, r
    arun(run())


def test_burst_racing_a_recovering_client(hist):
    """Hundreds of messages published by a timer while a client recovers: the client sees every
    offset exactly once, in order (replayed, then live)."""
    srv = hist()

    async def run():
        a = await connect(srv)
        pub = await connect(srv)
        _, r = await join(a, "big:race")
        epoch = r["data"]["epoch"]
        await call(pub, "burst", room="big:race", n=20)
        got = await collect(a, 20)
        await a.close()
        await call(pub, "drip", room="big:race", n=600, every=0.001)
        seen = [m["offset"] for m in got]
        for attempt in range(3):
            # reconnect and recover repeatedly while the drip runs
            a = await connect(srv)
            before, r = await join(a, "big:race", since={"offset": seen[-1], "epoch": epoch})
            assert r["data"]["recovered"] is True, r
            replay = [m["offset"] for m in before if "offset" in m]
            seen += replay
            assert r["data"]["offset"] == seen[-1]
            live = await collect(a, 30)
            seen += [m["offset"] for m in live]
            await a.close()
        assert seen == list(range(1, len(seen) + 1)), seen
        assert len(seen) > 100
    arun(run(), timeout=90)


def test_get_history(hist):
    srv = hist()

    async def run():
        a = await connect(srv)
        r = await call(a, "get", room="h:g")
        h = r["history"]
        assert h["offset"] == 0 and h["messages"] == [] and isinstance(h["epoch"], str)
        _, j = await join(a, "h:g")
        assert j["data"]["epoch"] == h["epoch"]
        await call(a, "burst", room="h:g", n=5)
        await collect(a, 5)
        h = (await call(a, "get", room="h:g"))["history"]
        assert h["offset"] == 5 and [m["offset"] for m in h["messages"]] == [1, 2, 3, 4, 5]
        assert h["messages"][0]["message"] == {"seq": 1}
        h = (await call(a, "get", room="h:g", since=2, limit=2))["history"]
        assert [m["offset"] for m in h["messages"]] == [3, 4] and h["offset"] == 5
        h = (await call(a, "get", room="h:g", since=5))["history"]
        assert h["messages"] == []
        h = (await call(a, "get", room="h:g", since=10 ** 20))["history"]
        assert h["messages"] == []
        r = await call(a, "get", room="plain:g")
        assert "has no history" in r["error"]
        for bad in ({"since": -1}, {"limit": 0}, {"since": 1.5}):
            r = await call(a, "get", room="h:g", **bad)
            assert "must be an integer" in r["error"], (bad, r)
        # from a timer
        await call(a, "get_later", room="h:g")
        m = await a.recv()
        while m.get("type") != "later":
            m = await a.recv()
        assert [x["offset"] for x in m["history"]["messages"]] == [1, 2, 3, 4, 5]
    arun(run())


def test_get_history_from_a_job_and_a_hook(hist):
    srv = hist()

    async def run():
        a = await connect(srv)
        await join(a, "h:gj")
        await call(a, "burst", room="h:gj", n=3)
        await collect(a, 3)
        assert (await call(a, "job", room="h:gj"))["id"]
        m = await a.recv()
        while m.get("type") != "fromjob":
            m = await a.recv()
        assert offsets_of_history(m) == [1, 2, 3], m
        before, r = await join(a, "plain:gh:gj")
        m = before[0] if before else await a.recv()
        assert m.get("type") == "fromhook" and offsets_of_history(m) == [1, 2, 3], m
    arun(run())


def offsets_of_history(m):
    return [x["offset"] for x in m["history"]["messages"]]


def test_join_from_server_code_and_join_events_order(hist):
    srv = hist()

    async def run():
        a = await connect(srv)
        r = await call(a, "join", room="h:s")
        assert r["ok"] is True and r["info"]["offset"] == 0
        # onJoinRoom sends to the room: the reply's offset covers it
        b = await connect(srv)
        before, r = await join(b, "h:greet1")
        hello = {"hello": b.client_id, "room": "h:greet1", "offset": 1}
        if hist.mode == "memory":  # onJoinRoom ran before the reply went out: the reply covers it
            assert before == [hello] and r["data"]["offset"] == 1, (before, r)
        else:  # its send went through Redis: it arrives after the reply, which does not cover it
            assert before == [] and r["data"]["offset"] == 0, (before, r)
            assert await collect(b, 1) == [hello]
    arun(run())


def test_history_expires_after_ttl(hist):
    srv = hist()

    async def run():
        a = await connect(srv)
        _, r = await join(a, "ttl:x")
        epoch = r["data"]["epoch"]
        await call(a, "burst", room="ttl:x", n=2)
        await collect(a, 2)
        await asyncio.sleep(2.5)
        b = await connect(srv)
        before, r = await join(b, "ttl:x", since={"offset": 2, "epoch": epoch})
        assert before == [] and r["data"]["recovered"] is False
        assert r["data"]["epoch"] != epoch and r["data"]["offset"] == 0
        await call(a, "send", room="ttl:x", msg={"again": 1})
        assert (await collect(b, 1))[0]["offset"] == 1
    arun(run())


def test_room_name_at_the_length_limit_and_escaping(hist):
    srv = hist()
    name = "h:" + "\u00e9" * 126 + "\"\\"  # 2 + 252 + 2 = 256 bytes: one too many
    assert len(name.encode()) == 256
    name = name[:-1]  # 255 bytes
    assert len(name.encode()) == 255

    async def run():
        a = await connect(srv)
        _, r = await join(a, name)
        assert r["success"] is True and r["data"]["offset"] == 0
        await call(a, "send", room=name, msg={"x": 1})
        m = await collect(a, 1)
        assert m[0]["room"] == name and m[0]["offset"] == 1
        _, r = await join(a, name + "x")
        assert r["success"] is False
    arun(run())


def test_thousand_history_rooms_and_the_memory_cap(server):
    srv = start(server, extra="limits = { historyBytes = 200000 },")

    async def run():
        a = await connect(srv)
        payload = "x" * 1000
        await call(a, "send", room="h:first", msg={"p": payload})
        r = await call(a, "rooms", prefix="h:r", n=1000, msg={"p": payload})
        assert r["n"] == 0
        h = (await call(a, "get", room="h:first"))["history"]
        assert h["offset"] == 1 and h["messages"] == []  # dropped: least recently written
        h = (await call(a, "get", room="h:r1000"))["history"]
        assert [m["offset"] for m in h["messages"]] == [1]
        metrics = srv.http("/metrics").text
        assert 0 < mwtest.metric_sum(metrics, "moonwire_history_bytes") <= 200000
        assert mwtest.metric_sum(metrics, "moonwire_history_messages_stored_total") == 1001
    arun(run(), timeout=120)
    assert srv.wait_log(lambda t: "room history reached its memory cap" in t)
    assert srv.log().count("room history reached its memory cap") == 1


def test_metrics(hist):
    srv = hist()

    async def run():
        a = await connect(srv)
        _, r = await join(a, "h:met")
        await call(a, "burst", room="h:met", n=4)
        await collect(a, 4)
        b = await connect(srv)
        await join(b, "h:met", since={"offset": 1, "epoch": r["data"]["epoch"]})
        await join(b, "h:met", since={"offset": 1, "epoch": "nope"})
    arun(run())
    text = srv.http("/metrics").text
    assert mwtest.metric_sum(text, "moonwire_history_messages_stored_total") == 4
    assert mwtest.metric_sum(text, "moonwire_history_recoveries_attempted_total") == 2
    assert mwtest.metric_sum(text, "moonwire_history_recoveries_succeeded_total") == 1
    assert mwtest.metric_sum(text, "moonwire_history_recoveries_failed_total") == 1
    assert mwtest.metric_sum(text, "moonwire_history_replayed_messages_total") == 3
