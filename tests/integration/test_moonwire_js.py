"""GET /moonwire.js: the browser client served from the runtime's own folder
(RUNTIME_DIR/clients/js/moonwire.js), whatever the app, with a JavaScript content type. The
client's behaviour is tested in a real browser by tests/browser (ctest browser_client)."""
import shutil
import time

import mwtest

CLIENT = mwtest.ROOT / "clients" / "js" / "moonwire.js"
JS_TYPE = "text/javascript; charset=utf-8"


def test_get_serves_the_client(server):
    srv = server()
    w = srv.client()
    resp = srv.http("/moonwire.js")
    assert resp.status == 200, resp
    assert resp.headers["content-type"] == JS_TYPE
    assert resp.body == CLIENT.read_bytes()
    assert int(resp.headers["content-length"]) == len(resp.body)
    assert b"export function connect" in resp.body
    w.assert_served()


def test_head_has_the_headers_and_no_body(server):
    srv = server()
    sock = srv.raw_socket()
    sock.sendall(b"HEAD /moonwire.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = mwtest.BufferedSocket(sock).read_to_eof(time.monotonic() + 5)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), raw[:200]
    headers = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:])
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["content-type"] == JS_TYPE
    assert int(headers["content-length"]) == CLIENT.stat().st_size
    assert body == b"", "HEAD sends no body"


def test_query_string_is_ignored(server):
    srv = server()
    resp = srv.http("/moonwire.js?v=2")
    assert resp.status == 200, resp
    assert resp.body == CLIENT.read_bytes()


def test_app_public_file_does_not_replace_it(server):
    # the runtime's client always matches the server's protocol; an app ships its own under another name
    srv = server(files={"public/moonwire.js": "// the app's own file\n"})
    resp = srv.http("/moonwire.js")
    assert resp.status == 200
    assert resp.body == CLIENT.read_bytes()


def test_served_without_a_public_folder(server):
    srv = server()
    shutil.rmtree(srv.app_dir / "public")
    resp = srv.http("/moonwire.js")
    assert resp.status == 200
    assert b"export function connect" in resp.body


def test_other_methods_are_refused(server):
    srv = server()
    resp = mwtest.http_request(srv.port, "POST /moonwire.js HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                         "Connection: close\r\n\r\n")
    assert resp.status == 405, resp
