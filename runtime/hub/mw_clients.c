/* mw_clients: a chained hash by clientId (mw_hashtab) plus the list of every client, newest first. */
#include "mw_clients.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mw_hashtab.h"

int mw_clients_init(mw_clients *cs)
{
    memset(cs, 0, sizeof(*cs));
    cs->n_buckets = 1024;
    cs->buckets = calloc(cs->n_buckets, sizeof(mw_hash_link *));
    return cs->buckets ? 0 : -1;
}

void mw_clients_free(mw_clients *cs)
{
    free(cs->buckets);
    cs->buckets = NULL;
}

static void client_key(const mw_hash_link *l, const char **key, size_t *len)
{
    *key = MW_HASH_ENTRY(l, const mw_client, hash_link)->id;
    *len = MW_CLIENT_ID_LEN;
}

void mw_clients_add(mw_clients *cs, mw_client *c)
{
    assert(!c->registered);
    if (cs->count + 1 > cs->n_buckets)
        mw_hashtab_grow(&cs->buckets, &cs->n_buckets, client_key);
    size_t i = mw_hashtab_bucket(c->id, MW_CLIENT_ID_LEN, cs->n_buckets);
    c->hash_link.next = cs->buckets[i];
    cs->buckets[i] = &c->hash_link;
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
    size_t i = mw_hashtab_bucket(c->id, MW_CLIENT_ID_LEN, cs->n_buckets);
    for (mw_hash_link **p = &cs->buckets[i]; *p; p = &(*p)->next) {
        if (*p == &c->hash_link) {
            *p = c->hash_link.next;
            break;
        }
    }
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        cs->head = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    c->all_prev = c->all_next = NULL;
    c->hash_link.next = NULL;
    assert(cs->count > 0);
    cs->count--;
    c->registered = 0;
}

mw_client *mw_clients_find(const mw_clients *cs, const char *id, size_t len)
{
    if (len != MW_CLIENT_ID_LEN)
        return NULL;
    size_t i = mw_hashtab_bucket(id, len, cs->n_buckets);
    for (mw_hash_link *l = cs->buckets[i]; l; l = l->next) {
        mw_client *c = MW_HASH_ENTRY(l, mw_client, hash_link);
        if (memcmp(c->id, id, len) == 0)
            return c;
    }
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
