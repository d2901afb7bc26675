"""Several workers, and several hosts, sharing one real Redis behave as one server: a send to
all, a room, a user or one client reaches every recipient exactly once wherever it is
connected (local ones directly, remote ones through Redis), excludeClientId holds across
workers, and disconnectClient reaches a client on another worker."""
import asyncio
import json
import shutil
import subprocess
import time

import jwt
import pytest

import mwtest

SECRET = "cluster-secret-0123456789abcdefghijkl"


@pytest.fixture
def redis_url(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = mwtest.free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True)
        if out.stdout.strip() == "PONG":
            break
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


APP = f"return {{ auth = {{ secret = {SECRET!r} }} }}\n"


def token(sub):
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 300}, SECRET, algorithm="HS256")


class Client:
    def __init__(self, ws, client_id):
        self.ws, self.client_id, self.worker = ws, client_id, None
        self.rid = 0

    async def request(self, action, **data):
        self.rid += 1
        await self.ws.send(json.dumps({"type": "c", "action": action, "data": data, "requestId": self.rid}))
        while True:
            m = json.loads(await asyncio.wait_for(self.ws.recv(), 5))
            if m.get("requestId") == self.rid:
                return m.get("response")
            self.inbox.append(m)

    async def drain(self, seconds=0.5):
        """Every message that arrives within `seconds` (after the inbox)."""
        out, self.inbox = self.inbox, []
        end = asyncio.get_event_loop().time() + seconds
        while True:
            left = end - asyncio.get_event_loop().time()
            if left <= 0:
                return out
            try:
                out.append(json.loads(await asyncio.wait_for(self.ws.recv(), left)))
            except asyncio.TimeoutError:
                return out


async def connect(url, user=None):
    import websockets
    full = url + (f"?token={token(user)}" if user else "")
    ws = await websockets.connect(full)
    hello = json.loads(await ws.recv())
    c = Client(ws, hello["data"]["clientId"])
    c.inbox = []
    if user:
        auth = json.loads(await ws.recv())
        assert auth["type"] == "auth"
    c.worker = await c.request("who")
    return c


async def spread(urls, n, users=None):
    """n clients over the urls (round robin), with users[i] as their sub when given, on at least
    two workers: SO_REUSEPORT picks a worker by a hash, so when the last client would land where
    all the others are, it is replaced (up to 40 tries)."""
    out = []
    replaced = 0
    for i in range(n):
        while True:
            c = await connect(urls[i % len(urls)], users[i] if users else None)
            if i < n - 1 or len({x.worker for x in out} | {c.worker}) >= 2 or replaced >= 40:
                break
            await c.ws.close()
            replaced += 1
        out.append(c)
    if replaced:
        await asyncio.sleep(0.3)  # the replaced clients' disconnects reach the cluster state
    return out


async def drain_all(clients, seconds=0.5):
    return await asyncio.gather(*(c.drain(seconds) for c in clients))


def got(messages, action):
    return [m["data"] for m in messages if m.get("type") == "c" and m.get("action") == action]


async def exercise(urls):
    clients = await spread(urls, 12, users=[f"u{i % 3}" for i in range(12)])
    workers = {c.worker for c in clients}
    assert len(workers) >= 2, f"the clients all landed on one worker: {workers}"
    a = clients[0]
    b = next(c for c in clients if c.worker != a.worker)

    # to all, excluding the sender: every other client exactly once
    assert await a.request("all", n=1, exclude=True) is not None
    for c, inbox in zip(clients, await drain_all(clients)):
        msgs = got(inbox, "all")
        assert msgs == ([] if c is a else [1]), (c.worker, msgs)

    # a room with members on both workers
    members = clients[:6]
    for c in members:
        assert await c.request("join", room="r") is True
    await b.request("room", room="r", n=2, exclude=True)
    for c, inbox in zip(clients, await drain_all(clients)):
        msgs = got(inbox, "room")
        expected = [2] if (c in members and c is not b) else []
        assert msgs == expected, (c.client_id, c.worker, msgs)

    # a user with connections on both workers (u0: clients 0, 3, 6, 9)
    await b.request("user", user="u0", n=3)
    for i, inbox in enumerate(await drain_all(clients)):
        msgs = got(inbox, "user")
        assert msgs == ([3] if i % 3 == 0 else []), (i, msgs)

    # one client on another worker
    assert await a.request("to", target=b.client_id, n=4) is True
    assert got(await b.drain(0.5), "direct") == [4]
    assert got(await a.drain(0.1), "direct") == []

    # disconnect a client on another worker
    assert await a.request("kick", target=b.client_id) is True
    with pytest.raises(Exception) as closed:
        await asyncio.wait_for(b.ws.recv(), 3)
    assert getattr(closed.value, "code", None) == 4000, closed.value
    for c in clients:
        if c is not b:
            await c.ws.close()


def test_two_workers_share_one_redis(server, redis_url):
    srv = server(app_lua=APP, template="cluster", args=("--workers", "2", "--redis", redis_url))
    assert len(srv.worker_pids()) == 2
    mwtest.arun(exercise([srv.ws_url]), timeout=60)


def test_two_hosts_share_one_redis(server, redis_url):
    one = server(app_lua=APP, template="cluster", args=("--redis", redis_url))
    two = server(app_lua=APP, template="cluster", args=("--redis", redis_url))
    mwtest.arun(exercise([one.ws_url, two.ws_url]), timeout=60)


async def cluster_reads(urls, kill=None):
    clients = await spread(urls, 8, users=[f"u{i}" for i in range(8)])
    a = clients[0]
    b = next(c for c in clients if c.worker != a.worker)
    for c in clients[:4] + [b]:
        assert await c.request("join", room="shared") is True
    assert await b.request("nick", nick="bee") is True
    expected = {c.client_id for c in clients[:4] + [b]}
    # every worker sees the whole room, the whole count and a client of another worker
    for asker in (a, b):
        got_members = await asker.request("members", room="shared")
        assert set(got_members["members"]) == expected, got_members
        assert (await asker.request("count"))["count"] == 8
        assert "shared" in (await asker.request("rooms"))["rooms"]
    info = await a.request("info", target=b.client_id)
    assert info["found"] is True and info["workerId"] == b.worker, info
    assert info["nick"] == "bee" and info["rooms"] == ["shared"] and info["userId"] == f"u{clients.index(b)}"
    if kill:
        victims = {c.client_id for c in clients if c.worker == b.worker}
        kill(b.worker)
        survivor = a
        deadline = asyncio.get_event_loop().time() + 6  # two heartbeats of 1 s, with margin
        while True:
            members = set((await survivor.request("members", room="shared"))["members"])
            if not (members & victims):
                break
            assert asyncio.get_event_loop().time() < deadline, "a dead worker's clients stayed in the room"
            await asyncio.sleep(0.2)
        assert members == expected - victims
        assert (await survivor.request("count"))["count"] == 8 - len(victims)
        assert (await survivor.request("info", target=b.client_id))["found"] is False
    for c in clients:
        try:
            await c.ws.close()
        except Exception:
            pass


FAST = f"return {{ auth = {{ secret = {SECRET!r} }}, cluster = {{ heartbeat = 1 }} }}\n"


def test_cluster_reads_across_workers(server, redis_url):
    srv = server(app_lua=FAST, template="cluster", args=("--workers", "2", "--redis", redis_url))
    mwtest.arun(cluster_reads([srv.ws_url]), timeout=60)


def test_a_killed_hosts_clients_leave_lookups_within_two_heartbeats(server, redis_url):
    one = server(app_lua=FAST, template="cluster", args=("--redis", redis_url))
    two = server(app_lua=FAST, template="cluster", args=("--redis", redis_url))
    pids = {}

    def kill(worker_id):
        # the worker id is host:pid:tag; SIGKILL the whole host (supervisor first, then its worker)
        pid = int(worker_id.split(":")[1])
        for srv in (one, two):
            if pid in srv.worker_pids():
                srv.proc.kill()
                import os, signal as sig
                os.kill(pid, sig.SIGKILL)
                pids["killed"] = srv
    mwtest.arun(cluster_reads([one.ws_url, two.ws_url], kill=kill), timeout=60)


async def remote_calls(urls):
    clients = await spread(urls, 6)
    a = clients[0]
    b = next(c for c in clients if c.worker != a.worker)
    # a asks for b (on another worker) to join a room and to carry metadata
    assert await a.request("joinOther", target=b.client_id, room="far") is True
    assert await a.request("tagOther", target=b.client_id, value="blue") is True
    deadline = asyncio.get_event_loop().time() + 3
    while True:
        members = (await a.request("members", room="far"))["members"]
        info = await a.request("info", target=b.client_id)
        if members == [b.client_id] and info.get("rooms") == ["far"]:
            break
        assert asyncio.get_event_loop().time() < deadline, (members, info)
        await asyncio.sleep(0.05)
    # b now gets the room's traffic, sent from a's worker
    await a.request("room", room="far", n=7)
    assert got(await b.drain(0.5), "room") == [7]
    assert await a.request("leaveOther", target=b.client_id, room="far") is True
    deadline = asyncio.get_event_loop().time() + 3
    while (await a.request("members", room="far"))["members"] not in ([], {}):
        assert asyncio.get_event_loop().time() < deadline
        await asyncio.sleep(0.05)
    for c in clients:
        await c.ws.close()


def test_room_and_metadata_calls_for_a_client_of_another_worker(server, redis_url):
    srv = server(app_lua=FAST, template="cluster", args=("--workers", "2", "--redis", redis_url))
    mwtest.arun(remote_calls([srv.ws_url]), timeout=60)
