"""Numbers beyond the double range are parse errors (issue 10; reference: "Error frames").

`1e400`, `-1e400` and 400-digit integers in a client message answer `Failed to parse JSON`
and reach no controller: before, they became +-inf, every echo of them was an `Internal
error`, and the log had an ERROR traceback. Large numbers that fit still work.
"""
import pytest

from mwtest import arun, ws_connect
from test_protocol import err

BIG = "9" * 400


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1E+400", "2e308", BIG, "-" + BIG, "1" + "0" * 309 + ".5"],
                         ids=["1e400", "-1e400", "1E+400", "2e308", "400-digits", "minus-400-digits",
                              "310-digit-real"])
@pytest.mark.parametrize("where", ["data", "nested", "top-level-extra"])
def test_number_beyond_double_range_is_a_parse_error(server, number, where):
    srv = server()
    w = srv.client()
    texts = {
        "data": '{"type":"echo","action":"say","data":%s,"requestId":1}',
        "nested": '{"type":"echo","action":"say","data":{"a":[1,{"b":%s}]},"requestId":1}',
        "top-level-extra": '{"type":"echo","action":"say","x":%s,"requestId":1}',
    }

    async def body():
        c = await ws_connect(srv)
        assert await c.request(texts[where] % number) == err("Failed to parse JSON")
        reply = await c.request({"type": "echo", "action": "say", "data": 1, "requestId": 2})
        assert reply == {"type": "echo", "action": "say", "response": 1, "requestId": 2}
    arun(body())
    w.assert_served()
    assert "ERROR" not in srv.log(), srv.log()
    assert "Internal error" not in srv.log()


@pytest.mark.parametrize("number,value", [("1.5e308", 1.5e308), ("-1.7976931348623157e308", -1.7976931348623157e308),
                                          ("1e-400", 0.0), ("12345678901234567890123456789012345", 1.2345678901234568e34)],
                         ids=["near-max", "min", "underflow-is-zero", "35-digits"])
def test_large_numbers_that_fit_still_work(server, number, value):
    srv = server()

    async def body():
        c = await ws_connect(srv)
        reply = await c.request('{"type":"echo","action":"say","data":%s,"requestId":1}' % number)
        assert reply["response"] == pytest.approx(value, rel=1e-12), reply
    arun(body())
