/* mw_redis: one Redis connection on the worker's loop (hiredis async + its libuv adapter):
 * connects, authenticates and selects the database from a redis:// URL, reconnects with
 * capped backoff, and times out commands with its own libuv timer (hiredis 0.14 has none).
 * A subscriber connection is the same object with subscriptions it replays after reconnect. */
#ifndef MW_REDIS_H
#define MW_REDIS_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <uv.h>

typedef struct mw_redis mw_redis;

/* A command's outcome: reply (valid only during the call) or err (static text). */
typedef void (*mw_redis_reply_cb)(mw_redis *r, redisReply *reply, const char *err, void *data);
/* A message on a subscribed channel: pattern is NULL for exact subscriptions. */
typedef void (*mw_redis_message_cb)(mw_redis *r, const char *pattern, const char *channel, size_t channel_len,
                                    const char *payload, size_t payload_len, void *owner);
/* Connected (up = 1) or lost (up = 0). */
typedef void (*mw_redis_state_cb)(mw_redis *r, int up, void *owner);
/* Redis confirmed an exact subscription: messages on channel arrive from now on. */
typedef void (*mw_redis_subscribed_cb)(mw_redis *r, const char *channel, size_t channel_len, void *owner);

typedef struct mw_redis_options {
    const char *url;        /* redis://[:password@]host[:port][/db] */
    const char *name;       /* for logs: "commands", "subscriber" */
    double timeout;         /* seconds: command timeout, also the connect timeout */
    mw_redis_message_cb on_message;
    mw_redis_state_cb on_state;
    mw_redis_subscribed_cb on_subscribed; /* optional */
    void *owner;
} mw_redis_options;

/* Parses the URL and starts connecting. NULL with err set when the URL is invalid. */
mw_redis *mw_redis_new(uv_loop_t *loop, const mw_redis_options *opts, char *err, size_t errlen);
/* Disconnects; pending commands get "connection closed". The object is freed later. */
void mw_redis_free(mw_redis *r);
/* Whether url is a redis:// URL mw_redis_new accepts: 0, or -1 with the reason in err. Lets
 * start-up refuse a bad URL once instead of every worker failing on it. */
int mw_redis_check_url(const char *url, char *err, size_t errlen);
int mw_redis_connected(const mw_redis *r);
/* Whether the first connection attempt has ended, up or failed (a failed connect that hangs
 * ends after the timeout). */
int mw_redis_tried(const mw_redis *r);

/* Sends a command. Returns 0 (cb will be called exactly once) or -1 when not connected (cb is
 * never called). */
int mw_redis_command(mw_redis *r, int argc, const char **argv, const size_t *lens, mw_redis_reply_cb cb,
                     void *data);
/* Subscribes (pattern: PSUBSCRIBE); kept and replayed after every reconnect. */
int mw_redis_subscribe(mw_redis *r, const char *channel, int pattern);
/* Drops the connection and connects again (a stalled connection), replaying subscriptions. */
void mw_redis_reconnect(mw_redis *r);
/* Drops an exact subscription made with mw_redis_subscribe. */
void mw_redis_unsubscribe(mw_redis *r, const char *channel);
/* Writes what hiredis has buffered now instead of at the next poll (call it outside any
 * hiredis callback): the bus publishes before the worker spends time on local clients. */
void mw_redis_flush(mw_redis *r);
/* Writes what hiredis still buffers, waiting at most timeout_ms for the socket: before a
 * process that exits frees the connection (its last commands would be dropped with it). */
void mw_redis_flush_wait(mw_redis *r, int timeout_ms);
/* Sends a command whose reply nobody waits for (PUBLISH on the bus). Returns 0 or -1. */
int mw_redis_fire(mw_redis *r, int argc, const char **argv, const size_t *lens);

#endif
