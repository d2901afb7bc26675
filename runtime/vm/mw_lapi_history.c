/* mw_lapi_history: room names and JSON object texts arrive checked by history.lua; what C
 * checks again raises. Times arrive in seconds (ttl) and leave as milliseconds. */
#include "mw_lapi_history.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <string.h>

#include "mw_async.h"
#include "mw_hist_local.h"
#include "mw_hist_redis.h"
#include "mw_json.h"
#include "mw_lapi.h"
#include "mw_rooms.h"

#define MW_HISTORY_DECODE_DEPTH 1000 /* what the encoder writes at most */

static mw_lapi_history_ctx *ctx_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

static const char *check_room(lua_State *L, int arg, size_t *len)
{
    const char *name = luaL_checklstring(L, arg, len);
    if (*len == 0 || *len > MW_ROOM_NAME_MAX || memchr(name, '\0', *len))
        luaL_error(L, "room names are 1 to %d bytes long, without NUL bytes", MW_ROOM_NAME_MAX);
    return name;
}

static uint32_t check_size(lua_State *L, int arg)
{
    lua_Integer size = luaL_checkinteger(L, arg);
    luaL_argcheck(L, size >= 1 && size <= 10000, arg, "history size must be 1..10000");
    return (uint32_t)size;
}

static uint64_t check_ttl_ms(lua_State *L, int arg)
{
    lua_Number ttl = luaL_checknumber(L, arg);
    luaL_argcheck(L, ttl > 0 && ttl < 1e12, arg, "history ttl must be > 0 seconds");
    uint64_t ms = (uint64_t)(ttl * 1000);
    return ms ? ms : 1;
}

/* An offset argument: a non-negative integer (beyond 2^53: 2^53, ahead of any room). */
static uint64_t check_offset(lua_State *L, int arg)
{
    lua_Number n = luaL_checknumber(L, arg);
    luaL_argcheck(L, n >= 0 && floor(n) == n, arg, "offsets are integers >= 0");
    return n > 9007199254740992.0 ? 9007199254740992ULL : (uint64_t)n;
}

/* core.history_setup(capBytes): limits.historyBytes */
static int l_setup(lua_State *L)
{
    lua_Number cap = luaL_checknumber(L, 1);
    mw_history_set_cap(ctx_of(L)->memory, cap > 0 ? (size_t)cap : 0);
    return 0;
}

/* core.history_send(room, body, size, ttl [, excludeClientId]) -> local recipients, offset */
static int l_send(lua_State *L)
{
    mw_lapi_history_ctx *ctx = ctx_of(L);
    size_t rlen, len;
    const char *room = check_room(L, 1, &rlen);
    const char *body = luaL_checklstring(L, 2, &len);
    uint32_t size = check_size(L, 3);
    uint64_t ttl = check_ttl_ms(L, 4);
    const char *exclude = lua_isnoneornil(L, 5) ? NULL : luaL_checkstring(L, 5);
    uint64_t offset = 0;
    long n = mw_hist_local_publish(ctx->fanout, ctx->memory, room, rlen, size, ttl, body, len, exclude, &offset);
    if (n == -2)
        return luaL_error(L, "a message to a history room must be a JSON object");
    if (n < 0)
        return luaL_error(L, "out of memory storing a message of %d bytes", (int)len);
    lua_pushinteger(L, (lua_Integer)n);
    lua_pushnumber(L, (lua_Number)offset);
    return 2;
}

/* Pushes {recovered =, offset =, epoch =, replayed =}; recovered absent when no since was asked. */
static void push_info(lua_State *L, const mw_hist_info *info)
{
    lua_createtable(L, 0, 4);
    if (info->recovered >= 0) {
        lua_pushboolean(L, info->recovered);
        lua_setfield(L, -2, "recovered");
    }
    lua_pushnumber(L, (lua_Number)info->offset);
    lua_setfield(L, -2, "offset");
    lua_pushstring(L, info->epoch);
    lua_setfield(L, -2, "epoch");
    lua_pushnumber(L, (lua_Number)info->replayed);
    lua_setfield(L, -2, "replayed");
}

/* core.history_join(clientId, room, size, ttl [, sinceOffset, sinceEpoch]) -> info, or nil for
 * an unknown client. The client has joined the room already. */
static int l_join(lua_State *L)
{
    mw_lapi_history_ctx *ctx = ctx_of(L);
    size_t idlen, rlen, elen = 0;
    const char *id = luaL_checklstring(L, 1, &idlen);
    const char *room = check_room(L, 2, &rlen);
    uint32_t size = check_size(L, 3);
    uint64_t ttl = check_ttl_ms(L, 4);
    int has_since = !lua_isnoneornil(L, 5);
    uint64_t since = has_since ? check_offset(L, 5) : 0;
    const char *epoch = has_since ? luaL_checklstring(L, 6, &elen) : NULL;
    mw_client *c = mw_clients_find(&ctx->fanout->clients, id, idlen);
    if (!c) {
        lua_pushnil(L);
        return 1;
    }
    mw_hist_info info;
    if (mw_hist_local_join(ctx->fanout, ctx->memory, c, room, rlen, size, ttl, has_since, since, epoch, elen,
                           &info) != 0)
        return luaL_error(L, "out of memory opening a room's history");
    push_info(L, &info);
    return 1;
}

/* core.history_info(room, size, ttl) -> offset, epoch (the history is created if it has none) */
static int l_info(lua_State *L)
{
    mw_lapi_history_ctx *ctx = ctx_of(L);
    size_t rlen;
    const char *room = check_room(L, 1, &rlen);
    mw_history_room *hr = mw_history_open(ctx->memory, room, rlen, check_size(L, 2), check_ttl_ms(L, 3),
                                          mw_hist_now_ms());
    if (!hr)
        return luaL_error(L, "out of memory opening a room's history");
    lua_pushnumber(L, (lua_Number)hr->last);
    lua_pushstring(L, hr->epoch);
    return 2;
}

/* Pushes the message of a history frame's JSON text: the object without "room" and "offset"
 * (which the server added). [-0, +1] */
static void push_message(lua_State *L, const char *text, size_t len)
{
    char err[128];
    if (mw_json_decode(L, text, len, MW_HISTORY_DECODE_DEPTH, err, sizeof(err)) != 0) {
        lua_pushnil(L);
        return;
    }
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushnil(L);
        lua_setfield(L, -2, "room");
        lua_pushnil(L);
        lua_setfield(L, -2, "offset");
    }
}

/* Pushes {epoch =, offset = last, messages = array of {offset =, message =}}. [-0, +1] */
static void push_history_begin(lua_State *L, const char *epoch, size_t elen, uint64_t last, int n)
{
    lua_createtable(L, 0, 3);
    lua_pushlstring(L, epoch, elen);
    lua_setfield(L, -2, "epoch");
    lua_pushnumber(L, (lua_Number)last);
    lua_setfield(L, -2, "offset");
    lua_createtable(L, n, 0);
    mw_json_push_array_mt(L);
    lua_setmetatable(L, -2);
}

/* Appends {offset =, message =} to the array on top of the stack as its element i. */
static void push_history_entry(lua_State *L, int i, uint64_t offset, const char *text, size_t len)
{
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, (lua_Number)offset);
    lua_setfield(L, -2, "offset");
    push_message(L, text, len);
    lua_setfield(L, -2, "message");
    lua_rawseti(L, -2, i);
}

/* core.history_get(room, size, ttl, since, limit) -> {epoch, offset, messages} (memory) */
static int l_get(lua_State *L)
{
    mw_lapi_history_ctx *ctx = ctx_of(L);
    size_t rlen;
    const char *room = check_room(L, 1, &rlen);
    uint32_t size = check_size(L, 2);
    uint64_t ttl = check_ttl_ms(L, 3);
    uint64_t since = check_offset(L, 4);
    lua_Integer limit = luaL_checkinteger(L, 5);
    mw_history_room *hr = mw_history_open(ctx->memory, room, rlen, size, ttl, mw_hist_now_ms());
    if (!hr)
        return luaL_error(L, "out of memory opening a room's history");
    uint64_t from = mw_history_first(hr);
    if (since + 1 > from)
        from = since + 1;
    int n = 0;
    if (from <= hr->last && limit > 0)
        n = (int)(hr->last - from + 1 < (uint64_t)limit ? hr->last - from + 1 : (uint64_t)limit);
    push_history_begin(L, hr->epoch, strlen(hr->epoch), hr->last, n);
    for (int i = 0; i < n; i++) {
        size_t len;
        const uint8_t *p = mw_frame_payload(mw_history_get(hr, from + (uint64_t)i), &len);
        push_history_entry(L, i + 1, from + (uint64_t)i, (const char *)p, len);
    }
    lua_setfield(L, -2, "messages");
    return 1;
}

/* ---- with Redis ---------------------------------------------------------------------------- */

static mw_hist_redis *redis_of(lua_State *L)
{
    mw_hist_redis *hr = ctx_of(L)->redis;
    if (!hr)
        luaL_error(L, "room history in Redis needs --redis");
    return hr;
}

/* core.history_publish(room, body, size, ttl [, excludeClientId [, dedupeKey]]) -> the local
 * members it will reach (0 when Redis is unavailable: nothing is sent) */
static int l_publish(lua_State *L)
{
    mw_hist_redis *hr = redis_of(L);
    size_t rlen, len, dlen = 0;
    const char *room = check_room(L, 1, &rlen);
    const char *body = luaL_checklstring(L, 2, &len);
    uint32_t size = check_size(L, 3);
    uint64_t ttl = check_ttl_ms(L, 4);
    const char *exclude = lua_isnoneornil(L, 5) ? NULL : luaL_checkstring(L, 5);
    const char *dedupe = lua_isnoneornil(L, 6) ? NULL : luaL_checklstring(L, 6, &dlen);
    long n = mw_hist_redis_publish(hr, room, rlen, size, ttl, body, len, exclude, dedupe, dlen);
    if (n == -2)
        return luaL_error(L, "a message to a history room must be a JSON object");
    if (n == -1)
        return luaL_error(L, "out of memory sending a message of %d bytes", (int)len);
    lua_pushinteger(L, (lua_Integer)(n < 0 ? 0 : n));
    return 1;
}

static void published(void *arg, uint64_t offset, const char *err)
{
    mw_async *a = arg;
    lua_State *L = mw_async_resume_begin(a);
    if (L && !err) {
        lua_pushnumber(L, (lua_Number)offset);
        mw_async_resume_end(a, 1);
    } else if (L) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        mw_async_resume_end(a, 2);
    }
    mw_async_free(a);
}

/* core.history_publish_async(token, room, body, size, ttl) -> true (the caller waits for the
 * message's offset, or nil, err), or nil, err */
static int l_publish_async(lua_State *L)
{
    mw_hist_redis *hr = redis_of(L);
    lua_Number token = luaL_checknumber(L, 1);
    size_t rlen, len;
    const char *room = check_room(L, 2, &rlen);
    const char *body = luaL_checklstring(L, 3, &len);
    uint32_t size = check_size(L, 4);
    uint64_t ttl = check_ttl_ms(L, 5);
    mw_async *a = mw_async_new(L, token, 0, "publishing with its offset waits for Redis and must run inside a "
                                            "handler, event, timer or subscriber");
    long n = mw_hist_redis_publish_wait(hr, room, rlen, size, ttl, body, len, published, a);
    if (n == -2)
        return mw_async_failed(L, a, "a message to a history room must be a JSON object");
    if (n < 0)
        return mw_async_failed(L, a, n == -3 ? "Room history is unavailable (redis is not connected)" : "out of memory");
    return mw_async_started(L, a);
}

static void join_done(void *arg, const mw_hist_info *info, const char *err)
{
    mw_async *a = arg;
    lua_State *L = mw_async_resume_begin(a);
    if (L && info) {
        push_info(L, info);
        mw_async_resume_end(a, 1);
    } else if (L) {
        lua_pushnil(L);
        lua_pushstring(L, err ? err : "the room's history could not be read");
        mw_async_resume_end(a, 2);
    }
    mw_async_free(a);
}

/* core.history_join_async(token, clientId, room, size, ttl [, sinceOffset, sinceEpoch]) -> true
 * (the caller waits for info, or nil, err), or nil, err */
static int l_join_async(lua_State *L)
{
    mw_hist_redis *hr = redis_of(L);
    lua_Number token = luaL_checknumber(L, 1);
    size_t idlen, rlen, elen = 0;
    const char *id = luaL_checklstring(L, 2, &idlen);
    const char *room = check_room(L, 3, &rlen);
    uint32_t size = check_size(L, 4);
    uint64_t ttl = check_ttl_ms(L, 5);
    int has_since = !lua_isnoneornil(L, 6);
    uint64_t since = has_since ? check_offset(L, 6) : 0;
    const char *epoch = has_since ? luaL_checklstring(L, 7, &elen) : NULL;
    mw_async *a = mw_async_new(L, token, 0, "joinRoom in a history room waits for Redis and must run inside a "
                                            "handler, event, timer or subscriber");
    int rv = mw_hist_redis_join(hr, id, idlen, room, rlen, size, ttl, has_since, since, epoch, elen, join_done, a);
    if (rv == -2)
        return mw_async_failed(L, a, "Unknown client");
    if (rv != 0)
        return mw_async_failed(L, a, "Room history is unavailable (redis is not connected)");
    return mw_async_started(L, a);
}

static void read_done(void *arg, const mw_hist_read *res, const char *err)
{
    mw_async *a = arg;
    lua_State *L = mw_async_resume_begin(a);
    if (L && res) {
        push_history_begin(L, res->epoch, res->epoch_len, res->last, (int)res->n);
        for (size_t i = 0; i < res->n; i++)
            push_history_entry(L, (int)i + 1, res->entries[i].offset, res->entries[i].text, res->entries[i].len);
        lua_setfield(L, -2, "messages");
        mw_async_resume_end(a, 1);
    } else if (L) {
        lua_pushnil(L);
        lua_pushstring(L, err ? err : "the room's history could not be read");
        mw_async_resume_end(a, 2);
    }
    mw_async_free(a);
}

/* core.history_get_async(token, room, size, ttl, since, limit) -> true (the caller waits for
 * {epoch, offset, messages}, or nil, err), or nil, err */
static int l_get_async(lua_State *L)
{
    mw_hist_redis *hr = redis_of(L);
    lua_Number token = luaL_checknumber(L, 1);
    size_t rlen;
    const char *room = check_room(L, 2, &rlen);
    (void)check_size(L, 3);
    uint64_t ttl = check_ttl_ms(L, 4);
    uint64_t since = check_offset(L, 5);
    lua_Integer limit = luaL_checkinteger(L, 6);
    luaL_argcheck(L, limit >= 1 && limit <= 10000, 6, "limit must be 1..10000");
    mw_async *a = mw_async_new(L, token, 0, "getHistory waits for Redis and must run inside a handler, event, "
                                            "timer or subscriber");
    if (mw_hist_redis_read(hr, room, rlen, ttl, since, (uint32_t)limit, read_done, a) != 0)
        return mw_async_failed(L, a, "redis is not connected");
    return mw_async_started(L, a);
}

void mw_lapi_history_open(lua_State *L, void *ctx)
{
    static const luaL_Reg fns[] = {
        { "history_setup", l_setup },
        { "history_send", l_send },
        { "history_join", l_join },
        { "history_info", l_info },
        { "history_get", l_get },
        { "history_publish", l_publish },
        { "history_publish_async", l_publish_async },
        { "history_join_async", l_join_async },
        { "history_get_async", l_get_async },
        { NULL, NULL },
    };
    mw_lapi_register(L, fns, ctx);
}
