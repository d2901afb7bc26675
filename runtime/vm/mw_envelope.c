/* mw_envelope: see mw_envelope.h. The checks run in the order the router had them: the text
 * must parse, be an object, have a string type, then a string action. */
#include "mw_envelope.h"

#include <lauxlib.h>
#include <lua.h>

#include "mw_json.h"

int mw_envelope_decode(lua_State *L, const char *text, size_t len, int max_depth)
{
    static const char *const names[] = { "type", "action", "data", "requestId" };
    char err[160];
    int rc = mw_json_decode_fields(L, text, len, max_depth, names, 4, err, sizeof(err));
    if (rc < 0)
        return MW_ENVELOPE_NOT_JSON;
    if (rc == 0)
        return MW_ENVELOPE_NOT_OBJECT;
    int kind = lua_type(L, -4) != LUA_TSTRING   ? MW_ENVELOPE_NO_TYPE
               : lua_type(L, -3) != LUA_TSTRING ? MW_ENVELOPE_NO_ACTION
                                                : MW_ENVELOPE_OK;
    if (kind != MW_ENVELOPE_OK) {
        lua_pop(L, 4);
        return kind;
    }
    if (lua_type(L, -2) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -2) == NULL) { /* null: no data */
        lua_pushnil(L);
        lua_replace(L, -3);
    }
    int rid = lua_type(L, -1);
    if (rid != LUA_TSTRING && rid != LUA_TNUMBER) {
        lua_pushnil(L);
        lua_replace(L, -2);
    }
    return MW_ENVELOPE_OK;
}

/* envelope(text, max_depth) -> kind, type, action, data, requestId (the last four only for
 * kind 0) */
static int l_envelope(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    int depth = (int)luaL_checkinteger(L, 2);
    lua_settop(L, 2);
    int kind = mw_envelope_decode(L, text, len, depth);
    lua_pushinteger(L, kind);
    if (kind != MW_ENVELOPE_OK)
        return 1;
    lua_insert(L, -5);
    return 5;
}

void mw_envelope_add_functions(lua_State *L)
{
    lua_pushcfunction(L, l_envelope);
    lua_setfield(L, -2, "envelope");
}
