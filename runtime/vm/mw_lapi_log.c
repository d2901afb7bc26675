/* mw_lapi_log: core.log(level, message [, fields]) writes one log line from Lua through the same
 * logger as the runtime, so text/JSON format and level filtering apply to app logs too. */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "mw_lapi_log.h"
#include "mw_log.h"

static int l_log(lua_State *L)
{
    mw_log_level level;
    if (mw_log_level_parse(luaL_checkstring(L, 1), &level) != 0)
        return luaL_error(L, "log: unknown level '%s'", lua_tostring(L, 1));
    const char *msg = luaL_checkstring(L, 2);
    if (!mw_log_begin(level, msg))
        return 0;
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                const char *key = lua_tostring(L, -2);
                int t = lua_type(L, -1);
                if (t == LUA_TNUMBER) {
                    lua_Number n = lua_tonumber(L, -1);
                    if (n == (lua_Number)(int64_t)n)
                        mw_log_int(key, (int64_t)n);
                    else
                        mw_log_double(key, n);
                } else if (t == LUA_TSTRING) {
                    size_t len;
                    const char *v = lua_tolstring(L, -1, &len);
                    mw_log_strn(key, v, len);
                } else if (t == LUA_TBOOLEAN) {
                    mw_log_str(key, lua_toboolean(L, -1) ? "true" : "false");
                } else {
                    mw_log_str(key, lua_typename(L, t));
                }
            }
            lua_pop(L, 1);
        }
    }
    mw_log_end();
    return 0;
}

static int l_log_enabled(lua_State *L)
{
    mw_log_level level;
    lua_pushboolean(L, mw_log_level_parse(luaL_checkstring(L, 1), &level) == 0 && mw_log_enabled(level));
    return 1;
}

void mw_lapi_log_open(lua_State *L, void *ctx)
{
    lua_pushcfunction(L, l_log);
    lua_setfield(L, -2, "log");
    lua_pushcfunction(L, l_log_enabled);
    lua_setfield(L, -2, "log_enabled");
}
