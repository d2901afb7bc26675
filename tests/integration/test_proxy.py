"""trustedProxies: only a peer listed there is believed about X-Forwarded-For; the
client is the right-most address in the header that is not itself a trusted proxy. The address
shows in the connect log line, in getClient().remoteAddress and in onAuthenticate's request."""
import pytest

import mwtest

WHO = """local W = {}
function W:me(clientId) return self.webSocketServer:getClient(clientId).remoteAddress end
return W
"""


def start(server, proxies):
    app = "return { trustedProxies = %s }\n" % proxies if proxies else "return {}\n"
    return server(app_lua=app, files={"controllers/who.lua": WHO})


def address(srv, forwarded):
    c = mwtest.RawWS(srv.port, extra=[("X-Forwarded-For", forwarded)] if forwarded else ())
    return c.request("who", "me")["response"]


@pytest.mark.parametrize("proxies, forwarded, expected", [
    ('{ "127.0.0.1" }', "203.0.113.7", "203.0.113.7"),
    ('{ "127.0.0.1" }', "198.51.100.1, 203.0.113.7", "203.0.113.7"),   # the right-most hop
    ('{ "127.0.0.0/8", "10.0.0.0/8" }', "203.0.113.7, 10.1.2.3", "203.0.113.7"),  # proxies skipped
    ('{ "127.0.0.1" }', "  2001:db8::1  ", "2001:db8::1"),
])
def test_a_trusted_proxy_gives_the_client_address(server, proxies, forwarded, expected):
    srv = start(server, proxies)
    assert address(srv, forwarded) == expected
    assert srv.wait_log(lambda t: f"remote={expected}" in t, timeout=2), srv.log()


@pytest.mark.parametrize("proxies", [None, '{ "192.0.2.1" }', '{ "10.0.0.0/8" }'])
def test_an_untrusted_peer_cannot_claim_an_address(server, proxies):
    srv = start(server, proxies)
    got = address(srv, "203.0.113.7")
    assert got.startswith("127.0.0.1:"), got


def test_without_the_header_the_peer_is_the_client(server):
    srv = start(server, '{ "127.0.0.1" }')
    assert address(srv, None).startswith("127.0.0.1:")


def test_on_authenticate_sees_the_forwarded_address(server):
    secret = "proxy-test-secret-" + "z" * 32
    app = ('return { trustedProxies = { "127.0.0.1" }, auth = { secret = %r },\n'
           '  events = { onAuthenticate = function(claims, request) return "seen " .. request.remoteAddress end } }\n'
           % secret)
    srv = server(app_lua=app)
    import time
    import jwt
    token = jwt.encode({"sub": "ada", "exp": int(time.time()) + 60}, secret, algorithm="HS256")
    raw = mwtest.upgrade_request(srv.port, path=f"/ws?token={token}", extra=[("X-Forwarded-For", "203.0.113.9")])
    resp = mwtest.http_request(srv.port, raw.encode())
    assert resp.status == 401
    assert b"seen 203.0.113.9" in resp.body
