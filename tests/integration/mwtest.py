"""Helpers for the moonwire integration tests: the server process, a raw
WebSocket client that can send broken frames, raw HTTP, and /proc lookups.

Everything here blocks with a bounded timeout; nothing waits forever.
"""
import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,}$")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
# How long to wait for something that should happen (a frame, a log line, a state). Generous,
# so that a busy machine or a sanitizer build is not a failure: waits end as soon as it happens.
POSITIVE_WAIT = 15.0

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


def moonwire_bin():
    """The binary under test: $MOONWIRE_BIN (relative to the repo root) or build/moonwire."""
    value = os.environ.get("MOONWIRE_BIN")
    path = Path(value) if value else ROOT / "build" / "moonwire"
    if not path.is_absolute():
        path = ROOT / path
    return path


def is_sanitized():
    """True for the ASan build: its quarantine of freed memory makes RSS figures meaningless."""
    try:
        out = subprocess.run(["ldd", str(moonwire_bin())], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "libasan" in out


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """The test's environment minus every MOONWIRE_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOONWIRE_")}
    env.update(extra or {})
    return env


def run_cli(args, app_env=None, timeout=20, cwd=None):
    """Run `moonwire ARGS` to completion; returns (rc, stdout, stderr)."""
    proc = subprocess.Popen([str(moonwire_bin()), *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=clean_env(app_env), cwd=cwd or "/", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid)
        out, err = proc.communicate(timeout=5)
        raise AssertionError(f"moonwire {' '.join(map(str, args))} did not exit within {timeout}s\n"
                             f"stdout: {out.decode(errors='replace')}\nstderr: {err.decode(errors='replace')}")
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _killpg(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid):
    """Whether a live (not zombie) process is left in the group. Where PID 1 does not reap (a
    container running the tests), killed workers stay zombies: they are dead all the same."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(entry)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def make_app(dest, app_lua=None, files=None, template="basic"):
    """Copy apps/TEMPLATE to dest, then write app.lua and extra files into it."""
    shutil.copytree(APPS / template, dest)
    if app_lua is not None:
        (dest / "app.lua").write_text(app_lua)
    for rel, content in (files or {}).items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return dest


# --------------------------------------------------------------------------- server

class Server:
    """One `moonwire serve` process (the supervisor) and its log files."""

    def __init__(self, app_dir, port, args, env, workdir, path="/ws"):
        self.app_dir = Path(app_dir)
        self.port = port
        self.path = path
        self.args = list(args)
        self.env = env
        self.workdir = Path(workdir)
        self.stderr_path = self.workdir / "stderr.log"
        self.stdout_path = self.workdir / "stdout.log"
        self.proc = None
        self.clients = []
        self.returncode = None

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}{self.path}"

    def spawn(self):
        cmd = [str(moonwire_bin()), "serve", str(self.app_dir), *self.args]
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=self.env, cwd=str(self.workdir),
                                     start_new_session=True)
        return self

    def log(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def output(self):
        return self.stdout() + self.log()

    def wait_log(self, predicate, timeout=POSITIVE_WAIT):
        """Poll the stderr log until predicate(text) is true; returns the text (or None).

        Waits at least POSITIVE_WAIT: this is for what should happen, and returns as soon as it
        does, so only a failing test pays for the margin."""
        deadline = time.monotonic() + max(timeout, POSITIVE_WAIT)
        while True:
            text = self.log()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"moonwire exited with {self.proc.returncode} before it was ready\n"
                                     f"--- stderr ---\n{self.log()}\n--- stdout ---\n{self.stdout()}")
            try:
                resp = http_get(self.port, "/health", timeout=1.0)
                if resp.status == 200:
                    self._settle_ready(deadline)
                    return resp
                last = f"status {resp.status}"
            except (OSError, EOFError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.05)
        raise AssertionError(f"moonwire not ready on port {self.port} within {timeout}s ({last})\n"
                             f"--- stderr ---\n{self.log()}")

    def _settle_ready(self, deadline):
        """With Redis configured, /ready turns 200 once the worker's Redis connections are up: wait
        for it (a busy machine connects late) so a test's first queue:add or cluster call does not
        race the connect. Tests that start with Redis down simply run out this bounded wait."""
        if "redis" not in " ".join(map(str, self.args)) and not (self.env or {}).get("MOONWIRE_REDIS_URL"):
            return
        deadline = min(deadline, time.monotonic() + 10)
        while time.monotonic() < deadline:
            try:
                if http_get(self.port, "/ready", timeout=1.0).status == 200:
                    return
            except (OSError, EOFError, ValueError):
                pass
            time.sleep(0.05)

    def wait_exit(self, timeout=10.0):
        """Wait for the supervisor to exit by itself; returns its exit code (None on timeout)."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def http(self, path, method="GET", headers=None, timeout=5.0):
        return http_get(self.port, path, method=method, headers=headers, timeout=timeout)

    def client(self, path=None, **kw):
        """A connected RawWS whose `connected` frame was read; closed at teardown."""
        c = RawWS(self.port, path or self.path, **kw)
        self.clients.append(c)
        return c

    def raw_socket(self, timeout=5.0):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        self.clients.append(s)
        return s

    def worker_pids(self):
        return children(self.proc.pid)

    def send_signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal the supervisor and wait for it; kills the group after `timeout`.

        Returns a list of problems (empty when the shutdown was clean)."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                problems.append(f"supervisor did not exit within {timeout}s of {signal.Signals(sig).name}")
                _killpg(self.proc.pid)
                self.proc.wait(timeout=5)
        self.returncode = self.proc.returncode
        deadline = time.monotonic() + 3
        while _group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(self.proc.pid):
            problems.append("worker processes outlived the supervisor")
            _killpg(self.proc.pid)
        for f in (self._err, self._out):
            f.close()
        return problems

    def close_clients(self):
        for c in self.clients:
            try:
                c.close()
            except OSError:
                pass
        self.clients = []

    def sanitizer_report(self):
        text = self.log()
        return [m for m in SANITIZER_MARKERS if m in text]


# --------------------------------------------------------------------------- raw HTTP

class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers          # lower-case name -> value (repeats joined by ", ")
        self.body = body
        self.raw_head = raw_head

    @property
    def text(self):
        return self.body.decode(errors="replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.reason} {self.headers} {self.body[:200]!r}>"


class BufferedSocket:
    """A socket with a read buffer; every read has a deadline."""

    def __init__(self, sock, buf=b""):
        self.sock = sock
        self.buf = buf
        self.eof = False

    def _recv_some(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for data from moonwire")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("timed out waiting for data from moonwire")
        except (ConnectionResetError, ConnectionAbortedError):
            data = b""
        if not data:
            self.eof = True
            raise EOFError("moonwire closed the connection")
        self.buf += data

    def read_exact(self, n, deadline):
        while len(self.buf) < n:
            self._recv_some(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, marker, deadline):
        while marker not in self.buf:
            self._recv_some(deadline)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_to_eof(self, deadline):
        try:
            while True:
                self._recv_some(deadline)
        except (EOFError, TimeoutError):
            pass
        out, self.buf = self.buf, b""
        return out

    def wait_eof(self, timeout):
        """True when the peer closes (FIN or RST) within timeout; discards data."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._recv_some(deadline)
                self.buf = b""
            except EOFError:
                return True
            except TimeoutError:
                return False


def read_response(bs, timeout=5.0, head_only=False):
    deadline = time.monotonic() + timeout
    head = bs.read_until(b"\r\n\r\n", deadline)
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    if not m:
        raise ValueError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    status = int(m.group(1))
    body = b""
    if head_only or status == 101 or status == 204 or status == 304:
        pass
    elif "content-length" in headers:
        body = bs.read_exact(int(headers["content-length"]), deadline)
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = bs.read_until(b"\r\n", deadline)
            size = int(size_line.split(b";")[0].strip(), 16)
            chunk = bs.read_exact(size + 2, deadline)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = bs.read_to_eof(min(deadline, time.monotonic() + 2.0))
    return Response(status, m.group(2), headers, body, head)


def http_request(port, raw, timeout=5.0):
    """Send raw bytes on a new connection and read one HTTP response."""
    if isinstance(raw, str):
        raw = raw.encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        return read_response(BufferedSocket(s), timeout=timeout)


def http_get(port, path, method="GET", headers=None, timeout=5.0):
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return http_request(port, "\r\n".join(lines) + "\r\n\r\n", timeout=timeout)


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def upgrade_request(port, path="/ws", key=None, method="GET", version="13", upgrade="websocket",
                    connection="Upgrade", extra=(), omit=()):
    """A WebSocket upgrade request; `omit` drops headers by lower-case name."""
    headers = [("Host", f"127.0.0.1:{port}"), ("Upgrade", upgrade), ("Connection", connection),
               ("Sec-WebSocket-Key", key or new_key()), ("Sec-WebSocket-Version", version)]
    headers += list(extra)
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in omit]
    return "\r\n".join(lines) + "\r\n\r\n"


# --------------------------------------------------------------------------- raw WebSocket

def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, declared_len=None):
    """A client frame; `declared_len` lies about the payload length in the header."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if declared_len is None else declared_len
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    @property
    def close_code(self):
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def __repr__(self):
        return f"<Frame op={self.opcode} fin={self.fin} rsv={self.rsv} {self.payload[:120]!r}>"


class UnexpectedClose(AssertionError):
    pass


class RawWS:
    """A hand-written WebSocket client that can also misbehave on purpose."""

    def __init__(self, port, path="/ws", read_connected=True, pipelined=b"", extra=(), timeout=5.0):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.bs = BufferedSocket(self.sock)
        self.key = new_key()
        self._rid = 0
        self.send_raw(upgrade_request(port, path, key=self.key, extra=extra).encode() + pipelined)
        self.handshake = read_response(self.bs, timeout=timeout, head_only=True)
        if self.handshake.status != 101:
            raise AssertionError(f"upgrade refused: {self.handshake!r}")
        assert self.handshake.headers.get("sec-websocket-accept") == accept_for(self.key), self.handshake
        self.client_id = None
        self.connected = None
        if read_connected:
            self.connected = self.recv_json(timeout)
            assert self.connected.get("type") == "system" and self.connected.get("action") == "connected", \
                self.connected
            self.client_id = self.connected["data"]["clientId"]

    # sending
    def send_raw(self, data, ignore_errors=False):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if not ignore_errors:
                raise

    def send_frame(self, opcode, payload=b"", ignore_errors=False, **kw):
        self.send_raw(build_frame(opcode, payload, **kw), ignore_errors=ignore_errors)

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text, **kw)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    # receiving
    def recv_frame(self, timeout=POSITIVE_WAIT):
        deadline = time.monotonic() + timeout
        b0, b1 = self.bs.read_exact(2, deadline)
        assert not (b1 & 0x80), "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.bs.read_exact(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.bs.read_exact(8, deadline))[0]
        payload = self.bs.read_exact(n, deadline)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload)

    def recv_message(self, timeout=POSITIVE_WAIT):
        """The next text/binary message (answers pings, skips pongs); raises on close."""
        deadline = time.monotonic() + timeout
        parts, opcode = [], None
        while True:
            f = self.recv_frame(max(0.01, deadline - time.monotonic()))
            assert f.rsv == 0, f"server frame with RSV bits: {f!r}"
            if f.opcode == OP_PING:
                self.send_frame(OP_PONG, f.payload, ignore_errors=True)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                raise UnexpectedClose(f"server closed the connection: code {f.close_code} {f.payload[2:]!r}")
            if f.opcode in (OP_TEXT, OP_BINARY):
                assert opcode is None, "new message inside a fragmented one"
                opcode = f.opcode
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def recv_json(self, timeout=POSITIVE_WAIT):
        opcode, data = self.recv_message(timeout)
        assert opcode == OP_TEXT, f"expected a text frame, got opcode {opcode}"
        return json.loads(data.decode("utf-8"))

    def request(self, type_, action, data=None, request_id=None, timeout=POSITIVE_WAIT, with_data=True):
        """Send a message and return the next frame whose type/action match (skips others)."""
        msg = {"type": type_, "action": action}
        if with_data:
            msg["data"] = data
        if request_id is not None:
            msg["requestId"] = request_id
        self.send_json(msg)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.recv_json(max(0.01, deadline - time.monotonic()))
            if reply.get("type") in (type_, "error") and reply.get("requestId", request_id) == request_id:
                return reply

    def assert_served(self, timeout=POSITIVE_WAIT):
        """Round-trip an echo on this already-open connection: the next message must be its reply."""
        self._rid += 1
        rid = f"alive-{self._rid}"
        value = {"still": "served", "n": self._rid}
        self.send_json({"type": "echo", "action": "say", "data": value, "requestId": rid})
        reply = self.recv_json(timeout)
        assert reply == {"type": "echo", "action": "say", "response": value, "requestId": rid}, \
            "an already-connected client must still be served (and get nothing unexpected)"

    def expect_close(self, timeout=POSITIVE_WAIT):
        """Read until the server's close frame; answer it; return its code.

        Afterwards `self.tcp_closed` tells whether the server closed TCP in time."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.recv_frame(max(0.01, deadline - time.monotonic()))
            except EOFError:
                raise AssertionError("connection dropped without a close frame")
            except TimeoutError:
                raise AssertionError(f"no close frame within {timeout}s")
            if f.opcode == OP_CLOSE:
                break
        self.close_frame = f
        self.send_frame(OP_CLOSE, f.payload[:2], ignore_errors=True)
        self.tcp_closed = self.bs.wait_eof(max(0.5, deadline - time.monotonic()))
        return f.close_code

    def wait_eof(self, timeout):
        return self.bs.wait_eof(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------- websockets (asyncio)

_OPEN_WS = []


def arun(coro, timeout=60.0):
    """Run a coroutine to completion with a hard timeout; aborts its websockets at the end."""
    async def bounded():
        try:
            return await asyncio.wait_for(coro, timeout)
        finally:
            for ws in _OPEN_WS:
                ws.transport.abort()
            _OPEN_WS.clear()
    return asyncio.run(bounded())


class WsClient:
    """A python3-websockets connection whose `connected` frame was read."""

    def __init__(self, ws, connected):
        self.ws = ws
        self.connected = connected
        self.client_id = connected["data"]["clientId"]

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def recv(self, timeout=POSITIVE_WAIT):
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def request(self, obj, timeout=POSITIVE_WAIT):
        await self.send(obj)
        return await self.recv(timeout)

    async def expect_nothing(self, seconds=0.3):
        try:
            msg = await asyncio.wait_for(self.ws.recv(), seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected frame {msg!r}")

    async def close(self):
        await self.ws.close()


async def ws_connect(server, path=None, **kw):
    import websockets
    url = f"ws://127.0.0.1:{server.port}{path or server.path}"
    ws = await websockets.connect(url, ping_interval=None, close_timeout=2, open_timeout=5,
                                  max_size=2 ** 22, **kw)
    _OPEN_WS.append(ws)
    first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return WsClient(ws, first)


# --------------------------------------------------------------------------- /proc

def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # comm may contain spaces and parens: split after the last ')'
    return text[text.rindex(")") + 2:].split()


def children(pid):
    """Direct children of pid (scans /proc; works without CONFIG_PROC_CHILDREN)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(entry)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return sorted(kids)


def proc_state(pid):
    try:
        return _stat_fields(pid)[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------- Prometheus text

METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metric_sum(text, name, label_contains=None):
    """Sum of every sample of `name` (all label sets); None when the name is absent."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        if not m or m.group(1) != name:
            continue
        if label_contains and label_contains not in (m.group(2) or ""):
            continue
        seen = True
        total += float(m.group(3))
    return total if seen else None


def wait_until(predicate, timeout=POSITIVE_WAIT, interval=0.05):
    """Polls predicate until it is truthy (returned) or at least POSITIVE_WAIT has passed."""
    deadline = time.monotonic() + max(timeout, POSITIVE_WAIT)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)
