/* mw_http: parses one HTTP/1.1 request with llhttp, fed in arbitrary chunks, keeping the URL
 * and headers in a buffer bounded by maxHeaderBytes (llhttp itself has no limit) and, when a body
 * limit is set, the body in a buffer bounded by it (a longer declared body is refused at once). */
#ifndef MW_HTTP_H
#define MW_HTTP_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

#define MW_HTTP_MAX_HEADERS 100
#define MW_HTTP_API_MAX_BODY (1024u * 1024u) /* the HTTP API's body limit (DESIGN 16) */

typedef struct mw_http_header {
    uint32_t name_off, name_len, value_off, value_len;
} mw_http_header;

typedef enum { MW_HTTP_NEED_MORE = 0, MW_HTTP_DONE = 1, MW_HTTP_ERROR = -1 } mw_http_status;

typedef struct mw_http_request {
    llhttp_t parser;
    char *buf;          /* URL and header bytes; grows up to the head limit */
    size_t buf_len, buf_cap;
    size_t head_bytes;  /* bytes fed so far, counted against the limit */
    size_t max_head;
    uint32_t url_off, url_len;
    mw_http_header headers[MW_HTTP_MAX_HEADERS];
    int n_headers;
    int last_was_value;
    int complete;
    int error_status;   /* 400, 413 or 431 once MW_HTTP_ERROR was returned */
    const char *error_reason;
    int head_complete;  /* the head is parsed (the body, if any, follows) */
    int expect_continue; /* the head asked for "Expect: 100-continue" */
    size_t max_body;    /* 0: a body is not kept (its bytes count against the head limit) */
    char *body;         /* the body so far (malloc'd, grown up to max_body) */
    size_t body_len, body_cap;
} mw_http_request;

/* Returns 0 or -1 when memory is short. max_head bounds request line plus headers. */
int mw_http_request_init(mw_http_request *r, size_t max_head);
void mw_http_request_free(mw_http_request *r);
/* Keeps request bodies of up to max_body bytes (call before feeding): a body declared longer
 * (Content-Length) or growing longer (chunked) ends the parse with error_status 413, head_complete
 * set, before the rest of it is read. */
void mw_http_request_set_max_body(mw_http_request *r, size_t max_body);

/* Feeds bytes. On MW_HTTP_DONE, *consumed is how many of them belonged to the request; the rest
 * (pipelined bytes, e.g. the first WebSocket frames) belong to whatever follows. */
mw_http_status mw_http_feed(mw_http_request *r, const char *data, size_t len, size_t *consumed);

/* First value of a header (case-insensitive name) or NULL. */
const char *mw_http_header_value(const mw_http_request *r, const char *name, size_t *len);
/* Whether any header called name holds token in its comma-separated list (case-insensitive). */
int mw_http_header_has_token(const mw_http_request *r, const char *name, const char *token);
/* The URL's path (before '?') and query (after it, may be empty). */
void mw_http_url_parts(const mw_http_request *r, const char **path, size_t *path_len,
                       const char **query, size_t *query_len);
int mw_http_method(const mw_http_request *r); /* llhttp_method_t */
int mw_http_version_at_least_11(const mw_http_request *r);
/* A request's credentials, read in one walk: the only code that knows where a token may be.
 * The token is the first non-empty "?token=" parameter (percent-decoded, '+' a space; an empty
 * one falls through), else the first Authorization header's "Bearer" value (trimmed). What the
 * application may see of the request leaves every credential out: the query without any token=
 * parameter (empty ones too; empty parameters are dropped and the rest joined by '&'), and no
 * Authorization header at all. */
typedef struct mw_http_credentials {
    long token_len;   /* the token's length (0: none), or -1 when it does not fit in cap */
    size_t query_len; /* the length of the query without its token parameters */
    uint8_t hide[MW_HTTP_MAX_HEADERS]; /* hide[i] (i < n_headers): headers[i] is a credential */
} mw_http_credentials;

/* Fills *out. token (cap bytes) gets the token NUL-terminated; query (room for the whole query,
 * mw_http_url_parts' query_len bytes) gets the query without its token parameters, not
 * NUL-terminated. Either may be NULL: then the token is only measured (never -1), the query only
 * counted. */
void mw_http_credentials_read(const mw_http_request *r, char *token, size_t cap, char *query,
                              mw_http_credentials *out);
/* Just the token (mw_http_credentials_read's token_len): copies it NUL-terminated into out;
 * returns its length (0: none) or -1 when it does not fit in cap bytes with its NUL. */
long mw_http_find_token(const mw_http_request *r, char *out, size_t cap);

#endif
