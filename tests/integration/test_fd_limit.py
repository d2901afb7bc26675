"""Idle sockets cannot silence a worker (limits.maxConnections: connections still in
their HTTP phase count against it too): connections that never send their
upgrade count against the limit, and past it (or out of descriptors) a new client is answered
503 at once instead of waiting for handshakeTimeout; the limit is logged once per interval, not
once per refusal; once the idle sockets go, the server serves normally again.

Waits are generous (the machine may be busy, the build may be ASan) but well below the
handshake timeout, so a silent server fails the test instead of answering 408 late.
"""
import contextlib
import resource
import socket

import pytest

import mwtest
from mwtest import http_get, http_request, upgrade_request, wait_until

HANDSHAKE_TIMEOUT = 20          # seconds; a 408 would come only after this
ANSWER_WAIT = 8.0               # an answer "at once", with room for a busy machine
OPEN_FILE_LIMIT = 256
IDLE = 300                      # more idle sockets than the worker has descriptors
LIMIT_MESSAGE = "connection limit reached"
FDS_MESSAGE = "out of file descriptors"


@contextlib.contextmanager
def open_file_limit(n):
    """Lower this process's soft RLIMIT_NOFILE while the server is spawned (the child inherits
    it at fork), then restore it: the test itself needs more than n sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def ensure_own_sockets(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return
    if hard != resource.RLIM_INFINITY and hard < n:
        pytest.skip(f"the test needs {n} descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def upgrade(srv, timeout=ANSWER_WAIT):
    return http_request(srv.port, upgrade_request(srv.port, srv.path), timeout=timeout)


def admitted(srv):
    """A served RawWS, or None while upgrades are still refused."""
    try:
        c = srv.client(timeout=ANSWER_WAIT)
    except (AssertionError, OSError, EOFError):
        return None
    return c


def idle_sockets(srv, n):
    """n connections that never send a byte (closed at teardown, or by the test)."""
    return [srv.raw_socket(timeout=ANSWER_WAIT) for _ in range(n)]


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


@pytest.mark.slow
def test_idle_sockets_at_the_open_file_limit_cannot_silence_the_worker(server):
    ensure_own_sockets(IDLE + 256)
    with open_file_limit(OPEN_FILE_LIMIT):
        srv = server(app_lua=f"return {{ limits = {{ handshakeTimeout = {HANDSHAKE_TIMEOUT} }} }}\n", wait=False)
    srv.wait_ready(timeout=30)
    worker = srv.worker_pids()[0]
    with open(f"/proc/{worker}/limits") as f:
        assert any(l.startswith("Max open files") and f" {OPEN_FILE_LIMIT} " in l for l in f), \
            "the worker must run under the lowered open-file limit"
    w = srv.client(timeout=ANSWER_WAIT)

    idle = idle_sockets(srv, IDLE)

    # a new client's upgrade is answered at once (503: there is no room), never left in silence
    resp = upgrade(srv)
    assert resp.status == 503, resp
    assert resp.headers.get("connection", "").lower() == "close", resp
    health = http_get(srv.port, "/health", timeout=ANSWER_WAIT)
    assert health.status in (200, 503), health

    # the limit is logged, naming what to do, once per interval: not once per refused socket
    log = srv.wait_log(lambda t: LIMIT_MESSAGE in t, timeout=ANSWER_WAIT)
    assert log, "hitting the connection limit must be logged"
    warnings = [l for l in log.splitlines() if LIMIT_MESSAGE in l or FDS_MESSAGE in l]
    assert 1 <= len(warnings) <= 3, warnings
    assert "ulimit -n" in warnings[0] and "maxConnections" in warnings[0], warnings[0]
    assert "accept failed" not in log
    assert srv.proc.poll() is None

    # the idle sockets leave: the server serves normally again
    close_all(idle)
    c = wait_until(lambda: admitted(srv), timeout=15, interval=0.2)
    assert c, "after the idle sockets closed, an upgrade must succeed again"
    c.assert_served()
    assert http_get(srv.port, "/health", timeout=ANSWER_WAIT).status == 200
    metrics = http_get(srv.port, "/metrics", timeout=ANSWER_WAIT).text
    refused = mwtest.metric_sum(metrics, "moonwire_connections_refused_total", 'reason="max_connections"')
    assert refused and refused >= 1, "refusals at the limit are counted"
    w.assert_served()


def test_max_connections_counts_connections_still_in_their_http_phase(server):
    srv = server(app_lua=f"return {{ limits = {{ maxConnections = 3, handshakeTimeout = {HANDSHAKE_TIMEOUT} }} }}\n")
    w = srv.client(timeout=ANSWER_WAIT)
    idle = idle_sockets(srv, 2)         # with the witness: 3 connections, none upgraded but one

    for _ in range(3):
        resp = upgrade(srv)
        assert resp.status == 503, f"idle sockets count against maxConnections: expected 503, got {resp!r}"
        assert b"Connection limit" in resp.body, resp
    # plain HTTP needs a connection too
    assert http_get(srv.port, "/health", timeout=ANSWER_WAIT).status == 503
    w.assert_served()

    # an idle socket leaving frees its slot
    idle[0].close()
    c = wait_until(lambda: admitted(srv), timeout=10, interval=0.1)
    assert c, "a slot must free up when an HTTP-phase connection closes"
    c.assert_served()
    assert upgrade(srv).status == 503
    log = srv.wait_log(lambda t: LIMIT_MESSAGE in t, timeout=ANSWER_WAIT)
    assert log and len([l for l in log.splitlines() if LIMIT_MESSAGE in l]) <= 3
    w.assert_served()


HOG_CONTROLLER = """
-- holds every descriptor the worker can still open, until told to let go
local Hog = {}
local held = {}
function Hog:open(clientId, data)
  while true do
    local f = io.open("/dev/null", "r")
    if not f then break end
    held[#held + 1] = f
  end
  return #held
end
function Hog:release(clientId, data)
  local n = #held
  for i = n, 1, -1 do held[i]:close(); held[i] = nil end
  return n
end
return Hog
"""


@pytest.mark.slow
def test_out_of_descriptors_a_new_client_is_answered_503_from_the_reserve(server):
    # maxConnections is not reached here: the worker itself used up its descriptors, so accept
    # fails with EMFILE and the reserve descriptor is what lets it answer
    with open_file_limit(OPEN_FILE_LIMIT):
        srv = server(app_lua=f"return {{ limits = {{ handshakeTimeout = {HANDSHAKE_TIMEOUT} }} }}\n",
                     files={"controllers/hog.lua": HOG_CONTROLLER}, wait=False)
    srv.wait_ready(timeout=30)
    w = srv.client(timeout=ANSWER_WAIT)
    held = w.request("hog", "open", request_id=1, timeout=ANSWER_WAIT)
    assert held.get("response", 0) > 100, held

    for _ in range(5):
        resp = upgrade(srv)
        assert resp.status == 503, resp
        assert b"Out of file descriptors" in resp.body, resp
    assert http_get(srv.port, "/health", timeout=ANSWER_WAIT).status == 503
    log = srv.wait_log(lambda t: FDS_MESSAGE in t, timeout=ANSWER_WAIT)
    assert log, "running out of descriptors must be logged"
    warnings = [l for l in log.splitlines() if FDS_MESSAGE in l]
    assert len(warnings) <= 3 and "ulimit -n" in warnings[0], warnings
    assert srv.proc.poll() is None

    released = w.request("hog", "release", request_id=2, timeout=ANSWER_WAIT)
    assert released.get("response") == held["response"], released
    c = wait_until(lambda: admitted(srv), timeout=15, interval=0.2)
    assert c, "once descriptors are free again, an upgrade must succeed"
    c.assert_served()
    metrics = http_get(srv.port, "/metrics", timeout=ANSWER_WAIT).text
    refused = mwtest.metric_sum(metrics, "moonwire_connections_refused_total", 'reason="open_files"')
    assert refused and refused >= 6, metrics
    w.assert_served()
