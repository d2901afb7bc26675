/* mw_lapi_timer: core.timer_start(seconds, repeat, fn) -> id and core.timer_stop(id), behind
 * lua/moonwire/timer.lua. Each tick runs fn in a new coroutine. The worker owns the timers (a
 * dropped Lua handle does not stop one); they are closed and freed when the worker exits. */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>

#include "mw_lapi.h"
#include "mw_lvm.h"
#include "mw_worker.h"

struct mw_ltimer {
    uv_timer_t t;
    mw_worker *w;
    int fn_ref;
    lua_Integer id;
    int repeat;
    struct mw_ltimer *prev, *next;
};

static mw_worker *worker_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

static void timer_closed_cb(uv_handle_t *h)
{
    mw_ltimer *t = h->data;
    free(t);
}

/* Unlinks the timer, drops its function and closes it. */
static void timer_stop(mw_ltimer *t)
{
    mw_worker *w = t->w;
    if (t->prev)
        t->prev->next = t->next;
    else
        w->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    if (w->lvm)
        luaL_unref(mw_lvm_state(w->lvm), LUA_REGISTRYINDEX, t->fn_ref);
    uv_close((uv_handle_t *)&t->t, timer_closed_cb);
}

static void tick_cb(uv_timer_t *h)
{
    mw_ltimer *t = h->data;
    mw_worker *w = t->w;
    int fn_ref = t->fn_ref;
    if (!t->repeat) {
        /* one-shot: keep the function alive for this call, then let it go */
        lua_State *L = mw_lvm_state(w->lvm);
        lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
        fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        timer_stop(t);
        mw_lvm_spawn(w->lvm, "timer", fn_ref, 0);
        luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
        return;
    }
    mw_lvm_spawn(w->lvm, "timer", fn_ref, 0);
}

static int l_timer_start(lua_State *L)
{
    mw_worker *w = worker_of(L);
    lua_Number seconds = luaL_checknumber(L, 1);
    int repeat = lua_toboolean(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (!(seconds >= 0) || seconds > 1e9)
        return luaL_error(L, "timer: seconds must be a number >= 0");
    if (repeat && seconds < 0.001)
        return luaL_error(L, "timer:every needs an interval of at least 0.001 s");
    if (w->closing) /* a timer now would keep the final cleanup loop running forever */
        return luaL_error(L, "timer: the worker is stopping");
    mw_ltimer *t = calloc(1, sizeof(*t));
    if (!t)
        return luaL_error(L, "out of memory");
    lua_pushvalue(L, 3);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->w = w;
    t->repeat = repeat;
    t->id = ++w->last_timer_id;
    uv_timer_init(&w->loop, &t->t);
    t->t.data = t;
    uint64_t ms = (uint64_t)(seconds * 1000 + 0.5);
    uv_timer_start(&t->t, tick_cb, ms, repeat ? (ms ? ms : 1) : 0);
    t->next = w->timers;
    if (w->timers)
        w->timers->prev = t;
    w->timers = t;
    lua_pushnumber(L, (lua_Number)t->id);
    return 1;
}

static int l_timer_stop(lua_State *L)
{
    mw_worker *w = worker_of(L);
    lua_Integer id = (lua_Integer)luaL_checknumber(L, 1);
    for (mw_ltimer *t = w->timers; t; t = t->next) {
        if (t->id == id) {
            timer_stop(t);
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

void mw_lapi_timer_close_all(mw_worker *w)
{
    while (w->timers)
        timer_stop(w->timers);
}

void mw_lapi_timer_inject(lua_State *L, mw_worker *w)
{
    static const luaL_Reg fns[] = {
        { "timer_start", l_timer_start },
        { "timer_stop", l_timer_stop },
        { NULL, NULL },
    };
    mw_lapi_register(L, fns, w);
}
