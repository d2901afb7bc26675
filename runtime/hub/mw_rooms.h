/* mw_rooms: named groups of this worker's connections, for room broadcasts (and, as a second
 * instance, the per-user index behind sendMessageToUser). Join, leave and member lookup are
 * O(1): each side keeps the other's index, so removal is a swap with the last element. */
#ifndef MW_ROOMS_H
#define MW_ROOMS_H

#include <stddef.h>
#include <stdint.h>

#include "mw_frame.h"

struct mw_conn;

#define MW_ROOM_NAME_MAX 255

typedef struct mw_room_member {
    struct mw_conn *conn;
    uint32_t slot; /* index of this membership in the connection's list */
} mw_room_member;

typedef struct mw_room {
    struct mw_room *hnext;
    mw_room_member *members;
    uint32_t n, cap;
    uint32_t name_len;
    char name[];
} mw_room;

typedef struct mw_membership {
    mw_room *room;
    uint32_t index; /* index of the connection in room->members */
} mw_membership;

/* A connection's memberships in one mw_rooms instance. */
typedef struct mw_memberships {
    mw_membership *items;
    uint32_t n, cap;
} mw_memberships;

typedef struct mw_rooms {
    mw_room **buckets;
    size_t n_buckets;
    size_t count; /* rooms with members */
    int kind;     /* which of a connection's membership lists this instance uses */
} mw_rooms;

enum { MW_ROOMS_ROOMS = 0, MW_ROOMS_USERS = 1, MW_ROOMS_KINDS = 2 };

int mw_rooms_init(mw_rooms *rs, int kind);
void mw_rooms_free(mw_rooms *rs);
mw_room *mw_rooms_find(const mw_rooms *rs, const char *name, size_t len);
/* Returns 1 when joined, 0 when already a member, -1 out of memory. */
int mw_rooms_join(mw_rooms *rs, struct mw_conn *c, const char *name, size_t len);
/* Returns 1 when left, 0 when not a member. */
int mw_rooms_leave(mw_rooms *rs, struct mw_conn *c, const char *name, size_t len);
/* Queues f to every member but exclude; returns how many took it. */
size_t mw_rooms_send(mw_rooms *rs, const char *name, size_t len, mw_frame *f, const struct mw_conn *exclude);
/* The connection's memberships in this instance (its rooms). */
mw_memberships *mw_rooms_of(const mw_rooms *rs, struct mw_conn *c);
/* Removes the connection from the membership at `slot` (the last one is cheapest). */
void mw_rooms_leave_slot(mw_rooms *rs, struct mw_conn *c, uint32_t slot);
struct mw_worker;
/* Removes the connection from every room of this instance; rooms left empty stop being
 * watched on the worker's bus. */
void mw_rooms_leave_all(mw_rooms *rs, struct mw_conn *c, struct mw_worker *w);

#endif
