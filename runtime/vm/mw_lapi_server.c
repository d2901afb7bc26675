/* mw_lapi_server: sending and client lookup for webSocketServer (lua/moonwire/server.lua).
 * Payloads arrive already encoded as JSON text: a table is encoded once in Lua and framed once
 * here, and the one frame is shared by every recipient. Misuse raises; absence returns false. */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "mw_bus.h"
#include "mw_lapi.h"
#include "mw_lvm.h"
#include "mw_util.h"
#include "mw_worker.h"

static mw_worker *worker_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

static mw_conn *find_client(lua_State *L, int arg)
{
    size_t len;
    const char *id = luaL_checklstring(L, arg, &len);
    return mw_clients_find(&worker_of(L)->clients, id, len);
}

/* core.send(clientId, payload [, binary [, localOnly]]) -> true when queued for a connected
 * client (or handed to the bus for a client of another worker, unless localOnly) */
/* core.utf8_valid(s) -> whether s may be sent as a text frame */
static int l_utf8_valid(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_pushboolean(L, mw_utf8_valid((const uint8_t *)s, len));
    return 1;
}

static int l_send(lua_State *L)
{
    mw_conn *c = find_client(L, 1);
    size_t len;
    const char *payload = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);
    if (!c) {
        /* not here: if the id names another worker, the bus takes it there */
        mw_worker *w = worker_of(L);
        size_t idlen;
        const char *id = lua_tolstring(L, 1, &idlen);
        int remote = w->redis && !binary && !lua_toboolean(L, 4) && idlen == MW_CLIENT_ID_LEN &&
                     memcmp(id, w->tag, MW_WORKER_TAG_LEN) != 0;
        if (remote)
            mw_bus_publish(w, MW_BUS_CLIENT, id, idlen, NULL, 0, payload, len);
        lua_pushboolean(L, remote);
        return 1;
    }
    mw_frame *f = mw_frame_ws(binary ? 2 : 1, payload, len);
    if (!f)
        return luaL_error(L, "out of memory framing a message of %d bytes", (int)len);
    int ok = mw_conn_send(c, f) == 0;
    mw_frame_unref(f);
    lua_pushboolean(L, ok);
    return 1;
}

/* core.broadcast(payload [, excludeClientId [, localOnly]]) -> number of local recipients */
static int l_broadcast(lua_State *L)
{
    mw_worker *w = worker_of(L);
    size_t len;
    const char *payload = luaL_checklstring(L, 1, &len);
    const mw_conn *exclude = NULL;
    const char *exclude_id = NULL;
    if (!lua_isnoneornil(L, 2)) {
        exclude = find_client(L, 2);
        exclude_id = lua_tostring(L, 2);
    }
    if (!lua_toboolean(L, 3))
        mw_bus_publish(w, MW_BUS_ALL, NULL, 0, exclude_id, 0, payload, len);
    if (w->clients.count == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    mw_frame *f = mw_frame_ws(1, payload, len);
    if (!f)
        return luaL_error(L, "out of memory framing a message of %d bytes", (int)len);
    size_t n = mw_clients_broadcast(&w->clients, f, exclude);
    mw_frame_unref(f);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* Pushes an array of the names of the connection's rooms. [-0, +1] */
static void push_rooms_of(lua_State *L, mw_worker *w, mw_conn *c)
{
    mw_memberships *ms = mw_rooms_of(&w->rooms, c);
    lua_createtable(L, (int)ms->n, 0);
    for (uint32_t i = 0; i < ms->n; i++) {
        lua_pushlstring(L, ms->items[i].room->name, ms->items[i].room->name_len);
        lua_rawseti(L, -2, (int)i + 1);
    }
}

static void update_rooms_gauge(mw_worker *w)
{
    mw_metrics_set(w->m, MW_M_ROOMS, w->rooms.count);
}

/* core.client_rooms(clientId) -> array of room names, or nil for an unknown client */
static int l_client_rooms(lua_State *L)
{
    mw_conn *c = find_client(L, 1);
    if (!c) {
        lua_pushnil(L);
        return 1;
    }
    push_rooms_of(L, worker_of(L), c);
    return 1;
}

/* core.room_join(clientId, room) -> true (joined), false (already a member), nil (unknown client) */
static int l_room_join(lua_State *L)
{
    mw_worker *w = worker_of(L);
    mw_conn *c = find_client(L, 1);
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
    int rv = mw_rooms_join(&w->rooms, c, name, len);
    if (rv < 0)
        return luaL_error(L, "out of memory joining a room");
    if (rv == 1 && mw_rooms_find(&w->rooms, name, len)->n == 1)
        mw_bus_watch(w, MW_BUS_ROOM, name, len, 1); /* the first local member */
    update_rooms_gauge(w);
    lua_pushboolean(L, rv == 1);
    return 1;
}

/* core.room_leave(clientId, room) -> true when it was a member */
static int l_room_leave(lua_State *L)
{
    mw_worker *w = worker_of(L);
    mw_conn *c = find_client(L, 1);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    int left = c ? mw_rooms_leave(&w->rooms, c, name, len) : 0;
    if (left && !mw_rooms_find(&w->rooms, name, len))
        mw_bus_watch(w, MW_BUS_ROOM, name, len, 0); /* the last local member left */
    update_rooms_gauge(w);
    lua_pushboolean(L, left);
    return 1;
}

/* core.room_leave_all(clientId) -> array of the rooms left (nil for an unknown client) */
static int l_room_leave_all(lua_State *L)
{
    mw_worker *w = worker_of(L);
    mw_conn *c = find_client(L, 1);
    if (!c) {
        lua_pushnil(L);
        return 1;
    }
    push_rooms_of(L, w, c);
    mw_rooms_leave_all(&w->rooms, c, w);
    update_rooms_gauge(w);
    return 1;
}

/* core.room_members(room) -> array of clientIds */
static int l_room_members(lua_State *L)
{
    mw_worker *w = worker_of(L);
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    mw_room *r = mw_rooms_find(&w->rooms, name, len);
    lua_createtable(L, r ? (int)r->n : 0, 0);
    for (uint32_t i = 0; r && i < r->n; i++) {
        lua_pushlstring(L, r->members[i].conn->id, MW_CLIENT_ID_LEN);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* core.room_names() -> array of the rooms that have members */
static int l_room_names(lua_State *L)
{
    mw_worker *w = worker_of(L);
    int n = 0;
    lua_createtable(L, (int)w->rooms.count, 0);
    for (size_t i = 0; i < w->rooms.n_buckets; i++) {
        for (mw_room *r = w->rooms.buckets[i]; r; r = r->hnext) {
            lua_pushlstring(L, r->name, r->name_len);
            lua_rawseti(L, -2, ++n);
        }
    }
    return 1;
}

/* Frames payload once and hands it to mw_rooms_send on rs. */
static int send_to_group(lua_State *L, mw_rooms *rs, int name_arg, int payload_arg, const mw_conn *exclude,
                         int local_only_arg)
{
    size_t nlen, len;
    const char *name = luaL_checklstring(L, name_arg, &nlen);
    const char *payload = luaL_checklstring(L, payload_arg, &len);
    mw_worker *w = worker_of(L);
    int kind = rs == &w->rooms ? MW_BUS_ROOM : MW_BUS_USER;
    if (memchr(name, '\0', nlen))
        return luaL_error(L, "room and user names must not contain NUL bytes");
    if (!lua_toboolean(L, local_only_arg))
        mw_bus_publish(w, kind, name, nlen,
                       kind == MW_BUS_ROOM && lua_type(L, 3) == LUA_TSTRING ? lua_tostring(L, 3) : NULL, 0,
                       payload, len);
    if (!mw_rooms_find(rs, name, nlen)) {
        lua_pushinteger(L, 0);
        return 1;
    }
    mw_frame *f = mw_frame_ws(1, payload, len);
    if (!f)
        return luaL_error(L, "out of memory framing a message of %d bytes", (int)len);
    size_t n = mw_rooms_send(rs, name, nlen, f, exclude);
    mw_frame_unref(f);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* core.room_send(room, payload [, excludeClientId]) -> number of recipients */
static int l_room_send(lua_State *L)
{
    const mw_conn *exclude = lua_isnoneornil(L, 3) ? NULL : find_client(L, 3);
    return send_to_group(L, &worker_of(L)->rooms, 1, 2, exclude, 4);
}

/* core.user_send(userKey, payload) -> number of recipients */
static int l_user_send(lua_State *L)
{
    return send_to_group(L, &worker_of(L)->users, 1, 2, NULL, 3);
}

/* core.bus_op(clientId, json) -> true when sent to the client's worker (another one) */
static int l_bus_op(lua_State *L)
{
    mw_worker *w = worker_of(L);
    size_t idlen, len;
    const char *id = luaL_checklstring(L, 1, &idlen);
    const char *json = luaL_checklstring(L, 2, &len);
    int remote = w->redis && idlen == MW_CLIENT_ID_LEN && memcmp(id, w->tag, MW_WORKER_TAG_LEN) != 0;
    if (remote)
        mw_bus_publish(w, MW_BUS_OP, id, idlen, NULL, 0, json, len);
    lua_pushboolean(L, remote);
    return 1;
}

/* core.stats() -> {connections, rooms, workerId, messagesIn, messagesOut} for this worker */
static int l_stats(lua_State *L)
{
    mw_worker *w = worker_of(L);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)w->clients.count);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, (lua_Integer)w->rooms.count);
    lua_setfield(L, -2, "rooms");
    lua_pushstring(L, w->id);
    lua_setfield(L, -2, "workerId");
    lua_pushnumber(L, (lua_Number)w->m->values[MW_M_MESSAGES_IN]);
    lua_setfield(L, -2, "messagesIn");
    lua_pushnumber(L, (lua_Number)w->m->values[MW_M_MESSAGES_OUT]);
    lua_setfield(L, -2, "messagesOut");
    return 1;
}

/* core.client_info(clientId) -> fresh table or nil */
static int l_client_info(lua_State *L)
{
    mw_worker *w = worker_of(L);
    mw_conn *c = find_client(L, 1);
    if (!c) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 6);
    lua_pushlstring(L, c->id, MW_CLIENT_ID_LEN);
    lua_setfield(L, -2, "clientId");
    lua_pushnumber(L, (lua_Number)c->connected_at_ms);
    lua_setfield(L, -2, "connectedAt");
    lua_pushnumber(L, (lua_Number)c->last_activity_ms);
    lua_setfield(L, -2, "lastActivity");
    lua_pushstring(L, w->id);
    lua_setfield(L, -2, "workerId");
    lua_pushstring(L, c->remote);
    lua_setfield(L, -2, "remoteAddress");
    push_rooms_of(L, w, c);
    lua_setfield(L, -2, "rooms");
    return 1;
}

static int l_client_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)worker_of(L)->clients.count);
    return 1;
}

/* core.disconnect(clientId, code, reason) -> true when the client was connected here */
static int l_disconnect(lua_State *L)
{
    mw_conn *c = find_client(L, 1);
    lua_Integer code = luaL_optinteger(L, 2, 1000);
    const char *reason = luaL_optstring(L, 3, "");
    if (code != 1000 && (code < 3000 || code > 4999))
        return luaL_error(L, "disconnectClient: close code must be 1000 or 3000-4999, got %d", (int)code);
    if (!c) {
        mw_worker *w = worker_of(L);
        size_t idlen;
        const char *id = lua_tolstring(L, 1, &idlen);
        int remote = w->redis && idlen == MW_CLIENT_ID_LEN && memcmp(id, w->tag, MW_WORKER_TAG_LEN) != 0;
        if (remote)
            mw_bus_publish(w, MW_BUS_DISCONNECT, id, idlen, NULL, (int)code, reason, strlen(reason));
        lua_pushboolean(L, remote);
        return 1;
    }
    mw_conn_close_ws(c, (uint16_t)code, reason);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.handler_finished(clientId, errored): a handler that waited on I/O is done */
static int l_handler_finished(lua_State *L)
{
    mw_conn *c = find_client(L, 1);
    if (c)
        mw_conn_handler_finished(c, lua_toboolean(L, 2));
    return 0;
}

static int l_now_ms(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)mw_wall_ms());
    return 1;
}

void mw_lapi_server_inject(lua_State *L, mw_worker *w)
{
    static const luaL_Reg fns[] = {
        { "send", l_send },
        { "utf8_valid", l_utf8_valid },
        { "broadcast", l_broadcast },
        { "client_info", l_client_info },
        { "client_count", l_client_count },
        { "disconnect", l_disconnect },
        { "handler_finished", l_handler_finished },
        { "now_ms", l_now_ms },
        { "client_rooms", l_client_rooms },
        { "room_join", l_room_join },
        { "room_leave", l_room_leave },
        { "room_leave_all", l_room_leave_all },
        { "room_members", l_room_members },
        { "room_names", l_room_names },
        { "room_send", l_room_send },
        { "user_send", l_user_send },
        { "stats", l_stats },
        { "bus_op", l_bus_op },
        { NULL, NULL },
    };
    mw_lapi_register(L, fns, w);
}
