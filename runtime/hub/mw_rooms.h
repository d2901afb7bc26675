/* mw_rooms: named groups of this worker's clients, for room broadcasts (and, as a second
 * instance, the per-user index behind sendMessageToUser). A container only: it tells its caller
 * when a client is a room's first member or was its last (mw_fanout watches the bus channel then);
 * it never sends. Join, leave and member lookup are O(1): each side keeps the other's index, so
 * removal is a swap with the last element. */
#ifndef MW_ROOMS_H
#define MW_ROOMS_H

#include <stddef.h>
#include <stdint.h>

#include "mw_hashtab.h"

struct mw_client;

#define MW_ROOM_NAME_MAX 255

typedef struct mw_room_member {
    struct mw_client *client;
    uint32_t slot; /* index of this membership in the client's list */
} mw_room_member;

typedef struct mw_room {
    mw_hash_link link; /* mw_rooms' chain */
    mw_room_member *members;
    uint32_t n, cap;
    uint64_t gen; /* made by the instance's gen-th room creation: a room left empty and joined
                   * again is a new room (state kept about the old one is stale) */
    uint32_t name_len;
    char name[];
} mw_room;

typedef struct mw_membership {
    mw_room *room;
    uint32_t index; /* index of the client in room->members */
} mw_membership;

/* A client's memberships in one mw_rooms instance. */
typedef struct mw_memberships {
    mw_membership *items;
    uint32_t n, cap;
} mw_memberships;

typedef struct mw_rooms {
    mw_hash_link **buckets;
    size_t n_buckets;
    size_t count; /* rooms with members */
    uint64_t gens; /* rooms created so far */
    int kind;     /* which of a client's membership lists this instance uses */
} mw_rooms;

enum { MW_ROOMS_ROOMS = 0, MW_ROOMS_USERS = 1, MW_ROOMS_KINDS = 2 };

int mw_rooms_init(mw_rooms *rs, int kind);
void mw_rooms_free(mw_rooms *rs);
mw_room *mw_rooms_find(const mw_rooms *rs, const char *name, size_t len);
/* Returns 1 when joined (*first set to 1 when c is the room's first member, else 0), 0 when
 * already a member, -1 out of memory. */
int mw_rooms_join(mw_rooms *rs, struct mw_client *c, const char *name, size_t len, int *first);
/* Returns 1 when left (*last set to 1 when c was the last member: the room is gone), 0 when
 * not a member. */
int mw_rooms_leave(mw_rooms *rs, struct mw_client *c, const char *name, size_t len, int *last);
/* The client's memberships in this instance (its rooms). */
mw_memberships *mw_rooms_of(const mw_rooms *rs, struct mw_client *c);
/* Removes the client from the membership at `slot` (the last one is cheapest). When it was the
 * room's last member the room leaves the index and is returned: the caller reads its name and
 * frees it with mw_room_free. Else NULL. */
mw_room *mw_rooms_leave_slot(mw_rooms *rs, struct mw_client *c, uint32_t slot);
void mw_room_free(mw_room *r);
/* Calls fn for every room with members, in no particular order. */
void mw_rooms_each(const mw_rooms *rs, void (*fn)(void *arg, const mw_room *r), void *arg);

#endif
