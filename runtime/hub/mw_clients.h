/* mw_clients: this worker's registry of upgraded connections: clientId -> connection, and the
 * list that a broadcast walks. (A small chained hash: no listed dependency offers one.) */
#ifndef MW_CLIENTS_H
#define MW_CLIENTS_H

#include <stddef.h>

#include "mw_conn.h"

typedef struct mw_clients {
    mw_conn **buckets;
    size_t n_buckets;
    size_t count;
    mw_conn *head; /* every registered connection, newest first */
} mw_clients;

int mw_clients_init(mw_clients *cs);
void mw_clients_free(mw_clients *cs);
int mw_clients_add(mw_clients *cs, mw_conn *c);
void mw_clients_remove(mw_clients *cs, mw_conn *c);
mw_conn *mw_clients_find(const mw_clients *cs, const char *id, size_t len);
/* Queues f to every client but exclude (may be NULL); returns how many took it. */
size_t mw_clients_broadcast(mw_clients *cs, mw_frame *f, const mw_conn *exclude);

#endif
