/* mw_hashtab: the chains are relinked in place, so an entry's address never changes. */
#include "mw_hashtab.h"

#include <stdlib.h>

void mw_hashtab_grow(mw_hash_link ***buckets, size_t *n_buckets,
                     void (*key_of)(const mw_hash_link *l, const char **key, size_t *len))
{
    size_t n = *n_buckets * 2;
    mw_hash_link **b = calloc(n, sizeof(mw_hash_link *));
    if (!b)
        return;
    for (size_t i = 0; i < *n_buckets; i++) {
        for (mw_hash_link *l = (*buckets)[i], *next; l; l = next) {
            const char *key;
            size_t len;
            next = l->next;
            key_of(l, &key, &len);
            size_t j = mw_hashtab_bucket(key, len, n);
            l->next = b[j];
            b[j] = l;
        }
    }
    free(*buckets);
    *buckets = b;
    *n_buckets = n;
}
