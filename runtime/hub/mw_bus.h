/* mw_bus: what one worker sends reaches the clients of every other worker and host, through
 * Redis pub/sub. Local clients are always served directly (mw_fanout); the bus carries only the
 * remote part, once per send. A worker listens on {prefix}all, on its own {prefix}w:{tag}, and on
 * {prefix}room:{name} / {prefix}user:{key} only while it has local members there. What arrives
 * from other workers goes to the owner through mw_bus_handler. */
#ifndef MW_BUS_H
#define MW_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mw_bus_msg.h"

struct mw_redis;

typedef struct mw_bus_handler {
    /* A message another worker published for this one's clients (never a probe, never ours). */
    void (*on_message)(void *owner, const mw_bus_msg *m);
} mw_bus_handler;

typedef struct mw_bus {
    uv_loop_t *loop;
    struct mw_redis *redis; /* publishes (NULL without Redis: the bus does nothing) */
    struct mw_redis *sub;   /* subscribes */
    const char *prefix;     /* redis.prefix */
    char tag[MW_WORKER_TAG_LEN + 1];
    double timeout;         /* redis.timeout: a probe not back by then means a stalled subscriber */
    uint64_t probe_seq, probe_sent_ms;
    int probe_pending;
    const mw_bus_handler *handler;
    void *owner;
} mw_bus;

void mw_bus_init(mw_bus *b, uv_loop_t *loop, const char *prefix, const char *tag, double timeout,
                 const mw_bus_handler *handler, void *owner);
/* Uses these Redis connections from now on (NULL, NULL: none, e.g. once they are freed); with a
 * subscriber, subscribes to the worker's own channels. */
void mw_bus_attach(mw_bus *b, struct mw_redis *redis, struct mw_redis *sub);
/* Whether the bus carries anything (Redis is configured). */
static inline int mw_bus_active(const mw_bus *b) { return b->redis != NULL; }
/* Whether id names a client of another worker that the bus can reach. */
int mw_bus_reaches(const mw_bus *b, const char *id, size_t len);
/* Publishes a send for the other workers (no-op without Redis). name: the room or user key
 * (ROOM, USER), or the target clientId (CLIENT, DISCONNECT, OP). */
void mw_bus_publish(mw_bus *b, int kind, const char *name, size_t name_len, const char *exclude, int code,
                    const char *payload, size_t payload_len);
/* Start or stop listening to a room's or user's channel (first local member joined, last left). */
void mw_bus_watch(mw_bus *b, int kind, const char *name, size_t len, int on);
/* Every heartbeat: publishes a probe to the worker's own channel; a probe not seen back within
 * redis.timeout means the subscriber connection is stalled, and it is rebuilt. */
void mw_bus_probe_tick(mw_bus *b);
/* The command connection went up or down: a probe sent before proves nothing. */
void mw_bus_forget_probe(mw_bus *b);
/* A message on a subscribed channel; returns 0 when the channel is not the bus's. */
int mw_bus_on_message(mw_bus *b, const char *channel, size_t channel_len, const char *msg, size_t msg_len);

#endif
