/* mw_history: the single-node room history (DESIGN 12). For each room whose options have
 * `history`, the last `size` messages as the very frames its members were sent (one reference
 * each: storing copies nothing), their offsets 1, 2, 3, ..., the room's epoch (an opaque string,
 * new whenever a history is created, so also after it expired or the worker restarted), and
 * its expiry `ttl` after the last message. A per-worker cap on the bytes kept drops the oldest
 * messages of the least recently written rooms first, with one warning in the log.
 * A container only: it builds and keeps frames, it never sends (mw_hist_local does). The frame
 * shape, the message object with "room" and "offset" appended, is built here for both modes. */
#ifndef MW_HISTORY_H
#define MW_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "mw_frame.h"
#include "mw_hashtab.h"
#include "mw_metrics.h"
#include "mw_util.h"

#define MW_HISTORY_EPOCH_MAX 40
#define MW_HISTORY_DEFAULT_CAP ((size_t)64 << 20) /* limits.historyBytes by default */
/* Room names are at most MW_ROOM_NAME_MAX bytes; escaped as JSON they take at most 6 each. */
#define MW_HISTORY_ROOM_JSON_MAX (255 * 6 + 3)

typedef struct mw_history_room {
    mw_hash_link link;
    struct mw_history_room *lru_prev, *lru_next; /* by last write, least recent first */
    uint64_t last;       /* the last message's offset (0 before any) */
    uint64_t touched_ms; /* created or last written: it expires ttl_ms later */
    uint64_t ttl_ms;
    uint32_t size;       /* messages kept at most */
    uint32_t n, head, cap; /* the ring: n frames from ring[head], cap slots (grows up to size) */
    mw_frame **ring;
    size_t bytes;        /* payload bytes of the kept frames */
    char epoch[MW_HISTORY_EPOCH_MAX];
    uint32_t name_len;
    char name[];
} mw_history_room;

typedef struct mw_history {
    mw_hash_link **buckets;
    size_t n_buckets;
    size_t count;        /* rooms with a history */
    mw_history_room *lru_head, *lru_tail;
    size_t bytes;        /* payload bytes kept by every room */
    size_t cap_bytes;    /* limits.historyBytes */
    int warned;          /* the cap was reached (logged once) */
    char tag[MW_WORKER_TAG_LEN + 1];
    uint64_t epochs;     /* epochs made so far: with the tag, a new epoch is unique */
    mw_metrics_slot *m;  /* stored messages, bytes kept (NULL: not counted) */
} mw_history;

/* tag: the worker's (epochs start with it). Returns 0, or -1 when memory is short. */
int mw_history_init(mw_history *h, const char *tag, size_t cap_bytes, mw_metrics_slot *m);
void mw_history_free(mw_history *h);
void mw_history_set_cap(mw_history *h, size_t cap_bytes);

/* A room's history, or NULL when it has none (an expired one is dropped first). */
mw_history_room *mw_history_find(mw_history *h, const char *name, size_t len, uint64_t now_ms);
/* A room's history, created (a new epoch, offset 0) when it has none; size and ttl_ms apply
 * from now on (a smaller size drops the oldest messages). NULL when memory is short. */
mw_history_room *mw_history_open(mw_history *h, const char *name, size_t len, uint32_t size, uint64_t ttl_ms,
                                 uint64_t now_ms);
/* The room's next message: frames the JSON object text body with "room" and "offset" added,
 * keeps one reference and returns the frame with one reference for the caller (unref it).
 * NULL when memory is short or body is not an object text ({...}). */
mw_frame *mw_history_append(mw_history *h, mw_history_room *r, const char *body, size_t len, uint64_t now_ms);
/* The offset of the oldest kept message (last + 1 when none is kept). */
uint64_t mw_history_first(const mw_history_room *r);
/* The kept frame of that offset, or NULL. */
mw_frame *mw_history_get(const mw_history_room *r, uint64_t offset);
/* Whether a client that has every message up to `since` can get all the rest: since <= last
 * and every message after since is still kept. */
int mw_history_covers(const mw_history_room *r, uint64_t since);
/* Drops every history whose ttl has passed since its last message. */
void mw_history_expire(mw_history *h, uint64_t now_ms);

/* ---- the frame of a history message (also built by the Redis script, the same way) ------- */

/* Writes s as a JSON string (quotes included) into out; returns its length, 0 if it does not
 * fit in size. */
size_t mw_history_json_string(const char *s, size_t len, char *out, size_t size);
/* For a JSON object text body ({...}, whitespace around allowed): the length of the part
 * before its closing brace, and *empty set when the object has no member. -1 when body does
 * not start with '{' and end with '}'. */
long mw_history_body_head(const char *body, size_t len, int *empty);
/* The frame of message `offset`: body's head, then "room":ROOM_JSON,"offset":N and '}'. */
mw_frame *mw_history_frame(const char *body, size_t head_len, int empty, const char *room_json, size_t rj_len,
                           uint64_t offset);

#endif
