/* mw_wsctx_pool: a worker's spare wslay event contexts (~9.4 KB each), lent to a WebSocket
 * session only while it has a frame or message partly received, or a close in progress, so an
 * idle connection holds none. It also counts what the lent contexts hold, for /metrics. */
#ifndef MW_WSCTX_POOL_H
#define MW_WSCTX_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <wslay/wslay.h>

/* One lent context and the per-message scratch that goes with it (not kept while idle). */
typedef struct mw_wsctx {
    wslay_event_context_ptr ctx; /* its user_data is this struct */
    void *user;                  /* the session it is lent to */
    struct mw_wsctx *next;       /* in the pool's spare list */
    const uint8_t *in;           /* bytes being fed to wslay (recv callback) */
    size_t in_len, in_off;
    /* the peer's close payload, unmasked (see mw_ws.c's track_frames) */
    uint8_t close_buf[125], close_mask[4];
    size_t close_off;
    char close_reason[124]; /* from the peer's close frame */
} mw_wsctx;

typedef struct mw_wsctx_pool {
    const struct wslay_event_callbacks *callbacks;
    mw_wsctx *spare;
    size_t n_spare, max_spare; /* spares past max_spare are freed, not kept */
    size_t lent;               /* contexts lent out now */
    size_t created;            /* contexts ever made (a test sees reuse through it) */
    uint64_t held_bytes;       /* bytes of partly received messages (sessions report them) */
} mw_wsctx_pool;

/* callbacks: the wslay callbacks every context gets (static storage). */
void mw_wsctx_pool_init(mw_wsctx_pool *p, const struct wslay_event_callbacks *callbacks, size_t max_spare);
/* Frees the spares; contexts still lent must have been given back. */
void mw_wsctx_pool_free(mw_wsctx_pool *p);

/* A context for user: a spare one (its wslay state is that of a new server context: see
 * mw_wsctx_release) or a new one. With p NULL, always a new one made with callbacks. NULL when
 * memory is short. The caller sets the per-session wslay options again (max message length...). */
mw_wsctx *mw_wsctx_acquire(mw_wsctx_pool *p, const struct wslay_event_callbacks *callbacks, void *user);
/* Gives a context back. clean: its wslay state is that of a new context (nothing buffered, no
 * message in progress, nothing queued to send, no close queued or received): then it is kept
 * as a spare; otherwise (or with p NULL, or the spare list full) it is freed. */
void mw_wsctx_release(mw_wsctx_pool *p, mw_wsctx *x, int clean);

#endif
