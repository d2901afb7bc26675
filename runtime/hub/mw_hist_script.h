/* mw_hist_script: the two Redis Lua scripts of room history (mw_hist_redis) and the commands
 * that run them: PUBLISH (next offset, stored copy, bus message: one atomic step) and READ
 * (epoch, last offset and stream entries). Loaded with SCRIPT LOAD whenever the command
 * connection comes up, run with EVALSHA. Free of delivery state: it only speaks Redis. */
#ifndef MW_HIST_SCRIPT_H
#define MW_HIST_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "mw_redis.h"

/* One message read from a room's stream: its offset, frame text and excludeClientId. */
typedef struct mw_hist_entry {
    uint64_t offset;
    const char *text;
    size_t len;
    const char *exclude; /* "" for none */
    size_t exclude_len;
} mw_hist_entry;

/* A read's answer (pointing into the reply: valid during the callback only). */
typedef struct mw_hist_read {
    const char *epoch; /* NULL: the room has no history (a read that does not create one) */
    size_t epoch_len;
    uint64_t last;
    mw_hist_entry *entries; /* malloc'd by mw_hist_script_parse (free it) */
    size_t n;
} mw_hist_read;

/* The scripts' SHA1s (computed once). */
typedef struct mw_hist_scripts {
    char sha_publish[41], sha_read[41];
} mw_hist_scripts;

typedef struct mw_hist_publish_args {
    const char *prefix;
    const char *room;
    size_t room_len;
    uint32_t size;
    uint64_t ttl_ms;
    const char *head;      /* the message text before its closing brace */
    size_t head_len;
    int empty;             /* the object has no member (no comma before "room") */
    const char *room_json; /* the room name as a JSON string */
    size_t room_json_len;
    const char *epoch;     /* the epoch a new history gets */
    const char *origin;    /* the worker's tag (the bus message's origin) */
    const char *exclude;   /* "" for none */
    const char *dedupe;    /* "" for none, else the key that makes a repeated send a no-op */
} mw_hist_publish_args;

typedef struct mw_hist_read_args {
    const char *prefix;
    const char *room;
    size_t room_len;
    uint64_t since;       /* entries after this offset */
    uint32_t count;       /* at most this many (0: none, just the position) */
    uint64_t ttl_ms;      /* of a history the read creates */
    const char *epoch;    /* the epoch a new history gets; NULL: do not create one */
    const char *want_epoch; /* entries only in this epoch (NULL: any) */
    size_t want_epoch_len;
    int all_or_nothing;   /* entries only when every one after since fits in count */
} mw_hist_read_args;

void mw_hist_scripts_init(mw_hist_scripts *s);
/* SCRIPT LOAD of both scripts on r (call it first thing on a new connection). */
void mw_hist_scripts_load(mw_redis *r);
/* Runs PUBLISH; the reply is the offset (0 for a repeated dedupe key). Returns 0 or -1. */
int mw_hist_script_publish(mw_redis *r, const mw_hist_scripts *s, const mw_hist_publish_args *a, mw_redis_reply_cb cb,
                           void *data);
/* Runs READ; parse its reply with mw_hist_script_parse. Returns 0 or -1. */
int mw_hist_script_read(mw_redis *r, const mw_hist_scripts *s, const mw_hist_read_args *a, mw_redis_reply_cb cb,
                        void *data);
/* Splits READ's reply. Returns 0, or -1 with *err set when it is not READ's shape. */
int mw_hist_script_parse(const redisReply *reply, mw_hist_read *out, const char **err);
/* Whether a reply says the script is not loaded (SCRIPT FLUSH, a new server). */
int mw_hist_script_missing(const redisReply *reply);

#endif
