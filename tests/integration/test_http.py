"""HTTP side of the port (docs/reference.md section 8): the upgrade, refused upgrades, /health, /metrics,
handshake limits and timeouts. Each test also probes an already-connected witness."""
import base64
import json
import socket
import time

import pytest

from mwtest import (OP_TEXT, BufferedSocket, RawWS, accept_for, build_frame, http_get, http_request,
                    metric_sum, new_key, read_response, upgrade_request, wait_until)


def test_upgrade_accept_key_and_headers(server):
    srv = server()
    w = srv.client()
    key = new_key()
    resp = http_request(srv.port, upgrade_request(srv.port, key=key))
    assert resp.status == 101, resp
    assert resp.headers["sec-websocket-accept"] == accept_for(key)
    assert resp.headers["upgrade"].lower() == "websocket"
    assert "upgrade" in [t.strip().lower() for t in resp.headers["connection"].split(",")]
    w.assert_served()


def test_known_accept_key_from_rfc6455(server):
    srv = server()
    w = srv.client()
    resp = http_request(srv.port, upgrade_request(srv.port, key="dGhlIHNhbXBsZSBub25jZQ=="))
    assert resp.status == 101, resp
    assert resp.headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    w.assert_served()


def test_connection_token_list_accepted(server):
    srv = server()
    w = srv.client()
    resp = http_request(srv.port, upgrade_request(srv.port, connection="keep-alive, Upgrade"))
    assert resp.status == 101, resp
    resp = http_request(srv.port, upgrade_request(srv.port, connection="keep-alive,upgrade",
                                                  upgrade="WebSocket"))
    assert resp.status == 101, resp
    w.assert_served()


def test_no_extension_negotiated(server):
    srv = server()
    w = srv.client()
    resp = http_request(srv.port, upgrade_request(
        srv.port, extra=[("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]))
    assert resp.status == 101, resp
    assert "sec-websocket-extensions" not in resp.headers
    w.assert_served()


def test_origin_header_allowed_by_default(server):
    srv = server()
    w = srv.client()
    c = srv.client(extra=[("Origin", "http://example.com")])
    assert c.client_id
    c.assert_served()
    w.assert_served()


@pytest.mark.parametrize("path", ["/other", "/ws/", "/wsx", "/WS", "/ws/extra"])
def test_upgrade_on_other_path_is_404(server, path):
    srv = server()
    w = srv.client()
    resp = http_request(srv.port, upgrade_request(srv.port, path=path))
    assert resp.status == 404, resp
    w.assert_served()


def test_upgrade_with_query_string_on_ws_path(server):
    srv = server()
    w = srv.client()
    resp = http_request(srv.port, upgrade_request(srv.port, path="/ws?foo=bar"))
    assert resp.status == 101, resp
    w.assert_served()


BAD_UPGRADES = {
    "post": dict(method="POST", extra=[("Content-Length", "0")]),
    "put": dict(method="PUT", extra=[("Content-Length", "0")]),
    "no-upgrade": dict(omit=("upgrade",)),
    "upgrade-h2c": dict(upgrade="h2c"),
    "no-key": dict(omit=("sec-websocket-key",)),
    "key-short": dict(key=base64.b64encode(b"x" * 15).decode()),
    "key-long": dict(key=base64.b64encode(b"x" * 17).decode()),
    "key-not-base64": dict(key="!!!!!!!!!!!!!!!!!!!!!!=="),
    "key-plain": dict(key="abc"),
    "no-connection": dict(omit=("connection",)),
    "connection-keep-alive": dict(connection="keep-alive"),
    "no-version": dict(omit=("sec-websocket-version",)),
}


@pytest.mark.parametrize("case", list(BAD_UPGRADES))
def test_invalid_upgrade_is_400(server, case):
    srv = server()
    w = srv.client()
    resp = http_request(srv.port, upgrade_request(srv.port, **BAD_UPGRADES[case]))
    assert resp.status == 400, resp
    w.assert_served()


def test_plain_get_on_ws_path_is_400(server):
    srv = server()
    w = srv.client()
    resp = http_get(srv.port, "/ws")
    assert resp.status == 400, resp
    w.assert_served()


@pytest.mark.parametrize("version", ["8", "12", "14", "abc"])
def test_wrong_version_is_426(server, version):
    srv = server()
    w = srv.client()
    resp = http_request(srv.port, upgrade_request(srv.port, version=version))
    assert resp.status == 426, resp
    assert resp.headers.get("sec-websocket-version") == "13"
    w.assert_served()


def _big_headers(total):
    """Header lines that take about `total` bytes."""
    return [("X-Filler", "a" * (total - len("X-Filler: \r\n")))]


def test_headers_over_default_limit_are_431(server):
    srv = server()
    w = srv.client()
    resp = http_request(srv.port, upgrade_request(srv.port, extra=_big_headers(9000)))
    assert resp.status == 431, resp
    # plain HTTP too
    resp = http_request(srv.port, f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 9000}\r\n\r\n")
    assert resp.status == 431, resp
    w.assert_served()


def test_headers_under_default_limit_are_fine(server):
    srv = server()
    w = srv.client()
    resp = http_request(srv.port, upgrade_request(srv.port, extra=_big_headers(7000)))
    assert resp.status == 101, resp
    w.assert_served()


def test_many_small_headers_over_limit_are_431(server):
    srv = server()
    w = srv.client()
    extra = [(f"X-H{i}", "v" * 40) for i in range(250)]  # ~12 KB
    resp = http_request(srv.port, upgrade_request(srv.port, extra=extra))
    assert resp.status == 431, resp
    w.assert_served()


def test_configured_max_header_bytes(server):
    srv = server(app_lua="return { limits = { maxHeaderBytes = 1024 } }\n")
    w = srv.client()
    resp = http_request(srv.port, upgrade_request(srv.port, extra=_big_headers(1500)))
    assert resp.status == 431, resp
    resp = http_request(srv.port, upgrade_request(srv.port, extra=_big_headers(500)))
    assert resp.status == 101, resp
    w.assert_served()


def test_long_request_line_counts_toward_limit(server):
    srv = server(app_lua="return { limits = { maxHeaderBytes = 1024 } }\n")
    w = srv.client()
    resp = http_request(srv.port, upgrade_request(srv.port, path="/ws?q=" + "x" * 1500))
    assert resp.status == 431, resp
    w.assert_served()


def test_header_bytes_trickled_in_small_writes_are_counted(server):
    srv = server(app_lua="return { limits = { maxHeaderBytes = 1024 } }\n")
    w = srv.client()
    req = upgrade_request(srv.port, extra=_big_headers(3000)).encode()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for i in range(0, len(req), 100):
                s.sendall(req[i:i + 100])
                time.sleep(0.002)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = read_response(BufferedSocket(s))
    assert resp.status == 431, resp
    w.assert_served()


def test_custom_path_flag(server):
    srv = server(args=["--path", "/custom"], path="/custom")
    w = srv.client()
    assert http_request(srv.port, upgrade_request(srv.port, path="/custom")).status == 101
    assert http_request(srv.port, upgrade_request(srv.port, path="/ws")).status == 404
    w.assert_served()


def test_frame_pipelined_after_handshake_is_processed(server):
    srv = server()
    w = srv.client()
    frame = build_frame(OP_TEXT, json.dumps({"type": "echo", "action": "say", "data": "early",
                                             "requestId": "p"}))
    c = RawWS(srv.port, pipelined=frame, read_connected=False)
    srv.clients.append(c)
    first = c.recv_json()
    assert first["type"] == "system" and first["action"] == "connected"
    assert c.recv_json() == {"type": "echo", "action": "say", "response": "early", "requestId": "p"}
    w.assert_served()


def _closed_within(sock, timeout):
    """Seconds until the server closed sock, or None."""
    bs = BufferedSocket(sock)
    t0 = time.monotonic()
    return time.monotonic() - t0 if bs.wait_eof(timeout) else None


def test_handshake_timeout_partial_request(server):
    srv = server(app_lua="return { limits = { handshakeTimeout = 1 } }\n")
    w = srv.client()
    s = srv.raw_socket()
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    elapsed = _closed_within(s, 4)
    assert elapsed is not None, "a partial request must be closed after handshakeTimeout"
    assert elapsed < 2.5
    w.assert_served()


def test_handshake_timeout_silent_socket(server):
    srv = server(app_lua="return { limits = { handshakeTimeout = 1 } }\n")
    w = srv.client()
    s = srv.raw_socket()
    elapsed = _closed_within(s, 4)
    assert elapsed is not None, "a socket that sends nothing must be closed after handshakeTimeout"
    assert 0.5 < elapsed < 2.5
    w.assert_served()


def test_truncated_handshake_then_close(server):
    srv = server()
    w = srv.client()
    for cut in (1, 10, 30, 60):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(upgrade_request(srv.port).encode()[:cut])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.sendall(upgrade_request(srv.port).encode()[:40])  # then RST
    time.sleep(0.2)
    assert srv.http("/health").status == 200
    w.assert_served()


def test_garbage_request_line_is_400(server):
    srv = server()
    w = srv.client()
    resp = http_request(srv.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
    assert resp.status == 400, resp
    w.assert_served()


# --------------------------------------------------------------------------- /health

def test_health(server):
    srv = server()
    w = srv.client()
    resp = srv.http("/health")
    assert resp.status == 200
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"status", "workerId", "connections"}, body
    assert body["status"] == "ok"
    assert isinstance(body["workerId"], (str, int)) and not isinstance(body["workerId"], bool)
    assert body["connections"] == 1
    others = [srv.client() for _ in range(2)]
    assert wait_until(lambda: srv.http("/health").json()["connections"] == 3)
    for o in others:
        o.close()
    assert wait_until(lambda: srv.http("/health").json()["connections"] == 1), srv.http("/health").json()
    w.assert_served()


# --------------------------------------------------------------------------- /metrics

METRIC_NAMES = [
    "moonwire_connections",
    "moonwire_messages_received_total",
    "moonwire_messages_sent_total",
    "moonwire_connects_total",
    "moonwire_disconnects_total",
    "moonwire_handler_errors_total",
    "moonwire_handler_duration_seconds_bucket",
]


def test_metrics_names_and_format(server):
    srv = server()
    w = srv.client()
    resp = srv.http("/metrics")
    assert resp.status == 200
    assert resp.headers.get("content-type", "").startswith("text/plain"), resp.headers
    text = resp.text
    for name in METRIC_NAMES:
        assert metric_sum(text, name) is not None, f"{name} missing from /metrics"
    assert metric_sum(text, "moonwire_handler_duration_seconds_bucket", 'le="+Inf"') is not None
    assert "# TYPE moonwire_connections gauge" in text
    assert "# TYPE moonwire_messages_received_total counter" in text
    assert "# TYPE moonwire_handler_duration_seconds histogram" in text
    w.assert_served()


def test_metrics_move_after_traffic(server):
    srv = server()
    w = srv.client()

    def snap():
        text = srv.http("/metrics").text
        return {n: metric_sum(text, n) or 0.0 for n in METRIC_NAMES} | {
            "inf": metric_sum(text, "moonwire_handler_duration_seconds_bucket", 'le="+Inf"') or 0.0}

    before = snap()
    assert before["moonwire_connections"] == 1
    c = srv.client()
    for i in range(3):
        c.send_json({"type": "echo", "action": "say", "data": i, "requestId": i})
        assert c.recv_json()["response"] == i
    c.send_json({"type": "fail", "action": "explode", "requestId": "e"})
    assert c.recv_json()["data"]["code"] == "internal"
    assert wait_until(lambda: snap()["moonwire_connections"] == 2)
    c.send_frame(0x8, b"\x03\xe8")
    c.wait_eof(3)

    def moved():
        now = snap()
        return (now["moonwire_connects_total"] - before["moonwire_connects_total"] == 1
                and now["moonwire_disconnects_total"] - before["moonwire_disconnects_total"] == 1
                and now["moonwire_messages_received_total"] - before["moonwire_messages_received_total"] >= 4
                and now["moonwire_messages_sent_total"] - before["moonwire_messages_sent_total"] >= 5
                and now["moonwire_handler_errors_total"] - before["moonwire_handler_errors_total"] == 1
                and now["inf"] - before["inf"] >= 3
                and now["moonwire_connections"] == 1) and now
    after = wait_until(moved, timeout=3)
    assert after, f"metrics did not move as expected: before={before} after={snap()}"
    w.assert_served()
