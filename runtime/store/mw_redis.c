/* mw_redis: replies on one connection come back in the order the commands went out, so the
 * outstanding commands are a FIFO and a single sweep timer enforces the timeout on its head: a
 * command over time means the connection is stalled, so every pending command fails with
 * "timeout" and the connection is rebuilt. Reconnects back off from 100 ms to 5 s. */
#include "mw_redis.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/sds.h>

#include "mw_log.h"

#define MW_REDIS_SWEEP_MS 100
#define MW_REDIS_BACKOFF_MIN_MS 100
#define MW_REDIS_BACKOFF_MAX_MS 5000

static const char err_timeout[] = "redis command timed out";
static const char err_closed[] = "redis connection closed";

typedef struct pending {
    struct pending *next;
    mw_redis_reply_cb cb; /* NULL for the runtime's own (AUTH, SELECT) */
    void *data;
    uint64_t deadline;
    int done;             /* the caller already got its answer (timeout) */
} pending;

typedef struct subscription {
    char *channel;
    int pattern;
} subscription;

struct mw_redis {
    uv_loop_t *loop;
    redisAsyncContext *ac;
    int connected;     /* handshake done: commands may be sent */
    int closing;
    char host[256];
    int port;
    int db;
    char user[128];
    char password[256];
    char name[32];
    uint64_t timeout_ms;
    uint64_t connect_started;
    int backoff_ms;
    int was_up;        /* for logging state changes once */
    int tried;         /* a first connection attempt ended: up, or failed (a retry is scheduled) */
    uv_timer_t sweep, retry;
    int handles_open;
    pending *head, *tail;
    subscription *subs;
    int n_subs, cap_subs;
    mw_redis_message_cb on_message;
    mw_redis_state_cb on_state;
    mw_redis_subscribed_cb on_subscribed;
    void *owner;
};

static void connect_now(mw_redis *r);
static void reconnect_with(mw_redis *r, const char *err);

/* ---- hiredis on libuv ------------------------------------------------------------------------
 * Our own adapter instead of hiredis 0.14's adapters/libuv.h: that one ignores a poll error
 * (a reset connection, a refused connect), so hiredis would never notice the failure. Here an
 * error is handed to hiredis as readiness, its read or write fails, and it disconnects. */

typedef struct uv_events {
    redisAsyncContext *context;
    uv_poll_t handle;
    int events;
} uv_events;

static void uv_events_poll_cb(uv_poll_t *handle, int status, int events)
{
    uv_events *p = handle->data;
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE;
    if (p->context && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->context); /* completes a connect, or reports its failure */
    if (p->context && (events & UV_READABLE))
        redisAsyncHandleRead(p->context);
}

static void uv_events_update(uv_events *p)
{
    if (p->events)
        uv_poll_start(&p->handle, p->events, uv_events_poll_cb);
    else
        uv_poll_stop(&p->handle);
}

static void uv_events_add_read(void *d) { uv_events *p = d; p->events |= UV_READABLE; uv_events_update(p); }
static void uv_events_del_read(void *d) { uv_events *p = d; p->events &= ~UV_READABLE; uv_events_update(p); }
static void uv_events_add_write(void *d) { uv_events *p = d; p->events |= UV_WRITABLE; uv_events_update(p); }
static void uv_events_del_write(void *d) { uv_events *p = d; p->events &= ~UV_WRITABLE; uv_events_update(p); }

static void uv_events_closed_cb(uv_handle_t *h) { free(h->data); }

static void uv_events_cleanup(void *d)
{
    uv_events *p = d;
    p->context = NULL; /* hiredis is freeing it */
    uv_close((uv_handle_t *)&p->handle, uv_events_closed_cb);
}

static int uv_events_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    uv_events *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    p->handle.data = p;
    p->context = ac;
    ac->ev.addRead = uv_events_add_read;
    ac->ev.delRead = uv_events_del_read;
    ac->ev.addWrite = uv_events_add_write;
    ac->ev.delWrite = uv_events_del_write;
    ac->ev.cleanup = uv_events_cleanup;
    ac->ev.data = p;
    return 0;
}

/* ---- URL ---------------------------------------------------------------------------------- */

/* url for an error message, with the password (between the scheme's "//" and the last '@' of
 * the authority) replaced by "***": config errors end up in logs. */
static void redact_url(const char *url, char *out, size_t size)
{
    const char *auth = strstr(url, "//");
    auth = auth ? auth + 2 : url;
    const char *path = strchr(auth, '/');
    const char *at = NULL;
    for (const char *q = auth; *q && (!path || q < path); q++)
        if (*q == '@')
            at = q;
    if (!at) {
        snprintf(out, size, "%s", url);
        return;
    }
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    const char *secret = colon ? colon + 1 : auth;
    snprintf(out, size, "%.*s***%s", (int)(secret - url), url, at);
}

static int parse_url(mw_redis *r, const char *url, char *err, size_t errlen)
{
    const char *p = url;
    char shown[1100];
    redact_url(url, shown, sizeof(shown));
    if (strncmp(p, "redis://", 8) != 0) {
        snprintf(err, errlen, "redis URL must start with redis:// (got \"%s\")", shown);
        return -1;
    }
    p += 8;
    const char *slash0 = strchr(p, '/');
    const char *at = NULL; /* the last '@' before the path: a password may contain '@' */
    for (const char *q = p; *q && (!slash0 || q < slash0); q++)
        if (*q == '@')
            at = q;
    if (at) { /* [user]:password@ (user: Redis 6 ACLs) */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if (colon)
            snprintf(r->user, sizeof(r->user), "%.*s", (int)(colon - p), p);
        snprintf(r->password, sizeof(r->password), "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *host_end = colon ? colon : end;
    if (host_end == p) {
        snprintf(r->host, sizeof(r->host), "127.0.0.1");
    } else {
        snprintf(r->host, sizeof(r->host), "%.*s", (int)(host_end - p), p);
    }
    r->port = 6379;
    if (colon) {
        char *stop;
        long port = strtol(colon + 1, &stop, 10);
        if (stop != end || port <= 0 || port > 65535) {
            snprintf(err, errlen, "redis URL has an invalid port (got \"%s\")", shown);
            return -1;
        }
        r->port = (int)port;
    }
    r->db = 0;
    if (slash && slash[1]) {
        char *stop;
        long db = strtol(slash + 1, &stop, 10);
        if (*stop || db < 0) {
            snprintf(err, errlen, "redis URL has an invalid database number (got \"%s\")", shown);
            return -1;
        }
        r->db = (int)db;
    }
    return 0;
}

/* ---- pending commands --------------------------------------------------------------------- */

static pending *pending_push(mw_redis *r, mw_redis_reply_cb cb, void *data)
{
    pending *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->cb = cb;
    p->data = data;
    uv_update_time(r->loop); /* a long handler may have run since the loop last looked */
    p->deadline = uv_now(r->loop) + r->timeout_ms;
    if (r->tail)
        r->tail->next = p;
    else
        r->head = p;
    r->tail = p;
    return p;
}

static pending *pending_pop(mw_redis *r)
{
    pending *p = r->head;
    if (p) {
        r->head = p->next;
        if (!r->head)
            r->tail = NULL;
    }
    return p;
}

/* The answer to the oldest command (hiredis calls back in order; reply NULL when the
 * connection went away). */
static void command_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
    mw_redis *r = privdata;
    pending *p = pending_pop(r);
    if (!p)
        return;
    redisReply *reply = reply_;
    if (!p->done && p->cb)
        p->cb(r, reply, reply ? NULL : err_closed, p->data);
    else if (!p->cb && reply && reply->type == REDIS_REPLY_ERROR)
        mw_logf(MW_LOG_ERROR, "redis (%s): %s", r->name, reply->str);
    free(p);
}

static int send_argv(mw_redis *r, int argc, const char **argv, const size_t *lens, mw_redis_reply_cb cb,
                     void *data)
{
    pending *p = pending_push(r, cb, data);
    if (!p)
        return -1;
    if (redisAsyncCommandArgv(r->ac, command_cb, r, argc, argv, lens) != REDIS_OK) {
        /* not queued: take it back (it is the tail) */
        pending **q = &r->head;
        while (*q && *q != p)
            q = &(*q)->next;
        *q = NULL;
        r->tail = NULL;
        for (pending *t = r->head; t; t = t->next)
            r->tail = t;
        free(p);
        return -1;
    }
    return 0;
}

int mw_redis_command(mw_redis *r, int argc, const char **argv, const size_t *lens, mw_redis_reply_cb cb,
                     void *data)
{
    if (!r->connected || !r->ac || r->closing)
        return -1;
    return send_argv(r, argc, argv, lens, cb, data);
}

/* ---- subscriptions ------------------------------------------------------------------------ */

static void subscription_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
    mw_redis *r = privdata;
    redisReply *reply = reply_;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || !r->on_message)
        return;
    redisReply **e = reply->element;
    if (e[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(e[0]->str, "message") == 0 && e[1]->type == REDIS_REPLY_STRING &&
        e[2]->type == REDIS_REPLY_STRING) {
        r->on_message(r, NULL, e[1]->str, e[1]->len, e[2]->str, e[2]->len, r->owner);
    } else if (strcmp(e[0]->str, "pmessage") == 0 && reply->elements >= 4 &&
               e[2]->type == REDIS_REPLY_STRING && e[3]->type == REDIS_REPLY_STRING) {
        r->on_message(r, e[1]->str, e[2]->str, e[2]->len, e[3]->str, e[3]->len, r->owner);
    } else if (strcmp(e[0]->str, "subscribe") == 0 && e[1]->type == REDIS_REPLY_STRING && r->on_subscribed) {
        r->on_subscribed(r, e[1]->str, e[1]->len, r->owner);
    }
}

static void send_subscription(mw_redis *r, const subscription *s)
{
    const char *argv[2] = { s->pattern ? "PSUBSCRIBE" : "SUBSCRIBE", s->channel };
    size_t lens[2] = { strlen(argv[0]), strlen(s->channel) };
    redisAsyncCommandArgv(r->ac, subscription_cb, r, 2, argv, lens);
}

int mw_redis_subscribe(mw_redis *r, const char *channel, int pattern)
{
    if (r->n_subs == r->cap_subs) {
        int ncap = r->cap_subs ? r->cap_subs * 2 : 8;
        subscription *n = realloc(r->subs, (size_t)ncap * sizeof(subscription));
        if (!n)
            return -1;
        r->subs = n;
        r->cap_subs = ncap;
    }
    subscription *s = &r->subs[r->n_subs];
    s->channel = strdup(channel);
    if (!s->channel)
        return -1;
    s->pattern = pattern;
    r->n_subs++;
    if (r->connected)
        send_subscription(r, s);
    return 0;
}

void mw_redis_unsubscribe(mw_redis *r, const char *channel)
{
    for (int i = 0; i < r->n_subs; i++) {
        if (!r->subs[i].pattern && strcmp(r->subs[i].channel, channel) == 0) {
            if (r->connected && r->ac) {
                const char *argv[2] = { "UNSUBSCRIBE", channel };
                size_t lens[2] = { 11, strlen(channel) };
                redisAsyncCommandArgv(r->ac, subscription_cb, r, 2, argv, lens);
            }
            free(r->subs[i].channel);
            r->subs[i] = r->subs[--r->n_subs];
            return;
        }
    }
}

static void ignore_reply(mw_redis *r, redisReply *reply, const char *err, void *data)
{
    if (reply && reply->type == REDIS_REPLY_ERROR)
        mw_logf(MW_LOG_WARN, "redis (%s): %s", r->name, reply->str);
}

void mw_redis_flush(mw_redis *r)
{
    if (r && r->ac && r->connected && !r->closing && sdslen(r->ac->c.obuf) > 0)
        redisAsyncHandleWrite(r->ac);
}

void mw_redis_flush_wait(mw_redis *r, int timeout_ms)
{
    uint64_t deadline = uv_hrtime() / 1000000 + (uint64_t)timeout_ms;
    while (r && r->ac && r->connected && !r->closing && sdslen(r->ac->c.obuf) > 0) {
        uint64_t now = uv_hrtime() / 1000000;
        if (now >= deadline)
            return;
        struct pollfd p = { .fd = r->ac->c.fd, .events = POLLOUT };
        int n = poll(&p, 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        redisAsyncHandleWrite(r->ac); /* a failed write disconnects: r->ac becomes NULL */
    }
}

int mw_redis_fire(mw_redis *r, int argc, const char **argv, const size_t *lens)
{
    return mw_redis_command(r, argc, argv, lens, ignore_reply, NULL);
}

/* ---- connection --------------------------------------------------------------------------- */

static void set_state(mw_redis *r, int up)
{
    if (up == r->connected)
        return;
    r->connected = up;
    if (up != r->was_up && !r->closing) {
        r->was_up = up;
        if (up)
            mw_logf(MW_LOG_INFO, "redis connected (%s) at %s:%d db %d", r->name, r->host, r->port, r->db);
        else
            mw_logf(MW_LOG_WARN, "redis connection lost (%s) at %s:%d: reconnecting", r->name, r->host, r->port);
    }
    if (r->on_state)
        r->on_state(r, up, r->owner);
}

static void fail_pending(mw_redis *r, const char *err)
{
    for (pending *p = r->head; p; p = p->next) {
        if (!p->done && p->cb) {
            p->done = 1;
            p->cb(r, NULL, err, p->data);
        }
    }
}

static void retry_cb(uv_timer_t *t)
{
    connect_now(t->data);
}

static void schedule_retry(mw_redis *r)
{
    r->tried = 1;
    if (r->closing)
        return;
    uv_timer_start(&r->retry, retry_cb, (uint64_t)r->backoff_ms, 0);
    r->backoff_ms = r->backoff_ms * 2 > MW_REDIS_BACKOFF_MAX_MS ? MW_REDIS_BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void handshake_done(mw_redis *r, redisReply *reply, const char *err, void *data)
{
    if (err || (reply && reply->type == REDIS_REPLY_ERROR)) {
        mw_logf(MW_LOG_WARN, "redis (%s): setting up the connection failed: %s", r->name,
                err ? err : reply->str);
        if (r->ac)
            redisAsyncDisconnect(r->ac);
        return;
    }
    r->backoff_ms = MW_REDIS_BACKOFF_MIN_MS;
    for (int i = 0; i < r->n_subs; i++)
        send_subscription(r, &r->subs[i]);
    r->tried = 1;
    set_state(r, 1);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    mw_redis *r = ac->data;
    if (status != REDIS_OK) {
        r->ac = NULL; /* hiredis frees a context that failed to connect */
        if (!r->was_up && r->backoff_ms == MW_REDIS_BACKOFF_MIN_MS)
            mw_logf(MW_LOG_WARN, "redis (%s): cannot connect to %s:%d: %s; retrying", r->name, r->host,
                    r->port, ac->errstr);
        schedule_retry(r);
        return;
    }
    /* AUTH and SELECT go first; the connection counts as up when the last one answers */
    if (r->password[0]) {
        const char *argv[3] = { "AUTH", r->user, r->password };
        size_t lens[3] = { 4, strlen(r->user), strlen(r->password) };
        if (r->user[0])
            send_argv(r, 3, argv, lens, r->db ? NULL : handshake_done, NULL);
        else {
            argv[1] = r->password;
            lens[1] = lens[2];
            send_argv(r, 2, argv, lens, r->db ? NULL : handshake_done, NULL);
        }
    }
    if (r->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", r->db);
        const char *argv[2] = { "SELECT", db };
        size_t lens[2] = { 6, strlen(db) };
        send_argv(r, 2, argv, lens, handshake_done, NULL);
    }
    if (!r->password[0] && !r->db) {
        const char *argv[1] = { "PING" };
        size_t lens[1] = { 4 };
        send_argv(r, 1, argv, lens, handshake_done, NULL);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    mw_redis *r = ac->data;
    r->ac = NULL; /* hiredis frees it after this returns */
    fail_pending(r, err_closed);
    set_state(r, 0);
    schedule_retry(r);
}

static void connect_now(mw_redis *r)
{
    if (r->closing || r->ac)
        return;
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    ac->data = r;
    if (uv_events_attach(ac, r->loop) != 0) {
        redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->connect_started = uv_now(r->loop);
}

/* Enforces the command timeout on the oldest command, and the connect timeout. */
static void sweep_cb(uv_timer_t *t)
{
    mw_redis *r = t->data;
    uint64_t now = uv_now(r->loop);
    if (!r->ac)
        return;
    pending *p = r->head;
    int stalled = p && now > p->deadline;
    int slow_connect = !r->connected && !p && now - r->connect_started > r->timeout_ms;
    if (stalled || slow_connect) {
        mw_logf(MW_LOG_WARN, "redis (%s): no answer within %.1f s; reconnecting", r->name,
                (double)r->timeout_ms / 1000);
        reconnect_with(r, err_timeout); /* a stalled peer never answers a graceful disconnect */
    }
}

/* Drops the connection: callers answered with err first, while no new command is accepted
 * (a caller that retries from its callback gets "not connected", not the dying connection). */
static void reconnect_with(mw_redis *r, const char *err)
{
    if (!r->ac || r->closing)
        return;
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    set_state(r, 0);
    fail_pending(r, err);
    redisAsyncFree(ac); /* the remaining hiredis callbacks only free their entries */
    if (!uv_is_active((uv_handle_t *)&r->retry))
        schedule_retry(r);
}

void mw_redis_reconnect(mw_redis *r) { reconnect_with(r, err_closed); }

int mw_redis_check_url(const char *url, char *err, size_t errlen)
{
    mw_redis *scratch = calloc(1, sizeof(*scratch));
    if (!scratch) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rv = parse_url(scratch, url, err, errlen);
    memset(scratch, 0, sizeof(*scratch)); /* it held the password */
    free(scratch);
    return rv;
}

mw_redis *mw_redis_new(uv_loop_t *loop, const mw_redis_options *opts, char *err, size_t errlen)
{
    mw_redis *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (parse_url(r, opts->url, err, errlen) != 0) {
        free(r);
        return NULL;
    }
    r->loop = loop;
    snprintf(r->name, sizeof(r->name), "%s", opts->name ? opts->name : "redis");
    r->timeout_ms = (uint64_t)((opts->timeout > 0 ? opts->timeout : 5) * 1000);
    r->backoff_ms = MW_REDIS_BACKOFF_MIN_MS;
    r->on_message = opts->on_message;
    r->on_state = opts->on_state;
    r->on_subscribed = opts->on_subscribed;
    r->owner = opts->owner;
    uv_timer_init(loop, &r->sweep);
    uv_timer_init(loop, &r->retry);
    r->sweep.data = r->retry.data = r;
    r->handles_open = 2;
    uv_timer_start(&r->sweep, sweep_cb, MW_REDIS_SWEEP_MS, MW_REDIS_SWEEP_MS);
    uv_unref((uv_handle_t *)&r->sweep);
    uv_unref((uv_handle_t *)&r->retry);
    connect_now(r);
    return r;
}

int mw_redis_tried(const mw_redis *r) { return r->tried; }

int mw_redis_connected(const mw_redis *r) { return r && r->connected; }

static void timer_closed_cb(uv_handle_t *h)
{
    mw_redis *r = h->data;
    if (--r->handles_open > 0)
        return;
    for (int i = 0; i < r->n_subs; i++)
        free(r->subs[i].channel);
    free(r->subs);
    free(r);
}

void mw_redis_free(mw_redis *r)
{
    if (!r)
        return;
    r->closing = 1;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        redisAsyncFree(ac); /* calls back every pending command, then on_disconnect */
        r->ac = NULL;
    }
    fail_pending(r, err_closed);
    while (r->head)
        free(pending_pop(r));
    uv_close((uv_handle_t *)&r->sweep, timer_closed_cb);
    uv_close((uv_handle_t *)&r->retry, timer_closed_cb);
}
