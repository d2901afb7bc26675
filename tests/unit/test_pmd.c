/* Unit tests for mw_pmd, permessage-deflate negotiation: a Sec-WebSocket-Extensions value in,
 * the answer out (or none). Also the same through a parsed request with several header lines. */
#include <stdlib.h>

#include "mw_http.h"
#include "mw_pmd.h"
#include "mw_test.h"

#define BASE "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

/* The answer to value, or "-" when nothing was accepted. */
static const char *answer(const char *value)
{
    static char out[MW_PMD_RESPONSE_MAX];
    int ok = mw_pmd_negotiate(value, strlen(value), out);
    if (ok != (out[0] != '\0'))
        return "inconsistent";
    return ok ? out : "-";
}

static void test_accepted(void)
{
    CHECK_EQ_STR(answer("permessage-deflate"), BASE);
    /* what browsers and python websockets send */
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits"), BASE);
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits=10"), BASE "; client_max_window_bits=10");
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits=8"), BASE "; client_max_window_bits=8");
    CHECK_EQ_STR(answer("permessage-deflate; server_max_window_bits=15"), BASE "; server_max_window_bits=15");
    CHECK_EQ_STR(answer("permessage-deflate;server_no_context_takeover;client_no_context_takeover"), BASE);
    CHECK_EQ_STR(answer("  permessage-deflate ;  client_no_context_takeover  "), BASE);
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits=\"12\""), BASE "; client_max_window_bits=12");
    CHECK_EQ_STR(answer("Permessage-Deflate; Server_No_Context_Takeover"), BASE);
    /* Autobahn's default offer */
    CHECK_EQ_STR(answer("permessage-deflate; client_no_context_takeover; client_max_window_bits"), BASE);
    CHECK_EQ_STR(answer("permessage-deflate; server_max_window_bits=15; client_max_window_bits=9"),
                 BASE "; server_max_window_bits=15; client_max_window_bits=9");
    /* the longest answer (found by fuzz_pmd when the buffer was one byte short) */
    CHECK_EQ_STR(answer("permessage-deflate; server_max_window_bits=15; client_max_window_bits=10"),
                 BASE "; server_max_window_bits=15; client_max_window_bits=10");
}

static void test_declined(void)
{
    CHECK_EQ_STR(answer(""), "-");
    CHECK_EQ_STR(answer("x-webkit-deflate-frame"), "-");
    CHECK_EQ_STR(answer("permessage-bzip2"), "-");
    /* a smaller server window: a broadcast is compressed once, with 15, for everybody */
    CHECK_EQ_STR(answer("permessage-deflate; server_max_window_bits=10"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; server_max_window_bits=8"), "-");
    /* invalid offers */
    CHECK_EQ_STR(answer("permessage-deflate; server_max_window_bits"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; server_max_window_bits=16"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; server_max_window_bits=015"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits=7"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits=16"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits=abc"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits=\"\""), "-");
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits=\"1 0\""), "-");
    CHECK_EQ_STR(answer("permessage-deflate; server_no_context_takeover=1"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; client_no_context_takeover=true"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; server_no_context_takeover; server_no_context_takeover"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits; client_max_window_bits=10"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; foo"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; foo=bar"), "-");
    /* syntax errors */
    CHECK_EQ_STR(answer("permessage-deflate;"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; ;"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits="), "-");
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits=\"10"), "-");
    CHECK_EQ_STR(answer("permessage-deflate client_no_context_takeover"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; a=b=c"), "-");
    CHECK_EQ_STR(answer("@permessage-deflate"), "-");
    CHECK_EQ_STR(answer(", ,"), "-");
}

static void test_first_acceptable_of_a_list(void)
{
    CHECK_EQ_STR(answer("permessage-deflate; server_max_window_bits=10, permessage-deflate"), BASE);
    CHECK_EQ_STR(answer("foo, permessage-deflate; foo, permessage-deflate; client_max_window_bits=11"),
                 BASE "; client_max_window_bits=11");
    /* Autobahn 13.7: (True, 9), (True, 0), (False, 0) */
    CHECK_EQ_STR(answer("permessage-deflate; client_no_context_takeover; client_max_window_bits; "
                        "server_no_context_takeover; server_max_window_bits=9, "
                        "permessage-deflate; client_no_context_takeover; client_max_window_bits; "
                        "server_no_context_takeover, "
                        "permessage-deflate; client_no_context_takeover; client_max_window_bits"),
                 BASE);
    CHECK_EQ_STR(answer("permessage-deflate; client_max_window_bits=9, permessage-deflate"),
                 BASE "; client_max_window_bits=9");
    CHECK_EQ_STR(answer(",permessage-deflate,"), BASE);
    /* a syntax error ends the list: what follows it is not read */
    CHECK_EQ_STR(answer("foo;;, permessage-deflate"), "-");
    CHECK_EQ_STR(answer("permessage-deflate; x=\"a,b\", permessage-deflate"), BASE);
}

/* Through the HTTP parser: every Sec-WebSocket-Extensions line, in order. */
static void test_request_headers(void)
{
    static const char head[] = "GET /ws HTTP/1.1\r\nHost: x\r\n%s\r\n";
    static const char *cases[][2] = {
        { "", "-" },
        { "Sec-WebSocket-Extensions: permessage-deflate\r\n", BASE },
        { "Sec-WebSocket-Extensions: foo\r\nsec-websocket-extensions: permessage-deflate; client_max_window_bits=12\r\n",
          BASE "; client_max_window_bits=12" },
        { "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9\r\n"
          "Sec-WebSocket-Extensions: permessage-deflate; foo\r\n",
          "-" },
        { "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9\r\n"
          "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=15\r\n",
          BASE "; server_max_window_bits=15" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[1024], out[MW_PMD_RESPONSE_MAX];
        snprintf(req, sizeof(req), head, cases[i][0]);
        mw_http_request r;
        size_t used;
        CHECK_EQ_INT(mw_http_request_init(&r, 8192), 0);
        CHECK_EQ_INT(mw_http_feed(&r, req, strlen(req), &used), MW_HTTP_DONE);
        int ok = mw_pmd_negotiate_request(&r, out);
        CHECK_EQ_STR(ok ? out : "-", cases[i][1]);
        mw_http_request_free(&r);
    }
}

int main(void)
{
    test_accepted();
    test_declined();
    test_first_acceptable_of_a_list();
    test_request_headers();
    MW_TEST_DONE();
}
