"""Fixtures for the moonwire integration tests.

Run with Debian's python:  /usr/bin/python3 -m pytest tests/integration
The binary is $MOONWIRE_BIN (relative paths are relative to the repo root) or build/moonwire.
"""
import signal

import pytest

import mwtest
import pgserver

TEST_TIMEOUT = 180  # seconds; a hard cap per test (no pytest-timeout on Debian)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes several seconds")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT}s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    path = mwtest.moonwire_bin()
    if not path.exists():
        pytest.exit(f"moonwire binary not found at {path} (set MOONWIRE_BIN)", returncode=2)


@pytest.fixture
def server(tmp_path):
    """Factory: start `moonwire serve` on a copy of apps/basic and wait for /health.

    server(app_lua=None, files=None, args=(), env=None, port=None, flags=True,
           wait=True, path="/ws", dev=False, template="basic") -> mwtest.Server

    `flags=False` passes neither --host nor --port (use env/args instead); `port`
    is where the test expects the server to listen (a free port by default).
    Teardown closes the test's sockets, sends SIGTERM, waits up to 10 s, kills the
    group if needed and fails the test on a sanitizer report or a stuck process.
    """
    started = []

    def factory(app_lua=None, files=None, args=(), env=None, port=None, flags=True, wait=True,
                path="/ws", dev=False, template="basic"):
        n = len(started)
        app_dir = mwtest.make_app(tmp_path / f"app{n}", app_lua, files, template)
        workdir = tmp_path / f"run{n}"
        workdir.mkdir()
        port = port or mwtest.free_port()
        argv = []
        if flags:
            argv += ["--host", "127.0.0.1", "--port", str(port)]
        if dev:
            argv.append("--dev")
        argv += list(args)
        srv = mwtest.Server(app_dir, port, argv, mwtest.clean_env(env), workdir, path=path)
        started.append(srv)
        srv.spawn()
        if wait:
            srv.wait_ready()
        return srv

    yield factory

    problems = []
    for i, srv in enumerate(started):
        srv.close_clients()
        problems += [f"server {i}: {p}" for p in srv.stop()]
        found = srv.sanitizer_report()
        if found:
            problems.append(f"server {i}: sanitizer report ({', '.join(found)})")
        print(f"===== server {i} (port {srv.port}, exit {srv.returncode}) stderr =====")
        print(srv.log())
        out = srv.stdout()
        if out:
            print(f"===== server {i} stdout =====")
            print(out)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def app_dir(tmp_path):
    """Factory: a copy of apps/basic (for `moonwire check`)."""
    def factory(app_lua=None, files=None, template="basic"):
        return mwtest.make_app(tmp_path / "checkapp", app_lua, files, template)
    return factory


@pytest.fixture(scope="session")
def pg():
    """One PostgreSQL server for the whole session (skipped when PostgreSQL is not installed)."""
    bindir = pgserver.find_bindir()
    if not bindir:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    srv = pgserver.PgServer(bindir)
    try:
        srv.start()
        yield srv
    finally:
        srv.destroy()


@pytest.fixture
def pg_url(pg):
    """The URL of a fresh database; the server is running again if a test stopped it."""
    if not pg.running():
        pg.start()
    return pg.url(pg.create_database())
