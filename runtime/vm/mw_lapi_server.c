/* mw_lapi_server: sending and client lookup for webSocketServer (lua/moonwire/server.lua).
 * Payloads arrive already encoded as JSON text: a table is encoded once in Lua and framed once
 * by the hub's fan-out, and the one frame is shared by every recipient. Misuse raises; absence
 * returns false. */
#include "mw_lapi_server.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <string.h>

#include "mw_conn.h"
#include "mw_lapi.h"
#include "mw_reply.h"
#include "mw_util.h"

static mw_lapi_server *ctx_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }
static mw_fanout *fanout_of(lua_State *L) { return ctx_of(L)->fanout; }

static mw_client *find_client(lua_State *L, int arg)
{
    size_t len;
    const char *id = luaL_checklstring(L, arg, &len);
    return mw_clients_find(&fanout_of(L)->clients, id, len);
}

static int framing_failed(lua_State *L, size_t len)
{
    return luaL_error(L, "out of memory framing a message of %d bytes", (int)len);
}

/* core.send(clientId, payload [, binary [, localOnly [, checkUtf8]]]) -> true when queued for a
 * connected client (or handed to the bus for a client of another worker, unless localOnly);
 * with checkUtf8, nil (nothing sent) for a text payload that is not valid UTF-8 (sendRaw: one
 * call per message instead of two) */
#define CHECKED_MAX 32 /* a batch of raw messages (mw_lvm) */
static const char *checked_text[CHECKED_MAX]; /* see mw_lapi_server_checked_text */
static size_t checked_len[CHECKED_MAX];
static int n_checked;

void mw_lapi_server_checked_text(const char *text, size_t len)
{
    if (!text)
        n_checked = 0;
    else if (n_checked < CHECKED_MAX) {
        checked_text[n_checked] = text;
        checked_len[n_checked++] = len;
    }
}

static int is_checked(const char *text, size_t len)
{
    for (int i = 0; i < n_checked; i++)
        if (checked_text[i] == text && checked_len[i] == len)
            return 1;
    return 0;
}

static int l_send(lua_State *L)
{
    size_t idlen, len;
    const char *id = luaL_checklstring(L, 1, &idlen);
    const char *payload = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);
    /* a Lua string is immutable and the handler's argument keeps it alive: the same pointer is
     * the same text (an echo sends back what it got) */
    if (!binary && lua_toboolean(L, 5) && !is_checked(payload, len) &&
        !mw_utf8_valid((const uint8_t *)payload, len)) {
        lua_pushnil(L);
        return 1;
    }
    int rv = mw_fanout_send(fanout_of(L), id, idlen, payload, len, binary, lua_toboolean(L, 4));
    if (rv < 0)
        return framing_failed(L, len);
    lua_pushboolean(L, rv);
    return 1;
}

/* core.local_handlers(n): how many subscriber handlers run now (scheduler.lua keeps it). Their
 * sends reach this worker's clients only, which only Lua can tell per coroutine. */
static int local_handlers;

static int l_local_handlers(lua_State *L)
{
    local_handlers = (int)luaL_checkinteger(L, 1);
    return 0;
}

/* sendRaw's work, both ways in (l_send_raw, mw_lapi_server_ffi_send_raw): 1 sent, 0 no such
 * client, MW_SEND_RAW_NOT_UTF8 or MW_SEND_RAW_NO_MEMORY (nothing sent). */
static int send_raw(mw_fanout *fo, const char *id, size_t idlen, const char *payload, size_t len, int binary)
{
    if (!binary && !is_checked(payload, len) && !mw_utf8_valid((const uint8_t *)payload, len))
        return MW_SEND_RAW_NOT_UTF8;
    int rv = mw_fanout_send(fo, id, idlen, payload, len, binary, 0);
    return rv < 0 ? MW_SEND_RAW_NO_MEMORY : rv;
}

/* webSocketServer:sendRaw(clientId, payload, isBinary) in C, made by core.send_raw_method(lua)
 * from the Lua method (server.lua), which it calls while a subscriber handler runs. An echo
 * server calls it once per message: two Lua calls and four table lookups less each time. */
static int l_send_raw(lua_State *L)
{
    if (local_handlers > 0) {
        int n = lua_gettop(L);
        lua_pushvalue(L, lua_upvalueindex(2));
        lua_insert(L, 1);
        lua_call(L, n, 1);
        return 1;
    }
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "sendRaw: clientId must be a string, got %s", luaL_typename(L, 2));
    if (lua_type(L, 3) != LUA_TSTRING)
        return luaL_error(L, "sendRaw: payload must be a string, got %s", luaL_typename(L, 3));
    size_t idlen, len;
    const char *id = lua_tolstring(L, 2, &idlen);
    const char *payload = lua_tolstring(L, 3, &len);
    int rv = send_raw(fanout_of(L), id, idlen, payload, len, lua_toboolean(L, 4));
    if (rv == MW_SEND_RAW_NOT_UTF8)
        return luaL_error(L, "sendRaw: a text payload must be valid UTF-8 (send other bytes with isBinary = true)");
    if (rv == MW_SEND_RAW_NO_MEMORY)
        return framing_failed(L, len);
    lua_pushboolean(L, rv);
    return 1;
}

/* sendRaw's C part for LuaJIT's FFI (server.lua): a call through the FFI stays inside compiled
 * code, where a classic C function ends the trace (an echo loop then ran in the interpreter).
 * No Lua state here: the answer is a code, and server.lua calls the method above for anything
 * but 1 or 0 (it raises the errors). */
static mw_fanout *ffi_fanout; /* the worker's one fan-out, set when the binding is injected */

int mw_lapi_server_ffi_send_raw(const char *id, size_t idlen, const char *payload, size_t len, int binary)
{
    return local_handlers > 0 ? MW_SEND_RAW_IN_LUA : send_raw(ffi_fanout, id, idlen, payload, len, binary);
}

static int l_send_raw_method(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushvalue(L, lua_upvalueindex(1)); /* the binding's context */
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, l_send_raw, 2);
    return 1;
}

/* The reply's text is built here, reused across replies (the loop thread is the only user). */
static mw_json_buf reply_buf;
#define KEEP_REPLY_BYTES (256 * 1024) /* a larger buffer is freed after use */

/* core.reply(clientId, prefix, response, rid) -> true when queued for the client (false when it
 * is gone), or nil, why when response cannot be encoded as JSON (nothing is sent). The reply is
 * encoded straight into one buffer and framed once: no Lua string of it is ever made (the
 * router used to concatenate prefix .. encode(response) .. rid, then send). */
static int l_reply(lua_State *L)
{
    char err[160];
    size_t idlen;
    const char *id = luaL_checklstring(L, 1, &idlen);
    luaL_checktype(L, 2, LUA_TSTRING);
    lua_settop(L, 4);
    reply_buf.len = 0;
    if (mw_reply_encode(L, 2, 3, 4, &reply_buf, err, sizeof(err)) != 0) {
        if (reply_buf.cap > KEEP_REPLY_BYTES)
            mw_json_buf_free(&reply_buf);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    size_t len = reply_buf.len;
    int rv = mw_fanout_send(fanout_of(L), id, idlen, reply_buf.data, len, 0, 0);
    if (reply_buf.cap > KEEP_REPLY_BYTES)
        mw_json_buf_free(&reply_buf);
    if (rv < 0)
        return framing_failed(L, len);
    lua_pushboolean(L, rv);
    return 1;
}

/* core.broadcast(payload [, excludeClientId [, localOnly]]) -> number of local recipients */
static int l_broadcast(lua_State *L)
{
    size_t len;
    const char *payload = luaL_checklstring(L, 1, &len);
    const char *exclude = lua_isnoneornil(L, 2) ? NULL : luaL_checkstring(L, 2);
    long n = mw_fanout_broadcast(fanout_of(L), payload, len, exclude, lua_toboolean(L, 3));
    if (n < 0)
        return framing_failed(L, len);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* Pushes an array of the names of the client's rooms. [-0, +1] */
static void push_rooms_of(lua_State *L, mw_client *c)
{
    mw_memberships *ms = mw_rooms_of(&fanout_of(L)->rooms, c);
    lua_createtable(L, (int)ms->n, 0);
    for (uint32_t i = 0; i < ms->n; i++) {
        lua_pushlstring(L, ms->items[i].room->name, ms->items[i].room->name_len);
        lua_rawseti(L, -2, (int)i + 1);
    }
}

/* core.client_rooms(clientId) -> array of room names, or nil for an unknown client */
static int l_client_rooms(lua_State *L)
{
    mw_client *c = find_client(L, 1);
    if (!c) {
        lua_pushnil(L);
        return 1;
    }
    push_rooms_of(L, c);
    return 1;
}

/* core.room_join(clientId, room) -> true (joined), false (already a member), nil (unknown client) */
static int l_room_join(lua_State *L)
{
    mw_client *c = find_client(L, 1);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    if (len == 0 || len > MW_ROOM_NAME_MAX)
        return luaL_error(L, "room names are 1 to %d bytes long", MW_ROOM_NAME_MAX);
    if (memchr(name, '\0', len))
        return luaL_error(L, "room names must not contain NUL bytes");
    if (!c) {
        lua_pushnil(L);
        return 1;
    }
    int rv = mw_fanout_join(fanout_of(L), c, name, len);
    if (rv < 0)
        return luaL_error(L, "out of memory joining a room");
    lua_pushboolean(L, rv == 1);
    return 1;
}

/* core.room_leave(clientId, room) -> true when it was a member */
static int l_room_leave(lua_State *L)
{
    mw_client *c = find_client(L, 1);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    lua_pushboolean(L, c ? mw_fanout_leave(fanout_of(L), c, name, len) : 0);
    return 1;
}

/* core.room_leave_all(clientId) -> array of the rooms left (nil for an unknown client) */
static int l_room_leave_all(lua_State *L)
{
    mw_client *c = find_client(L, 1);
    if (!c) {
        lua_pushnil(L);
        return 1;
    }
    push_rooms_of(L, c);
    mw_fanout_leave_all(fanout_of(L), c);
    return 1;
}

/* core.room_members(room) -> array of clientIds */
static int l_room_members(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    mw_room *r = mw_rooms_find(&fanout_of(L)->rooms, name, len);
    lua_createtable(L, r ? (int)r->n : 0, 0);
    for (uint32_t i = 0; r && i < r->n; i++) {
        lua_pushlstring(L, r->members[i].client->id, MW_CLIENT_ID_LEN);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

typedef struct room_names {
    lua_State *L;
    int n;
} room_names;

static void push_room_name(void *arg, const mw_room *r)
{
    room_names *rn = arg;
    lua_pushlstring(rn->L, r->name, r->name_len);
    lua_rawseti(rn->L, -2, ++rn->n);
}

/* core.room_names() -> array of the rooms that have members */
static int l_room_names(lua_State *L)
{
    mw_fanout *fo = fanout_of(L);
    room_names rn = { L, 0 };
    lua_createtable(L, (int)fo->rooms.count, 0);
    mw_rooms_each(&fo->rooms, push_room_name, &rn);
    return 1;
}

/* core.room_send(room, payload [, excludeClientId [, localOnly]]) -> number of local recipients */
static int l_room_send(lua_State *L)
{
    const char *exclude = lua_isnoneornil(L, 3) ? NULL : luaL_checkstring(L, 3);
    size_t nlen, len;
    const char *name = luaL_checklstring(L, 1, &nlen);
    const char *payload = luaL_checklstring(L, 2, &len);
    if (memchr(name, '\0', nlen))
        return luaL_error(L, "room and user names must not contain NUL bytes");
    long n = mw_fanout_room(fanout_of(L), name, nlen, payload, len, exclude, lua_toboolean(L, 4));
    if (n < 0)
        return framing_failed(L, len);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* core.room_publish(room, payload): to the room's members on other workers and hosts only (a
 * draining worker's presence/leave events: its own clients are all being closed) */
static int l_room_publish(lua_State *L)
{
    size_t nlen, len;
    const char *name = luaL_checklstring(L, 1, &nlen);
    const char *payload = luaL_checklstring(L, 2, &len);
    if (memchr(name, '\0', nlen))
        return luaL_error(L, "room and user names must not contain NUL bytes");
    mw_bus_publish(fanout_of(L)->bus, MW_BUS_ROOM, name, nlen, NULL, 0, payload, len);
    return 0;
}

/* core.user_send(userKey, payload [, localOnly]) -> number of local recipients */
static int l_user_send(lua_State *L)
{
    size_t nlen, len;
    const char *key = luaL_checklstring(L, 1, &nlen);
    const char *payload = luaL_checklstring(L, 2, &len);
    if (memchr(key, '\0', nlen))
        return luaL_error(L, "room and user names must not contain NUL bytes");
    long n = mw_fanout_user(fanout_of(L), key, nlen, payload, len, lua_toboolean(L, 3));
    if (n < 0)
        return framing_failed(L, len);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* core.bus_op(clientId, json) -> true when sent to the client's worker (another one) */
static int l_bus_op(lua_State *L)
{
    mw_bus *bus = fanout_of(L)->bus;
    size_t idlen, len;
    const char *id = luaL_checklstring(L, 1, &idlen);
    const char *json = luaL_checklstring(L, 2, &len);
    int remote = mw_bus_reaches(bus, id, idlen);
    if (remote)
        mw_bus_publish(bus, MW_BUS_OP, id, idlen, NULL, 0, json, len);
    lua_pushboolean(L, remote);
    return 1;
}

/* core.stats() -> {connections, rooms, workerId, messagesIn, messagesOut} for this worker */
static int l_stats(lua_State *L)
{
    mw_lapi_server *ctx = ctx_of(L);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)ctx->fanout->clients.count);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, (lua_Integer)ctx->fanout->rooms.count);
    lua_setfield(L, -2, "rooms");
    lua_pushstring(L, ctx->worker_id);
    lua_setfield(L, -2, "workerId");
    lua_pushnumber(L, (lua_Number)ctx->m->values[MW_M_MESSAGES_IN]);
    lua_setfield(L, -2, "messagesIn");
    lua_pushnumber(L, (lua_Number)ctx->m->values[MW_M_MESSAGES_OUT]);
    lua_setfield(L, -2, "messagesOut");
    return 1;
}

/* core.count_event(kind): counts a presence event ("join", "leave") or a join canJoin refused
 * ("refused") in this worker's metrics */
static int l_count_event(lua_State *L)
{
    const char *kind = luaL_checkstring(L, 1);
    mw_metric which = strcmp(kind, "join") == 0    ? MW_M_PRESENCE_JOINS
                      : strcmp(kind, "leave") == 0 ? MW_M_PRESENCE_LEAVES
                                                   : MW_M_JOINS_REFUSED;
    mw_metrics_add(ctx_of(L)->m, which, 1);
    return 0;
}

/* core.client_info(clientId) -> fresh table or nil */
static int l_client_info(lua_State *L)
{
    mw_client *c = find_client(L, 1);
    if (!c || !c->conn) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 6);
    lua_pushlstring(L, c->id, MW_CLIENT_ID_LEN);
    lua_setfield(L, -2, "clientId");
    lua_pushnumber(L, (lua_Number)c->conn->connected_at_ms);
    lua_setfield(L, -2, "connectedAt");
    lua_pushnumber(L, (lua_Number)c->conn->last_activity_ms);
    lua_setfield(L, -2, "lastActivity");
    lua_pushstring(L, ctx_of(L)->worker_id);
    lua_setfield(L, -2, "workerId");
    lua_pushstring(L, c->conn->remote);
    lua_setfield(L, -2, "remoteAddress");
    push_rooms_of(L, c);
    lua_setfield(L, -2, "rooms");
    return 1;
}

static int l_client_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)fanout_of(L)->clients.count);
    return 1;
}

/* Arguments 2 and 3 of a disconnect: the close code (default 1000; 1000 or 3000-4999, else
 * raises naming fname) and the reason (default ""). */
static int close_args(lua_State *L, const char *fname, const char **reason)
{
    lua_Integer code = luaL_optinteger(L, 2, 1000);
    *reason = luaL_optstring(L, 3, "");
    if (code != 1000 && (code < 3000 || code > 4999))
        return luaL_error(L, "%s: close code must be 1000 or 3000-4999, got %d", fname, (int)code);
    return (int)code;
}

/* core.disconnect(clientId, code, reason) -> true when the client was connected here (or the
 * bus takes the request to the client's worker) */
static int l_disconnect(lua_State *L)
{
    size_t idlen;
    const char *id = luaL_checklstring(L, 1, &idlen);
    const char *reason;
    int code = close_args(L, "disconnectClient", &reason);
    lua_pushboolean(L, mw_fanout_disconnect(fanout_of(L), id, idlen, code, reason));
    return 1;
}

/* core.user_disconnect(userKey, code, reason) -> local connections closed (the others are
 * told through the bus) */
static int l_user_disconnect(lua_State *L)
{
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *reason;
    int code = close_args(L, "disconnect", &reason);
    lua_pushinteger(L, (lua_Integer)mw_fanout_disconnect_user(fanout_of(L), key, klen, code, reason));
    return 1;
}

/* core.handler_finished(clientId, errored): a handler that waited on I/O is done */
static int l_handler_finished(lua_State *L)
{
    mw_lapi_server *ctx = ctx_of(L);
    mw_client *c = find_client(L, 1);
    if (c)
        ctx->handler_finished(ctx->owner, c, lua_toboolean(L, 2));
    return 0;
}

static int l_now_ms(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)mw_wall_ms());
    return 1;
}

void mw_lapi_server_inject(lua_State *L, void *ctx)
{
    static const luaL_Reg fns[] = {
        { "send", l_send },
        { "reply", l_reply },
        { "broadcast", l_broadcast },
        { "client_info", l_client_info },
        { "client_count", l_client_count },
        { "disconnect", l_disconnect },
        { "user_disconnect", l_user_disconnect },
        { "handler_finished", l_handler_finished },
        { "now_ms", l_now_ms },
        { "client_rooms", l_client_rooms },
        { "room_join", l_room_join },
        { "room_leave", l_room_leave },
        { "room_leave_all", l_room_leave_all },
        { "room_members", l_room_members },
        { "room_names", l_room_names },
        { "room_send", l_room_send },
        { "room_publish", l_room_publish },
        { "user_send", l_user_send },
        { "stats", l_stats },
        { "count_event", l_count_event },
        { "bus_op", l_bus_op },
        { "local_handlers", l_local_handlers },
        { "send_raw_method", l_send_raw_method },
        { NULL, NULL },
    };
    mw_lapi_register(L, fns, ctx);
    ffi_fanout = ((mw_lapi_server *)ctx)->fanout;
    lua_pushlightuserdata(L, (void *)(uintptr_t)mw_lapi_server_ffi_send_raw);
    lua_setfield(L, -2, "send_raw_ffi");
}
