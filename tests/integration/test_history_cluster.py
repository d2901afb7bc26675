"""Room history across workers and hosts on one Redis (DESIGN 12): `--workers 2 --redis` and
two servers on one redis-server. One order per room for every member wherever it is connected
(concurrent publishers on two workers and two servers), recovery on another worker or server,
a burst racing recovering clients across servers, the keys and their TTL, getHistory and
joinRoom during a Redis outage, Redis restarting mid-burst (with and without persistence), a
worker killed mid-burst, a subscriber's send stored once for every worker, 1000 history rooms."""
import asyncio
import os
import signal
import time

import pytest

import mwtest
from mwtest import arun, ws_connect
from test_history import H_CONTROLLER, app_lua, call, collect, join, raw_frames
from test_redis import REDIS_SERVER, RedisProc

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server not installed")


@pytest.fixture
def redis(tmp_path):
    workdir = tmp_path / "redis"
    workdir.mkdir()
    r = RedisProc(workdir, mwtest.free_port()).start()
    yield r
    r.kill()


def start(server, redis, workers=1, extra=""):
    return server(app_lua=app_lua(extra), files={"controllers/h.lua": H_CONTROLLER},
                  args=("--workers", str(workers), "--redis", redis.url))


async def connect(srv):
    c = await ws_connect(srv)
    c.inbox, c.raw = [], []
    c.srv = srv
    c.worker = await call(c, "who")
    return c


async def spread(servers, n):
    """n clients over the servers (round robin) on at least two workers (SO_REUSEPORT picks the
    worker: a client landing where all the others are is replaced, up to 40 times)."""
    out = []
    for i in range(n):
        for _ in range(40):
            c = await connect(servers[i % len(servers)])
            if i < n - 1 or len({x.worker for x in out} | {c.worker}) >= 2:
                break
            await c.close()
        out.append(c)
    assert len({c.worker for c in out}) >= 2, "the clients all landed on one worker"
    return out


def offsets_of(frames):
    return [m["offset"] for m in frames]


async def concurrent_bursts(publishers, members, room, n):
    """Each publisher sends n messages at once; every member must see 1..n*len(publishers) in
    one identical order (the same raw frames)."""
    total = n * len(publishers)
    await asyncio.gather(*(call(p, "burst", room=room, n=n, start=1000 * (i + 1)) for i, p in enumerate(publishers)))
    seqs = await asyncio.gather(*(raw_frames(m, total, timeout=30) for m in members))
    first = seqs[0]
    for s in seqs[1:]:
        assert s == first, "members on different workers saw different frames or orders"
    import json
    decoded = [json.loads(t) for t in first]
    assert offsets_of(decoded) == list(range(1, total + 1))
    # each publisher's own messages stay in the order it sent them
    for i in range(len(publishers)):
        mine = [m["seq"] for m in decoded if 1000 * (i + 1) < m["seq"] <= 1000 * (i + 1) + n]
        assert mine == list(range(1000 * (i + 1) + 1, 1000 * (i + 1) + n + 1))
    return decoded


def test_two_workers_one_order_and_recovery(server, redis):
    srv = start(server, redis, workers=2)

    async def run():
        clients = await spread([srv], 6)
        for c in clients:
            _, r = await join(c, "big:w")
            assert r["success"] is True
        epoch = r["data"]["epoch"]
        pubs = [clients[0], next(c for c in clients if c.worker != clients[0].worker)]
        await concurrent_bursts(pubs, clients, "big:w", 100)
        # a client leaves; 50 more; it comes back (any worker) and recovers exactly those
        gone = next(c for c in clients if c not in pubs)
        await gone.close()
        await call(clients[0], "burst", room="big:w", n=50)
        for c in clients:
            if c is not gone:
                await collect(c, 50)
        for _ in range(4):  # land on each worker at least once, probably
            back = await connect(srv)
            before, r = await join(back, "big:w", since={"offset": 200, "epoch": epoch})
            assert r["data"]["recovered"] is True and r["data"]["offset"] == 250 and r["data"]["epoch"] == epoch
            assert offsets_of(before) == list(range(201, 251))
            await back.close()
        # getHistory from either worker sees the same thing
        for c in pubs:
            h = (await call(c, "get", room="big:w", since=240))["history"]
            assert h["epoch"] == epoch and h["offset"] == 250
            assert offsets_of(h["messages"]) == list(range(241, 251))
    arun(run(), timeout=120)


def test_two_servers_one_order_and_recovery(server, redis):
    a_srv = start(server, redis)
    b_srv = start(server, redis)

    async def run():
        members = [await connect(s) for s in (a_srv, b_srv, a_srv, b_srv)]
        for c in members:
            _, r = await join(c, "big:s")
        epoch = r["data"]["epoch"]
        await concurrent_bursts([members[0], members[1]], members, "big:s", 150)
        # recover on the other server
        await members[2].close()
        await call(members[1], "burst", room="big:s", n=20)
        back = await connect(b_srv)
        before, r = await join(back, "big:s", since={"offset": 300, "epoch": epoch})
        assert r["data"]["recovered"] is True and offsets_of(before) == list(range(301, 321))
    arun(run(), timeout=120)


def test_burst_racing_recovering_clients_across_servers(server, redis):
    """Server A publishes hundreds of messages (a timer, and bursts) while clients of server B
    keep reconnecting and recovering: every offset once, in order."""
    a_srv = start(server, redis)
    b_srv = start(server, redis)

    async def run():
        pub = await connect(a_srv)
        watcher = await connect(a_srv)
        _, r = await join(watcher, "big:race")
        epoch = r["data"]["epoch"]
        c = await connect(b_srv)
        await join(c, "big:race")
        await call(pub, "drip", room="big:race", n=800, every=0.001)
        seen = []
        rounds = replayed = 0
        while not seen or seen[-1] < 800:
            seen += offsets_of(await collect(c, 25, timeout=30))
            await c.close()
            rounds += 1
            c = await connect(b_srv)
            if rounds % 3 == 0:  # a burst published the instant the join goes out
                await pub.send({"type": "h", "action": "burst", "data": {"room": "big:race", "n": 50, "start": 0},
                                "requestId": f"b{rounds}"})
            before, r = await join(c, "big:race", since={"offset": seen[-1], "epoch": epoch})
            assert r["data"]["recovered"] is True, r
            seen += offsets_of([m for m in before if "offset" in m])
            replayed += len(before)
            assert r["data"]["offset"] == seen[-1]
            last = (await call(pub, "get", room="big:race", since=0, limit=1))["history"]["offset"]
            if last >= 800 + 50 * (rounds // 3) and seen[-1] >= last:
                break
        assert seen == list(range(1, len(seen) + 1)), "a gap or a duplicate"
        assert len(seen) >= 800 and rounds >= 5 and replayed > 0, (len(seen), rounds, replayed)
        # the watcher on the publishing server saw everything once, in order
        total = (await call(pub, "get", room="big:race", limit=1))["history"]["offset"]
        assert offsets_of(await collect(watcher, total, timeout=30)) == list(range(1, total + 1))
    arun(run(), timeout=150)


def test_keys_ttl_and_trim(server, redis):
    srv = start(server, redis)

    async def run():
        a = await connect(srv)
        await join(a, "small:k")
        await call(a, "burst", room="small:k", n=7)
        await collect(a, 7)
    arun(run())
    assert redis.cli("XLEN", "moonwire:hs:small:k") == "3"  # trimmed to size
    assert redis.cli("HGET", "moonwire:hm:small:k", "o") == "7"
    for key in ("moonwire:hs:small:k", "moonwire:hm:small:k"):
        assert 590000 < int(redis.cli("PTTL", key)) <= 600000, key
    first = redis.cli("XRANGE", "moonwire:hs:small:k", "-", "+", "COUNT", "1").splitlines()
    assert first[0] == "0-5", first


def test_redis_outage_get_history_and_join(server, redis):
    srv = start(server, redis)

    async def run():
        a = await connect(srv)
        await join(a, "h:out")
        redis.kill()
        await asyncio.sleep(0.3)
        r = await call(a, "get", room="h:out")
        assert r.get("history") is None and r.get("err"), r
        b = await connect(srv)
        before, r = await join(b, "h:out2")
        assert r["success"] is False and "history" in r["error"].lower(), r
        # not a member: nothing to leave
        _, r = await join(b, "plain:still")
        assert r["success"] is True
    arun(run())


@pytest.mark.parametrize("persist", [False, True], ids=["lost", "kept"])
def test_redis_restart_mid_burst(server, tmp_path, persist):
    """Redis dies and comes back while a timer publishes: offsets never repeat within an epoch;
    the epoch changes when Redis came back empty, and stays when it kept its data."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    redis = RedisProc(workdir, mwtest.free_port(), persist=persist).start()
    srv = start(server, redis)
    try:
        async def run():
            a = await connect(srv)
            _, r = await join(a, "big:rs")
            epoch = r["data"]["epoch"]
            await call(a, "drip", room="big:rs", n=3000, every=0.002)
            before = await collect(a, 100)
            redis.kill()
            await asyncio.sleep(0.5)
            redis.start()
            assert mwtest.wait_until(lambda: srv.http("/ready").status == 200)
            await asyncio.sleep(1.0)
            after = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    after += await collect(a, 1, timeout=1)
                except asyncio.TimeoutError:
                    break
                if len(after) >= 200:
                    break
            seq = offsets_of(before + after)
            resets = [i for i in range(1, len(seq)) if seq[i] <= seq[i - 1]]
            b = await connect(srv)
            _, r2 = await join(b, "big:rs")
            if persist:
                assert resets == [], seq
                assert r2["data"]["epoch"] == epoch
            else:
                assert len(resets) <= 1, seq
                assert r2["data"]["epoch"] != epoch
                if resets:
                    assert seq[resets[0]] == 1, seq
            for run_ in ([seq] if not resets else [seq[:resets[0]], seq[resets[0]:]]):
                assert len(run_) == len(set(run_)) and run_ == sorted(run_), "a duplicate offset"
            assert len(after) > 0
        arun(run(), timeout=90)
    finally:
        redis.kill()


def test_worker_killed_mid_burst(server, redis):
    srv = start(server, redis, workers=2)

    async def run():
        clients = await spread([srv], 2)
        pub, watcher = clients[0], clients[1]
        assert pub.worker != watcher.worker
        _, r = await join(watcher, "big:k")
        epoch = r["data"]["epoch"]
        await call(pub, "drip", room="big:k", n=5000, every=0.001)
        got = await collect(watcher, 200)
        pid = int(pub.worker.split(":")[1])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                got += await collect(watcher, 1, timeout=0.5)
            except asyncio.TimeoutError:
                break
        seq = offsets_of(got)
        assert seq == list(range(1, len(seq) + 1)), "a gap or duplicate at the survivor"
        assert 200 <= len(seq) < 5000, len(seq)
        # what the survivor saw is what Redis kept: a reconnecting client recovers up to there
        c = await connect(srv)
        before, r = await join(c, "big:k", since={"offset": 100, "epoch": epoch})
        assert r["data"]["recovered"] is True and r["data"]["offset"] == seq[-1]
        assert offsets_of(before) == list(range(101, seq[-1] + 1))
    arun(run(), timeout=90)
    assert mwtest.wait_until(lambda: len(srv.worker_pids()) == 2)


SUBSCRIBER_APP = """
subscribers = { { channel = "feed", handler = function(channel, payload)
  local ws = require("moonwire").webSocketServer
  ws:sendMessageToRoom("h:feed", { p = payload })
  ws:sendMessageToRoom("h:feed", { p = payload, second = true })
end } },
"""


def test_subscriber_send_is_stored_once(server, redis):
    """A subscriber runs on every worker; its send to a history room is stored and delivered once."""
    srv = start(server, redis, workers=2, extra=SUBSCRIBER_APP)

    async def run():
        clients = await spread([srv], 4)
        for c in clients:
            await join(c, "h:feed")
        for p in ("a", "b"):
            redis.cli("PUBLISH", "feed", p)
        for c in clients:
            got = await collect(c, 4)
            assert [(m["offset"], m["p"], m.get("second", False)) for m in got] == \
                [(1, "a", False), (2, "a", True), (3, "b", False), (4, "b", True)]
            await c.expect_nothing(0.5)
    arun(run())


def test_get_history_from_a_subscriber(server, redis):
    extra = """
subscribers = { { channel = "gh", handler = function(channel, payload)
  local ws = require("moonwire").webSocketServer
  local h, err = ws:getHistory(payload)
  ws:sendMessageToRoom("plain:gh", { type = "fromsub", history = h, err = err })
end } },
"""
    srv = start(server, redis, extra=extra)

    async def run():
        a = await connect(srv)
        await join(a, "h:sub")
        await join(a, "plain:gh")
        await call(a, "burst", room="h:sub", n=2)
        await collect(a, 2)
        redis.cli("PUBLISH", "gh", "h:sub")
        m = await a.recv()
        while m.get("type") != "fromsub":
            m = await a.recv()
        assert [x["offset"] for x in m["history"]["messages"]] == [1, 2], m
    arun(run())


def test_thousand_history_rooms_in_redis(server, redis):
    srv = start(server, redis)

    async def run():
        a = await connect(srv)
        r = await call(a, "rooms", prefix="h:many", n=1000, msg={"x": 1})
        assert r["n"] == 0
        h = (await call(a, "get", room="h:many1000"))["history"]
        assert h["offset"] == 1 and h["messages"][0]["message"] == {"x": 1}
    arun(run(), timeout=60)
    assert mwtest.wait_until(lambda: redis.cli("EVAL", "return #redis.call('KEYS', ARGV[1])", "0",
                                               "moonwire:hs:h:many*") == "1000")


def test_room_name_at_the_length_limit_across_servers(server, redis):
    a_srv = start(server, redis)
    b_srv = start(server, redis)
    name = "h:" + "r" * 253

    async def run():
        a = await connect(a_srv)
        b = await connect(b_srv)
        for c in (a, b):
            _, r = await join(c, name)
            assert r["success"] is True
        await call(a, "send", room=name, msg={"x": 1})
        for c in (a, b):
            m = await collect(c, 1)
            assert m[0]["room"] == name and m[0]["offset"] == 1
    arun(run())
