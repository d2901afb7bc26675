"""JWT authentication (CONTRACT-2of5 "Auth (JWT)"): accepted tokens and the
`auth/authenticated` frame, every refusal (HTTP 401 before the upgrade, the process keeps
serving), expiry (4401), onAuthenticate, sendMessageToUser, getClient with a user.

Tokens are made with python3-jwt; `alg: none` and the HMAC-with-the-public-key confusion
token are built by hand. RSA / EC keys are generated in the test (python3-cryptography).
"""
import base64
import hashlib
import hmac
import json
import time
from urllib.parse import quote

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import mwtest
from mwtest import RawWS, http_request, upgrade_request, wait_until

SECRET = "s3cr3t-for-moonwire-tests-0123456789abcdef"          # 42 bytes
OTHER_SECRET = "another-secret-that-is-long-enough-0123456789"
BIG_HEADERS = "maxHeaderBytes = 65536"   # so that an oversized token reaches the JWT check (not 431)


def hs_app(extra_auth="", extra="", required=True):
    return (f"return {{ auth = {{ secret = {SECRET!r}, algorithm = \"HS256\", required = {str(required).lower()}"
            f"{', ' + extra_auth if extra_auth else ''} }}, limits = {{ {BIG_HEADERS} }} {extra} }}\n")


def b64url(data):
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(sub="alice", ttl=300, **extra):
    now = int(time.time())
    out = {"sub": sub, "iat": now, "exp": now + ttl}
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def hs(payload, secret=SECRET, alg="HS256"):
    return jwt.encode(payload, secret, algorithm=alg)


def hand_token(header, payload, signature=b""):
    return f"{b64url(header)}.{b64url(payload)}.{b64url(signature) if signature else ''}"


def hmac_token(header, payload, key):
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def rsa_keys():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, pub


def ec_keys():
    key = ec.generate_private_key(ec.SECP256R1())
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, pub


def upgrade_status(srv, token=None, bearer=None, extra=()):
    path = srv.path + (f"?token={quote(token, safe='')}" if token is not None else "")
    headers = list(extra)
    if bearer is not None:
        headers.append(("Authorization", f"Bearer {bearer}"))
    resp = http_request(srv.port, upgrade_request(srv.port, path, extra=headers), timeout=5)
    return resp.status


def connect(srv, token=None, bearer=None, extra=()):
    """An authenticated RawWS (its `connected` frame read); checks the auth frame too."""
    path = srv.path + (f"?token={quote(token, safe='')}" if token is not None else "")
    headers = list(extra)
    if bearer is not None:
        headers.append(("Authorization", f"Bearer {bearer}"))
    c = RawWS(srv.port, path, extra=headers)
    srv.clients.append(c)
    return c


def expect_authenticated(c, user_id):
    frame = c.recv_json()
    assert frame == {"type": "auth", "action": "authenticated",
                     "data": {"userId": user_id, "message": "Authentication successful"}}, frame
    assert type(frame["data"]["userId"]) is type(user_id), frame


# --------------------------------------------------------------------------- accepted tokens

@pytest.mark.parametrize("sub,user_id", [("alice", "alice"), (42, 42), ("x-7f", "x-7f"),
                                         (str(2 ** 53 + 1), str(2 ** 53 + 1))],
                         ids=["string", "integer", "mixed", "beyond-double-as-string"])
def test_valid_token_in_query(server, sub, user_id):
    srv = server(app_lua=hs_app())
    w = connect(srv, hs(claims()))
    expect_authenticated(w, "alice")
    token = hs(claims(sub=sub, role="admin"))
    c = connect(srv, token)
    assert c.connected["data"]["clientId"] == c.client_id
    expect_authenticated(c, user_id)
    c.assert_served()
    assert token not in srv.output(), "tokens never appear in logs"
    assert token.split(".")[2] not in srv.output()
    w.assert_served()


def test_valid_token_in_authorization_header(server):
    srv = server(app_lua=hs_app())
    w = connect(srv, bearer=hs(claims()))
    expect_authenticated(w, "alice")
    token = hs(claims(sub="bob"))
    c = connect(srv, bearer=token)
    expect_authenticated(c, "bob")
    c.assert_served()
    assert token not in srv.output()
    w.assert_served()


def test_leeway_accepts_recently_expired_and_early_nbf(server):
    srv = server(app_lua=hs_app())
    w = connect(srv, hs(claims()))
    expect_authenticated(w, "alice")
    now = int(time.time())
    # default leeway 30 s
    c = connect(srv, hs({"sub": "late", "exp": now - 10}))
    expect_authenticated(c, "late")
    d = connect(srv, hs({"sub": "early", "exp": now + 300, "nbf": now + 10}))
    expect_authenticated(d, "early")
    c.assert_served()
    d.assert_served()
    w.assert_served()


def test_optional_auth_allows_anonymous(server):
    srv = server(app_lua=hs_app(required=False))
    w = srv.client()
    c = srv.client()             # no token: no auth frame, the next frame is the echo reply
    c.assert_served()
    t = connect(srv, hs(claims(sub="carol")))
    expect_authenticated(t, "carol")
    # a bad token is still refused when auth is optional
    assert upgrade_status(srv, hs(claims(), secret=OTHER_SECRET)) == 401
    w.assert_served()


def test_jwt_secret_from_environment(server):
    srv = server(env={"MOONWIRE_JWT_SECRET": SECRET})
    w = srv.client()
    c = connect(srv, hs(claims(sub="env")))
    expect_authenticated(c, "env")
    assert upgrade_status(srv, hs(claims(), secret=OTHER_SECRET)) == 401
    c.assert_served()
    w.assert_served()


def test_jwt_secret_from_flag(server):
    srv = server(args=["--jwt-secret", SECRET])
    w = srv.client()
    c = connect(srv, hs(claims(sub="flag")))
    expect_authenticated(c, "flag")
    w.assert_served()


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms(server, alg):
    app = f"return {{ auth = {{ secret = {SECRET!r}, algorithm = {alg!r}, required = true }} }}\n"
    srv = server(app_lua=app)
    w = connect(srv, hs(claims(), alg=alg))
    expect_authenticated(w, "alice")
    c = connect(srv, hs(claims(sub="hs"), alg=alg))
    expect_authenticated(c, "hs")
    # pinned: HS256 is refused when HS384/512 is configured
    assert upgrade_status(srv, hs(claims(), alg="HS256")) == 401
    w.assert_served()


def test_rs256_and_key_confusion(server):
    priv, pub = rsa_keys()
    app = ('return { auth = { algorithm = "RS256", publicKeyFile = "key.pem", required = true }, '
           f'limits = {{ {BIG_HEADERS} }} }}\n')
    srv = server(app_lua=app, files={"key.pem": pub})
    w = connect(srv, jwt.encode(claims(), priv, algorithm="RS256"))
    expect_authenticated(w, "alice")
    c = connect(srv, jwt.encode(claims(sub=7), priv, algorithm="RS256"))
    expect_authenticated(c, 7)
    c.assert_served()
    # HMAC signed with the public key PEM as the secret (alg confusion)
    confused = hmac_token({"alg": "HS256", "typ": "JWT"}, claims(sub="mallory"), pub)
    assert upgrade_status(srv, confused) == 401
    # ... also when the header claims RS256
    assert upgrade_status(srv, hmac_token({"alg": "RS256", "typ": "JWT"}, claims(sub="mallory"), pub)) == 401
    # a plain HS token
    assert upgrade_status(srv, hs(claims(sub="mallory"))) == 401
    # signed by another RSA key
    other_priv, _ = rsa_keys()
    assert upgrade_status(srv, jwt.encode(claims(), other_priv, algorithm="RS256")) == 401
    # alg none
    assert upgrade_status(srv, hand_token({"alg": "none", "typ": "JWT"}, claims())) == 401
    assert srv.proc.poll() is None
    w.assert_served()


def test_es256(server):
    priv, pub = ec_keys()
    app = 'return { auth = { algorithm = "ES256", publicKeyFile = "ec.pem", required = true } }\n'
    srv = server(app_lua=app, files={"ec.pem": pub})
    w = connect(srv, jwt.encode(claims(), priv, algorithm="ES256"))
    expect_authenticated(w, "alice")
    c = connect(srv, bearer=jwt.encode(claims(sub="ec-user"), priv, algorithm="ES256"))
    expect_authenticated(c, "ec-user")
    other_priv, _ = ec_keys()
    assert upgrade_status(srv, jwt.encode(claims(), other_priv, algorithm="ES256")) == 401
    assert upgrade_status(srv, hs(claims())) == 401
    c.assert_served()
    w.assert_served()


# --------------------------------------------------------------------------- refusals

def _bad_tokens():
    now = int(time.time())
    good = hs(claims())
    head, body, sig = good.split(".")
    return {
        "bad-signature": hs(claims(), secret=OTHER_SECRET),
        "tampered-payload": f"{head}.{b64url(claims(sub='root'))}.{sig}",
        "alg-none": hand_token({"alg": "none", "typ": "JWT"}, claims()),
        "alg-none-with-sig": hand_token({"alg": "none"}, claims(), b"\x01\x02"),
        "alg-None-case": hand_token({"alg": "None", "typ": "JWT"}, claims()),
        "alg-mismatch-HS384": hs(claims(), alg="HS384"),
        "alg-mismatch-HS512": hs(claims(), alg="HS512"),
        "malformed-word": "abc",
        "malformed-two-parts": f"{head}.{body}",
        "malformed-four-parts": good + ".x",
        "malformed-base64": "!!!.@@@.###",
        "malformed-header-json": f"{b64url(b'not json')}.{body}.{sig}",
        "empty": "",
        "oversized": hs(claims(pad="p" * 9000)),
        "exp-missing": hs({"sub": "alice", "iat": now}),
        "exp-past": hs(claims(ttl=-120)),
        "exp-not-a-number": hs({"sub": "alice", "exp": "tomorrow"}),
        "nbf-future": hs(claims(nbf=now + 120)),
    }


BAD_TOKEN_IDS = list(_bad_tokens())


@pytest.mark.parametrize("case", BAD_TOKEN_IDS)
def test_bad_token_refused_with_401(server, case):
    srv = server(app_lua=hs_app())
    w = connect(srv, hs(claims()))
    expect_authenticated(w, "alice")
    token = _bad_tokens()[case]
    status = upgrade_status(srv, token)
    assert status == 401, f"{case} in ?token=: expected 401, got {status}"
    status = upgrade_status(srv, bearer=token)
    assert status == 401, f"{case} in Authorization: Bearer: expected 401, got {status}"
    assert srv.proc.poll() is None
    if len(token) > 20:
        assert token not in srv.output(), "tokens never appear in logs"
    w.assert_served()


def test_missing_token_when_required(server):
    srv = server(app_lua=hs_app())
    w = connect(srv, hs(claims()))
    expect_authenticated(w, "alice")
    assert upgrade_status(srv) == 401
    assert upgrade_status(srv, bearer="") == 401
    assert upgrade_status(srv, extra=[("Authorization", "Basic dXNlcjpwYXNz")]) == 401
    w.assert_served()


def test_token_without_configured_secret_is_refused(server):
    srv = server()          # no auth config, no --jwt-secret
    w = srv.client()
    assert upgrade_status(srv, hs(claims())) == 401
    assert upgrade_status(srv, bearer=hs(claims())) == 401
    # without a token: anonymous is fine
    c = srv.client()
    c.assert_served()
    w.assert_served()


def test_issuer_and_audience(server):
    srv = server(app_lua=hs_app('issuer = "https://issuer.example", audience = "moonwire-api"'))
    ok = claims(iss="https://issuer.example", aud="moonwire-api")
    w = connect(srv, hs(ok))
    expect_authenticated(w, "alice")
    # aud may be an array containing it
    c = connect(srv, hs(claims(sub="arr", iss="https://issuer.example", aud=["other", "moonwire-api"])))
    expect_authenticated(c, "arr")
    bad = {
        "iss-wrong": claims(iss="https://evil.example", aud="moonwire-api"),
        "iss-missing": claims(aud="moonwire-api"),
        "aud-wrong": claims(iss="https://issuer.example", aud="other"),
        "aud-missing": claims(iss="https://issuer.example"),
        "aud-array-without": claims(iss="https://issuer.example", aud=["a", "b"]),
    }
    for name, payload in bad.items():
        assert upgrade_status(srv, hs(payload)) == 401, name
    c.assert_served()
    w.assert_served()


ON_AUTH_APP = """
return {
  auth = { secret = %r, algorithm = "HS256", required = true },
  events = {
    onAuthenticate = function(claims, request)
      require("moonwire").log:info("EV auth", { sub = claims.sub, path = request.path,
                            tenant = request.headers["x-tenant"], remote = request.remoteAddress })
      if claims.sub == "banned" then return false end
      if request.headers["x-tenant"] ~= nil and request.headers["x-tenant"] ~= "acme" then
        return "wrong tenant"
      end
      if claims.sub == "raiser" then error("onAuthenticate exploded") end
      return true
    end,
  },
}
""" % SECRET


def test_on_authenticate(server):
    srv = server(app_lua=ON_AUTH_APP)
    w = connect(srv, hs(claims()))
    expect_authenticated(w, "alice")
    # true: accepted; the request it saw has a lowercased header map, the path and the peer address
    c = connect(srv, hs(claims(sub="dave")), extra=[("X-Tenant", "acme")])
    expect_authenticated(c, "dave")
    log = srv.wait_log(lambda t: "EV auth" in t and "sub=dave" in t, timeout=3)
    assert log, srv.log()
    line = next(l for l in log.splitlines() if "EV auth" in l and "sub=dave" in l)
    assert "path=/ws" in line and "tenant=acme" in line and "127.0.0.1" in line, line
    # false and a string both refuse with 401
    assert upgrade_status(srv, hs(claims(sub="banned"))) == 401
    assert upgrade_status(srv, hs(claims(sub="eve")), extra=[("X-Tenant", "other")]) == 401
    # a hook that raises refuses too, and is logged; the process keeps serving
    assert upgrade_status(srv, hs(claims(sub="raiser"))) == 401
    assert srv.wait_log(lambda t: "onAuthenticate exploded" in t, timeout=3), srv.log()
    # an invalid token never reaches the hook
    assert upgrade_status(srv, hs(claims(sub="forged"), secret=OTHER_SECRET)) == 401
    time.sleep(0.2)
    assert "sub=forged" not in srv.log()
    c.assert_served()
    w.assert_served()


def test_short_secret_stops_start_up(server):
    srv = server(app_lua='return { auth = { secret = "too-short", algorithm = "HS256" } }\n', wait=False)
    rc = srv.wait_exit(10)
    assert rc is not None and rc != 0, f"start-up with a 9-byte secret must fail, exit {rc}"
    assert "auth.secret" in srv.output(), srv.output()
    assert "too-short" not in srv.output(), "the secret itself is not logged"


def test_short_secret_from_environment_stops_start_up(server):
    srv = server(env={"MOONWIRE_JWT_SECRET": "short-env-secret"}, wait=False)
    rc = srv.wait_exit(10)
    assert rc is not None and rc != 0, f"start-up with a 16-byte secret must fail, exit {rc}"
    assert "auth.secret" in srv.output(), srv.output()
    assert "short-env-secret" not in srv.output(), "the secret itself is not logged"


def test_tokens_never_logged_even_at_debug(server):
    srv = server(app_lua=hs_app(), args=["--log-level", "debug"])
    good_q = hs(claims(sub="q"))
    good_h = hs(claims(sub="h"))
    expired = hs(claims(ttl=-3600))
    forged = hs(claims(), secret=OTHER_SECRET)
    w = connect(srv, good_q)
    expect_authenticated(w, "q")
    c = connect(srv, bearer=good_h)
    expect_authenticated(c, "h")
    assert upgrade_status(srv, expired) == 401
    assert upgrade_status(srv, bearer=forged) == 401
    c.send_frame(mwtest.OP_CLOSE, mwtest.close_payload(1000))
    assert c.expect_close() == 1000
    w.assert_served()
    time.sleep(0.3)
    out = srv.output()
    assert "debug" in out.lower(), "--log-level debug is on"
    for token in (good_q, good_h, expired, forged):
        for part in (token, token.split(".")[1], token.split(".")[2]):
            assert part not in out, "a token (or a part of it) appeared in the log"


def test_frame_order_connected_authenticated_then_on_connect(server):
    app = f"""
return {{
  auth = {{ secret = {SECRET!r}, algorithm = "HS256", required = true }},
  events = {{ onConnect = function(clientId, client)
    require("moonwire").webSocketServer:sendMessageToClient(clientId, {{ type = "hello", action = "welcome" }})
  end }},
}}
"""
    srv = server(app_lua=app)
    w = connect(srv, hs(claims()))          # `connected` was read first by RawWS
    expect_authenticated(w, "alice")
    assert w.recv_json() == {"type": "hello", "action": "welcome"}
    c = connect(srv, bearer=hs(claims(sub=5)))
    expect_authenticated(c, 5)
    assert c.recv_json() == {"type": "hello", "action": "welcome"}
    c.assert_served()
    w.assert_served()


# --------------------------------------------------------------------------- expiry

def test_token_expiry_closes_with_4401(server):
    srv = server(app_lua=hs_app("leeway = 0"))
    w = connect(srv, hs(claims(ttl=300)))
    expect_authenticated(w, "alice")
    t0 = time.monotonic()
    c = connect(srv, hs({"sub": "short", "exp": int(time.time()) + 2}))
    expect_authenticated(c, "short")
    # served (the auth/expiring notice may come first: the token has less than refreshBefore left)
    assert c.request("echo", "say", data=1, request_id=1)["response"] == 1
    code = c.expect_close(timeout=6)
    elapsed = time.monotonic() - t0
    assert code == 4401
    assert c.close_frame.payload[2:] == b"Token expired"
    assert c.tcp_closed
    assert 0.8 < elapsed < 4.5, f"closed after {elapsed:.1f}s for a token that expired ~1-2s in"
    w.assert_served()


def test_token_expiry_honours_leeway(server):
    srv = server(app_lua=hs_app("leeway = 2"))
    w = connect(srv, hs(claims(ttl=300)))
    expect_authenticated(w, "alice")
    now = time.time()
    c = connect(srv, hs({"sub": "lee", "exp": int(now)}))        # already at exp, 2 s leeway left
    expect_authenticated(c, "lee")
    t0 = time.monotonic()
    assert c.request("echo", "say", data=1, request_id=1)["response"] == 1  # auth/expiring may come first
    code = c.expect_close(timeout=6)
    elapsed = time.monotonic() - t0
    assert code == 4401 and c.close_frame.payload[2:] == b"Token expired"
    assert 0.5 < elapsed < 4.0, elapsed
    w.assert_served()


# --------------------------------------------------------------------------- users

def test_send_message_to_user_reaches_every_connection(server):
    srv = server(app_lua=hs_app())
    w = connect(srv, hs(claims(sub="witness")))
    expect_authenticated(w, "witness")
    a1 = connect(srv, hs(claims(sub=7)))
    expect_authenticated(a1, 7)
    a2 = connect(srv, bearer=hs(claims(sub=7)))
    expect_authenticated(a2, 7)
    s1 = connect(srv, hs(claims(sub="alice")))
    expect_authenticated(s1, "alice")
    s2 = connect(srv, hs(claims(sub="alice")))
    expect_authenticated(s2, "alice")
    other = connect(srv, hs(claims(sub=8)))
    expect_authenticated(other, 8)

    other.send_json({"type": "users", "action": "send", "data": {"userId": 7, "payload": "hi"}, "requestId": 1})
    assert other.recv_json() == {"type": "users", "action": "send", "response": {"n": 2}, "requestId": 1}
    for c in (a1, a2):
        assert c.recv_json() == {"type": "user", "action": "message",
                                 "data": {"payload": "hi", "from": other.client_id}}
    # a string userId; the sender is one of that user's connections: it gets it as well
    s1.send_json({"type": "users", "action": "send", "data": {"userId": "alice", "payload": {"x": 1}}, "requestId": 2})
    msg = {"type": "user", "action": "message", "data": {"payload": {"x": 1}, "from": s1.client_id}}
    assert s1.recv_json() == msg
    assert s1.recv_json() == {"type": "users", "action": "send", "response": {"n": 2}, "requestId": 2}
    assert s2.recv_json() == msg
    # an unknown user: nobody
    other.send_json({"type": "users", "action": "send", "data": {"userId": "nobody", "payload": 0}, "requestId": 3})
    assert other.recv_json() == {"type": "users", "action": "send", "response": {"n": 0}, "requestId": 3}
    # after one connection of user 7 leaves, the other still gets messages
    a1.send_frame(mwtest.OP_CLOSE, mwtest.close_payload(1000))
    assert a1.expect_close() == 1000

    def one_left():
        other.send_json({"type": "users", "action": "send", "data": {"userId": 7, "payload": "again"}, "requestId": 4})
        reply = other.recv_json()
        assert a2.recv_json() == {"type": "user", "action": "message",
                                  "data": {"payload": "again", "from": other.client_id}}
        return reply["response"] == {"n": 1}
    assert wait_until(one_left, timeout=3)
    for c in (a2, s1, s2, other):
        c.assert_served()
    w.assert_served()


def test_get_client_with_user(server):
    srv = server(app_lua=hs_app())
    w = connect(srv, hs(claims()))
    expect_authenticated(w, "alice")
    payload = claims(sub=99, role="admin", scopes=["read", "write"])
    c = connect(srv, hs(payload))
    expect_authenticated(c, 99)
    c.send_json({"type": "system", "action": "joinRoom", "data": {"roomName": "ops"}, "requestId": 1})
    assert c.recv_json()["response"]["success"] is True
    c.send_json({"type": "rooms", "action": "update", "data": {"key": "nick", "value": "root"}, "requestId": 2})
    assert c.recv_json()["response"] == {"ok": True}
    c.send_json({"type": "users", "action": "me", "requestId": 3})
    reply = c.recv_json()
    assert reply["type"] == "users" and reply["requestId"] == 3, reply
    info = reply["response"]
    keys = {"clientId", "user", "rooms", "metadata", "connectedAt", "lastActivity", "workerId"}
    assert keys <= set(info), f"getClient lacks {keys - set(info)}: {info}"
    assert info["clientId"] == c.client_id
    assert info["user"] == {"userId": 99, "payload": payload}
    assert info["rooms"] == ["ops"]
    assert info["metadata"] == {"nick": "root"}
    c.assert_served()
    w.assert_served()
