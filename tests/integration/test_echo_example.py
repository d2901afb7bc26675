"""examples/echo (raw mode) served by the real binary: every text and binary message
comes back byte-identical with the same opcode, no `connected` frame is sent, and the framing
rules still hold (1007 invalid UTF-8, 1009 too big) without disturbing other clients.

Exact frames go through mwtest.RawWS; python3-websockets is the independent client."""
import asyncio
import os
import time
from pathlib import Path

import pytest

import mwtest
from mwtest import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, build_frame, close_payload

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "examples" / "echo"
MAX = 16 * 1024 * 1024  # examples/echo/app.lua limits.maxMessageSize


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    """One server for the module, serving examples/echo in place, with a witness connection
    that must stay served through every test."""
    port = mwtest.free_port()
    workdir = tmp_path_factory.mktemp("echo-run")
    srv = mwtest.Server(ECHO, port, ["--host", "127.0.0.1", "--port", str(port)],
                        mwtest.clean_env(None), workdir)
    srv.spawn()
    try:
        srv.wait_ready()
        srv.witness = raw(srv)
        yield srv
    finally:
        srv.close_clients()
        problems = srv.stop()
        print(f"===== echo server (port {port}, exit {srv.returncode}) stderr =====")
        print(srv.log())
    assert not problems, problems
    assert not srv.sanitizer_report(), srv.log()
    assert not (ECHO / "data").exists(), "the echo app must not create files in its folder"


def raw(srv):
    """A RawWS client of the echo server (raw mode: no `connected` frame to read)."""
    c = mwtest.RawWS(srv.port, read_connected=False)
    srv.clients.append(c)
    return c


def utf8_text(n):
    """Exactly n bytes of valid UTF-8 mixing 1- to 4-byte characters."""
    unit = "aé✓😀".encode()
    data = unit * (n // len(unit))
    return data + b"z" * (n - len(data))


def assert_echo(c, opcode, payload, timeout=5.0):
    c.send_frame(opcode, payload)
    got_op, got = c.recv_message(timeout)
    assert got_op == opcode, f"sent opcode {opcode}, got {got_op}"
    assert got == payload, f"{len(payload)}-byte payload came back as {len(got)} bytes"


def assert_still_served(srv):
    """The witness and a brand-new client are both served."""
    assert_echo(srv.witness, OP_TEXT, b"witness")
    fresh = raw(srv)
    assert_echo(fresh, OP_BINARY, b"\x00fresh\xff")
    fresh.close()


def test_no_connected_frame_then_echo(echo):
    c = raw(echo)
    with pytest.raises(TimeoutError):
        c.recv_frame(timeout=0.5)
    assert_echo(c, OP_TEXT, b"hello")
    assert_echo(c, OP_BINARY, b"\x00\x01\x02\xfe\xff")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_single_frame_sizes(echo, opcode, size):
    c = raw(echo)
    payload = utf8_text(size) if opcode == OP_TEXT else os.urandom(size)
    assert_echo(c, opcode, payload, timeout=10)
    c.close()


def test_server_frames_use_the_shortest_length_encoding(echo):
    c = raw(echo)
    for size, header_len in ((125, 2), (126, 4), (65535, 4), (65536, 10)):
        c.send_frame(OP_BINARY, b"b" * size)
        head = c.bs.read_exact(2, time.monotonic() + 5)
        assert head[0] == 0x80 | OP_BINARY, head  # FIN, no RSV bits, one frame
        n7 = head[1] & 0x7F
        assert not head[1] & 0x80, "server frames are not masked"
        assert 2 + {126: 2, 127: 8}.get(n7, 0) == header_len, (size, n7)
        rest = c.bs.read_exact(header_len - 2 + size, time.monotonic() + 5)
        assert rest[header_len - 2:] == b"b" * size


def test_fragmented_messages(echo):
    c = raw(echo)
    text = utf8_text(1000)
    cut = text.index("✓".encode()) + 1  # inside a 3-byte sequence
    c.send_frame(OP_TEXT, text[:cut], fin=False)
    c.send_frame(OP_PING, b"between")
    c.send_frame(OP_CONT, b"", fin=False)
    c.send_frame(OP_CONT, text[cut:], fin=True)
    frames = [c.recv_frame(), c.recv_frame()]  # the pong and the echo, in either order
    assert [f.payload for f in frames if f.opcode == OP_PONG] == [b"between"], frames
    echoed = [f for f in frames if f.opcode == OP_TEXT]
    assert len(echoed) == 1 and echoed[0].fin and echoed[0].payload == text

    data = os.urandom(5000)
    c.send_frame(OP_BINARY, b"", fin=False)
    for i in range(0, 5000, 1000):
        c.send_frame(OP_CONT, data[i:i + 1000], fin=i == 4000)
    assert c.recv_message() == (OP_BINARY, data)


def test_max_message_size_both_kinds_with_websockets(echo):
    import websockets

    async def run():
        async with websockets.connect(echo.ws_url, max_size=MAX, ping_interval=None,
                                      close_timeout=2, open_timeout=5) as ws:
            blob = os.urandom(MAX)
            await ws.send(blob)
            assert await asyncio.wait_for(ws.recv(), 20) == blob
            text = utf8_text(MAX).decode()
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), 20) == text
    mwtest.arun(run(), timeout=60)


def test_websockets_client_kinds_and_order(echo):
    import websockets

    async def run():
        async with websockets.connect(echo.ws_url, ping_interval=None, close_timeout=2,
                                      open_timeout=5) as ws:
            # nothing is sent on connect: the first frame is the echo of the first message
            for msg in ["", b"", "é✓😀", b"\xff\x00", "{\"type\":\"system\",\"action\":\"ping\"}"]:
                await ws.send(msg)
                got = await asyncio.wait_for(ws.recv(), 5)
                assert type(got) is type(msg) and got == msg
            # more messages at once than the default rate burst (200): all echoed, in order
            sent = [f"m{i}" if i % 2 else f"b{i}".encode() for i in range(500)]
            for msg in sent:
                await ws.send(msg)
            got = [await asyncio.wait_for(ws.recv(), 5) for _ in sent]
            assert got == sent
            await ws.close(1000)
            assert ws.close_code == 1000
    mwtest.arun(run(), timeout=30)


def test_client_close_is_echoed(echo):
    c = raw(echo)
    assert_echo(c, OP_TEXT, b"bye")
    c.send_frame(OP_CLOSE, close_payload(1000, b"done"))
    assert c.expect_close() == 1000
    assert c.tcp_closed
    assert_still_served(echo)


@pytest.mark.parametrize("frames", [
    [(OP_TEXT, b"\xff\xfe", True)],
    [(OP_TEXT, b"ok \xc3\x28", True)],
    [(OP_TEXT, b"\xed\xa0\x80", True)],                         # a UTF-16 surrogate
    [(OP_TEXT, b"abc\xe2\x9c", False), (OP_CONT, b"x", True)],  # bad across fragments
    [(OP_TEXT, b"abc\xe2\x9c", True)],                          # truncated at the end
], ids=["ff-fe", "bad-2byte", "surrogate", "across-fragments", "truncated"])
def test_invalid_utf8_text_is_1007(echo, frames):
    c = raw(echo)
    assert_echo(c, OP_BINARY, b"\xff\xfe")  # the same bytes are fine as binary
    for opcode, payload, fin in frames:
        c.send_frame(opcode, payload, fin=fin, ignore_errors=True)
    assert c.expect_close() == 1007
    assert c.tcp_closed
    assert_still_served(echo)


@pytest.mark.parametrize("kind", ["single", "fragmented"])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_oversize_message_is_1009(echo, opcode, kind):
    c = raw(echo)
    if kind == "single":  # the header alone is refused: the payload is never sent
        c.send_raw(build_frame(opcode, b"", declared_len=MAX + 1))
    else:
        c.send_frame(opcode, b"a" * 1000, fin=False)
        c.send_raw(build_frame(OP_CONT, b"", declared_len=MAX - 999), ignore_errors=True)
    assert c.expect_close() == 1009
    assert c.tcp_closed
    assert_still_served(echo)


def test_check_accepts_the_example():
    rc, out, err = mwtest.run_cli(["check", ECHO])
    assert rc == 0, out + err


# --------------------------------------------------------------------------- raw mode owns every frame

RAW_APP = """return {
  auth = { secret = "%s" },
  limits = { rate = { messages = 1, per = 60, burst = 3 } },
  raw = function(clientId, payload, isBinary)
    require("moonwire").webSocketServer:sendRaw(clientId, payload, isBinary)
  end,
}
"""
SECRET = "raw-mode-secret-" + "x" * 32


def test_raw_mode_sends_no_json_of_its_own(server):
    """Neither auth/authenticated nor rate-limit error frames: the first frame is the echo, and a
    flood is cut with 4429 without a JSON frame."""
    import jwt
    srv = server(app_lua=RAW_APP % SECRET)
    token = jwt.encode({"sub": "ada", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    ws = mwtest.RawWS(srv.port, path=f"/ws?token={token}", read_connected=False)
    ws.send_frame(OP_BINARY, b"\x01\x02")
    op, data = ws.recv_message(timeout=5)
    assert (op, data) == (OP_BINARY, b"\x01\x02")
    for i in range(2):  # the rest of the burst of 3
        ws.send_frame(OP_BINARY, bytes([i]))
        assert ws.recv_message(timeout=5) == (OP_BINARY, bytes([i]))
    for i in range(3):  # refused: dropped silently, then 4429
        ws.send_frame(OP_BINARY, b"x", ignore_errors=True)
    first = ws.recv_frame(timeout=5)
    assert first.opcode == OP_CLOSE, f"raw mode got a frame it did not send: {first!r}"
    assert first.close_code == 4429


def test_send_raw_refuses_invalid_utf8_text(server):
    app = """return { raw = function(clientId, payload, isBinary)
      local ws = require("moonwire").webSocketServer
      if payload == "bad" then ws:sendRaw(clientId, "\\255\\254", false) end
      ws:sendRaw(clientId, payload, isBinary)
    end }
    """
    srv = server(app_lua=app)
    ws = mwtest.RawWS(srv.port, read_connected=False)
    ws.send_frame(OP_TEXT, b"bad")
    ws.send_frame(OP_TEXT, b"fine")
    assert ws.recv_message(timeout=5) == (OP_TEXT, b"fine")  # "bad" raised before its echo
    assert srv.wait_log(lambda t: "sendRaw: a text payload must be valid UTF-8" in t, timeout=3), srv.log()


def test_raw_handlers_that_wait_raise_and_keep_order(server):
    """The raw handler runs in a coroutine C resumes itself: one that waits on I/O (a timer)
    is finished later by the scheduler, one that raises is logged, and each client's messages
    are still handled in arrival order, also with more waiting handlers at once than the idle
    pool keeps (64); a part cut from a valid text is checked again (sendRaw), the text itself
    is not; a send to a client that does not exist answers false."""
    app = """return { raw = function(clientId, payload, isBinary)
      local mw = require("moonwire")
      if payload:sub(1, 5) == "sleep" then mw.timer:sleep(0.2); payload = "slept " .. payload end
      if payload == "raise" then error("raised on purpose") end
      if payload == "cut" then
        local ok, err = pcall(mw.webSocketServer.sendRaw, mw.webSocketServer, clientId, ("\\u{e9}"):sub(1, 1), false)
        payload = ok and "cut sent" or "cut refused"
      end
      if payload == "bad args" then
        local _, e1 = pcall(mw.webSocketServer.sendRaw, mw.webSocketServer, 42, "x")
        local _, e2 = pcall(mw.webSocketServer.sendRaw, mw.webSocketServer, clientId, {})
        payload = tostring(e1) .. " | " .. tostring(e2)
      end
      if payload == "unknown" then
        local sent = mw.webSocketServer:sendRaw("no-such-client", "x", false)
        local sent_binary = mw.webSocketServer:sendRaw(string.rep("0", #clientId), "\255", true)
        payload = "unknown " .. tostring(sent) .. " " .. tostring(sent_binary)
      end
      mw.webSocketServer:sendRaw(clientId, payload, isBinary)
    end }
    """
    srv = server(app_lua=app)
    clients = [mwtest.RawWS(srv.port, read_connected=False) for _ in range(80)]
    for i, ws in enumerate(clients):
        ws.send_frame(OP_TEXT, f"sleep {i}".encode())
        ws.send_frame(OP_TEXT, b"raise")
        ws.send_frame(OP_TEXT, f"after {i}".encode())
    for i, ws in enumerate(clients):
        assert ws.recv_message(timeout=30) == (OP_TEXT, f"slept sleep {i}".encode())
        assert ws.recv_message(timeout=30) == (OP_TEXT, f"after {i}".encode())
    ws = clients[0]
    ws.send_frame(OP_TEXT, b"cut")
    assert ws.recv_message(timeout=10) == (OP_TEXT, b"cut refused")
    ws.send_frame(OP_TEXT, b"bad args")
    op, text = ws.recv_message(timeout=10)
    assert text.decode() == ("sendRaw: clientId must be a string, got number | "
                             "sendRaw: payload must be a string, got table"), text
    ws.send_frame(OP_TEXT, b"unknown")  # no such client: false, nothing raised
    assert ws.recv_message(timeout=10) == (OP_TEXT, b"unknown false false")
    ws.send_frame(OP_TEXT, "é ok".encode())
    assert ws.recv_message(timeout=10) == (OP_TEXT, "é ok".encode())
    assert srv.wait_log(lambda t: t.count("raised on purpose") >= 80, timeout=10), srv.log()[-2000:]


def test_raw_messages_of_one_read_each_get_their_own_time_limit(server):
    """Raw messages that arrive in one read run as one batch (one resume of one coroutine), but
    each still has limits.handlerTimeout to itself: three messages of 0.5 s of Lua each, sent
    in one write, all finish under a 1 s limit, in order; a message that really takes longer
    still gets the timeout."""
    app = """
    -- jit.off: the loop runs in LuaJIT's interpreter, where the time limit can stop it
    local function work(seconds) local t = os.clock() while os.clock() - t < seconds do end end
    jit.off(work)
    return {
      limits = { handlerTimeout = 1 },
      raw = function(clientId, payload, isBinary)
        local seconds = tonumber(payload:match("^work (%S+)"))
        if seconds then work(seconds) end
        require("moonwire").webSocketServer:sendRaw(clientId, "done " .. payload, isBinary)
      end }
    """
    srv = server(app_lua=app)
    ws = mwtest.RawWS(srv.port, read_connected=False, timeout=30)
    ws.send_raw(b"".join(build_frame(OP_TEXT, f"work 0.5 #{i}") for i in range(3)))
    for i in range(3):
        assert ws.recv_message(timeout=30) == (OP_TEXT, f"done work 0.5 #{i}".encode())
    assert "timed out" not in srv.log()
    ws.send_raw(build_frame(OP_TEXT, "work 3") + build_frame(OP_TEXT, "after"))
    assert ws.recv_message(timeout=30) == (OP_TEXT, b"done after")
    assert srv.wait_log(lambda t: "timed out" in t, timeout=10), srv.log()[-2000:]


def test_a_memory_hog_in_a_batch_skips_no_other_message(server):
    """A raw message that runs past limits.luaMemory fails alone: the messages that came in the
    same read before and after it are each handled once, in order, and the worker keeps
    serving (twice: the memory is given back)."""
    app = """return {
      limits = { handlerTimeout = 5, luaMemory = 67108864 },
      raw = function(clientId, payload, isBinary)
        if payload == "hog" then
          local t = {} for i = 1, 1e8 do t[i] = string.rep("x", 64) .. i end
        end
        require("moonwire").webSocketServer:sendRaw(clientId, "got " .. payload, isBinary)
      end }
    """
    srv = server(app_lua=app)
    ws = mwtest.RawWS(srv.port, read_connected=False, timeout=30)
    old = srv.worker_pids()
    for round_ in range(2):
        names = [f"{round_}a", f"{round_}b", "hog", f"{round_}c", f"{round_}d"]
        ws.send_raw(b"".join(build_frame(OP_TEXT, name) for name in names))
        for name in names:
            if name != "hog":
                assert ws.recv_message(timeout=30) == (OP_TEXT, f"got {name}".encode())
        assert srv.wait_log(lambda t: t.count("not enough memory") >= round_ + 1, timeout=10), srv.log()[-2000:]
    ws.send_frame(OP_TEXT, b"after")
    assert ws.recv_message(timeout=10) == (OP_TEXT, b"got after")
    assert srv.worker_pids() == old


def test_a_batch_of_text_and_binary_keeps_each_kind_past_a_raise(server):
    """Text and binary messages in one read, with raising ones among them: every other message
    comes back once, in order, each in a frame of its own kind (the batch goes on after the
    message that raised with the right kind for each)."""
    app = """return { raw = function(clientId, payload, isBinary)
      if payload == "raise" or payload == "\0raise" then error("raised on purpose") end
      require("moonwire").webSocketServer:sendRaw(clientId, payload, isBinary)
    end }
    """
    srv = server(app_lua=app)
    ws = mwtest.RawWS(srv.port, read_connected=False, timeout=30)
    sent = [(OP_TEXT, b"t1"), (OP_BINARY, b"\xff1"), (OP_TEXT, b"raise"), (OP_BINARY, b"\xff2"),
            (OP_TEXT, b"t2"), (OP_BINARY, b"\0raise"), (OP_TEXT, b"t3"), (OP_BINARY, b"\xff3")]
    ws.send_raw(b"".join(build_frame(op, data) for op, data in sent))
    for op, data in sent:
        if not data.endswith(b"raise"):
            assert ws.recv_message(timeout=30) == (op, data)
    assert srv.wait_log(lambda t: t.count("raised on purpose") >= 2, timeout=10), srv.log()[-2000:]
