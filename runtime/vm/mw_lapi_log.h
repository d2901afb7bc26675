/* mw_lapi_log: the log binding family (core.log, core.log_enabled) behind lua/moonwire/log.lua:
 * Lua's log lines go through the runtime's logger. Needs no context. */
#ifndef MW_LAPI_LOG_H
#define MW_LAPI_LOG_H

struct lua_State;

/* Adds the family's functions to the table on top of the stack; ctx is unused. [-0, +0] */
void mw_lapi_log_open(struct lua_State *L, void *ctx);

#endif
