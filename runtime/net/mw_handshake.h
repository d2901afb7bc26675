/* mw_handshake: RFC 6455 opening handshake: validates an upgrade request and builds the
 * 101 answer. Pure functions, tested without sockets. */
#ifndef MW_HANDSHAKE_H
#define MW_HANDSHAKE_H

#include <stddef.h>

#include "mw_http.h"

#define MW_ACCEPT_KEY_LEN 28

/* Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)). out gets 28 chars + NUL. */
void mw_handshake_accept_key(const char *key, size_t key_len, char out[MW_ACCEPT_KEY_LEN + 1]);

/* Checks an upgrade request made to the WebSocket path. Returns 101 when it is valid, else the
 * HTTP status to refuse it with (400, or 426 for a wrong Sec-WebSocket-Version) and a reason. */
int mw_handshake_validate(const mw_http_request *r, const char **reason);

/* Writes the 101 response for a validated request into out; returns its length or 0.
 * extensions: the Sec-WebSocket-Extensions value to answer with (mw_pmd), or NULL for none. */
size_t mw_handshake_response(const mw_http_request *r, const char *extensions, char *out, size_t size);

/* Writes a complete error response ("HTTP/1.1 400 Bad Request" ...) with a short text body and
 * Connection: close; extra_headers (may be NULL) are "Name: value\r\n" lines. */
size_t mw_http_error_response(int status, const char *reason, const char *extra_headers,
                              char *out, size_t size);
const char *mw_http_status_text(int status);

#endif
