/* mw_lapi_api: core.api_reply(ticket, status, json). */
#include "mw_lapi_api.h"

#include <lauxlib.h>
#include <lua.h>

#include "mw_lapi.h"

static int l_api_reply(lua_State *L)
{
    mw_lapi_api_ctx *ctx = lua_touserdata(L, lua_upvalueindex(1));
    lua_Number ticket = luaL_checknumber(L, 1);
    lua_Integer status = luaL_checkinteger(L, 2);
    size_t len;
    const char *json = luaL_checklstring(L, 3, &len);
    if (status < 200 || status > 599)
        return luaL_error(L, "api_reply: bad status %d", (int)status);
    if (ctx->reply && ticket >= 1)
        ctx->reply(ctx->owner, (uint64_t)ticket, (int)status, json, len);
    return 0;
}

void mw_lapi_api_open(lua_State *L, void *ctx)
{
    static const luaL_Reg fns[] = {
        { "api_reply", l_api_reply },
        { NULL, NULL },
    };
    mw_lapi_register(L, fns, ctx);
}
