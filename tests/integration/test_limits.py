"""Regression tests for send-queue limits, close timeouts and start-up signals: a peer that
stops reading costs bounded memory and is cut off, a burst to a reading peer is delivered,
every server-started close ends in time, and a signal during app loading is not fatal."""
import signal
import socket
import time

import mwtest
from mwtest import RawWS, build_frame

OP_TEXT, OP_PING, OP_CLOSE = 0x1, 0x9, 0x8

BURST_LUA = """
return { limits = { sendQueueBytes = 200000 } }
"""

BURST_CONTROLLER = """
local Burst = {}
function Burst:self(clientId, data)
  local chunk = string.rep("x", data.size)
  local sent = 0
  for i = 1, data.count do
    if self.webSocketServer:sendMessageToClient(clientId, { type = "burst", action = "part", data = { i = i, p = chunk } }) then
      sent = sent + 1
    end
  end
  return { sent = sent }
end
function Burst:bye(clientId, data)
  self.webSocketServer:disconnectClient(clientId, 4000, "bye")
  return true
end
return Burst
"""


def test_burst_to_a_reading_client_is_delivered(server):
    srv = server(app_lua=BURST_LUA, files={"controllers/burst.lua": BURST_CONTROLLER})
    w = srv.client()
    c = RawWS(srv.port)
    # 5 x 50 KB in one handler turn is over the 200 KB cap, but the client reads: all arrive
    c.send_json({"type": "burst", "action": "self", "data": {"size": 50000, "count": 5}, "requestId": 1})
    parts = [c.recv_json(timeout=5) for _ in range(5)]
    assert [p["data"]["i"] for p in parts] == [1, 2, 3, 4, 5]
    assert c.recv_json(timeout=5) == {"type": "burst", "action": "self", "response": {"sent": 5}, "requestId": 1}
    assert "slow consumer" not in srv.log()
    w.assert_served()


def test_ping_flood_without_reading_is_cut_off_with_bounded_memory(server):
    srv = server(app_lua=BURST_LUA)
    w = srv.client()
    worker = srv.worker_pids()[0]
    before = mwtest.rss_kib(worker)
    c = RawWS(srv.port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ping = build_frame(OP_PING, b"") * 4096
    sent = 0
    deadline = time.time() + 15
    c.sock.settimeout(0.5)
    try:
        while sent < 60_000_000 and time.time() < deadline:
            c.sock.sendall(ping)
            sent += len(ping)
    except (socket.timeout, BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading from us, or closed us: both are the point
    grown = mwtest.rss_kib(worker) - before
    if not mwtest.is_sanitized():
        assert grown < 64 * 1024, f"worker grew by {grown} KiB answering pings nobody reads"
    # the server stopped reading from the flooder once its pongs backed up (sendall blocked);
    # dropping a peer that has stalled altogether is the heartbeat's job (heartbeat.timeout)
    assert sent < 60_000_000, "the server kept reading pings although nobody read the pongs"
    w.assert_served()


def test_disconnect_of_a_non_reading_client_ends_in_time(server):
    srv = server(app_lua=BURST_LUA, files={"controllers/burst.lua": BURST_CONTROLLER})
    w = srv.client()
    c = RawWS(srv.port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # fill the path to the client (it never reads), then ask the server to close it
    c.send_json({"type": "burst", "action": "self", "data": {"size": 60000, "count": 3}})
    time.sleep(0.3)
    c.send_json({"type": "burst", "action": "bye"})
    started = time.time()
    assert srv.wait_log(lambda log: f"clientId={c.client_id}" in log and "client disconnected" in log,
                        timeout=9), "the server never let go of a client that stopped reading"
    assert time.time() - started < 8
    w.assert_served()


def test_big_static_file_is_refused_not_buffered(server):
    srv = server(files={"public/big.bin": "x" * (9 * 1024 * 1024)})
    w = srv.client()
    r = srv.http("/big.bin")
    assert r.status == 404
    w.assert_served()


def test_http_response_to_a_peer_that_never_reads_is_bounded(server):
    srv = server(files={"public/mid.bin": "y" * (4 * 1024 * 1024)})
    w = srv.client()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(b"GET /mid.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    # the server gives up on the response after its timeout (10 s) and closes the socket
    s.settimeout(20)
    time.sleep(12)
    got = 0
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except (ConnectionResetError, socket.timeout):
        pass
    assert got < 4 * 1024 * 1024, "the whole response arrived although the peer did not read for 12 s"
    w.assert_served()


def signals_blocked(pid, sig):
    """Whether pid has sig blocked (/proc/PID/status SigBlk), i.e. a signal now is queued, not fatal."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigBlk:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return False


def test_signal_while_the_app_loads_is_not_fatal(server):
    # loading takes 1.5 s of CPU: longer still on a busy machine, so the steps below wait for
    # states, not for times
    slow = "local t = os.clock() + 1.5\nwhile os.clock() < t do end\nreturn { ping = function() return 1 end }\n"
    srv = server(files={"controllers/slow.lua": slow}, wait=False)
    # the supervisor checks the app (1.5 s): signal it once it has blocked its signals
    assert mwtest.wait_until(lambda: signals_blocked(srv.proc.pid, signal.SIGHUP), interval=0.01)
    srv.send_signal(signal.SIGHUP)
    # then its worker loads the app (1.5 s): signal it while it does (the supervisor forwards)
    assert mwtest.wait_until(srv.worker_pids, interval=0.01)
    srv.send_signal(signal.SIGHUP)
    srv.wait_ready(timeout=60)
    assert "killed by signal" not in srv.log(), srv.log()
    # the reloads SIGHUP asked for take 1.5 s of CPU each too
    w = srv.client(timeout=mwtest.POSITIVE_WAIT)
    w.assert_served()
    assert "killed by signal" not in srv.log(), srv.log()


def test_on_disconnect_receives_code_and_reason(server):
    app = """
return { events = { onDisconnect = function(clientId, code, reason)
  require("moonwire").log:info("bye seen", { who = clientId, code = code, reason = reason })
end } }
"""
    srv = server(app_lua=app)
    c = RawWS(srv.port)
    c.send_frame(OP_CLOSE, mwtest.close_payload(4001, b"going away now"))
    assert c.expect_close() == 4001
    assert srv.wait_log(lambda log: "bye seen" in log and 'reason="going away now"' in log and "code=4001" in log,
                        timeout=5), srv.log()


def test_request_ids_are_echoed_exactly_or_dropped(server):
    srv = server()
    c = RawWS(srv.port)
    c.send_text('{"type":"echo","action":"say","data":1,"requestId":4503599627370497}')
    assert c.recv_message() == (OP_TEXT, b'{"type":"echo","action":"say","response":1,"requestId":4503599627370497}')
    # a number beyond the double range is a parse error wherever it is (test_json_range.py)
    c.send_text('{"type":"echo","action":"say","data":1,"requestId":1e400}')
    assert c.recv_json() == {"type": "error", "action": "message", "data": {"error": "Failed to parse JSON"}}
    c.send_text('{"type":"nope","action":"x","requestId":-1e400}')
    assert c.recv_json() == {"type": "error", "action": "message", "data": {"error": "Failed to parse JSON"}}
