"""Safe Lua: the handler time budget (limits.handlerTimeout), the Lua memory cap
(limits.luaMemory) and reports of accidental global writes. A runaway handler, a memory hog or
an error costs one error frame, never the other clients.

Which happens when (README "Limits and lifecycle"):
- code running in LuaJIT's interpreter (calls the JIT cannot compile, or jit.off()) is stopped
  by the count hook: the client gets {"error":"Handler timed out","code":"timeout"};
- a loop LuaJIT compiled to machine code never runs the hook, and code that catches the timeout
  error and goes on is not stopped by it either: the watchdog replaces the worker after
  handlerTimeout + max(1 s, handlerTimeout); its clients are dropped (1006) and reconnect.
"""
import time

import pytest

import mwtest
from mwtest import wait_until

SAFE_LUA = """local S = {}
-- jit.off(fn): this function always runs in the interpreter, where the time hook fires
local function interpreted_spin() while true do end end
jit.off(interpreted_spin)
function S:spin() interpreted_spin() end
function S:spin_caught()
  while true do pcall(interpreted_spin) end -- catches the timeout error and goes on
end
function S:compiled() local i = 0 while true do i = i + 1 end end
function S:hog() local t = {} for i = 1, 1e8 do t[i] = string.rep("x", 64) .. i end return #t end
function S:glob() counter = (counter or 0) + 1 return counter end
function S:glob2() another_global = true return true end
function S:wait() self.timer:sleep(1.0) return "waited" end
local keep = {}
function S:fill(_, n) for _ = 1, n do keep[#keep + 1] = string.rep("y", 40) .. #keep end
  return collectgarbage("count") / 1024 end
function S:churn(_, n) local ring = {} for i = 1, n do ring[i % 1000 + 1] = { i, i + 1, tostring(i) } end return true end
function S:ping() return 1 end
function S:busy(_, ms) local t0 = os.clock() while os.clock() - t0 < ms / 1000 do end return "done" end
return S
"""
APP = "return { limits = { handlerTimeout = 0.5, luaMemory = 67108864 } }\n"


def start(server, app_lua=APP, **kw):
    return server(app_lua=app_lua, files={"controllers/s.lua": SAFE_LUA}, **kw)


def test_an_interpreted_runaway_handler_gets_a_timeout_frame_and_others_keep_working(server):
    srv = start(server)
    a, b = mwtest.RawWS(srv.port), mwtest.RawWS(srv.port)
    t0 = time.monotonic()
    reply = a.request("s", "spin", timeout=5)
    took = time.monotonic() - t0
    assert reply == {"type": "error", "action": "message",
                     "data": {"error": "Handler timed out", "code": "timeout", "type": "s", "action": "spin"}}
    assert 0.45 <= took < 2.0, took
    a.assert_served()
    b.assert_served()
    assert "handler timed out after 0.5 s (limits.handlerTimeout)" in srv.log()
    assert len(srv.worker_pids()) == 1


def test_a_handler_that_swallows_the_timeout_gets_its_worker_replaced(server):
    """pcall catches every error in Lua 5.1: code that keeps catching the timeout and spinning is
    treated like a compiled loop."""
    srv = start(server)
    a = mwtest.RawWS(srv.port)
    old = srv.worker_pids()
    a.send_json({"type": "s", "action": "spin_caught", "requestId": 1})
    assert wait_until(lambda: (p := srv.worker_pids()) and p != old, timeout=6.0), srv.log()
    assert "so this worker is replaced" in srv.log()
    mwtest.RawWS(srv.port).assert_served()


def test_time_waiting_on_io_does_not_count(server):
    srv = start(server)
    a = mwtest.RawWS(srv.port)
    assert a.request("s", "wait", timeout=5)["response"] == "waited"  # 1 s > handlerTimeout
    assert a.request("s", "busy", 200, timeout=5)["response"] == "done"  # under the budget


def test_a_compiled_loop_gets_its_worker_replaced(server):
    srv = start(server)
    a, b = mwtest.RawWS(srv.port), mwtest.RawWS(srv.port)
    old = srv.worker_pids()
    a.send_json({"type": "s", "action": "compiled", "requestId": 1})
    # handlerTimeout 0.5 s + grace 1 s: the worker is killed and replaced
    assert wait_until(lambda: (p := srv.worker_pids()) and p != old, timeout=6.0), srv.log()
    a.wait_eof(timeout=3.0)  # its connection is gone with it
    assert "cannot be interrupted, so this worker is replaced" in srv.log()
    c = mwtest.RawWS(srv.port)  # the replacement serves
    c.assert_served()
    del b


def test_a_memory_hog_gets_an_error_frame_and_the_worker_keeps_serving(server):
    srv = start(server)
    a, b = mwtest.RawWS(srv.port), mwtest.RawWS(srv.port)
    old = srv.worker_pids()
    for i in range(2):  # twice: the memory is given back after the first
        reply = a.request("s", "hog", timeout=20)
        assert reply == {"type": "error", "action": "message",
                         "data": {"error": "Out of memory", "code": "out_of_memory", "type": "s", "action": "hog"}}, reply
        a.assert_served()
    b.assert_served()
    assert srv.worker_pids() == old


def test_live_data_past_half_the_cap_leaves_small_handlers_fast_and_working(server):
    """LuaJIT collects no garbage when an allocation fails: near the cap the collector is made
    eager, and full collections wait for real growth (not one per call)."""
    srv = start(server, app_lua="return { limits = { handlerTimeout = 5, luaMemory = 67108864 } }\n")
    a = mwtest.RawWS(srv.port)
    mb = 0
    while mb < 36:  # about 36 of the 64 MiB cap stay alive
        reply = a.request("s", "fill", 100000, timeout=10)
        assert reply.get("type") == "s", reply
        mb = reply["response"]
    for _ in range(3):  # garbage made by a call whose own memory is small
        reply = a.request("s", "churn", 300000, timeout=10)
        assert reply.get("response") is True, reply
    t0 = time.monotonic()
    for _ in range(50):
        assert a.request("s", "ping")["response"] == 1
    assert time.monotonic() - t0 < 2.0, "calls got slow with live data near the cap"


def test_a_slow_app_load_is_not_a_runaway_handler(server):
    slow = "local t0 = os.clock()\nwhile os.clock() - t0 < 0.8 do end\n" + SAFE_LUA
    srv = server(app_lua=APP, files={"controllers/s.lua": slow})
    mwtest.RawWS(srv.port).assert_served()
    assert "timed out" not in srv.log()


def test_global_writes_are_reported_once_with_their_place(server):
    srv = start(server)
    a = mwtest.RawWS(srv.port)
    assert a.request("s", "glob")["response"] == 1
    assert a.request("s", "glob")["response"] == 2  # the write still happens
    a.request("s", "glob2")
    log = srv.wait_log(lambda t: "another_global" in t, timeout=2)
    assert log, srv.log()
    lines = [line for line in log.splitlines() if "a global variable was set" in line]
    assert len([line for line in lines if "name=counter" in line]) == 1, lines
    line_no = next(i for i, l in enumerate(SAFE_LUA.splitlines(), 1) if l.startswith("function S:glob()"))
    assert any(f"controllers/s.lua:{line_no}" in line and "name=counter" in line for line in lines), lines


@pytest.mark.parametrize("limits, key", [("handlerTimeout = 0", "limits.handlerTimeout"),
                                         ("luaMemory = -5", "limits.luaMemory")])
def test_config_rejects_bad_limits(app_dir, limits, key):
    rc, out, err = mwtest.run_cli(["check", str(app_dir(app_lua=f"return {{ limits = {{ {limits} }} }}\n"))])
    assert rc != 0 and key in err
