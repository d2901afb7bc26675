/* mw_conn: the life of one connection. Reads go through llhttp until the request head is
 * complete, then through the WebSocket pump; every byte to send is a reference to a shared
 * frame in the send queue (mw_outq), written once per loop iteration. Whatever the bytes mean
 * goes up to the owner through mw_conn_handler. A connection is freed only after both of its
 * handles are closed and it is on no list of mw_net, so no caller up the stack ever holds a
 * freed pointer. */
#include "mw_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mw_handshake.h"
#include "mw_log.h"
#include "mw_pmd.h"

#define MW_CLOSE_HANDSHAKE_TIMEOUT_MS 5000
#define MW_SLOW_CONSUMER_GRACE_MS 1000
#define MW_RESPONSE_TIMEOUT_MS 10000 /* an HTTP response must be taken by then */
#define MW_LINGER_MS 2000            /* after a response: drain the request before closing */

static void on_ws_message(void *owner, int opcode, const uint8_t *data, size_t len);
static int on_ws_output(void *owner, const uint8_t *data, size_t len);
static void on_ws_pong(void *owner);
static const mw_ws_handler ws_handler = { on_ws_message, on_ws_output, on_ws_pong };

static void conn_handle_closed_cb(uv_handle_t *h);
static void close_timeout_cb(uv_timer_t *t);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void flush(mw_conn *c);
static void conn_free(mw_conn *c);

/* ---- the connection's timer -------------------------------------------------------------- */

/* One timer per connection for whatever it waits on (request head, message, close handshake,
 * response), allocated only while one of those runs: an idle WebSocket has none (memory rule,
 * issue 15). Released timers are closed (a libuv handle) and freed in their close callback. */

static void timer_closed_cb(uv_handle_t *h)
{
    mw_conn *c = h->data;
    free(h);
    conn_handle_closed_cb((uv_handle_t *)&c->tcp);
}

static void timer_start(mw_conn *c, uv_timer_cb cb, uint64_t ms)
{
    if (c->state == MW_CONN_CLOSED)
        return;
    if (!c->timer) {
        uv_timer_t *t = malloc(sizeof(*t));
        if (!t) {
            mw_conn_abort(c); /* a connection without its timeouts could stay forever */
            return;
        }
        uv_timer_init(c->net->loop, t);
        t->data = c;
        c->timer = t;
        c->handles_open++;
    }
    uv_timer_start(c->timer, cb, ms, 0);
}

static int timer_active(const mw_conn *c) { return c->timer && uv_is_active((uv_handle_t *)c->timer); }

/* Stops the timer and lets go of it. */
static void timer_release(mw_conn *c)
{
    if (!c->timer)
        return;
    uv_close((uv_handle_t *)c->timer, timer_closed_cb);
    c->timer = NULL;
}

/* ---- the worker's connections ------------------------------------------------------------ */

static void defer_idle_cb(uv_idle_t *h);

void mw_net_init(mw_net *net, uv_loop_t *loop, const mw_config *cfg, int index, const char *tag,
                 mw_metrics_slot *m, const mw_conn_handler *handler, void *owner)
{
    net->loop = loop;
    net->index = index;
    snprintf(net->tag, sizeof(net->tag), "%s", tag);
    net->limits = cfg->limits;
    snprintf(net->path, sizeof(net->path), "%s", cfg->path);
    net->allow_binary = cfg->has_raw;
    net->max_body = cfg->api_key[0] ? MW_HTTP_API_MAX_BODY : 0;
    net->compression = cfg->compression;
    net->compression_threshold = cfg->compression_threshold;
    net->compression_level = cfg->compression_level;
    net->codec = NULL;
    net->m = m;
    net->handler = handler;
    net->owner = owner;
    net->conns = net->flush_head = net->defer_head = NULL;
    net->tcp_conns = 0;
    net->send_queue_bytes = 0;
    net->wall_ms = net->wall_at = 0;
    uv_idle_init(loop, &net->defer_idle);
    net->defer_idle.data = net;
    /* spares beyond what one loop turn's partial reads need are freed, not kept */
    mw_ws_pool_init(&net->wsctx_pool, 64);
    mw_outq_pool_init(&net->outq_pool, 1024);
}

/* The memory gauges, once per loop iteration (a store each, not a count per message). */
static void publish_gauges(mw_net *net)
{
    mw_metrics_set(net->m, MW_M_SEND_QUEUE_BYTES, net->send_queue_bytes);
    mw_metrics_set(net->m, MW_M_PARTIAL_BYTES, net->wsctx_pool.held_bytes);
    mw_metrics_set(net->m, MW_M_WS_CONTEXTS, net->wsctx_pool.lent);
}

static void want_flush(mw_conn *c)
{
    if (c->in_flush || c->state == MW_CONN_CLOSED)
        return;
    c->in_flush = 1;
    c->flush_next = c->net->flush_head;
    c->net->flush_head = c;
}

void mw_conn_defer(mw_conn *c)
{
    mw_net *net = c->net;
    if (c->in_defer || c->state == MW_CONN_CLOSED)
        return;
    c->in_defer = 1;
    c->defer_next = net->defer_head;
    net->defer_head = c;
    uv_idle_start(&net->defer_idle, defer_idle_cb);
}

/* Called for a connection just taken off one of the lists. Returns 1 when it is alive; a
 * connection closed while on a list is freed by the last list that lets go of it. */
static int off_list_alive(mw_conn *c)
{
    if (!c->free_pending)
        return 1;
    if (!c->in_flush && !c->in_defer)
        conn_free(c);
    return 0;
}

void mw_net_flush(mw_net *net)
{
    while (net->flush_head) {
        mw_conn *c = net->flush_head;
        net->flush_head = c->flush_next;
        c->in_flush = 0;
        if (off_list_alive(c))
            flush(c);
    }
    publish_gauges(net);
}

static void defer_idle_cb(uv_idle_t *h)
{
    mw_net *net = h->data;
    mw_conn *list = net->defer_head;
    net->defer_head = NULL;
    while (list) {
        mw_conn *c = list;
        list = c->defer_next;
        c->in_defer = 0;
        if (off_list_alive(c))
            net->handler->deferred(net->owner, c);
    }
    if (!net->defer_head)
        uv_idle_stop(&net->defer_idle);
}

void mw_net_close_all(mw_net *net)
{
    for (mw_conn *c = net->conns; c; c = c->tcp_next)
        mw_conn_close(c); /* closes both handles of each connection */
}

void mw_net_free_closed(mw_net *net)
{
    while (net->flush_head) {
        mw_conn *c = net->flush_head;
        net->flush_head = c->flush_next;
        c->in_flush = 0;
        off_list_alive(c);
    }
    while (net->defer_head) {
        mw_conn *c = net->defer_head;
        net->defer_head = c->defer_next;
        c->in_defer = 0;
        off_list_alive(c);
    }
    mw_wsctx_pool_free(&net->wsctx_pool);
    mw_outq_pool_free(&net->outq_pool);
    mw_deflate_free(net->codec);
    net->codec = NULL;
}

/* ---- send queue -------------------------------------------------------------------------- */

static int queue_bytes(mw_conn *c, const void *bytes, size_t len)
{
    if (mw_outq_push_bytes(&c->out, bytes, len) != 0)
        return -1;
    want_flush(c);
    return 0;
}

/* The client reads slower than we send: stop reading from it, drop what it has not been
 * sent, say 4503 and give it a second to take that before the socket is closed. */
static void cut_slow_consumer(mw_conn *c)
{
    if (c->slow_consumer || c->state != MW_CONN_WS)
        return;
    c->slow_consumer = 1;
    mw_metrics_add(c->net->m, MW_M_SLOW_CONSUMERS, 1);
    if (mw_log_begin(MW_LOG_WARN, "slow consumer")) {
        mw_log_str("clientId", c->id);
        mw_log_int("queuedBytes", (int64_t)c->out.bytes);
        mw_log_int("limit", (int64_t)c->out.limit);
        mw_log_end();
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    mw_outq_drop_unsent(&c->out);
    mw_ws_close(c->ws, 4503, "Slow consumer");
    c->msg_timer_on = 0;
    timer_start(c, close_timeout_cb, MW_SLOW_CONSUMER_GRACE_MS);
    want_flush(c);
}

int mw_conn_send(mw_conn *c, mw_frame *f)
{
    if (c->state != MW_CONN_WS || !c->ws || mw_ws_closing(c->ws) || c->slow_consumer)
        return -1;
    if (c->deflate) { /* the compressed twin, made once for every such recipient of f */
        mw_frame *z = mw_deflate_pick(c->net->codec, f, c->net->compression_threshold);
        if (z != f) {
            size_t plain, packed;
            mw_frame_payload(f, &plain);
            mw_frame_payload(z, &packed);
            mw_metrics_add(c->net->m, MW_M_COMPRESSION_OUT_PLAIN, (int64_t)plain);
            mw_metrics_add(c->net->m, MW_M_COMPRESSION_OUT_WIRE, (int64_t)packed);
            f = z;
        }
    }
    if (mw_outq_refuses(&c->out, f->len)) {
        cut_slow_consumer(c); /* refused, not queued: the caller learns it was not sent */
        return -1;
    }
    if (mw_outq_push(&c->out, mw_frame_ref(f)) != 0) {
        mw_frame_unref(f);
        return -1;
    }
    mw_metrics_add(c->net->m, MW_M_MESSAGES_OUT, 1);
    want_flush(c);
    return 0;
}

void mw_conn_close_ws(mw_conn *c, uint16_t code, const char *reason)
{
    if (c->state != MW_CONN_WS || !c->ws)
        return;
    mw_ws_close(c->ws, code, reason);
    want_flush(c);
}

void mw_conn_ping(mw_conn *c)
{
    if (c->state != MW_CONN_WS || !c->ws)
        return;
    mw_ws_ping(c->ws);
    c->awaiting_pong = 1;
    c->ping_sent_ms = c->last_ping_ms = uv_now(c->net->loop);
    want_flush(c);
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
    mw_metrics_add(c->net->m, MW_M_BYTES_OUT, (int64_t)bytes);
    if (c->state != MW_CONN_CLOSED)
        want_flush(c);
}

static void close_timeout_cb(uv_timer_t *t)
{
    mw_conn *c = t->data;
    if (c->slow_consumer || !mw_outq_empty(&c->out))
        mw_conn_abort(c); /* it is not reading: do not leave data queued in the kernel */
    else
        mw_conn_close(c);
}

static void linger_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0)
        mw_conn_close(s->data); /* the peer closed its side: done */
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    mw_conn *c = req->data;
    free(req);
    if (status < 0 || c->state == MW_CONN_CLOSED) {
        mw_conn_close(c);
        return;
    }
    timer_start(c, close_timeout_cb, MW_LINGER_MS);
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

/* Reading from a WebSocket client pauses while its owner holds it or its pongs fill the send
 * queue, and resumes when both are over. */
static void resume_reading_if_paused(mw_conn *c)
{
    if (c->out_paused && mw_outq_below_half(&c->out))
        c->out_paused = 0;
    if (c->state == MW_CONN_WS && !c->held && !c->out_paused && !c->slow_consumer &&
        !(c->ws && mw_ws_closing(c->ws) && !mw_ws_want_read(c->ws)))
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

void mw_conn_hold_reading(mw_conn *c, int hold)
{
    if (hold && !c->held) {
        c->held = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
        return;
    }
    c->held = hold;
    resume_reading_if_paused(c); /* also notices pongs that drained meanwhile */
}

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

static void flush(mw_conn *c)
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
        if (mw_ws_closing(c->ws) && (c->msg_timer_on || !timer_active(c))) {
            c->msg_timer_on = 0;
            timer_start(c, close_timeout_cb, MW_CLOSE_HANDSHAKE_TIMEOUT_MS);
        }
    }
    if (c->out.writing) {
        if (mw_outq_over(&c->out) && c->state == MW_CONN_WS)
            cut_slow_consumer(c); /* the kernel took nothing more since the last turn */
        return;
    }
    size_t written;
    int rv = mw_outq_try_write(&c->out, &written);
    mw_metrics_add(c->net->m, MW_M_BYTES_OUT, (int64_t)written);
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

/* The owner hears that an opened session ended, before the handles close. */
static void report_closed(mw_conn *c)
{
    if (!c->opened)
        return;
    c->opened = 0;
    mw_net *net = c->net;
    uint16_t code = c->ws ? mw_ws_close_code(c->ws) : 1006;
    net->handler->closed(net->owner, c, code, c->ws ? mw_ws_close_reason(c->ws) : "");
}

void mw_conn_close(mw_conn *c)
{
    if (c->state == MW_CONN_CLOSED)
        return;
    c->state = MW_CONN_CLOSED;
    report_closed(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
    timer_release(c);
}

/* Closing with an RST: for a peer that does not read, whatever the kernel still holds for it
 * is dropped at once instead of waiting on its receive window (memory stays flat). */
void mw_conn_abort(mw_conn *c)
{
    if (c->state == MW_CONN_CLOSED)
        return;
    c->state = MW_CONN_CLOSED;
    report_closed(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_tcp_close_reset(&c->tcp, conn_handle_closed_cb) != 0)
        uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
    timer_release(c);
}

static void conn_free(mw_conn *c)
{
    mw_net *net = c->net;
    if (c->data && net->handler->release)
        net->handler->release(net->owner, c);
    if (c->http_ticket && net->handler->http_dropped)
        net->handler->http_dropped(net->owner, c, c->http_ticket);
    mw_outq_free(&c->out);
    if (c->http) {
        mw_http_request_free(c->http);
        free(c->http);
    }
    mw_ws_free(c->ws);
    if (c->tcp_prev)
        c->tcp_prev->tcp_next = c->tcp_next;
    else if (net->conns == c)
        net->conns = c->tcp_next;
    if (c->tcp_next)
        c->tcp_next->tcp_prev = c->tcp_prev;
    net->tcp_conns--;
    free(c);
}

static void conn_handle_closed_cb(uv_handle_t *h)
{
    mw_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    if (c->in_flush || c->in_defer)
        c->free_pending = 1; /* the list that holds it frees it */
    else
        conn_free(c);
}

/* ---- reading ----------------------------------------------------------------------------- */

static void on_ws_pong(void *owner)
{
    mw_conn *c = owner;
    c->awaiting_pong = 0;
}

/* The wall clock in ms, read at most once per loop iteration (uv_now moves once per
 * iteration): a client's last activity needs no more, and a clock read per message shows. */
static uint64_t wall_ms(mw_net *net)
{
    uint64_t now = uv_now(net->loop);
    if (now != net->wall_at || net->wall_ms == 0) {
        net->wall_at = now;
        net->wall_ms = mw_wall_ms();
    }
    return net->wall_ms;
}

static void on_ws_message(void *owner, int opcode, const uint8_t *data, size_t len)
{
    mw_conn *c = owner;
    mw_net *net = c->net;
    c->msg_done = 1;
    c->last_activity_ms = wall_ms(net);
    mw_metrics_add(net->m, MW_M_MESSAGES_IN, 1);
    if (c->state != MW_CONN_WS)
        return;
    net->handler->message(net->owner, c, opcode, data, len);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    mw_conn *c = h->data;
    *buf = uv_buf_init((char *)c->net->read_buf, sizeof(c->net->read_buf));
}

/* A client that starts a message and stops (a partial frame declaring 64 KiB, then silence)
 * holds a wslay context and the declared bytes: limits.messageTimeout bounds how long. */
static void message_timeout_cb(uv_timer_t *t)
{
    mw_conn *c = t->data;
    mw_net *net = c->net;
    c->msg_timer_on = 0;
    if (c->state != MW_CONN_WS || !c->ws || mw_ws_closing(c->ws) || !mw_ws_partial(c->ws))
        return;
    if (c->held || c->out_paused) { /* we are not reading from it: not its fault */
        c->msg_timer_on = 1;
        timer_start(c, message_timeout_cb, (uint64_t)(net->limits.message_timeout * 1000));
        return;
    }
    if (mw_log_begin(MW_LOG_INFO, "message timeout")) {
        mw_log_str("clientId", c->id);
        mw_log_int("heldBytes", (int64_t)mw_ws_held_bytes(c->ws));
        mw_log_end();
    }
    /* 1008 (policy violation): the client broke the server's time limit for a message; 1001
     * would tell it the server is going away, which is not the case */
    mw_conn_close_ws(c, 1008, "Message timeout");
}

/* After a read: the message timer runs while a message is partly in, from its first byte (it
 * restarts when one completes, so a client streaming messages back to back is not cut). */
static void update_message_timer(mw_conn *c)
{
    int done = c->msg_done;
    c->msg_done = 0;
    if (c->state != MW_CONN_WS || mw_ws_closing(c->ws) || c->slow_consumer || c->net->limits.message_timeout <= 0)
        return;
    if (mw_ws_partial(c->ws)) {
        if (!c->msg_timer_on || done) {
            c->msg_timer_on = 1;
            timer_start(c, message_timeout_cb, (uint64_t)(c->net->limits.message_timeout * 1000));
        }
    } else if (c->msg_timer_on) {
        c->msg_timer_on = 0;
        timer_release(c);
    }
}

static void on_ws_bytes(mw_conn *c, const uint8_t *data, size_t len)
{
    if (mw_ws_feed(c->ws, data, len) != 0) {
        mw_conn_close(c);
        return;
    }
    if (c->net->handler->read_done)
        c->net->handler->read_done(c->net->owner, c);
    update_message_timer(c);
    want_flush(c);
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
    want_flush(c);
    return 0;
}

/* ---- HTTP -------------------------------------------------------------------------------- */

void mw_conn_respond_error(mw_conn *c, int status, const char *reason, const char *extra)
{
    char buf[1024];
    size_t n = mw_http_error_response(status, reason, extra, buf, sizeof(buf));
    c->http_waiting = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
    timer_start(c, close_timeout_cb, MW_RESPONSE_TIMEOUT_MS);
    c->close_after_flush = 1;
    if (n == 0 || queue_bytes(c, buf, n) != 0)
        mw_conn_close(c);
}

void mw_conn_respond(mw_conn *c, int status, const char *content_type, const char *body, size_t len,
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
    c->http_waiting = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
    timer_start(c, close_timeout_cb, MW_RESPONSE_TIMEOUT_MS);
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
    want_flush(c);
}

static void http_wait_timeout_cb(uv_timer_t *t)
{
    mw_conn *c = t->data;
    if (mw_conn_http_waiting(c))
        mw_conn_respond_error(c, 504, "The answer did not come in time", NULL);
}

void mw_conn_http_wait(mw_conn *c, uint64_t ticket, uint64_t timeout_ms)
{
    uv_read_stop((uv_stream_t *)&c->tcp); /* one request per connection: nothing more to read */
    c->http_ticket = ticket;
    c->http_waiting = 1;
    timer_start(c, http_wait_timeout_cb, timeout_ms);
}

static int path_is(const char *path, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(path, want, len) == 0;
}

static void start_websocket(mw_conn *c, const uint8_t *rest, size_t rest_len)
{
    mw_net *net = c->net;
    char buf[512], ext[MW_PMD_RESPONSE_MAX] = "";
    if (net->compression && mw_pmd_negotiate_request(c->http, ext) &&
        (net->codec || (net->codec = mw_deflate_new(net->compression_level, net->m))))
        c->deflate = 1;
    size_t n = mw_handshake_response(c->http, c->deflate ? ext : NULL, buf, sizeof(buf));
    mw_ws_limits limits = { net->limits.max_message_size, net->limits.max_fragments, net->allow_binary,
                            &net->wsctx_pool, c->deflate ? net->codec : NULL };
    char random_part[MW_RANDOM_ID_LEN + 1];
    if (n == 0 || mw_random_id(random_part) != 0 || !(c->ws = mw_ws_new(&limits, &ws_handler, c))) {
        mw_conn_respond_error(c, 500, "Could not start the WebSocket session", NULL);
        return;
    }
    memcpy(c->id, net->tag, MW_WORKER_TAG_LEN);
    memcpy(c->id + MW_WORKER_TAG_LEN, random_part, MW_RANDOM_ID_LEN + 1);
    timer_release(c); /* the handshake's: an idle WebSocket holds no timer */
    mw_http_request_free(c->http);
    free(c->http);
    c->http = NULL;
    c->state = MW_CONN_WS;
    c->last_ping_ms = uv_now(net->loop);
    c->connected_at_ms = c->last_activity_ms = mw_wall_ms();
    c->connected_hr = uv_hrtime();
    if (queue_bytes(c, buf, n) != 0) {
        mw_conn_close(c);
        return;
    }
    c->opened = 1;
    net->handler->open(net->owner, c);
    if (rest_len > 0 && c->state == MW_CONN_WS)
        on_ws_bytes(c, rest, rest_len);
}

static void handle_request(mw_conn *c, const uint8_t *rest, size_t rest_len)
{
    mw_net *net = c->net;
    const char *path, *query, *reason = NULL;
    size_t path_len, query_len;
    mw_http_url_parts(c->http, &path, &path_len, &query, &query_len);
    if (!path_is(path, path_len, net->path)) {
        size_t ulen;
        if (mw_http_header_value(c->http, "Upgrade", &ulen)) {
            mw_metrics_add(net->m, MW_M_HANDSHAKES_REFUSED, 1);
            mw_conn_respond_error(c, 404, "No WebSocket endpoint at this path", NULL);
        } else if (net->handler->http_request) {
            net->handler->http_request(net->owner, c, c->http);
        } else {
            mw_conn_respond_error(c, 404, "No such file", NULL);
        }
        return;
    }
    int status = mw_handshake_validate(c->http, &reason);
    mw_conn_admission adm = { 101, "" };
    if (status == 101) {
        net->handler->admit(net->owner, c, c->http, &adm);
        status = adm.status;
        if (status != 101)
            reason = adm.reason;
    }
    if (status != 101) {
        mw_metrics_add(net->m, MW_M_HANDSHAKES_REFUSED, 1);
        /* auth and origin refusals are what an operator looks for ("why can't user X connect?");
         * malformed upgrades stay at debug so a scanner cannot flood the log */
        mw_log_level level = status == 401 || status == 403 ? MW_LOG_INFO : MW_LOG_DEBUG;
        if (mw_log_begin(level, "upgrade refused")) {
            mw_log_int("status", status);
            mw_log_str("reason", reason);
            mw_log_str("remote", c->remote);
            mw_log_end();
        }
        mw_conn_respond_error(c, status, reason, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        return;
    }
    start_websocket(c, rest, rest_len);
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
    mw_metrics_add(c->net->m, MW_M_BYTES_IN, nread);
    const uint8_t *data = (const uint8_t *)buf->base;
    size_t len = (size_t)nread;
    if (c->state == MW_CONN_HTTP) {
        size_t used = 0;
        mw_http_status st = mw_http_feed(c->http, (const char *)data, len, &used);
        if (st == MW_HTTP_ERROR && c->http->error_status == 413 && c->http->head_complete &&
            c->net->handler->http_request) {
            c->net->handler->http_request(c->net->owner, c, c->http); /* the endpoint answers */
        } else if (st == MW_HTTP_ERROR) {
            mw_metrics_add(c->net->m, MW_M_HANDSHAKES_REFUSED, 1);
            mw_conn_respond_error(c, c->http->error_status, c->http->error_reason, NULL);
        } else if (st == MW_HTTP_NEED_MORE && c->http->expect_continue && !c->continue_sent) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            c->continue_sent = 1;
            if (queue_bytes(c, cont, sizeof(cont) - 1) != 0)
                mw_conn_close(c);
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
        mw_conn_respond_error(c, 408, "The request head did not arrive in time", NULL);
}

/* "ip:port" of the peer into c->remote. */
static void name_peer(mw_conn *c)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) != 0)
        return;
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

void mw_conn_accept(mw_net *net, int fd)
{
    mw_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->net = net;
    c->state = MW_CONN_HTTP;
    uv_tcp_init(net->loop, &c->tcp);
    c->tcp.data = c;
    mw_outq_init(&c->out, (uv_stream_t *)&c->tcp, net->limits.send_queue_bytes, written_cb, c);
    c->out.total = &net->send_queue_bytes;
    c->out.pool = &net->outq_pool;
    c->handles_open = 1;
    net->tcp_conns++;
    c->tcp_next = net->conns;
    if (net->conns)
        net->conns->tcp_prev = c;
    net->conns = c;
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd); /* not the handle's: uv_close will not close it */
        c->state = MW_CONN_CLOSED;
        uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    name_peer(c);
    c->http = malloc(sizeof(mw_http_request));
    if (!c->http || mw_http_request_init(c->http, net->limits.max_header_bytes) != 0) {
        free(c->http);
        c->http = NULL;
        mw_conn_close(c);
        return;
    }
    mw_http_request_set_max_body(c->http, net->max_body);
    timer_start(c, handshake_timeout_cb, (uint64_t)(net->limits.handshake_timeout * 1000));
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}
