/* mw_lco: the pool of message coroutines C resumes itself (see mw_lco.h for why). */
#include "mw_lco.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>

#include "mw_lguard.h"
#include "mw_log.h"

#define IDLE_MAX 64 /* as many idle coroutines as one burst of handlers waiting on I/O needs */

typedef struct {
    lua_State *co;
    int ref; /* keeps the coroutine alive while C holds it */
} slot;

struct mw_lco {
    lua_State *L;
    int ref_loop, ref_finished, ref_adopt, ref_body;
    slot idle[IDLE_MAX];
    int n_idle;
    slot current; /* the coroutine between mw_lco_begin and mw_lco_run */
    int fresh;    /* current was just made: the loop function sits below the arguments */
};

static int take_ref(lua_State *L, int hooks, const char *name, int type)
{
    lua_getfield(L, hooks, name);
    if (lua_type(L, -1) != type) {
        lua_pop(L, 1);
        return LUA_NOREF;
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

mw_lco *mw_lco_new(lua_State *L, int hooks)
{
    mw_lco *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->L = L;
    p->ref_loop = take_ref(L, hooks, "message_loop", LUA_TFUNCTION);
    p->ref_finished = take_ref(L, hooks, "FINISHED", LUA_TTABLE);
    p->ref_adopt = take_ref(L, hooks, "adopt", LUA_TFUNCTION);
    p->ref_body = take_ref(L, hooks, "body", LUA_TFUNCTION);
    if (p->ref_loop == LUA_NOREF || p->ref_finished == LUA_NOREF || p->ref_adopt == LUA_NOREF ||
        p->ref_body == LUA_NOREF) {
        mw_lco_free(p);
        return NULL;
    }
    return p;
}

void mw_lco_free(mw_lco *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_idle; i++)
        luaL_unref(p->L, LUA_REGISTRYINDEX, p->idle[i].ref);
    luaL_unref(p->L, LUA_REGISTRYINDEX, p->ref_loop);
    luaL_unref(p->L, LUA_REGISTRYINDEX, p->ref_finished);
    luaL_unref(p->L, LUA_REGISTRYINDEX, p->ref_adopt);
    luaL_unref(p->L, LUA_REGISTRYINDEX, p->ref_body);
    free(p);
}

lua_State *mw_lco_begin(mw_lco *p) { return mw_lco_begin_with(p, p->ref_body); }

lua_State *mw_lco_begin_with(mw_lco *p, int ref)
{
    if (p->n_idle > 0) {
        p->current = p->idle[--p->n_idle];
        p->fresh = 0;
    } else {
        p->current.co = lua_newthread(p->L);
        p->current.ref = luaL_ref(p->L, LUA_REGISTRYINDEX);
        lua_rawgeti(p->current.co, LUA_REGISTRYINDEX, p->ref_loop);
        p->fresh = 1;
    }
    lua_rawgeti(p->current.co, LUA_REGISTRYINDEX, ref);
    return p->current.co;
}

int mw_lco_run(mw_lco *p, mw_lguard *g, int nargs, const char *client_id, size_t id_len)
{
    slot s = p->current;
    lua_State *co = s.co;
    mw_lguard_enter(g);
    int rv = lua_resume(co, nargs + 1); /* the body and its arguments */
    mw_lguard_leave(g);
    if (rv == LUA_YIELD) {
        lua_rawgeti(co, LUA_REGISTRYINDEX, p->ref_finished);
        int finished = lua_gettop(co) >= 3 && lua_rawequal(co, 1, -1);
        int status = finished ? (int)lua_tointeger(co, 2) : 2;
        lua_settop(co, 0); /* as coroutine.resume leaves it: the next resume's values only */
        if (finished) {
            if (p->n_idle < IDLE_MAX)
                p->idle[p->n_idle++] = s;
            else
                luaL_unref(p->L, LUA_REGISTRYINDEX, s.ref);
            return status;
        }
        /* waits on I/O: the scheduler resumes it from now on, and keeps it alive */
        lua_State *L = p->L;
        lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_adopt);
        lua_rawgeti(L, LUA_REGISTRYINDEX, s.ref);
        lua_pushlstring(L, client_id, id_len);
        luaL_unref(L, LUA_REGISTRYINDEX, s.ref);
        if (mw_lguard_pcall(g, L, 2, 0, "adopt") != 0)
            return -1;
        return 2;
    }
    /* the loop never returns: it ended with an error (the body itself failed) */
    if (mw_log_begin(MW_LOG_ERROR, "runtime error")) {
        mw_log_str("in", "on_message");
        mw_log_str("error", lua_isstring(co, -1) ? lua_tostring(co, -1) : "(not a string)");
        mw_log_end();
    }
    luaL_unref(p->L, LUA_REGISTRYINDEX, s.ref);
    return -1;
}
