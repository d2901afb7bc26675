"""Redis bindings against a real redis-server (`redis`, `timer`, `subscribers`;
Redis faults).

Each test starts its own `redis-server --port P --save "" --appendonly no` on a free port
(the `redis_server` fixture below) and a moonwire with `--redis redis://127.0.0.1:P/DB`.
The controller under test is apps/redis/controllers/rd.lua, copied next to apps/basic's
controllers (echo is the witness probe).

Choices made where docs/reference.md is silent:
- An error reply's message is passed on as Redis wrote it ("ERR ...", "WRONGTYPE ...").
- Refusal of blocking/subscribing commands ignores the command's case (`blpop` too).
- During an outage a call returns `nil, err` within 1 s (no waiting for the 5 s timeout),
  also for a call that was already in flight when the connection dropped.
- A handle's `:stop()` on an `after` that is not yet due means it never runs.
"""
import os
import shutil
import signal
import subprocess
import time

import pytest

import mwtest
from mwtest import wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
RD_LUA = (mwtest.APPS / "redis" / "controllers" / "rd.lua").read_text()

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server not installed")


# --------------------------------------------------------------------------- redis fixture

class RedisProc:
    """One redis-server subprocess on a fixed port; can be stopped, restarted, paused."""

    def __init__(self, workdir, port, persist=False):
        self.workdir = workdir
        self.port = port
        # persist: an append-only file fsynced on every write, so a restart keeps the data
        self.persistence = (["--appendonly", "yes", "--appendfsync", "always", "--save", ""] if persist
                            else ["--save", "", "--appendonly", "no"])
        self.proc = None
        self.paused = False
        self.starts = 0

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def url_db(self, db):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout=5.0):
        assert self.proc is None or self.proc.poll() is not None, "redis already running"
        self.starts += 1
        log = open(self.workdir / f"redis-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", *self.persistence,
             "--daemonize", "no", "--dir", str(self.workdir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=str(self.workdir),
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.cli("PING", timeout=1) == "PONG":
                    return self
            except (subprocess.SubprocessError, AssertionError):
                pass
            time.sleep(0.03)
        raise AssertionError(f"redis-server not answering on {self.port} within {timeout}s:\n{self.log()}")

    def log(self):
        try:
            return (self.workdir / f"redis-{self.starts}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self, sig=signal.SIGKILL):
        """Stop redis abruptly (the default) and wait for it to be gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, sig)
        if self.paused and sig != signal.SIGKILL:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def cli(self, *args, db=0, timeout=3):
        out = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), "-n", str(db), *map(str, args)],
                             capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, f"redis-cli {args}: {out.returncode} {out.stderr}"
        return out.stdout.strip()


@pytest.fixture
def redis_server(tmp_path):
    """A running redis-server on a free port; stopped (and resumed first if paused) at teardown."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    r = RedisProc(workdir, mwtest.free_port())
    r.start()
    yield r
    r.kill(signal.SIGKILL)


def start(server, redis=None, app_lua=None, files=None, db=0, args=()):
    """moonwire on apps/basic + rd.lua, with --redis when `redis` is given."""
    all_files = {"controllers/rd.lua": RD_LUA}
    all_files.update(files or {})
    argv = list(args)
    if redis is not None:
        argv += ["--redis", redis.url_db(db)]
    return server(app_lua=app_lua, files=all_files, args=argv)


def call(c, *cmd, rid=None, timeout=5.0):
    """rd.call -> {"reply": {...}, "err": ...}; asserts the frame is a reply."""
    reply = c.request("rd", "call", list(cmd), request_id=rid, timeout=timeout)
    assert reply.get("type") == "rd", f"{cmd}: {reply}"
    return reply["response"]


def wait_ready(srv, status, timeout):
    def check():
        try:
            return srv.http("/ready", timeout=1.0).status == status
        except (OSError, EOFError, ValueError):
            return False
    return wait_until(check, timeout=timeout, interval=0.05)


def ready(srv):
    return srv.http("/ready", timeout=2.0)


# --------------------------------------------------------------------------- reply types

def test_every_reply_type_maps_to_lua(redis_server, server):
    r = redis_server
    srv = start(server, r, db=3)
    w = srv.client()
    c = srv.client()
    assert wait_ready(srv, 200, 5), ready(srv)

    # status replies -> strings
    assert call(c, "SET", "k", "v") == {"reply": {"kind": "string", "value": "OK"}, "errtype": "nil"}
    assert call(c, "PING") == {"reply": {"kind": "string", "value": "PONG"}, "errtype": "nil"}
    # the URL's database was selected
    assert r.cli("GET", "k", db=3) == "v"
    assert r.cli("EXISTS", "k", db=0) == "0"
    # integer replies -> numbers
    assert call(c, "INCR", "n") == {"reply": {"kind": "number", "value": 1}, "errtype": "nil"}
    assert call(c, "DECRBY", "neg", "7")["reply"] == {"kind": "number", "value": -7}
    assert call(c, "EXISTS", "nope")["reply"] == {"kind": "number", "value": 0}
    # bulk -> string; empty bulk -> "" (not nil)
    assert call(c, "GET", "k") == {"reply": {"kind": "string", "value": "v"}, "errtype": "nil"}
    call(c, "SET", "empty", "")
    assert call(c, "GET", "empty")["reply"] == {"kind": "string", "value": ""}
    # nil bulk -> nil without an error
    assert call(c, "GET", "missing") == {"reply": {"kind": "nil"}, "errtype": "nil"}
    # array with a nil element -> table with cjson.null at that index
    res = call(c, "MGET", "k", "missing", "n")
    assert res["errtype"] == "nil", res
    assert res["reply"]["kind"] == "table" and res["reply"]["len"] == 3 and res["reply"]["n"] == 3, res
    assert res["reply"]["items"] == [{"kind": "string", "value": "v"}, {"kind": "null"},
                                     {"kind": "string", "value": "1"}], res
    # the same array returned straight to the client: null in the JSON array
    raw = c.request("rd", "raw", ["MGET", "k", "missing", "n"], request_id="raw1")
    assert raw == {"type": "rd", "action": "raw", "response": {"v": ["v", None, "1"]}, "requestId": "raw1"}, raw
    # empty array -> empty table
    res = call(c, "LRANGE", "nolist", "0", "-1")
    assert res["reply"]["kind"] == "table" and res["reply"]["n"] == 0, res
    # nested arrays (EVAL returns an array holding an integer, an array and a bulk)
    res = call(c, "EVAL", "return {1, {2, 'x'}, 'y'}", "0")
    assert res["reply"] == {"kind": "table", "n": 3, "len": 3, "items": [
        {"kind": "number", "value": 1},
        {"kind": "table", "n": 2, "len": 2, "items": [{"kind": "number", "value": 2},
                                                      {"kind": "string", "value": "x"}]},
        {"kind": "string", "value": "y"}]}, res
    # a status reply from a script and a flat HGETALL array
    assert call(c, "EVAL", "return redis.status_reply('FINE')", "0")["reply"] == {"kind": "string", "value": "FINE"}
    call(c, "HSET", "h", "f", "1")
    assert call(c, "HGETALL", "h")["reply"]["items"] == [{"kind": "string", "value": "f"},
                                                         {"kind": "string", "value": "1"}]
    # binary-safe arguments and replies
    b = c.request("rd", "binary", {"key": "bin"}, request_id="b")
    assert b["response"] == {"ok": "OK", "same": True, "len": 5, "strlen": 5}, b
    w.assert_served()


def test_error_reply_is_nil_and_message(redis_server, server):
    srv = start(server, redis_server)
    w = srv.client()
    c = srv.client()
    call(c, "SET", "s", "text")
    res = call(c, "INCR", "s")
    assert res["reply"] == {"kind": "nil"}, res
    assert res["errtype"] == "string" and res["err"].startswith("ERR ") and "not an integer" in res["err"], res
    res = call(c, "LPUSH", "s", "x")
    assert res["reply"] == {"kind": "nil"} and res["err"].startswith("WRONGTYPE"), res
    res = call(c, "NOSUCHCOMMAND", "a")
    assert res["reply"] == {"kind": "nil"} and res["err"].startswith("ERR ") and "unknown command" in res["err"], res
    res = call(c, "EVAL", "return redis.error_reply('MYERR custom failure')", "0")
    assert res["reply"] == {"kind": "nil"} and res["err"].startswith("MYERR custom failure"), res
    # the connection is fine afterwards
    assert call(c, "GET", "s")["reply"] == {"kind": "string", "value": "text"}
    w.assert_served()
    c.assert_served()


@pytest.mark.parametrize("cmd", [
    ["BLPOP", "q", "1"],
    ["blpop", "q", "1"],
    ["BRPOP", "q", "1"],
    ["SUBSCRIBE", "news"],
    ["PSUBSCRIBE", "news*"],
    ["MONITOR"],
    ["SELECT", "1"],
    ["XREAD", "BLOCK", "100", "STREAMS", "st", "0"],
    ["xread", "count", "1", "block", "0", "streams", "st", "$"],
])
def test_blocking_and_subscribing_commands_are_refused(redis_server, server, cmd):
    srv = start(server, redis_server)
    w = srv.client()
    c = srv.client()
    t0 = time.monotonic()
    res = c.request("rd", "refused", cmd, request_id=1)
    assert res.get("type") == "rd", res
    assert res["response"]["raised"] is True, f"{cmd} must raise: {res}"
    assert time.monotonic() - t0 < 1.0, "a refused command must not be sent to Redis"
    # without pcall the client gets an Internal error frame
    res = c.request("rd", "raw", cmd, request_id=2)
    assert res == {"type": "error", "action": "message",
                   "data": {"error": "Internal error", "code": "internal", "type": "rd", "action": "raw",
                            "requestId": 2}}, res
    # the command connection still works (SELECT was not applied, nothing is blocked)
    call(c, "SET", "after", "1")
    assert redis_server.cli("GET", "after", db=0) == "1"
    w.assert_served()
    c.assert_served()


def test_non_blocking_xread_is_allowed(redis_server, server):
    srv = start(server, redis_server)
    w = srv.client()
    c = srv.client()
    res = call(c, "XADD", "st", "*", "f", "v")
    assert res["reply"]["kind"] == "string", res
    res = call(c, "XREAD", "COUNT", "1", "STREAMS", "st", "0")
    assert res["reply"]["kind"] == "table" and res["reply"]["len"] == 1, res
    w.assert_served()


def test_without_redis_the_binding_is_nil(server):
    srv = start(server, None)
    w = srv.client()
    c = srv.client()
    res = c.request("rd", "nilcheck", None, request_id=1)
    assert res["response"] == {"selfNil": True, "moduleNil": True, "timer": "table", "log": "table"}, res
    w.assert_served()


def test_subscribers_without_redis_is_a_startup_error(server):
    app = """return { subscribers = { { channel = "news", handler = function(channel, payload) end } } }"""
    srv = server(app_lua=app, files={"controllers/rd.lua": RD_LUA}, wait=False)
    rc = srv.wait_exit(10)
    assert rc is not None, "moonwire must exit when subscribers are configured without redis"
    assert rc != 0, srv.output()
    assert "subscribers" in srv.output(), srv.output()


# --------------------------------------------------------------------------- publish / subscribers

SUB_APP = """
local function send(kind, channel, payload, extra)
  require("moonwire").webSocketServer:sendMessageToAll({ type = "sub", action = kind,
    data = { channel = channel, payload = payload, ptype = type(payload), extra = extra } })
end
return {
  subscribers = {
    { channel = "news", handler = function(channel, payload) send("news", channel, payload) end },
    { channel = "prices:*", handler = function(channel, payload)
        local n, err = require("moonwire").redis:call("INCR", "sub:count")
        send("prices", channel, payload, n or err)
      end },
    { channel = "boom", handler = function(channel, payload) error("subscriber exploded " .. payload) end },
  },
}
"""


def wait_subscribed(redis, channel, timeout=5.0):
    """PUBLISH a probe until moonwire's subscriber connection receives it; returns the count."""
    return wait_until(lambda: int(redis.cli("PUBLISH", channel, "__probe__")) >= 1, timeout=timeout, interval=0.1)


def recv_sub(c, timeout=3.0, skip_probe=True):
    """The next `sub` frame (skipping probe deliveries)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = c.recv_json(max(0.01, deadline - time.monotonic()))
        if skip_probe and msg.get("type") == "sub" and msg["data"].get("payload") == "__probe__":
            continue
        return msg


def drain(c, seconds=0.3):
    """Read and discard frames for `seconds`; returns them."""
    out = []
    deadline = time.monotonic() + seconds
    while True:
        try:
            out.append(c.recv_json(max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            return out


def test_subscribers_exact_and_pattern(redis_server, server):
    r = redis_server
    srv = start(server, r, app_lua=SUB_APP)
    w = srv.client()
    c = srv.client()
    assert wait_subscribed(r, "news"), srv.log()
    assert wait_subscribed(r, "prices:probe"), srv.log()
    drain(c)
    drain(w)

    assert int(r.cli("PUBLISH", "news", '{"raw": "json", "n": 1}')) == 1
    msg = recv_sub(c)
    assert msg == {"type": "sub", "action": "news",
                   "data": {"channel": "news", "payload": '{"raw": "json", "n": 1}', "ptype": "string"}}, msg

    assert int(r.cli("PUBLISH", "prices:btc", "42.5")) == 1
    msg = recv_sub(c)
    assert msg["action"] == "prices", msg
    assert msg["data"]["channel"] == "prices:btc" and msg["data"]["payload"] == "42.5", msg
    assert msg["data"]["ptype"] == "string", msg
    assert isinstance(msg["data"]["extra"], (int, float)), f"redis:call inside a subscriber: {msg}"
    first = msg["data"]["extra"]
    assert int(r.cli("PUBLISH", "prices:eth", "7")) == 1
    msg = recv_sub(c)
    assert msg["data"]["channel"] == "prices:eth" and msg["data"]["extra"] == first + 1, msg

    # not subscribed: nobody receives
    assert int(r.cli("PUBLISH", "news2", "x")) == 0
    assert int(r.cli("PUBLISH", "prices", "x")) == 0
    assert drain(c, 0.3) == []
    assert [m["data"]["payload"] for m in drain(w, 0.1)] == ['{"raw": "json", "n": 1}', "42.5", "7"]
    w.assert_served()


def test_publish_from_controller_reaches_subscribers(redis_server, server):
    r = redis_server
    srv = start(server, r, app_lua=SUB_APP)
    w = srv.client()
    c = srv.client()
    assert wait_subscribed(r, "news"), srv.log()
    drain(c)
    drain(w)
    c.send_json({"type": "rd", "action": "publish", "data": {"channel": "news", "message": "from lua"},
                 "requestId": "p"})
    # the sub frame may come before or after the reply
    frames = [c.recv_json(timeout=3), c.recv_json(timeout=3)] + drain(c, 0.3)
    replies = [f for f in frames if f.get("type") == "rd"]
    subs = [f for f in frames if f.get("type") == "sub"]
    assert replies[0]["response"]["kind"] == "number" and replies[0]["response"]["n"] >= 1, replies
    assert subs == [{"type": "sub", "action": "news",
                     "data": {"channel": "news", "payload": "from lua", "ptype": "string"}}], frames
    # a channel nobody listens to: 0 receivers
    res = c.request("rd", "publish", {"channel": "nobody-here", "message": "x"}, request_id="q")
    assert res["response"] == {"n": 0, "kind": "number"}, res
    assert [m.get("action") for m in drain(w, 0.1)] == ["news"]
    w.assert_served()


def test_subscriber_error_is_logged_and_isolated(redis_server, server):
    r = redis_server
    srv = start(server, r, app_lua=SUB_APP)
    w = srv.client()
    assert wait_subscribed(r, "boom"), srv.log()
    assert int(r.cli("PUBLISH", "boom", "first")) == 1
    log = srv.wait_log(lambda t: "subscriber exploded first" in t, timeout=3)
    assert log and any("handler error" in l for l in log.splitlines()), srv.log()
    # still subscribed, the worker lives on, other subscribers work
    assert int(r.cli("PUBLISH", "boom", "second")) == 1
    assert srv.wait_log(lambda t: "subscriber exploded second" in t, timeout=3), srv.log()
    drain(w)
    assert int(r.cli("PUBLISH", "news", "still")) == 1
    assert recv_sub(w)["data"]["payload"] == "still"
    w.assert_served()
    assert "killed by signal" not in srv.log()


# --------------------------------------------------------------------------- concurrency and order

def test_waiting_handler_does_not_block_others_and_keeps_client_order(redis_server, server):
    r = redis_server
    srv = start(server, r)
    w = srv.client()
    a = srv.client()
    call(a, "SET", "slow", "value")
    r.pause()
    try:
        t0 = time.monotonic()
        a.send_json({"type": "rd", "action": "call", "data": ["GET", "slow"], "requestId": "a1"})
        a.send_json({"type": "echo", "action": "say", "data": "after", "requestId": "a2"})
        # another client is served while a's handler waits on Redis
        for _ in range(3):
            w.assert_served(timeout=1.0)
        assert time.monotonic() - t0 < 1.0, "another client's echo waited for a's Redis call"
        # a's second message waits behind its first
        with pytest.raises(TimeoutError):
            a.recv_json(timeout=0.3)
    finally:
        r.resume()
    first = a.recv_json(timeout=3)
    second = a.recv_json(timeout=3)
    assert first == {"type": "rd", "action": "call", "requestId": "a1",
                     "response": {"reply": {"kind": "string", "value": "value"}, "errtype": "nil"}}, first
    assert second == {"type": "echo", "action": "say", "response": "after", "requestId": "a2"}, second
    w.assert_served()


def test_messages_of_one_client_run_in_order(redis_server, server):
    r = redis_server
    srv = start(server, r)
    w = srv.client()
    a = srv.client()
    b = srv.client()
    n = 15
    # earlier messages make more round trips: only in-order execution keeps the list sorted
    for i in range(n):
        a.send_json({"type": "rd", "action": "seq", "data": {"key": "ord:a", "value": str(i), "pings": n - i},
                     "requestId": i})
        b.send_json({"type": "rd", "action": "seq", "data": {"key": "ord:b", "value": str(i), "pings": n - i},
                     "requestId": i})
    for c in (a, b):
        got = [c.recv_json(timeout=5) for _ in range(n)]
        assert [m.get("requestId") for m in got] == list(range(n)), got
        assert [m.get("response") for m in got] == [str(i) for i in range(n)], got
    assert r.cli("LRANGE", "ord:a", "0", "-1").split() == [str(i) for i in range(n)]
    assert r.cli("LRANGE", "ord:b", "0", "-1").split() == [str(i) for i in range(n)]
    w.assert_served()


# --------------------------------------------------------------------------- timeouts

TIMEOUT_APP = "return { redis = { timeout = 0.5 } }"


def test_command_timeout_and_recovery(redis_server, server):
    r = redis_server
    srv = start(server, r, app_lua=TIMEOUT_APP)
    w = srv.client()
    c = srv.client()
    assert call(c, "SET", "t", "1")["reply"]["value"] == "OK"
    r.pause()
    try:
        t0 = time.monotonic()
        res = call(c, "GET", "t", rid="slow", timeout=5)
        elapsed = time.monotonic() - t0
        assert res == {"reply": {"kind": "nil"}, "err": "redis command timed out", "errtype": "string"}, res
        assert 0.3 <= elapsed <= 1.2, f"redis.timeout = 0.5 answered after {elapsed:.2f}s"
        w.assert_served(timeout=1.0)
    finally:
        r.resume()
    # the worker recovers: calls succeed again within a few seconds
    def works():
        res = call(c, "GET", "t", timeout=3)
        return res["reply"] == {"kind": "string", "value": "1"}
    assert wait_until(works, timeout=8, interval=0.2), srv.log()
    assert wait_ready(srv, 200, 8), ready(srv)
    w.assert_served()


def test_call_in_flight_when_redis_dies_fails_fast(redis_server, server):
    r = redis_server
    srv = start(server, r)            # default timeout: 5 s
    w = srv.client()
    c = srv.client()
    call(c, "SET", "x", "1")
    r.pause()
    c.send_json({"type": "rd", "action": "call", "data": ["GET", "x"], "requestId": "inflight"})
    time.sleep(0.2)
    t0 = time.monotonic()
    r.kill(signal.SIGKILL)            # unread data in Redis's socket: the kernel answers with RST
    went_503 = wait_ready(srv, 503, 1.5)
    res = c.recv_json(timeout=6)
    elapsed = time.monotonic() - t0
    assert res.get("requestId") == "inflight" and res.get("type") == "rd", res
    assert res["response"]["reply"] == {"kind": "nil"} and res["response"]["errtype"] == "string", res
    assert elapsed < 1.5, (f"an in-flight call took {elapsed:.2f}s to fail after Redis died "
                           f"(err {res['response'].get('err')!r}): the reset connection was not noticed")
    assert went_503, "/ready stayed 200 for 1.5 s after Redis died (reset connection)"
    w.assert_served()


def test_recovers_after_redis_crash_with_call_in_flight(redis_server, server):
    """Redis dies (connection reset) while a call waits; once Redis is back, calls work again."""
    r = redis_server
    srv = start(server, r, app_lua="return { redis = { timeout = 1 } }")
    w = srv.client()
    c = srv.client()
    call(c, "SET", "x", "1")
    r.pause()
    c.send_json({"type": "rd", "action": "call", "data": ["GET", "x"], "requestId": "inflight"})
    time.sleep(0.2)
    r.kill(signal.SIGKILL)
    res = c.recv_json(timeout=4)
    assert res.get("requestId") == "inflight" and res["response"]["reply"] == {"kind": "nil"}, res
    r.start()
    t_up = time.monotonic()
    last = {}

    def works():
        last["ready"] = ready(srv).status
        last["res"] = call(c, "GET", "x", timeout=4)
        return last["res"]["reply"].get("value") is None and last["res"].get("err") is None
    # the key is gone (fresh Redis): a working call answers nil without an error
    ok = wait_until(works, timeout=6, interval=0.2)
    w.assert_served()
    assert ok, (f"calls still fail {time.monotonic() - t_up:.1f}s after Redis came back: {last['res']} "
                f"(/ready {last['ready']})")
    assert wait_ready(srv, 200, 2), ready(srv)


def test_shutdown_while_redis_is_down(redis_server, server):
    r = redis_server
    srv = start(server, r, app_lua=SUB_APP)
    w = srv.client()
    assert wait_subscribed(r, "news"), srv.log()
    drain(w)
    r.kill(signal.SIGKILL)
    assert wait_ready(srv, 503, 2.5), ready(srv)
    w.assert_served()
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    code = w.expect_close(timeout=8.5)
    closed_after = time.monotonic() - t0
    assert code == 1001, code
    rc = srv.wait_exit(8.5 - closed_after)
    assert rc == 0, f"exit {rc} after {time.monotonic() - t0:.2f}s\n{srv.log()}"
    assert closed_after < 3.0, f"clients got 1001 only {closed_after:.2f}s after SIGTERM with Redis down"


# --------------------------------------------------------------------------- outage and reconnect

def test_outage_then_reconnect(redis_server, server):
    r = redis_server
    srv = start(server, r, app_lua=SUB_APP)
    w = srv.client()
    c = srv.client()
    other = srv.client()
    assert wait_ready(srv, 200, 5), ready(srv)
    assert wait_subscribed(r, "news"), srv.log()
    drain(c)
    drain(w)
    drain(other)
    assert call(c, "SET", "before", "1")["reply"]["value"] == "OK"

    r.kill(signal.SIGKILL)
    t_down = time.monotonic()

    # /ready 503 within about a second; /health stays 200
    assert wait_ready(srv, 503, 1.5), ready(srv)    # "within a second", plus slack
    resp = ready(srv)
    assert resp.status == 503 and resp.json().get("status") == "redis unavailable", resp
    assert srv.http("/health").status == 200

    # calls fail fast with nil, err
    for i in range(3):
        t0 = time.monotonic()
        res = call(c, "GET", "before", rid=f"down{i}", timeout=5)
        assert time.monotonic() - t0 < 1.0, f"a call during the outage took {time.monotonic() - t0:.2f}s"
        assert res["reply"] == {"kind": "nil"} and res["errtype"] == "string" and res["err"], res
    res = call(c, "GET", "before", timeout=5)
    assert res["err"] == "redis is not connected", res
    res = c.request("rd", "publish", {"channel": "news", "message": "x"}, request_id="pubdown", timeout=5)
    assert res.get("type") == "rd" and res["response"].get("n") is None and res["response"].get("err"), res

    # local WebSocket traffic goes on: echo, and a local broadcast reaches another client
    w.assert_served(timeout=1.0)
    c.assert_served(timeout=1.0)
    res = c.request("bcast", "all", {"hello": "down"}, request_id="b", timeout=3)
    got = other.recv_json(timeout=3)
    assert got == {"type": "bcast", "action": "all", "data": {"hello": "down"}}, got
    assert srv.proc.poll() is None

    # Redis back on the same port: ready again within a few seconds
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t_down)))
    r.start()
    t_up = time.monotonic()
    # down for ~1 s: with backoff 0.1, 0.2, 0.4, 0.8, 1.6 s the next attempt is well within 3 s
    assert wait_ready(srv, 200, 8), f"/ready still {ready(srv)!r} 8 s after Redis came back"
    back_after = time.monotonic() - t_up          # asserted at the end
    assert srv.http("/health").status == 200
    assert wait_until(lambda: call(c, "SET", "after", "2")["reply"].get("value") == "OK", timeout=3), srv.log()
    assert r.cli("GET", "after") == "2"

    # subscriptions were replayed
    assert wait_subscribed(r, "news", timeout=6), "no subscriber on 'news' after the reconnect"
    assert wait_subscribed(r, "prices:again", timeout=3), "no pattern subscriber after the reconnect"
    drain(w)
    assert int(r.cli("PUBLISH", "news", "back")) == 1
    msg = recv_sub(w)
    assert msg["data"] == {"channel": "news", "payload": "back", "ptype": "string"}, msg
    assert int(r.cli("PUBLISH", "prices:x", "9")) == 1
    msg = recv_sub(w)
    assert msg["data"]["channel"] == "prices:x" and isinstance(msg["data"]["extra"], (int, float)), msg
    w.assert_served()
    assert "killed by signal" not in srv.log()
    # down for ~1 s: with backoff 0.1, 0.2, 0.4, 0.8, 1.6 s the next attempt comes well within 3 s
    assert back_after < 3.0, (f"/ready 200 only {back_after:.2f}s after Redis came back "
                              "(reconnect attempts are not 100 ms doubling to 5 s)")


def test_start_without_redis_then_redis_appears(redis_server, server):
    """Redis down at start-up: moonwire starts, /ready 503, then 200 once Redis is there."""
    r = redis_server
    r.kill(signal.SIGKILL)
    srv = start(server, r)
    w = srv.client()
    assert srv.http("/health").status == 200
    assert wait_ready(srv, 503, 2), ready(srv)
    c = srv.client()
    res = call(c, "PING", timeout=3)
    assert res["reply"] == {"kind": "nil"} and res["err"], res
    time.sleep(0.5)
    r.start()
    t_up = time.monotonic()
    assert wait_ready(srv, 200, 8), ready(srv)
    back_after = time.monotonic() - t_up
    assert wait_until(lambda: call(c, "PING")["reply"].get("value") == "PONG", timeout=3)
    w.assert_served()
    assert back_after < 3.0, (f"/ready 200 only {back_after:.2f}s after Redis came up "
                              "(reconnect attempts are not 100 ms doubling to 5 s)")


# --------------------------------------------------------------------------- timers

def test_timers_every_after_stop(redis_server, server):
    r = redis_server
    srv = start(server, r)
    w = srv.client()
    c = srv.client()
    res = c.request("rd", "timerStart", {"every": 0.1, "after": 0.3, "key": "timer:n"}, request_id=1)
    assert res.get("type") == "rd", res
    t0 = time.monotonic()
    time.sleep(1.0)
    s1 = c.request("rd", "timerRead", None, request_id=2)["response"]
    elapsed = time.monotonic() - t0
    assert 4 <= s1["ticks"] <= elapsed / 0.1 + 2, f"every(0.1) ticked {s1['ticks']} times in {elapsed:.2f}s"
    assert s1["fired"] == 1, f"after(0.3) ran {s1['fired']} times: {s1}"
    assert s1["after2"] == 0, f"a stopped after() ran: {s1}"
    assert s1["redisTicks"] >= 4 and s1["redisErrs"] == 0, s1
    assert int(r.cli("GET", "timer:n")) >= 4
    # the raising timer: logged as a handler error, the others keep going
    assert s1["errTicks"] >= 1, s1
    assert srv.wait_log(lambda t: "timer exploded" in t and "handler error" in t, timeout=2), srv.log()

    stopped = c.request("rd", "timerStop", ["every", "redis", "err"], request_id=3)["response"]
    time.sleep(0.5)
    s2 = c.request("rd", "timerRead", None, request_id=4)["response"]
    assert s2["ticks"] <= stopped["ticks"] + 1, f"every() kept running after stop: {stopped} -> {s2}"
    assert s2["errTicks"] <= stopped["errTicks"] + 1, (stopped, s2)
    time.sleep(0.3)
    s3 = c.request("rd", "timerRead", None, request_id=5)["response"]
    assert s3["ticks"] == s2["ticks"] and s3["redisTicks"] == s2["redisTicks"], (s2, s3)
    assert s3["fired"] == 1 and s3["after2"] == 0, s3
    w.assert_served()
    assert "killed by signal" not in srv.log()


BOOT_TIMER_APP = """
return {
  events = {
    onServerStarted = function()
      local mw = require("moonwire")
      mw.timer:every(0.1, function()
        local n, err = mw.redis:call("INCR", "boot:ticks")
        if not n then mw.log:info("BOOT tick failed " .. tostring(err)) end
      end)
    end,
  },
}
"""


def test_timer_started_in_on_server_started_calls_redis(redis_server, server):
    r = redis_server
    srv = start(server, r, app_lua=BOOT_TIMER_APP)
    w = srv.client()

    def ticks():
        v = r.cli("GET", "boot:ticks")
        return int(v) if v else 0
    assert wait_until(lambda: ticks() >= 3, timeout=3), srv.log()
    a = ticks()
    time.sleep(0.5)
    assert ticks() > a
    w.assert_served()
