"""Static files from APP_DIR/public."""
import pytest

from mwtest import http_request

SECRET_APP = 'return { }  -- MOONWIRE-SECRET-APP-LUA\n'


def _content_type(resp):
    return resp.headers.get("content-type", "").split(";")[0].strip().lower()


@pytest.mark.parametrize("path,ctype,marker", [
    ("/", "text/html", "MOONWIRE-INDEX-PAGE"),
    ("/index.html", "text/html", "MOONWIRE-INDEX-PAGE"),
    ("/app.js", "text/javascript", "MOONWIRE-TEST-JS"),
    ("/style.css", "text/css", "MOONWIRE-TEST-CSS"),
    ("/sub/nested.html", "text/html", "MOONWIRE-NESTED-PAGE"),
])
def test_static_file(server, path, ctype, marker):
    srv = server()
    w = srv.client()
    resp = srv.http(path)
    assert resp.status == 200, resp
    assert _content_type(resp) == ctype, resp.headers
    assert marker in resp.text
    public = srv.app_dir / "public" / ("index.html" if path == "/" else path.lstrip("/"))
    assert resp.body == public.read_bytes()
    assert int(resp.headers["content-length"]) == len(resp.body)
    w.assert_served()


def test_static_query_string_ignored(server):
    srv = server()
    w = srv.client()
    resp = srv.http("/app.js?v=123")
    assert resp.status == 200, resp
    assert "MOONWIRE-TEST-JS" in resp.text
    w.assert_served()


def test_binary_file_served_byte_exact(server):
    payload = bytes(range(256)) * 300
    srv = server(files={"public/blob.bin": payload})
    w = srv.client()
    resp = srv.http("/blob.bin")
    assert resp.status == 200
    assert resp.body == payload
    w.assert_served()


@pytest.mark.parametrize("path", ["/missing.html", "/sub/missing.js", "/sub/", "/nope/deeper/x.css"])
def test_missing_file_is_404(server, path):
    srv = server()
    w = srv.client()
    resp = srv.http(path)
    assert resp.status == 404, resp
    w.assert_served()


def test_no_public_dir_root_is_404(server):
    srv = server()
    w = srv.client()
    # remove public/ after start: nothing to serve, nothing crashes
    import shutil
    shutil.rmtree(srv.app_dir / "public")
    resp = srv.http("/index.html")
    assert resp.status == 404, resp
    w.assert_served()


@pytest.mark.parametrize("path", [
    "/../app.lua",
    "/%2e%2e/app.lua",
    "/%2E%2E/app.lua",
    "/..%2fapp.lua",
    "/..%2Fapp.lua",
    "/%2e%2e%2fapp.lua",
    "/sub/../../app.lua",
    "/sub/%2e%2e/%2e%2e/app.lua",
    "/..\\app.lua",
    "/../controllers/echo.lua",
    "//etc/passwd",
    "/../../../../../../etc/passwd",
    "/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/%2fetc%2fpasswd",
    "/app.lua%00.html",
])
def test_path_traversal_never_leaks(server, path):
    srv = server(app_lua=SECRET_APP)
    w = srv.client()
    resp = http_request(srv.port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert resp.status in (400, 403, 404), resp
    assert b"MOONWIRE-SECRET-APP-LUA" not in resp.body
    assert b"root:" not in resp.body
    assert b"function Echo" not in resp.body
    w.assert_served()
