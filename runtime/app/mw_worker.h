/* mw_worker: one worker process: its libuv loop, its Lua state, its clients. The supervisor
 * forks it with the listening socket already open. */
#ifndef MW_WORKER_H
#define MW_WORKER_H

#include <limits.h>
#include <signal.h>
#include <uv.h>

#include "mw_accept.h"
#include "mw_api.h"
#include "mw_bus.h"
#include "mw_config.h"
#include "mw_conn.h"
#include "mw_fanout.h"
#include "mw_hist_redis.h"
#include "mw_history.h"
#include "mw_httpd.h"
#include "mw_jwt.h"
#include "mw_lapi_api.h"
#include "mw_lapi_auth.h"
#include "mw_lapi_db.h"
#include "mw_lapi_history.h"
#include "mw_lapi_queue.h"
#include "mw_lapi_redis.h"
#include "mw_lapi_server.h"
#include "mw_lapi_timer.h"
#include "mw_metrics.h"

struct mw_lvm;
struct mw_redis;

typedef struct mw_worker {
    uv_loop_t loop;
    const mw_config *cfg;
    int index;
    int count;
    char id[96];
    char tag[MW_WORKER_TAG_LEN + 1]; /* prefix of this worker's clientIds, its bus address */
    mw_metrics *metrics;
    mw_metrics_slot *m;
    mw_net net;               /* every connection: the lists, the limits, the read buffer */
    mw_acceptor acceptor;     /* the listening socket, the connection limit, the reserve descriptor */
    mw_httpd httpd;           /* /health /ready /metrics, static files, the API's gate */
    mw_api api;               /* HTTP API calls waiting for Lua */
    mw_fanout fanout;         /* the clients, rooms and user index, and sending to them */
    mw_bus bus;               /* the other workers, through Redis */
    mw_history history;       /* room history in this worker's memory (single node) */
    mw_hist_redis hist_redis; /* room history in Redis (with --redis) */
    mw_lapi_server lapi_server; /* what the webSocketServer binding works on */
    uv_prepare_t flush_prepare; /* writes every pending send queue once per loop iteration, before it blocks */
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t shutdown_timer;
    mw_jwt_verifier jwt;
    struct mw_redis *redis;     /* commands (NULL without --redis) */
    struct mw_redis *redis_sub; /* app.lua subscribers */
    /* what the binding families work on (mw_lapi_*.h) */
    mw_lapi_redis_ctx redis_api; /* the two connections above, while they are open */
    mw_lapi_db_ctx db_api;       /* the database (SQLite or PostgreSQL; NULL: bad URL, and why) */
    mw_lapi_timer_ctx timer_api; /* the timers Lua started */
    mw_lapi_queue_ctx queue_api; /* the jobs running here: draining waits for them */
    mw_lapi_auth_ctx auth_api;   /* token refresh: the verifier, and moving a client's expiry */
    mw_lapi_history_ctx history_api; /* the room history: memory, or Redis */
    mw_lapi_api_ctx api_api;         /* HTTP API replies */
    uv_timer_t bus_probe;       /* checks that the subscriber connection still delivers */
    uv_timer_t housekeeping;  /* inactivity, heartbeat and token expiry checks */
    uint64_t last_inactivity_check_ms;
    uint64_t last_history_sweep_ms;
    struct mw_lvm *lvm;
    struct mw_session *raw_batch; /* raw mode: the client whose messages of this read mw_lvm batches */
    int draining;
    struct mw_reload *reload;   /* --dev's file watcher (NULL otherwise) */
} mw_worker;

/* The signals a worker takes through its loop (SIGTERM, SIGINT: drain; SIGHUP: reload) and
 * SIGCHLD: the supervisor blocks these before forking (it waits for them with sigtimedwait),
 * so one arriving while a worker starts is delivered once its handlers are in place. */
void mw_worker_signals(sigset_t *set);

/* Runs a worker until it is told to stop; returns the process exit status. */
int mw_worker_run(const mw_config *cfg, int index, int listen_fd, mw_metrics *metrics);

#endif
