/* Unit test for the token lookup (mw_http_find_token), the one place that reads a token from an
 * upgrade request: "?token=" first (percent-decoded, an empty one falls through), else
 * "Authorization: Bearer"; a token that does not fit is reported, never cut. Links mw_net. */
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

int main(void)
{
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
