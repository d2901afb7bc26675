/* mw_db_pg_conn: the PostgreSQL pool's connections. The poll is re-created after every
 * PQconnectPoll step because libpq may close and reopen its socket while connecting (same fd
 * number or not), and it is closed before PQfinish closes the fd. A statement's outcome goes
 * straight to its callback when its results are in; every other failure goes through the pool
 * (stmt_failed), which knows whether it may call back now. */
#include "mw_db_pg_conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_log.h"

#define WHY_LEN 320 /* one line of libpq's message */

static void poll_cb(uv_poll_t *h, int status, int events);

/* ---- statements ------------------------------------------------------------------------- */

void mw_db_pg_stmt_free(mw_db_pg_stmt *st)
{
    free(st->sql);
    mw_db_pg_params_free(&st->params);
    free(st);
}

void mw_db_pg_stmt_deliver_error(mw_db_pg_stmt *st)
{
    mw_db_result res;
    memset(&res, 0, sizeof(res));
    res.error = st->error;
    st->cb(&res, st->data);
    mw_db_pg_stmt_free(st);
}

static int is_error_status(ExecStatusType s)
{
    return s == PGRES_FATAL_ERROR || s == PGRES_NONFATAL_ERROR || s == PGRES_BAD_RESPONSE;
}

/* Hands a result to the callback: error (ours), else r's error, else r's rows. */
static void deliver_result(mw_db_pg_stmt *st, PGresult *r, const char *error)
{
    mw_db_result res;
    memset(&res, 0, sizeof(res));
    char buf[512];
    if (error) {
        res.error = error;
    } else if (r && is_error_status(PQresultStatus(r))) {
        mw_db_pg_result_error(r, buf, sizeof(buf));
        res.error = buf;
    } else if (r && mw_db_pg_result_convert(r, &res) != 0) {
        res.error = "database: out of memory reading the result";
    }
    st->cb(&res, st->data);
    mw_db_pg_result_free(&res);
    mw_db_pg_stmt_free(st);
}

/* Fails a statement that is in no queue any more, through the pool. */
static void stmt_fail(mw_db_pg_conns *set, mw_db_pg_stmt *st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void stmt_fail(mw_db_pg_conns *set, mw_db_pg_stmt *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->error, sizeof(st->error), fmt, ap);
    va_end(ap);
    set->on->stmt_failed(set->owner, st);
}

/* ---- small helpers ---------------------------------------------------------------------- */

static void notice_cb(void *arg, const char *message)
{
    char line[512];
    mw_db_pg_tidy(message, line, sizeof(line));
    if (mw_log_begin(MW_LOG_DEBUG, "PostgreSQL notice")) {
        mw_log_str("notice", line);
        mw_log_end();
    }
}

static void where_of(const mw_db_pg_conn *c, char *out, size_t outlen)
{
    const char *host = c->pg ? PQhost(c->pg) : NULL;
    const char *port = c->pg ? PQport(c->pg) : NULL;
    if (host && *host)
        snprintf(out, outlen, "%s:%s", host, port && *port ? port : "5432");
    else
        snprintf(out, outlen, "%s", c->set->where);
}

void mw_db_pg_conns_init(mw_db_pg_conns *set, uv_loop_t *loop, const char *url, const char *where,
                         const mw_db_pg_conn_events *on, void *owner)
{
    memset(set, 0, sizeof(*set));
    set->loop = loop;
    set->url = url;
    snprintf(set->where, sizeof(set->where), "%s", where);
    set->on = on;
    set->owner = owner;
    for (int i = 0; i < MW_DB_PG_POOL; i++)
        set->conn[i].set = set;
}

int mw_db_pg_conns_live(const mw_db_pg_conns *set, int *connecting)
{
    int live = 0, conn = 0;
    for (int i = 0; i < MW_DB_PG_POOL; i++) {
        live += set->conn[i].state != MW_DB_PG_EMPTY;
        conn += set->conn[i].state == MW_DB_PG_CONNECTING;
    }
    if (connecting)
        *connecting = conn;
    return live;
}

/* ---- the socket ------------------------------------------------------------------------- */

static void poll_close_cb(uv_handle_t *h)
{
    mw_db_pg_conns *set = h->data;
    free(h);
    set->handles--;
    set->on->released(set->owner); /* may free set */
}

static void conn_unwatch(mw_db_pg_conn *c)
{
    if (!c->poll)
        return;
    c->poll->data = c->set;
    uv_close((uv_handle_t *)c->poll, poll_close_cb);
    c->poll = NULL;
}

/* A fresh poll on the connection's current socket. */
static int conn_watch(mw_db_pg_conn *c, int events)
{
    conn_unwatch(c);
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -1;
    uv_poll_t *p = malloc(sizeof(*p));
    if (!p)
        return -1;
    if (uv_poll_init_socket(c->set->loop, p, fd) != 0) {
        free(p);
        return -1;
    }
    p->data = c;
    c->poll = p;
    c->set->handles++;
    uv_poll_start(p, events, poll_cb);
    return 0;
}

void mw_db_pg_conn_drop(mw_db_pg_conn *c, const char *why)
{
    mw_db_pg_conns *set = c->set;
    unsigned pinned = c->pinned;
    conn_unwatch(c); /* before PQfinish closes the fd */
    if (c->result)
        PQclear(c->result);
    if (c->pg)
        PQfinish(c->pg);
    mw_db_pg_stmt *orphan = c->cur;
    memset(c, 0, sizeof(*c));
    c->set = set;
    if (pinned)
        set->on->session_lost(set->owner, pinned, why);
    if (orphan)
        stmt_fail(set, orphan, "database: connection to PostgreSQL lost: %s", why);
}

/* ---- connecting ------------------------------------------------------------------------- */

void mw_db_pg_conn_connect_failed(mw_db_pg_conn *c, const char *msg)
{
    mw_db_pg_conns *set = c->set;
    char why[WHY_LEN], where[MW_DB_PG_WHERE_LEN];
    mw_db_pg_tidy(msg, why, sizeof(why));
    where_of(c, where, sizeof(where));
    snprintf(set->connect_error, sizeof(set->connect_error), "database: cannot connect to PostgreSQL at %s: %s",
             where, why);
    mw_db_pg_conn_drop(c, why);
    uint64_t now = uv_now(set->loop);
    set->backoff_ms = set->backoff_ms ? set->backoff_ms * 2 : MW_DB_PG_BACKOFF_MIN_MS;
    if (set->backoff_ms > MW_DB_PG_BACKOFF_MAX_MS)
        set->backoff_ms = MW_DB_PG_BACKOFF_MAX_MS;
    set->retry_at = now + set->backoff_ms;
    set->failing = 1;
    if (mw_log_begin(MW_LOG_WARN, "cannot connect to PostgreSQL")) {
        mw_log_str("at", where);
        mw_log_str("error", why);
        mw_log_int("retryInMs", (int64_t)set->backoff_ms);
        mw_log_end();
    }
    if (mw_db_pg_conns_live(set, NULL) == 0) /* nobody else will serve the queue */
        set->on->unreachable(set->owner);
}

static void conn_ready(mw_db_pg_conn *c)
{
    mw_db_pg_conns *set = c->set;
    if (PQsetnonblocking(c->pg, 1) != 0 || conn_watch(c, UV_READABLE) != 0) {
        mw_db_pg_conn_connect_failed(c, "cannot switch the connection to non-blocking mode");
        return;
    }
    c->state = MW_DB_PG_IDLE;
    set->backoff_ms = 0;
    set->retry_at = 0;
    if (set->failing) {
        char where[MW_DB_PG_WHERE_LEN];
        where_of(c, where, sizeof(where));
        if (mw_log_begin(MW_LOG_INFO, "connected to PostgreSQL again")) {
            mw_log_str("at", where);
            mw_log_end();
        }
    }
    set->failing = 0;
}

/* One PQconnectPoll step; libpq may have switched sockets, so the poll is made anew. */
static void conn_connect_step(mw_db_pg_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK: conn_ready(c); return;
    case PGRES_POLLING_READING:
        if (conn_watch(c, UV_READABLE) != 0)
            mw_db_pg_conn_connect_failed(c, "cannot watch the connection's socket");
        return;
    case PGRES_POLLING_WRITING:
        if (conn_watch(c, UV_WRITABLE) != 0)
            mw_db_pg_conn_connect_failed(c, "cannot watch the connection's socket");
        return;
    default: mw_db_pg_conn_connect_failed(c, PQerrorMessage(c->pg)); return;
    }
}

void mw_db_pg_conn_start(mw_db_pg_conn *c)
{
    mw_db_pg_conns *set = c->set;
    /* entries before dbname are defaults the URL may override */
    const char *keys[] = { "client_encoding", "fallback_application_name", "dbname", NULL };
    const char *vals[] = { "UTF8", "moonwire", set->url, NULL };
    memset(c, 0, sizeof(*c));
    c->set = set;
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (!c->pg) {
        mw_db_pg_conn_connect_failed(c, "out of memory");
        return;
    }
    PQsetNoticeProcessor(c->pg, notice_cb, NULL);
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        mw_db_pg_conn_connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    c->state = MW_DB_PG_CONNECTING;
    c->deadline = uv_now(set->loop) + MW_DB_PG_CONNECT_TIMEOUT_MS;
    /* libpq: act as if PQconnectPoll had asked to wait for writing */
    if (conn_watch(c, UV_WRITABLE) != 0)
        mw_db_pg_conn_connect_failed(c, "cannot watch the connection's socket");
}

/* ---- running a statement ---------------------------------------------------------------- */

static void conn_flush(mw_db_pg_conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        char why[WHY_LEN];
        mw_db_pg_tidy(PQerrorMessage(c->pg), why, sizeof(why));
        mw_db_pg_conn_drop(c, why); /* fails c->cur */
        return;
    }
    c->flushing = r == 1;
    uv_poll_start(c->poll, UV_READABLE | (c->flushing ? UV_WRITABLE : 0), poll_cb);
}

void mw_db_pg_conn_send(mw_db_pg_conn *c, mw_db_pg_stmt *st)
{
    mw_db_pg_conns *set = c->set;
    c->cur = st;
    c->state = MW_DB_PG_BUSY;
    if (PQsendQueryParams(c->pg, st->sql, st->params.n, NULL, (const char *const *)st->params.values,
                          st->params.lengths, st->params.formats, 0)) {
        conn_flush(c);
        return;
    }
    char why[WHY_LEN];
    mw_db_pg_tidy(PQerrorMessage(c->pg), why, sizeof(why));
    c->cur = NULL;
    if (PQstatus(c->pg) != CONNECTION_BAD) { /* refused by libpq itself, e.g. too many parameters */
        c->state = MW_DB_PG_IDLE;
        stmt_fail(set, st, "%s", why);
        return;
    }
    /* died while idle and we had not noticed: nothing was sent, so try another connection once */
    int retry = !st->session && !st->retried;
    mw_db_pg_conn_drop(c, why);
    if (retry) {
        st->retried = 1;
        set->on->stmt_retry(set->owner, st);
    } else {
        stmt_fail(set, st, "database: connection to PostgreSQL lost: %s", why);
    }
}

/* The running statement is over: libpq has no more results (or the connection died). */
static void conn_complete(mw_db_pg_conn *c, int lost)
{
    mw_db_pg_stmt *st = c->cur;
    PGresult *r = c->result;
    c->cur = NULL;
    c->result = NULL;
    char why[WHY_LEN];
    /* after a FATAL error (e.g. the server shutting down) the server closes the connection:
     * libpq may report the statement over before it has read the end of the stream */
    const char *severity = r ? PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED) : NULL;
    if (PQstatus(c->pg) == CONNECTION_BAD || (severity && (!strcmp(severity, "FATAL") || !strcmp(severity, "PANIC"))))
        lost = 1;
    if (lost) {
        if (r && is_error_status(PQresultStatus(r)))
            mw_db_pg_result_error(r, why, sizeof(why));
        else
            mw_db_pg_tidy(PQerrorMessage(c->pg), why, sizeof(why));
        if (mw_log_begin(MW_LOG_WARN, "connection to PostgreSQL lost")) {
            mw_log_str("error", why);
            mw_log_end();
        }
        mw_db_pg_conn_drop(c, why);
        snprintf(st->error, sizeof(st->error), "database: connection to PostgreSQL lost: %s", why);
        if (r)
            PQclear(r);
        mw_db_pg_stmt_deliver_error(st);
        return;
    }
    const char *error = NULL;
    if (r && (PQresultStatus(r) == PGRES_COPY_IN || PQresultStatus(r) == PGRES_COPY_OUT ||
              PQresultStatus(r) == PGRES_COPY_BOTH)) {
        error = "database: COPY ... FROM STDIN / TO STDOUT is not supported";
        mw_db_pg_conn_drop(c, error);
    } else if (!c->pinned && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        /* a BEGIN outside transaction(fn): the next statement could land on another connection */
        error = "database: use database:transaction(fn) for transactions on PostgreSQL (this connection was "
                "left inside a transaction, so it was closed and the transaction rolled back)";
        mw_db_pg_conn_drop(c, error);
    } else {
        c->state = MW_DB_PG_IDLE;
        uv_poll_start(c->poll, UV_READABLE, poll_cb);
    }
    deliver_result(st, r, error);
    if (r)
        PQclear(r);
}

/* Reads every result libpq has complete; keeps the first error (or the last result). */
static void conn_collect(mw_db_pg_conn *c)
{
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            conn_complete(c, 0);
            return;
        }
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_COPY_IN || s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH) {
            if (c->result)
                PQclear(c->result);
            c->result = r;
            conn_complete(c, 0); /* drops the connection: it would wait for COPY data forever */
            return;
        }
        if (c->result && is_error_status(PQresultStatus(c->result))) {
            PQclear(r);
        } else {
            if (c->result)
                PQclear(c->result);
            c->result = r;
        }
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) /* libpq stays "busy" after the socket died */
        conn_complete(c, 1);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    mw_db_pg_conn *c = h->data;
    mw_db_pg_conns *set = c->set;
    char why[WHY_LEN];
    switch (c->state) {
    case MW_DB_PG_CONNECTING:
        conn_connect_step(c);
        break;
    case MW_DB_PG_IDLE:
        /* nothing is expected: either a notification or the server going away */
        if (status < 0 || !PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
            mw_db_pg_tidy(status < 0 ? uv_strerror(status) : PQerrorMessage(c->pg), why, sizeof(why));
            if (mw_log_begin(MW_LOG_INFO, "idle PostgreSQL connection closed")) {
                mw_log_str("error", why);
                mw_log_end();
            }
            mw_db_pg_conn_drop(c, why);
            break;
        }
        PGnotify *n;
        while ((n = PQnotifies(c->pg)))
            PQfreemem(n);
        break;
    case MW_DB_PG_BUSY:
        if (status < 0) {
            mw_db_pg_tidy(uv_strerror(status), why, sizeof(why));
            mw_db_pg_conn_drop(c, why);
            break;
        }
        if (events & UV_READABLE)
            PQconsumeInput(c->pg); /* a failure shows in PQstatus, checked by conn_collect */
        if (c->flushing) {
            conn_flush(c);
            if (c->state != MW_DB_PG_BUSY)
                break;
        }
        conn_collect(c);
        break;
    default:
        break;
    }
    set->on->pump(set->owner);
}

/* ---- statement timeouts: cancel on the thread pool (PQcancel blocks) -------------------- */

typedef struct cancel_req {
    uv_work_t req;
    PGcancel *cancel;
    mw_db_pg_conns *set;
} cancel_req;

static void cancel_work_cb(uv_work_t *req)
{
    cancel_req *k = req->data;
    char err[256];
    PQcancel(k->cancel, err, sizeof(err));
}

static void cancel_after_cb(uv_work_t *req, int status)
{
    cancel_req *k = req->data;
    mw_db_pg_conns *set = k->set;
    PQfreeCancel(k->cancel);
    free(k);
    set->handles--;
    set->on->released(set->owner); /* may free set */
}

void mw_db_pg_conn_cancel(mw_db_pg_conn *c)
{
    cancel_req *k = malloc(sizeof(*k));
    if (!k)
        return;
    k->cancel = PQgetCancel(c->pg);
    k->set = c->set;
    k->req.data = k;
    if (!k->cancel || uv_queue_work(c->set->loop, &k->req, cancel_work_cb, cancel_after_cb) != 0) {
        if (k->cancel)
            PQfreeCancel(k->cancel);
        free(k);
        return;
    }
    c->set->handles++;
}
