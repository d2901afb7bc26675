"""Memory per connection (issue 15, DESIGN section 18; docs/reference.md "Memory per connection"):
idle connections cost little (no wslay context, no HTTP buffer, no send-queue memory while
nothing is in flight), a client that starts a message and stops is closed by
limits.messageTimeout with 1008, and /metrics shows the bytes held in partial messages and queued
for sending. Not timed: waits are generous, RSS bounds are loose (they catch a 9 KB context per
connection coming back, not a few hundred bytes).
"""
import socket
import time

import pytest

import mwtest
from mwtest import OP_TEXT, OP_CONT, metric_sum, rss_kib, run_cli, upgrade_request, wait_until

N_IDLE = 2000


def metrics(srv):
    resp = srv.http("/metrics")
    assert resp.status == 200, resp
    return resp.text


def open_idle(port, n, socks, batch=50):
    """Appends n upgraded connections that then send nothing to socks (raw sockets: cheap for
    the test), batch at a time: what is measured is idle connections, not handshakes at once."""
    for first in range(0, n, batch):
        new = []
        for _ in range(min(batch, n - first)):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)
            s.sendall(upgrade_request(port, "/ws", key=mwtest.new_key()).encode())
            new.append(s)
        for s in new:  # the 101 head, then the "connected" frame: read until both are in
            buf = b""
            deadline = time.monotonic() + 30
            while b"\r\n\r\n" not in buf or b"connected" not in buf:
                assert time.monotonic() < deadline, buf[:200]
                chunk = s.recv(4096)
                assert chunk, "connection closed during the upgrade"
                buf += chunk
            assert buf.startswith(b"HTTP/1.1 101"), buf[:200]


@pytest.mark.slow
def test_idle_connections_cost_under_2kb_each(server):
    srv = server()
    w = srv.client()
    worker = srv.worker_pids()[0]
    # a first batch warms the allocator up (libuv's watcher table, hash tables, Lua's heap),
    # so the measured batch shows what one more idle connection costs
    socks = []
    try:
        open_idle(srv.port, 200, socks)
        before = rss_kib(worker)
        open_idle(srv.port, N_IDLE, socks)
        assert wait_until(lambda: metric_sum(metrics(srv), "moonwire_connections") >= N_IDLE + 201, timeout=30)
        after = rss_kib(worker)
        grew = after - before
        print(f"{N_IDLE} idle connections: worker RSS +{grew} KiB ({grew * 1024 / N_IDLE:.0f} bytes each)")
        assert grew < N_IDLE * 2, f"worker RSS grew {grew} KiB for {N_IDLE} idle connections " \
                                  f"({grew * 1024 / N_IDLE:.0f} bytes each; budget 2048)"
        text = metrics(srv)
        assert metric_sum(text, "moonwire_ws_contexts") == 0
        assert metric_sum(text, "moonwire_partial_message_bytes") == 0
    finally:
        for s in socks:
            s.close()
    w.assert_served()


def test_partial_message_is_closed_by_message_timeout(server):
    srv = server(app_lua="return { limits = { messageTimeout = 1 } }\n")
    w = srv.client()
    c = srv.client()
    # a text frame declaring 64 KiB (the default maxMessageSize), 10 bytes of it, then silence
    c.send_frame(OP_TEXT, b"x" * 10, declared_len=65536)
    assert wait_until(lambda: metric_sum(metrics(srv), "moonwire_partial_message_bytes") >= 65536, timeout=5)
    text = metrics(srv)
    assert metric_sum(text, "moonwire_partial_message_bytes") <= 65536 + 1024
    assert metric_sum(text, "moonwire_ws_contexts") == 1
    t0 = time.monotonic()
    assert c.expect_close(timeout=15) == 1008
    assert c.close_frame.payload[2:] == b"Message timeout"
    assert time.monotonic() - t0 >= 0.5  # not before the limit
    assert wait_until(lambda: metric_sum(metrics(srv), "moonwire_partial_message_bytes") == 0, timeout=10)
    assert wait_until(lambda: metric_sum(metrics(srv), "moonwire_ws_contexts") == 0, timeout=10)
    w.assert_served()


def test_fragmented_message_in_time_is_served(server):
    # slower than nothing, faster than the limit: each fragment restarts nothing, the message
    # completes before messageTimeout and is answered
    srv = server(app_lua="return { limits = { messageTimeout = 5 } }\n")
    c = srv.client()
    body = b'{"type":"echo","action":"say","data":{"n":1},"requestId":"frag"}'
    c.send_frame(OP_TEXT, body[:10], fin=False)
    time.sleep(0.3)
    c.send_frame(OP_CONT, body[10:], fin=True)
    reply = c.recv_json()
    assert reply.get("requestId") == "frag", reply
    c.assert_served()


def test_memory_gauges_are_listed(server):
    srv = server()
    srv.client()
    text = metrics(srv)
    for name in ("moonwire_send_queue_bytes", "moonwire_partial_message_bytes", "moonwire_ws_contexts"):
        assert f"# TYPE {name} gauge" in text, name
        assert metric_sum(text, name) == 0, (name, metric_sum(text, name))


def test_send_queue_bytes_shows_a_client_that_does_not_read(server):
    # a client that never reads while it is sent a lot: its bytes wait in the send queue
    srv = server(app_lua="return { limits = { sendQueueBytes = 67108864, rate = { messages = 100000, burst = 100000 } } }\n")
    w = srv.client()
    c = srv.client()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big = "y" * 60000
    for i in range(200):
        c.send_json({"type": "echo", "action": "say", "data": {"p": big}, "requestId": i})
    assert wait_until(lambda: metric_sum(metrics(srv), "moonwire_send_queue_bytes") > 100000, timeout=20)
    c.close()
    assert wait_until(lambda: metric_sum(metrics(srv), "moonwire_send_queue_bytes") == 0, timeout=20)
    w.assert_served()


@pytest.mark.parametrize("value", ["0", "-1", '"30"'])
def test_message_timeout_must_be_a_positive_number(app_dir, value):
    rc, out, err = run_cli(["check", app_dir(app_lua=f"return {{ limits = {{ messageTimeout = {value} }} }}\n")])
    assert rc == 1, (rc, out, err)
    assert "config error: limits.messageTimeout" in out + err, out + err
