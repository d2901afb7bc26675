"""The container image (Dockerfile): builds it with podman and checks it end to end.

Run: /usr/bin/python3 -m pytest tests/container   (ctest: the `container` test, normal build only)

The machine reaches no registry: ../shared/tools/container-env (beside the repo) installs podman
and builds a local debian:bookworm-slim; its environment is imported here ($MW_CONTAINER_ENV
names another script). Without it, or when it fails, every test is skipped with the reason.
Every wait is bounded; only 127.0.0.1 is used. Takes ~80 s on a fresh machine (container-env
~40 s, image build ~35 s), under 10 s with podman's layer cache.
"""
import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

try:
    import websockets
except ImportError:  # the python3 on PATH may lack it: run with /usr/bin/python3
    websockets = None

ROOT = Path(__file__).resolve().parents[2]
CONTAINER_ENV = Path(os.environ.get("MW_CONTAINER_ENV", ROOT.parent / "shared" / "tools" / "container-env"))
IMAGE = os.environ.get("MW_CONTAINER_IMAGE", "localhost/moonwire:ctest")
BUILD_TIMEOUT = 1200
_names = itertools.count()


def _prepare_engine():
    """Runs container-env like `eval "$(container-env)"` and returns the resulting environment,
    or (None, reason)."""
    if websockets is None:
        return None, "python3-websockets is missing (run with Debian's /usr/bin/python3)"
    if not CONTAINER_ENV.exists():
        return None, f"{CONTAINER_ENV} not found: no way to prepare a container engine here"
    script = 'out=$("$1") || exit 1; eval "$out"; env -0'
    try:
        res = subprocess.run(["bash", "-c", script, "container-env", str(CONTAINER_ENV)], cwd=ROOT,
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=1200)
    except subprocess.TimeoutExpired:
        return None, "container-env did not finish within 1200 s"
    if res.returncode != 0:
        tail = res.stderr.decode(errors="replace").strip().splitlines()[-5:]
        return None, f"container-env failed (exit {res.returncode}): " + " | ".join(tail)
    env = dict(item.split("=", 1) for item in res.stdout.decode(errors="replace").split("\0") if "=" in item)
    env = {k: v for k, v in env.items() if not k.startswith("MOONWIRE_")}
    if not shutil.which("podman", path=env.get("PATH")):
        return None, "no container engine: podman is not installed"
    return env, None


@pytest.fixture(scope="session")
def engine_env():
    started = time.monotonic()
    env, reason = _prepare_engine()
    if env is None:
        pytest.skip(reason)
    print(f"\ncontainer-env: {time.monotonic() - started:.1f} s")
    return env


def podman(env, *args, timeout=60, check=True):
    res = subprocess.run(["podman", *map(str, args)], env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args))} failed ({res.returncode}):\n"
                             f"{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture(scope="session")
def build_result(engine_env):
    """Builds the image once per session (docker format: OCI images drop HEALTHCHECK);
    returns (ok, report)."""
    started = time.monotonic()
    res = podman(engine_env, "build", "--format", "docker", "--layers", "-t", IMAGE, ROOT,
                 timeout=BUILD_TIMEOUT, check=False)
    took = time.monotonic() - started
    if res.returncode != 0:
        return False, f"podman build failed after {took:.0f} s:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    size = podman(engine_env, "image", "inspect", IMAGE, "--format", "{{.Size}}").stdout.strip()
    report = f"image {IMAGE}: built in {took:.1f} s, {int(size) / 1e6:.1f} MB"
    print("\n" + report)
    return True, report


@pytest.fixture(scope="session")
def image(build_result):
    if not build_result[0]:
        pytest.skip("the image did not build (see test_image_builds)")
    return IMAGE


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=2.0):
    """(status, body) of GET http://127.0.0.1:PORT/PATH."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Container:
    """One detached container; removed at exit. `port` is the published host port."""

    def __init__(self, env, image_name, port, run_opts=()):
        self.env = env
        self.name = f"mwtest-{os.getpid()}-{next(_names)}"
        self.port = port
        self.run_opts = list(run_opts)
        self.image = image_name

    def __enter__(self):
        podman(self.env, "run", "-d", "--name", self.name, *self.run_opts, self.image, timeout=60)
        return self

    def __exit__(self, *exc):
        podman(self.env, "rm", "-f", "-t", "0", self.name, timeout=60, check=False)

    def logs(self):
        res = podman(self.env, "logs", self.name, timeout=30, check=False)
        return res.stdout + res.stderr

    def inspect(self, fmt):
        return podman(self.env, "inspect", self.name, "--format", fmt, timeout=30).stdout.strip()

    def wait_healthy(self, path="/health", timeout=20.0):
        """Polls /health through the published port until 200; returns the decoded body."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.inspect("{{.State.Running}}") != "true":
                raise AssertionError(f"container exited ({self.inspect('{{.State.ExitCode}}')}):\n{self.logs()}")
            try:
                status, body = http_get(self.port, path)
                if status == 200:
                    return json.loads(body)
                last = f"status {status}"
            except (OSError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise AssertionError(f"no 200 from {path} on port {self.port} within {timeout} s ({last}):\n{self.logs()}")


def published(port, container_port=8080):
    return ["-p", f"127.0.0.1:{port}:{container_port}"]


# --------------------------------------------------------------------------- websocket helpers

async def _recv_json(ws, timeout=5.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _recv_until(ws, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        msg = await _recv_json(ws, max(0.1, deadline - time.monotonic()))
        if pred(msg):
            return msg


def _connect(port, path="/ws"):
    return websockets.connect(f"ws://127.0.0.1:{port}{path}", open_timeout=5, close_timeout=2)


async def _greet(port, text, path="/ws"):
    """hello/greet from hello-world: the reply and the greeting broadcast back to the sender."""
    async with _connect(port, path) as ws:
        connected = await _recv_json(ws)
        assert connected["action"] == "connected", connected
        await ws.send(json.dumps({"type": "hello", "action": "greet", "requestId": 7,
                                  "data": {"name": "Ada", "message": text}}))
        greeting = await _recv_until(ws, lambda m: m.get("action") == "greeting")
        reply = await _recv_until(ws, lambda m: m.get("requestId") == 7)
        return greeting, reply


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# --------------------------------------------------------------------------- tests

def test_image_builds(build_result):
    ok, report = build_result
    assert ok, report


def test_image_config(engine_env, image):
    data = json.loads(podman(engine_env, "image", "inspect", image).stdout)[0]
    cfg = data["Config"]
    user = cfg.get("User") or cfg.get("user") or ""
    assert user and user.split(":")[0] not in ("0", "root"), f"image runs as {user!r}"
    ports = cfg.get("ExposedPorts") or cfg.get("exposedPorts") or {}
    assert "8080/tcp" in ports, cfg
    health = data.get("Healthcheck") or data.get("HealthCheck") or cfg.get("Healthcheck")
    assert health and health.get("Test") and "/health" in " ".join(health["Test"]), cfg
    assert (cfg.get("StopSignal") or cfg.get("stopSignal")) == "SIGTERM", cfg
    uid = podman(engine_env, "run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()
    assert uid != "0", uid
    # arguments after the image are moonwire's: `check` compiles the app in /app
    res = podman(engine_env, "run", "--rm", image, "check", timeout=60, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_runtime_image_has_no_toolchain(engine_env, image):
    script = ("for f in /usr/bin/gcc /usr/bin/cc /usr/bin/cmake /usr/bin/make /usr/include/uv.h "
              "/usr/include/luajit-2.1 /usr/include/hiredis /usr/include/sqlite3.h; do "
              "  [ -e $f ] && echo found $f; done; "
              "dpkg-query -W -f '${Package}\\n' | grep -E -- '-dev$|^(gcc|cpp|g\\+\\+)(-[0-9]+)?$|^(binutils|make|cmake)$' || true; "
              "moonwire version")
    out = podman(engine_env, "run", "--rm", "--entrypoint", "bash", image, "-c", script).stdout
    lines = out.strip().splitlines()
    # `moonwire version` prints its own version, then one line per library it runs on
    first = next((i for i, line in enumerate(lines) if line.startswith("moonwire ")), None)
    assert first is not None and any(line.startswith("libuv ") for line in lines[first:]), out
    assert lines[:first] == [], f"build tools or headers in the runtime image:\n{out}"


def test_serves_health_websocket_and_page(engine_env, image):
    port = free_port()
    with Container(engine_env, image, port, run_opts=published(port)) as c:
        health = c.wait_healthy()
        assert health["status"] == "ok", health
        greeting, reply = run(_greet(port, "hi from the host"))
        assert greeting["data"]["message"] == "hi from the host", greeting
        assert reply["response"] == {"success": True}, reply
        status, body = http_get(port, "/")
        assert status == 200 and b"<html" in body.lower(), body[:200]  # hello-world's page
        assert c.inspect("{{.State.Pid}}") != "0"
        cmdline = podman(engine_env, "exec", c.name, "cat", "/proc/1/cmdline").stdout
        assert cmdline.split("\0")[:2] == ["moonwire", "serve"], f"PID 1 is {cmdline!r}"
        # the image's HEALTHCHECK itself (podman runs it on demand; no systemd timer needed)
        hc = podman(engine_env, "healthcheck", "run", c.name, check=False, timeout=30)
        assert hc.returncode == 0, f"HEALTHCHECK failed: {hc.stdout} {hc.stderr}"


def _write_app(root, files):
    root.mkdir(mode=0o755)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)
    for d in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        d.chmod(0o755)  # the server runs as uid 10001 inside the container
    return root


ECHO_CONTROLLER = """
local Echo = {}
function Echo:say(clientId, data) return { echoed = data } end
function Echo:store(clientId, data)
  assert(self.database:exec("CREATE TABLE IF NOT EXISTS notes(text TEXT)"))
  local r = assert(self.database:exec("INSERT INTO notes(text) VALUES (?)", data.text))
  return { id = r.lastInsertId }
end
return Echo
"""


def test_mounted_app_replaces_hello_world(engine_env, image, tmp_path):
    """A read-only app at /app, its database in /data (README: the mounted-app recipe)."""
    app = _write_app(tmp_path / "app", {"controllers/echo.lua": ECHO_CONTROLLER,
                                        "app.lua": "return { path = '/socket' }\n"})
    port = free_port()
    opts = [*published(port), "-v", f"{app}:/app:ro", "-e", "MOONWIRE_DATABASE_URL=sqlite:/data/app.db"]
    with Container(engine_env, image, port, run_opts=opts) as c:
        c.wait_healthy()

        async def talk():
            async with _connect(port, "/socket") as ws:
                await _recv_json(ws)
                await ws.send(json.dumps({"type": "echo", "action": "say", "requestId": 1, "data": {"a": [1, 2]}}))
                echoed = await _recv_until(ws, lambda m: m.get("requestId") == 1)
                await ws.send(json.dumps({"type": "echo", "action": "store", "requestId": 2, "data": {"text": "x"}}))
                stored = await _recv_until(ws, lambda m: m.get("requestId") == 2)
                await ws.send(json.dumps({"type": "hello", "action": "greet", "requestId": 3, "data": {"message": "hi"}}))
                hello = await _recv_until(ws, lambda m: m.get("type") == "error")
                return echoed, stored, hello

        echoed, stored, hello = run(talk())
        assert echoed["response"] == {"echoed": {"a": [1, 2]}}, echoed
        assert stored["response"] == {"id": 1}, stored
        assert hello["data"]["code"] == "not_found", hello  # hello-world is gone
        status, _ = http_get(port, "/")
        assert status == 404  # the mounted app has no public/


def test_configuration_by_environment(engine_env, image):
    port = free_port()
    env_opts = ["-e", "MOONWIRE_PORT=9000", "-e", "MOONWIRE_PATH=/live", "-e", "MOONWIRE_LOG_FORMAT=json",
                "-e", "MOONWIRE_LOG_LEVEL=debug"]
    with Container(engine_env, image, port, run_opts=[*published(port, 9000), *env_opts]) as c:
        c.wait_healthy()
        greeting, _ = run(_greet(port, "env", path="/live"))
        assert greeting["data"]["message"] == "env"
        records = [json.loads(line) for line in c.logs().splitlines() if line.startswith("{")]
        assert records, c.logs()
        assert any(r.get("level", "").lower() == "debug" for r in records), c.logs()[:2000]
        hc = podman(engine_env, "healthcheck", "run", c.name, check=False, timeout=30)
        assert hc.returncode == 0, f"HEALTHCHECK does not follow MOONWIRE_PORT: {hc.stdout} {hc.stderr}"
    # flags after the image name reach `serve`; --workers 2 without Redis is refused (exit 1)
    res = podman(engine_env, "run", "--rm", image, "--workers", "2", timeout=60, check=False)
    assert res.returncode == 1 and "--redis" in res.stderr, (res.returncode, res.stderr)


def test_sigterm_drains_and_exits_zero(engine_env, image):
    port = free_port()
    with Container(engine_env, image, port, run_opts=published(port)) as c:
        c.wait_healthy()

        async def stop_while_connected():
            async with _connect(port) as ws:
                await _recv_json(ws)
                started = time.monotonic()
                stop = await asyncio.create_subprocess_exec(
                    "podman", "stop", "-t", "10", c.name, env=engine_env,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                except websockets.ConnectionClosed:
                    pass
                await asyncio.wait_for(stop.wait(), 15)
                return ws.close_code, time.monotonic() - started, stop.returncode

        code, took, stop_rc = run(stop_while_connected(), timeout=40)
        assert stop_rc == 0
        assert code == 1001, f"client closed with {code}"
        exit_code = c.inspect("{{.State.ExitCode}}")
        assert exit_code == "0", f"exit code {exit_code}:\n{c.logs()}"
        assert took < 5.0, f"podman stop took {took:.1f} s"
        assert "SIGTERM" in c.logs()


@pytest.fixture
def redis_port(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def test_two_replicas_share_redis(engine_env, image, redis_port):
    """examples/compose.yaml in small: two containers, one Redis, a broadcast crosses over.
    Host networking keeps everything on 127.0.0.1 (the host's Redis)."""
    ports = [free_port(), free_port()]
    redis_url = f"redis://127.0.0.1:{redis_port}/0"

    def replica(port, workers):
        return Container(engine_env, image, port, run_opts=[
            "--network", "host", "-e", "MOONWIRE_HOST=127.0.0.1", "-e", f"MOONWIRE_PORT={port}",
            "-e", f"MOONWIRE_REDIS_URL={redis_url}", "-e", f"MOONWIRE_WORKERS={workers}"])

    with replica(ports[0], 1) as a, replica(ports[1], 2) as b:
        a.wait_healthy()
        b.wait_healthy()

        async def cross():
            async with _connect(ports[0]) as listener:
                await _recv_json(listener)
                greeting, _ = await _greet(ports[1], "across replicas")
                assert greeting["data"]["message"] == "across replicas"
                return await _recv_until(listener, lambda m: m.get("action") == "greeting", timeout=10)

        got = run(cross())
        assert got["data"]["message"] == "across replicas", got
