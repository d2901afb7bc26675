"""Token refresh without reconnecting (reference: "Token refresh"): auth/refresh verifies the
new token exactly as at connect, needs the same sub, moves the 4401 close and replaces
user.payload; every refusal is an error frame and changes nothing; auth/expiring comes
auth.refreshBefore seconds before exp, once per token; refresh messages are rate limited like
any other."""
import time

from urllib.parse import quote

import jwt

from mwtest import RawWS

from test_auth import OTHER_SECRET, SECRET, claims, connect, expect_authenticated, hs, hs_app


def refresh(c, token, rid=1):
    return c.request("auth", "refresh", data={"token": token}, request_id=rid)


def error_of(frame):
    assert frame["type"] == "error", frame
    return frame["data"]["error"], frame["data"]["code"]


def test_refresh_moves_the_expiry_and_replaces_the_payload(server):
    srv = server(app_lua=hs_app("leeway = 0, refreshBefore = 0"))
    exp = int(time.time()) + 3
    c = connect(srv, hs({"sub": "alice", "exp": exp, "role": "old"}))
    expect_authenticated(c, "alice")
    new_exp = int(time.time()) + 300
    reply = refresh(c, hs({"sub": "alice", "exp": new_exp, "role": "new"}))
    assert reply == {"type": "auth", "action": "refresh", "response": {"success": True, "expiresAt": new_exp * 1000},
                     "requestId": 1}, reply
    me = c.request("users", "me", request_id=2)["response"]
    assert me["user"]["payload"]["role"] == "new", me
    time.sleep(5)  # past the old token's exp: the connection stays open
    c.assert_served()


def test_expiring_notice_once_per_token(server):
    srv = server(app_lua=hs_app("leeway = 0, refreshBefore = 30"))
    exp = int(time.time()) + 20  # less than refreshBefore left: the notice comes at once
    c = connect(srv, hs({"sub": "bob", "exp": exp}))
    expect_authenticated(c, "bob")
    frame = c.recv_json()
    assert frame == {"type": "auth", "action": "expiring", "data": {"expiresAt": exp * 1000}}, frame
    reply = refresh(c, hs(claims(sub="bob", ttl=600)))
    assert reply["response"]["success"] is True, reply
    time.sleep(2)  # several sweeps: no second notice for the new token (600 s left)
    c.assert_served()


def test_refusals_change_nothing(server):
    srv = server(app_lua=hs_app("leeway = 0, refreshBefore = 0"))
    w = connect(srv, hs(claims(sub="witness")))
    expect_authenticated(w, "witness")
    exp = int(time.time()) + 4
    c = connect(srv, hs({"sub": "carol", "exp": exp, "role": "first"}))
    expect_authenticated(c, "carol")
    now = int(time.time())
    cases = [
        (hs(claims(sub="mallory", ttl=300)), ("Token subject mismatch", "forbidden")),
        (hs(claims(sub="carol", ttl=300), secret=OTHER_SECRET), ("Invalid token", "unauthorized")),
        (hs({"sub": "carol", "exp": now - 100}), ("Invalid token", "unauthorized")),           # expired
        (jwt.encode(claims(sub="carol"), SECRET, algorithm="HS384"), ("Invalid token", "unauthorized")),
        # ~40 KB: past the 8 KiB token limit (a 100 KB message is past maxMessageSize: 1009)
        (hs(claims(sub="carol", ttl=300, pad="x" * 30000)), ("Invalid token", "unauthorized")),
        ("not.a.token", ("Invalid token", "unauthorized")),
        ("", ("Invalid token", "unauthorized")),
    ]
    for i, (token, want) in enumerate(cases):
        assert error_of(refresh(c, token, rid=10 + i)) == want, (i, want)
    missing = c.request("auth", "refresh", data={}, request_id=30)
    assert error_of(missing) == ("Invalid token", "unauthorized")
    me = c.request("users", "me", request_id=31)["response"]
    assert me["user"]["payload"]["role"] == "first", me  # the payload did not change
    assert c.expect_close(timeout=15) == 4401           # nor did the expiry
    w.assert_served()
    log = srv.log()
    assert "token refresh refused" in log
    assert SECRET not in log and "not.a.token" not in log


def test_refresh_on_an_anonymous_connection(server):
    srv = server(app_lua=hs_app(required=False))
    c = connect(srv)
    assert error_of(refresh(c, hs(claims(sub="eve")))) == ("Not authenticated", "unauthorized")
    c.assert_served()


def test_on_authenticate_sees_the_original_request_again(server):
    srv = server(app_lua=hs_app(extra=''', events = { onAuthenticate = function(claims, request)
        if claims.banned then return "banned" end
        return request.query:find("tenant=a", 1, true) ~= nil
      end }'''))
    c = RawWS(srv.port, srv.path + "?tenant=a&token=" + quote(hs(claims(sub="dave")), safe=""))
    srv.clients.append(c)
    expect_authenticated(c, "dave")
    ok = refresh(c, hs(claims(sub="dave", ttl=600)))
    assert ok["response"]["success"] is True, ok
    refused = refresh(c, hs(claims(sub="dave", ttl=600, banned=True)), rid=2)
    assert error_of(refused) == ("Invalid token", "unauthorized")
    c.assert_served()


def test_refresh_messages_are_rate_limited(server):
    srv = server(app_lua=hs_app(extra=", limits = { maxHeaderBytes = 65536, rate = { messages = 1, per = 60, burst = 2 } }")
                 .replace(", limits = { maxHeaderBytes = 65536 } ", " "))
    c = connect(srv, hs(claims(sub="fay")))
    expect_authenticated(c, "fay")
    token = hs(claims(sub="fay", ttl=600))
    answers = []
    for i in range(4):
        c.send_json({"type": "auth", "action": "refresh", "data": {"token": token}, "requestId": i})
    deadline = time.monotonic() + 15
    while len(answers) < 4 and time.monotonic() < deadline:
        f = c.recv_json()
        answers.append(f)
    limited = [f for f in answers if f["type"] == "error" and f["data"].get("code") == "rate_limited"]
    assert limited, answers
