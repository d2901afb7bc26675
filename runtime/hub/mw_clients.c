/* mw_clients: FNV-1a over the clientId picks a bucket; the table doubles when it fills up. */
#include "mw_clients.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int mw_clients_init(mw_clients *cs)
{
    memset(cs, 0, sizeof(*cs));
    cs->n_buckets = 1024;
    cs->buckets = calloc(cs->n_buckets, sizeof(mw_client *));
    return cs->buckets ? 0 : -1;
}

void mw_clients_free(mw_clients *cs)
{
    free(cs->buckets);
    cs->buckets = NULL;
}

static void grow(mw_clients *cs)
{
    size_t n = cs->n_buckets * 2;
    mw_client **b = calloc(n, sizeof(mw_client *));
    if (!b)
        return; /* keep the longer chains; still correct */
    for (mw_client *c = cs->head; c; c = c->all_next) {
        size_t i = mw_hash_bytes(c->id, MW_CLIENT_ID_LEN) & (n - 1);
        c->hash_next = b[i];
        b[i] = c;
    }
    free(cs->buckets);
    cs->buckets = b;
    cs->n_buckets = n;
}

void mw_clients_add(mw_clients *cs, mw_client *c)
{
    assert(!c->registered);
    if (cs->count + 1 > cs->n_buckets)
        grow(cs);
    size_t i = mw_hash_bytes(c->id, MW_CLIENT_ID_LEN) & (cs->n_buckets - 1);
    c->hash_next = cs->buckets[i];
    cs->buckets[i] = c;
    c->all_prev = NULL;
    c->all_next = cs->head;
    if (cs->head)
        cs->head->all_prev = c;
    cs->head = c;
    cs->count++;
    c->registered = 1;
}

void mw_clients_remove(mw_clients *cs, mw_client *c)
{
    if (!c->registered)
        return;
    size_t i = mw_hash_bytes(c->id, MW_CLIENT_ID_LEN) & (cs->n_buckets - 1);
    for (mw_client **p = &cs->buckets[i]; *p; p = &(*p)->hash_next) {
        if (*p == c) {
            *p = c->hash_next;
            break;
        }
    }
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        cs->head = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    c->all_prev = c->all_next = c->hash_next = NULL;
    assert(cs->count > 0);
    cs->count--;
    c->registered = 0;
}

mw_client *mw_clients_find(const mw_clients *cs, const char *id, size_t len)
{
    if (len != MW_CLIENT_ID_LEN)
        return NULL;
    size_t i = mw_hash_bytes(id, len) & (cs->n_buckets - 1);
    for (mw_client *c = cs->buckets[i]; c; c = c->hash_next)
        if (memcmp(c->id, id, len) == 0)
            return c;
    return NULL;
}

void mw_client_release(mw_client *c)
{
    for (int k = 0; k < MW_ROOMS_KINDS; k++) {
        assert(c->memberships[k].n == 0); /* left every room before */
        free(c->memberships[k].items);
        c->memberships[k].items = NULL;
        c->memberships[k].cap = 0;
    }
    free(c->user_key);
    c->user_key = NULL;
}
