/* mw_pmd: the grammar is RFC 6455 9.1 (extension-list = 1#extension, extension = token
 * *(";" param), param = token ["=" (token | quoted-string)]) and the parameters RFC 7692 7.1.
 * The server always answers with both no_context_takeover parameters, which RFC 7692 allows
 * whatever the offer said: then neither side keeps a compression window between messages, so
 * no zlib state lives per connection. Written by hand: no listed dependency parses this header. */
#include "mw_pmd.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct cursor {
    const char *p, *end;
} cursor;

/* RFC 7230 tchar */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* A token at the cursor: its length (0 when there is none). */
static size_t token(cursor *c, const char **start)
{
    *start = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    return (size_t)(c->p - *start);
}

/* A quoted-string at the cursor, unescaped into buf (a value that does not fit cannot be a valid
 * window size: it comes back cut, which is still invalid). Returns its length, or -1 on a syntax
 * error. */
static int quoted(cursor *c, char *buf, size_t size)
{
    size_t n = 0;
    c->p++; /* the opening quote */
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\') {
            if (++c->p == c->end)
                return -1;
        } else if ((unsigned char)*c->p < 0x20 && *c->p != '\t') {
            return -1;
        }
        if (n + 1 < size)
            buf[n++] = *c->p;
        c->p++;
    }
    if (c->p == c->end)
        return -1;
    c->p++; /* the closing quote */
    buf[n] = '\0';
    return (int)n;
}

static int equals(const char *s, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(s, want, len) == 0;
}

/* A window size: a decimal 8..15 without leading zeros (RFC 7692 7.1.2). Returns it or 0. */
static int window_bits(const char *v, size_t len)
{
    if (len == 1 && v[0] >= '8' && v[0] <= '9')
        return v[0] - '0';
    if (len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + v[1] - '0';
    return 0;
}

/* What one permessage-deflate offer asked. */
typedef struct offer {
    int invalid;
    int server_nct, client_nct; /* seen */
    int server_bits;            /* 0: not given */
    int client_bits;            /* -1: given without a value, 0: not given */
} offer;

static void take_param(offer *o, const char *name, size_t nlen, const char *value, size_t vlen, int has_value)
{
    if (equals(name, nlen, "server_no_context_takeover") || equals(name, nlen, "client_no_context_takeover")) {
        int *seen = name[0] == 's' || name[0] == 'S' ? &o->server_nct : &o->client_nct;
        if (has_value || *seen)
            o->invalid = 1;
        *seen = 1;
    } else if (equals(name, nlen, "server_max_window_bits")) {
        int bits = has_value ? window_bits(value, vlen) : 0;
        if (bits == 0 || o->server_bits)
            o->invalid = 1;
        o->server_bits = bits;
    } else if (equals(name, nlen, "client_max_window_bits")) {
        int bits = has_value ? window_bits(value, vlen) : -1;
        if (bits == 0 || o->client_bits)
            o->invalid = 1;
        o->client_bits = bits;
    } else {
        o->invalid = 1; /* RFC 7692 7: an unknown parameter declines the offer */
    }
}

int mw_pmd_negotiate(const char *value, size_t len, char out[MW_PMD_RESPONSE_MAX])
{
    cursor c = { value, value + len };
    out[0] = '\0';
    for (;;) {
        skip_ows(&c);
        if (c.p == c.end)
            return 0;
        if (*c.p == ',') { /* empty list elements are allowed (RFC 7230 7) */
            c.p++;
            continue;
        }
        const char *name;
        size_t nlen = token(&c, &name);
        if (nlen == 0)
            return 0;
        int ours = equals(name, nlen, "permessage-deflate");
        offer o = { 0 };
        for (;;) {
            skip_ows(&c);
            if (c.p == c.end || *c.p != ';')
                break;
            c.p++;
            skip_ows(&c);
            const char *pname, *pval = NULL;
            size_t plen = token(&c, &pname), vlen = 0;
            char qbuf[16];
            if (plen == 0)
                return 0;
            skip_ows(&c);
            int has_value = c.p < c.end && *c.p == '=';
            if (has_value) {
                c.p++;
                skip_ows(&c);
                if (c.p < c.end && *c.p == '"') {
                    int q = quoted(&c, qbuf, sizeof(qbuf));
                    if (q < 0)
                        return 0;
                    pval = qbuf;
                    vlen = (size_t)q;
                    for (size_t i = 0; i < vlen; i++) /* the unescaped value must be a token */
                        if (!is_tchar((unsigned char)qbuf[i]))
                            o.invalid = 1;
                    if (vlen == 0)
                        o.invalid = 1;
                } else if ((vlen = token(&c, &pval)) == 0) {
                    return 0;
                }
            }
            if (ours)
                take_param(&o, pname, plen, pval, vlen, has_value);
        }
        if (c.p < c.end && *c.p != ',')
            return 0;
        if (ours && !o.invalid && (o.server_bits == 0 || o.server_bits == 15)) {
            int n = snprintf(out, MW_PMD_RESPONSE_MAX,
                             "permessage-deflate; server_no_context_takeover; client_no_context_takeover%s",
                             o.server_bits == 15 ? "; server_max_window_bits=15" : "");
            if (o.client_bits > 0)
                snprintf(out + n, (size_t)(MW_PMD_RESPONSE_MAX - n), "; client_max_window_bits=%d", o.client_bits);
            return 1;
        }
    }
}

int mw_pmd_negotiate_request(const mw_http_request *r, char out[MW_PMD_RESPONSE_MAX])
{
    static const char name[] = "Sec-WebSocket-Extensions";
    out[0] = '\0';
    for (int i = 0; i < r->n_headers; i++) {
        const mw_http_header *h = &r->headers[i];
        if (equals(r->buf + h->name_off, h->name_len, name) &&
            mw_pmd_negotiate(r->buf + h->value_off, h->value_len, out))
            return 1;
    }
    return 0;
}
