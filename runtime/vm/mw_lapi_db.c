/* mw_lapi_db: the core functions behind lua/moonwire/database.lua, for either backend (mw_db.h):
 * db_run(token, sql, ...) and db_run_in(token, session, sql, ...) queue a statement and the
 * caller yields; the reply resumes the coroutine with (rows, changes, lastInsertId) or
 * (nil, message). Parameters are bound, never spliced into SQL: numbers (integers as
 * integers), strings, booleans (1/0), nil/cjson.null (NULL). db_backend() names the backend;
 * db_session_open/close bracket a transaction (PostgreSQL pins a connection to it). */
#include "mw_lapi_db.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <string.h>

#include "mw_async.h"
#include "mw_db.h"
#include "mw_lapi.h"

#define MW_DB_MAX_PARAMS 999
#define MW_DB_STACK_PARAMS 64 /* more than this many parameters go in a Lua-owned buffer */

/* One statement's operation state (mw_async_data). */
typedef struct db_call {
    mw_lapi_db_ctx *ctx;
    uint64_t started_ns; /* for the latency histogram */
} db_call;

static mw_lapi_db_ctx *ctx_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* Answers nil, why there is no database. [-0, +2] */
static int no_database(lua_State *L, const mw_lapi_db_ctx *ctx)
{
    lua_pushnil(L);
    lua_pushstring(L, ctx->error[0] ? ctx->error : "no database is configured");
    return 2;
}

/* Pushes a cell as its Lua value; returns 0 (and pushes nothing) for NULL. [-0, +0|1] */
static int push_value(lua_State *L, const mw_db_value *v)
{
    switch (v->type) {
    case MW_DB_INT: lua_pushnumber(L, (lua_Number)v->i); return 1;
    case MW_DB_REAL: lua_pushnumber(L, v->d); return 1;
    case MW_DB_BOOL: lua_pushboolean(L, v->i != 0); return 1;
    case MW_DB_TEXT:
    case MW_DB_BLOB: lua_pushlstring(L, v->s, v->len); return 1;
    default: return 0;
    }
}

/* Resumes the caller with (rows, changes, lastInsertId) or (nil, message). */
static void resume_with(mw_async *a, const mw_db_result *res)
{
    lua_State *L = mw_async_resume_begin(a);
    if (!L)
        return; /* cancelled */
    if (res->error) {
        lua_pushnil(L);
        lua_pushstring(L, res->error);
        mw_async_resume_end(a, 2);
        return;
    }
    lua_createtable(L, (int)res->nrows, 0);
    for (size_t r = 0; r < res->nrows; r++) {
        lua_createtable(L, 0, res->ncols);
        for (int c = 0; c < res->ncols; c++) {
            if (!push_value(L, &res->values[r * (size_t)res->ncols + (size_t)c]))
                continue; /* NULL: the key is absent (nil) */
            lua_setfield(L, -2, res->cols[c]);
        }
        lua_rawseti(L, -2, (int)r + 1);
    }
    lua_pushnumber(L, (lua_Number)res->changes);
    if (!push_value(L, &res->last_insert_id))
        lua_pushnil(L);
    mw_async_resume_end(a, 3);
}

static void done_cb(mw_db_result *res, void *data)
{
    mw_async *a = data;
    db_call *call = mw_async_data(a);
    mw_metrics_slot *m = call->ctx->m;
    mw_metrics_add(m, MW_M_DB_QUERIES, 1);
    if (res->error)
        mw_metrics_add(m, MW_M_DB_ERRORS, 1);
    mw_metrics_observe(&m->db_query, uv_hrtime() - call->started_ns);
    resume_with(a, res);
    mw_async_free(a);
}

/* core.db_run(token, sql, ...) and, with the session upvalue set, core.db_run_in(token,
 * session, sql, ...) -> true (the caller yields) or nil, err */
static int l_db_run(lua_State *L)
{
    mw_lapi_db_ctx *ctx = ctx_of(L);
    int in_session = lua_toboolean(L, lua_upvalueindex(2));
    lua_Number token = luaL_checknumber(L, 1);
    unsigned session = in_session ? (unsigned)luaL_checknumber(L, 2) : 0;
    int first = in_session ? 3 : 2; /* the sql */
    size_t sql_len;
    const char *sql = luaL_checklstring(L, first, &sql_len);
    int nparams = lua_gettop(L) - first;
    if (nparams > MW_DB_MAX_PARAMS)
        return luaL_error(L, "database: at most %d parameters", MW_DB_MAX_PARAMS);
    if (!ctx->db)
        return no_database(L, ctx);
    /* a Lua-owned buffer: every check below may raise without leaking it */
    mw_db_value stack_params[MW_DB_STACK_PARAMS];
    mw_db_value *p = nparams <= MW_DB_STACK_PARAMS ? stack_params
                                                  : lua_newuserdata(L, (size_t)nparams * sizeof(mw_db_value));
    for (int i = 0; i < nparams; i++) {
        int idx = i + first + 1;
        memset(&p[i], 0, sizeof(p[i]));
        switch (lua_type(L, idx)) {
        case LUA_TNUMBER: {
            lua_Number n = lua_tonumber(L, idx);
            if (n == floor(n) && fabs(n) < 9007199254740992.0) {
                p[i].type = MW_DB_INT;
                p[i].i = (int64_t)n;
            } else {
                p[i].type = MW_DB_REAL;
                p[i].d = n;
            }
            break;
        }
        case LUA_TSTRING:
            p[i].type = MW_DB_TEXT;
            p[i].s = (char *)lua_tolstring(L, idx, &p[i].len);
            break;
        case LUA_TBOOLEAN:
            p[i].type = MW_DB_BOOL;
            p[i].i = lua_toboolean(L, idx);
            break;
        case LUA_TNIL:
            p[i].type = MW_DB_NULL;
            break;
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata(L, idx) == NULL) { /* cjson.null */
                p[i].type = MW_DB_NULL;
                break;
            }
            /* fall through */
        default:
            return luaL_error(L, "database: parameter %d must be a number, string, boolean or nil, got %s", i + 1,
                              luaL_typename(L, idx));
        }
    }
    mw_async *a = mw_async_new(L, token, sizeof(db_call),
                               "database calls wait for their result and must run inside a handler");
    db_call *call = mw_async_data(a);
    call->ctx = ctx;
    call->started_ns = uv_hrtime();
    /* the backend copies the parameters: p may go once it returns */
    int rv = mw_db_run(ctx->db, session, sql, sql_len, p, nparams, done_cb, a);
    if (rv == MW_DB_ESESSION)
        return mw_async_failed(L, a, "database: the transaction has ended");
    if (rv == MW_DB_ECLOSED)
        return mw_async_failed(L, a, "database: the worker is shutting down");
    if (rv != 0)
        return mw_async_failed(L, a, "out of memory queueing the statement");
    return mw_async_started(L, a);
}

/* core.db_backend() -> "sqlite", "postgres", or nil, err when there is no database */
static int l_db_backend(lua_State *L)
{
    mw_lapi_db_ctx *ctx = ctx_of(L);
    if (!ctx->db)
        return no_database(L, ctx);
    lua_pushstring(L, mw_db_backend(ctx->db));
    return 1;
}

/* core.db_session_open() -> session id, or nil, err */
static int l_db_session_open(lua_State *L)
{
    mw_lapi_db_ctx *ctx = ctx_of(L);
    if (!ctx->db)
        return no_database(L, ctx);
    unsigned id = mw_db_session_open(ctx->db);
    if (!id) {
        lua_pushnil(L);
        lua_pushliteral(L, "out of memory starting a transaction");
        return 2;
    }
    lua_pushnumber(L, (lua_Number)id);
    return 1;
}

/* core.db_session_close(id): the transaction is over (after COMMIT or ROLLBACK) */
static int l_db_session_close(lua_State *L)
{
    mw_lapi_db_ctx *ctx = ctx_of(L);
    unsigned id = (unsigned)luaL_checknumber(L, 1);
    if (ctx->db)
        mw_db_session_close(ctx->db, id);
    return 0;
}

void mw_lapi_db_open(lua_State *L, void *ctx)
{
    lua_pushlightuserdata(L, ctx);
    lua_pushboolean(L, 0);
    lua_pushcclosure(L, l_db_run, 2);
    lua_setfield(L, -2, "db_run");
    lua_pushlightuserdata(L, ctx);
    lua_pushboolean(L, 1);
    lua_pushcclosure(L, l_db_run, 2);
    lua_setfield(L, -2, "db_run_in");
    static const luaL_Reg fns[] = {
        { "db_backend", l_db_backend },
        { "db_session_open", l_db_session_open },
        { "db_session_close", l_db_session_close },
        { NULL, NULL },
    };
    mw_lapi_register(L, fns, ctx);
}
