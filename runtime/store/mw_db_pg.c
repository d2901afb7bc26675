/* mw_db_pg: each pooled connection is a small state machine (empty → connecting → idle ⇄ busy)
 * driven by a uv_poll on PQsocket. The poll is re-created after every PQconnectPoll step
 * because libpq may close and reopen its socket while connecting (same fd number or not), and
 * it is closed before PQfinish closes the fd. One timer checks the deadlines and delivers
 * failures found inside an API call, so a callback never runs inside mw_db_run (the caller
 * has not yielded yet). A transaction (a session) pins the connection its BEGIN ran on. */
#include "mw_db_pg.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_db_pg_sql.h"
#include "mw_db_pg_value.h"
#include "mw_log.h"

#define SWEEP_MS 250 /* how often deadlines are checked while there is work */
#define WHY_LEN 320   /* one line of libpq's message */
#define WHERE_LEN 200 /* HOST:PORT */

typedef struct pg_stmt {
    struct pg_stmt *next;
    unsigned session; /* 0: any connection */
    char *sql;        /* with $n placeholders */
    mw_db_pg_params params;
    mw_db_cb cb;
    void *data;
    uint64_t deadline; /* loop time (ms) */
    int retried;       /* re-queued once after its connection was found dead before sending */
    char error[640];
} pg_stmt;

typedef enum { CONN_EMPTY = 0, CONN_CONNECTING, CONN_IDLE, CONN_BUSY } conn_state;

typedef struct pg_conn {
    mw_db_pg *db;
    PGconn *pg;
    conn_state state;
    uv_poll_t *poll;   /* on PQsocket(pg); malloc'd, freed by its close callback */
    int flushing;      /* PQflush has more to send: also wait for writable */
    pg_stmt *cur;      /* the statement running (CONN_BUSY) */
    PGresult *result;  /* its result so far */
    unsigned pinned;   /* the session holding it, 0: none */
    uint64_t deadline; /* connect deadline */
} pg_conn;

typedef struct pg_session {
    struct pg_session *next;
    unsigned id;
    pg_conn *conn;          /* pinned by its first statement */
    int lost;               /* that connection died: every later statement fails */
    char lost_error[448];
    pg_stmt *head, *tail;   /* statements waiting for that connection */
} pg_session;

struct mw_db_pg {
    uv_loop_t *loop;
    char *url;
    char where[WHERE_LEN];  /* HOST:PORT from the URL, for messages */
    pg_conn conns[MW_DB_PG_POOL];
    pg_stmt *head, *tail;   /* waiting for any connection */
    pg_session *sessions;
    unsigned last_session;
    pg_stmt *done_head, *done_tail; /* failed inside an API call, delivered by the timer */
    uv_timer_t timer;
    int in_api;             /* inside mw_db_run / session calls: defer callbacks */
    int pumping, pump_again;
    uint64_t retry_at;      /* no new connection before this while connects fail */
    uint64_t backoff_ms;
    int failing;            /* the last connect failed (to log the recovery) */
    char connect_error[600];
    int handles;            /* open libuv handles and cancel requests */
    int closing;
};

static void pump(mw_db_pg *db);
static void poll_cb(uv_poll_t *h, int status, int events);
static void timer_cb(uv_timer_t *t);

/* ---- small helpers ---------------------------------------------------------------------- */

static void push_tail(pg_stmt **head, pg_stmt **tail, pg_stmt *st)
{
    st->next = NULL;
    if (*tail)
        (*tail)->next = st;
    else
        *head = st;
    *tail = st;
}

static pg_stmt *pop_head(pg_stmt **head, pg_stmt **tail)
{
    pg_stmt *st = *head;
    if (st) {
        *head = st->next;
        if (!*head)
            *tail = NULL;
        st->next = NULL;
    }
    return st;
}

static void stmt_free(pg_stmt *st)
{
    free(st->sql);
    mw_db_pg_params_free(&st->params);
    free(st);
}

static int is_error_status(ExecStatusType s)
{
    return s == PGRES_FATAL_ERROR || s == PGRES_NONFATAL_ERROR || s == PGRES_BAD_RESPONSE;
}

static void notice_cb(void *arg, const char *message)
{
    char line[512];
    mw_db_pg_tidy(message, line, sizeof(line));
    if (mw_log_begin(MW_LOG_DEBUG, "PostgreSQL notice")) {
        mw_log_str("notice", line);
        mw_log_end();
    }
}

static void maybe_free(mw_db_pg *db)
{
    if (db->closing && db->handles == 0) {
        free(db->url);
        free(db);
    }
}

static void where_of(const pg_conn *c, char *out, size_t outlen)
{
    const char *host = c->pg ? PQhost(c->pg) : NULL;
    const char *port = c->pg ? PQport(c->pg) : NULL;
    if (host && *host)
        snprintf(out, outlen, "%s:%s", host, port && *port ? port : "5432");
    else
        snprintf(out, outlen, "%s", c->db->where);
}

/* ---- delivering ------------------------------------------------------------------------- */

static void deliver_error(pg_stmt *st)
{
    mw_db_result res;
    memset(&res, 0, sizeof(res));
    res.error = st->error;
    st->cb(&res, st->data);
    stmt_free(st);
}

static void timer_arm(mw_db_pg *db);

/* Fails a statement that is in no queue any more: at once, or from the timer when we are
 * inside an API call (the caller has not yielded yet). */
static void stmt_fail(mw_db_pg *db, pg_stmt *st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void stmt_fail(mw_db_pg *db, pg_stmt *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->error, sizeof(st->error), fmt, ap);
    va_end(ap);
    if (db->in_api && !db->closing) {
        push_tail(&db->done_head, &db->done_tail, st);
        uv_timer_start(&db->timer, timer_cb, 0, SWEEP_MS);
        return;
    }
    deliver_error(st);
}

static void fail_list(mw_db_pg *db, pg_stmt **head, pg_stmt **tail, const char *why)
{
    pg_stmt *st;
    while ((st = pop_head(head, tail)))
        stmt_fail(db, st, "%s", why);
}

/* Hands a result to the callback: error (ours), else r's error, else r's rows. */
static void deliver_result(pg_stmt *st, PGresult *r, const char *error)
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
    stmt_free(st);
}

/* ---- sessions --------------------------------------------------------------------------- */

static pg_session *session_find(mw_db_pg *db, unsigned id)
{
    for (pg_session *s = db->sessions; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

/* The session's connection died: it and every statement still waiting for it fail. */
static void session_lose(mw_db_pg *db, unsigned id, const char *why)
{
    pg_session *s = session_find(db, id);
    if (!s)
        return;
    s->conn = NULL;
    s->lost = 1;
    snprintf(s->lost_error, sizeof(s->lost_error), "database: the transaction's connection to PostgreSQL was lost: %s",
             why);
    fail_list(db, &s->head, &s->tail, s->lost_error);
}

/* ---- connections ------------------------------------------------------------------------ */

static void poll_close_cb(uv_handle_t *h)
{
    mw_db_pg *db = h->data;
    free(h);
    db->handles--;
    maybe_free(db);
}

static void conn_unwatch(pg_conn *c)
{
    if (!c->poll)
        return;
    c->poll->data = c->db;
    uv_close((uv_handle_t *)c->poll, poll_close_cb);
    c->poll = NULL;
}

/* A fresh poll on the connection's current socket. */
static int conn_watch(pg_conn *c, int events)
{
    conn_unwatch(c);
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -1;
    uv_poll_t *p = malloc(sizeof(*p));
    if (!p)
        return -1;
    if (uv_poll_init_socket(c->db->loop, p, fd) != 0) {
        free(p);
        return -1;
    }
    p->data = c;
    c->poll = p;
    c->db->handles++;
    uv_poll_start(p, events, poll_cb);
    return 0;
}

/* Closes the connection; a statement still on it fails ("connection lost"), and so does its
 * transaction, if one pinned it. */
static void conn_drop(pg_conn *c, const char *why)
{
    mw_db_pg *db = c->db;
    unsigned pinned = c->pinned;
    conn_unwatch(c); /* before PQfinish closes the fd */
    if (c->result)
        PQclear(c->result);
    if (c->pg)
        PQfinish(c->pg);
    pg_stmt *orphan = c->cur;
    memset(c, 0, sizeof(*c));
    c->db = db;
    if (pinned)
        session_lose(db, pinned, why);
    if (orphan)
        stmt_fail(db, orphan, "database: connection to PostgreSQL lost: %s", why);
}

static int live_conns(mw_db_pg *db, int *connecting)
{
    int live = 0, conn = 0;
    for (int i = 0; i < MW_DB_PG_POOL; i++) {
        live += db->conns[i].state != CONN_EMPTY;
        conn += db->conns[i].state == CONN_CONNECTING;
    }
    if (connecting)
        *connecting = conn;
    return live;
}

static void connect_failed(pg_conn *c, const char *msg)
{
    mw_db_pg *db = c->db;
    char why[WHY_LEN], where[WHERE_LEN];
    mw_db_pg_tidy(msg, why, sizeof(why));
    where_of(c, where, sizeof(where));
    snprintf(db->connect_error, sizeof(db->connect_error), "database: cannot connect to PostgreSQL at %s: %s", where,
             why);
    conn_drop(c, why);
    uint64_t now = uv_now(db->loop);
    db->backoff_ms = db->backoff_ms ? db->backoff_ms * 2 : MW_DB_PG_BACKOFF_MIN_MS;
    if (db->backoff_ms > MW_DB_PG_BACKOFF_MAX_MS)
        db->backoff_ms = MW_DB_PG_BACKOFF_MAX_MS;
    db->retry_at = now + db->backoff_ms;
    db->failing = 1;
    if (mw_log_begin(MW_LOG_WARN, "cannot connect to PostgreSQL")) {
        mw_log_str("at", where);
        mw_log_str("error", why);
        mw_log_int("retryInMs", (int64_t)db->backoff_ms);
        mw_log_end();
    }
    if (live_conns(db, NULL) == 0) /* nobody else will serve the queue */
        fail_list(db, &db->head, &db->tail, db->connect_error);
}

static void conn_ready(pg_conn *c)
{
    mw_db_pg *db = c->db;
    if (PQsetnonblocking(c->pg, 1) != 0 || conn_watch(c, UV_READABLE) != 0) {
        connect_failed(c, "cannot switch the connection to non-blocking mode");
        return;
    }
    c->state = CONN_IDLE;
    db->backoff_ms = 0;
    db->retry_at = 0;
    if (db->failing) {
        char where[WHERE_LEN];
        where_of(c, where, sizeof(where));
        if (mw_log_begin(MW_LOG_INFO, "connected to PostgreSQL again")) {
            mw_log_str("at", where);
            mw_log_end();
        }
    }
    db->failing = 0;
}

/* One PQconnectPoll step; libpq may have switched sockets, so the poll is made anew. */
static void conn_connect_step(pg_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK: conn_ready(c); return;
    case PGRES_POLLING_READING:
        if (conn_watch(c, UV_READABLE) != 0)
            connect_failed(c, "cannot watch the connection's socket");
        return;
    case PGRES_POLLING_WRITING:
        if (conn_watch(c, UV_WRITABLE) != 0)
            connect_failed(c, "cannot watch the connection's socket");
        return;
    default: connect_failed(c, PQerrorMessage(c->pg)); return;
    }
}

static void conn_start(mw_db_pg *db, pg_conn *c)
{
    /* entries before dbname are defaults the URL may override */
    const char *keys[] = { "client_encoding", "fallback_application_name", "dbname", NULL };
    const char *vals[] = { "UTF8", "moonwire", db->url, NULL };
    memset(c, 0, sizeof(*c));
    c->db = db;
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (!c->pg) {
        connect_failed(c, "out of memory");
        return;
    }
    PQsetNoticeProcessor(c->pg, notice_cb, NULL);
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    c->state = CONN_CONNECTING;
    c->deadline = uv_now(db->loop) + MW_DB_PG_CONNECT_TIMEOUT_MS;
    /* libpq: act as if PQconnectPoll had asked to wait for writing */
    if (conn_watch(c, UV_WRITABLE) != 0)
        connect_failed(c, "cannot watch the connection's socket");
}

static void conn_flush(pg_conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        char why[WHY_LEN];
        mw_db_pg_tidy(PQerrorMessage(c->pg), why, sizeof(why));
        conn_drop(c, why); /* fails c->cur */
        return;
    }
    c->flushing = r == 1;
    uv_poll_start(c->poll, UV_READABLE | (c->flushing ? UV_WRITABLE : 0), poll_cb);
}

static void conn_send(pg_conn *c, pg_stmt *st)
{
    mw_db_pg *db = c->db;
    c->cur = st;
    c->state = CONN_BUSY;
    if (PQsendQueryParams(c->pg, st->sql, st->params.n, NULL, (const char *const *)st->params.values,
                          st->params.lengths, st->params.formats, 0)) {
        conn_flush(c);
        return;
    }
    char why[WHY_LEN];
    mw_db_pg_tidy(PQerrorMessage(c->pg), why, sizeof(why));
    c->cur = NULL;
    if (PQstatus(c->pg) != CONNECTION_BAD) { /* refused by libpq itself, e.g. too many parameters */
        c->state = CONN_IDLE;
        stmt_fail(db, st, "%s", why);
        return;
    }
    /* died while idle and we had not noticed: nothing was sent, so try another connection once */
    int retry = !st->session && !st->retried;
    conn_drop(c, why);
    if (retry) {
        st->retried = 1;
        st->next = db->head;
        db->head = st;
        if (!db->tail)
            db->tail = st;
    } else {
        stmt_fail(db, st, "database: connection to PostgreSQL lost: %s", why);
    }
}

/* The running statement is over: libpq has no more results (or the connection died). */
static void conn_complete(pg_conn *c, int lost)
{
    pg_stmt *st = c->cur;
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
        conn_drop(c, why);
        snprintf(st->error, sizeof(st->error), "database: connection to PostgreSQL lost: %s", why);
        if (r)
            PQclear(r);
        deliver_error(st);
        return;
    }
    const char *error = NULL;
    if (r && (PQresultStatus(r) == PGRES_COPY_IN || PQresultStatus(r) == PGRES_COPY_OUT ||
              PQresultStatus(r) == PGRES_COPY_BOTH)) {
        error = "database: COPY ... FROM STDIN / TO STDOUT is not supported";
        conn_drop(c, error);
    } else if (!c->pinned && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        /* a BEGIN outside transaction(fn): the next statement could land on another connection */
        error = "database: use database:transaction(fn) for transactions on PostgreSQL (this connection was "
                "left inside a transaction, so it was closed and the transaction rolled back)";
        conn_drop(c, error);
    } else {
        c->state = CONN_IDLE;
        uv_poll_start(c->poll, UV_READABLE, poll_cb);
    }
    deliver_result(st, r, error);
    if (r)
        PQclear(r);
}

/* Reads every result libpq has complete; keeps the first error (or the last result). */
static void conn_collect(pg_conn *c)
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
    pg_conn *c = h->data;
    mw_db_pg *db = c->db;
    char why[WHY_LEN];
    switch (c->state) {
    case CONN_CONNECTING:
        conn_connect_step(c);
        break;
    case CONN_IDLE:
        /* nothing is expected: either a notification or the server going away */
        if (status < 0 || !PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
            mw_db_pg_tidy(status < 0 ? uv_strerror(status) : PQerrorMessage(c->pg), why, sizeof(why));
            if (mw_log_begin(MW_LOG_INFO, "idle PostgreSQL connection closed")) {
                mw_log_str("error", why);
                mw_log_end();
            }
            conn_drop(c, why);
            break;
        }
        PGnotify *n;
        while ((n = PQnotifies(c->pg)))
            PQfreemem(n);
        break;
    case CONN_BUSY:
        if (status < 0) {
            mw_db_pg_tidy(uv_strerror(status), why, sizeof(why));
            conn_drop(c, why);
            break;
        }
        if (events & UV_READABLE)
            PQconsumeInput(c->pg); /* a failure shows in PQstatus, checked by conn_collect */
        if (c->flushing) {
            conn_flush(c);
            if (c->state != CONN_BUSY)
                break;
        }
        conn_collect(c);
        break;
    default:
        break;
    }
    pump(db);
}

/* ---- statement timeouts: cancel on the thread pool (PQcancel blocks) -------------------- */

typedef struct cancel_req {
    uv_work_t req;
    PGcancel *cancel;
    mw_db_pg *db;
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
    mw_db_pg *db = k->db;
    PQfreeCancel(k->cancel);
    free(k);
    db->handles--;
    maybe_free(db);
}

static void conn_cancel(pg_conn *c)
{
    cancel_req *k = malloc(sizeof(*k));
    if (!k)
        return;
    k->cancel = PQgetCancel(c->pg);
    k->db = c->db;
    k->req.data = k;
    if (!k->cancel || uv_queue_work(c->db->loop, &k->req, cancel_work_cb, cancel_after_cb) != 0) {
        if (k->cancel)
            PQfreeCancel(k->cancel);
        free(k);
        return;
    }
    c->db->handles++;
}

/* ---- the pump: hands queued statements to connections, opens connections ---------------- */

static pg_conn *free_conn(mw_db_pg *db)
{
    for (int i = 0; i < MW_DB_PG_POOL; i++)
        if (db->conns[i].state == CONN_IDLE && !db->conns[i].pinned)
            return &db->conns[i];
    return NULL;
}

static void grow(mw_db_pg *db)
{
    int connecting;
    int live = live_conns(db, &connecting);
    int waiting = 0;
    for (pg_stmt *st = db->head; st && waiting < MW_DB_PG_POOL; st = st->next)
        waiting++;
    if (uv_now(db->loop) < db->retry_at) {
        if (live == 0) /* backing off after failed connects: fail now rather than wait */
            fail_list(db, &db->head, &db->tail, db->connect_error);
        return;
    }
    for (int i = 0; i < MW_DB_PG_POOL && live < MW_DB_PG_POOL && connecting < waiting; i++) {
        pg_conn *c = &db->conns[i];
        if (c->state != CONN_EMPTY)
            continue;
        conn_start(db, c);
        if (c->state == CONN_EMPTY) /* failed at once */
            return;
        live++;
        connecting++;
    }
}

static void pump(mw_db_pg *db)
{
    if (db->closing)
        return;
    if (db->pumping) {
        db->pump_again = 1;
        return;
    }
    db->pumping = 1;
    do {
        db->pump_again = 0;
        /* a transaction's statements go to the connection it pinned */
        for (int i = 0; i < MW_DB_PG_POOL; i++) {
            pg_conn *c = &db->conns[i];
            if (c->state != CONN_IDLE || !c->pinned)
                continue;
            pg_session *s = session_find(db, c->pinned);
            if (s && s->head)
                conn_send(c, pop_head(&s->head, &s->tail));
        }
        /* the rest, first come first served, to any free connection */
        pg_conn *c;
        while (db->head && (c = free_conn(db))) {
            pg_stmt *st = pop_head(&db->head, &db->tail);
            if (st->session) {
                pg_session *s = session_find(db, st->session);
                if (!s) {
                    stmt_fail(db, st, "database: the transaction has ended");
                    continue;
                }
                if (s->lost) {
                    stmt_fail(db, st, "%s", s->lost_error);
                    continue;
                }
                if (s->conn) { /* pinned meanwhile by an earlier statement of the same transaction */
                    push_tail(&s->head, &s->tail, st);
                    db->pump_again = 1;
                    continue;
                }
                s->conn = c;
                c->pinned = s->id;
            }
            conn_send(c, st);
        }
        if (db->head)
            grow(db);
    } while (db->pump_again);
    db->pumping = 0;
    timer_arm(db);
}

/* ---- the timer: deferred failures and deadlines ----------------------------------------- */

static int has_work(mw_db_pg *db)
{
    if (db->head)
        return 1;
    for (int i = 0; i < MW_DB_PG_POOL; i++)
        if (db->conns[i].state == CONN_CONNECTING || db->conns[i].state == CONN_BUSY)
            return 1;
    for (pg_session *s = db->sessions; s; s = s->next)
        if (s->head)
            return 1;
    return 0;
}

static void timer_arm(mw_db_pg *db)
{
    if (db->closing)
        return;
    if (db->done_head)
        uv_timer_start(&db->timer, timer_cb, 0, SWEEP_MS);
    else if (!has_work(db))
        uv_timer_stop(&db->timer);
    else if (!uv_is_active((uv_handle_t *)&db->timer))
        uv_timer_start(&db->timer, timer_cb, SWEEP_MS, SWEEP_MS);
}

/* Moves the statements of a queue whose deadline passed to `out`. */
static void take_expired(pg_stmt **head, pg_stmt **tail, uint64_t now, pg_stmt **out_head, pg_stmt **out_tail)
{
    pg_stmt *keep_head = NULL, *keep_tail = NULL, *st;
    while ((st = pop_head(head, tail))) {
        if (st->deadline <= now)
            push_tail(out_head, out_tail, st);
        else
            push_tail(&keep_head, &keep_tail, st);
    }
    *head = keep_head;
    *tail = keep_tail;
}

static void timer_cb(uv_timer_t *t)
{
    mw_db_pg *db = t->data;
    pg_stmt *st;
    while ((st = pop_head(&db->done_head, &db->done_tail)))
        deliver_error(st);
    uint64_t now = uv_now(db->loop);
    for (int i = 0; i < MW_DB_PG_POOL; i++) {
        pg_conn *c = &db->conns[i];
        if (c->state == CONN_CONNECTING && now >= c->deadline) {
            char msg[64];
            snprintf(msg, sizeof(msg), "timed out after %g s", MW_DB_PG_CONNECT_TIMEOUT_MS / 1000.0);
            connect_failed(c, msg);
        } else if (c->state == CONN_BUSY && c->cur->deadline <= now) {
            /* stop the server's work too, then give up on this connection */
            if (mw_log_begin(MW_LOG_WARN, "PostgreSQL statement timed out; cancelling it")) {
                mw_log_double("seconds", MW_DB_PG_STATEMENT_TIMEOUT_MS / 1000.0);
                mw_log_end();
            }
            conn_cancel(c);
            st = c->cur;
            c->cur = NULL;
            conn_drop(c, "a statement timed out");
            stmt_fail(db, st, "database: the statement did not finish within %g s (cancelled)",
                      MW_DB_PG_STATEMENT_TIMEOUT_MS / 1000.0);
        }
    }
    pg_stmt *late_head = NULL, *late_tail = NULL;
    take_expired(&db->head, &db->tail, now, &late_head, &late_tail);
    for (pg_session *s = db->sessions; s; s = s->next)
        take_expired(&s->head, &s->tail, now, &late_head, &late_tail);
    while ((st = pop_head(&late_head, &late_tail)))
        stmt_fail(db, st, "database: no PostgreSQL connection became free within %g s (all %d are busy)",
                  MW_DB_PG_STATEMENT_TIMEOUT_MS / 1000.0, MW_DB_PG_POOL);
    pump(db);
}

static void timer_close_cb(uv_handle_t *h)
{
    mw_db_pg *db = h->data;
    db->handles--;
    maybe_free(db);
}

/* ---- the mw_db_ops interface ------------------------------------------------------------ */

static int pg_run(void *impl, unsigned session, const char *sql, size_t sql_len, const mw_db_value *params,
                  int nparams, mw_db_cb cb, void *data)
{
    mw_db_pg *db = impl;
    if (db->closing)
        return MW_DB_ECLOSED;
    pg_session *s = NULL;
    if (session && !(s = session_find(db, session)))
        return MW_DB_ESESSION;
    pg_stmt *st = calloc(1, sizeof(*st));
    if (!st)
        return MW_DB_ENOMEM;
    st->session = session;
    st->cb = cb;
    st->data = data;
    st->deadline = uv_now(db->loop) + MW_DB_PG_STATEMENT_TIMEOUT_MS;
    int expected = 0;
    st->sql = mw_db_pg_rewrite(sql, sql_len, &expected);
    if (!st->sql || mw_db_pg_params_init(&st->params, params, nparams) != 0) {
        stmt_free(st);
        return MW_DB_ENOMEM;
    }
    db->in_api++;
    if (memchr(sql, '\0', sql_len))
        stmt_fail(db, st, "the SQL text contains a NUL byte");
    else if (expected > 0 && expected != nparams)
        stmt_fail(db, st, "the statement has %d placeholder(s) but %d value(s) were given", expected, nparams);
    else if (s && s->lost)
        stmt_fail(db, st, "%s", s->lost_error);
    else if (s && s->conn)
        push_tail(&s->head, &s->tail, st);
    else
        push_tail(&db->head, &db->tail, st);
    pump(db);
    db->in_api--;
    return 0;
}

static unsigned pg_session_open(void *impl)
{
    mw_db_pg *db = impl;
    pg_session *s = calloc(1, sizeof(*s));
    if (!s)
        return 0;
    do {
        if (++db->last_session == 0)
            db->last_session = 1;
    } while (session_find(db, db->last_session));
    s->id = db->last_session;
    s->next = db->sessions;
    db->sessions = s;
    return s->id;
}

static void pg_session_close(void *impl, unsigned id)
{
    mw_db_pg *db = impl;
    pg_session **pp = &db->sessions;
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    pg_session *s = *pp;
    if (!s)
        return;
    *pp = s->next;
    db->in_api++;
    fail_list(db, &s->head, &s->tail, "database: the transaction has ended");
    pg_conn *c = s->conn;
    if (c) {
        c->pinned = 0;
        /* COMMIT or ROLLBACK failed: do not hand a connection inside a transaction to others */
        if (c->state == CONN_IDLE && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
            conn_drop(c, "the transaction did not end cleanly");
    }
    free(s);
    pump(db);
    db->in_api--;
}

static void pg_close(void *impl)
{
    mw_db_pg *db = impl;
    const char *why = "database: the worker is shutting down";
    pg_stmt *head = NULL, *tail = NULL, *st;
    db->closing = 1;
    while ((st = pop_head(&db->done_head, &db->done_tail)))
        deliver_error(st); /* already carries its message */
    while ((st = pop_head(&db->head, &db->tail)))
        push_tail(&head, &tail, st);
    while (db->sessions) {
        pg_session *s = db->sessions;
        db->sessions = s->next;
        while ((st = pop_head(&s->head, &s->tail)))
            push_tail(&head, &tail, st);
        free(s);
    }
    for (int i = 0; i < MW_DB_PG_POOL; i++) {
        pg_conn *c = &db->conns[i];
        if (c->cur) {
            push_tail(&head, &tail, c->cur);
            c->cur = NULL;
        }
        c->pinned = 0;
        if (c->state != CONN_EMPTY)
            conn_drop(c, why);
    }
    uv_close((uv_handle_t *)&db->timer, timer_close_cb);
    while ((st = pop_head(&head, &tail))) {
        snprintf(st->error, sizeof(st->error), "%s", why);
        deliver_error(st);
    }
}

mw_db_pg *mw_db_pg_open(uv_loop_t *loop, const char *url, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        char why[WHY_LEN];
        mw_db_pg_tidy(perr ? perr : "out of memory", why, sizeof(why));
        char *echo = strstr(why, url); /* libpq may quote the URI, password included */
        if (echo) {
            *echo = '\0';
            size_t n = strlen(why);
            while (n > 0 && (why[n - 1] == '"' || why[n - 1] == ' ' || why[n - 1] == ':'))
                why[--n] = '\0';
        }
        snprintf(err, errlen, "database.url is not a valid PostgreSQL URL: %s", why);
        PQfreemem(perr);
        return NULL;
    }
    const char *host = NULL, *hostaddr = NULL, *port = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
    }
    mw_db_pg *db = calloc(1, sizeof(*db));
    if (db)
        db->url = strdup(url);
    if (!db || !db->url) {
        free(db);
        PQconninfoFree(opts);
        snprintf(err, errlen, "database: out of memory");
        return NULL;
    }
    snprintf(db->where, sizeof(db->where), "%s:%s", host ? host : hostaddr ? hostaddr : "localhost",
             port ? port : "5432");
    PQconninfoFree(opts);
    db->loop = loop;
    for (int i = 0; i < MW_DB_PG_POOL; i++)
        db->conns[i].db = db;
    uv_timer_init(loop, &db->timer);
    db->timer.data = db;
    db->handles = 1;
    return db;
}

const mw_db_ops mw_db_pg_ops = {
    .name = "postgres",
    .run = pg_run,
    .session_open = pg_session_open,
    .session_close = pg_session_close,
    .close = pg_close,
};
