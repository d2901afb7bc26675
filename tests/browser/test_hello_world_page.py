"""Browser smoke test: the hello-world page, loaded in a real headless Chromium, connects to a
real moonwire and shows the `connected` state and the clientId in its feed.

Run: /usr/bin/python3 -m pytest tests/browser   (skipped when /usr/bin/chromium is absent)
It needs nothing but chromium; the interactive tests (two tabs, the browser client itself) are
the node ones next to it: tests/browser/run.sh (ctest browser_client).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")


def moonwire_bin():
    p = Path(os.environ.get("MOONWIRE_BIN", ROOT / "build" / "moonwire"))
    return p if p.is_absolute() else ROOT / p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hello_server(tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([str(moonwire_bin()), "serve", str(ROOT / "examples" / "hello-world"),
                             "--host", "127.0.0.1", "--port", str(port)], stderr=log, stdout=log)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("server did not start: " + (tmp_path / "server.log").read_text())
    yield port, tmp_path / "server.log"
    proc.terminate()
    assert proc.wait(timeout=15) == 0
    log.close()


def dump_dom(url, budget_ms=4000):
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
            capture_output=True, timeout=60)
    return out.stdout.decode("utf-8", "replace")


def test_page_connects_and_shows_client_id(hello_server):
    port, log = hello_server
    # --virtual-time-budget runs ahead of real time while the page idles, so a slow (sanitizer)
    # server can miss it: try again with a larger budget before calling it a failure
    for budget in (4000, 10000, 20000):
        dom = dump_dom(f"http://127.0.0.1:{port}/", budget)
        if 'data-state="connected"' in dom:
            break
    status = re.search(r'<p id="status"[^>]*data-state="(\w+)"[^>]*>([^<]*)<', dom)
    assert status, dom[:2000]
    assert status.group(1) == "connected", status.group(0)
    client_ids = re.findall(r"clientId ([A-Za-z0-9_-]{22})", dom)
    assert client_ids, "the feed shows the clientId of the connected message"
    assert client_ids[0] in log.read_text(), "the server logged the same clientId on connect"
