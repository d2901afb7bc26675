"""The examples stay working: each is served by the real binary and driven by a real client
(the chat example by its own smoke test, two python3-websockets clients)."""
import subprocess
import sys
from pathlib import Path

import mwtest
from test_cluster import redis_url  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[2]


def run_chat_smoke(tmp_path, extra_args=()):
    port = mwtest.free_port()
    workdir = tmp_path / "run"
    workdir.mkdir()
    srv = mwtest.Server(ROOT / "examples" / "chat", port,
                        ["--host", "127.0.0.1", "--port", str(port), "--database", f"sqlite:{tmp_path / 'chat.db'}",
                         *extra_args],
                        mwtest.clean_env(None), workdir)
    srv.spawn()
    try:
        srv.wait_ready()
        out = subprocess.run([sys.executable, str(ROOT / "examples" / "chat" / "smoke_test.py"), srv.ws_url],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr + srv.log()
    finally:
        problems = srv.stop()
    assert not problems, problems
    assert not srv.sanitizer_report()


def test_chat_example_smoke(tmp_path):
    run_chat_smoke(tmp_path)


def test_chat_example_smoke_two_workers_on_redis(tmp_path, redis_url):
    """The same checks when the clients land on two workers: presence, join/leave events,
    nicknames (getClient of another worker's client) and recovery go through Redis."""
    run_chat_smoke(tmp_path, ["--workers", "2", "--redis", redis_url])


def test_hello_world_example_greets_everyone(tmp_path):
    port = mwtest.free_port()
    workdir = tmp_path / "run"
    workdir.mkdir()
    srv = mwtest.Server(ROOT / "examples" / "hello-world", port,
                        ["--host", "127.0.0.1", "--port", str(port)], mwtest.clean_env(None), workdir)
    srv.spawn()
    try:
        srv.wait_ready()
        a, b = mwtest.RawWS(port), mwtest.RawWS(port)
        a.send_json({"type": "hello", "action": "greet", "data": {"name": "Ada", "message": "hi"}, "requestId": 1})
        seen_a = [a.recv_json(), a.recv_json()]
        greeting = b.recv_json()
        assert greeting["type"] == "hello" and greeting["action"] == "greeting"
        assert greeting["data"]["name"] == "Ada" and greeting["data"]["message"] == "hi"
        assert {"type": "hello", "action": "greet", "response": {"success": True}, "requestId": 1} in seen_a
        a.send_json({"type": "hello", "action": "greet", "data": {"name": "Ada"}, "requestId": 2})
        err = a.recv_json()
        assert err["type"] == "error" and err["data"]["code"] == "invalid", err
        a.close()
        b.close()
    finally:
        problems = srv.stop()
    assert not problems, problems


def test_ticker_example_two_workers_one_publisher(tmp_path, redis_url):
    port = mwtest.free_port()
    workdir = tmp_path / "run"
    workdir.mkdir()
    srv = mwtest.Server(ROOT / "examples" / "ticker", port,
                        ["--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--redis", redis_url],
                        mwtest.clean_env(None), workdir)
    srv.spawn()
    try:
        srv.wait_ready()
        out = subprocess.run([sys.executable, str(ROOT / "examples" / "ticker" / "smoke_test.py"),
                              "--workers", "2", "--seconds", "3", srv.ws_url],
                             capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stdout + out.stderr + srv.log()
    finally:
        problems = srv.stop()
    assert not problems, problems
