/* mw_lapi_server: sending and client lookup for webSocketServer (lua/moonwire/server.lua).
 * Payloads arrive already encoded as JSON text: a table is encoded once in Lua and framed once
 * here, and the one frame is shared by every recipient. Misuse raises; absence returns false. */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "mw_lapi.h"
#include "mw_lvm.h"
#include "mw_worker.h"

static mw_worker *worker_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

static mw_conn *find_client(lua_State *L, int arg)
{
    size_t len;
    const char *id = luaL_checklstring(L, arg, &len);
    return mw_clients_find(&worker_of(L)->clients, id, len);
}

/* core.send(clientId, payload [, binary]) -> true when queued for a connected client */
static int l_send(lua_State *L)
{
    mw_conn *c = find_client(L, 1);
    size_t len;
    const char *payload = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);
    if (!c) {
        lua_pushboolean(L, 0);
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

/* core.broadcast(payload [, excludeClientId]) -> number of local recipients */
static int l_broadcast(lua_State *L)
{
    mw_worker *w = worker_of(L);
    size_t len;
    const char *payload = luaL_checklstring(L, 1, &len);
    const mw_conn *exclude = NULL;
    if (!lua_isnoneornil(L, 2))
        exclude = find_client(L, 2);
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
        lua_pushboolean(L, 0);
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
        { "broadcast", l_broadcast },
        { "client_info", l_client_info },
        { "client_count", l_client_count },
        { "disconnect", l_disconnect },
        { "handler_finished", l_handler_finished },
        { "now_ms", l_now_ms },
        { NULL, NULL },
    };
    for (const luaL_Reg *r = fns; r->name; r++) {
        lua_pushlightuserdata(L, w);
        lua_pushcclosure(L, r->func, 1);
        lua_setfield(L, -2, r->name);
    }
}
