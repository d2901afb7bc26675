/* mw_worker: one worker process: its libuv loop, its Lua state, its clients. The supervisor
 * forks it with the listening socket already open. */
#ifndef MW_WORKER_H
#define MW_WORKER_H

#include <limits.h>
#include <uv.h>

#include "mw_accept.h"
#include "mw_bus.h"
#include "mw_config.h"
#include "mw_conn.h"
#include "mw_fanout.h"
#include "mw_httpd.h"
#include "mw_jwt.h"
#include "mw_lapi_server.h"
#include "mw_metrics.h"

struct mw_lvm;
struct mw_redis;
typedef struct mw_ltimer mw_ltimer;

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
    mw_httpd httpd;           /* /health /ready /metrics and static files */
    mw_fanout fanout;         /* the clients, rooms and user index, and sending to them */
    mw_bus bus;               /* the other workers, through Redis */
    mw_lapi_server lapi_server; /* what the webSocketServer binding works on */
    uv_prepare_t flush_prepare; /* writes every pending send queue once per loop iteration, before it blocks */
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t shutdown_timer;
    mw_jwt_verifier jwt;
    struct mw_redis *redis;     /* commands (NULL without --redis) */
    struct mw_redis *redis_sub; /* app.lua subscribers */
    mw_ltimer *timers;          /* the timer binding's timers */
    struct mw_db *db;           /* the database binding's SQLite or PostgreSQL (NULL: bad URL) */
    char db_error[512];         /* why there is none */
    uv_timer_t bus_probe;       /* checks that the subscriber connection still delivers */
    long long last_timer_id;
    uv_timer_t housekeeping;  /* inactivity, heartbeat and token expiry checks */
    uint64_t last_inactivity_check_ms;
    struct mw_lvm *lvm;
    int draining;
    long jobs_active;         /* jobs running here (see mw_lapi_queue.c): draining waits for them */
    struct mw_reload *reload;   /* --dev's file watcher (NULL otherwise) */
    int closing;              /* the loop ended: callbacks run only to clean up, no new timers */
} mw_worker;

/* Runs a worker until it is told to stop; returns the process exit status. */
int mw_worker_run(const mw_config *cfg, int index, int listen_fd, mw_metrics *metrics);

#endif
