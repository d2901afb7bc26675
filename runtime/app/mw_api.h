/* mw_api: the worker's side of the HTTP API (DESIGN 16): a call that passed the gate in mw_httpd
 * waits in a slot (its connection, its method, when it came) while lua/moonwire/api.lua runs it,
 * and is answered when Lua replies; a connection that goes first frees its slot. */
#ifndef MW_API_H
#define MW_API_H

#include <stddef.h>
#include <stdint.h>

#include "mw_conn.h"
#include "mw_httpd.h"

struct mw_lvm;

#define MW_API_SLOTS 1024 /* calls in flight per worker; more are answered 503 at once */

typedef struct mw_api_slot {
    mw_conn *c;      /* NULL: free */
    uint64_t ticket; /* (generation << 10) | index */
    int method;      /* the metrics index of its name */
    uint64_t start_ns;
    char name[64];
    size_t name_len;
} mw_api_slot;

typedef struct mw_api {
    mw_httpd *httpd;
    struct mw_lvm **lvm; /* the worker's (it is created after us) */
    double wait_s;       /* how long a call may take before the client gets 504 */
    uint64_t generation;
    uint32_t hint;       /* where to look for a free slot first */
    mw_api_slot slots[MW_API_SLOTS];
} mw_api;

void mw_api_init(mw_api *a, mw_httpd *httpd, struct mw_lvm **lvm, double wait_s);
/* mw_httpd_handler.api_call */
void mw_api_call(mw_api *a, mw_conn *c, int method, const char *name, size_t name_len, const char *body,
                 size_t body_len, uint64_t start_ns);
/* mw_lapi_api_ctx.reply */
void mw_api_reply(mw_api *a, uint64_t ticket, int status, const char *json, size_t len);
/* mw_conn_handler.http_dropped */
void mw_api_dropped(mw_api *a, mw_conn *c, uint64_t ticket);

#endif
