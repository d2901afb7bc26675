/* mw_wsctx_pool: wslay has no reset call, but a server context whose frame reader is at a frame
 * boundary with no message in progress and whose send queues are empty holds the same state as a
 * new one (the frame layer's read buffer is empty and its state is "header"; the message
 * buffers are reset; close flags, status codes and read/write switches are untouched since
 * init). mw_ws only gives a context back in that state and says so; anything else is freed.
 * Re-lending a spare costs a pop from a list instead of ~9.4 KB of malloc and memset. */
#include "mw_wsctx_pool.h"

#include <stdlib.h>
#include <string.h>

void mw_wsctx_pool_init(mw_wsctx_pool *p, const struct wslay_event_callbacks *callbacks, size_t max_spare)
{
    memset(p, 0, sizeof(*p));
    p->callbacks = callbacks;
    p->max_spare = max_spare;
}

static void destroy(mw_wsctx *x)
{
    wslay_event_context_free(x->ctx);
    free(x);
}

void mw_wsctx_pool_free(mw_wsctx_pool *p)
{
    while (p->spare) {
        mw_wsctx *x = p->spare;
        p->spare = x->next;
        destroy(x);
    }
    p->n_spare = 0;
}

mw_wsctx *mw_wsctx_acquire(mw_wsctx_pool *p, const struct wslay_event_callbacks *callbacks, void *user)
{
    mw_wsctx *x;
    if (p && p->spare) {
        x = p->spare;
        p->spare = x->next;
        p->n_spare--;
    } else {
        x = malloc(sizeof(*x));
        if (!x)
            return NULL;
        if (wslay_event_context_server_init(&x->ctx, p ? p->callbacks : callbacks, x) != 0) {
            free(x);
            return NULL;
        }
        if (p)
            p->created++;
    }
    x->user = user;
    x->next = NULL;
    x->in = NULL;
    x->in_len = x->in_off = 0;
    x->close_off = 0;
    x->close_reason[0] = '\0';
    if (p)
        p->lent++;
    return x;
}

void mw_wsctx_release(mw_wsctx_pool *p, mw_wsctx *x, int clean)
{
    if (!x)
        return;
    if (p)
        p->lent--;
    if (!p || !clean || p->n_spare >= p->max_spare) {
        destroy(x);
        return;
    }
    x->user = NULL;
    x->next = p->spare;
    p->spare = x;
    p->n_spare++;
}
