"""The database binding, the same suite on both backends: the embedded SQLite
(sqlite:APP_DIR/data/app.db by default, and sqlite::memory:) and a real PostgreSQL started by
the tests (pgserver.py). Values are bound, never spliced; types map both ways; SQL errors come
back as nil, err; transactions commit or roll back; a slow query does not hold up other
clients. PostgreSQL only: the server restarting under a running worker, refused and
misconfigured connections, transactions on their own pooled connection, the pool's queue."""
import concurrent.futures
import socket
import time

import pytest

import mwtest
import pgserver

DB_LUA = (mwtest.APPS / "db" / "controllers" / "d.lua").read_text()


def start(server, args=()):
    return server(files={"controllers/d.lua": DB_LUA}, args=args)


class Backend:
    def __init__(self, name, args):
        self.name = name
        self.args = args

    @property
    def pg(self):
        return self.name == "postgres"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    if request.param == "sqlite":
        return Backend("sqlite", ())
    return Backend("postgres", ("--database", request.getfixturevalue("pg_url")))


def empty(rows):
    return rows in ([], {})  # lua-cjson cannot tell an empty array from an empty object


# --------------------------------------------------------------------------- both backends

def test_exec_query_types_and_injection(server, backend):
    srv = start(server, backend.args)
    w = srv.client()
    c = srv.client()
    setup = c.request("d", "setup")["response"]
    assert setup == ({"changes": 0} if backend.pg else {"changes": 0, "lastInsertId": 0})
    assert c.request("d", "backend")["response"] == backend.name
    evil = "x'); DROP TABLE m; --"
    added = c.request("d", "add", {"room": "r1", "text": evil, "score": 1.5, "n": 42})["response"]
    assert added == {"changes": 1, "lastInsertId": 1}  # INSERT ... RETURNING id on both
    c.request("d", "add", {"room": "r1", "text": "plain"})  # score and n stay NULL
    rows = c.request("d", "list", {"room": "r1"})["response"]
    assert rows == [{"id": 1, "room": "r1", "text": evil, "score": 1.5, "n": 42},
                    {"id": 2, "room": "r1", "text": "plain"}]
    # an injection attempt in a WHERE value matches nothing
    assert empty(c.request("d", "list", {"room": "r1' OR '1'='1"})["response"])
    assert empty(c.request("d", "list", {"room": "r1\" OR 1=1 --"})["response"])
    if not backend.pg:
        assert (srv.app_dir / "data" / "app.db").exists()
    w.assert_served()


def test_last_insert_id_without_returning(server, backend):
    srv = start(server, backend.args)
    c = srv.client()
    c.request("d", "setup")
    res = c.request("d", "plain", {"room": "p", "text": "t"})["response"]
    # SQLite reports the rowid; PostgreSQL has no such thing without RETURNING
    assert res == ({"changes": 1} if backend.pg else {"changes": 1, "lastInsertId": 1})
    updated = c.request("d", "x", {"sql": "UPDATE m SET text = ? WHERE room = ?", "args": ["u", "p"]})["response"]
    assert updated["res"]["changes"] == 1


def test_types_both_ways(server, backend):
    srv = start(server, backend.args)
    c = srv.client()
    c.request("d", "setup")
    got = c.request("d", "types")["response"]
    # booleans go in as 1/0 on both; PostgreSQL's boolean column gives them back as booleans
    assert got["flags"] == ([True, False] if backend.pg else [1, 0])
    assert got["n"] == [1, True]  # NULL is an absent key
    assert got["bytes_same"] is True and got["bytes_len"] == 12  # binary strings, NUL bytes included
    assert got["score"] == 2 ** 40 + 0.5
    assert got["count"] == 2


def test_placeholders_are_bound_not_spliced(server, backend):
    srv = start(server, backend.args)
    c = srv.client()
    q = c.request("d", "q", {"sql": "SELECT '?' AS q, ? AS v", "args": ["it's ?"]})["response"]
    assert q == {"rows": [{"q": "?", "v": "it's ?"}]}
    # a comment's ? is not a placeholder
    q = c.request("d", "q", {"sql": "SELECT ? AS v -- really?\n", "args": ["x"]})["response"]
    assert q == {"rows": [{"v": "x"}]}
    bad = c.request("d", "q", {"sql": "SELECT ? AS a, ? AS b", "args": ["only one"]})["response"]
    assert bad == {"err": "the statement has 2 placeholder(s) but 1 value(s) were given"}


def test_sql_error_is_nil_and_message(server, backend):
    srv = start(server, backend.args)
    c = srv.client()
    want = 'relation "nope" does not exist' if backend.pg else "no such table: nope"
    assert c.request("d", "bad")["response"] == {"err": want}
    assert c.request("d", "setup")["type"] == "d"  # the connection still works
    c.request("d", "add", {"room": "k", "text": "t"})
    dup = c.request("d", "x", {"sql": "INSERT INTO m(id, room) VALUES (?, ?)", "args": [1, "k"]})["response"]
    assert "err" in dup and "res" not in dup
    assert ("duplicate key" in dup["err"]) if backend.pg else ("UNIQUE constraint failed" in dup["err"])
    assert len(c.request("d", "list", {"room": "k"})["response"]) == 1


def test_transaction_commits_or_rolls_back(server, backend):
    srv = start(server, backend.args)
    c = srv.client()
    c.request("d", "setup")
    failed = c.request("d", "tx", {"fail": True})["response"]
    assert failed["ok"] is False and "boom" in failed["res"]
    assert empty(c.request("d", "list", {"room": "tx"})["response"])
    assert c.request("d", "tx", {})["response"] == {"ok": True, "res": "committed"}
    assert [r["text"] for r in c.request("d", "list", {"room": "tx"})["response"]] == ["inside"]


def test_transaction_fn_sees_its_own_rows_and_does_not_nest(server, backend):
    srv = start(server, backend.args)
    c = srv.client()
    c.request("d", "setup")
    reply = c.request("d", "txsees")
    assert reply["type"] == "error" and reply["data"]["code"] == "rolled_back"
    assert reply["data"]["error"] == "1/1"  # tx:query and the coroutine's database:query alike
    assert empty(c.request("d", "list", {"room": "txsees"})["response"])
    nested = c.request("d", "nested")["response"]
    assert nested["ok"] is False and "do not nest" in nested["err"]
    assert c.request("d", "tx", {})["response"]["ok"] is True  # nothing was left locked or pinned


def test_a_slow_query_does_not_delay_another_clients_echo(server, backend):
    srv = start(server, backend.args)
    a, b = srv.client(), srv.client()
    a.send_json({"type": "d", "action": "slow", "requestId": 1})
    time.sleep(0.02)
    started = time.monotonic()
    assert b.request("echo", "say", "quick")["response"] == "quick"
    echo_time = time.monotonic() - started
    slow = a.recv_json(timeout=20)
    slow_time = time.monotonic() - started
    assert slow["response"] == [{"n": 3000000}]
    assert echo_time < slow_time / 2, (echo_time, slow_time)


# --------------------------------------------------------------------------- URLs

def test_sqlite_in_memory(server):
    srv = start(server, ("--database", "sqlite::memory:"))
    c = srv.client()
    c.request("d", "setup")
    assert c.request("d", "add", {"room": "r", "text": "t"})["response"] == {"changes": 1, "lastInsertId": 1}
    assert not (srv.app_dir / "data" / "app.db").exists()


# An unknown scheme is a config error that stops start-up: test_cli.py.


def test_sqlite_default_folder_not_writable_fails_once_at_start(server):
    # The tests run as root, for whom chmod does not stop a write: instead `data` is a regular
    # file, so data/app.db can be neither created nor opened, whoever runs the server.
    srv = server(files={"controllers/d.lua": DB_LUA, "data": ""}, wait=False)
    rc = srv.wait_exit(10)
    assert rc is not None, "serve must stop instead of retrying forever"
    assert rc != 0
    out = srv.output()
    assert str(srv.app_dir / "data" / "app.db") in out, out
    assert "--database sqlite::memory:" in out, out
    assert out.count("unable to open database file") <= 1, out
    # the way out it names works: the same app in memory
    ok = server(files={"controllers/d.lua": DB_LUA, "data": ""}, args=("--database", "sqlite::memory:"))
    w = ok.client()
    c = ok.client()
    c.request("d", "setup")
    assert c.request("d", "add", {"room": "r", "text": "t"})["response"] == {"changes": 1, "lastInsertId": 1}
    w.assert_served()


def test_sqlite_explicit_path_not_creatable_fails_at_start(server):
    # /proc refuses new folders, also to root
    srv = server(args=("--database", "sqlite:/proc/moonwire-no-such-folder/app.db"), wait=False)
    rc = srv.wait_exit(10)
    assert rc is not None and rc != 0
    out = srv.output()
    assert "/proc/moonwire-no-such-folder/app.db" in out, out
    assert "--database sqlite::memory:" in out, out


# --------------------------------------------------------------------------- PostgreSQL only

def closed_port():
    port = mwtest.free_port()
    with socket.socket() as s:  # nothing listens there
        s.bind(("127.0.0.1", port))
    return port


def test_postgres_refused_connection_is_an_error_frame(server):
    port = closed_port()
    srv = start(server, ("--database", f"postgres://u:hunter2@127.0.0.1:{port}/app"))
    c = srv.client()
    started = time.monotonic()
    reply = c.request("d", "must")
    assert time.monotonic() - started < 3
    assert reply["type"] == "error" and reply["data"]["code"] == "database", reply
    assert reply["data"]["error"] == f"database: cannot connect to PostgreSQL at 127.0.0.1:{port}: Connection refused"
    c.assert_served()  # the worker goes on serving
    again = c.request("d", "must")  # a second try fails the same way (backoff, no hang)
    assert "cannot connect to PostgreSQL" in again["data"]["error"]
    assert "hunter2" not in srv.log()


def test_postgres_bad_password_and_bad_url(server, pg, pg_url):
    srv = start(server, ("--database", pg_url.replace(pgserver.PASSWORD, "wrong-password")))
    c = srv.client()
    err = c.request("d", "must")["data"]["error"]
    assert err == (f"database: cannot connect to PostgreSQL at 127.0.0.1:{pg.port}: "
                   f'password authentication failed for user "{pgserver.USER}"')
    bad = start(server, ("--database", "postgres://u:hunter2@[::1/app"))
    err = bad.client().request("d", "must")["data"]["error"]
    assert err.startswith("database.url is not a valid PostgreSQL URL: "), err
    assert "hunter2" not in err and "hunter2" not in bad.log()


def test_postgres_transaction_does_not_block_other_clients(server, pg_url):
    srv = start(server, ("--database", pg_url))
    a, b = srv.client(), srv.client()
    a.request("d", "setup")
    a.send_json({"type": "d", "action": "txhold", "data": {"s": 3}, "requestId": "hold"})
    time.sleep(0.5)  # a's transaction has inserted its row and sleeps on its connection
    started = time.monotonic()
    rows = b.request("d", "list", {"room": "held"})["response"]
    took = time.monotonic() - started
    assert empty(rows)  # not blocked, and a's uncommitted row is invisible
    assert took < 1.5, took
    assert b.request("d", "add", {"room": "b", "text": "meanwhile"})["response"]["changes"] == 1
    held = a.recv_json(timeout=10)
    assert held["response"]["res"] == "committed", held
    assert [r["text"] for r in b.request("d", "list", {"room": "held"})["response"]] == ["uncommitted"]


def test_postgres_pool_runs_four_at_once_and_queues_the_rest(server, pg_url):
    srv = start(server, ("--database", pg_url))
    clients = [srv.client() for _ in range(8)]
    started = time.monotonic()
    for i, c in enumerate(clients):
        c.send_json({"type": "d", "action": "sleep", "data": {"s": 0.6}, "requestId": i})
    replies = [c.recv_json(timeout=20) for c in clients]
    took = time.monotonic() - started
    assert all(r["response"] == {"rows": [{"n": 1}]} for r in replies), replies
    assert took < 3.5, took  # one at a time would take 4.8 s; four at a time 1.2 s
    assert took > 1.0, took  # but not more than four at once


def test_postgres_restart_under_a_running_worker(server, pg, pg_url):
    srv = start(server, ("--database", pg_url))
    c, a, b = srv.client(), srv.client(), srv.client()
    c.request("d", "setup")
    c.request("d", "add", {"room": "r", "text": "before"})
    a.send_json({"type": "d", "action": "sleep", "data": {"s": 20}, "requestId": "long"})
    time.sleep(0.5)  # a now waits on a statement running on the server
    try:
        pg.stop()
        # the statement that was running fails with a clear message
        long = a.recv_json(timeout=10)
        assert long["requestId"] == "long"
        assert long["response"]["err"].startswith("database: connection to PostgreSQL lost: "), long
        assert "terminating connection" in long["response"]["err"]
        b.assert_served()
        # while it is down: a clear error, quickly, and the worker serves everybody else
        started = time.monotonic()
        down = c.request("d", "q", {"sql": "SELECT 1 AS one"})["response"]
        assert time.monotonic() - started < 3
        assert down["err"].startswith(f"database: cannot connect to PostgreSQL at 127.0.0.1:{pg.port}: "), down
        b.assert_served()
    finally:
        pg.start()
    # back up: statements work again without restarting moonwire (after the backoff, <= 5 s)
    deadline = time.monotonic() + 15
    while True:
        rows = c.request("d", "list", {"room": "r"})["response"]
        if isinstance(rows, list):
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    assert [r["text"] for r in rows] == ["before"]
    assert b.request("d", "add", {"room": "r", "text": "after"})["response"]["changes"] == 1
    a.assert_served()
    assert "connected to PostgreSQL again" in srv.log()


def test_postgres_transaction_whose_connection_dies(server, pg, pg_url):
    srv = start(server, ("--database", pg_url))
    c, a = srv.client(), srv.client()
    c.request("d", "setup")
    a.send_json({"type": "d", "action": "txlost", "data": {"s": 20}, "requestId": "tx"})
    time.sleep(0.5)
    try:
        pg.stop()
        reply = a.recv_json(timeout=10)["response"]
    finally:
        pg.start()
    steps = reply["steps"]
    assert steps[0] == "true"
    assert steps[1].startswith("database: connection to PostgreSQL lost: ")
    assert steps[2].startswith("database: the transaction's connection to PostgreSQL was lost: ")
    assert "res" not in reply and reply["err"].startswith("database: the transaction's connection")
    deadline = time.monotonic() + 15
    while True:
        got = c.request("d", "q", {"sql": "SELECT count(*) AS n FROM m WHERE room = ?", "args": ["lost"]})["response"]
        if "err" not in got:
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.2)
    assert got == {"rows": [{"n": 0}]}  # the server rolled the transaction back


def test_postgres_begin_outside_transaction_is_refused(server, pg_url):
    srv = start(server, ("--database", pg_url))
    c = srv.client()
    c.request("d", "setup")
    res = c.request("d", "x", {"sql": "BEGIN"})["response"]
    assert "use database:transaction(fn)" in res["err"]
    assert c.request("d", "tx", {})["response"] == {"ok": True, "res": "committed"}


def test_postgres_many_concurrent_clients(server, pg_url):
    """More clients than pooled connections, each inserting and reading back: all succeed."""
    srv = start(server, ("--database", pg_url))
    srv.client().request("d", "setup")

    def one(i):
        c = srv.client()
        try:
            added = c.request("d", "add", {"room": f"c{i}", "text": str(i)}, timeout=20)["response"]
            rows = c.request("d", "list", {"room": f"c{i}"}, timeout=20)["response"]
            return added["changes"], [r["text"] for r in rows]
        finally:
            c.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as ex:
        results = list(ex.map(one, range(24)))
    assert results == [(1, [str(i)]) for i in range(24)]


def test_postgres_shutdown_with_a_statement_running(server, pg_url):
    """SIGTERM while a statement runs: the worker exits in time and frees everything."""
    srv = server(app_lua="return { limits = { shutdownTimeout = 1 } }", files={"controllers/d.lua": DB_LUA},
                 args=("--database", pg_url))
    c, a = srv.client(), srv.client()
    c.request("d", "setup")
    c.request("d", "txhold", {"s": 0})  # every pooled connection has been used once
    a.send_json({"type": "d", "action": "sleep", "data": {"s": 30}, "requestId": "long"})
    time.sleep(0.3)
    started = time.monotonic()
    assert srv.stop() == []
    assert time.monotonic() - started < 5
    assert srv.returncode == 0
