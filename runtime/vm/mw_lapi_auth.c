/* mw_lapi_auth: core.jwt_verify(token) -> claims JSON text, or nil and the reason (never the
 * token), by mw_jwt_verify, the function the upgrade uses; core.token_expiry(clientId, ms)
 * moves a connected client's expiry. The claims are then checked by lua/moonwire/auth.lua,
 * as at connect. */
#include "mw_lapi_auth.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "mw_lapi.h"

static mw_lapi_auth_ctx *ctx_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

static int l_jwt_verify(lua_State *L)
{
    mw_lapi_auth_ctx *ctx = ctx_of(L);
    size_t len;
    const char *token = luaL_checklstring(L, 1, &len);
    if (!ctx->jwt || !ctx->jwt->enabled) {
        lua_pushnil(L);
        lua_pushliteral(L, "no secret or public key is configured");
        return 2;
    }
    if (len == 0 || len > MW_JWT_MAX_TOKEN) {
        lua_pushnil(L);
        lua_pushstring(L, len ? "token too large" : "empty token");
        return 2;
    }
    char *claims = NULL;
    const char *reason = NULL;
    if (mw_jwt_verify(ctx->jwt, token, len, &claims, &reason) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, reason ? reason : "invalid token");
        return 2;
    }
    lua_pushstring(L, claims);
    free(claims);
    return 1;
}

static int l_token_expiry(lua_State *L)
{
    mw_lapi_auth_ctx *ctx = ctx_of(L);
    size_t len;
    const char *id = luaL_checklstring(L, 1, &len);
    double ms = luaL_checknumber(L, 2);
    lua_pushboolean(L, ctx->set_expiry && ctx->set_expiry(ctx->owner, id, len, ms) == 0);
    return 1;
}

void mw_lapi_auth_open(lua_State *L, void *ctx)
{
    static const luaL_Reg fns[] = {
        { "jwt_verify", l_jwt_verify },
        { "token_expiry", l_token_expiry },
        { NULL, NULL },
    };
    mw_lapi_register(L, fns, ctx);
}
