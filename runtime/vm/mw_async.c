/* mw_async: the pending calls of one Lua state (a list the host cancels when the state goes
 * away) and the two ways back into Lua: resuming a waiting coroutine, spawning a new one. */
#include "mw_async.h"

#include <assert.h>
#include <lauxlib.h>
#include <stdlib.h>

#include "mw_lguard.h"

enum { CALL_PENDING, CALL_RESUMED, CALL_CANCELLED };

struct mw_async {
    mw_async_host *host; /* NULL once the call is cancelled */
    int state;
    int co_ref; /* the waiting coroutine, while pending */
    lua_Number token;
    void (*cancel_cb)(mw_async *a);
    mw_async *prev, *next; /* in host->pending while pending */
    /* the binding's operation state (mw_async_data) follows, aligned like malloc's */
    _Alignas(max_align_t) unsigned char data[];
};

struct mw_async_host {
    lua_State *L; /* the main state */
    struct mw_lguard *guard;
    int resume_ref, spawn_ref;
    mw_async *pending;
    size_t n_pending;
};

/* The registry key of the host: the address of this variable. */
static const char host_key = 0;

mw_async_host *mw_async_host_new(lua_State *L, struct mw_lguard *guard)
{
    mw_async_host *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->L = L;
    h->guard = guard;
    h->resume_ref = h->spawn_ref = LUA_NOREF;
    lua_pushlightuserdata(L, (void *)&host_key);
    lua_pushlightuserdata(L, h);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return h;
}

void mw_async_host_set_hooks(mw_async_host *h, int resume_ref, int spawn_ref)
{
    h->resume_ref = resume_ref;
    h->spawn_ref = spawn_ref;
}

mw_async_host *mw_async_host_of(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&host_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    mw_async_host *h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return h;
}

lua_State *mw_async_host_state(const mw_async_host *h) { return h->L; }

size_t mw_async_host_pending(const mw_async_host *h) { return h->n_pending; }

static void unlink_call(mw_async *a)
{
    mw_async_host *h = a->host;
    assert(a->state == CALL_PENDING && h->n_pending > 0);
    if (a->prev)
        a->prev->next = a->next;
    else
        h->pending = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
    h->n_pending--;
}

void mw_async_host_free(mw_async_host *h)
{
    if (!h)
        return;
    while (h->pending) {
        mw_async *a = h->pending;
        unlink_call(a);
        /* the state is closed next: its references go with it */
        a->state = CALL_CANCELLED;
        a->host = NULL;
        if (a->cancel_cb)
            a->cancel_cb(a); /* may free a */
    }
    lua_pushlightuserdata(h->L, (void *)&host_key);
    lua_pushnil(h->L);
    lua_rawset(h->L, LUA_REGISTRYINDEX);
    free(h);
}

void mw_async_spawn(mw_async_host *h, const char *what, int fn_ref, int nargs)
{
    lua_State *L = h->L;
    if (h->spawn_ref == LUA_NOREF) {
        lua_pop(L, nargs);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->spawn_ref);
    lua_pushstring(L, what);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
    /* spawn, what, fn below the arguments */
    for (int i = 0; i < 3; i++)
        lua_insert(L, -(nargs + 3));
    mw_lguard_pcall(h->guard, L, nargs + 2, 0, "spawn");
}

mw_async *mw_async_new(lua_State *L, lua_Number token, size_t size, const char *not_here)
{
    mw_async_host *h = mw_async_host_of(L);
    if (lua_pushthread(L)) { /* the main state cannot wait: nothing would resume it */
        lua_pop(L, 1);
        luaL_error(L, "%s", not_here);
        return NULL;
    }
    if (!h) { /* a state without a worker (`moonwire check`) runs no handlers */
        lua_pop(L, 1);
        luaL_error(L, "%s", not_here);
        return NULL;
    }
    mw_async *a = calloc(1, sizeof(*a) + size);
    if (!a) {
        lua_pop(L, 1);
        luaL_error(L, "out of memory");
        return NULL;
    }
    a->host = h;
    a->state = CALL_PENDING;
    a->token = token;
    a->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    a->next = h->pending;
    if (h->pending)
        h->pending->prev = a;
    h->pending = a;
    h->n_pending++;
    return a;
}

void *mw_async_data(mw_async *a) { return a->data; }

void mw_async_on_cancel(mw_async *a, void (*cancel_cb)(mw_async *a)) { a->cancel_cb = cancel_cb; }

int mw_async_started(lua_State *L, mw_async *a)
{
    assert(a->state == CALL_PENDING);
    lua_pushboolean(L, 1);
    return 1;
}

int mw_async_failed(lua_State *L, mw_async *a, const char *why)
{
    mw_async_free(a);
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
}

lua_State *mw_async_resume_begin(mw_async *a)
{
    if (a->state == CALL_CANCELLED)
        return NULL;
    assert(a->state == CALL_PENDING); /* a call is resumed once */
    mw_async_host *h = a->host;
    lua_State *L = h->L;
    unlink_call(a);
    a->state = CALL_RESUMED;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->resume_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->co_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, a->co_ref);
    a->co_ref = LUA_NOREF;
    lua_pushnumber(L, a->token);
    return L;
}

void mw_async_resume_end(mw_async *a, int nvalues)
{
    assert(a->state == CALL_RESUMED && a->host);
    mw_lguard_pcall(a->host->guard, a->host->L, 2 + nvalues, 0, "resume");
}

void mw_async_free(mw_async *a)
{
    if (!a)
        return;
    if (a->state == CALL_PENDING) {
        unlink_call(a);
        luaL_unref(a->host->L, LUA_REGISTRYINDEX, a->co_ref);
    }
    free(a);
}
