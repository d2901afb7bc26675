/* mw_lapi_api: the HTTP API's binding family: core.api_reply(ticket, status, json) answers a call
 * that mw_lvm_on_api handed to lua/moonwire/api.lua. The answering (the waiting connection, the
 * log line, the metrics) is the owner's, reached through the context it fills in. */
#ifndef MW_LAPI_API_H
#define MW_LAPI_API_H

#include <stddef.h>
#include <stdint.h>

struct lua_State;

typedef struct mw_lapi_api_ctx {
    /* Answers the call numbered ticket (ignored when it is not waiting any more). */
    void (*reply)(void *owner, uint64_t ticket, int status, const char *json, size_t len);
    void *owner;
} mw_lapi_api_ctx;

/* Adds the family's functions to the table on top of the stack; ctx: an mw_lapi_api_ctx. [-0, +0] */
void mw_lapi_api_open(struct lua_State *L, void *ctx);

#endif
