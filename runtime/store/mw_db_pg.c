/* mw_db_pg: the PostgreSQL pool behind the mw_db_ops interface: statements queued first in,
 * first out until a connection is free, transactions (sessions) pinning the connection their
 * BEGIN ran on, the pump that hands statements to connections and opens new ones, and one timer
 * that checks the deadlines and delivers failures found inside an API call, so a callback never
 * runs inside mw_db_run (the caller has not yielded yet). The connections themselves, their
 * sockets and libpq's results are mw_db_pg_conn's. */
#include "mw_db_pg.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_db_pg_conn.h"
#include "mw_db_pg_sql.h"
#include "mw_db_pg_value.h"
#include "mw_log.h"

#define SWEEP_MS 250 /* how often deadlines are checked while there is work */
#define WHY_LEN 320  /* one line of libpq's message */


typedef struct pg_session {
    struct pg_session *next;
    unsigned id;
    mw_db_pg_conn *conn;          /* pinned by its first statement */
    int lost;               /* that connection died: every later statement fails */
    char lost_error[448];
    mw_db_pg_stmt *head, *tail;   /* statements waiting for that connection */
} pg_session;

struct mw_db_pg {
    mw_db_pg_conns conns;   /* its connections report through conn_events */
    char *url;
    mw_db_pg_stmt *head, *tail;   /* waiting for any connection */
    pg_session *sessions;
    unsigned last_session;
    mw_db_pg_stmt *done_head, *done_tail; /* failed inside an API call, delivered by the timer */
    uv_timer_t timer;
    int timer_open;
    int in_api;             /* inside mw_db_run / session calls: defer callbacks */
    int pumping, pump_again;
    int closing;
};

static void pump(mw_db_pg *db);
static void timer_cb(uv_timer_t *t);
static void timer_arm(mw_db_pg *db);

/* ---- small helpers ---------------------------------------------------------------------- */

static void push_tail(mw_db_pg_stmt **head, mw_db_pg_stmt **tail, mw_db_pg_stmt *st)
{
    st->next = NULL;
    if (*tail)
        (*tail)->next = st;
    else
        *head = st;
    *tail = st;
}

static mw_db_pg_stmt *pop_head(mw_db_pg_stmt **head, mw_db_pg_stmt **tail)
{
    mw_db_pg_stmt *st = *head;
    if (st) {
        *head = st->next;
        if (!*head)
            *tail = NULL;
        st->next = NULL;
    }
    return st;
}

/* Frees the pool once it is closing and its last handle and cancel request are gone. */
static void maybe_free(mw_db_pg *db)
{
    if (db->closing && !db->timer_open && db->conns.handles == 0) {
        free(db->url);
        free(db);
    }
}

/* ---- failing statements ----------------------------------------------------------------- */

/* Delivers the failure of a statement that is in no queue any more (st->error says why): at
 * once, or from the timer when we are inside an API call (the caller has not yielded yet). */
static void stmt_failed(mw_db_pg *db, mw_db_pg_stmt *st)
{
    if (db->in_api && !db->closing) {
        push_tail(&db->done_head, &db->done_tail, st);
        uv_timer_start(&db->timer, timer_cb, 0, SWEEP_MS);
        return;
    }
    mw_db_pg_stmt_deliver_error(st);
}

static void stmt_fail(mw_db_pg *db, mw_db_pg_stmt *st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void stmt_fail(mw_db_pg *db, mw_db_pg_stmt *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->error, sizeof(st->error), fmt, ap);
    va_end(ap);
    stmt_failed(db, st);
}

static void fail_list(mw_db_pg *db, mw_db_pg_stmt **head, mw_db_pg_stmt **tail, const char *why)
{
    mw_db_pg_stmt *st;
    while ((st = pop_head(head, tail)))
        stmt_fail(db, st, "%s", why);
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

/* ---- what the connections report (mw_db_pg_conn_events) ----------------------------- */

static void conn_stmt_failed(void *owner, mw_db_pg_stmt *st) { stmt_failed(owner, st); }

static void conn_stmt_retry(void *owner, mw_db_pg_stmt *st)
{
    mw_db_pg *db = owner;
    st->next = db->head;
    db->head = st;
    if (!db->tail)
        db->tail = st;
}

static void conn_session_lost(void *owner, unsigned session, const char *why)
{
    session_lose(owner, session, why);
}

static void conn_unreachable(void *owner)
{
    mw_db_pg *db = owner;
    fail_list(db, &db->head, &db->tail, db->conns.connect_error);
}

static void conn_pump(void *owner) { pump(owner); }

static void conn_released(void *owner) { maybe_free(owner); }

static const mw_db_pg_conn_events conn_events = {
    .stmt_failed = conn_stmt_failed,
    .stmt_retry = conn_stmt_retry,
    .session_lost = conn_session_lost,
    .unreachable = conn_unreachable,
    .pump = conn_pump,
    .released = conn_released,
};

/* ---- the pump: hands queued statements to connections, opens connections ---------------- */

static mw_db_pg_conn *free_conn(mw_db_pg *db)
{
    for (int i = 0; i < MW_DB_PG_POOL; i++)
        if (db->conns.conn[i].state == MW_DB_PG_IDLE && !db->conns.conn[i].pinned)
            return &db->conns.conn[i];
    return NULL;
}

static void grow(mw_db_pg *db)
{
    int connecting;
    int live = mw_db_pg_conns_live(&db->conns, &connecting);
    int waiting = 0;
    for (mw_db_pg_stmt *st = db->head; st && waiting < MW_DB_PG_POOL; st = st->next)
        waiting++;
    if (uv_now(db->conns.loop) < db->conns.retry_at) {
        if (live == 0) /* backing off after failed connects: fail now rather than wait */
            fail_list(db, &db->head, &db->tail, db->conns.connect_error);
        return;
    }
    for (int i = 0; i < MW_DB_PG_POOL && live < MW_DB_PG_POOL && connecting < waiting; i++) {
        mw_db_pg_conn *c = &db->conns.conn[i];
        if (c->state != MW_DB_PG_EMPTY)
            continue;
        mw_db_pg_conn_start(c);
        if (c->state == MW_DB_PG_EMPTY) /* failed at once */
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
            mw_db_pg_conn *c = &db->conns.conn[i];
            if (c->state != MW_DB_PG_IDLE || !c->pinned)
                continue;
            pg_session *s = session_find(db, c->pinned);
            if (s && s->head)
                mw_db_pg_conn_send(c, pop_head(&s->head, &s->tail));
        }
        /* the rest, first come first served, to any free connection */
        mw_db_pg_conn *c;
        while (db->head && (c = free_conn(db))) {
            mw_db_pg_stmt *st = pop_head(&db->head, &db->tail);
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
            mw_db_pg_conn_send(c, st);
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
        if (db->conns.conn[i].state == MW_DB_PG_CONNECTING || db->conns.conn[i].state == MW_DB_PG_BUSY)
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
static void take_expired(mw_db_pg_stmt **head, mw_db_pg_stmt **tail, uint64_t now, mw_db_pg_stmt **out_head,
                         mw_db_pg_stmt **out_tail)
{
    mw_db_pg_stmt *keep_head = NULL, *keep_tail = NULL, *st;
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
    mw_db_pg_stmt *st;
    while ((st = pop_head(&db->done_head, &db->done_tail)))
        mw_db_pg_stmt_deliver_error(st);
    uint64_t now = uv_now(db->conns.loop);
    for (int i = 0; i < MW_DB_PG_POOL; i++) {
        mw_db_pg_conn *c = &db->conns.conn[i];
        if (c->state == MW_DB_PG_CONNECTING && now >= c->deadline) {
            char msg[64];
            snprintf(msg, sizeof(msg), "timed out after %g s", MW_DB_PG_CONNECT_TIMEOUT_MS / 1000.0);
            mw_db_pg_conn_connect_failed(c, msg);
        } else if (c->state == MW_DB_PG_BUSY && c->cur->deadline <= now) {
            /* stop the server's work too, then give up on this connection */
            if (mw_log_begin(MW_LOG_WARN, "PostgreSQL statement timed out; cancelling it")) {
                mw_log_double("seconds", MW_DB_PG_STATEMENT_TIMEOUT_MS / 1000.0);
                mw_log_end();
            }
            mw_db_pg_conn_cancel(c);
            st = c->cur;
            c->cur = NULL;
            mw_db_pg_conn_drop(c, "a statement timed out");
            stmt_fail(db, st, "database: the statement did not finish within %g s (cancelled)",
                      MW_DB_PG_STATEMENT_TIMEOUT_MS / 1000.0);
        }
    }
    mw_db_pg_stmt *late_head = NULL, *late_tail = NULL;
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
    db->timer_open = 0;
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
    mw_db_pg_stmt *st = calloc(1, sizeof(*st));
    if (!st)
        return MW_DB_ENOMEM;
    st->session = session;
    st->cb = cb;
    st->data = data;
    st->deadline = uv_now(db->conns.loop) + MW_DB_PG_STATEMENT_TIMEOUT_MS;
    int expected = 0;
    st->sql = mw_db_pg_rewrite(sql, sql_len, &expected);
    if (!st->sql || mw_db_pg_params_init(&st->params, params, nparams) != 0) {
        mw_db_pg_stmt_free(st);
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
    mw_db_pg_conn *c = s->conn;
    if (c) {
        c->pinned = 0;
        /* COMMIT or ROLLBACK failed: do not hand a connection inside a transaction to others */
        if (c->state == MW_DB_PG_IDLE && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
            mw_db_pg_conn_drop(c, "the transaction did not end cleanly");
    }
    free(s);
    pump(db);
    db->in_api--;
}

static void pg_close(void *impl)
{
    mw_db_pg *db = impl;
    const char *why = "database: the worker is shutting down";
    mw_db_pg_stmt *head = NULL, *tail = NULL, *st;
    db->closing = 1;
    while ((st = pop_head(&db->done_head, &db->done_tail)))
        mw_db_pg_stmt_deliver_error(st); /* already carries its message */
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
        mw_db_pg_conn *c = &db->conns.conn[i];
        if (c->cur) {
            push_tail(&head, &tail, c->cur);
            c->cur = NULL;
        }
        c->pinned = 0;
        if (c->state != MW_DB_PG_EMPTY)
            mw_db_pg_conn_drop(c, why);
    }
    uv_close((uv_handle_t *)&db->timer, timer_close_cb);
    while ((st = pop_head(&head, &tail))) {
        snprintf(st->error, sizeof(st->error), "%s", why);
        mw_db_pg_stmt_deliver_error(st);
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
    char where[MW_DB_PG_WHERE_LEN];
    snprintf(where, sizeof(where), "%s:%s", host ? host : hostaddr ? hostaddr : "localhost", port ? port : "5432");
    PQconninfoFree(opts);
    mw_db_pg_conns_init(&db->conns, loop, db->url, where, &conn_events, db);
    uv_timer_init(loop, &db->timer);
    db->timer.data = db;
    db->timer_open = 1;
    return db;
}

const mw_db_ops mw_db_pg_ops = {
    .name = "postgres",
    .run = pg_run,
    .session_open = pg_session_open,
    .session_close = pg_session_close,
    .close = pg_close,
};
