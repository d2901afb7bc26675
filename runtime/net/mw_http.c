/* mw_http: a request-head parser on llhttp. Bytes are counted against the head limit before any
 * is stored, so a peer cannot make us buffer more than maxHeaderBytes. */
#include "mw_http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mw_util.h"

static mw_http_request *req_of(llhttp_t *p) { return (mw_http_request *)p->data; }

/* The buffer starts small and doubles up to the head limit: a typical upgrade request is a few
 * hundred bytes, and every handshake in progress holds its buffer (memory per connection). */
#define MW_HTTP_BUF_START 1024

static int append(mw_http_request *r, const char *at, size_t len)
{
    if (r->buf_len + len > r->max_head) {
        r->error_status = 431;
        r->error_reason = "Request header fields too large";
        return -1;
    }
    if (r->buf_len + len > r->buf_cap) {
        size_t cap = r->buf_cap * 2;
        while (cap < r->buf_len + len)
            cap *= 2;
        if (cap > r->max_head)
            cap = r->max_head;
        char *n = realloc(r->buf, cap);
        if (!n) {
            r->error_status = 503;
            r->error_reason = "Out of memory";
            return -1;
        }
        r->buf = n;
        r->buf_cap = cap;
    }
    memcpy(r->buf + r->buf_len, at, len);
    r->buf_len += len;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    mw_http_request *r = req_of(p);
    if (r->url_len == 0)
        r->url_off = (uint32_t)r->buf_len;
    if (append(r, at, len) != 0)
        return HPE_USER;
    r->url_len += (uint32_t)len;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    mw_http_request *r = req_of(p);
    if (r->n_headers == 0 || r->last_was_value) {
        if (r->n_headers == MW_HTTP_MAX_HEADERS) {
            r->error_status = 431;
            r->error_reason = "Too many request header fields";
            return HPE_USER;
        }
        mw_http_header *h = &r->headers[r->n_headers++];
        memset(h, 0, sizeof(*h));
        h->name_off = (uint32_t)r->buf_len;
        r->last_was_value = 0;
    }
    if (append(r, at, len) != 0)
        return HPE_USER;
    r->headers[r->n_headers - 1].name_len += (uint32_t)len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    mw_http_request *r = req_of(p);
    mw_http_header *h = &r->headers[r->n_headers - 1];
    if (!r->last_was_value) {
        h->value_off = (uint32_t)r->buf_len;
        r->last_was_value = 1;
    }
    if (append(r, at, len) != 0)
        return HPE_USER;
    h->value_len += (uint32_t)len;
    return 0;
}

static int body_error(mw_http_request *r)
{
    r->error_status = 413;
    r->error_reason = "Request body too large";
    return HPE_USER;
}

static int on_headers_complete(llhttp_t *p)
{
    mw_http_request *r = req_of(p);
    size_t len;
    const char *expect = mw_http_header_value(r, "Expect", &len);
    r->head_complete = 1;
    r->expect_continue = expect && len == 12 && strncasecmp(expect, "100-continue", 12) == 0;
    if (r->max_body && !p->upgrade && (p->flags & F_CONTENT_LENGTH) && p->content_length > r->max_body)
        return body_error(r);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    mw_http_request *r = req_of(p);
    if (!r->max_body)
        return 0;
    if (len > r->max_body - r->body_len)
        return body_error(r);
    if (r->body_len + len > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len)
            cap *= 2;
        if (cap > r->max_body)
            cap = r->max_body;
        char *nb = realloc(r->body, cap);
        if (!nb) {
            r->error_status = 503;
            r->error_reason = "Out of memory";
            return HPE_USER;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    req_of(p)->complete = 1;
    return HPE_PAUSED; /* one request per connection: stop right after it */
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int mw_http_request_init(mw_http_request *r, size_t max_head)
{
    memset(r, 0, sizeof(*r));
    r->buf_cap = max_head < MW_HTTP_BUF_START ? (max_head ? max_head : 1) : MW_HTTP_BUF_START;
    r->buf = malloc(r->buf_cap);
    if (!r->buf)
        return -1;
    r->max_head = max_head;
    llhttp_init(&r->parser, HTTP_REQUEST, &settings);
    r->parser.data = r;
    return 0;
}

void mw_http_request_free(mw_http_request *r)
{
    free(r->buf);
    r->buf = NULL;
    free(r->body);
    r->body = NULL;
}

void mw_http_request_set_max_body(mw_http_request *r, size_t max_body) { r->max_body = max_body; }

mw_http_status mw_http_feed(mw_http_request *r, const char *data, size_t len, size_t *consumed)
{
    *consumed = 0;
    if (r->error_status)
        return MW_HTTP_ERROR;
    if (r->complete)
        return MW_HTTP_DONE;
    llhttp_errno_t e = llhttp_execute(&r->parser, data, len);
    size_t used = len;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        used = (size_t)(llhttp_get_error_pos(&r->parser) - data);
    } else if (e != HPE_OK) {
        if (!r->error_status) {
            r->error_status = 400;
            r->error_reason = "Malformed HTTP request";
        }
        return MW_HTTP_ERROR;
    }
    /* with a body limit, the bytes after the head are the body's, bounded by it (the head's
     * stored part is bounded by buf_cap, its last chunk by the read buffer) */
    int counted = !(r->max_body && r->head_complete);
    if (counted)
        r->head_bytes += used;
    if (counted && r->head_bytes > r->max_head) {
        r->error_status = 431;
        r->error_reason = "Request header fields too large";
        return MW_HTTP_ERROR;
    }
    *consumed = used;
    return r->complete ? MW_HTTP_DONE : MW_HTTP_NEED_MORE;
}

const char *mw_http_header_value(const mw_http_request *r, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    for (int i = 0; i < r->n_headers; i++) {
        const mw_http_header *h = &r->headers[i];
        if (h->name_len == nlen && strncasecmp(r->buf + h->name_off, name, nlen) == 0) {
            *len = h->value_len;
            return r->buf + h->value_off;
        }
    }
    return NULL;
}

int mw_http_header_has_token(const mw_http_request *r, const char *name, const char *token)
{
    size_t nlen = strlen(name), tlen = strlen(token);
    for (int i = 0; i < r->n_headers; i++) {
        const mw_http_header *h = &r->headers[i];
        if (h->name_len != nlen || strncasecmp(r->buf + h->name_off, name, nlen) != 0)
            continue;
        const char *v = r->buf + h->value_off, *end = v + h->value_len;
        while (v < end) {
            const char *comma = memchr(v, ',', (size_t)(end - v));
            const char *stop = comma ? comma : end;
            size_t len = (size_t)(stop - v);
            const char *item = mw_trim_ows(v, &len);
            if (len == tlen && strncasecmp(item, token, tlen) == 0)
                return 1;
            v = comma ? comma + 1 : end;
        }
    }
    return 0;
}

void mw_http_url_parts(const mw_http_request *r, const char **path, size_t *path_len,
                       const char **query, size_t *query_len)
{
    const char *url = r->buf + r->url_off;
    const char *q = memchr(url, '?', r->url_len);
    *path = url;
    *path_len = q ? (size_t)(q - url) : r->url_len;
    *query = q ? q + 1 : url + r->url_len;
    *query_len = q ? r->url_len - *path_len - 1 : 0;
}

int mw_http_method(const mw_http_request *r) { return r->parser.method; }

int mw_http_version_at_least_11(const mw_http_request *r)
{
    return r->parser.http_major > 1 || (r->parser.http_major == 1 && r->parser.http_minor >= 1);
}

/* Whether the query parameter p..stop is a token= one (empty or not). */
static int is_token_param(const char *p, const char *stop)
{
    return stop - p >= 6 && memcmp(p, "token=", 6) == 0;
}

/* Percent-decodes a token= parameter's value (p..stop) into token (when not NULL; cap bytes with
 * the NUL); returns its length, or -1 when it does not fit. */
static long decode_token(const char *p, const char *stop, char *token, size_t cap)
{
    size_t n = 0;
    for (const char *v = p; v < stop; v++) {
        char ch = *v;
        int byte;
        if (ch == '%' && stop - v >= 3 && (byte = mw_hex_byte(v + 1)) >= 0) {
            ch = (char)byte;
            v += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (token) {
            if (n + 1 >= cap)
                return -1;
            token[n] = ch;
        }
        n++;
    }
    if (token)
        token[n] = '\0';
    return (long)n;
}

void mw_http_credentials_read(const mw_http_request *r, char *token, size_t cap, char *query,
                              mw_http_credentials *out)
{
    const char *path, *q;
    size_t plen, qlen;
    mw_http_url_parts(r, &path, &plen, &q, &qlen);
    out->token_len = 0;
    out->query_len = 0;
    int found = 0;
    const char *end = q + qlen;
    for (const char *p = q; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if (is_token_param(p, stop)) {
            if (!found && stop - p > 6) { /* the first non-empty one; an empty one: the header */
                out->token_len = decode_token(p + 6, stop, token, cap);
                found = 1;
            }
        } else if (stop > p) { /* the other parameters, empty ones dropped */
            size_t sep = out->query_len != 0, len = (size_t)(stop - p);
            if (query) {
                if (sep)
                    query[out->query_len] = '&';
                memcpy(query + out->query_len + sep, p, len);
            }
            out->query_len += sep + len;
        }
        p = stop + 1;
    }
    const mw_http_header *auth = NULL; /* the first Authorization header: the one that counts */
    for (int i = 0; i < r->n_headers; i++) {
        const mw_http_header *h = &r->headers[i];
        out->hide[i] = h->name_len == 13 && strncasecmp(r->buf + h->name_off, "authorization", 13) == 0;
        if (out->hide[i] && !auth)
            auth = h;
    }
    if (found || !auth)
        return;
    const char *v = r->buf + auth->value_off;
    size_t vlen = auth->value_len;
    if (vlen <= 7 || strncasecmp(v, "Bearer ", 7) != 0)
        return;
    vlen -= 7;
    v = mw_trim_ows(v + 7, &vlen);
    if (token && vlen + 1 > cap) {
        out->token_len = -1;
        return;
    }
    if (token) {
        memcpy(token, v, vlen);
        token[vlen] = '\0';
    }
    out->token_len = (long)vlen;
}

long mw_http_find_token(const mw_http_request *r, char *out, size_t cap)
{
    mw_http_credentials c;
    mw_http_credentials_read(r, out, cap, NULL, &c);
    return c.token_len;
}
