/* mw_lapi: what the binding families share: registering their C functions in moonwire.core. */
#include "mw_lapi.h"

#include <lauxlib.h>
#include <lua.h>

void mw_lapi_register(lua_State *L, const luaL_Reg *fns, void *ctx)
{
    for (const luaL_Reg *r = fns; r->name; r++) {
        lua_pushlightuserdata(L, ctx);
        lua_pushcclosure(L, r->func, 1);
        lua_setfield(L, -2, r->name);
    }
}
