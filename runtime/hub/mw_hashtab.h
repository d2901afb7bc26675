/* mw_hashtab: what the hub's two intrusive chained hash tables (clients by id, rooms by name)
 * share: the chain link an entry embeds, the bucket of a key, and doubling the bucket array as
 * the entries outnumber it. The table never allocates or moves entries. */
#ifndef MW_HASHTAB_H
#define MW_HASHTAB_H

#include <stddef.h>

#include "mw_util.h"

typedef struct mw_hash_link {
    struct mw_hash_link *next;
} mw_hash_link;

/* The entry of type `type` whose member `member` is the link l. */
#define MW_HASH_ENTRY(l, type, member) ((type *)((char *)(l) - offsetof(type, member)))

/* The bucket of a key in a table of n_buckets (a power of two). */
static inline size_t mw_hashtab_bucket(const char *key, size_t len, size_t n_buckets)
{
    return mw_hash_bytes(key, len) & (n_buckets - 1);
}

/* Doubles *buckets (*n_buckets chains) and relinks every entry into its new chain; key_of gives
 * the key of the entry holding a link. When memory is short the old array stays: the chains
 * are longer, lookups still correct. */
void mw_hashtab_grow(mw_hash_link ***buckets, size_t *n_buckets,
                     void (*key_of)(const mw_hash_link *l, const char **key, size_t *len));

#endif
