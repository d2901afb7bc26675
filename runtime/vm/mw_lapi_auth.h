/* mw_lapi_auth: the auth binding family (core.jwt_verify, core.token_expiry) behind the built-in
 * auth/refresh action: a new token is verified by the same C check as at connect, and the
 * connection's expiry (the 4401 close and the auth/expiring notice) moves with it. */
#ifndef MW_LAPI_AUTH_H
#define MW_LAPI_AUTH_H

#include <stddef.h>

#include "mw_jwt.h"

struct lua_State;

/* What the family works on, kept by the owner of the Lua state. */
typedef struct mw_lapi_auth_ctx {
    const mw_jwt_verifier *jwt;
    /* Moves client id's token expiry to expires_ms (exp + leeway, in ms); returns 0, or -1 when
     * the client is not connected here. Filled by the owner (the session lives above vm). */
    int (*set_expiry)(void *owner, const char *id, size_t len, double expires_ms);
    void *owner;
} mw_lapi_auth_ctx;

/* Adds the family's functions to the table on top of the stack; ctx: an mw_lapi_auth_ctx. [-0, +0] */
void mw_lapi_auth_open(struct lua_State *L, void *ctx);

#endif
