/* test_async: the start -> yield -> resume/cancel protocol of the waiting bindings (mw_async),
 * driven with a fake operation the test completes by hand, on a bare LuaJIT state whose
 * resume/spawn hooks are small stand-ins for the runtime's. No socket, no loop, no worker. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "mw_async.h"
#include "mw_test.h"

/* ---- the fake operation: core.fake(token [, fail]) -------------------------------------- */

#define MAX_OPS 8
static mw_async *ops[MAX_OPS];
static int n_ops, cancels;

static void fake_cancel_cb(mw_async *a)
{
    CHECK_EQ_INT(*(int *)mw_async_data(a), 42); /* the operation's own state is still there */
    cancels++;
}

static int l_fake(lua_State *L)
{
    lua_Number token = luaL_checknumber(L, 1);
    int fail = lua_toboolean(L, 2);
    mw_async *a = mw_async_new(L, token, sizeof(int), "fake waits and must run in a coroutine");
    *(int *)mw_async_data(a) = 42;
    mw_async_on_cancel(a, fake_cancel_cb);
    if (fail)
        return mw_async_failed(L, a, "fake did not start");
    ops[n_ops++] = a;
    return mw_async_started(L, a);
}

/* The operation finished: resume its caller with value (dropped when cancelled). */
static int complete(int i, const char *value)
{
    mw_async *a = ops[i];
    lua_State *L = mw_async_resume_begin(a);
    if (L) {
        lua_pushstring(L, value);
        mw_async_resume_end(a, 1);
    }
    mw_async_free(a);
    return L != NULL;
}

/* ---- the Lua side: scheduler.wait and hooks.resume/spawn, reduced to their contract ------ */

static const char *prelude =
    "waiting = setmetatable({}, { __mode = 'k' })\n"
    "alive = setmetatable({}, { __mode = 'k' }) -- every coroutine started, weakly\n"
    "cos, results = setmetatable({}, { __mode = 'v' }), {}\n"
    "local last = 0\n"
    "function call(...)\n"
    "  last = last + 1\n"
    "  local token = last\n"
    "  local sent, err = fake(token, ...)\n"
    "  if not sent then return nil, err end\n"
    "  waiting[coroutine.running()] = token\n"
    "  return coroutine.yield()\n"
    "end\n"
    "function resume(co, token, ...)\n"
    "  if waiting[co] ~= token then return end -- abandoned: dropped\n"
    "  waiting[co] = nil\n"
    "  local ok, err = coroutine.resume(co, ...)\n"
    "  if not ok then error(err, 0) end\n"
    "end\n"
    "function spawn(what, fn, ...)\n"
    "  local co = coroutine.create(fn)\n"
    "  alive[co] = what\n"
    "  local ok, err = coroutine.resume(co, ...)\n"
    "  if not ok then error(err, 0) end\n"
    "end\n"
    "function start(name, ...)\n" /* a handler named name, waiting on one call */
    "  spawn(name, function(...) cos[name] = coroutine.running(); results[name] = { call(...) } end, ...)\n"
    "end\n"
    "function abandon(name) waiting[cos[name]] = nil; cos[name] = nil end -- the client went away\n"
    "function count_alive() collectgarbage(); collectgarbage(); local n = 0\n"
    "  for _ in pairs(alive) do n = n + 1 end; return n end\n";

static void run(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != 0) {
        fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
        mw_test_failures++;
        lua_pop(L, 1);
    }
}

static long eval_int(lua_State *L, const char *expr)
{
    char code[256];
    snprintf(code, sizeof(code), "return %s", expr);
    if (luaL_dostring(L, code) != 0) {
        fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
        mw_test_failures++;
        lua_pop(L, 1);
        return -1;
    }
    long v = (long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

static int eval_true(lua_State *L, const char *expr)
{
    char code[256];
    snprintf(code, sizeof(code), "return %s", expr);
    if (luaL_dostring(L, code) != 0) {
        fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return 0;
    }
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static int ref_global(lua_State *L, const char *name)
{
    lua_getglobal(L, name);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static lua_State *new_state(mw_async_host **host)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_register(L, "fake", l_fake);
    run(L, prelude);
    *host = mw_async_host_new(L, NULL);
    mw_async_host_set_hooks(*host, ref_global(L, "resume"), ref_global(L, "spawn"));
    CHECK(mw_async_host_of(L) == *host);
    CHECK(mw_async_host_state(*host) == L);
    n_ops = cancels = 0;
    return L;
}

int main(void)
{
    mw_async_host *h;
    lua_State *L = new_state(&h);

    /* started -> yielded -> resumed with the results */
    run(L, "start('a')");
    CHECK_EQ_INT(n_ops, 1);
    CHECK_EQ_INT(mw_async_host_pending(h), 1);
    CHECK(eval_true(L, "results.a == nil"));
    CHECK(complete(0, "hello"));
    CHECK(eval_true(L, "results.a[1] == 'hello'"));
    CHECK_EQ_INT(mw_async_host_pending(h), 0);
    CHECK_EQ_INT(lua_gettop(L), 0);
    CHECK_EQ_INT(eval_int(L, "count_alive()"), 0); /* finished and released */

    /* outside a coroutine: raises the binding's message, registers nothing */
    CHECK(eval_true(L, "select(2, pcall(fake, 1)) == 'fake waits and must run in a coroutine'"));
    CHECK_EQ_INT(mw_async_host_pending(h), 0);

    /* the operation does not start: nil, why; the coroutine is let go */
    run(L, "start('b', true)");
    CHECK(eval_true(L, "results.b[1] == nil and results.b[2] == 'fake did not start'"));
    CHECK_EQ_INT(mw_async_host_pending(h), 0);
    CHECK_EQ_INT(eval_int(L, "count_alive()"), 0);

    /* abandoned in Lua while waiting: the pending call keeps the coroutine alive, and the late
     * completion is dropped by resume, after which the coroutine can be collected */
    run(L, "start('c')");
    run(L, "abandon('c')");
    CHECK_EQ_INT(eval_int(L, "count_alive()"), 1);
    CHECK_EQ_INT(mw_async_host_pending(h), 1);
    CHECK(complete(1, "late"));
    CHECK(eval_true(L, "results.c == nil"));
    CHECK_EQ_INT(mw_async_host_pending(h), 0);
    CHECK_EQ_INT(eval_int(L, "count_alive()"), 0);
    CHECK_EQ_INT(cancels, 0);

    /* two calls in flight complete in either order, each reaching its own coroutine */
    run(L, "start('d'); start('e')");
    CHECK_EQ_INT(mw_async_host_pending(h), 2);
    CHECK(complete(3, "to e"));
    CHECK(complete(2, "to d"));
    CHECK(eval_true(L, "results.d[1] == 'to d' and results.e[1] == 'to e'"));

    /* a resumed coroutine that fails: the resume hook raises, which is logged, not fatal */
    run(L, "start('f')");
    run(L, "local r = resume; resume = function(co, t, ...) r(co, t, ...); error('boom', 0) end");
    mw_async_host_set_hooks(h, ref_global(L, "resume"), ref_global(L, "spawn"));
    CHECK(complete(4, "x"));
    CHECK_EQ_INT(lua_gettop(L), 0);
    CHECK_EQ_INT(mw_async_host_pending(h), 0);

    /* spawn: a new coroutine with the arguments on the stack, named for the logs */
    run(L, "function tick(a, b) spawned = a .. b .. tostring(alive[coroutine.running()]) end");
    int fn_ref = ref_global(L, "tick");
    lua_pushstring(L, "1");
    lua_pushstring(L, "2");
    mw_async_spawn(h, "timer", fn_ref, 2);
    CHECK(eval_true(L, "spawned == '12timer'"));
    CHECK_EQ_INT(lua_gettop(L), 0);

    /* the state goes away with a call pending: the cancel callback runs once, and the
     * completion arriving after lua_close is dropped without touching the state */
    run(L, "start('g')");
    CHECK_EQ_INT(mw_async_host_pending(h), 1);
    mw_async_host_free(h);
    CHECK_EQ_INT(cancels, 1);
    lua_close(L);
    CHECK(!complete(5, "too late"));
    CHECK_EQ_INT(cancels, 1);

    /* a state without a host (`moonwire check`) refuses to wait */
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_register(L, "fake", l_fake);
    CHECK(!mw_async_host_of(L));
    CHECK(eval_true(L, "not coroutine.wrap(function() return pcall(fake, 1) end)()"));
    lua_close(L);

    MW_TEST_DONE();
}
