/* wire_module: the runtime's wire codec (vm/mw_json.c) as a Lua C module, so the Lua unit tests
 * run lua/moonwire/json.lua on the real codec under a plain luajit (the server registers the
 * same table as "moonwire.wire" in each worker's state). */
#include <lua.h>

#include "mw_envelope.h"
#include "mw_json.h"
#include "mw_reply.h"

int luaopen_moonwire_wire(lua_State *L);
int luaopen_moonwire_wire(lua_State *L)
{
    mw_json_push_module(L);
    mw_reply_add_functions(L);
    mw_envelope_add_functions(L);
    return 1;
}
