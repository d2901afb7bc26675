/* Unit tests for mw_http + mw_handshake: the RFC 6455 example key, request validation and
 * the statuses of each refusal, header limits, and the split between head and pipelined bytes. */
#include <stdlib.h>

#include "mw_handshake.h"
#include "mw_http.h"
#include "mw_test.h"

static const char good[] =
    "GET /ws?token=abc HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

/* Feeds req in chunks of `chunk` bytes; returns the final status and the consumed count. */
static mw_http_status feed_chunked(mw_http_request *r, const char *req, size_t len, size_t chunk,
                                   size_t *consumed_total)
{
    mw_http_status st = MW_HTTP_NEED_MORE;
    size_t off = 0;
    *consumed_total = 0;
    while (off < len && st == MW_HTTP_NEED_MORE) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t used = 0;
        st = mw_http_feed(r, req + off, n, &used);
        *consumed_total += used;
        off += n;
    }
    return st;
}

static int validate(const char *req, size_t max_head, const char **reason)
{
    mw_http_request r;
    size_t used;
    mw_http_request_init(&r, max_head);
    mw_http_status st = feed_chunked(&r, req, strlen(req), 7, &used);
    int status = st == MW_HTTP_DONE ? mw_handshake_validate(&r, reason)
               : st == MW_HTTP_ERROR ? r.error_status : -1;
    mw_http_request_free(&r);
    return status;
}

static char *replace(const char *src, const char *from, const char *to)
{
    static char buf[4096];
    const char *at = strstr(src, from);
    if (!at)
        return NULL;
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - src), src, to, at + strlen(from));
    return buf;
}

static void test_accept_key(void)
{
    char out[MW_ACCEPT_KEY_LEN + 1];
    mw_handshake_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_valid_request_in_every_chunk_size(void)
{
    for (size_t chunk = 1; chunk <= sizeof(good); chunk++) {
        mw_http_request r;
        size_t used;
        const char *reason;
        mw_http_request_init(&r, 8192);
        CHECK_EQ_INT(feed_chunked(&r, good, strlen(good), chunk, &used), MW_HTTP_DONE);
        CHECK_EQ_INT(used, strlen(good));
        CHECK_EQ_INT(mw_handshake_validate(&r, &reason), 101);
        const char *path, *query;
        size_t plen, qlen;
        mw_http_url_parts(&r, &path, &plen, &query, &qlen);
        CHECK(plen == 3 && memcmp(path, "/ws", 3) == 0);
        CHECK(qlen == 9 && memcmp(query, "token=abc", 9) == 0);
        mw_http_request_free(&r);
    }
}

static void test_response(void)
{
    mw_http_request r;
    size_t used;
    char out[512];
    mw_http_request_init(&r, 8192);
    mw_http_feed(&r, good, strlen(good), &used);
    size_t n = mw_handshake_response(&r, NULL, out, sizeof(out));
    CHECK(n > 0);
    CHECK(strstr(out, "HTTP/1.1 101 Switching Protocols\r\n") == out);
    CHECK(strstr(out, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    CHECK(strstr(out, "\r\nUpgrade: websocket\r\n") != NULL);
    CHECK(n >= 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0);
    mw_http_request_free(&r);
}

static void test_refusals(void)
{
    const char *reason;
    CHECK_EQ_INT(validate(replace(good, "GET", "POST"), 8192, &reason), 400);
    CHECK_EQ_INT(validate(replace(good, "HTTP/1.1", "HTTP/1.0"), 8192, &reason), 400);
    CHECK_EQ_INT(validate(replace(good, "Upgrade: websocket", "Upgrade: h2c"), 8192, &reason), 400);
    CHECK_EQ_INT(validate(replace(good, "Upgrade: websocket\r\n", ""), 8192, &reason), 400);
    CHECK_EQ_INT(validate(replace(good, "keep-alive, Upgrade", "keep-alive"), 8192, &reason), 400);
    CHECK_EQ_INT(validate(replace(good, "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"), 8192, &reason), 426);
    CHECK_EQ_INT(validate(replace(good, "Sec-WebSocket-Version: 13\r\n", ""), 8192, &reason), 400);
    CHECK_EQ_INT(validate(replace(good, "dGhlIHNhbXBsZSBub25jZQ==", "short"), 8192, &reason), 400);
    CHECK_EQ_INT(validate(replace(good, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ"), 8192, &reason), 400);
    CHECK_EQ_INT(validate(replace(good, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 8192, &reason), 400);
    /* tokens are case-insensitive and trimmed */
    CHECK_EQ_INT(validate(replace(good, "Upgrade: websocket", "Upgrade: WebSocket"), 8192, &reason), 101);
    CHECK_EQ_INT(validate(replace(good, "keep-alive, Upgrade", " upgrade "), 8192, &reason), 101);
}

static void test_header_limit(void)
{
    const char *reason;
    /* the good request is ~170 bytes: a 100-byte limit must refuse it with 431 */
    CHECK_EQ_INT(validate(good, 100, &reason), 431);
    CHECK_EQ_INT(validate(good, strlen(good), &reason), 101);
    CHECK_EQ_INT(validate(good, strlen(good) - 1, &reason), 431);
    /* a head that never ends is refused once it passes the limit, not buffered */
    mw_http_request r;
    size_t used;
    mw_http_request_init(&r, 1024);
    mw_http_status st = MW_HTTP_NEED_MORE;
    char line[64];
    mw_http_feed(&r, "GET / HTTP/1.1\r\n", 16, &used);
    for (int i = 0; i < 100 && st == MW_HTTP_NEED_MORE; i++) {
        int n = snprintf(line, sizeof(line), "X-Filler-%d: aaaaaaaaaaaaaaaa\r\n", i);
        st = mw_http_feed(&r, line, (size_t)n, &used);
    }
    CHECK_EQ_INT(st, MW_HTTP_ERROR);
    CHECK_EQ_INT(r.error_status, 431);
    mw_http_request_free(&r);
}

static void test_malformed(void)
{
    const char *reason;
    CHECK_EQ_INT(validate("GARBAGE\r\n\r\n", 8192, &reason), 400);
    CHECK_EQ_INT(validate("GET /ws HTTP/1.1\r\nBad Header\r\n\r\n", 8192, &reason), 400);
}

static void test_pipelined_bytes(void)
{
    char buf[512];
    const unsigned char frame[] = { 0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2 };
    memcpy(buf, good, strlen(good));
    memcpy(buf + strlen(good), frame, sizeof(frame));
    mw_http_request r;
    size_t used;
    mw_http_request_init(&r, 8192);
    CHECK_EQ_INT(mw_http_feed(&r, buf, strlen(good) + sizeof(frame), &used), MW_HTTP_DONE);
    CHECK_EQ_INT(used, strlen(good)); /* the frame is left for the WebSocket */
    mw_http_request_free(&r);
}

int main(void)
{
    test_accept_key();
    test_valid_request_in_every_chunk_size();
    test_response();
    test_refusals();
    test_header_limit();
    test_malformed();
    test_pipelined_bytes();
    MW_TEST_DONE();
}
