/* mw_config_lua: loads the config by running lua/moonwire/config.lua. */
#ifndef MW_CONFIG_LUA_H
#define MW_CONFIG_LUA_H

#include "mw_config.h"

/* Loads and validates APP_DIR/app.lua with the overrides in a throwaway Lua state and fills
 * cfg. On error returns -1 with a message naming the key in err. */
int mw_config_load(mw_config *cfg, char *err, size_t errlen);

struct lua_State;
/* Pushes the merged config table (built by lua/moonwire/config.lua) onto L's stack, or
 * returns -1 with the message in err and nothing pushed. [-0, +1 or +0] */
int mw_config_push(struct lua_State *L, const mw_config *cfg, char *err, size_t errlen);

#endif
