/* mw_lapi_db: the core functions behind lua/moonwire/database.lua, for either backend (mw_db.h):
 * db_run(token, sql, ...) and db_run_in(token, session, sql, ...) queue a statement and the
 * caller yields; the reply resumes the coroutine with (rows, changes, lastInsertId) or
 * (nil, message). Parameters are bound, never spliced into SQL: numbers (integers as
 * integers), strings, booleans (1/0), nil/cjson.null (NULL). db_backend() names the backend;
 * db_session_open/close bracket a transaction (PostgreSQL pins a connection to it). */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mw_db.h"
#include "mw_lapi.h"
#include "mw_lvm.h"
#include "mw_metrics.h"
#include "mw_worker.h"

#define MW_DB_MAX_PARAMS 999

typedef struct db_call {
    mw_worker *w;
    int co_ref;
    lua_Number token;
    uint64_t started_ns; /* for the latency histogram */
} db_call;

static mw_worker *worker_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

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

static void done_cb(mw_db_result *res, void *data)
{
    db_call *call = data;
    mw_worker *w = call->w;
    mw_metrics_add(w->m, MW_M_DB_QUERIES, 1);
    if (res->error)
        mw_metrics_add(w->m, MW_M_DB_ERRORS, 1);
    mw_metrics_observe(&w->m->db_query, uv_hrtime() - call->started_ns);
    if (!w->lvm) {
        free(call);
        return;
    }
    lua_State *L = mw_lvm_state(w->lvm);
    mw_lvm_resume_begin(w->lvm, call->co_ref);
    lua_pushnumber(L, call->token);
    if (res->error) {
        lua_pushnil(L);
        lua_pushstring(L, res->error);
        mw_lvm_resume_end(w->lvm, 3);
        free(call);
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
    mw_lvm_resume_end(w->lvm, 4);
    free(call);
}

/* core.db_run(token, sql, ...) and, with the session upvalue set, core.db_run_in(token,
 * session, sql, ...) -> true (the caller yields) or nil, err */
static int l_db_run(lua_State *L)
{
    mw_worker *w = worker_of(L);
    int in_session = lua_toboolean(L, lua_upvalueindex(2));
    lua_Number token = luaL_checknumber(L, 1);
    unsigned session = in_session ? (unsigned)luaL_checknumber(L, 2) : 0;
    int first = in_session ? 3 : 2; /* the sql */
    size_t sql_len;
    const char *sql = luaL_checklstring(L, first, &sql_len);
    int nparams = lua_gettop(L) - first;
    if (nparams > MW_DB_MAX_PARAMS)
        return luaL_error(L, "database: at most %d parameters", MW_DB_MAX_PARAMS);
    if (!w->db) {
        lua_pushnil(L);
        lua_pushstring(L, w->db_error[0] ? w->db_error : "no database is configured");
        return 2;
    }
    mw_db_value params[64];
    mw_db_value *p = nparams <= 64 ? params : calloc((size_t)nparams, sizeof(mw_db_value));
    if (!p)
        return luaL_error(L, "out of memory");
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
            if (p != params)
                free(p);
            return luaL_error(L, "database: parameter %d must be a number, string, boolean or nil, got %s", i + 1,
                              luaL_typename(L, idx));
        }
    }
    if (lua_pushthread(L)) {
        lua_pop(L, 1);
        if (p != params)
            free(p);
        return luaL_error(L, "database calls wait for their result and must run inside a handler");
    }
    db_call *call = malloc(sizeof(*call));
    if (!call) {
        lua_pop(L, 1);
        if (p != params)
            free(p);
        return luaL_error(L, "out of memory");
    }
    call->w = w;
    call->token = token;
    call->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    call->started_ns = uv_hrtime();
    int rv = mw_db_run(w->db, session, sql, sql_len, p, nparams, done_cb, call);
    if (p != params)
        free(p);
    if (rv != 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, call->co_ref);
        free(call);
        lua_pushnil(L);
        if (rv == MW_DB_ESESSION)
            lua_pushliteral(L, "database: the transaction has ended");
        else if (rv == MW_DB_ECLOSED)
            lua_pushliteral(L, "database: the worker is shutting down");
        else
            lua_pushliteral(L, "out of memory queueing the statement");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* core.db_backend() -> "sqlite", "postgres", or nil, err when there is no database */
static int l_db_backend(lua_State *L)
{
    mw_worker *w = worker_of(L);
    if (!w->db) {
        lua_pushnil(L);
        lua_pushstring(L, w->db_error[0] ? w->db_error : "no database is configured");
        return 2;
    }
    lua_pushstring(L, mw_db_backend(w->db));
    return 1;
}

/* core.db_session_open() -> session id, or nil, err */
static int l_db_session_open(lua_State *L)
{
    mw_worker *w = worker_of(L);
    if (!w->db) {
        lua_pushnil(L);
        lua_pushstring(L, w->db_error[0] ? w->db_error : "no database is configured");
        return 2;
    }
    unsigned id = mw_db_session_open(w->db);
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
    mw_worker *w = worker_of(L);
    unsigned id = (unsigned)luaL_checknumber(L, 1);
    if (w->db)
        mw_db_session_close(w->db, id);
    return 0;
}

void mw_lapi_db_inject(lua_State *L, mw_worker *w)
{
    lua_pushlightuserdata(L, w);
    lua_pushboolean(L, 0);
    lua_pushcclosure(L, l_db_run, 2);
    lua_setfield(L, -2, "db_run");
    lua_pushlightuserdata(L, w);
    lua_pushboolean(L, 1);
    lua_pushcclosure(L, l_db_run, 2);
    lua_setfield(L, -2, "db_run_in");
    static const luaL_Reg fns[] = {
        { "db_backend", l_db_backend },
        { "db_session_open", l_db_session_open },
        { "db_session_close", l_db_session_close },
        { NULL, NULL },
    };
    mw_lapi_register(L, fns, w);
}
