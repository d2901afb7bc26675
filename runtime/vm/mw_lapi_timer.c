/* mw_lapi_timer: core.timer_start(seconds, repeat, fn) -> id, core.timer_stop(id) and
 * core.timer_sleep(token, seconds), behind lua/moonwire/timer.lua. Each tick of a timer runs fn
 * in a new coroutine; a sleep is a one-shot timer that resumes the sleeping coroutine (the
 * mw_async protocol). The context owns both (a dropped Lua handle does not stop a timer); they
 * are closed when the worker exits. */
#include "mw_lapi_timer.h"

#include <assert.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>

#include "mw_async.h"
#include "mw_lapi.h"

struct mw_ltimer {
    uv_timer_t t;
    mw_lapi_timer_ctx *ctx;
    mw_async_host *host;
    int fn_ref;        /* a timer's function; LUA_NOREF for a sleep */
    mw_async *sleeper; /* a sleep's call, whose data holds this timer; NULL for a timer */
    lua_Integer id;    /* 0 for a sleep: timer_stop(id) never finds one */
    int repeat;
    struct mw_ltimer *prev, *next;
};

static mw_lapi_timer_ctx *ctx_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

static void timer_closed_cb(uv_handle_t *h)
{
    mw_ltimer *t = h->data;
    if (t->sleeper)
        mw_async_free(t->sleeper); /* the timer lives in the call's data */
    else
        free(t);
}

/* Unlinks the timer, drops its function and closes it (freed in the close callback). */
static void timer_stop(mw_ltimer *t)
{
    if (uv_is_closing((uv_handle_t *)&t->t))
        return; /* stopped already */
    mw_lapi_timer_ctx *ctx = t->ctx;
    assert(t->prev ? t->prev->next == t : ctx->timers == t); /* every running timer is listed */
    if (t->prev)
        t->prev->next = t->next;
    else
        ctx->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    if (t->fn_ref != LUA_NOREF)
        luaL_unref(mw_async_host_state(t->host), LUA_REGISTRYINDEX, t->fn_ref);
    uv_close((uv_handle_t *)&t->t, timer_closed_cb);
}

/* Starts t, filled in but for its handle, and links it into the context's list. */
static void timer_begin(mw_ltimer *t, lua_Number seconds, uv_timer_cb cb)
{
    mw_lapi_timer_ctx *ctx = t->ctx;
    uv_timer_init(ctx->loop, &t->t);
    t->t.data = t;
    uint64_t ms = (uint64_t)(seconds * 1000 + 0.5);
    uv_timer_start(&t->t, cb, ms, t->repeat ? (ms ? ms : 1) : 0);
    t->next = ctx->timers;
    if (ctx->timers)
        ctx->timers->prev = t;
    ctx->timers = t;
}

static void tick_cb(uv_timer_t *h)
{
    mw_ltimer *t = h->data;
    mw_async_host *host = t->host;
    int fn_ref = t->fn_ref;
    if (!t->repeat) {
        /* one-shot: keep the function alive for this call, then let it go */
        lua_State *L = mw_async_host_state(host);
        lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
        fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        timer_stop(t);
        mw_async_spawn(host, "timer", fn_ref, 0);
        luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
        return;
    }
    mw_async_spawn(host, "timer", fn_ref, 0);
}

/* A sleep is over: resume the sleeper (its call is freed once the timer has closed). */
static void sleep_tick_cb(uv_timer_t *h)
{
    mw_ltimer *t = h->data;
    mw_async *a = t->sleeper;
    timer_stop(t);
    lua_State *L = mw_async_resume_begin(a);
    if (L)
        mw_async_resume_end(a, 0);
}

/* The Lua state goes away while a coroutine sleeps. */
static void sleep_cancel_cb(mw_async *a)
{
    timer_stop(mw_async_data(a));
}

/* Whether seconds is a delay a timer can take (not NaN, not negative, not absurd). */
static int valid_seconds(lua_Number seconds) { return seconds >= 0 && seconds <= 1e9; }

static int l_timer_start(lua_State *L)
{
    mw_lapi_timer_ctx *ctx = ctx_of(L);
    lua_Number seconds = luaL_checknumber(L, 1);
    int repeat = lua_toboolean(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (!valid_seconds(seconds))
        return luaL_error(L, "timer: seconds must be a number >= 0");
    if (repeat && seconds < 0.001)
        return luaL_error(L, "timer:every needs an interval of at least 0.001 s");
    if (ctx->closed) /* a timer now would keep the final cleanup loop running forever */
        return luaL_error(L, "timer: the worker is stopping");
    mw_async_host *host = mw_async_host_of(L);
    assert(host); /* a worker's state: its ticks need someone to spawn them */
    mw_ltimer *t = calloc(1, sizeof(*t));
    if (!t)
        return luaL_error(L, "out of memory");
    lua_pushvalue(L, 3);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->ctx = ctx;
    t->host = host;
    t->repeat = repeat;
    t->id = ++ctx->last_id;
    timer_begin(t, seconds, tick_cb);
    lua_pushnumber(L, (lua_Number)t->id);
    return 1;
}

static int l_timer_stop(lua_State *L)
{
    mw_lapi_timer_ctx *ctx = ctx_of(L);
    lua_Integer id = (lua_Integer)luaL_checknumber(L, 1);
    for (mw_ltimer *t = ctx->timers; t; t = t->next) {
        if (t->id == id) {
            timer_stop(t);
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

/* core.timer_sleep(token, seconds) -> true: the caller yields until the time is up */
static int l_timer_sleep(lua_State *L)
{
    mw_lapi_timer_ctx *ctx = ctx_of(L);
    lua_Number token = luaL_checknumber(L, 1);
    lua_Number seconds = luaL_checknumber(L, 2);
    if (!valid_seconds(seconds))
        return luaL_error(L, "timer: seconds must be a number >= 0");
    if (ctx->closed)
        return luaL_error(L, "timer: the worker is stopping");
    mw_async *a = mw_async_new(L, token, sizeof(mw_ltimer), "timer:sleep must run inside a handler");
    mw_ltimer *t = mw_async_data(a);
    t->ctx = ctx;
    t->host = mw_async_host_of(L);
    t->fn_ref = LUA_NOREF;
    t->sleeper = a;
    mw_async_on_cancel(a, sleep_cancel_cb);
    timer_begin(t, seconds, sleep_tick_cb);
    return mw_async_started(L, a);
}

void mw_lapi_timer_close_all(mw_lapi_timer_ctx *ctx)
{
    ctx->closed = 1;
    while (ctx->timers)
        timer_stop(ctx->timers);
}

void mw_lapi_timer_open(lua_State *L, void *ctx)
{
    static const luaL_Reg fns[] = {
        { "timer_start", l_timer_start },
        { "timer_stop", l_timer_stop },
        { "timer_sleep", l_timer_sleep },
        { NULL, NULL },
    };
    mw_lapi_register(L, fns, ctx);
}
