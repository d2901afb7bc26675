"""rooms.options in app.lua (reference: "Room options"): every mistake is a config error that
names its key, at start-up and in `moonwire check`; valid entries start the server."""
import pytest

from mwtest import run_cli

BAD = [
    ('{ { pattern = "chat:*", histroy = { size = 10 } } }', "rooms.options[1].histroy is not a known setting"),
    ('{ { pattern = "a" }, { pattern = "b", history = { size = 0 } } }',
     "rooms.options[2].history.size must be an integer from 1 to 10000, got 0"),
    ('{ { pattern = "a", history = { size = 10001 } } }', "rooms.options[1].history.size must be an integer"),
    ('{ { pattern = "a", history = { ttl = 0 } } }', "rooms.options[1].history.ttl must be a number of seconds > 0"),
    ('{ { pattern = "a", canJoin = "yes" } }', "rooms.options[1].canJoin must be false or a function"),
    ('{ { pattern = "a", presence = 1 } }', "rooms.options[1].presence must be true or false"),
    ('{ { history = { size = 1 } } }', "rooms.options[1].pattern must be a non-empty string"),
    ('"chat:*"', "rooms.options must be a list"),
]


@pytest.mark.parametrize("options,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_room_option_mistakes_are_config_errors(app_dir, options, message):
    app = app_dir(app_lua="return { rooms = { options = %s } }\n" % options)
    rc, out, err = run_cli(["check", str(app)])
    assert rc == 1, (rc, out, err)
    assert "config error: " + message in err, err


def test_two_mistakes_are_reported_together(server):
    srv = server(app_lua='return { rooms = { options = { { pattern = "a", histroy = {} }, '
                         '{ pattern = "b", joinLeave = "no" } } } }\n', wait=False)
    assert srv.wait_exit(20) == 1
    out = srv.output()
    assert "rooms.options[1].histroy" in out and "rooms.options[2].joinLeave" in out, out


def test_valid_options_serve(server):
    srv = server(app_lua='return { rooms = { options = { { pattern = "chat:*", history = { size = 100, ttl = 600 }, '
                         'presence = true, joinLeave = true, canJoin = function() return true end }, '
                         '{ pattern = "user:*", canJoin = false } } } }\n')
    c = srv.client()
    reply = c.request("echo", "say", data=[1], request_id=1)
    assert reply["response"] == [1], reply
