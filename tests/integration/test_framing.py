"""WebSocket framing (RFC 6455, the close codes of docs/reference.md) with a raw client that can
send broken frames. Each test also probes an already-connected witness."""
import json
import random
import time

import pytest

from mwtest import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, build_frame,
                    close_payload, rss_kib)

SMALL = ("return { limits = { maxMessageSize = 1024, maxFragments = 4, "
         "rate = { messages = 10000, per = 1, burst = 10000 } } }\n")


def echo_json(data, rid="r"):
    return json.dumps({"type": "echo", "action": "say", "data": data, "requestId": rid}, ensure_ascii=False)


def test_message_within_limit_is_served(server):
    srv = server(app_lua=SMALL)
    w = srv.client()
    c = srv.client()
    text = "x" * 900
    c.send_text(echo_json(text))
    assert c.recv_json() == {"type": "echo", "action": "say", "response": text, "requestId": "r"}
    w.assert_served()


def test_message_over_max_size_is_1009(server):
    srv = server(app_lua=SMALL)
    w = srv.client()
    c = srv.client()
    c.send_text(echo_json("x" * 2000), ignore_errors=True)
    assert c.expect_close() == 1009
    assert c.tcp_closed
    w.assert_served()


def test_message_over_default_max_size_is_1009(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    c.send_text(echo_json("x" * 70000), ignore_errors=True)
    assert c.expect_close() == 1009
    w.assert_served()


def test_fragmented_message_over_max_size_is_1009(server):
    srv = server(app_lua=SMALL)
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_TEXT, b"[" + b"1," * 300, fin=False, ignore_errors=True)
    c.send_frame(OP_CONT, b"1," * 300, fin=False, ignore_errors=True)
    c.send_frame(OP_CONT, b"1]", fin=True, ignore_errors=True)
    assert c.expect_close() == 1009
    w.assert_served()


def test_declared_huge_length_is_1009_without_allocating(server):
    srv = server()
    w = srv.client()
    workers = srv.worker_pids()
    assert workers, "serve must have a worker child"
    before = sum(rss_kib(p) for p in workers)
    c = srv.client()
    c.send_frame(OP_TEXT, b"x" * 64, declared_len=2 ** 40, ignore_errors=True)
    t0 = time.monotonic()
    assert c.expect_close(timeout=3) == 1009
    assert time.monotonic() - t0 < 2.0
    after = sum(rss_kib(p) for p in srv.worker_pids())
    assert after - before < 64 * 1024, f"worker RSS grew from {before} KiB to {after} KiB"
    w.assert_served()


def test_declared_huge_length_16bit_over_small_limit(server):
    srv = server(app_lua=SMALL)
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_TEXT, b"x" * 10, declared_len=60000, ignore_errors=True)
    assert c.expect_close(timeout=3) == 1009
    w.assert_served()


def test_too_many_fragments_is_1008(server):
    srv = server(app_lua=SMALL)
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_TEXT, b"[", fin=False)
    for _ in range(10):
        c.send_frame(OP_CONT, b"1,", fin=False, ignore_errors=True)
    c.send_frame(OP_CONT, b"1]", fin=True, ignore_errors=True)
    assert c.expect_close() == 1008
    w.assert_served()


def test_fragmented_message_within_limits_is_reassembled(server):
    srv = server(app_lua=SMALL)
    w = srv.client()
    c = srv.client()
    text = echo_json({"parts": "abc"}, "frag").encode()
    c.send_frame(OP_TEXT, text[:10], fin=False)
    c.send_frame(OP_CONT, text[10:20], fin=False)
    c.send_frame(OP_CONT, text[20:], fin=True)
    assert c.recv_json() == {"type": "echo", "action": "say", "response": {"parts": "abc"},
                             "requestId": "frag"}
    w.assert_served()


def test_fragmented_message_split_inside_utf8_sequence(server):
    srv = server(app_lua=SMALL)
    w = srv.client()
    c = srv.client()
    text = echo_json("é✓😀", "u8").encode()
    cut = text.index("✓".encode()) + 1  # inside the 3-byte sequence
    c.send_frame(OP_TEXT, text[:cut], fin=False)
    c.send_frame(OP_CONT, text[cut:], fin=True)
    assert c.recv_json() == {"type": "echo", "action": "say", "response": "é✓😀", "requestId": "u8"}
    w.assert_served()


def test_ping_between_fragments_is_answered(server):
    srv = server(app_lua=SMALL)
    w = srv.client()
    c = srv.client()
    text = echo_json("mid", "m").encode()
    c.send_frame(OP_TEXT, text[:8], fin=False)
    c.send_frame(OP_PING, b"in-between")
    c.send_frame(OP_CONT, text[8:], fin=True)
    # the pong and the reply may come in either order
    frames = [c.recv_frame(), c.recv_frame()]
    pongs = [f for f in frames if f.opcode == OP_PONG]
    texts = [f for f in frames if f.opcode == OP_TEXT]
    assert [(f.payload, f.fin) for f in pongs] == [(b"in-between", True)], frames
    assert len(texts) == 1 and texts[0].fin, frames
    assert json.loads(texts[0].payload) == {"type": "echo", "action": "say", "response": "mid",
                                            "requestId": "m"}
    w.assert_served()


@pytest.mark.parametrize("payload", [b"\xff\xfe", b'{"type":"echo","action":"say","data":"\xc3\x28"}',
                                     b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"],
                         ids=["ff-fe", "bad-2byte", "surrogate", "over-max", "overlong"])
def test_invalid_utf8_text_is_1007(server, payload):
    srv = server()
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_TEXT, payload)
    assert c.expect_close() == 1007
    w.assert_served()


def test_invalid_utf8_across_fragments_is_1007(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_TEXT, b'{"a":"\xe2\x9c', fin=False)
    c.send_frame(OP_CONT, b'\x41"}', fin=True, ignore_errors=True)
    assert c.expect_close() == 1007
    w.assert_served()


def test_unmasked_client_frame_is_1002(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_TEXT, echo_json("x"), mask=False)
    assert c.expect_close() == 1002
    w.assert_served()


def test_binary_frame_is_1003(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_BINARY, b"\x00\x01\x02binary")
    assert c.expect_close() == 1003
    w.assert_served()


@pytest.mark.parametrize("payload", [b"", b"hello-ping", bytes(range(125))], ids=["empty", "text", "125-bytes"])
def test_ping_gets_pong_with_same_payload(server, payload):
    srv = server()
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_PING, payload)
    f = c.recv_frame()
    assert (f.opcode, f.fin, f.payload) == (OP_PONG, True, payload)
    c.assert_served()
    w.assert_served()


def test_unsolicited_pong_is_ignored(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_PONG, b"unsolicited")
    c.assert_served()
    w.assert_served()


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4000, 4999])
def test_client_close_is_echoed_and_tcp_closed(server, code):
    srv = server()
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_CLOSE, close_payload(code, b"bye"))
    f = c.recv_frame(timeout=3)
    assert f.opcode == OP_CLOSE
    assert f.close_code == code
    assert c.wait_eof(3), "the server must close TCP after the close handshake"
    w.assert_served()


def test_client_close_without_code(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_CLOSE, b"")
    f = c.recv_frame(timeout=3)
    assert f.opcode == OP_CLOSE
    assert f.close_code in (None, 1000)
    assert c.wait_eof(3)
    w.assert_served()


@pytest.mark.parametrize("payload", [b"\x03\xe8" + b"\xff\xfe", b"\x00\x00", b"\x03\xed", b"\x0b\xb7", b"\x01"],
                         ids=["bad-utf8-reason", "code-0", "code-1005", "code-2999", "one-byte"])
def test_invalid_close_payload_is_1002(server, payload):
    srv = server()
    w = srv.client()
    c = srv.client()
    c.send_frame(OP_CLOSE, payload)
    code = c.expect_close()
    expected = 1007 if payload.endswith(b"\xff\xfe") else 1002
    assert code in (expected, 1002), code
    w.assert_served()


def test_tcp_drop_without_close_frame(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    c.close()
    time.sleep(0.2)
    w.assert_served()


def test_random_bytes_after_handshake_are_1002(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    rng = random.Random(1234)
    junk = b"\xff" + bytes(rng.getrandbits(8) for _ in range(4095))
    c.send_raw(junk, ignore_errors=True)
    assert c.expect_close() == 1002
    assert srv.http("/health").status == 200
    w.assert_served()


PROTOCOL_VIOLATIONS = {
    "rsv1": build_frame(OP_TEXT, b"{}", rsv=4),
    "rsv3": build_frame(OP_TEXT, b"{}", rsv=1),
    "reserved-opcode": build_frame(0x3, b""),
    "reserved-control-opcode": build_frame(0xB, b""),
    "continuation-first": build_frame(OP_CONT, b"{}"),
    "fragmented-ping": build_frame(OP_PING, b"x", fin=False),
    "ping-too-long": build_frame(OP_PING, b"x" * 126),
    "text-inside-fragmented": build_frame(OP_TEXT, b"[", fin=False) + build_frame(OP_TEXT, b"1]"),
}


@pytest.mark.parametrize("name", list(PROTOCOL_VIOLATIONS))
def test_protocol_violation_is_1002(server, name):
    frame = PROTOCOL_VIOLATIONS[name]
    srv = server()
    w = srv.client()
    c = srv.client()
    c.send_raw(frame, ignore_errors=True)
    assert c.expect_close() == 1002
    w.assert_served()


def test_idle_upgraded_connection_stays_open(server):
    srv = server(app_lua="return { limits = { handshakeTimeout = 1 } }\n")
    w = srv.client()
    idle = srv.client()
    time.sleep(3)
    idle.assert_served()
    w.assert_served()


def test_frame_bytes_one_at_a_time(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    frame = build_frame(OP_TEXT, echo_json("slow", "s"))
    for i in range(len(frame)):
        c.send_raw(frame[i:i + 1])
        time.sleep(0.001)
    assert c.recv_json() == {"type": "echo", "action": "say", "response": "slow", "requestId": "s"}
    w.assert_served()


def test_large_message_reply_within_limit(server):
    srv = server(app_lua="return { limits = { maxMessageSize = 1048576 } }\n")
    w = srv.client()
    c = srv.client()
    text = "y" * 500000
    c.send_text(echo_json(text, "big"))
    assert c.recv_json(timeout=10) == {"type": "echo", "action": "say", "response": text, "requestId": "big"}
    w.assert_served()
