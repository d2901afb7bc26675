"""Admission and per-connection limits (CONTRACT-2of5 "Limits and lifecycle"):
allowedOrigins (403), limits.maxConnections (503), the per-connection rate limit
(rate_limited frames, then 4429), slow consumers (4503, the others unaffected),
limits.jsonDepth. Each test checks a witness connection is still served afterwards.
"""
import asyncio
import json
import socket
import time

import pytest

import mwtest
from mwtest import arun, http_request, upgrade_request, wait_until, ws_connect

RATE_LIMITED = {"error": "Rate limit exceeded", "code": "rate_limited"}


def upgrade_status(srv, extra=()):
    return http_request(srv.port, upgrade_request(srv.port, srv.path, extra=extra), timeout=5).status


def is_rate_limited(frame):
    """Exactly the contract's frame (no type/action/requestId of the refused message)."""
    return frame == {"type": "error", "action": "message", "data": RATE_LIMITED}


def echo(i):
    return {"type": "echo", "action": "say", "data": i, "requestId": i}


def echo_reply(i):
    return {"type": "echo", "action": "say", "response": i, "requestId": i}


# --------------------------------------------------------------------------- origins

def test_allowed_origins(server):
    srv = server(app_lua='return { allowedOrigins = { "https://a.example", "http://localhost:3000" } }\n')
    w = srv.client()                                          # no Origin header: allowed
    c = srv.client(extra=[("Origin", "https://a.example")])
    c.assert_served()
    d = srv.client(extra=[("Origin", "http://localhost:3000")])
    d.assert_served()
    for origin in ("https://evil.example", "https://a.example.evil.example", "http://a.example",
                   "https://a.example:8443", "null", "https://b.example"):
        status = upgrade_status(srv, extra=[("Origin", origin)])
        assert status == 403, f"Origin {origin}: expected 403, got {status}"
    assert srv.proc.poll() is None
    w.assert_served()


def test_any_origin_without_allowed_origins(server):
    srv = server()
    w = srv.client()
    c = srv.client(extra=[("Origin", "https://anything.example")])
    c.assert_served()
    w.assert_served()


# --------------------------------------------------------------------------- maxConnections

def test_max_connections_503(server):
    srv = server(app_lua="return { limits = { maxConnections = 3 } }\n")
    w = srv.client()
    a = srv.client()
    b = srv.client()
    for _ in range(3):
        status = upgrade_status(srv)
        assert status == 503, f"a 4th connection with maxConnections = 3: expected 503, got {status}"
    a.assert_served()
    b.assert_served()
    w.assert_served()
    # a slot frees up when a client leaves
    a.send_frame(mwtest.OP_CLOSE, mwtest.close_payload(1000))
    assert a.expect_close() == 1000

    def admitted():
        try:
            c = srv.client()
        except AssertionError:       # still refused (the slot is freed asynchronously)
            return None
        return c
    c = wait_until(admitted, timeout=3, interval=0.1)
    assert c, "a slot must free up after a client disconnected"
    c.assert_served()
    assert upgrade_status(srv) == 503
    # HTTP-phase connections count against maxConnections too: at the limit a plain
    # request is answered 503 at once as well (tests/integration/test_fd_limit.py)
    assert srv.http("/health").status == 503
    w.assert_served()


# --------------------------------------------------------------------------- rate limit

RATE_APP = "return { limits = { rate = { messages = 1, per = 60, burst = 3 } } }\n"


def test_flooding_client_gets_rate_limited_then_4429(server):
    srv = server(app_lua=RATE_APP)
    w = srv.client()
    c = srv.client()
    # 20 messages at once: the bucket holds 3, the next 3 are refused, then 4429
    c.send_raw(b"".join(mwtest.build_frame(mwtest.OP_TEXT, json.dumps(echo(i)).encode()) for i in range(1, 21)),
               ignore_errors=True)
    for i in range(1, 4):
        assert c.recv_json() == echo_reply(i)
    for _ in range(3):
        frame = c.recv_json()
        assert is_rate_limited(frame), f"expected a rate_limited error frame, got {frame}"
    f = c.recv_frame(timeout=3)
    assert f.opcode == mwtest.OP_CLOSE, f"after 3 consecutive refusals the next frame must be the close, got {f!r}"
    c.send_frame(mwtest.OP_CLOSE, f.payload[:2], ignore_errors=True)
    c.close_frame = f
    c.tcp_closed = c.wait_eof(3)
    code = f.close_code
    assert code == 4429, f"expected close 4429 after 3 refusals, got {code}"
    assert c.close_frame.payload[2:] == b"Rate limit exceeded"
    assert c.tcp_closed
    # the witness has its own bucket (its budget is untouched)
    w.assert_served()
    w.assert_served()
    assert srv.wait_log(lambda t: f"clientId={c.client_id}" in t and "code=4429" in t, timeout=3), srv.log()


def test_accepted_message_resets_refusal_count(server):
    srv = server(app_lua="return { limits = { rate = { messages = 2, per = 1, burst = 3 } } }\n")
    w = srv.client()
    c = srv.client()
    for i in range(1, 4):
        c.send_json(echo(i))
    for i in range(1, 4):
        assert c.recv_json() == echo_reply(i)
    for i in (10, 11):                  # 2 refusals (1 short of the close)
        c.send_json(echo(i))
    for _ in range(2):
        frame = c.recv_json()
        assert is_rate_limited(frame), frame
    time.sleep(0.7)                      # refills 1.4 tokens
    c.send_json(echo(20))
    assert c.recv_json() == echo_reply(20)   # accepted: the refusal count starts over
    for i in (30, 31):                  # 2 more refusals: 4 in all, but only 2 consecutive
        c.send_json(echo(i))
    for _ in range(2):
        frame = c.recv_json()
        assert is_rate_limited(frame), frame
    time.sleep(1.2)
    c.assert_served()                    # still open
    w.assert_served()


def test_rate_limit_refills(server):
    srv = server(app_lua="return { limits = { rate = { messages = 5, per = 0.5, burst = 5 } } }\n")
    w = srv.client()
    c = srv.client()
    for round_ in range(3):
        for i in range(5):
            c.send_json(echo(round_ * 10 + i))
        for i in range(5):
            assert c.recv_json() == echo_reply(round_ * 10 + i), f"round {round_}"
        time.sleep(0.6)                  # a full bucket again
    w.assert_served()


# --------------------------------------------------------------------------- slow consumer

SLOW_APP = """
return {
  limits = { sendQueueBytes = 262144, rate = { messages = 100000, per = 1, burst = 100000 } },
  events = { onDisconnect = function(clientId, code, reason)
    require("moonwire").log:info("EV disconnect " .. clientId .. " " .. tostring(code))
  end },
}
"""


def test_slow_consumer_is_cut_off_others_get_everything(server):
    srv = server(app_lua=SLOW_APP)
    w = srv.client()
    slow = srv.client()
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.send_json({"type": "system", "action": "joinRoom", "data": {"roomName": "feed"}, "requestId": 1})
    assert slow.recv_json()["response"]["success"] is True
    # 800 messages of 20 KB = 16 MB per reader: well past what the kernel buffers for the slow one (~4 MB)
    rounds, per_round, size = 100, 8, 20000

    async def body():
        readers = [await ws_connect(srv) for _ in range(3)]
        for r in readers:
            reply = await r.request({"type": "system", "action": "joinRoom", "data": {"roomName": "feed"},
                                     "requestId": 1})
            assert reply["response"]["success"] is True
        sender = await ws_connect(srv)
        got = {r.client_id: [] for r in readers}

        async def read_all(r):
            while len(got[r.client_id]) < rounds * per_round:
                msg = await r.recv(timeout=10)
                assert msg["type"] == "flood" and msg["action"] == "part", msg
                assert len(msg["data"]["p"]) == size
                got[r.client_id].append(msg["data"]["seq"])

        tasks = [asyncio.ensure_future(read_all(r)) for r in readers]
        for k in range(rounds):
            # the readers keep up: at most 2 rounds (320 KB) in flight to each of them
            t_end = time.monotonic() + 10
            while min(len(v) for v in got.values()) < (k - 2) * per_round:
                assert time.monotonic() < t_end, "readers stalled"
                await asyncio.sleep(0.002)
            reply = await sender.request({"type": "flood", "action": "room",
                                          "data": {"room": "feed", "size": size, "count": per_round,
                                                   "start": k * per_round}, "requestId": k}, timeout=10)
            assert reply["type"] == "flood" and reply["requestId"] == k, reply
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        for r in readers:
            assert got[r.client_id] == list(range(1, rounds * per_round + 1)), \
                f"reader {r.client_id} lost or reordered messages"
        for r in readers:
            reply = await r.request({"type": "echo", "action": "say", "data": "ok", "requestId": "e"})
            assert reply == {"type": "echo", "action": "say", "response": "ok", "requestId": "e"}
        return [r.client_id for r in readers]
    reader_ids = arun(body(), timeout=60)

    log = srv.wait_log(lambda t: f"EV disconnect {slow.client_id}" in t, timeout=3)
    assert log, "the slow consumer was not cut off"
    assert f"EV disconnect {slow.client_id} 4503" in log, [l for l in log.splitlines() if "EV disconnect" in l]
    assert "slow consumer" in log
    assert any("slow consumer" in l and slow.client_id in l for l in log.splitlines()), \
        "the slow consumer line names the client"
    for rid in reader_ids:
        assert f"EV disconnect {rid} 4503" not in log
    # what the slow client finally reads ends with a 4503 close frame (if any) and EOF
    deadline = time.monotonic() + 5
    codes, frames, ended = [], 0, "deadline"
    while time.monotonic() < deadline:
        try:
            f = slow.recv_frame(max(0.01, deadline - time.monotonic()))
        except EOFError:
            ended = "eof"
            break
        except TimeoutError:
            ended = f"timeout (buffered {len(slow.bs.buf)} bytes: {slow.bs.buf[:12]!r}; eof after: {slow.bs.wait_eof(2)})"
            break
        frames += 1
        if f.opcode == mwtest.OP_CLOSE:
            codes.append(f.close_code)
    assert codes in ([], [4503]), codes
    assert ended == "eof", (f"the slow consumer's TCP connection must be closed: read {frames} frames "
                            f"(close frames: {codes}), then {ended}")
    w.assert_served()


# --------------------------------------------------------------------------- jsonDepth

def nested(depth):
    value = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_json_depth_limit(server):
    srv = server(app_lua="return { limits = { jsonDepth = 8 } }\n")
    w = srv.client()
    c = srv.client()
    ok = nested(4)                       # the envelope + 4 levels of data: within 8
    c.send_json({"type": "echo", "action": "say", "data": ok, "requestId": 1})
    assert c.recv_json() == {"type": "echo", "action": "say", "response": ok, "requestId": 1}
    for text in (json.dumps({"type": "echo", "action": "say", "data": nested(20), "requestId": 2}),
                 json.dumps({"type": "echo", "action": "say", "data": [[[[[[[[[[[[1]]]]]]]]]]]]}),
                 "[" * 30000 + "]" * 30000,
                 "{\"a\":" * 10000 + "1" + "}" * 10000):
        c.send_text(text)
        assert c.recv_json() == {"type": "error", "action": "message", "data": {"error": "Failed to parse JSON"}}
    c.assert_served()
    w.assert_served()


def test_json_depth_default_is_32(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    ok = nested(20)
    c.send_json({"type": "echo", "action": "say", "data": ok, "requestId": 1})
    assert c.recv_json() == {"type": "echo", "action": "say", "response": ok, "requestId": 1}
    c.send_json({"type": "echo", "action": "say", "data": nested(40), "requestId": 2})
    assert c.recv_json() == {"type": "error", "action": "message", "data": {"error": "Failed to parse JSON"}}
    c.send_text("[" * 30000 + "]" * 30000)
    assert c.recv_json() == {"type": "error", "action": "message", "data": {"error": "Failed to parse JSON"}}
    c.assert_served()
    w.assert_served()
