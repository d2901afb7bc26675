-- The scheduler: spawned handlers, a wait on a (fake) async operation and its resume or
-- cancel, the pooled message coroutines, handler sites, and errors that are logged, not raised.
local t = require "harness"
local core = require "moonwire.core"
local scheduler = require "moonwire.scheduler"
local hooks = require("moonwire.hooks").hooks
local test, eq, truthy = t.test, t.eq, t.truthy

t.before = core.reset

-- A fake binding: starts nothing, remembers who waits for which call, as C would.
local ops = {}
local function fake_io(what)
  scheduler.check(what)
  local token = scheduler.next_token()
  ops[#ops + 1] = { co = coroutine.running(), token = token }
  return scheduler.wait(token)
end
local function last_op() return ops[#ops] end

local function errors_logged()
  local out = {}
  for _, l in ipairs(core.logs) do if l.level == "error" then out[#out + 1] = l end end
  return out
end

test("spawn runs fn with its arguments in a coroutine of its own", function()
  local got
  scheduler.spawn("events.x", function(a, b) got = { a, b, coroutine.running() ~= nil } end, 1, "two")
  eq(got, { 1, "two", true })
  eq(#core.site_stack, 0, "the site is popped when the handler returns")
  eq(core.site_log[1].label, "events.x")
  truthy(core.site_log[1].source:find("test_scheduler.lua", 1, true), "the site names the handler's file")
end)

test("a spawned handler waits on I/O and resume gives it the reply", function()
  local got
  scheduler.spawn("events.y", function() got = { fake_io("fake:op") } end)
  eq(got, nil, "it waits")
  local op = last_op()
  truthy(scheduler.is_waiting(op.co))
  eq(#core.site_stack, 0, "nothing stays pushed while it waits")
  hooks.resume(op.co, op.token, "reply", 2) -- C: mw_async_resume_begin/_end
  eq(got, { "reply", 2 })
  eq(scheduler.is_waiting(op.co), false)
  eq(core.site_log[#core.site_log].label, "events.y", "the resume names the handler's site again")
  eq(#core.site_stack, 0)
end)

test("a reply to another call, or a second reply, is dropped", function()
  local got = {}
  scheduler.spawn("events.z", function()
    got[#got + 1] = fake_io("fake:op")
    got[#got + 1] = fake_io("fake:op")
  end)
  local first = last_op()
  hooks.resume(first.co, first.token + 1000, "wrong call")
  eq(got, {}, "a token it does not wait for leaves it alone")
  hooks.resume(first.co, first.token, "a")
  eq(got, { "a" })
  hooks.resume(first.co, first.token, "late duplicate")
  eq(got, { "a" }, "the old token no longer resumes it")
  local second = last_op()
  hooks.resume(second.co, second.token, "b")
  eq(got, { "a", "b" })
end)

test("a cancelled coroutine is never resumed", function()
  local resumed = false
  scheduler.spawn("job x", function() fake_io("fake:op"); resumed = true end)
  local op = last_op()
  scheduler.cancel(op.co)
  eq(scheduler.is_waiting(op.co), false)
  hooks.resume(op.co, op.token, "too late")
  eq(resumed, false)
  eq(coroutine.status(op.co), "suspended")
end)

test("check refuses to wait outside a handler or inside a C function", function()
  t.raises(function() fake_io("fake:op") end, "fake:op waits for I/O and cannot run here")
  local err
  scheduler.spawn("events.sort", function()
    local ok, e = pcall(table.sort, { 2, 1 }, function(a, b) fake_io("fake:op"); return a < b end)
    err = not ok and e
  end)
  truthy(err and err:find("cannot run here", 1, true), "inside table.sort's comparator")
end)

test("an error in a spawned handler is logged with its traceback, not raised", function()
  scheduler.spawn("events.onConnect", function() error("boom") end)
  local logged = errors_logged()
  eq(#logged, 1)
  eq(logged[1].message, "handler error")
  eq(logged[1].fields.route, "events.onConnect")
  truthy(logged[1].fields.error:find("boom", 1, true))
  truthy(logged[1].fields.traceback:find("stack traceback", 1, true))
  eq(#core.site_stack, 0)
end)

test("a coded error in a spawned handler is logged with its code", function()
  scheduler.spawn("timer", function() error({ code = "nope", message = "not now" }) end)
  local logged = errors_logged()
  eq(#logged, 1)
  eq(logged[1].fields, { route = "timer", error = "not now", code = "nope" })
end)

test("an error after a resume is logged too, and the next handler runs", function()
  scheduler.spawn("events.late", function() fake_io("fake:op"); error("after the wait") end)
  local op = last_op()
  hooks.resume(op.co, op.token)
  local logged = errors_logged()
  eq(#logged, 1)
  truthy(logged[1].fields.error:find("after the wait", 1, true))
  local ran = false
  scheduler.spawn("events.next", function() ran = true end)
  truthy(ran)
end)

test("spawn_local marks the coroutine for local sends only", function()
  local seen = {}
  scheduler.spawn("events.a", function() seen.spawned = scheduler.local_only() end)
  scheduler.spawn_local("subscriber news", function() seen.subscriber = scheduler.local_only() end)
  eq(seen, { spawned = false, subscriber = true })
  eq(scheduler.local_only(), false, "the main thread")
end)

test("spawn_at names site_fn to the watchdog, not the wrapper", function()
  local function job_fn() end
  local line = debug.getinfo(job_fn, "S").linedefined
  scheduler.spawn_at("job mail", job_fn, function() job_fn() end)
  eq(core.site_log[1].label, "job mail")
  eq(core.site_log[1].line, line)
end)

test("hooks.spawn (C's timers) runs fn in a coroutine that may wait", function()
  local got
  hooks.spawn("timer", function(x) got = { x, fake_io("fake:op") } end, "arg")
  local op = last_op()
  hooks.resume(op.co, op.token, "done")
  eq(got, { "arg", "done" })
end)

test("a message that finishes at once is DONE and its coroutine is reused", function()
  local cos = {}
  local function body(clientId) cos[#cos + 1] = coroutine.running(); return scheduler.DONE end
  eq(scheduler.run_message("c1", body, "c1"), scheduler.DONE)
  eq(scheduler.run_message("c1", body, "c1"), scheduler.DONE)
  truthy(cos[1] == cos[2], "the pool hands the same coroutine out again")
  eq(core.finished, {}, "C learns a finished handler from the return value, not handler_finished")
end)

test("a message that waits is PENDING until resumed, then C hears it finished", function()
  local site = { label = "chat:send", source = "controllers/chat.lua", line = 3 }
  local function body(clientId)
    scheduler.enter(site)
    core.send(clientId, fake_io("fake:op"))
    return scheduler.DONE
  end
  eq(scheduler.run_message("c2", body, "c2"), scheduler.PENDING)
  eq(core.site_log[1], site)
  core.site_stack = {} -- C pops the outermost handler's site when Lua returns to it
  local op = last_op()
  hooks.resume(op.co, op.token, "answer")
  eq(core.sent[1][2], "answer")
  eq(core.finished, { { "c2", false } })
  eq(core.site_log[2], site, "resumed under the route's site")
  eq(#core.site_stack, 0)
end)

test("a message handler that fails after a wait is reported failed", function()
  local function body()
    fake_io("fake:op")
    return scheduler.FAILED
  end
  eq(scheduler.run_message("c3", body), scheduler.PENDING)
  local op = last_op()
  hooks.resume(op.co, op.token)
  eq(core.finished, { { "c3", true } })
end)

test("a bug in the runtime itself surfaces as nil, err from run_message", function()
  local status, err = scheduler.run_message("c4", function() error("runtime bug") end)
  eq(status, nil)
  truthy(tostring(err):find("runtime bug", 1, true))
end)

test("call runs a hook at once and logs its error", function()
  eq(scheduler.call("events.onAuthenticate", function(a) return a * 2 end, 21), 42)
  local r, err = scheduler.call("events.onAuthenticate", function() error("bad token") end)
  eq(r, nil)
  truthy(err.__internal)
  eq(errors_logged()[1].fields.route, "events.onAuthenticate")
  eq(#core.site_stack, 0)
end)

test("timer:sleep waits on a C timer and resumes the handler with its token", function()
  local Timer = require "moonwire.timer"
  local timer = Timer.new()
  local steps = {}
  local co
  scheduler.spawn("events.s", function()
    co = coroutine.running()
    steps[1] = "before"; timer:sleep(0.5); steps[2] = "after"
  end)
  eq(steps, { "before" })
  local sleep = core.sleeps[1]
  eq(sleep.seconds, 0.5)
  eq(next(core.timers), nil) -- no Lua timer, no timer id used
  scheduler.resume(co, sleep.token + 1) -- another call's reply: ignored
  eq(steps, { "before" })
  scheduler.resume(co, sleep.token)
  eq(steps, { "before", "after" })
end)

test("redis:call yields until C answers with the token it was given", function()
  local Redis = require "moonwire.redis"
  local redis = Redis.new()
  local got
  scheduler.spawn("events.r", function() got = { redis:call("GET", "k") } end)
  local call = core.redis_calls[1]
  eq({ call[2], call[3] }, { "GET", "k" })
  eq(got, nil, "it waits for the reply")
  hooks.resume(call.co, call[1], "v")
  eq(got, { "v" })
  t.raises(function() redis:call("GET", "k") end, "redis:call waits for I/O and cannot run here")
end)
