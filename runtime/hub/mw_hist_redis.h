/* mw_hist_redis: room history with Redis (DESIGN 12), shared by every worker and host.
 *
 * Keys (P = redis.prefix): {P}hs:{room} a stream, entry id 0-OFFSET, fields f (the frame text
 * members get) and x (the excludeClientId, or ""), trimmed to the room's size; {P}hm:{room} a
 * hash {e = epoch, o = last offset}; both expire `ttl` after the room's last message. A lost
 * hash (expired, deleted, Redis restarted empty) or a lost stream means a new epoch, and
 * offsets start again at 1.
 *
 * A send is one Lua script (EVALSHA): next offset, the stored copy and the PUBLISH of the frame
 * on the room's bus channel happen in one atomic step, so every host sees one order and a crash
 * cannot store a message without publishing it or the reverse. Every worker with members,
 * the publisher included, delivers from its bus subscription, in offset order: a gap (a message
 * missed while the subscription was starting or reconnecting) is filled from the stream before
 * anything after it goes out, and a duplicate is dropped.
 *
 * A join reads the room's position (and with a since the missed entries, XRANGE) while the
 * client's live frames of that room are held; once the replay is queued the held frames at or
 * below the last replayed offset are dropped and the rest sent, so the client sees each offset
 * once, in order. */
#ifndef MW_HIST_REDIS_H
#define MW_HIST_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "mw_bus_msg.h"
#include "mw_fanout.h"
#include "mw_hist_local.h"
#include "mw_hist_script.h"
#include "mw_history.h"

struct mw_redis;

/* res NULL with err set when Redis did not answer. */
typedef void (*mw_hist_read_cb)(void *arg, const mw_hist_read *res, const char *err);
/* info NULL with err set when the join could not settle (Redis, the client gone). */
typedef void (*mw_hist_join_cb)(void *arg, const mw_hist_info *info, const char *err);

typedef struct mw_hist_redis {
    mw_fanout *fo;
    struct mw_redis *redis; /* the command connection (NULL: none) */
    const char *prefix;     /* redis.prefix */
    char tag[MW_WORKER_TAG_LEN + 1];
    uint64_t epochs;        /* epoch candidates made: tag + counter is unique */
    mw_hist_scripts scripts;
    mw_metrics_slot *m;
    mw_hash_link **buckets; /* room name -> delivery state, for rooms with local members */
    size_t n_buckets, count;
    uint64_t warned_ms;     /* the last warning about lost messages (one per 10 s) */
} mw_hist_redis;

/* Returns 0, or -1 when memory is short. */
int mw_hist_redis_init(mw_hist_redis *hr, mw_fanout *fo, const char *prefix, const char *tag, mw_metrics_slot *m);
void mw_hist_redis_free(mw_hist_redis *hr);
/* Uses this command connection from now on (NULL: none). */
void mw_hist_redis_attach(mw_hist_redis *hr, struct mw_redis *redis);
/* The command connection went up (the scripts are loaded first) or down. */
void mw_hist_redis_on_state(mw_hist_redis *hr, int up);
/* The subscriber confirmed a channel: a room's messages published before it may have been
 * missed, so what the stream holds past the last delivered offset is fetched. */
void mw_hist_redis_on_subscribed(mw_hist_redis *hr, const char *channel, size_t len);
/* A history message from the bus (MW_BUS_HISTORY). */
void mw_hist_redis_on_message(mw_hist_redis *hr, const mw_bus_msg *m);

/* Stores and publishes body (a JSON object text) as the room's next message. dedupe (may be
 * NULL): a send with the same key within 5 s is stored once (a subscriber's send, made by
 * every worker). Returns the local members it will reach, -1 when memory is short, -2 when
 * body is not an object text, -3 when Redis is not connected (nothing is sent). */
long mw_hist_redis_publish(mw_hist_redis *hr, const char *room, size_t rlen, uint32_t size, uint64_t ttl_ms,
                           const char *body, size_t len, const char *exclude, const char *dedupe, size_t dlen);
/* The offset a publish got (err NULL), or why it was not stored. */
typedef void (*mw_hist_published_cb)(void *arg, uint64_t offset, const char *err);
/* mw_hist_redis_publish without exclude or dedupe, and cb is called once, later, with the
 * message's offset (the HTTP API's publish answers it). Returns as mw_hist_redis_publish; cb is
 * not called when it returns a negative number. */
long mw_hist_redis_publish_wait(mw_hist_redis *hr, const char *room, size_t rlen, uint32_t size, uint64_t ttl_ms,
                                const char *body, size_t len, mw_hist_published_cb cb, void *arg);
/* The client (a member of the room already) learns its position; with has_since the missed
 * messages are replayed when they can be. cb is called once, later. Returns 0, -1 when Redis is
 * not connected or memory is short, -2 when the client is not a member of the room. */
int mw_hist_redis_join(mw_hist_redis *hr, const char *id, size_t idlen, const char *room, size_t rlen, uint32_t size,
                       uint64_t ttl_ms, int has_since, uint64_t since, const char *epoch, size_t elen,
                       mw_hist_join_cb cb, void *arg);
/* Reads the position and up to limit messages after since (the history is created when it has
 * none). cb is called once, later. Returns 0, or -1 when Redis is not connected. */
int mw_hist_redis_read(mw_hist_redis *hr, const char *room, size_t rlen, uint64_t ttl_ms, uint64_t since,
                       uint32_t limit, mw_hist_read_cb cb, void *arg);
/* Forgets the delivery state of rooms that have no local member any more. */
void mw_hist_redis_sweep(mw_hist_redis *hr);

#endif
