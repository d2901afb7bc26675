"""Metrics added with rooms and limits (CONTRACT-2of5 "Metrics"): moonwire_rooms (gauge),
moonwire_disconnects_total{worker,code}, moonwire_rate_limited_total,
moonwire_slow_consumers_total. Each test checks the witness is still served.
"""
import json
import re
import socket
import time

import mwtest
from mwtest import OP_CLOSE, close_payload, metric_sum, wait_until

NAMES_TYPES = {
    "moonwire_rooms": "gauge",
    "moonwire_disconnects_total": "counter",
    "moonwire_rate_limited_total": "counter",
    "moonwire_slow_consumers_total": "counter",
}


def metrics(srv):
    resp = srv.http("/metrics")
    assert resp.status == 200, resp
    return resp.text


def value(srv, name, label=None):
    return metric_sum(metrics(srv), name, label)


def test_new_metric_names_and_types(server):
    srv = server()
    w = srv.client()
    text = metrics(srv)
    for name, kind in NAMES_TYPES.items():
        assert f"# TYPE {name} {kind}" in text, f"missing '# TYPE {name} {kind}'"
    # counters and gauges that exist from the start (no traffic yet) report 0
    assert metric_sum(text, "moonwire_rooms") == 0
    assert metric_sum(text, "moonwire_rate_limited_total") in (0, None)
    assert metric_sum(text, "moonwire_slow_consumers_total") in (0, None)
    # every sample is labelled by worker
    for line in text.splitlines():
        if line.startswith(tuple(n for n in NAMES_TYPES)) and "{" in line:
            assert 'worker="' in line, line
    w.assert_served()


def test_rooms_gauge(server):
    srv = server()
    w = srv.client()
    a = srv.client()
    b = srv.client()
    assert value(srv, "moonwire_rooms") == 0
    for c, room in ((a, "x"), (a, "y"), (b, "x"), (b, "z")):
        reply = c.request("system", "joinRoom", {"roomName": room}, request_id=1)
        assert reply["response"]["success"] is True
    assert wait_until(lambda: value(srv, "moonwire_rooms") == 3, timeout=3), metrics(srv)
    reply = b.request("system", "leaveRoom", {"roomName": "z"}, request_id=2)
    assert reply["response"]["success"] is True
    assert wait_until(lambda: value(srv, "moonwire_rooms") == 2, timeout=3), metrics(srv)
    # a disconnect empties "y" (x still has b)
    a.send_frame(OP_CLOSE, close_payload(1000))
    assert a.expect_close() == 1000
    assert wait_until(lambda: value(srv, "moonwire_rooms") == 1, timeout=3), metrics(srv)
    assert "# TYPE moonwire_rooms gauge" in metrics(srv)
    b.assert_served()
    w.assert_served()


def test_disconnects_by_code(server):
    srv = server(app_lua="return { inactivity = { checkInterval = 0.2, maxInactive = 0.6 } }\n")
    w = srv.client()
    before = metrics(srv)

    def code_count(text, code):
        return metric_sum(text, "moonwire_disconnects_total", f'code="{code}"') or 0

    # 1000: the client closes; 4000: disconnectClient; 4408: inactivity
    a = srv.client()
    a.send_frame(OP_CLOSE, close_payload(1000))
    assert a.expect_close() == 1000
    b = srv.client()
    w.send_json({"type": "rooms", "action": "kick", "data": {"id": b.client_id, "code": 4000, "reason": "out"},
                 "requestId": 1})
    assert w.recv_json()["response"] == {"ok": True}
    assert b.expect_close() == 4000
    idle = srv.client()
    t_end = time.monotonic() + 3
    code = None
    while time.monotonic() < t_end and code is None:
        w.assert_served()                       # the witness stays active
        try:
            f = idle.recv_frame(timeout=0.1)
        except TimeoutError:
            continue
        if f.opcode == OP_CLOSE:
            code = f.close_code
    assert code == 4408
    idle.send_frame(OP_CLOSE, f.payload[:2], ignore_errors=True)
    assert idle.wait_eof(2)

    def moved():
        w.assert_served()
        now = metrics(srv)
        return all(code_count(now, c) - code_count(before, c) == 1 for c in (1000, 4000, 4408)) and now
    now = wait_until(moved, timeout=3)
    assert now, {c: (code_count(before, c), code_count(metrics(srv), c)) for c in (1000, 4000, 4408)}
    for line in now.splitlines():
        if line.startswith("moonwire_disconnects_total{"):
            assert re.search(r'worker="[^"]+"', line) and re.search(r'code="\d+"', line), line
    w.assert_served()


def test_rate_limited_total(server):
    srv = server(app_lua="return { limits = { rate = { messages = 1, per = 60, burst = 3 } } }\n")
    w = srv.client()
    before = value(srv, "moonwire_rate_limited_total") or 0
    c = srv.client()
    frames = b"".join(mwtest.build_frame(mwtest.OP_TEXT, json.dumps({"type": "echo", "action": "say", "data": i}).encode())
                      for i in range(10))
    c.send_raw(frames, ignore_errors=True)
    assert c.expect_close(timeout=3) == 4429
    assert wait_until(lambda: (value(srv, "moonwire_rate_limited_total") or 0) - before == 3, timeout=3), \
        f"3 refused messages, counter moved by {(value(srv, 'moonwire_rate_limited_total') or 0) - before}"
    assert wait_until(lambda: (metric_sum(metrics(srv), "moonwire_disconnects_total", 'code="4429"') or 0) == 1,
                      timeout=3)
    w.assert_served()


def test_slow_consumers_total(server):
    app = "return { limits = { sendQueueBytes = 65536 } }\n"
    srv = server(app_lua=app)
    w = srv.client()
    before = value(srv, "moonwire_slow_consumers_total") or 0
    slow = srv.client()
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reply = slow.request("system", "joinRoom", {"roomName": "feed"}, request_id=1)
    assert reply["response"]["success"] is True
    sender = srv.client()
    # 16 MB offered to a client that never reads, in many handler turns
    for k in range(100):
        sender.send_json({"type": "flood", "action": "room",
                          "data": {"room": "feed", "size": 20000, "count": 8, "start": k * 8}, "requestId": k})
        reply = sender.recv_json(timeout=5)
        assert reply["type"] == "flood" and reply["requestId"] == k, reply
        if (value(srv, "moonwire_slow_consumers_total") or 0) > before:
            break
    assert wait_until(lambda: (value(srv, "moonwire_slow_consumers_total") or 0) - before == 1, timeout=3), \
        "moonwire_slow_consumers_total did not count the slow consumer"
    assert srv.wait_log(lambda t: "slow consumer" in t, timeout=2)
    assert wait_until(lambda: (metric_sum(metrics(srv), "moonwire_disconnects_total", 'code="4503"') or 0) == 1,
                      timeout=3), metrics(srv)
    sender.assert_served()
    w.assert_served()
