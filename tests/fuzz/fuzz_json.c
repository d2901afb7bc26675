/* fuzz_json: libFuzzer harness for the wire codec (vm/mw_json.c). Any input: decoding either
 * fails cleanly (nothing left on the Lua stack) or gives a value whose encoding is stable:
 * decode(encode(v)) encodes to the same text again (numbers, arrays vs objects, escapes and
 * surrogates survive). The first byte picks the nesting limit. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "mw_json.h"

static lua_State *L;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
    }
    if (size < 1)
        return 0;
    int depth = 1 + data[0] % 40;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int top = lua_gettop(L);
    if (mw_json_decode(L, text, len, depth, err, sizeof(err)) != 0) {
        FUZZ_ASSERT(lua_gettop(L) == top);
        return 0;
    }
    FUZZ_ASSERT(lua_gettop(L) == top + 1);
    mw_json_buf first = { 0 }, second = { 0 };
    FUZZ_ASSERT(mw_json_encode(L, -1, &first, err, sizeof(err)) == 0); /* what was decoded encodes */
    lua_pop(L, 1);
    FUZZ_ASSERT(mw_json_decode(L, first.data, first.len, depth, err, sizeof(err)) == 0);
    FUZZ_ASSERT(mw_json_encode(L, -1, &second, err, sizeof(err)) == 0);
    lua_pop(L, 1);
    /* Objects' key order is the table's, which may differ between two tables with the same
     * keys: compare lengths always, and the texts when no object has two keys or more. */
    FUZZ_ASSERT(first.len == second.len);
    if (!memchr(first.data, ',', first.len) || !memchr(first.data, '{', first.len))
        FUZZ_ASSERT(memcmp(first.data, second.data, first.len) == 0);
    mw_json_buf_free(&first);
    mw_json_buf_free(&second);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
