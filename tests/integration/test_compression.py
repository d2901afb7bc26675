"""permessage-deflate (DESIGN §15, docs/reference.md "Compression"): negotiation with
python3-websockets (which offers it by default) and with hand-made offers, compressed frames in
both directions on raw sockets (RSV1, the threshold, a deflate bomb, refusals), one compressed
frame shared by the compressing recipients of a broadcast, the metrics. Each test checks that an
already-connected witness is still served."""
import asyncio
import json
import zlib

import pytest

import mwtest
from mwtest import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS, arun, metric_sum,
                    run_cli, wait_until, ws_connect)

ACCEPTED = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
OFFER = ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
ON = "return { compression = { enabled = true } }\n"
# raw mode: every message comes back as it was sent (no JSON, no `connected` frame)
RAW_ECHO = """return {
  compression = { enabled = true, threshold = 256 },
  raw = function(clientId, payload, isBinary)
    require("moonwire").webSocketServer:sendRaw(clientId, payload, isBinary)
  end,
}
"""


def deflate(data, level=6):
    """A message compressed as RFC 7692 says (raw deflate, sync flush, 00 00 ff ff removed)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(data):
    return zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")


class DeflateWS(RawWS):
    """A raw client that may offer permessage-deflate and reads compressed messages back."""

    def __init__(self, port, offer=OFFER[1], read_connected=True, **kw):
        extra = (("Sec-WebSocket-Extensions", offer),) if offer is not None else ()
        super().__init__(port, extra=extra, read_connected=False, **kw)
        self.extension = self.handshake.headers.get("sec-websocket-extensions")
        if read_connected:
            self.connected = self.recv_json()
            self.client_id = self.connected["data"]["clientId"]

    def recv_message_rsv(self, timeout=mwtest.POSITIVE_WAIT):
        """(opcode, payload as it came, rsv of the first frame); answers pings."""
        parts, opcode, rsv = [], None, None
        while True:
            f = self.recv_frame(timeout)
            if f.opcode == OP_PING:
                self.send_frame(OP_PONG, f.payload, ignore_errors=True)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                raise mwtest.UnexpectedClose(f"server closed: {f.close_code} {f.payload[2:]!r}")
            if opcode is None:
                opcode, rsv = f.opcode, f.rsv
            else:
                assert f.rsv == 0, f"RSV bits on a continuation frame: {f!r}"
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts), rsv

    def recv_message(self, timeout=mwtest.POSITIVE_WAIT):
        opcode, payload, rsv = self.recv_message_rsv(timeout)
        if rsv & 4:
            assert self.extension, "a compressed frame without negotiation"
            payload = inflate(payload)
        else:
            assert rsv == 0, f"unexpected RSV bits {rsv}"
        return opcode, payload

    def send_compressed(self, data, opcode=OP_TEXT, **kw):
        self.send_frame(opcode, deflate(data), rsv=4, **kw)


def metrics(srv):
    resp = srv.http("/metrics")
    assert resp.status == 200, resp
    return resp.text


def value(srv, name):
    return metric_sum(metrics(srv), name)


def echo_json(data, rid="r"):
    return json.dumps({"type": "echo", "action": "say", "data": data, "requestId": rid})


# --------------------------------------------------------------------------- negotiation

def test_off_by_default_websockets_gets_no_extension(server):
    srv = server()
    w = srv.client()

    async def go():
        c = await ws_connect(srv)
        assert c.ws.response_headers.get("Sec-WebSocket-Extensions") is None
        big = "y" * 3000
        assert await c.request({"type": "echo", "action": "say", "data": big, "requestId": 1}) == \
            {"type": "echo", "action": "say", "response": big, "requestId": 1}
    arun(go())
    c = DeflateWS(srv.port)
    assert c.extension is None
    # not negotiated: RSV1 is a protocol error
    c.send_compressed(echo_json("z" * 500).encode(), ignore_errors=True)
    assert c.expect_close() == 1002
    w.assert_served()


def test_websockets_negotiates_and_round_trips(server):
    srv = server(app_lua=ON)
    w = srv.client()

    async def go():
        c = await ws_connect(srv)  # python3-websockets offers permessage-deflate by default
        assert c.ws.response_headers["Sec-WebSocket-Extensions"] == ACCEPTED
        for n in (5, 255, 256, 3000, 60000):
            text = "é" + "ab" * (n // 2)
            reply = await c.request({"type": "echo", "action": "say", "data": text, "requestId": n})
            assert reply == {"type": "echo", "action": "say", "response": text, "requestId": n}
    arun(go())
    assert wait_until(lambda: value(srv, "moonwire_compression_received_uncompressed_bytes_total") > 60000)
    text = metrics(srv)
    for name in ("moonwire_compression_messages_compressed_total",
                 "moonwire_compression_sent_uncompressed_bytes_total",
                 "moonwire_compression_sent_compressed_bytes_total",
                 "moonwire_compression_received_compressed_bytes_total",
                 "moonwire_compression_received_uncompressed_bytes_total"):
        assert f"# TYPE {name} counter" in text, name
    before = metric_sum(text, "moonwire_compression_sent_uncompressed_bytes_total")
    after = metric_sum(text, "moonwire_compression_sent_compressed_bytes_total")
    assert before > 60000 and 0 < after < before / 5, (before, after)
    inflated = metric_sum(text, "moonwire_compression_received_uncompressed_bytes_total")
    wire = metric_sum(text, "moonwire_compression_received_compressed_bytes_total")
    assert 0 < wire < inflated / 5, (wire, inflated)
    w.assert_served()


@pytest.mark.parametrize("how", ["env", "flag"])
def test_environment_and_flag_enable_it(server, how):
    srv = server(env={"MOONWIRE_COMPRESSION": "1"}) if how == "env" else server(args=["--compression"])
    c = DeflateWS(srv.port)
    assert c.extension == ACCEPTED
    c.send_compressed(echo_json("hello " * 100).encode())
    assert c.recv_json() == {"type": "echo", "action": "say", "response": "hello " * 100, "requestId": "r"}


def test_environment_zero_keeps_it_off(server):
    srv = server(app_lua=ON, env={"MOONWIRE_COMPRESSION": "0"})
    assert DeflateWS(srv.port).extension is None


OFFERS = {
    # offer -> answer (None: declined, the upgrade goes on without the extension)
    "plain": ("permessage-deflate", ACCEPTED),
    "client-bits-no-value": ("permessage-deflate; client_max_window_bits", ACCEPTED),
    "client-bits": ("permessage-deflate; client_max_window_bits=10", ACCEPTED + "; client_max_window_bits=10"),
    "server-bits-15": ("permessage-deflate; server_max_window_bits=15", ACCEPTED + "; server_max_window_bits=15"),
    "server-bits-10": ("permessage-deflate; server_max_window_bits=10", None),
    "server-bits-no-value": ("permessage-deflate; server_max_window_bits", None),
    "client-bits-16": ("permessage-deflate; client_max_window_bits=16", None),
    "client-bits-7": ("permessage-deflate; client_max_window_bits=7", None),
    "unknown-param": ("permessage-deflate; foo=1", None),
    "duplicate": ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    "value-on-flag": ("permessage-deflate; client_no_context_takeover=1", None),
    "syntax": ("permessage-deflate;;", None),
    "other-extension": ("x-webkit-deflate-frame", None),
    "first-acceptable-wins": ("permessage-deflate; server_max_window_bits=9, foo, "
                              "permessage-deflate; client_max_window_bits=12, permessage-deflate",
                              ACCEPTED + "; client_max_window_bits=12"),
}


@pytest.mark.parametrize("offer,answer", list(OFFERS.values()), ids=list(OFFERS.keys()))
def test_offers(server, offer, answer):
    srv = server(app_lua=ON)
    w = srv.client()
    c = DeflateWS(srv.port, offer=offer)
    assert c.handshake.status == 101
    assert c.extension == answer, c.handshake
    c.send_text(echo_json("x" * 400))  # plain messages work either way
    assert c.recv_json() == {"type": "echo", "action": "say", "response": "x" * 400, "requestId": "r"}
    if answer is None:
        c.send_compressed(echo_json("x" * 400).encode(), ignore_errors=True)
        assert c.expect_close() == 1002
    else:
        c.send_compressed(echo_json("x" * 400).encode())
        assert c.recv_json()["response"] == "x" * 400
    w.assert_served()


def test_two_header_lines_are_one_list(server):
    srv = server(app_lua=ON)
    c = RawWS(srv.port, read_connected=False,
              extra=(("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=8"),
                     ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=9")))
    assert c.handshake.headers.get("sec-websocket-extensions") == ACCEPTED + "; client_max_window_bits=9"


# --------------------------------------------------------------------------- frames

def test_threshold_boundary(server):
    srv = server(app_lua=RAW_ECHO)
    c = DeflateWS(srv.port, read_connected=False)
    assert c.extension == ACCEPTED
    for n, compressed in ((1, False), (255, False), (256, True), (5000, True)):
        payload = (b"0123456789abcdef" * 400)[:n]
        c.send_text(payload)
        opcode, wire, rsv = c.recv_message_rsv()
        assert opcode == OP_TEXT
        if compressed:
            assert rsv == 4 and len(wire) < n and inflate(wire) == payload, (n, rsv, len(wire))
        else:
            assert rsv == 0 and wire == payload, (n, rsv)
    # binary too; incompressible bytes go out plain even above the threshold
    c.send_frame(OP_BINARY, b"\x00\x01" * 300)
    opcode, wire, rsv = c.recv_message_rsv()
    assert opcode == OP_BINARY and rsv == 4 and inflate(wire) == b"\x00\x01" * 300
    noise = bytes((i * 7919 + (i >> 3) * 104729) % 251 for i in range(400))
    noise = zlib.compress(noise, 9)  # compressed data does not compress again
    c.send_frame(OP_BINARY, noise)
    assert c.recv_message_rsv() == (OP_BINARY, noise, 0)


def test_threshold_setting(server):
    srv = server(app_lua=RAW_ECHO.replace("threshold = 256", "threshold = 0"))
    c = DeflateWS(srv.port, read_connected=False)
    c.send_text(b"a" * 40)
    opcode, wire, rsv = c.recv_message_rsv()
    assert rsv == 4 and inflate(wire) == b"a" * 40


def test_compressed_client_messages(server):
    srv = server(app_lua=ON)
    w = srv.client()
    c = DeflateWS(srv.port)
    small = echo_json("hi").encode()
    c.send_compressed(small)  # compressing a short message is the client's choice
    assert c.recv_json()["response"] == "hi"
    c.send_text(echo_json("plain"))  # and so is sending one plain
    assert c.recv_json()["response"] == "plain"
    # fragmented: RSV1 on the first frame only, a ping between fragments
    body = deflate(echo_json("frag " * 300).encode())
    third = len(body) // 3
    c.send_frame(OP_TEXT, body[:third], fin=False, rsv=4)
    c.send_frame(OP_CONT, body[third:2 * third], fin=False)
    c.send_frame(OP_PING, b"p")
    c.send_frame(OP_CONT, body[2 * third:], fin=True)
    assert c.recv_json()["response"] == "frag " * 300
    w.assert_served()


def test_many_fragments_of_a_compressed_message_still_capped(server):
    srv = server(app_lua="return { compression = { enabled = true }, limits = { maxFragments = 4 } }\n")
    w = srv.client()
    c = DeflateWS(srv.port)
    body = deflate(echo_json("x" * 100).encode())
    for i in range(5):
        c.send_frame(OP_TEXT if i == 0 else OP_CONT, body[i * 3:(i + 1) * 3] if i < 4 else body[12:],
                     fin=i == 4, rsv=4 if i == 0 else 0, ignore_errors=True)
    assert c.expect_close() == 1008
    w.assert_served()


def test_deflate_bomb_is_1009(server):
    srv = server(app_lua=ON)  # maxMessageSize 65536
    w = srv.client()
    bomb = deflate(b"\x00" * (16 * 1024 * 1024), 9)  # 16 MiB in about 16 KiB
    assert len(bomb) < 32 * 1024  # well within the limit as sent
    workers = srv.worker_pids()
    before = sum(mwtest.rss_kib(p) for p in workers)
    c = DeflateWS(srv.port)
    c.send_frame(OP_TEXT, bomb, rsv=4, ignore_errors=True)
    assert c.expect_close() == 1009
    assert c.close_frame.payload[2:] == b"Message too big"
    after = sum(mwtest.rss_kib(p) for p in srv.worker_pids())
    assert after - before < 16 * 1024, f"worker RSS grew from {before} KiB to {after} KiB"
    # one byte over the limit once inflated, in small fragments
    c = DeflateWS(srv.port)
    body = deflate(b"[" + b"1," * 32767 + b"1]")  # 65537 bytes
    for off in range(0, len(body), 50):
        c.send_frame(OP_TEXT if off == 0 else OP_CONT, body[off:off + 50], fin=off + 50 >= len(body),
                     rsv=4 if off == 0 else 0, ignore_errors=True)
    assert c.expect_close() == 1009
    w.assert_served()


def test_message_at_the_limit_once_inflated_passes(server):
    srv = server(app_lua="return { compression = { enabled = true }, limits = { maxMessageSize = 1000 } }\n")
    c = DeflateWS(srv.port)
    text = "q" * (1000 - len(echo_json("")))
    msg = echo_json(text).encode()
    assert len(msg) == 1000
    c.send_compressed(msg)
    assert c.recv_json()["response"] == text
    c.send_compressed(echo_json(text + "q").encode(), ignore_errors=True)
    assert c.expect_close() == 1009


@pytest.mark.parametrize("case", ["ping", "close", "continuation", "rsv2", "rsv3"])
def test_reserved_bits_refused_with_1002(server, case):
    srv = server(app_lua=ON)
    w = srv.client()
    c = DeflateWS(srv.port)
    assert c.extension == ACCEPTED
    if case == "ping":
        c.send_frame(OP_PING, b"p", rsv=4, ignore_errors=True)
    elif case == "close":
        c.send_frame(OP_CLOSE, mwtest.close_payload(1000), rsv=4, ignore_errors=True)
    elif case == "continuation":
        body = deflate(echo_json("x" * 300).encode())
        c.send_frame(OP_TEXT, body[:10], fin=False, rsv=4, ignore_errors=True)
        c.send_frame(OP_CONT, body[10:], fin=True, rsv=4, ignore_errors=True)
    else:
        c.send_frame(OP_TEXT, echo_json("x").encode(), rsv=2 if case == "rsv2" else 1, ignore_errors=True)
    assert c.expect_close() == 1002
    w.assert_served()


@pytest.mark.parametrize("case", ["garbage", "truncated", "bad-utf8"])
def test_bad_compressed_data_is_1007(server, case):
    srv = server(app_lua=ON)
    w = srv.client()
    c = DeflateWS(srv.port)
    if case == "garbage":
        body = b"\xff\xff\xff\xff\x00\x12"
    elif case == "truncated":
        body = deflate(echo_json("abc" * 200).encode())
        body = body[:len(body) // 2]
    else:
        body = deflate(b'{"type":"echo","action":"say","data":"\xc3\x28"}')
    c.send_frame(OP_TEXT, body, rsv=4, ignore_errors=True)
    assert c.expect_close() == 1007
    w.assert_served()


# --------------------------------------------------------------------------- broadcast

def test_broadcast_to_mixed_recipients_compresses_once(server):
    srv = server(app_lua=ON)
    w = DeflateWS(srv.port, offer=None)  # a plain witness
    zs = [DeflateWS(srv.port) for _ in range(3)]
    plain = [DeflateWS(srv.port, offer=None) for _ in range(2)]
    assert all(z.extension == ACCEPTED for z in zs) and all(p.extension is None for p in plain)
    before = metrics(srv)
    data = {"text": "the same news for everybody " * 40}
    sender = plain[0]
    sender.send_json({"type": "bcast", "action": "all", "data": data, "requestId": "b"})
    expected = {"type": "bcast", "action": "all", "data": data}
    wires = set()
    for z in zs:
        opcode, wire, rsv = z.recv_message_rsv()
        assert opcode == OP_TEXT and rsv == 4
        assert json.loads(inflate(wire)) == expected
        wires.add(wire)
    assert len(wires) == 1, "every compressing recipient gets the same compressed bytes"
    plain_len = None
    for p in plain + [w]:
        for _ in range(2):  # the sender also gets its reply, in either order
            opcode, wire, rsv = p.recv_message_rsv()
            assert rsv == 0
            msg = json.loads(wire)
            if msg.get("requestId") == "b":
                continue
            assert msg == expected
            plain_len = len(wire)
            break
    sender_reply = sender.recv_json()
    assert sender_reply.get("requestId") == "b", sender_reply
    after = metrics(srv)

    def delta(name):
        return metric_sum(after, name) - metric_sum(before, name)
    assert delta("moonwire_compression_messages_compressed_total") == 1, "compressed once for three recipients"
    assert delta("moonwire_compression_sent_uncompressed_bytes_total") == 3 * plain_len
    assert delta("moonwire_compression_sent_compressed_bytes_total") == 3 * len(next(iter(wires)))
    w.assert_served()


def test_room_message_to_websockets_clients(server):
    srv = server(app_lua=ON)

    async def go():
        a = await ws_connect(srv)
        b = await ws_connect(srv, compression=None)  # this one offers nothing
        assert a.ws.response_headers["Sec-WebSocket-Extensions"] == ACCEPTED
        assert b.ws.response_headers.get("Sec-WebSocket-Extensions") is None
        for c in (a, b):
            r = await c.request({"type": "system", "action": "joinRoom", "data": {"roomName": "news"},
                                 "requestId": "j"})
            assert r["response"]["success"] is True, r
        payload = {"text": "breaking " * 100}
        await a.send({"type": "rooms", "action": "send", "data": {"room": "news", "payload": payload}})
        for c in (a, b):
            while True:
                m = await c.recv()
                if m.get("type") == "room":
                    assert m["data"]["payload"] == payload and m["data"]["from"] == a.client_id
                    break
    arun(go())


# --------------------------------------------------------------------------- config

BAD = {
    "level-10": ("return { compression = { level = 10 } }\n", "compression.level"),
    "level-fraction": ("return { compression = { level = 1.5 } }\n", "compression.level"),
    "threshold-negative": ("return { compression = { threshold = -1 } }\n", "compression.threshold"),
    "enabled-string": ('return { compression = { enabled = "yes" } }\n', "compression.enabled"),
    "unknown-key": ("return { compression = { windowBits = 10 } }\n", "compression.windowBits"),
    "not-a-table": ("return { compression = true }\n", "compression"),
}


@pytest.mark.parametrize("app_lua,key", list(BAD.values()), ids=list(BAD.keys()))
def test_config_errors(app_dir, app_lua, key):
    rc, out, err = run_cli(["check", str(app_dir(app_lua=app_lua))])
    assert rc == 1, (rc, out, err)
    assert f"config error: {key}" in out + err, out + err
