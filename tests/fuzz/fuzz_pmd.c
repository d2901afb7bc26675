/* fuzz_pmd: libFuzzer harness for permessage-deflate negotiation (mw_pmd). The input, split at
 * '\n', is the values of successive Sec-WebSocket-Extensions header lines. Each value goes to
 * mw_pmd_negotiate, and the whole request (made of those lines) through mw_http to
 * mw_pmd_negotiate_request. Checked: an answer is written exactly when an offer is accepted,
 * fits its buffer and starts with both no_context_takeover parameters; an answer read back as
 * an offer is accepted with the same answer; the request's answer is that of the first line
 * that has one. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "mw_http.h"
#include "mw_pmd.h"

#define BASE "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
#define MAX_LINES 8

static int check_answer(int ok, const char *out)
{
    FUZZ_ASSERT(ok == 0 || ok == 1);
    FUZZ_ASSERT(strlen(out) < MW_PMD_RESPONSE_MAX);
    FUZZ_ASSERT(ok == (out[0] != '\0'));
    if (!ok)
        return 0;
    FUZZ_ASSERT(strncmp(out, BASE, strlen(BASE)) == 0);
    char again[MW_PMD_RESPONSE_MAX];
    FUZZ_ASSERT(mw_pmd_negotiate(out, strlen(out), again) == 1);
    FUZZ_ASSERT(strcmp(out, again) == 0);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char first[MW_PMD_RESPONSE_MAX] = "", out[MW_PMD_RESPONSE_MAX];
    static char req[1 << 16];
    size_t rlen = (size_t)snprintf(req, sizeof(req), "GET /ws HTTP/1.1\r\nHost: x\r\n");
    int lines = 0, usable = 1;
    size_t off = 0;
    while (off <= size && lines < MAX_LINES) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
        const char *value = (const char *)data + off;
        if (check_answer(mw_pmd_negotiate(value, len, out), out) && first[0] == '\0')
            memcpy(first, out, sizeof(out));
        /* the same value as a header line, when HTTP can carry it as it is */
        for (size_t i = 0; i < len; i++)
            if (value[i] == '\r' || value[i] == '\0' || (unsigned char)value[i] == 0x7f ||
                ((unsigned char)value[i] < 0x20 && value[i] != '\t'))
                usable = 0;
        if (len > 0 && (value[0] == ' ' || value[0] == '\t' || value[len - 1] == ' ' || value[len - 1] == '\t'))
            usable = 0; /* llhttp trims a value's outer whitespace: the value would differ */
        if (rlen + len + 40 < sizeof(req))
            rlen += (size_t)snprintf(req + rlen, sizeof(req) - rlen, "Sec-WebSocket-Extensions: %.*s\r\n", (int)len,
                                     value);
        else
            usable = 0;
        lines++;
        if (!nl)
            break;
        off += len + 1;
    }
    if (off < size && lines == MAX_LINES)
        usable = 0;
    rlen += (size_t)snprintf(req + rlen, sizeof(req) - rlen, "\r\n");
    mw_http_request r;
    FUZZ_ASSERT(mw_http_request_init(&r, sizeof(req)) == 0);
    size_t used;
    if (mw_http_feed(&r, req, rlen, &used) == MW_HTTP_DONE) {
        int ok = mw_pmd_negotiate_request(&r, out);
        check_answer(ok, out);
        if (usable)
            FUZZ_ASSERT(strcmp(out, first) == 0);
    }
    mw_http_request_free(&r);
    return 0;
}
