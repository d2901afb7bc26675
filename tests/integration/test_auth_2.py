"""Regression tests for the second review of auth, drain and limits: identity comes from the
top-level sub only, the app never sees the token, an empty ?token= does not hide a Bearer
token, a NUL in the token is refused, a busy client does not hold back everybody's 1001, and
a rate limit that can never admit a message is a config error."""
import signal
import time
from urllib.parse import quote

import mwtest
from mwtest import RawWS, http_request, upgrade_request
from test_auth import SECRET, claims, connect, expect_authenticated, hs, hs_app


def test_sub_rule_reads_the_top_level_claim_only(server):
    """A nested "sub" (an actor claim) that would be refused at the top level does not matter."""
    srv = server(app_lua=hs_app(required=False))
    w = srv.client()
    token = hs(claims(sub=None, act={"sub": 1152921504606846977.5}) | {"sub": 7})
    c = connect(srv, token=token)
    expect_authenticated(c, 7)
    refused = hs(claims(sub=None, act={"sub": 7}) | {"sub": 1152921504606846977})
    assert http_request(srv.port, upgrade_request(srv.port, srv.path + "?token=" + quote(refused, safe="")),
                        timeout=10).status == 401
    w.assert_served()


def test_on_authenticate_never_sees_the_token(server):
    app = hs_app(required=False, extra=""", events = { onAuthenticate = function(claims, request)
      require("moonwire").log:info("AUTH query=[" .. request.query .. "] authz=" .. tostring(request.headers.authorization))
      return true
    end }""")
    srv = server(app_lua=app)
    token = hs(claims())
    path = srv.path + "?room=lobby&token=" + quote(token, safe="") + "&x=1"
    c = RawWS(srv.port, path)
    expect_authenticated(c, "alice")
    c2 = connect(srv, bearer=token)
    expect_authenticated(c2, "alice")
    log = srv.wait_log(lambda t: t.count("AUTH query=") >= 2, timeout=3)
    assert log and "AUTH query=[room=lobby&x=1] authz=nil" in log, log
    assert token not in log and token.split(".")[2] not in log


def test_empty_query_token_does_not_hide_the_bearer_header(server):
    srv = server(app_lua=hs_app(required=True))
    token = hs(claims(sub="bob"))
    c = RawWS(srv.port, srv.path + "?token=", extra=[("Authorization", f"Bearer {token}")])
    expect_authenticated(c, "bob")


def test_nul_inside_a_query_token_is_refused(server):
    srv = server(app_lua=hs_app(required=True))
    w = connect(srv, token=hs(claims()))
    expect_authenticated(w, "alice")
    token = hs(claims())
    path = srv.path + "?token=" + quote(token, safe="") + "%00garbage"
    resp = http_request(srv.port, upgrade_request(srv.port, path), timeout=5)
    assert resp.status == 401, resp
    w.assert_served()


def test_a_handler_that_never_finishes_does_not_hold_back_other_clients_1001(server):
    app = """return { limits = { shutdownTimeout = 6 } }"""
    stuck = "return { forever = function() coroutine.yield() end }\n"
    srv = server(app_lua=app, files={"controllers/stuck.lua": stuck})
    a = RawWS(srv.port)
    b = RawWS(srv.port)
    a.send_json({"type": "stuck", "action": "forever"})
    time.sleep(0.2)
    started = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    assert b.expect_close(timeout=3) == 1001
    assert time.monotonic() - started < 2, "the idle client waited for the busy one"
    assert srv.wait_exit(timeout=12) == 0


def test_rate_burst_below_one_is_a_config_error(tmp_path):
    app = mwtest.make_app(tmp_path / "app", "return { limits = { rate = { burst = 0.5 } } }\n")
    rc, out, err = mwtest.run_cli(["serve", str(app), "--port", str(mwtest.free_port())])
    assert rc != 0
    assert "limits.rate.burst" in err
