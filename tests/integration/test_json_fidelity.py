"""JSON fidelity: what a client sends comes back as it was (reference: "JSON").

The raw text of each reply is compared, not only the parsed value: Python's json would hide
`1.7647e+15` vs `1764700000000123` (both parse to numbers) and `{}` vs `[]` matters to a
browser. Integers up to 2^53 exact, other numbers in their shortest form, [] vs {} kept
(also nested and for lists the bindings return), emptyArray and array(t), NaN/inf refused
with `Internal error` while the worker keeps serving.
"""
import asyncio
import json

import pytest

from mwtest import arun, ws_connect

FIDELITY = '''
local mw = require("moonwire")
local F = {}
function F:marked() return { empty = mw.emptyArray, marked = mw.array({}), plain = {}, list = mw.array({ 1, 2 }) } end
function F:lists(clientId)
  local c = self.webSocketServer:getClient(clientId)
  return { members = self.webSocketServer:getRoomClients("nobody-here"), rooms = self.webSocketServer:getRooms(),
           clientRooms = c.rooms, rows = self.database:query("SELECT 1 AS x WHERE 1 = 0") }
end
function F:nan() return { x = 0 / 0 } end
function F:inf() return { x = math.huge } end
function F:sendnan(clientId)
  local ok, why = pcall(self.webSocketServer.sendMessageToClient, self.webSocketServer, clientId,
                        { type = "t", action = "a", data = { x = -math.huge } })
  return { ok = ok, why = tostring(why):match("Cannot serialise number") or tostring(why) }
end
return F
'''


def app_files():
    return {"controllers/fidelity.lua": FIDELITY}


async def raw_request(c, text, timeout=15):
    await c.ws.send(text)
    return await asyncio.wait_for(c.ws.recv(), timeout)


def response_text(raw):
    """The text of the "response" value inside a raw reply frame (keys may be in any order)."""
    start = raw.index('"response":') + len('"response":')
    decoder = json.JSONDecoder()
    _, end = decoder.raw_decode(raw, start)
    return raw[start:end]


@pytest.mark.parametrize("data,expected", [
    ("1764700000000123", "1764700000000123"),
    ("9007199254740991", "9007199254740991"),
    ("-9007199254740992", "-9007199254740992"),
    ("[]", "[]"),
    ("{}", "{}"),
    ("[[],[{}],{\"a\":[]}]", "[[],[{}],{\"a\":[]}]"),
    ("-0", "-0"),
    ("0.1", "0.1"),
    ("1e-7", "1e-07"),
    ("1e21", "1e+21"),
    ("0.30000000000000004", "0.30000000000000004"),
    ("1.7976931348623157e308", "1.7976931348623157e+308"),
    ("\"a/b \\u00e9 \\ud83d\\ude00\"", "\"a/b \u00e9 \U0001F600\""),
    ("[1,null,true]", "[1,null,true]"),
], ids=["microseconds", "2^53-1", "-2^53", "empty-array", "empty-object", "nested", "minus-zero", "0.1",
        "1e-7", "1e21", "0.1+0.2", "max-double", "escapes", "null-inside"])
def test_a_controller_echo_keeps_what_was_sent(server, data, expected):
    srv = server()
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        raw = await raw_request(c, '{"type":"echo","action":"say","data":%s,"requestId":1}' % data)
        assert response_text(raw) == expected, raw
    arun(body())
    w.assert_served()


def test_the_issue_example_round_trips_exactly(server):
    srv = server()

    async def body():
        c = await ws_connect(srv)
        raw = await raw_request(c, '{"type":"echo","action":"say","data":'
                                   '{"n":1764700000000123,"big":9007199254740991,"arr":[]},"requestId":1}')
        text = response_text(raw)
        for part in ('"n":1764700000000123', '"big":9007199254740991', '"arr":[]'):
            assert part in text, raw
        assert "e+15" not in raw and '"arr":{}' not in raw, raw
    arun(body())


def test_empty_array_and_array_mark_arrays(server):
    srv = server(files=app_files())

    async def body():
        c = await ws_connect(srv)
        text = response_text(await raw_request(c, '{"type":"fidelity","action":"marked","requestId":1}'))
        assert json.loads(text) == {"empty": [], "marked": [], "plain": {}, "list": [1, 2]}
        for part in ('"empty":[]', '"marked":[]', '"plain":{}', '"list":[1,2]'):
            assert part in text, text
    arun(body())


def test_lists_from_bindings_are_arrays_also_when_empty(server):
    srv = server(files=app_files())

    async def body():
        c = await ws_connect(srv)
        text = response_text(await raw_request(c, '{"type":"fidelity","action":"lists","requestId":1}'))
        for part in ('"members":[]', '"rooms":[]', '"clientRooms":[]', '"rows":[]'):
            assert part in text, text
    arun(body())


@pytest.mark.parametrize("action", ["nan", "inf"])
def test_a_reply_holding_nan_or_infinity_is_an_internal_error(server, action):
    srv = server(files=app_files())
    w = srv.client()

    async def body():
        c = await ws_connect(srv)
        reply = json.loads(await raw_request(c, '{"type":"fidelity","action":"%s","requestId":1}' % action))
        assert reply["type"] == "error" and reply["data"]["error"] == "Internal error", reply
        assert reply["data"]["code"] == "internal", reply
        again = json.loads(await raw_request(c, '{"type":"echo","action":"say","data":[],"requestId":2}'))
        assert again["response"] == [], again
    arun(body())
    w.assert_served()


def test_a_send_given_infinity_raises_and_sends_nothing(server):
    srv = server(files=app_files())

    async def body():
        c = await ws_connect(srv)
        reply = json.loads(await raw_request(c, '{"type":"fidelity","action":"sendnan","requestId":1}'))
        assert reply["response"] == {"ok": False, "why": "Cannot serialise number"}, reply
        await c.expect_nothing(0.5)  # the refused message never arrives
    arun(body())
