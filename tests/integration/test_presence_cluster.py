"""Presence and join/leave events across workers and hosts on one Redis (DESIGN 13):
`--workers 2 --redis` and two servers on one redis-server. Events reach members on every
worker once; getPresence agrees from everywhere; a SIGKILLed worker's or host's clients get
their leave events exactly once (several live workers race to notice) and leave the list;
a room of 10 000 members (seeded in Redis as a live fake worker's records) gets a bounded reply.
cluster.heartbeat is 0.5 s here, so "within three heartbeats" is 1.5 s; the waits are longer."""
import asyncio
import os
import signal
import socket
import threading
import time

import pytest

import mwtest
from mwtest import arun
from test_presence import PT_CONTROLLER, app_lua, connect, events, join, no_presence_frame, pt, req
from test_redis import REDIS_SERVER, RedisProc

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server not installed")

PREFIX = "moonwire:"


@pytest.fixture
def redis(tmp_path):
    workdir = tmp_path / "redis"
    workdir.mkdir()
    r = RedisProc(workdir, mwtest.free_port()).start()
    yield r
    r.kill()


def start(server, redis, workers=1):
    return server(app_lua=app_lua(), files={"controllers/pt.lua": PT_CONTROLLER},
                  args=("--workers", str(workers), "--redis", redis.url))


async def client(srv, sub=None):
    c = await connect(srv, sub)
    c.sub = sub
    c.worker = await pt(c, "who")
    c.srv = srv
    return c


async def on_two_workers(srv, per_worker, sub_of=lambda i: None):
    """Clients until each of the server's two workers has per_worker of them (extras closed)."""
    by = {}
    for i in range(200):
        c = await client(srv, sub_of(i))
        if len(by.setdefault(c.worker, [])) < per_worker:
            by[c.worker].append(c)
        else:
            await c.close()
        if len(by) == 2 and all(len(v) == per_worker for v in by.values()):
            return by
    raise AssertionError("the clients did not spread over two workers")


def pid_of(worker_id):
    return int(worker_id.split(":")[-2])


async def leaves_for(c, ids, timeout=20, settle=2.0):
    """Waits for one leave event per id in ids, then `settle` seconds more: no event twice."""
    got = []
    deadline = time.monotonic() + timeout
    while {e["data"]["clientId"] for e in got} != set(ids) and time.monotonic() < deadline:
        for e in await events(c, 1, timeout=max(0.1, deadline - time.monotonic())):
            got.append(e)
    end = time.monotonic() + settle
    while time.monotonic() < end:
        try:
            got += await events(c, 1, timeout=end - time.monotonic())
        except asyncio.TimeoutError:
            break
    assert all(e["action"] == "leave" and e["data"]["roomName"] == "p:k" for e in got), got
    ids_got = [e["data"]["clientId"] for e in got]
    assert sorted(ids_got) == sorted(ids), ("each leave exactly once", ids_got, ids)
    return got


async def presence_count(c, room, want, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        d = (await req(c, "system", "presence", {"roomName": room}))["data"]
        if d["count"] == want or time.monotonic() > deadline:
            return d
        await asyncio.sleep(0.1)


def test_two_workers_events_presence_and_a_killed_worker(server, redis):
    srv = start(server, redis, workers=2)

    async def run():
        by = await on_two_workers(srv, 3, sub_of=lambda i: f"u{i}")
        (wa, doomed), (wb, survivors) = list(by.items())
        everyone = doomed + survivors
        for i, c in enumerate(everyone):
            assert (await join(c, "p:k"))["success"] is True
            # every earlier member, on either worker, hears of it once
            for earlier in everyone[:i]:
                [e] = await events(earlier, 1)
                assert e["action"] == "join" and e["data"]["clientId"] == c.client_id
                assert e["data"]["userId"] == c.sub
        for c in everyone:
            await no_presence_frame(c, 0.2)
        # presence agrees from both workers
        for c in (doomed[0], survivors[0]):
            d = (await req(c, "system", "presence", {"roomName": "p:k"}))["data"]
            assert d["count"] == 6 and d["users"] == 6
            assert {e["clientId"] for e in d["clients"]} == {x.client_id for x in everyone}
        # a leave by server code on the other worker's client
        await pt(survivors[0], "leave", clientId=doomed[2].client_id, room="p:k")
        for c in everyone:
            if c is not doomed[2]:
                [e] = await events(c, 1)
                assert e["action"] == "leave" and e["data"]["clientId"] == doomed[2].client_id
        # the worker of `doomed` is SIGKILLed: the survivors get their leave events, once
        # (the survivor and the replacement worker race to notice)
        os.kill(pid_of(wa), signal.SIGKILL)
        gone = [c.client_id for c in doomed[:2]]
        for c in survivors:
            await leaves_for(c, gone)
        d = await presence_count(survivors[0], "p:k", 3)
        assert {e["clientId"] for e in d["clients"]} == {c.client_id for c in survivors}
    arun(run(), timeout=120)
    assert srv.wait_log(lambda t: "leave events of a dead worker" in t), srv.log()


class SlowSecondConnection:
    """A TCP relay to Redis whose second connection (a one-worker server's subscriber: it connects
    after its command connection) gets no reply for `delay` seconds, like a busy machine."""

    def __init__(self, port, delay):
        self.port, self.delay, self.n = port, delay, 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.url = f"redis://127.0.0.1:{self.lsock.getsockname()[1]}/0"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                down, _ = self.lsock.accept()
            except OSError:
                return
            self.n += 1
            up = socket.create_connection(("127.0.0.1", self.port))
            hold = time.monotonic() + (self.delay if self.n == 2 else 0)
            threading.Thread(target=self._pipe, args=(down, up, 0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, down, hold), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, hold):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                time.sleep(max(0.0, hold - time.monotonic()))
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.lsock.close()


def test_no_client_is_served_before_the_workers_subscriber_is_up(server, redis):
    """A worker whose subscriber connection is slow to come up serves no client before it is up:
    a client that joined a room then would miss the events other servers send to it."""
    other = start(server, redis)
    relay = SlowSecondConnection(redis.port, delay=3.0)
    slow = server(app_lua=app_lua(), files={"controllers/pt.lua": PT_CONTROLLER},
                  args=("--workers", "1", "--redis", relay.url))

    def subscribers(channel):
        return int(redis.cli("PUBSUB", "NUMSUB", PREFIX + channel).split()[-1])

    async def run():
        y = await client(other, "y")
        x = await client(slow, "x")
        # x is served: its worker listens to the cluster's channels already
        assert subscribers("all") == 2
        assert (await join(y, "p:slow"))["success"] is True
        assert (await join(x, "p:slow"))["success"] is True
        [e] = await events(y, 1)
        assert e["action"] == "join" and e["data"]["clientId"] == x.client_id
        # the room's SUBSCRIBE of x's worker goes through the slow relay: let it arrive
        assert mwtest.wait_until(lambda: subscribers("room:p:slow") == 2)
        z = await client(other, "z")
        assert (await join(z, "p:slow"))["success"] is True
        # published by the other server: reaches x through its worker's subscription
        [e] = await events(x, 1)
        assert e["action"] == "join" and e["data"]["clientId"] == z.client_id
    try:
        arun(run(), timeout=120)
    finally:
        relay.close()


def test_two_servers_and_a_killed_host(server, redis):
    a_srv = start(server, redis, workers=1)
    b_srv = start(server, redis, workers=2)

    async def run():
        on_a = [await client(a_srv, "alice"), await client(a_srv)]
        on_b = list((await on_two_workers(b_srv, 2)).values())
        on_b = on_b[0] + on_b[1]
        members = on_a + on_b
        for i, c in enumerate(members):
            await join(c, "p:k")
            for earlier in members[:i]:
                [e] = await events(earlier, 1)
                assert e["data"]["clientId"] == c.client_id
        d = (await req(on_b[0], "system", "presence", {"roomName": "p:k"}))["data"]
        assert d["count"] == 6 and d["users"] == 6
        # host A dies at once: supervisor and worker SIGKILLed (no graceful leave)
        os.killpg(a_srv.proc.pid, signal.SIGKILL)
        gone = [c.client_id for c in on_a]
        got = []
        for c in on_b:
            got = await leaves_for(c, gone)
        alice = next(e for e in got if e["data"]["clientId"] == on_a[0].client_id)
        assert alice["data"]["userId"] == "alice"
        anon = next(e for e in got if e["data"]["clientId"] == on_a[1].client_id)
        assert "userId" not in anon["data"]
        d = await presence_count(on_b[0], "p:k", 4)
        assert d["count"] == 4
    arun(run(), timeout=120)
    a_srv.proc.wait(timeout=10)


def test_ten_thousand_members_bounded_reply_and_a_dead_fake_worker(server, redis):
    """10 000 members seeded in Redis as the records of a live fake worker (its alive marker set),
    plus a real member: the reply lists 1000, count and users stay exact. Then a fake worker with
    200 members of a joinLeave room dies (its marker deleted): the real member gets 200 leave
    events once."""
    srv = start(server, redis, workers=2)
    ms = int(time.time() * 1000) - 60000
    redis.cli("SET", PREFIX + "w:FAKE1", "1", "PX", "600000")
    redis.cli("SADD", PREFIX + "workers", "FAKE1")
    # 10 000 clients of 5 000 users (two connections each), joined a minute ago
    redis.cli("EVAL", "for i = 1, 10000 do redis.call('HSET', KEYS[1], 'fake' .. i, ARGV[1] .. '|su' .. (i % 5000)) end",
              "1", PREFIX + "pr:quiet:big:FAKE1", str(ms), timeout=30)
    redis.cli("SADD", PREFIX + "w:FAKE1:pr", "quiet:big")

    async def run():
        c = await client(srv)
        await join(c, "quiet:big")
        t0 = time.monotonic()
        await c.send({"type": "system", "action": "presence", "data": {"roomName": "quiet:big"}, "requestId": 1})
        text = await asyncio.wait_for(c.ws.recv(), 30)
        import json
        r = json.loads(text)["response"]
        d = r["data"]
        assert d["count"] == 10001 and d["users"] == 5001
        assert len(d["clients"]) == 1000 and d["truncated"] is True
        assert len(text) < 150000, len(text)
        assert all(e["clientId"].startswith("fake") for e in d["clients"])  # the oldest first
        print(f"presence of 10001 members: {len(text)} bytes in {time.monotonic() - t0:.3f} s")
        # getPresence without a limit lists them all
        p = (await pt(c, "presence", room="quiet:big"))["presence"]
        assert p["count"] == 10001 and len(p["clients"]) == 10001 and "truncated" not in p

        # a fake worker in a joinLeave room dies
        await join(c, "p:k")
        redis.cli("SET", PREFIX + "w:FAKE2", "1", "PX", "600000")
        redis.cli("SADD", PREFIX + "workers", "FAKE2")
        redis.cli("EVAL", "for i = 1, 200 do redis.call('HSET', KEYS[1], 'dead' .. i, ARGV[1] .. '|' .. "
                  "(i % 2 == 0 and 'n' .. i or '')) end", "1", PREFIX + "pr:p:k:FAKE2", str(ms))
        redis.cli("SADD", PREFIX + "w:FAKE2:pr", "p:k")
        d = (await req(c, "system", "presence", {"roomName": "p:k"}))["data"]
        assert d["count"] == 201
        redis.cli("DEL", PREFIX + "w:FAKE2")
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 200 and time.monotonic() < deadline:
            got += await events(c, 1)
        await no_presence_frame(c, 1.5)
        ids = [e["data"]["clientId"] for e in got]
        assert sorted(ids) == sorted(f"dead{i}" for i in range(1, 201))
        by = {e["data"]["clientId"]: e["data"] for e in got}
        assert by["dead2"]["userId"] == 2 and "userId" not in by["dead1"]
        assert (await req(c, "system", "presence", {"roomName": "p:k"}))["data"]["count"] == 1
        assert redis.cli("EXISTS", PREFIX + "pr:p:k:FAKE2") == "0"
        assert redis.cli("SISMEMBER", PREFIX + "workers", "FAKE2") == "0"
    arun(run(), timeout=120)


def test_a_host_shutting_down_sends_its_clients_leave_events_once(server, redis):
    """SIGTERM: the draining host closes its clients with 1001; the other host's members get one
    leave event per client (sent at once, not by the dead-worker claim), and the 300 members of
    the draining host do not get each other's leave events on their way out."""
    a_srv = start(server, redis, workers=1)
    b_srv = start(server, redis, workers=1)
    n = 300
    raws = [a_srv.client() for _ in range(n)]
    for c in raws:
        c.send_json({"type": "system", "action": "joinRoom", "data": {"roomName": "p:k"}})

    async def run():
        watcher = await client(b_srv)
        await join(watcher, "p:k")
        d = await presence_count(watcher, "p:k", n + 1)
        assert d["count"] == n + 1
        # the join events of clients whose join was still on its way when the watcher joined
        while True:
            try:
                m = await watcher.recv(1.0)
                assert m.get("type") == "presence" and m["action"] == "join", m
            except asyncio.TimeoutError:
                break
        watcher.inbox = []
        t0 = time.monotonic()
        a_srv.send_signal(signal.SIGTERM)
        got = await leaves_for(watcher, [c.client_id for c in raws], timeout=30, settle=3.0)
        print(f"{len(got)} leave events from a draining host in {time.monotonic() - t0:.2f} s")
        assert (await presence_count(watcher, "p:k", 1))["count"] == 1
    arun(run(), timeout=120)
    assert a_srv.wait_exit(20) == 0
