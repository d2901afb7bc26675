"""The database binding on the embedded SQLite (sqlite:APP_DIR/data/app.db by default, and
sqlite::memory:): values are bound, never spliced; types map both ways; SQL errors come back
as nil, err; transactions commit or roll back; a slow query does not hold up other clients."""
import time

import pytest

from mwtest import RawWS

DB_LUA = (__import__("mwtest").APPS / "db" / "controllers" / "d.lua").read_text()


def start(server, args=()):
    return server(files={"controllers/d.lua": DB_LUA}, args=args)


@pytest.mark.parametrize("url", [None, "sqlite::memory:"], ids=["file", "memory"])
def test_exec_query_types_and_injection(server, url):
    srv = start(server, args=("--database", url) if url else ())
    w = srv.client()
    c = RawWS(srv.port)
    assert c.request("d", "setup")["response"] == {"changes": 0, "lastInsertId": 0}
    evil = "x'); DROP TABLE m; --"
    added = c.request("d", "add", {"room": "r1", "text": evil, "score": 1.5, "n": 42})["response"]
    assert added == {"changes": 1, "lastInsertId": 1}
    c.request("d", "add", {"room": "r1", "text": "plain"})  # score and n stay NULL
    rows = c.request("d", "list", {"room": "r1"})["response"]
    assert rows == [{"id": 1, "room": "r1", "text": evil, "score": 1.5, "n": 42},
                    {"id": 2, "room": "r1", "text": "plain"}]
    if url is None:
        assert (srv.app_dir / "data" / "app.db").exists()
    w.assert_served()


def test_sql_error_is_nil_and_message(server):
    srv = start(server)
    c = RawWS(srv.port)
    assert c.request("d", "bad")["response"] == {"err": "no such table: nope"}
    assert c.request("d", "setup")["type"] == "d"  # the connection still works


def test_transaction_commits_or_rolls_back(server):
    srv = start(server)
    c = RawWS(srv.port)
    c.request("d", "setup")
    failed = c.request("d", "tx", {"fail": True})["response"]
    assert failed["ok"] is False and "boom" in failed["res"]
    assert c.request("d", "list", {"room": "tx"})["response"] in ([], {})
    assert c.request("d", "tx", {})["response"] == {"ok": True, "res": "committed"}
    assert [r["text"] for r in c.request("d", "list", {"room": "tx"})["response"]] == ["inside"]


def test_a_slow_query_does_not_delay_another_clients_echo(server):
    srv = start(server)
    a, b = RawWS(srv.port), RawWS(srv.port)
    a.send_json({"type": "d", "action": "slow", "requestId": 1})
    time.sleep(0.02)
    started = time.monotonic()
    assert b.request("echo", "say", "quick")["response"] == "quick"
    echo_time = time.monotonic() - started
    slow = a.recv_json(timeout=20)
    slow_time = time.monotonic() - started
    assert slow["response"] == [{"n": 3000000}]
    assert echo_time < slow_time / 2, (echo_time, slow_time)
