/* mw_bus: what one worker sends reaches the clients of every other worker and host, through
 * Redis pub/sub. Local clients are always served directly; the bus carries only the remote
 * part, once per send. A worker listens on {prefix}all, on its own {prefix}w:{tag}, and on
 * {prefix}room:{name} / {prefix}user:{key} only while it has local members there. */
#ifndef MW_BUS_H
#define MW_BUS_H

#include <stddef.h>

struct mw_worker;

enum {
    MW_BUS_ALL = 'A',        /* to every client (but exclude) */
    MW_BUS_ROOM = 'R',       /* to a room's members (but exclude) */
    MW_BUS_USER = 'U',       /* to a user's connections */
    MW_BUS_CLIENT = 'C',     /* to one client, on the worker its id names */
    MW_BUS_DISCONNECT = 'D', /* close one client with code and reason */
    MW_BUS_PROBE = 'P',      /* to ourselves: proves the subscriber connection still delivers */
    MW_BUS_OP = 'O',         /* a webSocketServer call for a client of that worker (JSON) */
};

/* Subscribes to the worker's own channels (no-op without Redis). */
void mw_bus_start(struct mw_worker *w);
/* Publishes a send for the other workers (no-op without Redis). name: the room or user key
 * (ROOM, USER), or the target clientId (CLIENT, DISCONNECT). */
void mw_bus_publish(struct mw_worker *w, int kind, const char *name, size_t name_len, const char *exclude,
                    int code, const char *payload, size_t payload_len);
/* Start or stop listening to a room's or user's channel (first local member joined, last left). */
void mw_bus_watch(struct mw_worker *w, int kind, const char *name, size_t len, int on);
/* Every heartbeat: publishes a probe to the worker's own channel; a probe not seen back within
 * redis.timeout means the subscriber connection is stalled, and it is rebuilt. */
void mw_bus_probe_tick(struct mw_worker *w);
/* A message on a bus channel; returns 0 when the channel is not the bus's. */
int mw_bus_on_message(struct mw_worker *w, const char *channel, size_t channel_len, const char *msg,
                      size_t msg_len);

#endif
