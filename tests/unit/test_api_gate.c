/* Unit tests for mw_api_gate and mw_http's bodies: the key comparison (equal, shorter, longer,
 * empty), the Authorization header forms, the per-address token bucket (burst, refill, ports
 * ignored, addresses apart), and request bodies: kept whole in any chunking, a declared or a
 * chunked body over the limit refused with 413 after the head, Expect: 100-continue seen. */
#include <stdlib.h>

#include "mw_api_gate.h"
#include "mw_http.h"
#include "mw_test.h"

static void test_key_equal(void)
{
    const char *key = "0123456789abcdef";
    CHECK(mw_api_key_equal(key, 16, "0123456789abcdef", 16));
    CHECK(!mw_api_key_equal(key, 16, "0123456789abcdeg", 16));
    CHECK(!mw_api_key_equal(key, 16, "0123456789abcde", 15));
    CHECK(!mw_api_key_equal(key, 16, "0123456789abcdef0", 17));
    CHECK(!mw_api_key_equal(key, 16, "0123456789abcdef0123456789abcdef", 32)); /* repeated */
    CHECK(!mw_api_key_equal(key, 16, "", 0));
    CHECK(!mw_api_key_equal("", 0, "", 0));
}

static int authorized(const char *header_line)
{
    char req[512];
    snprintf(req, sizeof(req), "POST /api/stats HTTP/1.1\r\nHost: x\r\n%s\r\n", header_line);
    mw_http_request r;
    size_t used;
    mw_http_request_init(&r, 8192);
    mw_http_status st = mw_http_feed(&r, req, strlen(req), &used);
    CHECK_EQ_INT(st, MW_HTTP_DONE);
    int ok = mw_api_authorized(&r, "0123456789abcdef", 16);
    mw_http_request_free(&r);
    return ok;
}

static void test_authorization_header(void)
{
    CHECK(authorized("Authorization: apikey 0123456789abcdef\r\n"));
    CHECK(authorized("Authorization: ApiKey    0123456789abcdef  \r\n"));
    CHECK(!authorized("Authorization: Bearer 0123456789abcdef\r\n"));
    CHECK(!authorized("Authorization: apikey0123456789abcdef\r\n"));
    CHECK(!authorized("Authorization: apikey 0123456789abcde\r\n"));
    CHECK(!authorized("Authorization: apikey\r\n"));
    CHECK(!authorized("X-Api-Key: 0123456789abcdef\r\n"));
}

static void test_rate(void)
{
    mw_api_rate r;
    CHECK_EQ_INT(mw_api_rate_init(&r, 10, 1, 3), 0);
    /* a burst of 3, then refused; the port does not matter */
    CHECK(mw_api_rate_take(&r, "10.0.0.1:1000", 1000));
    CHECK(mw_api_rate_take(&r, "10.0.0.1:1001", 1000));
    CHECK(mw_api_rate_take(&r, "10.0.0.1:1002", 1000));
    CHECK(!mw_api_rate_take(&r, "10.0.0.1:1003", 1000));
    /* another address has its own bucket */
    CHECK(mw_api_rate_take(&r, "10.0.0.2:1000", 1000));
    CHECK(mw_api_rate_take(&r, "[::1]:5", 1000));
    /* 10 per second: one more after 100 ms, not before */
    CHECK(!mw_api_rate_take(&r, "10.0.0.1:1", 1050));
    CHECK(mw_api_rate_take(&r, "10.0.0.1:1", 1150));
    CHECK(!mw_api_rate_take(&r, "10.0.0.1:1", 1150));
    /* a long pause refills up to the burst only */
    int n = 0;
    while (mw_api_rate_take(&r, "10.0.0.1:1", 100000))
        n++;
    CHECK_EQ_INT(n, 3);
    mw_api_rate_free(&r);
}

/* Feeds req (len bytes) in chunks; returns the final status. */
static mw_http_status feed(mw_http_request *r, const char *req, size_t len, size_t chunk)
{
    mw_http_status st = MW_HTTP_NEED_MORE;
    for (size_t off = 0; off < len && st == MW_HTTP_NEED_MORE; off += chunk) {
        size_t used, n = len - off < chunk ? len - off : chunk;
        st = mw_http_feed(r, req + off, n, &used);
    }
    return st;
}

static void test_bodies(void)
{
    static const char req[] = "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"room\":1}\n";
    for (size_t chunk = 1; chunk <= sizeof(req); chunk += 5) {
        mw_http_request r;
        mw_http_request_init(&r, 8192);
        mw_http_request_set_max_body(&r, 1024);
        CHECK_EQ_INT(feed(&r, req, sizeof(req) - 1, chunk), MW_HTTP_DONE);
        CHECK_EQ_INT(r.body_len, 11);
        CHECK(r.body && memcmp(r.body, "{\"room\":1}\n", 11) == 0);
        mw_http_request_free(&r);
    }
    /* declared over the limit: refused after the head, before any body byte */
    static const char big[] = "POST /api/publish HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1025\r\n\r\n";
    mw_http_request r;
    mw_http_request_init(&r, 8192);
    mw_http_request_set_max_body(&r, 1024);
    CHECK_EQ_INT(feed(&r, big, sizeof(big) - 1, 4096), MW_HTTP_ERROR);
    CHECK_EQ_INT(r.error_status, 413);
    CHECK(r.head_complete && r.expect_continue);
    CHECK_EQ_INT(r.body_len, 0);
    mw_http_request_free(&r);
    /* chunked, growing over the limit */
    mw_http_request_init(&r, 8192);
    mw_http_request_set_max_body(&r, 1024);
    static const char head[] = "POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK_EQ_INT(feed(&r, head, sizeof(head) - 1, 4096), MW_HTTP_NEED_MORE);
    CHECK(!r.expect_continue);
    char chunk[600 + 16];
    int n = snprintf(chunk, sizeof(chunk), "258\r\n");
    memset(chunk + n, 'a', 600);
    memcpy(chunk + n + 600, "\r\n", 2);
    CHECK_EQ_INT(feed(&r, chunk, (size_t)n + 602, 4096), MW_HTTP_NEED_MORE);
    CHECK_EQ_INT(feed(&r, chunk, (size_t)n + 602, 4096), MW_HTTP_ERROR);
    CHECK_EQ_INT(r.error_status, 413);
    mw_http_request_free(&r);
    /* without a body limit a body still counts against the head limit (as before) */
    mw_http_request_init(&r, 64);
    static const char small[] = "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n";
    char whole[256];
    n = snprintf(whole, sizeof(whole), "%s", small);
    memset(whole + n, 'b', 100);
    CHECK_EQ_INT(feed(&r, whole, (size_t)n + 100, 4096), MW_HTTP_ERROR);
    CHECK_EQ_INT(r.error_status, 431);
    mw_http_request_free(&r);
}

int main(void)
{
    test_key_equal();
    test_authorization_header();
    test_rate();
    test_bodies();
    MW_TEST_DONE();
}
