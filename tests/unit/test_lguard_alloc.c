/* Unit test for mw_lguard's allocator (runtime/vm/mw_lguard.c) without sockets: it wraps a real
 * LuaJIT state and keeps freed small blocks for reuse, so Lua values of every small size are
 * made, partly kept and collected over and over, and each kept value must still hold exactly
 * what was put in it (a block handed out too small would overwrite its neighbour). With a
 * memory cap, an allocation past it still fails inside a protected call and the state goes on.
 * Links mw_vm only. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "mw_lguard.h"
#include "mw_test.h"

static const char *churn =
    "local kept, made = {}, 0\n"
    "local function value(len, i) return string.rep(string.char(65 + i % 26), len) .. '#' .. i end\n"
    "for round = 1, 40 do\n"
    "  local scratch = {}\n"
    "  for i = 1, 3000 do\n"
    "    made = made + 1\n"
    "    local len = (made * 7919) % 300\n"
    "    local s = value(len, made)\n"
    "    scratch[i] = { s, len }\n"
    "    if made % 7 == 0 then kept[#kept + 1] = { s = s, len = len, i = made, t = { made, len } } end\n"
    "  end\n"
    "  scratch = nil\n"
    "  collectgarbage()\n"
    "end\n"
    "for _, k in ipairs(kept) do\n"
    "  if k.s ~= value(k.len, k.i) or k.t[1] ~= k.i or k.t[2] ~= k.len then return false end\n"
    "end\n"
    "return #kept\n";

static void test_values_survive_reuse(void)
{
    lua_State *L = luaL_newstate();
    mw_lguard *g = mw_lguard_new(0, 0);
    CHECK(L && g);
    mw_lguard_wrap(g, L);
    luaL_openlibs(L);
    CHECK_EQ_INT(luaL_loadstring(L, churn), 0);
    CHECK_EQ_INT(lua_pcall(L, 0, 1, 0), 0);
    CHECK_EQ_INT(lua_tointeger(L, -1), 40 * 3000 / 7);
    lua_close(L);
    mw_lguard_free(g);
}

static void test_cap_fails_one_call_only(void)
{
    lua_State *L = luaL_newstate();
    mw_lguard *g = mw_lguard_new(32u << 20, 0);
    mw_lguard_wrap(g, L);
    CHECK_EQ_INT(mw_lguard_start(g, L), 0); /* no time limit: no watchdog thread */
    luaL_openlibs(L);
    CHECK_EQ_INT(luaL_loadstring(L, "local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 64) .. i end"), 0);
    CHECK(mw_lguard_pcall(g, L, 0, 0, "test") != 0); /* past the cap: fails, logged */
    lua_gc(L, LUA_GCCOLLECT, 0);
    CHECK_EQ_INT(luaL_loadstring(L, churn), 0);
    CHECK_EQ_INT(mw_lguard_pcall(g, L, 0, 1, "test"), 0); /* the state goes on, values intact */
    CHECK_EQ_INT(lua_tointeger(L, -1), 40 * 3000 / 7);
    mw_lguard_stop(g);
    lua_close(L);
    mw_lguard_free(g);
}

int main(void)
{
    test_values_survive_reuse();
    test_cap_fails_one_call_only();
    MW_TEST_DONE();
}
