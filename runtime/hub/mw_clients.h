/* mw_clients: this worker's registry of WebSocket clients: clientId -> client, and the list a
 * broadcast walks. A container only: it stores and finds, it never sends (mw_fanout does).
 * mw_client is the hub's record of one client; its owner (the app's session) embeds it.
 * (A small chained hash: no listed dependency offers one.) */
#ifndef MW_CLIENTS_H
#define MW_CLIENTS_H

#include <stddef.h>

#include "mw_hashtab.h"
#include "mw_rooms.h"
#include "mw_util.h"

struct mw_conn;

typedef struct mw_client {
    char id[MW_CLIENT_ID_LEN + 1];
    struct mw_conn *conn;   /* what mw_fanout sends through (NULL in the unit tests) */
    char *user_key;         /* the token's sub (NULL: anonymous); freed by mw_client_release */
    mw_memberships memberships[MW_ROOMS_KINDS]; /* its rooms, and its entry in the user index */
    struct mw_client *all_prev, *all_next; /* mw_clients' list */
    mw_hash_link hash_link;                /* mw_clients' chain */
    int registered;
    int hist_joins; /* history-room joins of this client still settling (mw_hist_redis) */
} mw_client;

typedef struct mw_clients {
    mw_hash_link **buckets;
    size_t n_buckets;
    size_t count;
    mw_client *head; /* every registered client, newest first */
} mw_clients;

int mw_clients_init(mw_clients *cs);
void mw_clients_free(mw_clients *cs);
/* Registers c (its id set, not registered yet). */
void mw_clients_add(mw_clients *cs, mw_client *c);
/* Unregisters c (a no-op when it is not registered). */
void mw_clients_remove(mw_clients *cs, mw_client *c);
mw_client *mw_clients_find(const mw_clients *cs, const char *id, size_t len);
/* Frees what the record holds (memberships must be left first, user key); not the record. */
void mw_client_release(mw_client *c);

#endif
