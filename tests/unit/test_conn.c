/* Unit test for mw_conn over real loopback TCP sockets, with a test owner instead of the app:
 * what the connection reports through mw_conn_handler (admit, open, message, deferred, closed,
 * release, http_request), counted and checked after the loop ran; the 101 and the bytes after
 * it; a refused upgrade (no open, no closed); a plain HTTP request answered and closed; a send
 * past the hard cap cutting a slow consumer without closing it synchronously (a caller walking
 * its clients may go on); and every connection freed at the end (mw_net's count back to 0).
 * Links mw_net. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mw_conn.h"
#include "mw_test.h"

typedef struct owner {
    int admits, opens, messages, deferreds, closeds, releases, http_requests;
    int refuse;          /* admit answers 403 */
    int defer_on_message;
    uint16_t closed_code;
    char last_message[64];
    char closed_reason[64];
    mw_conn *conn;
} owner;

static int data_tag; /* c->data points here once admitted */

static void admit_cb(void *o, mw_conn *c, const mw_http_request *r, mw_conn_admission *out)
{
    owner *t = o;
    t->admits++;
    const char *path, *query;
    size_t plen, qlen;
    mw_http_url_parts(r, &path, &plen, &query, &qlen);
    CHECK(plen == 3 && memcmp(path, "/ws", 3) == 0);
    if (t->refuse) {
        out->status = 403;
        snprintf(out->reason, sizeof(out->reason), "Origin not allowed");
        return;
    }
    c->data = &data_tag;
}

static void open_cb(void *o, mw_conn *c)
{
    owner *t = o;
    t->opens++;
    t->conn = c;
    CHECK(c->data == &data_tag);
    CHECK(memcmp(c->id, "TestTag1", MW_WORKER_TAG_LEN) == 0);
    CHECK_EQ_INT(strlen(c->id), MW_CLIENT_ID_LEN);
}

static void message_cb(void *o, mw_conn *c, int opcode, const uint8_t *data, size_t len)
{
    owner *t = o;
    t->messages++;
    CHECK_EQ_INT(opcode, 1);
    snprintf(t->last_message, sizeof(t->last_message), "%.*s", (int)len, (const char *)data);
    mw_frame *f = mw_frame_ws(1, "world", 5); /* answer at once */
    CHECK_EQ_INT(mw_conn_send(c, f), 0);
    mw_frame_unref(f);
    if (t->defer_on_message)
        mw_conn_defer(c);
}

static void deferred_cb(void *o, mw_conn *c)
{
    owner *t = o;
    t->deferreds++;
}

static void closed_cb(void *o, mw_conn *c, uint16_t code, const char *reason)
{
    owner *t = o;
    t->closeds++;
    t->closed_code = code;
    snprintf(t->closed_reason, sizeof(t->closed_reason), "%s", reason);
}

static void release_cb(void *o, mw_conn *c)
{
    owner *t = o;
    t->releases++;
    CHECK(c->data == &data_tag);
    c->data = NULL;
}

static void http_request_cb(void *o, mw_conn *c, const mw_http_request *r)
{
    owner *t = o;
    t->http_requests++;
    mw_conn_respond(c, 200, "text/plain", "fine", 4, 0);
}

static const mw_conn_handler handler = { .admit = admit_cb, .open = open_cb, .message = message_cb,
                                         .deferred = deferred_cb, .closed = closed_cb,
                                         .release = release_cb, .http_request = http_request_cb };

static uv_loop_t loop;
static mw_net net;
static int listen_fd;

static void flush_cb(uv_prepare_t *h) { mw_net_flush(&net); }

/* A connected client socket (non-blocking); the server side goes to mw_conn_accept. */
static int connect_client(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    getsockname(listen_fd, (struct sockaddr *)&a, &alen);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    int srv = accept(listen_fd, NULL, NULL);
    CHECK(srv >= 0);
    fcntl(srv, F_SETFL, fcntl(srv, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    mw_conn_accept(&net, srv);
    return fd;
}

/* Runs the loop until the client has read `want` bytes (or the peer closed: returns what came). */
static size_t read_until(int fd, char *buf, size_t cap, size_t want)
{
    size_t got = 0;
    for (int i = 0; i < 10000 && got < want; i++) { /* 10 s at most on a busy machine */
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t n = read(fd, buf + got, cap - got);
        if (n == 0)
            break;
        if (n > 0)
            got += (size_t)n;
        else
            usleep(1000);
    }
    return got;
}

static void run_a_while(void)
{
    for (int i = 0; i < 50; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

/* A masked client frame (FIN set). */
static size_t client_frame(uint8_t *out, int opcode, const void *payload, size_t len)
{
    static const uint8_t key[4] = { 1, 2, 3, 4 };
    out[0] = (uint8_t)(0x80 | opcode);
    out[1] = (uint8_t)(0x80 | len); /* short payloads only */
    memcpy(out + 2, key, 4);
    for (size_t i = 0; i < len; i++)
        out[6 + i] = ((const uint8_t *)payload)[i] ^ key[i % 4];
    return 6 + len;
}

static const char upgrade[] = "GET /ws HTTP/1.1\r\n"
                              "Host: localhost\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";

static void test_websocket(owner *t)
{
    char buf[4096];
    uint8_t f[64];
    int fd = connect_client();
    t->defer_on_message = 1;
    /* the request head and the first frame in one write: the bytes after the head are the
     * WebSocket's */
    memcpy(buf, upgrade, sizeof(upgrade) - 1);
    size_t n = sizeof(upgrade) - 1 + client_frame((uint8_t *)buf + sizeof(upgrade) - 1, 1, "hello", 5);
    CHECK_EQ_INT(write(fd, buf, n), (long)n);
    size_t got = read_until(fd, buf, sizeof(buf) - 1, 1);
    buf[got] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    CHECK(strncmp(buf, "HTTP/1.1 101 ", 13) == 0);
    CHECK(strstr(buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    CHECK(end != NULL);
    size_t head = end ? (size_t)(end + 4 - buf) : got;
    if (got < head + 7)
        got += read_until(fd, buf + got, sizeof(buf) - got, head + 7 - got);
    CHECK_EQ_INT(got, head + 7);
    CHECK(got == head + 7 && memcmp(buf + head, "\x81\x05world", 7) == 0); /* the answer to hello */
    CHECK_EQ_INT(t->admits, 1);
    CHECK_EQ_INT(t->opens, 1);
    CHECK_EQ_INT(t->messages, 1);
    CHECK_EQ_STR(t->last_message, "hello");
    CHECK_EQ_INT(t->deferreds, 1); /* on a later loop turn */
    CHECK(t->conn && t->conn->last_activity_ms > 0);

    /* the client closes with 4000 "done": the connection echoes the close and ends */
    n = client_frame(f, 8, "\x0f\xa0" "done", 6);
    CHECK_EQ_INT(write(fd, f, n), (long)n);
    got = read_until(fd, buf, sizeof(buf), 64);
    CHECK(got >= 4 && (uint8_t)buf[0] == 0x88 && (uint8_t)buf[2] == 0x0f && (uint8_t)buf[3] == 0xa0);
    run_a_while();
    CHECK_EQ_INT(t->closeds, 1);
    CHECK_EQ_INT(t->closed_code, 4000);
    CHECK_EQ_STR(t->closed_reason, "done");
    CHECK_EQ_INT(t->releases, 1);
    close(fd);
}

static void test_refused(owner *t)
{
    char buf[1024];
    int fd = connect_client();
    t->refuse = 1;
    CHECK_EQ_INT(write(fd, upgrade, sizeof(upgrade) - 1), (long)sizeof(upgrade) - 1);
    size_t got = read_until(fd, buf, sizeof(buf) - 1, sizeof(buf) - 1); /* until it closes */
    buf[got] = '\0';
    CHECK(strncmp(buf, "HTTP/1.1 403 ", 13) == 0);
    CHECK(strstr(buf, "Origin not allowed") != NULL);
    run_a_while();
    CHECK_EQ_INT(t->admits, 2);
    CHECK_EQ_INT(t->opens, 1);    /* still the first one only */
    CHECK_EQ_INT(t->closeds, 1);  /* a refused upgrade was never open */
    CHECK_EQ_INT(t->releases, 1); /* and had no data */
    t->refuse = 0;
    close(fd);
}

static void test_plain_http(owner *t)
{
    char buf[1024];
    int fd = connect_client();
    static const char get[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ_INT(write(fd, get, sizeof(get) - 1), (long)sizeof(get) - 1);
    size_t got = read_until(fd, buf, sizeof(buf) - 1, sizeof(buf) - 1);
    buf[got] = '\0';
    CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(got > 4 && strcmp(buf + got - 4, "fine") == 0);
    CHECK_EQ_INT(t->http_requests, 1);
    CHECK_EQ_INT(t->admits, 2); /* not an upgrade */
    close(fd);
    run_a_while();
}

static void test_slow_consumer(owner *t)
{
    char buf[1024];
    int fd = connect_client();
    CHECK_EQ_INT(write(fd, upgrade, sizeof(upgrade) - 1), (long)sizeof(upgrade) - 1);
    size_t got = read_until(fd, buf, sizeof(buf) - 1, 4);
    CHECK(got >= 13 && strncmp(buf, "HTTP/1.1 101 ", 13) == 0);
    CHECK_EQ_INT(t->opens, 2);
    mw_conn *c = t->conn;
    int closeds = t->closeds;
    /* more than MW_OUTQ_HARD_FACTOR times the limit in one frame: refused, the client is cut */
    size_t big_len = (size_t)(MW_OUTQ_HARD_FACTOR + 1) << 20;
    char *big = calloc(1, big_len);
    mw_frame *f = big ? mw_frame_ws(2, big, big_len) : NULL;
    CHECK(f != NULL);
    if (f) {
        CHECK_EQ_INT(mw_conn_send(c, f), -1);
        CHECK_EQ_INT(t->closeds, closeds); /* not closed, not unregistered, synchronously */
        CHECK(c->slow_consumer);
        CHECK_EQ_INT(mw_conn_send(c, f), -1); /* closing: takes nothing more */
        CHECK_EQ_INT(t->closeds, closeds);
        mw_frame_unref(f);
    }
    free(big);
    /* later, from the loop: the close frame (4503), then after the grace period the socket */
    got = read_until(fd, buf, sizeof(buf), 4);
    CHECK(got >= 4 && (uint8_t)buf[0] == 0x88 && (uint8_t)buf[2] == 0x11 && (uint8_t)buf[3] == 0x97);
    for (int i = 0; i < 5000 && t->closeds == closeds; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    CHECK_EQ_INT(t->closeds, closeds + 1);
    CHECK_EQ_INT(t->closed_code, 4503);
    close(fd);
    run_a_while();
}

int main(void)
{
    owner t = { 0 };
    mw_metrics_slot slot = { 0 };
    mw_config cfg = { 0 };
    mw_log_setup(MW_LOG_ERROR, MW_LOG_TEXT, 0);
    snprintf(cfg.path, sizeof(cfg.path), "/ws");
    cfg.limits.max_message_size = 65536;
    cfg.limits.max_fragments = 16;
    cfg.limits.max_header_bytes = 8192;
    cfg.limits.handshake_timeout = 5;
    cfg.limits.send_queue_bytes = 1 << 20;
    uv_loop_init(&loop);
    mw_net_init(&net, &loop, &cfg, 0, "TestTag1", &slot, &handler, &t);
    uv_prepare_t prepare;
    uv_prepare_init(&loop, &prepare);
    uv_prepare_start(&prepare, flush_cb);

    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ_INT(bind(listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    CHECK_EQ_INT(listen(listen_fd, 8), 0);

    test_websocket(&t);
    test_refused(&t);
    test_plain_http(&t);
    test_slow_consumer(&t);

    mw_net_close_all(&net);
    uv_close((uv_handle_t *)&prepare, NULL);
    uv_close((uv_handle_t *)&net.defer_idle, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    mw_net_free_closed(&net);
    CHECK_EQ_INT(net.tcp_conns, 0); /* every connection freed */
    CHECK(net.conns == NULL);
    CHECK_EQ_INT(slot.values[MW_M_MESSAGES_IN], 1);
    CHECK_EQ_INT(slot.values[MW_M_MESSAGES_OUT], 1);
    CHECK_EQ_INT(slot.values[MW_M_HANDSHAKES_REFUSED], 1);
    CHECK_EQ_INT(slot.values[MW_M_SLOW_CONSUMERS], 1);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    close(listen_fd);
    MW_TEST_DONE();
}
