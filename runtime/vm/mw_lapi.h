/* mw_lapi: the C functions behind the Lua bindings, one file per family, each adding its
 * functions to the `moonwire.core` table on top of the stack (the modules in lua/moonwire/ wrap
 * them). A family works on a small context its owner fills in, never on the whole worker; one
 * that waits for I/O follows mw_async.h. */
#ifndef MW_LAPI_H
#define MW_LAPI_H

struct lua_State;
struct luaL_Reg;

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

/* The families, each with its context, in mw_lapi_<family>.h (the server family's in
 * mw_lapi_server.h). */

#endif
