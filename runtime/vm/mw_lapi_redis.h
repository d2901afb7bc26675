/* mw_lapi_redis: the redis binding family (core.redis_call, redis_fire, redis_subscribe,
 * redis_connected, redis_configured) behind lua/moonwire/redis.lua and app.lua's subscribers. */
#ifndef MW_LAPI_REDIS_H
#define MW_LAPI_REDIS_H

struct lua_State;
struct mw_redis;

/* What the family works on, kept by the owner of the Lua state (NULL without --redis, and
 * once the worker closed them). */
typedef struct mw_lapi_redis_ctx {
    struct mw_redis *cmd; /* the command connection, shared by every call */
    struct mw_redis *sub; /* the subscriber connection of app.lua's subscribers */
} mw_lapi_redis_ctx;

/* Adds the family's functions to the table on top of the stack; ctx: an mw_lapi_redis_ctx. [-0, +0] */
void mw_lapi_redis_open(struct lua_State *L, void *ctx);

#endif
