/* mw_bus_msg: the cluster bus's wire format, free of Redis and sockets: channel names, and the
 * message "origin\nkind\ntarget\nexclude\ncode\npayload" encoded and decoded. Room and user
 * names travel in the channel name, so they need no escaping. */
#ifndef MW_BUS_MSG_H
#define MW_BUS_MSG_H

#include <stddef.h>

#include "mw_rooms.h"
#include "mw_util.h"

#define MW_BUS_CHANNEL_MAX (MW_ROOM_NAME_MAX + 256)

enum {
    MW_BUS_ALL = 'A',        /* to every client (but exclude) */
    MW_BUS_ROOM = 'R',       /* to a room's members (but exclude) */
    MW_BUS_USER = 'U',       /* to a user's connections */
    MW_BUS_CLIENT = 'C',     /* to one client, on the worker its id names */
    MW_BUS_DISCONNECT = 'D', /* close one client with code and reason */
    MW_BUS_PROBE = 'P',      /* to ourselves: proves the subscriber connection still delivers */
    MW_BUS_OP = 'O',         /* a webSocketServer call for a client of that worker (JSON) */
    MW_BUS_USER_DISCONNECT = 'K', /* close every connection of a user (on the user's channel) */
    MW_BUS_HISTORY = 'H',    /* a history room's message (mw_hist_redis): target is the room's
                              * epoch, code its offset; published by the Redis script that stored
                              * it, delivered by every worker with members, the publisher's too */
};

/* A decoded message; every pointer points into the channel or message it was decoded from. */
typedef struct mw_bus_msg {
    const char *origin; /* the publishing worker's tag */
    size_t origin_len;
    int kind;
    const char *target; /* a clientId (CLIENT, DISCONNECT, OP), the epoch (HISTORY) */
    size_t target_len;
    const char *exclude; /* a clientId to skip (ALL, ROOM), may be empty */
    size_t exclude_len;
    const char *code;    /* a close code (DISCONNECT), probe number (PROBE) or offset (HISTORY), decimal */
    size_t code_len;
    const char *name;    /* the room (ROOM, HISTORY) or user key (USER) from the channel; NULL when the
                          * channel is not of that kind */
    size_t name_len;
    const char *payload; /* the JSON text to frame, or a close reason */
    size_t payload_len;
} mw_bus_msg;

/* The channel of a kind: {prefix}all, {prefix}room:{name}, {prefix}user:{name}, or for the
 * kinds addressed to one worker {prefix}w:{tag}, the tag being the first MW_WORKER_TAG_LEN bytes
 * of name (a clientId or a tag). Returns its length, 0 when it does not fit in size. */
size_t mw_bus_channel(const char *prefix, int kind, const char *name, size_t len, char *out, size_t size);
/* Whether channel is one of the bus's ({p}all, {p}w:..., {p}room:..., {p}user:...); an app may
 * subscribe to other channels under the prefix. */
int mw_bus_is_channel(const char *prefix, const char *channel, size_t len);
/* Whether id can be a clientId (so an exclude that is not one excludes nobody). */
int mw_bus_is_client_id(const char *id, size_t len);
/* Builds a message (malloc'd, *len bytes). target is used by the kinds addressed to one client
 * or worker; exclude may be NULL. Returns NULL when memory is short. */
char *mw_bus_encode(const char *origin, int kind, const char *target, size_t target_len, const char *exclude,
                    int code, const char *payload, size_t payload_len, size_t *len);
/* Splits a message that arrived on channel (one of the bus's). Returns 0, or -1 when malformed. */
int mw_bus_decode(const char *prefix, const char *channel, size_t channel_len, const char *msg, size_t msg_len,
                  mw_bus_msg *out);

#endif
