/* mw_api_gate: the key check and the per-address rate limit of the HTTP API. */
#include "mw_api_gate.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mw_util.h"

int mw_api_key_equal(const char *key, size_t key_len, const char *given, size_t given_len)
{
    /* every byte of key is compared (with given's bytes repeated when it is shorter) and the
     * lengths are folded in, so neither an early mismatch nor a shorter guess answers faster */
    unsigned diff = (unsigned)(key_len ^ given_len) | (given_len == 0);
    for (size_t i = 0; i < key_len; i++)
        diff |= (unsigned char)key[i] ^ (unsigned char)(given_len ? given[i % given_len] : 0);
    return key_len > 0 && diff == 0;
}

int mw_api_authorized(const mw_http_request *r, const char *key, size_t key_len)
{
    size_t len;
    const char *v = mw_http_header_value(r, "Authorization", &len);
    if (!v)
        return 0;
    v = mw_trim_ows(v, &len);
    if (len < 7 || strncasecmp(v, "apikey", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return 0;
    len -= 7;
    v = mw_trim_ows(v + 7, &len);
    return mw_api_key_equal(key, key_len, v, len);
}

int mw_api_rate_init(mw_api_rate *r, double requests, double per, double burst)
{
    r->n = 4096;
    r->slots = calloc(r->n, sizeof(*r->slots));
    r->refill_per_ms = requests / (per * 1000.0);
    r->burst = burst < 1 ? 1 : burst;
    return r->slots ? 0 : -1;
}

void mw_api_rate_free(mw_api_rate *r)
{
    free(r->slots);
    r->slots = NULL;
}

/* The address part of "ip:port" / "[ip6]:port" (its length). */
static size_t address_len(const char *remote)
{
    const char *colon = strrchr(remote, ':');
    size_t len = colon ? (size_t)(colon - remote) : strlen(remote);
    return len;
}

int mw_api_rate_take(mw_api_rate *r, const char *remote, uint64_t now_ms)
{
    size_t len = address_len(remote);
    if (len >= sizeof(r->slots->addr))
        len = sizeof(r->slots->addr) - 1;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)remote[i]) * 1099511628211ull;
    mw_api_rate_entry *e = &r->slots[h % r->n];
    if (strlen(e->addr) != len || memcmp(e->addr, remote, len) != 0) {
        memcpy(e->addr, remote, len);
        e->addr[len] = '\0';
        e->tokens = r->burst;
        e->at_ms = now_ms;
    }
    if (now_ms > e->at_ms) {
        e->tokens += (double)(now_ms - e->at_ms) * r->refill_per_ms;
        if (e->tokens > r->burst)
            e->tokens = r->burst;
        e->at_ms = now_ms;
    }
    if (e->tokens < 1)
        return 0;
    e->tokens -= 1;
    return 1;
}
