"""The server HTTP API across two servers on one Redis (DESIGN 16): every method acts on the
whole cluster whichever server answers (a client connected to the other server is joined,
sent to, looked up and disconnected; rooms and stats add up both; a history room's offsets are
one sequence whatever server publishes), and the reads that need Redis answer 503 unavailable
while it is down, while local delivery goes on."""
import asyncio
import os
import time

import pytest

import mwtest
from mwtest import arun
from test_api import HISTORY, KEY, SECRET, api, connect, error, ok
from test_redis import REDIS_SERVER, RedisProc

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server not installed")

APP = (f"return {{ api = {{ key = {KEY!r} }}, auth = {{ secret = {SECRET!r} }}, cluster = {{ heartbeat = 0.5 }},\n"
       f"  redis = {{ timeout = 1 }}, rooms = {{ options = {{ {HISTORY} }} }} }}\n")


@pytest.fixture
def redis(tmp_path):
    workdir = tmp_path / "redis"
    workdir.mkdir()
    r = RedisProc(workdir, mwtest.free_port()).start()
    yield r
    r.kill()


@pytest.fixture
def two(server, redis):
    a = server(app_lua=APP, args=("--redis", redis.url))
    b = server(app_lua=APP, args=("--redis", redis.url))
    return a, b


def eventually(fn, what, timeout=mwtest.POSITIVE_WAIT):
    """Polls fn() until it returns a truthy value (the cluster state is replicated through Redis)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def worker_id(srv):
    return mwtest.http_get(srv.port, "/health").json()["workerId"]


def test_every_method_reaches_the_other_server(two):
    a, b = two

    async def run():
        a1 = await connect(a, "alice")
        b1 = await connect(b, "alice")
        b2 = await connect(b, "bob")

        # joinRoom / client on a client of the other server
        assert ok(a, "joinRoom", {"clientId": b2.client_id, "room": "lobby"}) == {}
        assert ok(b, "joinRoom", {"clientId": a1.client_id, "room": "lobby"}) == {}
        assert ok(a, "joinRoom", {"clientId": b1.client_id, "room": "lobby"}) == {}
        cl = eventually(lambda: (lambda c: c if c and c["rooms"] == ["lobby"] else None)(
            ok(a, "client", {"clientId": b2.client_id})), "b2 in lobby")
        assert cl["workerId"] == worker_id(b) and cl["user"]["userId"] == "bob"
        assert ok(b, "client", {"clientId": a1.client_id})["workerId"] == worker_id(a)
        assert ok(a, "client", {"clientId": "nobody-0123456789abcd"}) is None

        # rooms and stats add up both servers
        eventually(lambda: ok(a, "rooms") == [{"room": "lobby", "members": 3}], "3 members in lobby")
        assert ok(b, "rooms") == [{"room": "lobby", "members": 3}]
        for c in (a1, b1, b2):
            await c.request({"type": "system", "action": "ping", "requestId": "p"})
        st = ok(a, "stats")
        assert st["connections"] == 3 and st["rooms"] == 1
        ws = {w["workerId"]: w for w in st["workers"]}
        assert set(ws) == {worker_id(a), worker_id(b)}
        assert ws[worker_id(a)]["connections"] == 1 and ws[worker_id(b)]["connections"] == 2
        eventually(lambda: {w["workerId"]: w for w in ok(a, "stats")["workers"]}[worker_id(b)]["messagesIn"] >= 2,
                   "b's figures in its heartbeat record")

        # publish, broadcast, sendToUser, sendToClient from either server
        assert ok(a, "publish", {"room": "lobby", "message": {"t": "room"}}) == {}
        for c in (a1, b1, b2):
            assert await c.recv() == {"t": "room"}
        assert ok(b, "broadcast", {"message": {"t": "all"}}) == {}
        for c in (a1, b1, b2):
            assert await c.recv() == {"t": "all"}
        assert ok(b, "sendToUser", {"userId": "alice", "message": {"t": "user"}}) == {}
        assert await a1.recv() == {"t": "user"} and await b1.recv() == {"t": "user"}
        assert ok(a, "sendToClient", {"clientId": b2.client_id, "message": {"t": "one"}}) == {}
        assert await b2.recv() == {"t": "one"}
        await a1.expect_nothing()

        # history rooms: one sequence of offsets whichever server publishes
        for c in (a1, b2):
            assert ok(b, "joinRoom", {"clientId": c.client_id, "room": "h:x"}) == {}
            eventually(lambda: "h:x" in ok(a, "client", {"clientId": c.client_id})["rooms"], "joined h:x")
        offsets = [ok(srv, "publish", {"room": "h:x", "message": {"i": i}})["offset"]
                   for i, srv in enumerate((a, b, a, b))]
        assert offsets == [1, 2, 3, 4]
        for c in (a1, b2):
            got = [await c.recv() for _ in range(4)]
            assert [m["offset"] for m in got] == [1, 2, 3, 4] and [m["i"] for m in got] == [0, 1, 2, 3]
        h = ok(a, "history", {"room": "h:x", "since": 1})
        assert h["offset"] == 4 and [m["message"]["i"] for m in h["messages"]] == [1, 2, 3]

        # presence counts the members on both servers
        for c in (a1, b1, b2):
            assert ok(a, "joinRoom", {"clientId": c.client_id, "room": "p:x"}) == {}
        pr = eventually(lambda: (lambda r: r if r["count"] == 3 else None)(ok(b, "presence", {"room": "p:x"})),
                        "3 in p:x")
        assert pr["users"] == 2 and {x["clientId"] for x in pr["clients"]} == {a1.client_id, b1.client_id, b2.client_id}
        assert ok(a, "presence", {"room": "p:x"})["count"] == 3

        # leaveRoom on the other server
        assert ok(a, "leaveRoom", {"clientId": b2.client_id, "room": "lobby"}) == {}
        eventually(lambda: sorted(ok(a, "client", {"clientId": b2.client_id})["rooms"]) == ["h:x", "p:x"],
                   "b2 left lobby")
        eventually(lambda: ok(a, "rooms")[:2] == [{"room": "p:x", "members": 3}, {"room": "h:x", "members": 2}]
                   and {"room": "lobby", "members": 2} in ok(a, "rooms"),
                   "2 left in lobby")

        # disconnect by clientId and by userId, across servers
        assert ok(a, "disconnect", {"clientId": b2.client_id, "code": 4001, "reason": "kicked"}) == {}
        with pytest.raises(Exception) as e:
            while True:
                await b2.recv()
        assert getattr(e.value, "code", None) == 4001 and e.value.reason == "kicked"
        assert ok(a, "disconnect", {"userId": "alice", "code": 4002}) == {}
        for c in (a1, b1):
            with pytest.raises(Exception) as e:
                while True:
                    await c.recv()
            assert getattr(e.value, "code", None) == 4002
        eventually(lambda: ok(b, "stats")["connections"] == 0, "every client gone")
        status, out = api(b, "joinRoom", {"clientId": b2.client_id, "room": "r"})
        assert status == 404
        error(404, "not_found", out)
    arun(run(), timeout=120)


def test_reads_that_need_redis_answer_503_while_it_is_down(two, redis):
    a, b = two

    async def run():
        a1 = await connect(a)
        b1 = await connect(b)
        assert ok(a, "joinRoom", {"clientId": a1.client_id, "room": "r"}) == {}
        redis.kill()
        eventually(lambda: mwtest.http_get(a.port, "/ready").status == 503, "a sees redis down")
        for method, body in (("stats", {}), ("rooms", {}), ("client", {"clientId": b1.client_id}),
                             ("history", {"room": "h:1"}), ("publish", {"room": "h:1", "message": {"a": 1}}),
                             ("joinRoom", {"clientId": b1.client_id, "room": "r"}),
                             ("presence", {"room": "p:1"})):
            status, out = api(a, method, body)
            assert status == 503, (method, status, out)
            error(503, "unavailable", out)
        # local delivery goes on, and a local client is known without Redis
        assert ok(a, "publish", {"room": "r", "message": {"still": "here"}}) == {}
        assert await a1.recv() == {"still": "here"}
        assert ok(a, "client", {"clientId": a1.client_id})["clientId"] == a1.client_id
        redis.start()
        eventually(lambda: api(a, "stats", {})[0] == 200, "stats answered again")
    arun(run(), timeout=120)
