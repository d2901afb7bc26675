"""The `queue` binding and jobs/ processors, on every store: a table in the
embedded SQLite database (no Redis), the same table in PostgreSQL (--database postgres://, no
Redis) and Redis Streams with a consumer group (--redis).

Every test runs once per store (the `store` fixture). The app is apps/basic plus apps/queue:
controllers/work.lua adds jobs, jobs/*.lua process them and lib/runlog.lua appends a line per
run to $QUEUE_RUNS_LOG, the witness that survives the server being killed.

Choices where docs/reference.md is silent (README "Jobs"):
- jobs/NAME.lua may return a function or {process=, concurrency= (1 per worker), timeout= (60 s)}.
- A retry waits backoff * 2^(attempt-1) seconds; attempts default to 3 and backoff to 1 s.
- A run cut short because its worker died does not count as an attempt; a job whose worker
  dies 5 times is failed.
- The client is told a raised string without its "file:line: " prefix (the log keeps it).
"""
import os
import signal
import time

import pytest

import mwtest
from mwtest import wait_until
from test_redis import REDIS_SERVER, RedisProc

QUEUE_APP = mwtest.APPS / "queue"
FAST_CLUSTER = "return { cluster = { heartbeat = 0.5 } }\n"


def queue_files():
    files = {}
    for path in QUEUE_APP.rglob("*.lua"):
        files[str(path.relative_to(QUEUE_APP))] = path.read_text()
    return files


# --------------------------------------------------------------------------- stores

class Store:
    """Where jobs are kept: 'sqlite' (a database file that outlives one server), 'postgres' (a
    fresh database) or 'redis'."""

    def __init__(self, kind, tmp_path, pg_url=None):
        self.kind = kind
        self.tmp = tmp_path
        self.pg_url = pg_url
        self.redis = None
        if kind == "redis":
            workdir = tmp_path / "redis"
            workdir.mkdir()
            self.redis = RedisProc(workdir, mwtest.free_port(), persist=True).start()

    def args(self):
        if self.kind == "redis":
            return ["--redis", self.redis.url]
        if self.kind == "postgres":
            return ["--database", self.pg_url]
        return ["--database", f"sqlite:{self.tmp / 'jobs.db'}"]

    def close(self):
        if self.redis:
            self.redis.kill(signal.SIGKILL)


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def store(request, tmp_path):
    if request.param == "redis" and not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed")
    pg_url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    s = Store(request.param, tmp_path, pg_url)
    yield s
    s.close()


@pytest.fixture
def runlog(tmp_path):
    return RunLog(tmp_path / "runs.log")


class RunLog:
    """The lines lib/runlog.lua appended: event, jobId, attempt, ms, worker index, extra."""

    def __init__(self, path):
        self.path = path

    def entries(self, event=None, job_id=None):
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            ev, jid, attempt, ms, worker, extra = line.split(" ", 5)
            e = {"event": ev, "id": jid, "attempt": int(attempt), "ms": int(ms), "worker": int(worker),
                 "extra": extra}
            if (event is None or ev == event) and (job_id is None or jid == job_id):
                out.append(e)
        return out

    def wait(self, event, job_id, count=1, timeout=10.0):
        assert wait_until(lambda: len(self.entries(event, job_id)) >= count, timeout=timeout), \
            f"no {count}x '{event}' for job {job_id} within {timeout}s; log: {self.entries()}"
        return self.entries(event, job_id)


def start(server, store, runlog, app_lua=FAST_CLUSTER, files=None, args=(), **kw):
    all_files = queue_files()
    all_files.update(files or {})
    return server(app_lua=app_lua, files=all_files, args=[*store.args(), *args],
                  env={"QUEUE_RUNS_LOG": str(runlog.path)}, **kw)


class Client:
    """A raw WebSocket client that keeps every frame it reads, so none is skipped."""

    def __init__(self, srv):
        self.ws = mwtest.RawWS(srv.port)
        self.client_id = None
        self.frames = []
        self.rid = 0

    def _pump(self, timeout):
        try:
            self.frames.append(self.ws.recv_json(timeout=timeout))
            return True
        except TimeoutError:
            return False

    def wait_for(self, pred, timeout=5.0, what="a frame"):
        deadline = time.monotonic() + timeout
        while True:
            for f in self.frames:
                if pred(f):
                    return f
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout}s; frames: {self.frames}")
            self._pump(min(remaining, 0.5))

    def call(self, action, data, timeout=5.0):
        self.rid += 1
        rid = self.rid
        self.ws.send_json({"type": "work", "action": action, "data": data, "requestId": rid})
        return self.wait_for(lambda f: f.get("requestId") == rid or
                             (f.get("type") == "error" and f["data"].get("requestId") == rid),
                             timeout, f"reply {rid}")

    def add(self, queue, payload=None, opts=None, notify=True):
        data = {"queue": queue, "payload": payload or {}, "notify": notify}
        if opts is not None:
            data["opts"] = opts
        reply = self.call("add", data)
        assert reply.get("type") == "work", reply
        return reply["response"]["jobId"]

    def queue_frames(self, job_id):
        return [f for f in self.frames if f.get("type") == "queue" and f["data"].get("jobId") == job_id]

    def wait_job(self, job_id, timeout=10.0):
        return self.wait_for(lambda f: f.get("type") == "queue" and f["data"].get("jobId") == job_id,
                             timeout, f"queue message for {job_id}")

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(max(0.01, deadline - time.monotonic()))

    def close(self):
        self.ws.close()


# --------------------------------------------------------------------------- running jobs

def test_a_job_runs_and_its_client_gets_exactly_one_completed(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    job_id = c.add("echo", {"value": 42})
    assert isinstance(job_id, str) and len(job_id) >= 16
    msg = c.wait_job(job_id)
    assert msg == {"type": "queue", "action": "completed",
                   "data": {"jobId": job_id, "queue": "echo", "result": {"value": 42, "attempt": 1}}}
    c.drain(0.5)
    assert len(c.queue_frames(job_id)) == 1
    assert len(runlog.entries("run", job_id)) == 1
    # the wire order of the keys is docs/reference.md's: type, action, data{jobId, queue, result}
    c.ws.send_json({"type": "work", "action": "add", "data": {"queue": "echo", "payload": {"value": 1}, "notify": True}})
    raw = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        op, data = c.ws.recv_message(timeout=5)
        if b'"queue"' in data and b'"completed"' in data:
            raw = data.decode()
            break
    assert raw is not None and raw.startswith('{"type":"queue","action":"completed","data":{"jobId":"')
    assert '"queue":"echo","result":{' in raw


def test_a_job_without_client_id_sends_nothing(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    job_id = c.add("echo", {"value": "quiet"}, notify=False)
    runlog.wait("done", job_id)
    c.drain(0.4)
    assert c.queue_frames(job_id) == []


def test_retries_with_backoff_then_completes(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    job_id = c.add("echo", {"value": "flaky", "failUntil": 3}, {"attempts": 3, "backoff": 0.3})
    msg = c.wait_job(job_id, timeout=10)
    assert msg["action"] == "completed" and msg["data"]["result"] == {"value": "flaky", "attempt": 3}
    runs = runlog.entries("run", job_id)
    assert [r["attempt"] for r in runs] == [1, 2, 3]
    # backoff * 2^(attempt-1): 0.3 s then 0.6 s (poll granularity adds a little, never less)
    assert runs[1]["ms"] - runs[0]["ms"] >= 280, runs
    assert runs[2]["ms"] - runs[1]["ms"] >= 580, runs
    c.drain(0.3)
    assert len(c.queue_frames(job_id)) == 1, "retries must not notify"
    assert "job attempt failed; it will run again" in srv.log()


def test_a_failing_job_fails_after_its_attempts_with_one_message(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    job_id = c.add("echo", {"fail": True}, {"attempts": 2, "backoff": 0.1})
    msg = c.wait_job(job_id)
    assert msg == {"type": "queue", "action": "failed",
                   "data": {"jobId": job_id, "queue": "echo", "error": "boom 2"}}
    c.drain(0.5)
    assert len(c.queue_frames(job_id)) == 1
    assert len(runlog.entries("run", job_id)) == 2
    assert wait_until(lambda: "job failed" in srv.log() and job_id in srv.log(), timeout=2)
    # the log keeps where it was raised
    assert "jobs/echo.lua:" in srv.log()
    c.ws.assert_served()


def test_a_coded_error_passes_its_message(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    job_id = c.add("echo", {"coded": True}, {"attempts": 1})
    assert c.wait_job(job_id)["data"]["error"] == "coded failure 1"


def test_delay_holds_the_job_back(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    t0 = time.monotonic()
    job_id = c.add("echo", {"value": "later"}, {"delay": 1.0})
    time.sleep(0.6)
    assert runlog.entries("run", job_id) == [], "a delayed job ran early"
    msg = c.wait_job(job_id, timeout=5)
    assert msg["action"] == "completed"
    assert time.monotonic() - t0 >= 0.95


def test_a_job_that_never_returns_times_out_and_the_server_keeps_serving(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    other = mwtest.RawWS(srv.port)
    job_id = c.add("hang", {}, {"attempts": 2, "backoff": 0.1})
    runlog.wait("run", job_id)
    other.assert_served()  # the worker answers while the job waits
    msg = c.wait_job(job_id, timeout=5)
    assert msg["action"] == "failed"
    assert msg["data"]["error"] == "timed out after 0.5s"
    assert len(runlog.entries("run", job_id)) == 2
    assert runlog.entries("done", job_id) == []
    other.assert_served()


def test_per_queue_concurrency(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    reply = c.call("many", {"queue": "conc", "count": 6, "payload": {}, "notify": True})
    ids = reply["response"]["jobIds"]
    assert len(ids) == 6
    for job_id in ids:
        c.wait_job(job_id, timeout=10)
    runs = runlog.entries("run")
    at_once = max(int(r["extra"]) for r in runs if r["id"] in ids)
    assert at_once == 2, f"concurrency 2 expected, saw {at_once} at once"
    starts = sorted(r["ms"] for r in runs if r["id"] in ids)
    assert starts[-1] - starts[0] >= 2 * 280  # three rounds of two 0.3 s jobs


def test_a_job_uses_the_database_and_adds_jobs(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    job_id = c.add("chain", {"value": "x"})
    msg = c.wait_job(job_id)
    assert msg["action"] == "completed", msg
    next_id = msg["data"]["result"]["next"]
    assert msg["data"]["result"]["rows"] == 1
    follow = c.wait_job(next_id)
    assert follow["action"] == "completed" and follow["data"]["result"]["value"] == "from-chain"


EVERYWHERE_APP = """
local function add(value)
  local mw = require("moonwire")
  assert(mw.queue:add("echo", { value = value }))
end
return {
  cluster = { heartbeat = 0.5 },
  events = {
    onServerStarted = function(server)
      add("started")
      server.timer:after(0.1, function() add("timer") end)
    end,
    onConnect = function(clientId) add("connect") end,
  },
  %s
}
"""


def test_queue_is_reachable_from_events_timers_and_subscribers(server, store, runlog):
    subscribers = ""
    if store.kind == "redis":
        subscribers = 'subscribers = { { channel = "jobs-in", handler = function(_, payload) add(payload) end } },'
    srv = start(server, store, runlog, app_lua=EVERYWHERE_APP % subscribers)
    Client(srv)
    expected = {"started", "timer", "connect"}
    if store.kind == "redis":
        assert wait_until(lambda: store.redis.cli("PUBLISH", "jobs-in", "subscriber") == "1", timeout=5)
        expected.add("subscriber")
    assert wait_until(lambda: expected <= {e["extra"] for e in runlog.entries("done")}, timeout=10), \
        runlog.entries()


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("name, payload, opts, expected", [
    ("", {}, None, "queue name must be"),
    ("a b", {}, None, "queue name must be"),
    ("x" * 65, {}, None, "queue name must be"),
    ("echo", "function", None, "cannot be stored as JSON"),
    ("echo", {}, {"attempts": 0}, "opts.attempts must be an integer from 1 to 1000"),
    ("echo", {}, {"attempts": 1.5}, "opts.attempts must be an integer from 1 to 1000"),
    ("echo", {}, {"delay": -1}, "opts.delay must be a number from 0 to 315360000"),
    ("echo", {}, {"delay": 1e17}, "opts.delay must be a number from 0 to 315360000"),
    ("echo", {}, {"backoff": "soon"}, "opts.backoff must be a number from 0"),
    ("echo", "deep", None, "data is nested too deeply"),
])
def test_add_refuses_bad_arguments(server, store, runlog, name, payload, opts, expected):
    srv = start(server, store, runlog)
    c = Client(srv)
    data = {"name": name, "payload": payload}
    if opts is not None:
        data["opts"] = opts
    reply = c.call("bad", data)
    assert reply["response"]["ok"] is False
    assert expected in reply["response"]["error"]
    c.ws.assert_served()


def test_a_broken_job_file_stops_startup_with_its_location(server, store, runlog, tmp_path):
    srv = start(server, store, runlog, files={"jobs/broken.lua": "return function(job)\n  if then\nend\n"},
                wait=False)
    assert srv.wait_exit(timeout=10) != 0
    assert "jobs/broken.lua:2:" in srv.log()


def test_a_job_file_must_return_a_processor(server, store, runlog):
    srv = start(server, store, runlog, files={"jobs/nope.lua": "return 42\n"}, wait=False)
    assert srv.wait_exit(timeout=10) != 0
    assert "jobs/nope.lua: a job file must return function(job)" in srv.log()


# --------------------------------------------------------------------------- at least once

def kill_worker(srv):
    pids = srv.worker_pids()
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def test_sigkill_of_the_worker_during_a_running_job(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    job_id = c.add("echo", {"value": "survivor", "sleep": 1.5}, notify=False)
    runlog.wait("run", job_id)
    old = kill_worker(srv)
    assert wait_until(lambda: [p for p in srv.worker_pids() if p != old], timeout=5)
    done = runlog.wait("done", job_id, timeout=20)
    assert len(done) == 1
    runs = runlog.entries("run", job_id)
    assert len(runs) == 2 and runs[1]["attempt"] == 1, "an interrupted run is not a failed attempt"


def test_sigkill_of_the_whole_server_keeps_delayed_and_running_jobs(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    running = c.add("echo", {"value": "running", "sleep": 3}, notify=False)
    delayed = c.add("echo", {"value": "delayed"}, {"delay": 1.5}, notify=False)
    runlog.wait("run", running)
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(timeout=5)
    assert runlog.entries("done") == []
    again = start(server, store, runlog)
    runlog.wait("done", delayed, timeout=15)
    runlog.wait("done", running, timeout=25)
    assert again.proc.poll() is None


def test_jobs_wait_out_a_store_outage(server, store, runlog):
    """Redis restarted (or the SQLite file locked) with jobs pending: nothing accepted is lost."""
    if store.kind != "redis":
        pytest.skip("the SQLite store has no server to restart")
    srv = start(server, store, runlog)
    c = Client(srv)
    ids = [c.add("echo", {"value": f"d{i}"}, {"delay": 1.0}, notify=False) for i in range(3)]
    store.redis.kill(signal.SIGTERM)  # a clean shutdown: the append-only file has every job
    store.redis.start()
    for job_id in ids:
        runlog.wait("done", job_id, timeout=20)
    c2 = Client(srv)
    c2.ws.assert_served()


def test_add_during_a_redis_outage_is_a_clear_error(server, store, runlog):
    if store.kind != "redis":
        pytest.skip("only Redis can be unreachable")
    srv = start(server, store, runlog)
    c = Client(srv)
    store.redis.kill(signal.SIGKILL)
    reply = c.call("add", {"queue": "echo", "payload": {}, "notify": True}, timeout=10)
    assert reply["type"] == "error" and reply["data"]["code"] == "queue_unavailable"
    assert reply["data"]["error"].startswith("queue:add: ")
    c.ws.assert_served()
    store.redis.start()
    assert wait_until(lambda: Client(srv).call("add", {"queue": "echo", "payload": {"value": 1},
                                                         "notify": False}).get("type") == "work",
                      timeout=10, interval=0.3)


# --------------------------------------------------------------------------- metrics

def test_job_metrics(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    ok_id = c.add("echo", {"value": 1})
    bad_id = c.add("echo", {"fail": True}, {"attempts": 2, "backoff": 0.1})
    c.wait_job(ok_id)
    c.wait_job(bad_id)
    text = srv.http("/metrics").text
    assert mwtest.metric_sum(text, "moonwire_jobs_added_total") >= 2
    assert mwtest.metric_sum(text, "moonwire_jobs_completed_total") >= 1
    assert mwtest.metric_sum(text, "moonwire_jobs_failed_total") >= 1
    assert mwtest.metric_sum(text, "moonwire_jobs_retried_total") >= 1
    assert 'moonwire_queue_depth{worker="0",queue="echo"}' in text
    if store.kind != "redis":
        assert mwtest.metric_sum(text, "moonwire_db_queries_total") > 0
        assert mwtest.metric_sum(text, "moonwire_db_query_duration_seconds_count") > 0


# --------------------------------------------------------------------------- review regressions

def test_a_timed_out_run_is_cancelled_not_left_running(server, store, runlog):
    """The timeout fails the attempt and the run never resumes: no side effect after it."""
    slow = {"jobs/slow.lua": ("local record = require('runlog')\n"
                              "return { timeout = 0.5, process = function(job, mw)\n"
                              "  record.write('run', job); mw.timer:sleep(1.2); record.write('done', job)\n"
                              "end }\n")}
    srv = start(server, store, runlog, files=slow)
    c = Client(srv)
    job_id = c.add("slow", {}, {"attempts": 1})
    assert c.wait_job(job_id, timeout=5)["data"]["error"] == "timed out after 0.5s"
    time.sleep(1.5)
    assert runlog.entries("done", job_id) == [], "the timed-out run went on"


def test_sigterm_waits_for_a_running_job(server, store, runlog):
    srv = start(server, store, runlog)
    c = Client(srv)
    job_id = c.add("echo", {"value": "finish me", "sleep": 1.0}, notify=False)
    runlog.wait("run", job_id)
    c.close()
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit(timeout=10) == 0
    assert len(runlog.entries("done", job_id)) == 1, "the job was cut off by the shutdown"


def test_a_queue_whose_job_file_appears_later_is_served_after_a_reload(server, store, runlog):
    files = {"controllers/work.lua": (QUEUE_APP / "controllers" / "work.lua").read_text()}
    srv = server(app_lua=FAST_CLUSTER, files=files, args=store.args(), env={"QUEUE_RUNS_LOG": str(runlog.path)})
    (srv.app_dir / "lib").mkdir(exist_ok=True)
    (srv.app_dir / "lib" / "runlog.lua").write_text((QUEUE_APP / "lib" / "runlog.lua").read_text())
    (srv.app_dir / "jobs").mkdir()
    (srv.app_dir / "jobs" / "echo.lua").write_text((QUEUE_APP / "jobs" / "echo.lua").read_text())
    srv.send_signal(signal.SIGHUP)
    assert srv.wait_log(lambda t: "reloaded" in t, timeout=3)
    c = Client(srv)
    job_id = c.add("echo", {"value": "late"})
    assert c.wait_job(job_id, timeout=5)["action"] == "completed"
