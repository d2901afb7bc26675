/* mw_hist_local: history rooms on a single node (no Redis): a message gets the room's next
 * offset in the worker's mw_history and goes to the room's local members as the one frame the
 * history keeps; a recovering client gets the kept frames it missed, queued as it joins. A
 * publish and a join each run in one go on the loop thread, so nothing can come between a
 * replay and the live messages that follow it: no gap, no duplicate, offset order. */
#ifndef MW_HIST_LOCAL_H
#define MW_HIST_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include "mw_fanout.h"
#include "mw_history.h"

/* Where a room's history stands for one client. */
typedef struct mw_hist_info {
    int recovered;     /* -1: no since asked; 1: replayed; 0: could not */
    uint64_t offset;   /* the last offset the client has been sent (the room's last) */
    uint64_t replayed; /* messages replayed */
    char epoch[MW_HISTORY_EPOCH_MAX];
} mw_hist_info;

/* The monotonic clock history expiry uses, in milliseconds. */
uint64_t mw_hist_now_ms(void);

/* Stores body (a JSON object text) as the room's next message and sends it to the local
 * members but exclude_id (may be NULL). Returns the local recipients, -1 when memory is short,
 * -2 when body is not an object text; *offset is the message's offset. */
long mw_hist_local_publish(mw_fanout *fo, mw_history *h, const char *room, size_t rlen, uint32_t size,
                           uint64_t ttl_ms, const char *body, size_t len, const char *exclude_id, uint64_t *offset);
/* c joined the room: its position (the history is created if it has none). With has_since,
 * when epoch is the room's, since <= the last offset and every message after it is kept, the
 * missed frames are queued to c now, in offset order. Returns 0, or -1 when memory is short. */
int mw_hist_local_join(mw_fanout *fo, mw_history *h, mw_client *c, const char *room, size_t rlen, uint32_t size,
                       uint64_t ttl_ms, int has_since, uint64_t since, const char *epoch, size_t elen,
                       mw_hist_info *out);

#endif
