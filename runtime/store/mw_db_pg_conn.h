/* mw_db_pg_conn: the connections of the PostgreSQL pool (mw_db_pg.c), each a small state machine
 * (empty → connecting → idle ⇄ busy) on libpq's non-blocking API, driven by a uv_poll on
 * PQsocket: connecting with a capped backoff, running one statement and collecting its results,
 * dropping, cancelling. It knows no queue and no transaction: what happens to a statement or a
 * pinned connection goes to the pool through mw_db_pg_conn_events. Private to mw_db_pg*.c. */
#ifndef MW_DB_PG_CONN_H
#define MW_DB_PG_CONN_H

#include <libpq-fe.h>
#include <stdint.h>
#include <uv.h>

#include "mw_db.h"
#include "mw_db_pg.h"
#include "mw_db_pg_value.h"

#define MW_DB_PG_WHERE_LEN 200 /* HOST:PORT */

/* One statement from mw_db_run to its callback: queued by the pool, run by a connection. */
typedef struct mw_db_pg_stmt {
    struct mw_db_pg_stmt *next; /* in one of the pool's queues */
    unsigned session; /* 0: any connection */
    char *sql;        /* with $n placeholders */
    mw_db_pg_params params;
    mw_db_cb cb;
    void *data;
    uint64_t deadline; /* loop time (ms) */
    int retried;       /* re-queued once after its connection was found dead before sending */
    char error[640];
} mw_db_pg_stmt;

void mw_db_pg_stmt_free(mw_db_pg_stmt *st);
/* Hands st->error to the callback and frees st. */
void mw_db_pg_stmt_deliver_error(mw_db_pg_stmt *st);

typedef enum {
    MW_DB_PG_EMPTY = 0,
    MW_DB_PG_CONNECTING,
    MW_DB_PG_IDLE,
    MW_DB_PG_BUSY,
} mw_db_pg_conn_state;

struct mw_db_pg_conns;

typedef struct mw_db_pg_conn {
    struct mw_db_pg_conns *set;
    PGconn *pg;
    mw_db_pg_conn_state state;
    uv_poll_t *poll;     /* on PQsocket(pg); malloc'd, freed by its close callback */
    int flushing;        /* PQflush has more to send: also wait for writable */
    mw_db_pg_stmt *cur;  /* the statement running (BUSY) */
    PGresult *result;    /* its result so far */
    unsigned pinned;     /* the transaction (pool session) holding it, 0: none; set by the pool */
    uint64_t deadline;   /* connect deadline */
} mw_db_pg_conn;

/* What the connections tell the pool; each gets the owner given to mw_db_pg_conns_init. */
typedef struct mw_db_pg_conn_events {
    /* st failed (st->error says why) and is in no queue: deliver it, now or later */
    void (*stmt_failed)(void *owner, mw_db_pg_stmt *st);
    /* st was not sent: its connection turned out dead; queue it again in front */
    void (*stmt_retry)(void *owner, mw_db_pg_stmt *st);
    /* the connection pinned by transaction `session` was dropped (before its statement fails) */
    void (*session_lost)(void *owner, unsigned session, const char *why);
    /* a connect failed and no connection is left to serve the queue (connect_error says why) */
    void (*unreachable)(void *owner);
    /* a socket event was handled: hand waiting statements to idle connections */
    void (*pump)(void *owner);
    /* a libuv handle or cancel request closed (handles went down by one) */
    void (*released)(void *owner);
} mw_db_pg_conn_events;

typedef struct mw_db_pg_conns {
    uv_loop_t *loop;
    const char *url;               /* the pool's */
    char where[MW_DB_PG_WHERE_LEN]; /* HOST:PORT from the URL, for messages */
    mw_db_pg_conn conn[MW_DB_PG_POOL];
    uint64_t retry_at;             /* no new connection before this while connects fail */
    uint64_t backoff_ms;
    int failing;                   /* the last connect failed (to log the recovery) */
    char connect_error[600];
    int handles;                   /* open polls and cancel requests */
    const mw_db_pg_conn_events *on;
    void *owner;
} mw_db_pg_conns;

void mw_db_pg_conns_init(mw_db_pg_conns *set, uv_loop_t *loop, const char *url, const char *where,
                         const mw_db_pg_conn_events *on, void *owner);
/* How many connections are not EMPTY; *connecting (may be NULL) how many are CONNECTING. */
int mw_db_pg_conns_live(const mw_db_pg_conns *set, int *connecting);

/* Starts connecting an EMPTY connection; on failure it is EMPTY again (connect_failed ran). */
void mw_db_pg_conn_start(mw_db_pg_conn *c);
/* A connect failed (or timed out, msg says so): drop it, back off, log; `unreachable` when no
 * connection is left. */
void mw_db_pg_conn_connect_failed(mw_db_pg_conn *c, const char *msg);
/* Runs st on an IDLE connection (BUSY until its results are in, then the callback gets them).
 * When libpq refuses it, st fails; when the connection was dead, st is retried once elsewhere
 * (not a transaction's) or fails. */
void mw_db_pg_conn_send(mw_db_pg_conn *c, mw_db_pg_stmt *st);
/* Closes the connection (EMPTY again): a transaction that pinned it is lost, then a statement
 * still on it fails ("connection lost"). */
void mw_db_pg_conn_drop(mw_db_pg_conn *c, const char *why);
/* Asks the server to stop the running statement (PQcancel blocks: on the thread pool). */
void mw_db_pg_conn_cancel(mw_db_pg_conn *c);

#endif
