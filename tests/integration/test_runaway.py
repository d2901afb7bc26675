"""A runaway handler costs less (limits.handlerTimeout, --dev).

- Without --dev, a loop LuaJIT compiled cannot be interrupted: the watchdog replaces the worker,
  and its log line names the handler (route, the file:line where its function is defined) and
  the number of clients the replacement drops.
- With --dev, controllers, jobs and lib/ modules run in the interpreter (jit.off), so the same
  loop gets the "Handler timed out" error reply and the worker keeps serving; hot reload keeps
  it so for the reloaded files.

Waits are generous and nothing is timed: the machine may be busy, the ASan build is slower.
"""
import re

import pytest

import mwtest
from mwtest import wait_until

CONTROLLER = """local S = {}
local spin = require("spin")
function S:compiled()
  local x = 0
  while true do x = x + 1 end
end
function S:after_sleep()
  self.timer:sleep(0.05)
  local x = 0
  while true do x = x + 1 end
end
function S:later()
  self.timer:after(0.05, function()
    local x = 0
    while true do x = x + 1 end
  end)
  return "scheduled"
end
function S:lib_loop() return spin() end
function S:ping() return "pong" end
function S:enqueue() return self.queue:add("spin", {}) end
return S
"""
JOB = """return function(job)
  -- taken back and run again by the replacement worker: spin the first time only
  local marker = io.open("spun.marker")
  if marker then marker:close() return "spun already" end
  io.open("spun.marker", "w"):close()
  local x = 0
  while true do x = x + 1 end
end
"""
LIB = """-- lib/spin.lua: a loop the JIT compiles unless --dev turns it off
return function()
  local x = 0
  while true do x = x + 1 end
end
"""
RELOADED = CONTROLLER.replace('function S:ping() return "pong" end',
                              'function S:ping() return "pong" end\n'
                              'function S:new_loop()\n  local y = 0\n  while true do y = y + 2 end\nend')
APP = "return { limits = { handlerTimeout = 0.5 } }\n"
WAIT = 20.0  # generous: handlerTimeout 0.5 s + grace 1 s, on a busy machine or under ASan


def line_of(source, needle):
    return next(i for i, line in enumerate(source.splitlines(), 1) if needle in line)


def start(server, dev=False):
    return server(app_lua=APP, files={"controllers/s.lua": CONTROLLER, "lib/spin.lua": LIB, "jobs/spin.lua": JOB},
                  dev=dev)


def replacement_line(log):
    return next((l for l in log.splitlines() if "so this worker is replaced" in l), None)


@pytest.mark.slow
@pytest.mark.parametrize("action, route, needle", [
    ("compiled", "s:compiled", "function S:compiled()"),          # a message handler
    ("after_sleep", "s:after_sleep", "function S:after_sleep()"),  # resumed after waiting on I/O
    ("later", "timer", "self.timer:after(0.05, function()"),       # a timer callback
    ("enqueue", "job spin", None),                                 # a job (jobs/spin.lua:1)
])
def test_a_compiled_loop_replaces_the_worker_and_the_log_names_the_handler(server, action, route, needle):
    srv = start(server)
    witness, other = mwtest.RawWS(srv.port), mwtest.RawWS(srv.port)
    spinner = mwtest.RawWS(srv.port)
    witness.assert_served()
    old = srv.worker_pids()
    assert len(old) == 1
    spinner.send_json({"type": "s", "action": action, "requestId": 1})
    assert wait_until(lambda: (p := srv.worker_pids()) and p != old, timeout=WAIT), srv.log()
    log = srv.wait_log(lambda t: replacement_line(t) is not None, timeout=WAIT)
    line = replacement_line(log or "")
    assert line, srv.log()
    assert "cannot be interrupted" in line, line
    assert (f'route="{route}"' if " " in route else f"route={route}") in line, line  # quoted with a space
    where = (f"{srv.app_dir}/controllers/s.lua:{line_of(CONTROLLER, needle)}" if needle
             else f"{srv.app_dir}/jobs/spin.lua:1")
    assert f"where={where}" in line, line
    assert re.search(r"clientsDropped=3\b", line), line  # witness, other, spinner
    for c in (witness, other, spinner):
        assert c.wait_eof(timeout=WAIT)  # dropped with the worker
    mwtest.RawWS(srv.port).assert_served()  # the replacement serves


@pytest.mark.slow
@pytest.mark.parametrize("action", ["compiled", "lib_loop"])
def test_dev_interprets_app_code_so_a_runaway_loop_gets_a_timeout_reply(server, action):
    srv = start(server, dev=True)
    witness, a = mwtest.RawWS(srv.port), mwtest.RawWS(srv.port)
    witness.assert_served()
    old = srv.worker_pids()
    reply = a.request("s", action, request_id=7, timeout=WAIT)
    assert reply == {"type": "error", "action": "message",
                     "data": {"error": "Handler timed out", "code": "timeout", "type": "s", "action": action,
                              "requestId": 7}}, reply
    assert a.request("s", "ping", request_id=8, timeout=WAIT)["response"] == "pong"
    witness.assert_served()
    assert srv.worker_pids() == old
    assert replacement_line(srv.log()) is None, srv.log()


@pytest.mark.slow
def test_dev_keeps_reloaded_controllers_interpreted(server):
    srv = start(server, dev=True)
    witness, a = mwtest.RawWS(srv.port), mwtest.RawWS(srv.port)
    old = srv.worker_pids()
    (srv.app_dir / "controllers" / "s.lua").write_text(RELOADED)
    # " w0 reloaded": the log line, not the test's folder name
    assert srv.wait_log(lambda t: re.search(r" w0 reloaded\b", t), timeout=WAIT), srv.log()
    reply = a.request("s", "new_loop", request_id=1, timeout=WAIT)
    assert reply == {"type": "error", "action": "message",
                     "data": {"error": "Handler timed out", "code": "timeout", "type": "s", "action": "new_loop",
                              "requestId": 1}}, reply
    witness.assert_served()
    assert srv.worker_pids() == old
