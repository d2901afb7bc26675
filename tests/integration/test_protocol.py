"""Wire protocol (docs/reference.md sections 5, 6): message shapes, errors, routing, delivery.

Clients are python3-websockets connections; `w` is a RawWS witness opened before
the behaviour under test and probed afterwards to show the server still serves it.
"""
import asyncio
import json
import time

import pytest

from mwtest import CLIENT_ID_RE, arun, ws_connect


def err(text, **extra):
    return {"type": "error", "action": "message", "data": {"error": text, **extra}}


# --------------------------------------------------------------------------- connect

def test_connected_frame_shape_and_client_ids(server):
    srv = server()
    w = srv.client()

    async def body():
        clients = [await ws_connect(srv) for _ in range(10)]
        ids = []
        for c in clients:
            assert c.connected == {"type": "system", "action": "connected",
                                   "data": {"clientId": c.client_id}}
            assert isinstance(c.client_id, str)
            assert CLIENT_ID_RE.match(c.client_id), c.client_id
            ids.append(c.client_id)
        assert w.client_id not in ids
        assert len(set(ids)) == len(ids)
        for c in clients:
            await c.close()
    arun(body())
    w.assert_served()


def test_controller_sees_its_own_client_id(server):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": "echo", "action": "whoami", "requestId": 1})
        assert reply == {"type": "echo", "action": "whoami", "response": c.client_id, "requestId": 1}
    arun(body())
    w.assert_served()


# --------------------------------------------------------------------------- replies

@pytest.mark.parametrize("value", [
    {"a": 1, "nested": {"list": [1, 2, 3], "s": "x"}},
    [1, "two", {"three": 3}],
    "héllo ✓ 😀",
    12.5,
    0,
    True,
    False,
], ids=["object", "array", "unicode", "float", "zero", "true", "false"])
def test_reply_echoes_value_and_request_id(server, value):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": "echo", "action": "say", "data": value, "requestId": 7})
        assert reply == {"type": "echo", "action": "say", "response": value, "requestId": 7}
    arun(body())
    w.assert_served()


@pytest.mark.parametrize("rid", [42, 123456789, "abc-123", ""], ids=["int", "bigint", "str", "empty-str"])
def test_request_id_types_echoed(server, rid):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": "echo", "action": "say", "data": "x", "requestId": rid})
        assert reply == {"type": "echo", "action": "say", "response": "x", "requestId": rid}
    arun(body())
    w.assert_served()


def test_reply_without_request_id_has_no_request_id(server):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": "echo", "action": "say", "data": {"k": "v"}})
        assert reply == {"type": "echo", "action": "say", "response": {"k": "v"}}
    arun(body())
    w.assert_served()


def test_null_request_id_is_treated_as_absent(server):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": "echo", "action": "say", "data": 1, "requestId": None})
        assert reply == {"type": "echo", "action": "say", "response": 1}
    arun(body())
    w.assert_served()


def test_nil_return_has_no_response_key(server):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": "echo", "action": "nothing", "data": 5, "requestId": "n1"})
        assert reply == {"type": "echo", "action": "nothing", "requestId": "n1"}
        reply = await c.request({"type": "echo", "action": "nothing"})
        assert reply == {"type": "echo", "action": "nothing"}
    arun(body())
    w.assert_served()


@pytest.mark.parametrize("message", [
    {"type": "echo", "action": "kind", "requestId": 1},
    {"type": "echo", "action": "kind", "data": None, "requestId": 1},
], ids=["absent", "null"])
def test_absent_or_null_data_reaches_controller_as_nil(server, message):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request(message)
        assert reply == {"type": "echo", "action": "kind", "response": {"kind": "nil"}, "requestId": 1}
        reply = await c.request({"type": "echo", "action": "say", "data": None, "requestId": 2})
        assert reply == {"type": "echo", "action": "say", "requestId": 2}
    arun(body())
    w.assert_served()


def test_object_data_reaches_controller_as_table(server):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": "echo", "action": "kind", "data": {"a": 1}, "requestId": 1})
        assert reply == {"type": "echo", "action": "kind", "response": {"kind": "table"}, "requestId": 1}
    arun(body())
    w.assert_served()


# --------------------------------------------------------------------------- malformed messages

@pytest.mark.parametrize("text", ["hello", '{"type":', "{'type': 'echo'}", "", "\u00e9"],
                         ids=["word", "truncated", "single-quotes", "empty", "non-ascii"])
def test_not_json(server, text):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        assert await c.request(text) == err("Failed to parse JSON")
        # the connection stays usable
        reply = await c.request({"type": "echo", "action": "say", "data": 1, "requestId": 1})
        assert reply == {"type": "echo", "action": "say", "response": 1, "requestId": 1}
    arun(body())
    w.assert_served()


@pytest.mark.parametrize("text", ["[1,2]", "[]", "42", '"str"', "null", "true"],
                         ids=["array", "empty-array", "number", "string", "null", "bool"])
def test_json_but_not_object(server, text):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        assert await c.request(text) == err("Invalid WebSocket message")
    arun(body())
    w.assert_served()


@pytest.mark.parametrize("message", [
    {"action": "say"},
    {"type": 5, "action": "say"},
    {"type": None, "action": "say"},
    {"type": {"x": 1}, "action": "say"},
    {},
], ids=["missing", "number", "null", "object", "empty-object"])
def test_missing_type(server, message):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        assert await c.request(message) == err("Missing WebSocket message type")
    arun(body())
    w.assert_served()


@pytest.mark.parametrize("message", [
    {"type": "echo"},
    {"type": "echo", "action": 7},
    {"type": "echo", "action": None},
    {"type": "echo", "action": ["say"]},
], ids=["missing", "number", "null", "array"])
def test_missing_action(server, message):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        assert await c.request(message) == err("Missing WebSocket message action")
    arun(body())
    w.assert_served()


# --------------------------------------------------------------------------- routing errors

@pytest.mark.parametrize("type_,action", [
    ("nope", "say"),          # no such controller
    ("echo", "nope"),         # no such method
    ("echo", "_private"),     # underscore methods are not routable
    ("echo", "notAFunction"), # a field that is not a function
    ("echo", "__index"),
], ids=["type", "action", "private", "non-function", "dunder"])
def test_unknown_route(server, type_, action):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": type_, "action": action, "data": {}, "requestId": "r1"})
        assert reply == err("Unknown route", code="not_found", type=type_, action=action, requestId="r1")
        reply = await c.request({"type": type_, "action": action})
        assert reply == err("Unknown route", code="not_found", type=type_, action=action)
    arun(body())
    w.assert_served()


def test_unknown_route_numeric_request_id(server):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": "nope", "action": "x", "requestId": 99})
        assert reply == err("Unknown route", code="not_found", type="nope", action="x", requestId=99)
    arun(body())
    w.assert_served()


# --------------------------------------------------------------------------- controller errors

def test_coded_error(server):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": "fail", "action": "coded", "requestId": 3})
        assert reply == err("Nope", code="bad_input", type="fail", action="coded", requestId=3)
        reply = await c.request({"type": "fail", "action": "coded"})
        assert reply == err("Nope", code="bad_input", type="fail", action="coded")
        # the connection goes on
        reply = await c.request({"type": "echo", "action": "say", "data": 1, "requestId": 4})
        assert reply == {"type": "echo", "action": "say", "response": 1, "requestId": 4}
    arun(body())
    w.assert_served()


def _raw_text_of_next(c):
    async def get():
        return await asyncio.wait_for(c.ws.recv(), 5)
    return get()


def test_plain_error_hides_internals(server):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        await c.send({"type": "fail", "action": "explode", "requestId": 5})
        raw = await _raw_text_of_next(c)
        assert json.loads(raw) == err("Internal error", code="internal", type="fail", action="explode",
                                      requestId=5)
        assert "boom" not in raw and ".lua" not in raw and "traceback" not in raw.lower()
    arun(body())
    w.assert_served()
    log = srv.wait_log(lambda t: "boom" in t and "traceback" in t.lower())
    assert log is not None, "the server log must contain the error and its traceback"
    assert "fail.lua" in log
    assert any("fail" in line and "explode" in line for line in log.splitlines()), \
        "the log must name the route (fail/explode)"


def test_table_error_without_code_is_internal(server):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        await c.send({"type": "fail", "action": "nocode", "requestId": "t"})
        raw = await _raw_text_of_next(c)
        assert json.loads(raw) == err("Internal error", code="internal", type="fail", action="nocode",
                                      requestId="t")
        assert "leaky" not in raw and "secret-path" not in raw and "internal-detail" not in raw
    arun(body())
    w.assert_served()


def test_plain_error_with_dev_has_traceback(server):
    srv = server(dev=True)
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": "fail", "action": "explode", "requestId": 6})
        assert reply["type"] == "error" and reply["action"] == "message"
        data = reply["data"]
        tb = data.pop("traceback", None)
        assert isinstance(tb, str) and tb, f"--dev error frames carry a traceback string: {reply}"
        assert "fail.lua" in tb
        assert data == {"error": "Internal error", "code": "internal", "type": "fail",
                        "action": "explode", "requestId": 6}
        assert set(reply) == {"type", "action", "data"}
    arun(body())
    w.assert_served()
    log = srv.wait_log(lambda t: "boom" in t and "traceback" in t.lower())
    assert log is not None and "fail.lua" in log
    assert any("fail" in line and "explode" in line for line in log.splitlines()), \
        "the log must name the route (fail/explode)"


# --------------------------------------------------------------------------- ordering

def test_messages_of_one_client_are_handled_in_arrival_order(server):
    srv = server(app_lua="return { limits = { rate = { messages = 10000, per = 1, burst = 10000 } } }\n")
    w = srv.client()
    n = 200

    async def body():
        c = await ws_connect(srv)
        frames = [json.dumps({"type": "order", "action": "add", "data": i, "requestId": i}) for i in range(n)]
        await asyncio.gather(*(c.ws.send(f) for f in frames))
        for i in range(n):
            reply = await c.recv(10)
            assert reply == {"type": "order", "action": "add", "response": i, "requestId": i}
        reply = await c.request({"type": "order", "action": "list", "requestId": "list"})
        assert reply == {"type": "order", "action": "list", "response": list(range(n)), "requestId": "list"}
    arun(body(), timeout=60)
    w.assert_served()


def test_pipelined_messages_in_one_tcp_write_are_all_answered_in_order(server):
    srv = server(app_lua="return { limits = { rate = { messages = 10000, per = 1, burst = 10000 } } }\n")
    w = srv.client()
    c = srv.client()
    from mwtest import OP_TEXT, build_frame
    blob = b"".join(build_frame(OP_TEXT, json.dumps({"type": "echo", "action": "say", "data": i,
                                                      "requestId": i}))
                    for i in range(50))
    c.send_raw(blob)
    for i in range(50):
        assert c.recv_json() == {"type": "echo", "action": "say", "response": i, "requestId": i}
    w.assert_served()


# --------------------------------------------------------------------------- delivery bindings

def test_send_message_to_all_reaches_everyone_including_sender(server):
    srv = server()
    w = srv.client()

    async def body():
        a, b, c = [await ws_connect(srv) for _ in range(3)]
        await a.send({"type": "bcast", "action": "all", "data": "hi", "requestId": 1})
        got = [await a.recv(), await a.recv()]
        expected_bcast = {"type": "bcast", "action": "all", "data": "hi"}
        assert expected_bcast in got
        assert {"type": "bcast", "action": "all", "response": True, "requestId": 1} in got
        assert await b.recv() == expected_bcast
        assert await c.recv() == expected_bcast
        return expected_bcast
    expected = arun(body())
    assert w.recv_json() == expected
    w.assert_served()


def test_send_message_to_all_accepts_a_json_string(server):
    srv = server()
    w = srv.client()

    async def body():
        a, b = await ws_connect(srv), await ws_connect(srv)
        await a.send({"type": "bcast", "action": "allString", "requestId": 1})
        got = [await a.recv(), await a.recv()]
        expected = {"type": "bcast", "action": "string", "data": "raw json"}
        assert expected in got
        assert await b.recv() == expected
    arun(body())
    assert w.recv_json() == {"type": "bcast", "action": "string", "data": "raw json"}
    w.assert_served()


def test_send_message_to_all_exclude_skips_sender(server):
    srv = server()
    w = srv.client()

    async def body():
        a, b = await ws_connect(srv), await ws_connect(srv)
        reply = await a.request({"type": "bcast", "action": "others", "data": {"n": 1}, "requestId": 1})
        assert reply == {"type": "bcast", "action": "others", "response": True, "requestId": 1}
        assert await b.recv() == {"type": "bcast", "action": "others", "data": {"n": 1}}
        # nothing else is queued for the sender: its next frame is the echo reply
        reply = await a.request({"type": "echo", "action": "say", "data": 2, "requestId": 2})
        assert reply == {"type": "echo", "action": "say", "response": 2, "requestId": 2}
        await a.expect_nothing()
    arun(body())
    assert w.recv_json() == {"type": "bcast", "action": "others", "data": {"n": 1}}
    w.assert_served()


def test_send_message_to_client(server):
    srv = server()
    w = srv.client()

    async def body():
        a, b, c = [await ws_connect(srv) for _ in range(3)]
        reply = await a.request({"type": "bcast", "action": "to",
                                 "data": {"target": b.client_id, "text": "yo"}, "requestId": 1})
        assert reply == {"type": "bcast", "action": "to", "response": True, "requestId": 1}
        assert await b.recv() == {"type": "bcast", "action": "direct",
                                  "data": {"from": a.client_id, "text": "yo"}}
        await c.expect_nothing()
        await a.expect_nothing()
    arun(body())
    w.assert_served()  # the witness got nothing before its echo reply (checked by exact match)


def test_get_client(server):
    srv = server()
    w = srv.client()

    async def body():
        a, b = await ws_connect(srv), await ws_connect(srv)
        before = time.time()
        reply = await a.request({"type": "bcast", "action": "info", "requestId": 1})
        resp = reply["response"]
        assert reply["requestId"] == 1
        assert resp["found"] is True and resp["clientId"] == a.client_id
        assert isinstance(resp.get("connectedAt"), (int, float, str)), resp
        reply = await a.request({"type": "bcast", "action": "info", "data": {"id": b.client_id}, "requestId": 2})
        assert reply["response"]["found"] is True and reply["response"]["clientId"] == b.client_id
        reply = await a.request({"type": "bcast", "action": "info",
                                 "data": {"id": "no-such-client-0000000000"}, "requestId": 3})
        assert reply == {"type": "bcast", "action": "info", "response": {"found": False}, "requestId": 3}
        return before
    arun(body())
    w.assert_served()


def test_get_client_after_disconnect_is_nil(server):
    srv = server()
    w = srv.client()

    async def body():
        a, b = await ws_connect(srv), await ws_connect(srv)
        gone = b.client_id
        await b.close()
        deadline = time.monotonic() + 3
        while True:
            reply = await a.request({"type": "bcast", "action": "info", "data": {"id": gone}, "requestId": 1})
            if reply["response"] == {"found": False} or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert reply == {"type": "bcast", "action": "info", "response": {"found": False}, "requestId": 1}
    arun(body())
    w.assert_served()


def test_client_count(server):
    srv = server()
    w = srv.client()

    async def body():
        a, b, c = [await ws_connect(srv) for _ in range(3)]
        reply = await a.request({"type": "bcast", "action": "count", "requestId": 1})
        assert reply == {"type": "bcast", "action": "count", "response": {"count": 4}, "requestId": 1}
        await c.close()
        deadline = time.monotonic() + 3
        while True:
            reply = await a.request({"type": "bcast", "action": "count", "requestId": 2})
            if reply["response"]["count"] == 3 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert reply == {"type": "bcast", "action": "count", "response": {"count": 3}, "requestId": 2}
    arun(body())
    w.assert_served()


# --------------------------------------------------------------------------- routes

def test_routes_alias_maps_to_controller_method(server):
    srv = server(app_lua='return { routes = { { type = "alias", action = "go", controller = "echo", '
                         'method = "say" } } }\n')
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request({"type": "alias", "action": "go", "data": {"v": 5}, "requestId": 1})
        assert reply == {"type": "alias", "action": "go", "response": {"v": 5}, "requestId": 1}
        # the file-name route still works next to the alias
        reply = await c.request({"type": "echo", "action": "say", "data": 6, "requestId": 2})
        assert reply == {"type": "echo", "action": "say", "response": 6, "requestId": 2}
        # other actions of the alias type are not routed
        reply = await c.request({"type": "alias", "action": "other", "requestId": 3})
        assert reply == err("Unknown route", code="not_found", type="alias", action="other", requestId=3)
    arun(body())
    w.assert_served()


def test_broadcast_storm_every_client_gets_every_message(server):
    srv = server()
    w = srv.client()
    n = 30

    async def body():
        clients = [await ws_connect(srv) for _ in range(n)]
        await asyncio.gather(*(c.send({"type": "bcast", "action": "all", "data": i, "requestId": i})
                               for i, c in enumerate(clients)))

        async def drain(i, c):
            got, replies = [], []
            while len(got) < n or not replies:
                m = await c.recv(10)
                if m.get("action") == "all" and "requestId" in m:
                    replies.append(m)
                else:
                    got.append(m)
            assert replies == [{"type": "bcast", "action": "all", "response": True, "requestId": i}]
            assert sorted(m["data"] for m in got) == list(range(n))
            assert all(m == {"type": "bcast", "action": "all", "data": m["data"]} for m in got)
        await asyncio.gather(*(drain(i, c) for i, c in enumerate(clients)))
    arun(body(), timeout=60)
    got = sorted(w.recv_json()["data"] for _ in range(n))
    assert got == list(range(n))
    w.assert_served()


def test_broadcast_while_clients_vanish(server):
    import socket as _socket
    from mwtest import RawWS
    srv = server()
    w = srv.client()
    (worker,) = srv.worker_pids()
    talker = srv.client()
    for round_ in range(5):
        doomed = [RawWS(srv.port) for _ in range(10)]
        talker.send_json({"type": "bcast", "action": "all", "data": "x" * 20000, "requestId": round_})
        for d in doomed:  # RST while the broadcast is being written to them
            d.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            d.close()
        msgs = [talker.recv_json(), talker.recv_json()]
        assert {"type": "bcast", "action": "all", "response": True, "requestId": round_} in msgs
        assert w.recv_json() == {"type": "bcast", "action": "all", "data": "x" * 20000}
    assert srv.worker_pids() == [worker], "the worker must survive clients vanishing mid-broadcast"
    w.assert_served()
