/* mw_lapi_queue: the queue binding family (core.job_count, queue_depth, job_active, draining,
 * random_id) behind lua/moonwire/queue.lua and jobs.lua. */
#ifndef MW_LAPI_QUEUE_H
#define MW_LAPI_QUEUE_H

#include "mw_metrics.h"

struct lua_State;

/* What the family works on, kept by the owner of the Lua state. */
typedef struct mw_lapi_queue_ctx {
    mw_metrics_slot *m;  /* the job counters and queue depths */
    const int *draining; /* the worker began its graceful shutdown: take no new jobs */
    long jobs_active;    /* jobs running or still recording their outcome: a draining worker
                          * waits for them (up to limits.shutdownTimeout) */
} mw_lapi_queue_ctx;

/* Adds the family's functions to the table on top of the stack; ctx: an mw_lapi_queue_ctx. [-0, +0] */
void mw_lapi_queue_open(struct lua_State *L, void *ctx);

#endif
