/* mw_accept: takes connections off a worker's listening socket and enforces the connection limit
 * (HTTP-phase and WebSocket connections alike); past it, or out of descriptors, a new client is
 * answered 503 at once instead of waiting in silence. */
#ifndef MW_ACCEPT_H
#define MW_ACCEPT_H

#include <stdint.h>
#include <uv.h>

#include "mw_conn.h"

typedef enum { MW_REFUSED_LIMIT = 0, MW_REFUSED_FDS, MW_REFUSED_KINDS } mw_refusal;

typedef struct mw_acceptor {
    mw_net *net;            /* the worker's connections: where accepted sockets go, what the limit counts */
    uv_poll_t poll;         /* the listening socket; we call accept4 ourselves (see mw_accept.c) */
    uv_timer_t retry;       /* restarts a listener paused because not even the reserve was left */
    int listen_fd;
    int reserve_fd;         /* /dev/null, given up for a moment to accept-and-refuse at EMFILE */
    int started;
    long limit;             /* connections this worker serves at once (HTTP-phase + WebSocket) */
    long open_file_limit;   /* RLIMIT_NOFILE's soft limit (0: unknown) */
    int limit_configured;   /* limits.maxConnections was set (else derived from the open-file limit) */
    char refusal[MW_REFUSED_KINDS][256]; /* the 503 responses, built once */
    size_t refusal_len[MW_REFUSED_KINDS];
    uint64_t refused_unlogged[MW_REFUSED_KINDS]; /* since the last warning */
    uint64_t logged_ms[MW_REFUSED_KINDS];
    int logged[MW_REFUSED_KINDS];
    uint64_t accept_error_logged_ms;
} mw_acceptor;

/* Starts accepting on listen_fd (already bound and listening). Call it when everything else the
 * worker keeps open is open: the default limit is the open-file limit minus what is open then
 * and a headroom. Returns 0 or a negative libuv error. */
int mw_accept_start(mw_acceptor *a, mw_net *net, int listen_fd);
/* Called periodically: logs the refusals not yet reported once their interval is over. */
void mw_accept_tick(mw_acceptor *a);
/* Logs the refusals not yet reported and closes the reserve descriptor (the handles are closed
 * with every other handle of the loop). */
void mw_accept_stop(mw_acceptor *a);

#endif
