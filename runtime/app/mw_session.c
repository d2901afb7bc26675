/* mw_session: one message of a client runs at a time; while its handler waits on I/O, later
 * messages queue in arrival order, and past MW_MAX_QUEUED_MESSAGES the client is not read from.
 * The two wire-protocol frames built in C live here (every other frame is built in Lua): the
 * "connected" frame, which must precede anything onConnect sends, and the rate-limit refusal,
 * which must not cost a call into Lua for a client that floods. */
#include "mw_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_fanout.h"
#include "mw_jwt.h"
#include "mw_log.h"
#include "mw_lvm.h"
#include "mw_worker.h"

/* ---- wire frames built in C -------------------------------------------------------------- */

static void send_text(mw_conn *c, const char *json, size_t len)
{
    mw_frame *f = mw_frame_ws(1, json, len);
    if (f) {
        mw_conn_send(c, f);
        mw_frame_unref(f);
    }
}

static void send_connected_frame(mw_conn *c)
{
    char buf[160];
    int n = snprintf(buf, sizeof(buf), "{\"type\":\"system\",\"action\":\"connected\",\"data\":{\"clientId\":\"%s\"}}",
                     c->id);
    send_text(c, buf, (size_t)n);
}

static void send_rate_limited_frame(mw_conn *c)
{
    static const char refused[] =
        "{\"type\":\"error\",\"action\":\"message\",\"data\":{\"error\":\"Rate limit exceeded\",\"code\":\"rate_limited\"}}";
    send_text(c, refused, sizeof(refused) - 1);
}

/* ---- admission, open, close -------------------------------------------------------------- */

/* Draining, the connection limit, the token and events.onAuthenticate. On 101 the session is
 * made and hung on the connection (the user key and token expiry go with it). */
void mw_session_admit(void *owner, mw_conn *c, const mw_http_request *r, mw_conn_admission *out)
{
    mw_worker *w = owner;
    if (w->draining) {
        out->status = 503;
        snprintf(out->reason, sizeof(out->reason), "Server is shutting down");
        return;
    }
    if (w->cfg->limits.max_connections > 0 && (long)w->fanout.clients.count >= w->cfg->limits.max_connections) {
        out->status = 503;
        snprintf(out->reason, sizeof(out->reason), "Connection limit reached");
        return;
    }
    char token[MW_JWT_MAX_TOKEN + 1];
    long tlen = mw_http_find_token(r, token, sizeof(token));
    char *claims = NULL;
    const char *token_error = NULL;
    if (tlen < 0)
        token_error = "token too large";
    else if (tlen > 0)
        mw_jwt_verify(&w->jwt, token, (size_t)tlen, &claims, &token_error);
    if (tlen != 0)
        memset(token, 0, sizeof(token)); /* it is not needed any more */
    mw_admission adm;
    mw_lvm_admit(w->lvm, r, c->remote, claims, token_error, tlen != 0, &adm);
    free(claims);
    out->status = adm.status;
    snprintf(out->reason, sizeof(out->reason), "%s", adm.reason);
    if (adm.remote[0]) /* behind a trusted proxy: logs and getClient name the client, not the proxy */
        snprintf(c->remote, sizeof(c->remote), "%s", adm.remote);
    if (adm.status != 101) {
        free(adm.user_key);
        if (adm.status == 401)
            mw_metrics_add(w->m, MW_M_AUTH_FAILURES, 1);
        return;
    }
    mw_session *s = calloc(1, sizeof(*s));
    if (!s) {
        free(adm.user_key);
        out->status = 500;
        snprintf(out->reason, sizeof(out->reason), "Out of memory");
        return;
    }
    s->conn = c;
    s->client.user_key = adm.user_key;
    s->token_expires_at_ms = adm.expires_ms;
    c->data = s;
}

void mw_session_open(void *owner, mw_conn *c)
{
    mw_worker *w = owner;
    mw_session *s = c->data;
    s->tokens = w->cfg->limits.rate_burst; /* the bucket starts full */
    s->tokens_at_ms = uv_now(&w->loop);
    memcpy(s->client.id, c->id, sizeof(s->client.id));
    s->client.conn = c;
    mw_fanout_add(&w->fanout, &s->client);
    mw_metrics_add(w->m, MW_M_CONNECTIONS, 1);
    mw_metrics_add(w->m, MW_M_CONNECTS, 1);
    if (mw_log_begin(MW_LOG_INFO, "client connected")) {
        mw_log_str("clientId", c->id);
        mw_log_int("worker", w->index);
        mw_log_str("remote", c->remote);
        mw_log_end();
    }
    /* frame order on connect: "connected" first, then (with a token) auth, then onConnect */
    if (!w->cfg->has_raw)
        send_connected_frame(c);
    mw_lvm_on_connect(w->lvm, c->id);
}

void mw_session_closed(void *owner, mw_conn *c, uint16_t code, const char *reason)
{
    mw_worker *w = owner;
    mw_session *s = c->data;
    if (w->raw_batch == s) /* its messages run before it leaves its rooms and disconnects */
        mw_session_run_batch(w);
    double duration = (double)(uv_hrtime() - c->connected_hr) / 1e9;
    /* leave every room; Lua hears which (onLeaveRoom) before onDisconnect. The names are
     * copied out first because leaving the last member frees a room. */
    mw_memberships *ms = mw_rooms_of(&w->fanout.rooms, &s->client);
    uint32_t n = ms->n;
    char **names = n ? malloc(n * sizeof(char *)) : NULL;
    uint32_t *lens = n ? malloc(n * sizeof(uint32_t)) : NULL;
    uint32_t kept = 0;
    for (uint32_t i = 0; names && lens && i < n; i++) {
        mw_room *r = ms->items[i].room;
        names[kept] = malloc(r->name_len + 1);
        if (names[kept]) {
            memcpy(names[kept], r->name, r->name_len + 1);
            lens[kept++] = r->name_len;
        }
    }
    mw_fanout_remove(&w->fanout, &s->client);
    mw_metrics_add(w->m, MW_M_CONNECTIONS, -1);
    mw_metrics_add(w->m, MW_M_DISCONNECTS, 1);
    mw_metrics_count_disconnect(w->m, code);
    if (mw_log_begin(MW_LOG_INFO, "client disconnected")) {
        mw_log_str("clientId", c->id);
        mw_log_int("worker", w->index);
        mw_log_int("code", code);
        mw_log_double("duration", duration);
        mw_log_end();
    }
    if (w->lvm)
        mw_lvm_on_disconnect(w->lvm, c->id, code, reason, (const char *const *)names, lens, kept);
    for (uint32_t i = 0; i < kept; i++)
        free(names[i]);
    free(names);
    free(lens);
}

void mw_session_release(void *owner, mw_conn *c)
{
    mw_session *s = c->data;
    for (mw_msg *m = s->msg_head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    mw_client_release(&s->client);
    free(s);
    c->data = NULL;
}

/* ---- messages ---------------------------------------------------------------------------- */

/* Runs one message through Lua and accounts for it. Returns 1 when the handler is still
 * running (waiting on I/O), 0 when it finished. */
static int run_message(mw_worker *w, mw_session *s, int opcode, const uint8_t *data, size_t len)
{
    s->handler_started_hr = uv_hrtime();
    int rv = mw_lvm_on_message(w->lvm, s->client.id, opcode, data, len);
    if (rv == MW_LVM_PENDING) {
        s->busy = 1;
        return 1;
    }
    mw_metrics_observe_handler(w->m, uv_hrtime() - s->handler_started_hr);
    if (rv == MW_LVM_FAILED)
        mw_metrics_add(w->m, MW_M_HANDLER_ERRORS, 1);
    return 0;
}

/* Token bucket: capacity burst, refilled at messages/per per second. Returns 1 when the
 * message may be handled. A refused message gets an error frame (not in raw mode, where the
 * app owns every frame: it is dropped silently); `burst` refusals in a row close the
 * connection with 4429. */
static int take_rate_token(mw_worker *w, mw_session *s)
{
    const mw_limits *lim = &w->cfg->limits;
    uint64_t now = uv_now(&w->loop);
    s->tokens += (double)(now - s->tokens_at_ms) / 1000.0 * (lim->rate_messages / lim->rate_per);
    if (s->tokens > lim->rate_burst)
        s->tokens = lim->rate_burst;
    s->tokens_at_ms = now;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        s->refusals = 0;
        return 1;
    }
    mw_metrics_add(w->m, MW_M_RATE_LIMITED, 1);
    if (!w->cfg->has_raw)
        send_rate_limited_frame(s->conn);
    if (++s->refusals >= (uint32_t)lim->rate_burst) {
        if (mw_log_begin(MW_LOG_WARN, "rate limit: closing a client that keeps flooding")) {
            mw_log_str("clientId", s->client.id);
            mw_log_int("refused", s->refusals);
            mw_log_end();
        }
        mw_conn_close_ws(s->conn, 4429, "Rate limit exceeded");
    }
    return 0;
}

/* Raw mode: runs the messages of one read that mw_lvm batched (see mw_lvm_raw_add). */
void mw_session_run_batch(mw_worker *w)
{
    mw_session *s = w->raw_batch;
    if (!s)
        return;
    w->raw_batch = NULL;
    uint64_t started = uv_hrtime();
    int n;
    int rv = mw_lvm_raw_run(w->lvm, &n);
    if (rv == MW_LVM_PENDING) {
        s->busy = 1;
        s->handler_started_hr = started;
        return;
    }
    if (n > 0)
        mw_metrics_observe_n(&w->m->handler, (uv_hrtime() - started) / (uint64_t)n, (uint64_t)n);
    if (rv == MW_LVM_FAILED)
        mw_metrics_add(w->m, MW_M_HANDLER_ERRORS, 1);
}

void mw_session_message(void *owner, mw_conn *c, int opcode, const uint8_t *data, size_t len)
{
    mw_worker *w = owner;
    mw_session *s = c->data;
    if (w->draining)
        return;
    if (!take_rate_token(w, s))
        return;
    if (!s->busy && !s->msg_head) {
        if (!w->cfg->has_raw) {
            run_message(w, s, opcode, data, len);
            return;
        }
        /* raw: batched with this read's other messages, run at the end of the read */
        if (w->raw_batch != s)
            mw_session_run_batch(w);
        w->raw_batch = s;
        if (mw_lvm_raw_add(w->lvm, s->client.id, opcode, data, len))
            mw_session_run_batch(w);
        return;
    }
    /* the previous handler of this client still runs: keep arrival order */
    mw_msg *m = malloc(sizeof(mw_msg) + len);
    if (!m) {
        mw_conn_close_ws(c, 1011, "Out of memory");
        return;
    }
    m->next = NULL;
    m->opcode = opcode;
    m->len = (uint32_t)len;
    memcpy(m->data, data, len);
    if (s->msg_tail)
        s->msg_tail->next = m;
    else
        s->msg_head = m;
    s->msg_tail = m;
    if (++s->msg_count >= MW_MAX_QUEUED_MESSAGES && !s->read_paused) {
        mw_conn_hold_reading(c, 1);
        s->read_paused = 1;
    }
}

void mw_session_read_done(void *owner, mw_conn *c)
{
    (void)c;
    mw_session_run_batch(owner);
}

void mw_session_run_queued(void *owner, mw_conn *c)
{
    mw_worker *w = owner;
    mw_session *s = c->data;
    if (!s)
        return;
    while (c->state == MW_CONN_WS && !s->busy && s->msg_head) {
        mw_msg *m = s->msg_head;
        s->msg_head = m->next;
        if (!s->msg_head)
            s->msg_tail = NULL;
        s->msg_count--;
        run_message(w, s, m->opcode, m->data, m->len);
        free(m);
    }
    if (s->read_paused && s->msg_count < MW_MAX_QUEUED_MESSAGES / 2)
        s->read_paused = 0;
    mw_conn_hold_reading(c, s->read_paused);
}

int mw_session_set_expiry(void *owner, const char *id, size_t len, double expires_ms)
{
    mw_worker *w = owner;
    mw_client *client = mw_clients_find(&w->fanout.clients, id, len);
    if (!client)
        return -1;
    mw_session *s = mw_session_of(client);
    s->token_expires_at_ms = expires_ms;
    s->expiring_sent = 0; /* the new token gets its own notice */
    return 0;
}

void mw_session_handler_finished(void *owner, mw_client *client, int errored)
{
    mw_worker *w = owner;
    mw_session *s = mw_session_of(client);
    if (!s->busy)
        return;
    s->busy = 0;
    mw_metrics_observe_handler(w->m, uv_hrtime() - s->handler_started_hr);
    if (errored)
        mw_metrics_add(w->m, MW_M_HANDLER_ERRORS, 1);
    if (s->msg_head || s->read_paused)
        mw_conn_defer(s->conn); /* not now: we may be deep inside a Lua call */
}
