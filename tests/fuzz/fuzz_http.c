/* fuzz_http: libFuzzer harness for the HTTP request/upgrade path: arbitrary bytes, fed in
 * fuzzer-chosen chunks, go through mw_http (llhttp), then as mw_conn does through the upgrade
 * checks (mw_handshake), the token lookup (?token= / Authorization: Bearer), the request as the
 * application sees it (without its credentials) and the answers.
 * Input: byte 0 picks the head limit, byte 1 the chunk size; the rest is the request. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "mw_handshake.h"
#include "mw_http.h"
#include "mw_jwt.h"

static const size_t head_limits[] = { 8192, 64, 512, 16384 }; /* 8192: maxHeaderBytes' default */

/* What mw_conn's handle_request does with a complete head, minus the sockets. */
static void handle_request(const mw_http_request *r)
{
    const char *path, *query, *reason = NULL;
    size_t path_len, query_len, len;
    mw_http_url_parts(r, &path, &path_len, &query, &query_len);
    FUZZ_ASSERT(path >= r->buf && path + path_len <= r->buf + r->buf_len);
    FUZZ_ASSERT(query >= r->buf && query + query_len <= r->buf + r->buf_len);
    const char *v = mw_http_header_value(r, "Upgrade", &len);
    FUZZ_ASSERT(!v || (v >= r->buf && v + len <= r->buf + r->buf_len));

    int status = mw_handshake_validate(r, &reason);
    char out[1024];
    if (status == 101) {
        FUZZ_ASSERT(reason == NULL);
        size_t n = mw_handshake_response(r, NULL, out, 512); /* mw_conn's buffer size */
        FUZZ_ASSERT(n > 0 && memcmp(out, "HTTP/1.1 101 ", 13) == 0);
    } else {
        FUZZ_ASSERT(reason && (status == 400 || status == 426));
        size_t n = mw_http_error_response(status, reason, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL,
                                          out, sizeof(out));
        FUZZ_ASSERT(n > 0);
    }

    /* the token, into mw_conn's buffer size and into a small one (the "too large" answer) */
    char token[MW_JWT_MAX_TOKEN + 1], small[16];
    long tlen = mw_http_find_token(r, token, sizeof(token));
    FUZZ_ASSERT(tlen >= -1 && tlen < (long)sizeof(token));
    if (tlen > 0)
        FUZZ_ASSERT(token[tlen] == '\0');
    long slen = mw_http_find_token(r, small, sizeof(small));
    FUZZ_ASSERT(slen >= -1 && slen < (long)sizeof(small));
    FUZZ_ASSERT(slen == -1 ? tlen == -1 || tlen >= (long)sizeof(small) - 1 : slen == tlen);
    if (slen > 0)
        FUZZ_ASSERT(memcmp(small, token, (size_t)slen + 1) == 0);

    /* what the application sees (mw_lvm's push_request): the query without its token
     * parameters, never longer than the query; measured without a buffer, the token has the
     * length the lookup found */
    mw_http_credentials cred;
    char *rest = malloc(query_len ? query_len : 1);
    FUZZ_ASSERT(rest != NULL);
    mw_http_credentials_read(r, NULL, 0, rest, &cred);
    FUZZ_ASSERT(cred.query_len <= query_len);
    FUZZ_ASSERT(tlen == -1 ? cred.token_len >= (long)sizeof(token) - 1 : cred.token_len == tlen);
    for (int i = 0; i < r->n_headers; i++)
        FUZZ_ASSERT(cred.hide[i] == 0 || cred.hide[i] == 1);
    free(rest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_head = head_limits[data[0] & 3];
    size_t chunk = data[1] ? data[1] : size; /* 0: all at once */
    const char *req = (const char *)data + 2;
    size_t len = size - 2;

    mw_http_request r;
    if (mw_http_request_init(&r, max_head) != 0)
        return 0;
    mw_http_status st = MW_HTTP_NEED_MORE;
    size_t off = 0, used = 0;
    while (off < len && st == MW_HTTP_NEED_MORE) {
        size_t n = len - off < chunk ? len - off : chunk;
        st = mw_http_feed(&r, req + off, n, &used);
        FUZZ_ASSERT(used <= n);
        if (st == MW_HTTP_NEED_MORE)
            FUZZ_ASSERT(used == n); /* nothing is dropped before the head is complete */
        off += n;
    }
    if (st == MW_HTTP_DONE) {
        FUZZ_ASSERT(r.complete && r.head_bytes <= max_head && r.buf_len <= r.buf_cap);
        FUZZ_ASSERT(r.url_off + (size_t)r.url_len <= r.buf_len);
        for (int i = 0; i < r.n_headers; i++) {
            const mw_http_header *h = &r.headers[i];
            FUZZ_ASSERT(h->name_off + (size_t)h->name_len <= r.buf_len);
            FUZZ_ASSERT(h->value_off + (size_t)h->value_len <= r.buf_len);
        }
        /* the bytes after the head belong to the WebSocket stream; feeding more changes nothing */
        size_t again = 1;
        FUZZ_ASSERT(mw_http_feed(&r, "x", 1, &again) == MW_HTTP_DONE && again == 0);
        handle_request(&r);
    } else if (st == MW_HTTP_ERROR) {
        FUZZ_ASSERT(r.error_status == 400 || r.error_status == 431);
        char out[1024];
        FUZZ_ASSERT(mw_http_error_response(r.error_status, r.error_reason, NULL, out, sizeof(out)) > 0);
    }
    mw_http_request_free(&r);
    return 0;
}
