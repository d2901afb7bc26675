"""Connection lifecycle (CONTRACT-2of5 "Limits and lifecycle"): the
events hooks, inactivity (4408), protocol heartbeat, graceful shutdown with handlers in
flight. Hooks are observed through log lines written by app.lua (`EV ...`).
"""
import asyncio
import re
import signal
import time

import pytest

import mwtest
from mwtest import OP_CLOSE, OP_PING, OP_PONG, arun, close_payload, wait_until, ws_connect

EVENTS_APP = """
local function log(text) require("moonwire").log:info(text) end
return {
  events = {
    onServerStarted = function(server)
      log("EV started " .. type(server))
    end,
    onConnect = function(clientId, client)
      log("EV connect " .. clientId .. " " .. type(client))
    end,
    onDisconnect = function(clientId, code, reason)
      log("EV disconnect " .. clientId .. " " .. tostring(code) .. " [" .. tostring(reason) .. "]")
    end,
    onJoinRoom = function(clientId, room)
      log("EV join " .. clientId .. " " .. room)
    end,
    onLeaveRoom = function(clientId, room)
      log("EV leave " .. clientId .. " " .. room)
    end,
  },
  %s
}
"""


def events_app(extra=""):
    return EVENTS_APP % extra


def ev_lines(srv, client_id=None):
    """The `EV ...` messages in log order (the text after the level/worker prefix)."""
    out = []
    for line in srv.log().splitlines():
        m = re.search(r"\bEV (.*)$", line)
        if m and (client_id is None or client_id in m.group(1)):
            out.append(m.group(1).strip())
    return out


def join(c, room, rid=1):
    reply = c.request("system", "joinRoom", {"roomName": room}, request_id=rid)
    assert reply["response"]["success"] is True, reply
    return reply


# --------------------------------------------------------------------------- events

def test_every_event_is_called_in_order(server):
    srv = server(app_lua=events_app())
    assert srv.wait_log(lambda t: "EV started table" in t, timeout=3), srv.log()
    w = srv.client()
    c = srv.client()
    cid = c.client_id
    assert wait_until(lambda: f"connect {cid} table" in ev_lines(srv, cid), timeout=3), ev_lines(srv)
    join(c, "r1", 1)
    join(c, "r2", 2)
    join(c, "r1", 3)                          # already a member: no second onJoinRoom
    reply = c.request("system", "leaveRoom", {"roomName": "r1"}, request_id=4)
    assert reply["response"]["success"] is True
    join(c, "r3", 5)
    c.send_frame(OP_CLOSE, close_payload(1000, b"done"))
    assert c.expect_close() == 1000
    assert wait_until(lambda: any(l.startswith(f"disconnect {cid}") for l in ev_lines(srv, cid)), timeout=3), \
        ev_lines(srv)
    seq = ev_lines(srv, cid)
    head = [f"connect {cid} table", f"join {cid} r1", f"join {cid} r2", f"leave {cid} r1", f"join {cid} r3"]
    assert seq[:5] == head, seq
    # on disconnect: every remaining room is left (either order), then onDisconnect
    assert sorted(seq[5:7]) == [f"leave {cid} r2", f"leave {cid} r3"], seq
    assert seq[7:] == [f"disconnect {cid} 1000 [done]"], seq
    # the witness saw none of it
    assert ev_lines(srv, w.client_id) == [f"connect {w.client_id} table"]
    w.assert_served()


def test_on_connect_runs_after_connected_and_can_send(server):
    app = """
return { events = { onConnect = function(clientId, client)
  require("moonwire").webSocketServer:sendMessageToClient(clientId,
    { type = "hello", action = "welcome", data = { you = clientId } })
end } }
"""
    srv = server(app_lua=app)
    w = srv.client()
    assert w.recv_json() == {"type": "hello", "action": "welcome", "data": {"you": w.client_id}}
    c = srv.client()                            # reads `connected` first
    assert c.recv_json() == {"type": "hello", "action": "welcome", "data": {"you": c.client_id}}
    c.assert_served()
    w.assert_served()


@pytest.mark.parametrize("hook", ["onConnect", "onDisconnect", "onJoinRoom", "onLeaveRoom"])
def test_event_handler_that_raises_is_logged_and_isolated(server, hook):
    args = {"onConnect": "clientId, client", "onDisconnect": "clientId, code, reason",
            "onJoinRoom": "clientId, room", "onLeaveRoom": "clientId, room"}[hook]
    app = f"""
return {{ events = {{ {hook} = function({args})
  error("hook {hook} exploded")
end }} }}
"""
    srv = server(app_lua=app)
    w = srv.client()
    c = srv.client()
    c.assert_served()
    join(c, "room")
    reply = c.request("system", "leaveRoom", {"roomName": "room"}, request_id=2)
    assert reply["response"]["success"] is True, reply
    c.send_frame(OP_CLOSE, close_payload(1000))
    assert c.expect_close() == 1000
    log = srv.wait_log(lambda t: f"hook {hook} exploded" in t, timeout=3)
    assert log, srv.log()
    lines = [l for l in log.splitlines() if "handler error" in l and f"events.{hook}" in l]
    assert lines, f"expected a 'handler error' line naming events.{hook}:\n{log}"
    # fresh connections after the failures are still fine, and the worker never died
    d = srv.client()
    join(d, "again")
    d.assert_served()
    assert srv.proc.poll() is None and len(srv.worker_pids()) == 1
    assert "killed by signal" not in srv.log()
    w.assert_served()


# --------------------------------------------------------------------------- inactivity

INACTIVE_APP = "inactivity = { checkInterval = 0.2, maxInactive = 0.6 },"


def test_inactive_client_is_closed_with_4408(server):
    srv = server(app_lua=events_app(INACTIVE_APP))
    w = srv.client()
    t0 = time.monotonic()
    idle = srv.client()
    # the witness stays active (a message every ~0.15 s) while the idle one is dropped
    code = None
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        w.assert_served()
        try:
            f = idle.recv_frame(timeout=0.15)
        except TimeoutError:
            continue
        if f.opcode == OP_CLOSE:
            code = f.close_code
            idle.close_frame = f
            break
    elapsed = time.monotonic() - t0
    assert code == 4408, f"expected close 4408 for an idle client, got {code}"
    assert idle.close_frame.payload[2:] == b"Inactive"
    assert 0.4 < elapsed < 1.6, f"maxInactive 0.6 / checkInterval 0.2, but closed after {elapsed:.2f}s"
    idle.send_frame(OP_CLOSE, close_payload(4408), ignore_errors=True)
    assert idle.wait_eof(2)
    assert wait_until(lambda: any(l.startswith(f"disconnect {idle.client_id} 4408") for l in ev_lines(srv)),
                      timeout=3), ev_lines(srv)
    # the active witness outlived maxInactive several times over
    for _ in range(5):
        time.sleep(0.15)
        w.assert_served()


def test_any_message_counts_as_activity(server):
    srv = server(app_lua=events_app(INACTIVE_APP))
    w = srv.client()
    c = srv.client()
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        # an unknown route (an error reply) is still a message from the client
        c.send_json({"type": "nope", "action": "x"})
        assert c.recv_json()["data"]["code"] == "not_found"
        w.assert_served()
        time.sleep(0.15)
    c.assert_served()
    w.assert_served()


# --------------------------------------------------------------------------- heartbeat

HEARTBEAT_APP = "heartbeat = { interval = 0.3, timeout = 0.3 },"


def test_heartbeat_drops_a_client_that_never_pongs(server):
    srv = server(app_lua=events_app(HEARTBEAT_APP))
    w = srv.client()
    mute = srv.client()
    t0 = time.monotonic()
    pings = 0
    ended = None
    deadline = t0 + 4
    while time.monotonic() < deadline:
        # keep the witness answering its pings while the mute one reads but never pongs
        w.assert_served()
        try:
            f = mute.recv_frame(timeout=0.05)
        except TimeoutError:
            continue
        except EOFError:
            ended = time.monotonic() - t0
            break
        assert f.opcode in (OP_PING, OP_CLOSE), f
        if f.opcode == OP_PING:
            pings += 1
    assert pings >= 1, "the server sent no protocol ping within the heartbeat interval"
    assert ended is not None, "a client that never answers pings must be dropped (TCP closed)"
    assert ended < 2.0, f"interval 0.3 + timeout 0.3, but dropped after {ended:.2f}s"
    assert wait_until(lambda: any(l.startswith(f"disconnect {mute.client_id} 1006") for l in ev_lines(srv)),
                      timeout=3), ev_lines(srv)
    w.assert_served()


def test_heartbeat_keeps_answering_clients(server):
    srv = server(app_lua=events_app(HEARTBEAT_APP))
    w = srv.client()

    async def body():
        # python websockets answers pings by itself, also while the application is not reading
        c = await ws_connect(srv)
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            w.assert_served()                   # the RawWS witness answers its pings while reading
            await asyncio.sleep(0.05)
        reply = await c.request({"type": "echo", "action": "say", "data": "alive", "requestId": 1})
        assert reply == {"type": "echo", "action": "say", "response": "alive", "requestId": 1}
        assert not any(l.startswith(f"disconnect {c.client_id}") for l in ev_lines(srv)), ev_lines(srv)
    arun(body(), timeout=10)
    w.assert_served()


def test_pong_to_server_ping_is_echoed_payload(server):
    srv = server(app_lua=events_app(HEARTBEAT_APP))
    w = srv.client()
    c = srv.client()
    f = c.recv_frame(timeout=2)
    assert f.opcode == OP_PING, f
    c.send_frame(OP_PONG, f.payload)
    # answering keeps it open past several intervals
    t_end = time.monotonic() + 1.2
    while time.monotonic() < t_end:
        w.assert_served()
        try:
            f = c.recv_frame(timeout=0.1)
        except TimeoutError:
            continue
        assert f.opcode == OP_PING, f
        c.send_frame(OP_PONG, f.payload)
    c.assert_served()
    w.assert_served()


# --------------------------------------------------------------------------- graceful shutdown

def test_sigterm_lets_running_handler_reply_then_1001(server):
    srv = server(app_lua=events_app())
    idle = [srv.client() for _ in range(5)]
    busy = srv.client()
    busy.send_json({"type": "spin", "action": "wait", "data": {"seconds": 0.5}, "requestId": "slow-1"})
    time.sleep(0.15)                              # the handler is running
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    reply = busy.recv_json(timeout=5)
    assert reply == {"type": "spin", "action": "wait", "response": "done", "requestId": "slow-1"}, \
        "a handler running at SIGTERM must still get its reply out before the close"
    assert busy.expect_close(timeout=9) == 1001
    assert busy.close_frame.payload[2:] == b"Server shutting down"
    assert busy.tcp_closed
    for c in idle:
        assert c.expect_close(timeout=9) == 1001
        assert c.close_frame.payload[2:] == b"Server shutting down"
    rc = srv.wait_exit(10)
    assert rc == 0, f"exit code after SIGTERM: {rc}"
    assert time.monotonic() - t0 < 8.5
    # onDisconnect ran for every client, with 1001
    lines = ev_lines(srv)
    for c in idle + [busy]:
        assert any(l.startswith(f"disconnect {c.client_id} 1001") for l in lines), lines


def test_sigterm_with_many_clients_closes_all_and_calls_on_disconnect(server):
    srv = server(app_lua=events_app("limits = { shutdownTimeout = 4 },"))
    clients = [srv.client() for _ in range(40)]
    for c in clients[:3]:
        join(c, "lobby")
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    for c in clients:
        assert c.expect_close(timeout=6) == 1001
        assert c.tcp_closed
    rc = srv.wait_exit(6)
    assert rc == 0, rc
    assert time.monotonic() - t0 < 4.5, "exit within limits.shutdownTimeout"
    lines = ev_lines(srv)
    gone = {c.client_id: i for i, l in enumerate(lines) for c in clients if l.startswith(f"disconnect {c.client_id} 1001")}
    missing = [c.client_id for c in clients if c.client_id not in gone]
    assert not missing, f"onDisconnect (1001) not called for {len(missing)} of 40 clients"
    for c in clients[:3]:
        assert f"leave {c.client_id} lobby" in lines, lines
        assert lines.index(f"leave {c.client_id} lobby") < gone[c.client_id], "rooms are left before onDisconnect"


def test_draining_worker_answers_ready_503_health_200_and_refuses_upgrades(server):
    srv = server(app_lua="return { limits = { shutdownTimeout = 6 } }\n")
    c = srv.client()
    srv.send_signal(signal.SIGTERM)
    # the client gets 1001 but does not answer it: the worker keeps draining for a while
    f = c.recv_frame(timeout=5)
    assert f.opcode == OP_CLOSE and f.close_code == 1001, f
    ready = srv.http("/ready")
    assert ready.status == 503, ready
    health = srv.http("/health")
    assert health.status == 200 and health.json()["status"] == "ok", health
    refused = mwtest.http_request(srv.port, mwtest.upgrade_request(srv.port))
    assert refused.status == 503, refused
    # and it still ends: the close handshake times out, the process exits 0
    assert srv.wait_exit(timeout=10) == 0
