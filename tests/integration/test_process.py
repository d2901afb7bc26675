"""Process model: supervisor + worker, worker replacement, shutdown."""
import os
import signal
import socket
import time

import pytest

from mwtest import BufferedSocket, RawWS, proc_state, read_response, upgrade_request, wait_until


def test_serve_is_a_supervisor_with_one_worker(server):
    srv = server()
    w = srv.client()
    workers = srv.worker_pids()
    assert len(workers) == 1, f"expected one worker child of {srv.proc.pid}, got {workers}"
    w.assert_served()


def _wait_new_worker(srv, old, timeout):
    def replaced():
        now = srv.worker_pids()
        live = [p for p in now if p != old and proc_state(p) not in (None, "Z")]
        return live if len(live) == 1 else None
    return wait_until(replaced, timeout=timeout, interval=0.02)


def test_killed_worker_is_replaced(server):
    srv = server()
    old_client = srv.client()
    (old,) = srv.worker_pids()
    os.kill(old, signal.SIGKILL)
    t0 = time.monotonic()
    new = _wait_new_worker(srv, old, timeout=3)
    assert new, f"worker {old} was not replaced within 3s (children now {srv.worker_pids()})"
    assert time.monotonic() - t0 < 2.0, "a dead worker must be replaced within about a second"
    assert wait_until(lambda: _health_ok(srv), timeout=3)
    assert srv.proc.poll() is None, "the supervisor must survive its worker's death"
    # clients of the dead worker are gone; new clients are served
    assert old_client.wait_eof(2)
    w = srv.client()
    w.assert_served()
    # the dead worker was reaped: no zombie children
    assert wait_until(lambda: all(proc_state(p) != "Z" for p in srv.worker_pids()), timeout=2), \
        [(p, proc_state(p)) for p in srv.worker_pids()]


def _health_ok(srv):
    try:
        return srv.http("/health", timeout=1).status == 200
    except (OSError, EOFError, TimeoutError, ValueError):
        return False


def test_connection_during_worker_replacement_waits_in_backlog(server):
    srv = server()
    (old,) = srv.worker_pids()
    os.kill(old, signal.SIGKILL)
    # connect right away: the supervisor holds the listening socket, so this is not refused
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    srv.clients.append(s)
    s.sendall(upgrade_request(srv.port).encode())
    resp = read_response(BufferedSocket(s), timeout=5, head_only=True)
    assert resp.status == 101, resp
    w = srv.client()
    w.assert_served()


def test_worker_killed_twice_is_replaced_again(server):
    srv = server()
    for _ in range(2):
        (old,) = wait_until(lambda: srv.worker_pids() if len(srv.worker_pids()) == 1 else None, timeout=3)
        os.kill(old, signal.SIGKILL)
        assert _wait_new_worker(srv, old, timeout=5), srv.worker_pids()
        assert wait_until(lambda: _health_ok(srv), timeout=5)
    w = srv.client()
    w.assert_served()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_closes_clients_with_1001(server, sig):
    srv = server()
    clients = [srv.client() for _ in range(3)]
    for c in clients:
        c.assert_served()
    workers = srv.worker_pids()
    t0 = time.monotonic()
    srv.send_signal(sig)
    for c in clients:
        assert c.expect_close(timeout=9) == 1001
        assert c.tcp_closed
    rc = srv.wait_exit(10)
    assert rc == 0, f"serve must exit 0 after {sig.name}, got {rc}"
    assert time.monotonic() - t0 < 8.5
    for p in workers:
        assert wait_until(lambda: proc_state(p) is None, timeout=3), f"worker {p} still exists"


def test_shutdown_with_no_clients_exits_zero_quickly(server):
    srv = server()
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit(10) == 0
    assert time.monotonic() - t0 < 3


def test_sigpipe_ignored_when_client_vanishes_mid_reply(server):
    srv = server(app_lua="return { limits = { maxMessageSize = 1048576 } }\n")
    w = srv.client()
    (worker,) = srv.worker_pids()
    for _ in range(5):
        c = RawWS(srv.port)
        c.send_text('{"type":"echo","action":"say","data":"' + "q" * 500000 + '"}')
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # RST while the server writes the reply
    time.sleep(0.3)
    assert srv.proc.poll() is None
    assert srv.worker_pids() == [worker], "the worker must not die from a vanished client"
    w.assert_served()
