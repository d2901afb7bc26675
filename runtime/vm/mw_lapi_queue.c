/* mw_lapi_queue: the few C functions the queue (lua/moonwire/queue.lua, all of whose storage
 * work goes through the redis and database bindings) needs: its metrics in shared memory, job
 * ids, and whether the worker is draining (then it takes no new jobs). */
#include "mw_lapi_queue.h"

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "mw_lapi.h"
#include "mw_util.h"

static mw_lapi_queue_ctx *ctx_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* core.job_count(kind, n): kind is "added", "completed", "failed" or "retried" */
static int l_job_count(lua_State *L)
{
    mw_lapi_queue_ctx *ctx = ctx_of(L);
    const char *kind = luaL_checkstring(L, 1);
    lua_Integer n = luaL_optinteger(L, 2, 1);
    mw_metric which;
    if (strcmp(kind, "added") == 0)
        which = MW_M_JOBS_ADDED;
    else if (strcmp(kind, "completed") == 0)
        which = MW_M_JOBS_COMPLETED;
    else if (strcmp(kind, "failed") == 0)
        which = MW_M_JOBS_FAILED;
    else if (strcmp(kind, "retried") == 0)
        which = MW_M_JOBS_RETRIED;
    else
        return luaL_error(L, "job_count: unknown kind '%s'", kind);
    mw_metrics_add(ctx->m, which, n);
    return 0;
}

/* core.queue_depth(queue, depth) */
static int l_queue_depth(lua_State *L)
{
    mw_lapi_queue_ctx *ctx = ctx_of(L);
    const char *queue = luaL_checkstring(L, 1);
    lua_Number depth = luaL_checknumber(L, 2);
    mw_metrics_queue_depth(ctx->m, queue, depth > 0 ? (uint64_t)depth : 0);
    return 0;
}

/* core.random_id() -> 22 URL-safe characters (128 random bits) */
static int l_random_id(lua_State *L)
{
    char id[MW_RANDOM_ID_LEN + 1];
    if (mw_random_id(id) != 0)
        return luaL_error(L, "no random bytes available");
    lua_pushlstring(L, id, MW_RANDOM_ID_LEN);
    return 1;
}

/* core.job_active(delta): jobs running or still recording their outcome; a draining worker
 * waits for them (up to limits.shutdownTimeout) before it stops. */
static int l_job_active(lua_State *L)
{
    mw_lapi_queue_ctx *ctx = ctx_of(L);
    ctx->jobs_active += (long)luaL_checkinteger(L, 1);
    if (ctx->jobs_active < 0)
        ctx->jobs_active = 0;
    return 0;
}

/* core.draining() -> true once the worker began its graceful shutdown */
static int l_draining(lua_State *L)
{
    lua_pushboolean(L, *ctx_of(L)->draining);
    return 1;
}

void mw_lapi_queue_open(lua_State *L, void *ctx)
{
    static const luaL_Reg fns[] = {
        { "random_id", l_random_id },
        { "draining", l_draining },
        { "job_count", l_job_count },
        { "queue_depth", l_queue_depth },
        { "job_active", l_job_active },
        { NULL, NULL },
    };
    mw_lapi_register(L, fns, ctx);
}
