/* mw_lapi_redis: core.redis_call(cmd, ...) and core.redis_subscribe(channel, isPattern) behind
 * lua/moonwire/redis.lua. A call sends the command and returns; the Lua side then yields, and
 * the reply callback resumes that coroutine with the reply converted while hiredis still owns
 * it (status -> string, integer -> number, bulk -> string, nil -> nil, array -> table with
 * cjson.null for nil elements, error -> nil, message). */
#include "mw_lapi_redis.h"

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "mw_async.h"
#include "mw_lapi.h"
#include "mw_redis.h"

#define MW_REDIS_MAX_ARGS 1024
#define MW_REDIS_MAX_DEPTH 16

static mw_lapi_redis_ctx *ctx_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* Pushes a non-error reply. [-0, +1] */
static void push_reply(lua_State *L, const redisReply *r, int depth)
{
    switch (r->type) {
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_ERROR: /* only inside arrays (EXEC): as its text */
        lua_pushlstring(L, r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        lua_pushnumber(L, (lua_Number)r->integer);
        break;
    case REDIS_REPLY_ARRAY:
        lua_createtable(L, (int)r->elements, 0);
        for (size_t i = 0; i < r->elements; i++) {
            if (depth >= MW_REDIS_MAX_DEPTH || r->element[i]->type == REDIS_REPLY_NIL)
                lua_pushlightuserdata(L, NULL); /* cjson.null: keeps the array's length */
            else
                push_reply(L, r->element[i], depth + 1);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    default:
        lua_pushnil(L);
    }
}

static void reply_cb(mw_redis *r, redisReply *reply, const char *err, void *data)
{
    mw_async *a = data;
    lua_State *L = mw_async_resume_begin(a); /* NULL: cancelled */
    if (L && err) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        mw_async_resume_end(a, 2);
    } else if (L && reply->type == REDIS_REPLY_ERROR) {
        lua_pushnil(L);
        lua_pushlstring(L, reply->str, reply->len);
        mw_async_resume_end(a, 2);
    } else if (L) {
        push_reply(L, reply, 0);
        mw_async_resume_end(a, 1);
    }
    mw_async_free(a);
}

/* core.redis_call(token, cmd, ...) -> true (the caller yields for the reply) or nil, err */
static int l_redis_call(lua_State *L)
{
    mw_lapi_redis_ctx *ctx = ctx_of(L);
    lua_Number token = luaL_checknumber(L, 1);
    int argc = lua_gettop(L) - 1;
    const char *argv[MW_REDIS_MAX_ARGS];
    size_t lens[MW_REDIS_MAX_ARGS];
    if (argc < 1)
        return luaL_error(L, "redis:call needs a command name");
    if (argc > MW_REDIS_MAX_ARGS)
        return luaL_error(L, "redis:call takes at most %d arguments", MW_REDIS_MAX_ARGS);
    for (int i = 1; i <= argc; i++) {
        int t = lua_type(L, i + 1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            return luaL_error(L, "redis:call: argument %d must be a string or a number, got %s", i,
                              lua_typename(L, t));
        argv[i - 1] = lua_tolstring(L, i + 1, &lens[i - 1]);
    }
    if (!ctx->cmd) {
        lua_pushnil(L);
        lua_pushliteral(L, "redis is not configured (start with --redis URL)");
        return 2;
    }
    /* the token is the Lua side's call number: the reply goes only to that call */
    mw_async *a = mw_async_new(L, token, 0,
                               "redis:call waits for its reply and must run inside a handler, event, "
                               "timer or subscriber");
    if (mw_redis_command(ctx->cmd, argc, argv, lens, reply_cb, a) != 0)
        return mw_async_failed(L, a, "redis is not connected");
    return mw_async_started(L, a);
}

/* core.redis_subscribe(channel, isPattern): for app.lua's subscribers, replayed on reconnect */
static int l_redis_subscribe(lua_State *L)
{
    mw_lapi_redis_ctx *ctx = ctx_of(L);
    const char *channel = luaL_checkstring(L, 1);
    if (!ctx->sub)
        return luaL_error(L, "subscribers need Redis (start with --redis URL)");
    if (mw_redis_subscribe(ctx->sub, channel, lua_toboolean(L, 2)) != 0)
        return luaL_error(L, "out of memory subscribing to %s", channel);
    return 0;
}

/* core.redis_fire(cmd, ...) -> true when queued: for writes nobody waits for (cluster state
 * from hooks that cannot yield). Queued commands run in order before any later command. */
static int l_redis_fire(lua_State *L)
{
    mw_lapi_redis_ctx *ctx = ctx_of(L);
    int argc = lua_gettop(L);
    const char *argv[MW_REDIS_MAX_ARGS];
    size_t lens[MW_REDIS_MAX_ARGS];
    if (argc < 1 || argc > MW_REDIS_MAX_ARGS)
        return luaL_error(L, "redis_fire: 1 to %d arguments", MW_REDIS_MAX_ARGS);
    for (int i = 1; i <= argc; i++) {
        if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER)
            return luaL_error(L, "redis_fire: argument %d must be a string or a number", i);
        argv[i - 1] = lua_tolstring(L, i, &lens[i - 1]);
    }
    lua_pushboolean(L, ctx->cmd && mw_redis_fire(ctx->cmd, argc, argv, lens) == 0);
    return 1;
}

static int l_redis_connected(lua_State *L)
{
    lua_pushboolean(L, mw_redis_connected(ctx_of(L)->cmd));
    return 1;
}

static int l_redis_configured(lua_State *L)
{
    lua_pushboolean(L, ctx_of(L)->cmd != NULL);
    return 1;
}

void mw_lapi_redis_open(lua_State *L, void *ctx)
{
    static const luaL_Reg fns[] = {
        { "redis_call", l_redis_call },
        { "redis_subscribe", l_redis_subscribe },
        { "redis_configured", l_redis_configured },
        { "redis_fire", l_redis_fire },
        { "redis_connected", l_redis_connected },
        { NULL, NULL },
    };
    mw_lapi_register(L, fns, ctx);
}
