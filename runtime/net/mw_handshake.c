/* mw_handshake: the checks of RFC 6455 section 4.2.1, in the order that gives the most useful
 * refusal, and the accept key (SHA-1 from OpenSSL: the runtime links libcrypto through libjwt). */
#include "mw_handshake.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "mw_util.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void mw_handshake_accept_key(const char *key, size_t key_len, char out[MW_ACCEPT_KEY_LEN + 1])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    if (!sha || !EVP_DigestInit_ex(sha, EVP_sha1(), NULL) || !EVP_DigestUpdate(sha, key, key_len) ||
        !EVP_DigestUpdate(sha, ws_guid, sizeof(ws_guid) - 1) ||
        !EVP_DigestFinal_ex(sha, digest, &digest_len)) {
        memset(digest, 0, sizeof(digest));
        digest_len = 20;
    }
    EVP_MD_CTX_free(sha);
    mw_base64_encode(digest, digest_len, out);
    out[MW_ACCEPT_KEY_LEN] = '\0';
}

static int trimmed_equals(const char *v, size_t len, const char *want)
{
    v = mw_trim_ows(v, &len);
    return len == strlen(want) && memcmp(v, want, len) == 0;
}

/* The Sec-WebSocket-Key value without its optional whitespace, or NULL when there is none. */
static const char *ws_key(const mw_http_request *r, size_t *len)
{
    const char *v = mw_http_header_value(r, "Sec-WebSocket-Key", len);
    return v ? mw_trim_ows(v, len) : NULL;
}

int mw_handshake_validate(const mw_http_request *r, const char **reason)
{
    size_t len;
    const char *v;
    if (mw_http_method(r) != HTTP_GET) {
        *reason = "A WebSocket upgrade must be a GET request";
        return 400;
    }
    if (!mw_http_version_at_least_11(r)) {
        *reason = "A WebSocket upgrade needs HTTP/1.1";
        return 400;
    }
    if (!mw_http_header_has_token(r, "Upgrade", "websocket")) {
        *reason = "Expected the header Upgrade: websocket";
        return 400;
    }
    if (!mw_http_header_has_token(r, "Connection", "upgrade")) {
        *reason = "Expected Upgrade in the Connection header";
        return 400;
    }
    v = mw_http_header_value(r, "Sec-WebSocket-Version", &len);
    if (!v) {
        *reason = "Missing Sec-WebSocket-Version header";
        return 400;
    }
    if (!trimmed_equals(v, len, "13")) {
        *reason = "Unsupported WebSocket version; this server speaks version 13";
        return 426;
    }
    v = ws_key(r, &len);
    if (!v || mw_base64_decoded_len(v, len) != 16) {
        *reason = "Sec-WebSocket-Key must be the base64 encoding of 16 bytes";
        return 400;
    }
    *reason = NULL;
    return 101;
}

size_t mw_handshake_response(const mw_http_request *r, const char *extensions, char *out, size_t size)
{
    size_t len;
    char accept[MW_ACCEPT_KEY_LEN + 1];
    const char *key = ws_key(r, &len);
    if (!key)
        return 0;
    mw_handshake_accept_key(key, len, accept);
    int n = snprintf(out, size,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s%s%s"
                     "\r\n",
                     accept, extensions ? "Sec-WebSocket-Extensions: " : "", extensions ? extensions : "",
                     extensions ? "\r\n" : "");
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

const char *mw_http_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

size_t mw_http_error_response(int status, const char *reason, const char *extra_headers,
                              char *out, size_t size)
{
    char body[512];
    int blen = snprintf(body, sizeof(body), "%d %s%s%s\n", status, mw_http_status_text(status),
                        reason ? ": " : "", reason ? reason : "");
    if (blen < 0)
        return 0;
    if ((size_t)blen >= sizeof(body))
        blen = (int)sizeof(body) - 1;
    int n = snprintf(out, size,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %d\r\n"
                     "%s"
                     "Connection: close\r\n"
                     "\r\n"
                     "%.*s",
                     status, mw_http_status_text(status), blen, extra_headers ? extra_headers : "",
                     blen, body);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}
