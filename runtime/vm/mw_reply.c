/* mw_reply: see mw_reply.h. The requestId keeps the rules frames.lua had: integers exact up to
 * 2^53, other numbers with 17 significant digits (not the codec's shortest form: a client that
 * sent 0.1 gets 0.10000000000000001, as it always did). */
#include "mw_reply.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>

#define EXACT_LIMIT 9007199254740992.0 /* 2^53 */

int mw_reply_put_id(lua_State *L, int idx, mw_json_buf *out)
{
    char err[8];
    int t = lua_type(L, idx);
    if (t == LUA_TSTRING)
        return mw_json_encode(L, idx, out, err, sizeof(err)) == 0 ? 1 : -1;
    if (t != LUA_TNUMBER)
        return 0;
    double d = lua_tonumber(L, idx);
    if (!isfinite(d))
        return 0;
    if (d == floor(d) && d < EXACT_LIMIT && d > -EXACT_LIMIT) /* "%.0f", without printf's cost */
        return mw_json_put_number(out, d) == 0 ? 1 : -1;
    char tmp[40];
    int n = snprintf(tmp, sizeof(tmp), "%.17g", d);
    return mw_json_buf_put(out, tmp, (size_t)n) == 0 ? 1 : -1;
}

static int oom(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    return -1;
}

int mw_reply_encode(lua_State *L, int prefix, int response, int rid, mw_json_buf *out, char *err,
                    size_t errlen)
{
    static const char response_key[] = ",\"response\":", id_key[] = ",\"requestId\":";
    size_t plen;
    const char *p = lua_tolstring(L, prefix, &plen);
    if (mw_json_buf_put(out, p, plen) != 0)
        return oom(err, errlen);
    if (!lua_isnil(L, response)) {
        if (mw_json_buf_put(out, response_key, sizeof(response_key) - 1) != 0)
            return oom(err, errlen);
        if (mw_json_encode(L, response, out, err, errlen) != 0)
            return -1;
    }
    size_t before = out->len;
    if (mw_json_buf_put(out, id_key, sizeof(id_key) - 1) != 0)
        return oom(err, errlen);
    int id = mw_reply_put_id(L, rid, out);
    if (id < 0)
        return oom(err, errlen);
    if (id == 0)
        out->len = before; /* no id: no key either */
    if (mw_json_buf_put(out, "}", 1) != 0)
        return oom(err, errlen);
    return 0;
}

/* reply(prefix, response, rid) -> the reply's text */
static int l_reply(lua_State *L)
{
    char err[160];
    luaL_checktype(L, 1, LUA_TSTRING);
    lua_settop(L, 3);
    mw_json_buf b = { 0 };
    int rc = mw_reply_encode(L, 1, 2, 3, &b, err, sizeof(err));
    if (rc == 0)
        lua_pushlstring(L, b.data, b.len);
    mw_json_buf_free(&b);
    if (rc != 0)
        return luaL_error(L, "%s", err);
    return 1;
}

/* encode_id(rid) -> its text, or nil when it is no id */
static int l_encode_id(lua_State *L)
{
    lua_settop(L, 1);
    mw_json_buf b = { 0 };
    int rc = mw_reply_put_id(L, 1, &b);
    if (rc > 0)
        lua_pushlstring(L, b.data, b.len);
    mw_json_buf_free(&b);
    if (rc < 0)
        return luaL_error(L, "out of memory");
    if (rc == 0)
        lua_pushnil(L);
    return 1;
}

void mw_reply_add_functions(lua_State *L)
{
    lua_pushcfunction(L, l_reply);
    lua_setfield(L, -2, "reply");
    lua_pushcfunction(L, l_encode_id);
    lua_setfield(L, -2, "encode_id");
}
