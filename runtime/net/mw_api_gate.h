/* mw_api_gate: who may call the HTTP API (DESIGN 16): the API key, compared in constant time,
 * and a token bucket per client address so that one caller's flood is refused cheaply here
 * instead of taking the worker's time from its WebSocket clients. */
#ifndef MW_API_GATE_H
#define MW_API_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "mw_http.h"

/* Whether given equals key; the time taken depends on key's length only. */
int mw_api_key_equal(const char *key, size_t key_len, const char *given, size_t given_len);
/* Whether the request carries "Authorization: apikey KEY" (scheme case-insensitive) with key. */
int mw_api_authorized(const mw_http_request *r, const char *key, size_t key_len);

typedef struct mw_api_rate_entry {
    char addr[48]; /* the client's address without its port; "" when free */
    double tokens;
    uint64_t at_ms;
} mw_api_rate_entry;

/* A fixed table of buckets, one per address, direct-mapped by a hash of it: an address that
 * lands on a slot held by another takes it over with a full bucket (memory stays bounded; a
 * flood from one address still meets its own bucket on every request). */
typedef struct mw_api_rate {
    double refill_per_ms, burst;
    mw_api_rate_entry *slots;
    size_t n;
} mw_api_rate;

/* requests per `per` seconds, bursts of `burst`. Returns 0, or -1 when memory is short. */
int mw_api_rate_init(mw_api_rate *r, double requests, double per, double burst);
void mw_api_rate_free(mw_api_rate *r);
/* Takes a token for remote ("ip:port" or "[ip6]:port"; the port is ignored) at now_ms: 1 when
 * the request may go on, 0 when it is over the limit. */
int mw_api_rate_take(mw_api_rate *r, const char *remote, uint64_t now_ms);

#endif
