/* mw_fanout: the one owner of sending to groups. It frames a payload once and queues the one
 * frame on every local recipient's connection (by client, room, user, or all), hands the remote
 * part to the bus once, and keeps the bus subscribed to exactly the rooms and users that have a
 * local member (the containers say when one is the first or was the last). */
#ifndef MW_FANOUT_H
#define MW_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "mw_bus.h"
#include "mw_clients.h"
#include "mw_frame.h"
#include "mw_metrics.h"
#include "mw_rooms.h"

typedef struct mw_fanout {
    mw_clients clients; /* this worker's clients by id */
    mw_rooms rooms;     /* room name -> local members */
    mw_rooms users;     /* user key (the token's sub) -> that user's local connections */
    mw_bus *bus;        /* the cluster bus (inactive without Redis) */
    mw_metrics_slot *m; /* the rooms gauge */
} mw_fanout;

/* Returns 0, or -1 when memory is short. */
int mw_fanout_init(mw_fanout *fo, mw_bus *bus, mw_metrics_slot *m);
void mw_fanout_free(mw_fanout *fo);

/* A client opened: registered, and indexed under its user key (c->id, c->conn, c->user_key set). */
void mw_fanout_add(mw_fanout *fo, mw_client *c);
/* A client closed: unregistered, out of every room and the user index (call after reading
 * its rooms: mw_rooms_of(&fo->rooms, c)). */
void mw_fanout_remove(mw_fanout *fo, mw_client *c);

/* Returns 1 when joined, 0 when already a member, -1 out of memory. */
int mw_fanout_join(mw_fanout *fo, mw_client *c, const char *room, size_t len);
/* Returns 1 when it was a member. */
int mw_fanout_leave(mw_fanout *fo, mw_client *c, const char *room, size_t len);
void mw_fanout_leave_all(mw_fanout *fo, mw_client *c);

/* The send functions take JSON text (or, for a binary send, bytes) already encoded. They return
 * -1 only when memory is short to frame it. */
/* To one client: 1 when queued for a local client, or handed to the bus for a client of another
 * worker (text only, unless local_only); else 0. */
int mw_fanout_send(mw_fanout *fo, const char *id, size_t id_len, const char *payload, size_t len, int binary,
                   int local_only);
/* To every client but exclude_id (may be NULL); returns the local recipients. */
long mw_fanout_broadcast(mw_fanout *fo, const char *payload, size_t len, const char *exclude_id, int local_only);
/* To a room's members but exclude_id (may be NULL); returns the local recipients. */
long mw_fanout_room(mw_fanout *fo, const char *room, size_t room_len, const char *payload, size_t len,
                    const char *exclude_id, int local_only);
/* To a user's connections; returns the local recipients. */
long mw_fanout_user(mw_fanout *fo, const char *key, size_t key_len, const char *payload, size_t len,
                    int local_only);
/* Queues the frame f (one reference each) to every local member of r but skip (may be NULL).
 * hold, when given, is asked first for each member: it returns 1 when it took care of that
 * member's copy itself (held for later, or not for this member), 0 to send it now. Returns how
 * many took it now. */
long mw_fanout_room_frame(mw_fanout *fo, mw_room *r, mw_frame *f, const mw_client *skip,
                          int (*hold)(void *arg, mw_client *c), void *arg);
/* Queues the frame f (one reference) to client c: 1 when queued. */
int mw_fanout_client_frame(mw_client *c, mw_frame *f);
/* The local client of an excludeClientId (NULL for NULL or an unknown id). */
const mw_client *mw_fanout_find_exclude(const mw_fanout *fo, const char *id);
/* Closes a client with code and reason: 1 when it is here or the bus takes it to its worker. */
int mw_fanout_disconnect(mw_fanout *fo, const char *id, size_t id_len, int code, const char *reason);
/* Closes every connection of a user (key: as in mw_fanout_user) with code and reason, here and,
 * through the bus, on every other worker. Returns the local connections closed. */
long mw_fanout_disconnect_user(mw_fanout *fo, const char *key, size_t key_len, int code, const char *reason);
/* Delivers what another worker published (mw_bus_handler): ALL, ROOM, USER, CLIENT, DISCONNECT
 * and USER_DISCONNECT; OP is the owner's. */
void mw_fanout_deliver(mw_fanout *fo, const mw_bus_msg *m);

#endif
