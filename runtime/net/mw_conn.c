/* mw_conn: the life of one connection. Reads go through llhttp until the request head is
 * complete, then through the WebSocket pump; every byte to send is a reference to a shared
 * frame in the send queue, written once per loop iteration (uv_try_write first, uv_write for
 * the rest). A connection is freed only after both of its handles are closed and it is on no
 * worker list, so no caller up the stack ever holds a freed pointer. */
#include "mw_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mw_bus.h"
#include "mw_handshake.h"
#include "mw_jwt.h"
#include "mw_log.h"
#include "mw_lvm.h"
#include "mw_redis.h"
#include "mw_static.h"
#include "mw_worker.h"

#define MW_MAX_QUEUED_MESSAGES 64   /* past this, stop reading from the client */
#define MW_CLOSE_HANDSHAKE_TIMEOUT_MS 5000
#define MW_SLOW_CONSUMER_GRACE_MS 1000
#define MW_RESPONSE_TIMEOUT_MS 10000 /* an HTTP response must be taken by then */
#define MW_LINGER_MS 2000            /* after a response: drain the request before closing */
#define MW_MAX_STATIC_FILE (8u * 1024 * 1024)

static void on_ws_message(void *owner, int opcode, const uint8_t *data, size_t len);
static int on_ws_output(void *owner, const uint8_t *data, size_t len);
static void on_ws_pong(void *owner);
static const mw_ws_handler ws_handler = { on_ws_message, on_ws_output, on_ws_pong };

static void conn_handle_closed_cb(uv_handle_t *h);
static void close_timeout_cb(uv_timer_t *t);
static void unregister_client(mw_conn *c);

/* ---- send queue -------------------------------------------------------------------------- */

static int queue_bytes(mw_conn *c, const void *bytes, size_t len)
{
    if (mw_outq_push_bytes(&c->out, bytes, len) != 0)
        return -1;
    mw_worker_want_flush(c->w, c);
    return 0;
}

/* The client reads slower than we send: stop reading from it, drop what it has not been
 * sent, say 4503 and give it a second to take that before the socket is closed. */
static void cut_slow_consumer(mw_conn *c)
{
    if (c->slow_consumer || c->state != MW_CONN_WS)
        return;
    c->slow_consumer = 1;
    mw_metrics_add(c->w->m, MW_M_SLOW_CONSUMERS, 1);
    if (mw_log_begin(MW_LOG_WARN, "slow consumer")) {
        mw_log_str("clientId", c->id);
        mw_log_int("queuedBytes", (int64_t)c->out.bytes);
        mw_log_int("limit", (int64_t)c->w->cfg->limits.send_queue_bytes);
        mw_log_end();
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    mw_outq_drop_unsent(&c->out);
    mw_ws_close(c->ws, 4503, "Slow consumer");
    uv_timer_start(&c->timer, close_timeout_cb, MW_SLOW_CONSUMER_GRACE_MS, 0);
    mw_worker_want_flush(c->w, c);
}

int mw_conn_send(mw_conn *c, mw_frame *f)
{
    if (c->state != MW_CONN_WS || !c->ws || mw_ws_closing(c->ws) || c->slow_consumer)
        return -1;
    if (mw_outq_refuses(&c->out, f->len)) {
        cut_slow_consumer(c); /* refused, not queued: the caller learns it was not sent */
        return -1;
    }
    if (mw_outq_push(&c->out, mw_frame_ref(f)) != 0) {
        mw_frame_unref(f);
        return -1;
    }
    mw_metrics_add(c->w->m, MW_M_MESSAGES_OUT, 1);
    mw_worker_want_flush(c->w, c);
    return 0;
}

/* ---- writing ----------------------------------------------------------------------------- */

/* A uv_write of the send queue ended. */
static void written_cb(void *owner, int status, size_t bytes)
{
    mw_conn *c = owner;
    if (status < 0) {
        mw_conn_close(c);
        return;
    }
    mw_metrics_add(c->w->m, MW_M_BYTES_OUT, (int64_t)bytes);
    if (c->state != MW_CONN_CLOSED)
        mw_worker_want_flush(c->w, c);
}

/* Closing with an RST: for a peer that does not read, whatever the kernel still holds for it
 * is dropped at once instead of waiting on its receive window (memory stays flat). */
void mw_conn_abort(mw_conn *c)
{
    if (c->state == MW_CONN_CLOSED)
        return;
    c->state = MW_CONN_CLOSED;
    unregister_client(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_tcp_close_reset(&c->tcp, conn_handle_closed_cb) != 0)
        uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed_cb);
}

static void close_timeout_cb(uv_timer_t *t)
{
    mw_conn *c = t->data;
    if (c->slow_consumer || !mw_outq_empty(&c->out))
        mw_conn_abort(c); /* it is not reading: do not leave data queued in the kernel */
    else
        mw_conn_close(c);
}

static void linger_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    mw_conn *c = req->data;
    free(req);
    if (status < 0 || c->state == MW_CONN_CLOSED) {
        mw_conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, close_timeout_cb, MW_LINGER_MS, 0);
}

/* After an HTTP response: half-close and read (discarding) until the peer closes, so that
 * unread request bytes do not make the kernel reset the connection before the response
 * arrives. Bounded by MW_LINGER_MS. */
static void linger(mw_conn *c)
{
    uv_shutdown_t *req = malloc(sizeof(*req));
    c->close_after_flush = 0;
    if (!req) {
        mw_conn_close(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
        free(req);
        mw_conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, linger_read_cb);
}

static void resume_reading_if_paused(mw_conn *c);

static void after_flush(mw_conn *c)
{
    if (c->close_after_flush) {
        linger(c);
        return;
    }
    if (c->state == MW_CONN_WS && c->ws && mw_ws_done(c->ws))
        mw_conn_close(c);
    else if (c->out_paused)
        resume_reading_if_paused(c);
}

void mw_conn_flush(mw_conn *c)
{
    if (c->state == MW_CONN_CLOSED)
        return;
    if (c->state == MW_CONN_WS && c->ws) {
        if (mw_ws_flush(c->ws) != 0) {
            mw_conn_close(c);
            return;
        }
        /* a close was queued or received: the handshake ends in time even if the peer stops
         * reading (the slow-consumer timer, when running, is shorter) */
        if (mw_ws_closing(c->ws) && !uv_is_active((uv_handle_t *)&c->timer))
            uv_timer_start(&c->timer, close_timeout_cb, MW_CLOSE_HANDSHAKE_TIMEOUT_MS, 0);
    }
    if (c->out.writing) {
        if (mw_outq_over(&c->out) && c->state == MW_CONN_WS)
            cut_slow_consumer(c); /* the kernel took nothing more since the last turn */
        return;
    }
    size_t written;
    int rv = mw_outq_try_write(&c->out, &written);
    mw_metrics_add(c->w->m, MW_M_BYTES_OUT, (int64_t)written);
    if (rv < 0) {
        mw_conn_close(c);
        return;
    }
    if (!mw_outq_empty(&c->out)) {
        /* the kernel buffer is full: what is left is what the client has not taken */
        if (c->state == MW_CONN_WS && mw_outq_over(&c->out)) {
            cut_slow_consumer(c);
            if (mw_outq_empty(&c->out)) {
                after_flush(c);
                return;
            }
        }
        /* hand the rest of this batch to libuv and wait */
        if (mw_outq_write_async(&c->out) != 0)
            mw_conn_close(c);
        return;
    }
    after_flush(c);
}

/* ---- closing ----------------------------------------------------------------------------- */

static void unregister_client(mw_conn *c)
{
    mw_worker *w = c->w;
    if (!c->registered)
        return;
    mw_clients_remove(&w->clients, c);
    uint16_t code = c->ws ? mw_ws_close_code(c->ws) : 1006;
    double duration = (double)(uv_hrtime() - c->connected_hr) / 1e9;
    mw_metrics_add(w->m, MW_M_CONNECTIONS, -1);
    mw_metrics_add(w->m, MW_M_DISCONNECTS, 1);
    mw_metrics_count_disconnect(w->m, code);
    /* leave every room; Lua hears which (onLeaveRoom) before onDisconnect. The names are
     * copied out first because leaving the last member frees a room. */
    mw_memberships *ms = mw_rooms_of(&w->rooms, c);
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
    mw_rooms_leave_all(&w->rooms, c, w);
    mw_rooms_leave_all(&w->users, c, w);
    mw_metrics_set(w->m, MW_M_ROOMS, w->rooms.count);
    if (mw_log_begin(MW_LOG_INFO, "client disconnected")) {
        mw_log_str("clientId", c->id);
        mw_log_int("worker", w->index);
        mw_log_int("code", code);
        mw_log_double("duration", duration);
        mw_log_end();
    }
    if (w->lvm)
        mw_lvm_on_disconnect(w->lvm, c->id, code, c->ws ? mw_ws_close_reason(c->ws) : "",
                             (const char *const *)names, lens, kept);
    for (uint32_t i = 0; i < kept; i++)
        free(names[i]);
    free(names);
    free(lens);
}

void mw_conn_close(mw_conn *c)
{
    if (c->state == MW_CONN_CLOSED)
        return;
    c->state = MW_CONN_CLOSED;
    unregister_client(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed_cb);
}

void mw_conn_free(mw_conn *c)
{
    mw_worker *w = c->w;
    mw_outq_free(&c->out);
    for (mw_msg *m = c->msg_head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    if (c->http) {
        mw_http_request_free(c->http);
        free(c->http);
    }
    mw_ws_free(c->ws);
    for (int k = 0; k < MW_ROOMS_KINDS; k++)
        free(c->memberships[k].items);
    free(c->user_key);
    free(c->claims_json);
    if (c->tcp_prev)
        c->tcp_prev->tcp_next = c->tcp_next;
    else if (w->conns == c)
        w->conns = c->tcp_next;
    if (c->tcp_next)
        c->tcp_next->tcp_prev = c->tcp_prev;
    w->tcp_conns--;
    free(c);
}

static void conn_handle_closed_cb(uv_handle_t *h)
{
    mw_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    if (c->in_flush || c->in_ready)
        c->free_pending = 1; /* the worker list that holds it frees it */
    else
        mw_conn_free(c);
}

void mw_conn_close_ws(mw_conn *c, uint16_t code, const char *reason)
{
    if (c->state != MW_CONN_WS || !c->ws)
        return;
    mw_ws_close(c->ws, code, reason);
    mw_worker_want_flush(c->w, c);
}

/* ---- handling messages ------------------------------------------------------------------- */


/* Runs one message through Lua and accounts for it. Returns 1 when the handler is still
 * running (waiting on I/O), 0 when it finished. */
static int run_message(mw_conn *c, int opcode, const uint8_t *data, size_t len)
{
    mw_worker *w = c->w;
    c->handler_started_hr = uv_hrtime();
    int rv = mw_lvm_on_message(w->lvm, c->id, opcode, data, len);
    if (rv == MW_LVM_PENDING) {
        c->busy = 1;
        return 1;
    }
    mw_metrics_observe_handler(w->m, uv_hrtime() - c->handler_started_hr);
    if (rv == MW_LVM_FAILED)
        mw_metrics_add(w->m, MW_M_HANDLER_ERRORS, 1);
    return 0;
}

/* Token bucket: capacity burst, refilled at messages/per per second. Returns 1 when the
 * message may be handled. A refused message gets an error frame (not in raw mode, where the
 * app owns every frame: it is dropped silently); `burst` refusals in a row close the
 * connection with 4429. */
static int take_rate_token(mw_conn *c)
{
    const mw_limits *lim = &c->w->cfg->limits;
    uint64_t now = uv_now(&c->w->loop);
    c->tokens += (double)(now - c->tokens_at_ms) / 1000.0 * (lim->rate_messages / lim->rate_per);
    if (c->tokens > lim->rate_burst)
        c->tokens = lim->rate_burst;
    c->tokens_at_ms = now;
    if (c->tokens >= 1.0) {
        c->tokens -= 1.0;
        c->refusals = 0;
        return 1;
    }
    mw_metrics_add(c->w->m, MW_M_RATE_LIMITED, 1);
    static const char refused[] =
        "{\"type\":\"error\",\"action\":\"message\",\"data\":{\"error\":\"Rate limit exceeded\",\"code\":\"rate_limited\"}}";
    mw_frame *f = c->w->cfg->has_raw ? NULL : mw_frame_ws(1, refused, sizeof(refused) - 1);
    if (f) {
        mw_conn_send(c, f);
        mw_frame_unref(f);
    }
    if (++c->refusals >= (uint32_t)lim->rate_burst) {
        if (mw_log_begin(MW_LOG_WARN, "rate limit: closing a client that keeps flooding")) {
            mw_log_str("clientId", c->id);
            mw_log_int("refused", c->refusals);
            mw_log_end();
        }
        mw_conn_close_ws(c, 4429, "Rate limit exceeded");
    }
    return 0;
}

static void on_ws_pong(void *owner)
{
    mw_conn *c = owner;
    c->awaiting_pong = 0;
}

static void on_ws_message(void *owner, int opcode, const uint8_t *data, size_t len)
{
    mw_conn *c = owner;
    c->last_activity_ms = mw_wall_ms();
    mw_metrics_add(c->w->m, MW_M_MESSAGES_IN, 1);
    if (c->state != MW_CONN_WS || c->w->draining)
        return;
    if (!take_rate_token(c))
        return;
    if (!c->busy && !c->msg_head) {
        run_message(c, opcode, data, len);
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
    if (c->msg_tail)
        c->msg_tail->next = m;
    else
        c->msg_head = m;
    c->msg_tail = m;
    if (++c->msg_count >= MW_MAX_QUEUED_MESSAGES && !c->read_paused) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->read_paused = 1;
    }
}

void mw_conn_run_queued(mw_conn *c)
{
    while (c->state == MW_CONN_WS && !c->busy && c->msg_head) {
        mw_msg *m = c->msg_head;
        c->msg_head = m->next;
        if (!c->msg_head)
            c->msg_tail = NULL;
        c->msg_count--;
        run_message(c, m->opcode, m->data, m->len);
        free(m);
    }
    resume_reading_if_paused(c);
}

void mw_conn_handler_finished(mw_conn *c, int errored)
{
    if (!c->busy)
        return;
    c->busy = 0;
    mw_metrics_observe_handler(c->w->m, uv_hrtime() - c->handler_started_hr);
    if (errored)
        mw_metrics_add(c->w->m, MW_M_HANDLER_ERRORS, 1);
    if (c->msg_head || c->read_paused)
        mw_worker_want_run(c->w, c); /* not now: we may be deep inside a Lua call */
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    mw_conn *c = h->data;
    /* one read buffer per worker: every read is processed before the next one starts */
    *buf = uv_buf_init((char *)c->w->read_buf, sizeof(c->w->read_buf));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Reading from a WebSocket client pauses while its handler queue is long or its pongs fill
 * the send queue, and resumes when both have drained. */
static void resume_reading_if_paused(mw_conn *c)
{
    if (c->read_paused && c->msg_count < MW_MAX_QUEUED_MESSAGES / 2)
        c->read_paused = 0;
    if (c->out_paused && mw_outq_below_half(&c->out))
        c->out_paused = 0;
    if (c->state == MW_CONN_WS && !c->read_paused && !c->out_paused && !c->slow_consumer &&
        !(c->ws && mw_ws_closing(c->ws) && !mw_ws_want_read(c->ws)))
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void on_ws_bytes(mw_conn *c, const uint8_t *data, size_t len)
{
    if (mw_ws_feed(c->ws, data, len) != 0) {
        mw_conn_close(c);
        return;
    }
    mw_worker_want_flush(c->w, c);
}

static int on_ws_output(void *owner, const uint8_t *data, size_t len)
{
    mw_conn *c = owner;
    if (mw_outq_push_bytes(&c->out, data, len) != 0)
        return -1;
    /* pongs count against the send queue too: a peer that pings without reading stops being
     * read from (no more pings) and is cut off at the next flush */
    if (mw_outq_over(&c->out) && !c->out_paused) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->out_paused = 1;
    }
    mw_worker_want_flush(c->w, c);
    return 0;
}

/* ---- HTTP -------------------------------------------------------------------------------- */

static void respond_error(mw_conn *c, int status, const char *reason, const char *extra)
{
    char buf[1024];
    size_t n = mw_http_error_response(status, reason, extra, buf, sizeof(buf));
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_start(&c->timer, close_timeout_cb, MW_RESPONSE_TIMEOUT_MS, 0);
    c->close_after_flush = 1;
    if (n == 0 || queue_bytes(c, buf, n) != 0)
        mw_conn_close(c);
}

static void respond(mw_conn *c, int status, const char *content_type, const char *body, size_t len,
                    int head_only)
{
    char header[512];
    int n = snprintf(header, sizeof(header),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-cache\r\n"
                     "Connection: close\r\n"
                     "\r\n",
                     status, mw_http_status_text(status), content_type, len);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_start(&c->timer, close_timeout_cb, MW_RESPONSE_TIMEOUT_MS, 0);
    c->close_after_flush = 1;
    mw_frame *f = mw_frame_raw(NULL, (size_t)n + (head_only ? 0 : len));
    if (!f) {
        mw_conn_close(c);
        return;
    }
    memcpy(f->data, header, (size_t)n);
    if (!head_only && len)
        memcpy(f->data + n, body, len);
    if (mw_outq_push(&c->out, f) != 0) {
        mw_frame_unref(f);
        mw_conn_close(c);
        return;
    }
    mw_worker_want_flush(c->w, c);
}

static int path_is(const char *path, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(path, want, len) == 0;
}

/* Static files are small and in the page cache; they are read synchronously with a size cap.
 * (Serving large assets belongs to the proxy in front.) */
static void serve_file(mw_conn *c, const char *file, int head_only)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        respond_error(c, 404, "No such file", NULL);
        return;
    }
    if ((uint64_t)st.st_size > MW_MAX_STATIC_FILE) {
        close(fd);
        respond_error(c, 404, "File too large to serve", NULL);
        return;
    }
    size_t size = (size_t)st.st_size;
    char *body = malloc(size ? size : 1);
    size_t got = 0;
    while (body && got < size) {
        ssize_t r = read(fd, body + got, size - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (!body || got != size) {
        free(body);
        respond_error(c, 500, "Could not read the file", NULL);
        return;
    }
    respond(c, 200, mw_static_content_type(file), body, size, head_only);
    free(body);
}

static void handle_plain_http(mw_conn *c, const char *path, size_t path_len)
{
    mw_worker *w = c->w;
    int method = mw_http_method(c->http);
    int head_only = method == HTTP_HEAD;
    char body[512];
    mw_metrics_add(w->m, MW_M_HTTP_REQUESTS, 1);
    if (method != HTTP_GET && method != HTTP_HEAD) {
        respond_error(c, 405, "Only GET and HEAD are served here", "Allow: GET, HEAD\r\n");
        return;
    }
    if (path_is(path, path_len, "/health")) {
        int n = snprintf(body, sizeof(body), "{\"status\":\"ok\",\"workerId\":\"%s\",\"connections\":%zu}",
                         w->id, w->clients.count);
        respond(c, 200, "application/json", body, (size_t)n, head_only);
    } else if (path_is(path, path_len, "/ready")) {
        int redis_down = w->redis && !mw_redis_connected(w->redis);
        int ready = !w->draining && !redis_down;
        int n = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"workerId\":\"%s\"}",
                         ready ? "ready" : w->draining ? "draining" : "redis unavailable", w->id);
        respond(c, ready ? 200 : 503, "application/json", body, (size_t)n, head_only);
    } else if (path_is(path, path_len, "/metrics")) {
        char *text = NULL;
        size_t n = mw_metrics_render(w->metrics, &text);
        if (!text) {
            respond_error(c, 500, "Out of memory", NULL);
            return;
        }
        respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, n, head_only);
        free(text);
    } else if (path_is(path, path_len, "/moonwire.js")) {
        char file[PATH_MAX + 32];
        snprintf(file, sizeof(file), "%s/clients/js/moonwire.js", w->cfg->runtime_dir);
        serve_file(c, file, head_only);
    } else if (w->has_public) {
        char file[PATH_MAX];
        int st = mw_static_resolve(w->public_dir, path, path_len, file, sizeof(file));
        if (st != 0)
            respond_error(c, st, st == 404 ? "No such file" : "Bad path", NULL);
        else
            serve_file(c, file, head_only);
    } else {
        respond_error(c, 404, "No such file", NULL);
    }
}

static void start_websocket(mw_conn *c, const uint8_t *rest, size_t rest_len)
{
    mw_worker *w = c->w;
    char buf[512];
    size_t n = mw_handshake_response(c->http, buf, sizeof(buf));
    mw_ws_limits limits = { w->cfg->limits.max_message_size, w->cfg->limits.max_fragments,
                            w->cfg->has_raw };
    char random_part[MW_RANDOM_ID_LEN + 1];
    if (n == 0 || mw_random_id(random_part) != 0 || !(c->ws = mw_ws_new(&limits, &ws_handler, c))) {
        respond_error(c, 500, "Could not start the WebSocket session", NULL);
        return;
    }
    memcpy(c->id, w->tag, MW_WORKER_TAG_LEN);
    memcpy(c->id + MW_WORKER_TAG_LEN, random_part, MW_RANDOM_ID_LEN + 1);
    uv_timer_stop(&c->timer);
    mw_http_request_free(c->http);
    free(c->http);
    c->http = NULL;
    c->state = MW_CONN_WS;
    c->tokens = w->cfg->limits.rate_burst; /* the bucket starts full */
    c->tokens_at_ms = c->last_ping_ms = uv_now(&w->loop);
    c->connected_at_ms = c->last_activity_ms = mw_wall_ms();
    c->connected_hr = uv_hrtime();
    if (queue_bytes(c, buf, n) != 0) {
        mw_conn_close(c);
        return;
    }
    mw_clients_add(&w->clients, c);
    if (c->user_key) {
        size_t klen = strlen(c->user_key);
        if (mw_rooms_join(&w->users, c, c->user_key, klen) < 0)
            mw_logf(MW_LOG_WARN, "out of memory indexing a user's connection");
        else if (mw_rooms_find(&w->users, c->user_key, klen)->n == 1)
            mw_bus_watch(w, MW_BUS_USER, c->user_key, klen, 1);
    }
    mw_metrics_add(w->m, MW_M_CONNECTIONS, 1);
    mw_metrics_add(w->m, MW_M_CONNECTS, 1);
    if (mw_log_begin(MW_LOG_INFO, "client connected")) {
        mw_log_str("clientId", c->id);
        mw_log_int("worker", w->index);
        mw_log_str("remote", c->remote);
        mw_log_end();
    }
    if (!w->cfg->has_raw) {
        /* frame order on connect: "connected" first, then (with a token) auth, then onConnect */
        int m = snprintf(buf, sizeof(buf),
                         "{\"type\":\"system\",\"action\":\"connected\",\"data\":{\"clientId\":\"%s\"}}", c->id);
        mw_frame *f = mw_frame_ws(1, buf, (size_t)m);
        if (f) {
            mw_conn_send(c, f);
            mw_frame_unref(f);
        }
    }
    mw_lvm_on_connect(w->lvm, c->id);
    if (rest_len > 0 && c->state == MW_CONN_WS)
        on_ws_bytes(c, rest, rest_len);
}

/* Origin, token and events.onAuthenticate: 101 to go on, else the status to refuse with. */
static int admit(mw_conn *c, char *reason, size_t reason_size)
{
    mw_worker *w = c->w;
    char token[MW_JWT_MAX_TOKEN + 1];
    long tlen = mw_http_find_token(c->http, token, sizeof(token));
    char *claims = NULL;
    const char *token_error = NULL;
    if (tlen < 0)
        token_error = "token too large";
    else if (tlen > 0)
        mw_jwt_verify(&w->jwt, token, (size_t)tlen, &claims, &token_error);
    if (tlen != 0)
        memset(token, 0, sizeof(token)); /* it is not needed any more */
    mw_admission adm;
    mw_lvm_admit(w->lvm, c->http, c->remote, claims, token_error, tlen != 0, &adm);
    free(claims);
    snprintf(reason, reason_size, "%s", adm.reason);
    if (adm.remote[0]) /* behind a trusted proxy: logs and getClient name the client, not the proxy */
        snprintf(c->remote, sizeof(c->remote), "%s", adm.remote);
    if (adm.status == 101) {
        c->user_key = adm.user_key;
        c->token_expires_at_ms = adm.expires_ms;
    } else {
        free(adm.user_key);
        if (adm.status == 401)
            mw_metrics_add(w->m, MW_M_AUTH_FAILURES, 1);
    }
    return adm.status;
}

static void handle_request(mw_conn *c, const uint8_t *rest, size_t rest_len)
{
    mw_worker *w = c->w;
    const char *path, *query, *reason = NULL;
    size_t path_len, query_len;
    mw_http_url_parts(c->http, &path, &path_len, &query, &query_len);
    if (!path_is(path, path_len, w->cfg->path)) {
        size_t ulen;
        if (mw_http_header_value(c->http, "Upgrade", &ulen)) {
            mw_metrics_add(w->m, MW_M_HANDSHAKES_REFUSED, 1);
            respond_error(c, 404, "No WebSocket endpoint at this path", NULL);
        } else {
            handle_plain_http(c, path, path_len);
        }
        return;
    }
    int status = mw_handshake_validate(c->http, &reason);
    if (status == 101 && w->draining) {
        status = 503;
        reason = "Server is shutting down";
    }
    if (status == 101 && w->cfg->limits.max_connections > 0 &&
        (long)w->clients.count >= w->cfg->limits.max_connections) {
        status = 503;
        reason = "Connection limit reached";
    }
    char why[256];
    if (status == 101) {
        status = admit(c, why, sizeof(why));
        if (status != 101)
            reason = why;
    }
    if (status != 101) {
        mw_metrics_add(w->m, MW_M_HANDSHAKES_REFUSED, 1);
        /* auth and origin refusals are what an operator looks for ("why can't user X connect?");
         * malformed upgrades stay at debug so a scanner cannot flood the log */
        mw_log_level level = status == 401 || status == 403 ? MW_LOG_INFO : MW_LOG_DEBUG;
        if (mw_log_begin(level, "upgrade refused")) {
            mw_log_int("status", status);
            mw_log_str("reason", reason);
            mw_log_str("remote", c->remote);
            mw_log_end();
        }
        respond_error(c, status, reason, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        return;
    }
    start_websocket(c, rest, rest_len);
}

static void linger_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0)
        mw_conn_close(s->data); /* the peer closed its side: done */
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    mw_conn *c = s->data;
    if (nread < 0) {
        mw_conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    mw_metrics_add(c->w->m, MW_M_BYTES_IN, nread);
    const uint8_t *data = (const uint8_t *)buf->base;
    size_t len = (size_t)nread;
    if (c->state == MW_CONN_HTTP) {
        size_t used = 0;
        mw_http_status st = mw_http_feed(c->http, (const char *)data, len, &used);
        if (st == MW_HTTP_ERROR) {
            mw_metrics_add(c->w->m, MW_M_HANDSHAKES_REFUSED, 1);
            respond_error(c, c->http->error_status, c->http->error_reason, NULL);
        } else if (st == MW_HTTP_DONE) {
            handle_request(c, data + used, len - used); /* bytes after the head are the WebSocket's */
        }
    } else if (c->state == MW_CONN_WS) {
        on_ws_bytes(c, data, len);
    }
}

static void handshake_timeout_cb(uv_timer_t *t)
{
    mw_conn *c = t->data;
    if (c->state == MW_CONN_HTTP)
        respond_error(c, 408, "The request head did not arrive in time", NULL);
}

void mw_conn_accept(mw_worker *w, int fd)
{
    mw_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->w = w;
    c->state = MW_CONN_HTTP;
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    mw_outq_init(&c->out, (uv_stream_t *)&c->tcp, w->cfg->limits.send_queue_bytes, written_cb, c);
    c->handles_open = 1;
    w->tcp_conns++;
    c->tcp_next = w->conns;
    if (w->conns)
        w->conns->tcp_prev = c;
    w->conns = c;
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd); /* not the handle's: uv_close will not close it */
        c->state = MW_CONN_CLOSED;
        uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
        return;
    }
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(c->remote, sizeof(c->remote), "%s:%d", ip, port);
    }
    c->http = malloc(sizeof(mw_http_request));
    if (!c->http || mw_http_request_init(c->http, w->cfg->limits.max_header_bytes) != 0) {
        free(c->http);
        c->http = NULL;
        mw_conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, handshake_timeout_cb, (uint64_t)(w->cfg->limits.handshake_timeout * 1000), 0);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}
