/* mw_worker: one worker process: its libuv loop, its Lua state, its clients. The supervisor
 * forks it with the listening socket already open. */
#ifndef MW_WORKER_H
#define MW_WORKER_H

#include <limits.h>
#include <signal.h>
#include <uv.h>

#include "mw_accept.h"
#include "mw_clients.h"
#include "mw_config.h"
#include "mw_jwt.h"
#include "mw_lapi_db.h"
#include "mw_lapi_queue.h"
#include "mw_lapi_redis.h"
#include "mw_lapi_timer.h"
#include "mw_rooms.h"
#include "mw_metrics.h"

struct mw_lvm;
struct mw_redis;

#define MW_READ_BUF_SIZE 65536

typedef struct mw_worker {
    uv_loop_t loop;
    const mw_config *cfg;
    int index;
    int count;
    char id[96];
    char tag[MW_WORKER_TAG_LEN + 1]; /* prefix of this worker's clientIds, its bus address */
    mw_metrics *metrics;
    mw_metrics_slot *m;
    mw_acceptor acceptor;     /* the listening socket, the connection limit, the reserve descriptor */
    uv_prepare_t flush_prepare; /* writes every pending send queue once per loop iteration, before it blocks */
    uv_idle_t ready_idle;     /* runs queued messages of clients whose handler finished */
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t shutdown_timer;
    mw_conn *conns;           /* every open TCP connection (HTTP or WebSocket) */
    mw_conn *flush_head;
    mw_conn *ready_head;
    mw_clients clients;
    mw_rooms rooms;
    mw_rooms users;           /* user key (the token's sub) -> that user's connections */
    mw_jwt_verifier jwt;
    struct mw_redis *redis;     /* commands (NULL without --redis) */
    struct mw_redis *redis_sub; /* app.lua subscribers */
    /* what the binding families work on (mw_lapi_*.h) */
    mw_lapi_redis_ctx redis_api; /* the two connections above, while they are open */
    mw_lapi_db_ctx db_api;       /* the database (SQLite or PostgreSQL; NULL: bad URL, and why) */
    mw_lapi_timer_ctx timer_api; /* the timers Lua started */
    mw_lapi_queue_ctx queue_api; /* the jobs running here: draining waits for them */
    uv_timer_t bus_probe;       /* checks that the subscriber connection still delivers */
    uint64_t probe_seq, probe_sent_ms;
    int probe_pending;
    uv_timer_t housekeeping;  /* inactivity, heartbeat and token expiry checks */
    uint64_t last_inactivity_check_ms;
    mw_conn *drain_cursor;    /* next client to close with 1001 while draining */
    struct mw_lvm *lvm;
    char public_dir[PATH_MAX];
    int has_public;
    int draining;
    struct mw_reload *reload;   /* --dev's file watcher (NULL otherwise) */
    long tcp_conns;           /* every open TCP connection, HTTP or WebSocket: what the limit counts */
    uint8_t read_buf[MW_READ_BUF_SIZE];
} mw_worker;

/* The signals a worker takes through its loop (SIGTERM, SIGINT: drain; SIGHUP: reload) and
 * SIGCHLD: the supervisor blocks these before forking (it waits for them with sigtimedwait),
 * so one arriving while a worker starts is delivered once its handlers are in place. */
void mw_worker_signals(sigset_t *set);

/* Runs a worker until it is told to stop; returns the process exit status. */
int mw_worker_run(const mw_config *cfg, int index, int listen_fd, mw_metrics *metrics);

void mw_worker_want_flush(mw_worker *w, mw_conn *c);
void mw_worker_want_run(mw_worker *w, mw_conn *c);

#endif
