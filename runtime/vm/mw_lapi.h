/* mw_lapi: the C functions behind the Lua bindings, one file per family, each adding its
 * functions to the `moonwire.core` table on top of the stack (the modules in lua/moonwire/ wrap them). */
#ifndef MW_LAPI_H
#define MW_LAPI_H

struct lua_State;
struct luaL_Reg;
struct mw_worker;

/* One family of bindings, as the owner of the Lua state hands it to mw_lvm_new: open adds the
 * family's functions to the moonwire.core table on top of the stack [-0, +0]; ctx is what they
 * work on (kept by the owner, alive as long as the Lua state). */
typedef struct mw_lapi_family {
    const char *name;
    void (*open)(struct lua_State *L, void *ctx);
    void *ctx;
} mw_lapi_family;

/* Adds each function of fns (NULL-terminated), with ctx as its upvalue, to the table on top of
 * the stack. [-0, +0] */
void mw_lapi_register(struct lua_State *L, const struct luaL_Reg *fns, void *ctx);

void mw_lapi_server_inject(struct lua_State *L, struct mw_worker *w); /* [-0, +0] */
void mw_lapi_log_inject(struct lua_State *L);                         /* [-0, +0] */
void mw_lapi_redis_inject(struct lua_State *L, struct mw_worker *w);  /* [-0, +0] */
void mw_lapi_timer_inject(struct lua_State *L, struct mw_worker *w);  /* [-0, +0] */
void mw_lapi_db_inject(struct lua_State *L, struct mw_worker *w);     /* [-0, +0] */
void mw_lapi_queue_inject(struct lua_State *L, struct mw_worker *w);  /* [-0, +0] */
/* Stops every timer of the worker (at exit). */
void mw_lapi_timer_close_all(struct mw_worker *w);

#endif
