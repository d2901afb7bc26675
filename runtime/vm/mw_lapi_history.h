/* mw_lapi_history: the room-history binding family (core.history_*) behind
 * lua/moonwire/history.lua: sending to a history room, a join's position and recovery, and
 * getHistory. Single node: the worker's memory (mw_history through mw_hist_local), answered at
 * once. With Redis: mw_hist_redis, whose joins and reads wait for Redis (mw_async). */
#ifndef MW_LAPI_HISTORY_H
#define MW_LAPI_HISTORY_H

#include "mw_fanout.h"
#include "mw_history.h"

struct lua_State;
struct mw_hist_redis;

typedef struct mw_lapi_history_ctx {
    mw_fanout *fanout;
    mw_history *memory;          /* the single node's history */
    struct mw_hist_redis *redis; /* the cluster's (NULL without Redis) */
} mw_lapi_history_ctx;

/* Adds the family's functions to the table on top of the stack; ctx: an mw_lapi_history_ctx.
 * [-0, +0] */
void mw_lapi_history_open(struct lua_State *L, void *ctx);

#endif
