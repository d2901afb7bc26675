/* Unit test for the token lookup (mw_http_credentials_read and its mw_http_find_token), the one
 * place that reads a token from an upgrade request: "?token=" first (percent-decoded, an empty
 * one falls through), else "Authorization: Bearer"; a token that does not fit is reported, never
 * cut. The same walk gives what the application sees: the query without any token= parameter
 * and which headers to hide (every Authorization header). Links mw_net. */
#include "mw_http.h"
#include "mw_test.h"

/* Parses "GET target HTTP/1.1" with the extra header lines and looks the token up into a buffer
 * of cap bytes; *out gets the token. Returns mw_http_find_token's result (-2: did not parse). */
static long lookup(const char *target, const char *headers, size_t cap, char *out)
{
    char req[2048];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", target, headers);
    mw_http_request r;
    size_t used;
    long rv = -2;
    out[0] = '\0';
    if (mw_http_request_init(&r, 8192) != 0)
        return rv;
    if (mw_http_feed(&r, req, strlen(req), &used) == MW_HTTP_DONE)
        rv = mw_http_find_token(&r, out, cap);
    mw_http_request_free(&r);
    return rv;
}

/* Reads the credentials of "GET target HTTP/1.1" with the extra header lines: *query gets the
 * query the application sees (NUL-terminated), *hidden the names of the hidden headers joined by
 * ','. Returns token_len (-2: did not parse); with measure_only, no token buffer is given. */
static long credentials(const char *target, const char *headers, int measure_only, char *query,
                        char *hidden)
{
    char req[2048], token[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", target, headers);
    mw_http_request r;
    mw_http_credentials c;
    size_t used;
    long rv = -2;
    query[0] = hidden[0] = '\0';
    if (mw_http_request_init(&r, 8192) != 0)
        return rv;
    if (mw_http_feed(&r, req, strlen(req), &used) == MW_HTTP_DONE) {
        memset(&c, 0xAA, sizeof(c));
        mw_http_credentials_read(&r, measure_only ? NULL : token, sizeof(token), query, &c);
        rv = c.token_len;
        query[c.query_len] = '\0';
        for (int i = 0; i < r.n_headers; i++) {
            if (!c.hide[i])
                continue;
            if (hidden[0])
                strcat(hidden, ",");
            strncat(hidden, r.buf + r.headers[i].name_off, r.headers[i].name_len);
        }
        /* counting without a buffer gives the same length */
        mw_http_credentials_read(&r, NULL, 0, NULL, &c);
        CHECK_EQ_INT(c.query_len, strlen(query));
    }
    mw_http_request_free(&r);
    return rv;
}

static void test_credentials(void)
{
    char q[512], h[512];
    /* every token= parameter leaves the query, empty ones too; empty parameters are dropped */
    CHECK_EQ_INT(credentials("/ws?room=1&token=abc&x=2", "", 0, q, h), 3);
    CHECK_EQ_STR(q, "room=1&x=2");
    CHECK_EQ_INT(credentials("/ws?token=a&token=b&token=&y=%41", "", 0, q, h), 1);
    CHECK_EQ_STR(q, "y=%41");
    CHECK_EQ_INT(credentials("/ws?&a=1&&b=2&", "", 0, q, h), 0);
    CHECK_EQ_STR(q, "a=1&b=2");
    CHECK_EQ_INT(credentials("/ws?xtoken=1&Token=2&token", "", 0, q, h), 0); /* not token parameters */
    CHECK_EQ_STR(q, "xtoken=1&Token=2&token");
    CHECK_EQ_INT(credentials("/ws", "", 0, q, h), 0);
    CHECK_EQ_STR(q, "");
    CHECK_EQ_STR(h, "");
    CHECK_EQ_INT(credentials("/ws?", "", 0, q, h), 0);
    CHECK_EQ_STR(q, "");

    /* every Authorization header is hidden, bearer or not, used or not */
    CHECK_EQ_INT(credentials("/ws?a=1", "Authorization: Bearer t\r\nX-A: 1\r\nauthorization: Basic x\r\n", 0, q, h), 1);
    CHECK_EQ_STR(q, "a=1");
    CHECK_EQ_STR(h, "Authorization,authorization");
    CHECK_EQ_INT(credentials("/ws?token=q", "AUTHORIZATION: Bearer t\r\nAuthorization-X: 1\r\n", 0, q, h), 1);
    CHECK_EQ_STR(q, "");
    CHECK_EQ_STR(h, "AUTHORIZATION");
    /* only the first Authorization header counts for the token */
    CHECK_EQ_INT(credentials("/ws", "Authorization: Basic x\r\nAuthorization: Bearer t\r\n", 0, q, h), 0);

    /* without a buffer the token is only measured, whatever its size */
    CHECK_EQ_INT(credentials("/ws?token=a%2Eb&k=v", "", 1, q, h), 3);
    CHECK_EQ_STR(q, "k=v");
    CHECK_EQ_INT(credentials("/ws", "Authorization: Bearer  abc \r\n", 1, q, h), 3);
    CHECK_EQ_STR(h, "Authorization");
}

int main(void)
{
    test_credentials();
    char t[256];
    CHECK_EQ_INT(lookup("/ws", "", sizeof(t), t), 0); /* none */
    CHECK_EQ_INT(lookup("/ws?token=abc.def", "", sizeof(t), t), 7);
    CHECK_EQ_STR(t, "abc.def");
    CHECK_EQ_INT(lookup("/ws?room=1&token=abc&x=2", "", sizeof(t), t), 3); /* not the first parameter */
    CHECK_EQ_STR(t, "abc");
    CHECK_EQ_INT(lookup("/ws?xtoken=abc", "", sizeof(t), t), 0); /* only the exact name */
    CHECK_EQ_INT(lookup("/ws?token=a%2Eb%2ec+d%zz", "", sizeof(t), t), 10); /* %XX and + decoded, bad % kept */
    CHECK_EQ_STR(t, "a.b.c d%zz");
    CHECK_EQ_INT(lookup("/ws?token=first&token=second", "", sizeof(t), t), 5); /* the first one */
    CHECK_EQ_STR(t, "first");

    CHECK_EQ_INT(lookup("/ws", "Authorization: Bearer hdr.tok\r\n", sizeof(t), t), 7);
    CHECK_EQ_STR(t, "hdr.tok");
    CHECK_EQ_INT(lookup("/ws", "authorization: bearer \t spaced \t\r\n", sizeof(t), t), 6); /* any case, trimmed */
    CHECK_EQ_STR(t, "spaced");
    CHECK_EQ_INT(lookup("/ws", "Authorization: Basic dXNlcjpwYXNz\r\n", sizeof(t), t), 0); /* not a bearer */
    CHECK_EQ_INT(lookup("/ws", "Authorization: Bearer \r\n", sizeof(t), t), 0); /* no value */
    /* the query wins over the header; an empty query token falls through to it */
    CHECK_EQ_INT(lookup("/ws?token=q", "Authorization: Bearer h\r\n", sizeof(t), t), 1);
    CHECK_EQ_STR(t, "q");
    CHECK_EQ_INT(lookup("/ws?token=", "Authorization: Bearer h\r\n", sizeof(t), t), 1);
    CHECK_EQ_STR(t, "h");
    CHECK_EQ_INT(lookup("/ws?token=&a=1", "", sizeof(t), t), 0);

    /* too large for the buffer (the token and its NUL): reported, not cut */
    CHECK_EQ_INT(lookup("/ws?token=12345", "", 6, t), 5); /* fits exactly */
    CHECK_EQ_INT(lookup("/ws?token=123456", "", 6, t), -1);
    CHECK_EQ_INT(lookup("/ws", "Authorization: Bearer 12345\r\n", 6, t), 5);
    CHECK_EQ_INT(lookup("/ws", "Authorization: Bearer 123456\r\n", 6, t), -1);
    MW_TEST_DONE();
}
