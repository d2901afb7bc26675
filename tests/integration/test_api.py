"""The server HTTP API on one worker (DESIGN 16): POST /api/METHOD with `Authorization: apikey
KEY`, every method with its result shape, every refusal with its exact status and error body
(401 unauthorized, 400 invalid, 404 not_found, 405, 413, 429, 503 unavailable while draining),
the key's configuration (app.lua, MOONWIRE_API_KEY, too short, absent: 404), bodies over 1 MiB
refused before they are read, a slow body cut by the handshake timeout, the log line and the
metrics, and a flood of API requests from one address while a WebSocket client keeps being
served. Cluster-wide behaviour: test_api_cluster.py."""
import asyncio
import http.client
import json
import socket
import threading
import time

import jwt
import pytest

import mwtest
from mwtest import arun, ws_connect

KEY = "test-api-key-0123456789"
SECRET = "api-test-secret-0123456789abcdefghijkl"
AUTH = {"Authorization": f"apikey {KEY}"}
HISTORY = '{ pattern = "h:*", history = { size = 5, ttl = 60 } }, { pattern = "p:*", presence = true }'


def app_lua(extra=""):
    return (f"return {{ api = {{ key = {KEY!r} }}, auth = {{ secret = {SECRET!r} }},\n"
            f"  rooms = {{ options = {{ {HISTORY} }} }}, {extra} }}\n")


def token(sub):
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 300}, SECRET, algorithm="HS256")


def api(srv, method, body=None, headers=None, http_method="POST", raw=None, timeout=15):
    """One API call -> (status, parsed JSON body or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(http_method, f"/api/{method}", body=data, headers=AUTH if headers is None else headers)
    resp = conn.getresponse()
    text = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(text) if text else None
    except ValueError:
        return resp.status, text


def ok(srv, method, body=None):
    status, out = api(srv, method, body if body is not None else {})
    assert status == 200, (method, status, out)
    assert set(out) == {"result"}, out
    return out["result"]


def error(status, code, out):
    assert set(out) == {"error"}, out
    assert out["error"]["code"] == code, out
    assert isinstance(out["error"]["message"], str) and out["error"]["message"], out


@pytest.fixture
def srv(server):
    return server(app_lua=app_lua("limits = { handshakeTimeout = 2 }"))


async def connect(srv, user=None):
    c = await ws_connect(srv, path=f"/ws?token={token(user)}" if user else None)
    if user:
        assert (await c.recv())["action"] == "authenticated"
    return c


async def join(c, room):
    r = await c.request({"type": "system", "action": "joinRoom", "data": {"roomName": room}, "requestId": "j"})
    assert r["response"]["success"], r


async def ping(c):
    r = await c.request({"type": "system", "action": "ping", "requestId": "p"})
    assert "pong" in r["response"], r


# ---- the key -----------------------------------------------------------------------------------

def test_without_a_key_api_and_admin_are_404(server):
    s = server()
    for path in ("/api/stats", "/admin"):
        r = mwtest.http_get(s.port, path)
        assert r.status == 404, (path, r)
    status, _ = api(s, "stats", {})
    assert status == 404
    assert mwtest.http_get(s.port, "/health").status == 200


def test_key_from_the_environment(server):
    s = server(env={"MOONWIRE_API_KEY": "env-key-0123456789abcdef"})
    assert api(s, "stats", {}, headers={"Authorization": "apikey env-key-0123456789abcdef"})[0] == 200
    assert api(s, "stats", {})[0] == 401
    assert mwtest.http_get(s.port, "/admin").status == 200


@pytest.mark.parametrize("how", ["app", "env"])
def test_short_key_is_a_config_error_naming_the_key(app_dir, how):
    if how == "app":
        d = app_dir(app_lua='return { api = { key = "short" } }')
        rc, out, err = mwtest.run_cli(["check", d])
    else:
        d = app_dir()
        rc, out, err = mwtest.run_cli(["check", d], app_env={"MOONWIRE_API_KEY": "0123456789abcde"})
    assert rc == 1
    assert "api.key" in out + err and "at least 16" in out + err
    assert "short" not in (out + err).replace("a short key", ""), "the key itself must not be printed"


def test_wrong_or_missing_key_is_401_and_others_are_served(srv):
    async def run():
        c = await connect(srv)
        for headers in ({}, {"Authorization": "apikey wrong-key-0123456789"},
                        {"Authorization": f"Bearer {KEY}"}, {"Authorization": f"apikey {KEY}x"},
                        {"Authorization": f"apikey {KEY[:-1]}"}, {"Authorization": "apikey "}):
            status, out = api(srv, "stats", {}, headers=headers)
            assert status == 401, headers
            error(401, "unauthorized", out)
        assert api(srv, "stats", {}, headers={"Authorization": f"ApiKey   {KEY}"})[0] == 200
        await ping(c)
    arun(run())
    assert KEY not in srv.log()


# ---- the request -----------------------------------------------------------------------------------

def test_method_status_and_body_errors(srv):
    status, out = api(srv, "stats", http_method="GET")
    assert status == 405
    assert out["error"]["code"] == "method_not_allowed"
    status, out = api(srv, "nosuchmethod", {})
    assert status == 404
    error(404, "not_found", out)
    status, out = api(srv, "__index", {})
    assert status == 404
    for raw in (b"[1,2]", b'"text"', b"42", b"null", b"true", b"[]"):
        status, out = api(srv, "stats", raw=raw)
        assert status == 400, raw
        error(400, "invalid", out)
        assert out["error"]["message"] == "The body must be a JSON object"
    for raw in (b"{bad", b'{"a":1', b"\xff\xfe", b'{"a":1e400}'):
        status, out = api(srv, "stats", raw=raw)
        assert status == 400, raw
        assert out["error"]["message"] == "The body is not valid JSON"
    # an empty body is an empty object; unknown fields are ignored
    assert api(srv, "stats", raw=b"")[0] == 200
    assert api(srv, "stats", {"whatever": [1, 2], "x": None})[0] == 200


def test_body_over_one_mib_is_refused_before_it_is_read(srv):
    # declared too long: answered after the head, with no body sent at all
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(f"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey {KEY}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {1024 * 1024 + 1}\r\n\r\n".encode())
    r = mwtest.read_response(mwtest.BufferedSocket(s), timeout=10)
    assert r.status == 413
    assert r.json()["error"]["code"] == "too_large"
    s.close()
    # chunked, growing past the limit
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(f"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey {KEY}\r\n"
              f"Transfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"x" * 65536
    try:
        for _ in range(17):
            s.sendall(b"10000\r\n" + chunk + b"\r\n")
    except OSError:
        pass
    r = mwtest.read_response(mwtest.BufferedSocket(s), timeout=10)
    assert r.status == 413
    s.close()
    # exactly 1 MiB is fine
    body = b'{"message":{"a":1},"room":"big"}'
    body += b" " * (1024 * 1024 - len(body))
    assert api(srv, "publish", raw=body)[0] == 200
    # Expect: 100-continue is answered (curl sends it for larger bodies)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    payload = json.dumps({"room": "r", "message": {"a": 1}}).encode()
    s.sendall(f"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey {KEY}\r\n"
              f"Expect: 100-continue\r\nContent-Length: {len(payload)}\r\n\r\n".encode())
    bs = mwtest.BufferedSocket(s)
    head = bs.read_until(b"\r\n\r\n", time.monotonic() + 10)
    assert head.startswith(b"HTTP/1.1 100 Continue"), head
    s.sendall(payload)
    r = mwtest.read_response(bs, timeout=10)
    assert r.status == 200 and r.json() == {"result": {}}
    s.close()


def test_slow_body_gets_the_handshake_timeout(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    s.sendall(f"POST /api/stats HTTP/1.1\r\nHost: x\r\nAuthorization: apikey {KEY}\r\n"
              f"Content-Length: 100\r\n\r\n{{".encode())
    r = mwtest.read_response(mwtest.BufferedSocket(s), timeout=15)
    assert r.status == 408
    s.close()
    assert api(srv, "stats", {})[0] == 200


# ---- the methods -----------------------------------------------------------------------------------

def test_publish_broadcast_send_to_user_and_client(srv):
    async def run():
        a = await connect(srv, "alice")
        a2 = await connect(srv, "alice")
        b = await connect(srv, 42)
        for c in (a, b):
            await join(c, "lobby")
        msg = {"type": "news", "action": "post", "data": {"n": 1764700000000123, "empty": [], "obj": {}}}
        assert ok(srv, "publish", {"room": "lobby", "message": msg}) == {}
        for c in (a, b):
            assert await c.recv() == msg
        await a2.expect_nothing()

        assert ok(srv, "broadcast", {"message": {"type": "all"}}) == {}
        for c in (a, a2, b):
            assert await c.recv() == {"type": "all"}

        assert ok(srv, "sendToUser", {"userId": "alice", "message": {"type": "u"}}) == {}
        assert await a.recv() == {"type": "u"} and await a2.recv() == {"type": "u"}
        assert ok(srv, "sendToUser", {"userId": 42, "message": {"type": "n"}}) == {}
        assert await b.recv() == {"type": "n"}
        await a.expect_nothing()

        assert ok(srv, "sendToClient", {"clientId": b.client_id, "message": {"type": "c"}}) == {}
        assert await b.recv() == {"type": "c"}
        # a client that is not connected: nothing to deliver, still {}
        assert ok(srv, "sendToClient", {"clientId": "x" * 22, "message": {"type": "c"}}) == {}
        await a.expect_nothing()
    arun(run())


@pytest.mark.parametrize("method,body,field", [
    ("publish", {"message": {"a": 1}}, "room"),
    ("publish", {"room": "", "message": {"a": 1}}, "room"),
    ("publish", {"room": 5, "message": {"a": 1}}, "room"),
    ("publish", {"room": "r" * 256, "message": {"a": 1}}, "room"),
    ("publish", {"room": "r"}, "message"),
    ("publish", {"room": "r", "message": [1]}, "message"),
    ("publish", {"room": "r", "message": []}, "message"),
    ("publish", {"room": "r", "message": "text"}, "message"),
    ("publish", {"room": "r", "message": None}, "message"),
    ("broadcast", {}, "message"),
    ("broadcast", {"message": 3}, "message"),
    ("sendToUser", {"message": {}}, "userId"),
    ("sendToUser", {"userId": 1.5, "message": {}}, "userId"),
    ("sendToUser", {"userId": True, "message": {}}, "userId"),
    ("sendToUser", {"userId": "u", "message": [1]}, "message"),
    ("sendToClient", {"message": {}}, "clientId"),
    ("sendToClient", {"clientId": 7, "message": {}}, "clientId"),
    ("disconnect", {}, "clientId or userId"),
    ("disconnect", {"clientId": "a" * 22, "userId": "u"}, "clientId or userId"),
    ("disconnect", {"userId": "u", "code": 1001}, "code"),
    ("disconnect", {"userId": "u", "code": 5000}, "code"),
    ("disconnect", {"userId": "u", "code": "x"}, "code"),
    ("disconnect", {"userId": "u", "reason": "r" * 124}, "reason"),
    ("disconnect", {"userId": "u", "reason": 5}, "reason"),
    ("joinRoom", {"room": "r"}, "clientId"),
    ("leaveRoom", {"room": "r"}, "clientId"),
    ("history", {}, "room"),
    ("history", {"room": "h:1", "since": -1}, "since"),
    ("history", {"room": "h:1", "since": 1.5}, "since"),
    ("history", {"room": "h:1", "limit": 0}, "limit"),
    ("history", {"room": "h:1", "limit": "3"}, "limit"),
    ("history", {"room": "plain"}, "history"),
    ("client", {}, "clientId"),
    ("presence", {}, "room"),
    ("presence", {"room": "plain"}, "presence"),
    ("presence", {"room": "p:1", "limit": -1}, "limit"),
    ("rooms", {"limit": 0}, "limit"),
])
def test_bad_parameters_are_400_naming_the_field(srv, method, body, field):
    status, out = api(srv, method, body)
    assert status == 400, (method, body, out)
    error(400, "invalid", out)
    assert field in out["error"]["message"], out
    assert api(srv, "stats", {})[0] == 200


def test_publish_in_a_history_room_answers_its_offset_and_history_reads_it(srv):
    async def run():
        c = await connect(srv)
        await join(c, "h:1")
        for i in range(1, 8):
            assert ok(srv, "publish", {"room": "h:1", "message": {"i": i, "room": "spoofed"}}) == {"offset": i}
            m = await c.recv()
            assert m == {"i": i, "room": "h:1", "offset": i}
        h = ok(srv, "history", {"room": "h:1"})
        assert set(h) == {"epoch", "offset", "messages"}
        assert h["offset"] == 7 and isinstance(h["epoch"], str)
        assert [m["offset"] for m in h["messages"]] == [3, 4, 5, 6, 7]  # size 5
        assert h["messages"][0]["message"] == {"i": 3}
        h2 = ok(srv, "history", {"room": "h:1", "since": 5, "limit": 1})
        assert [m["offset"] for m in h2["messages"]] == [6]
        empty = ok(srv, "history", {"room": "h:empty"})
        assert empty["offset"] == 0 and empty["messages"] == []
    arun(run())


def test_presence(srv):
    async def run():
        a = await connect(srv, "alice")
        a2 = await connect(srv, "alice")
        b = await connect(srv)
        empty = ok(srv, "presence", {"room": "p:1"})
        assert empty == {"count": 0, "users": 0, "clients": []}
        for c in (a, a2, b):
            await join(c, "p:1")
        pr = ok(srv, "presence", {"room": "p:1"})
        assert pr["count"] == 3 and pr["users"] == 2
        by_id = {x["clientId"]: x for x in pr["clients"]}
        assert set(by_id) == {a.client_id, a2.client_id, b.client_id}
        assert by_id[a.client_id]["userId"] == "alice" and "userId" not in by_id[b.client_id]
        assert all(isinstance(x["joinedAt"], str) and x["joinedAt"].endswith("Z") for x in pr["clients"])
        short = ok(srv, "presence", {"room": "p:1", "limit": 1})
        assert short["count"] == 3 and len(short["clients"]) == 1 and short["truncated"] is True
    arun(run())


def test_disconnect_by_client_and_by_user(srv):
    async def run():
        a = await connect(srv, "alice")
        a2 = await connect(srv, "alice")
        b = await connect(srv, "bob")
        assert ok(srv, "disconnect", {"clientId": b.client_id, "code": 4000, "reason": "bye"}) == {}
        with pytest.raises(Exception) as e:
            await b.recv()
        assert getattr(e.value, "code", None) == 4000 and e.value.reason == "bye"
        assert ok(srv, "disconnect", {"userId": "alice"}) == {}
        for c in (a, a2):
            with pytest.raises(Exception) as e:
                await c.recv()
            assert getattr(e.value, "code", None) == 1000
        status, out = api(srv, "disconnect", {"clientId": b.client_id})
        assert status == 404
        error(404, "not_found", out)
        # a user with no connection: nothing to do
        assert ok(srv, "disconnect", {"userId": "nobody"}) == {}
    arun(run())


def test_join_leave_client_and_rooms(srv):
    async def run():
        a = await connect(srv, "alice")
        b = await connect(srv)
        c = await connect(srv)
        assert ok(srv, "joinRoom", {"clientId": a.client_id, "room": "big"}) == {}
        for x in (b, c):
            assert ok(srv, "joinRoom", {"clientId": x.client_id, "room": "big"}) == {}
        assert ok(srv, "joinRoom", {"clientId": b.client_id, "room": "small"}) == {}
        assert ok(srv, "joinRoom", {"clientId": c.client_id, "room": "h:x"}) == {}
        assert ok(srv, "rooms") == [{"room": "big", "members": 3}, {"room": "h:x", "members": 1},
                                    {"room": "small", "members": 1}]
        assert ok(srv, "rooms", {"limit": 1}) == [{"room": "big", "members": 3}]
        ok(srv, "publish", {"room": "big", "message": {"to": "big"}})
        for x in (a, b, c):
            assert await x.recv() == {"to": "big"}
        cl = ok(srv, "client", {"clientId": a.client_id})
        assert cl["clientId"] == a.client_id
        assert cl["user"]["userId"] == "alice" and cl["user"]["payload"]["sub"] == "alice"
        assert cl["rooms"] == ["big"] and cl["metadata"] == {}
        assert cl["workerId"] == mwtest.http_get(srv.port, "/health").json()["workerId"]
        assert isinstance(cl["connectedAt"], (int, float))
        anon = ok(srv, "client", {"clientId": b.client_id})
        assert "user" not in anon and sorted(anon["rooms"]) == ["big", "small"]
        assert ok(srv, "leaveRoom", {"clientId": a.client_id, "room": "big"}) == {}
        assert ok(srv, "leaveRoom", {"clientId": a.client_id, "room": "big"}) == {}  # not a member: no-op
        assert ok(srv, "client", {"clientId": a.client_id})["rooms"] == []
        assert ok(srv, "rooms")[0] == {"room": "big", "members": 2}
        assert ok(srv, "client", {"clientId": "nobody-0123456789abcdef"}) is None
        for m in ("joinRoom", "leaveRoom"):
            status, out = api(srv, m, {"clientId": "nobody-0123456789abcdef", "room": "r"})
            assert status == 404
            error(404, "not_found", out)
        status, out = api(srv, "joinRoom", {"clientId": a.client_id, "room": "r" * 300})
        assert status == 400
        await ping(a)
    arun(run())


def test_stats_and_metrics(srv):
    async def run():
        cs = [await connect(srv) for _ in range(3)]
        await join(cs[0], "x")
        for c in cs:
            await ping(c)
        st = ok(srv, "stats")
        assert set(st) == {"connections", "rooms", "workers"}
        assert st["connections"] == 3 and st["rooms"] == 1
        assert len(st["workers"]) == 1
        w = st["workers"][0]
        assert set(w) == {"workerId", "connections", "messagesIn", "messagesOut"}
        assert w["workerId"] == mwtest.http_get(srv.port, "/health").json()["workerId"]
        assert w["connections"] == 3 and w["messagesIn"] >= 4 and w["messagesOut"] >= 4
        assert all(isinstance(w[k], int) for k in ("connections", "messagesIn", "messagesOut"))
    arun(run())
    api(srv, "nosuch", {})
    api(srv, "stats", {}, headers={})
    text = mwtest.http_get(srv.port, "/metrics").text
    assert 'moonwire_api_requests_total{worker="0",method="stats",status="200"} 1' in text
    assert 'moonwire_api_requests_total{worker="0",method="other",status="404"} 1' in text
    assert 'moonwire_api_requests_total{worker="0",method="stats",status="401"} 1' in text
    assert "moonwire_api_duration_seconds_count" in text
    log = srv.wait_log(lambda t: "method=nosuch status=404" in t)
    assert "api request" in log and "method=stats status=200" in log and "durationMs=" in log
    assert KEY not in log


def test_admin_page_is_served(srv):
    r = mwtest.http_get(srv.port, "/admin")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "sessionStorage" in page and "/api/" in page and "/metrics" in page
    assert "http://" not in page and "https://" not in page, "the page loads nothing from elsewhere"


# ---- the server stays available ------------------------------------------------------------------------

def test_api_flood_from_one_address_is_rate_limited_and_websocket_clients_are_served(server):
    s = server(app_lua=app_lua("api = { key = %r, rate = { requests = 200, per = 1, burst = 200 } }" % KEY)
               .replace(f"api = {{ key = {KEY!r} }}, ", ""))
    stop = threading.Event()
    counts = {}
    lock = threading.Lock()
    request = (f"POST /api/stats HTTP/1.1\r\nHost: x\r\nAuthorization: apikey {KEY}\r\n"
               f"Content-Length: 2\r\n\r\n{{}}").encode()

    def flood():
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
                    sock.sendall(request)
                    head = sock.recv(64)
                status = int(head.split()[1]) if head.startswith(b"HTTP/1.1") else 0
            except OSError:
                status = -1
            with lock:
                counts[status] = counts.get(status, 0) + 1

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    served = 0

    async def run():
        nonlocal served
        c = await connect(s)
        end = time.monotonic() + 4
        while time.monotonic() < end:
            await ping(c)
            served += 1
            await asyncio.sleep(0.02)  # under the WebSocket rate limit (100/s)
    try:
        arun(run())
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    print("flood answers:", counts, "websocket pings answered:", served)
    assert counts.get(429, 0) > 0, counts
    assert counts.get(200, 0) > 0, counts
    assert served > 10
    assert "status=429" not in s.log(), "refusals of a flood are not logged one by one at info"
    assert api(s, "stats", {})[0] in (200, 429)


def test_draining_answers_503(server):
    import signal
    s = server(app_lua=app_lua())
    # a client that never reads keeps the worker draining (close handshake timeout)
    raw = mwtest.RawWS(s.port)
    s.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    got = None
    while time.monotonic() < deadline:
        try:
            status, out = api(s, "stats", {}, timeout=3)
        except OSError:
            break
        if status == 503:
            got = out
            break
        time.sleep(0.05)
    assert got is not None, "no 503 while draining"
    error(503, "unavailable", got)
    raw.sock.close()
