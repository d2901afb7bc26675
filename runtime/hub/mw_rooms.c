/* mw_rooms: a chained hash of rooms by name (mw_hashtab); a room lives while it has members. */
#include "mw_rooms.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mw_clients.h"
#include "mw_hashtab.h"

int mw_rooms_init(mw_rooms *rs, int kind)
{
    memset(rs, 0, sizeof(*rs));
    rs->kind = kind;
    rs->n_buckets = 256;
    rs->buckets = calloc(rs->n_buckets, sizeof(mw_hash_link *));
    return rs->buckets ? 0 : -1;
}

void mw_room_free(mw_room *r)
{
    if (!r)
        return;
    free(r->members);
    free(r);
}

void mw_rooms_free(mw_rooms *rs)
{
    for (size_t i = 0; rs->buckets && i < rs->n_buckets; i++) {
        for (mw_hash_link *l = rs->buckets[i], *next; l; l = next) {
            next = l->next;
            mw_room_free(MW_HASH_ENTRY(l, mw_room, link));
        }
    }
    free(rs->buckets);
    rs->buckets = NULL;
}

mw_memberships *mw_rooms_of(const mw_rooms *rs, mw_client *c) { return &c->memberships[rs->kind]; }

mw_room *mw_rooms_find(const mw_rooms *rs, const char *name, size_t len)
{
    size_t i = mw_hashtab_bucket(name, len, rs->n_buckets);
    for (mw_hash_link *l = rs->buckets[i]; l; l = l->next) {
        mw_room *r = MW_HASH_ENTRY(l, mw_room, link);
        if (r->name_len == len && memcmp(r->name, name, len) == 0)
            return r;
    }
    return NULL;
}

void mw_rooms_each(const mw_rooms *rs, void (*fn)(void *arg, const mw_room *r), void *arg)
{
    for (size_t i = 0; i < rs->n_buckets; i++)
        for (mw_hash_link *l = rs->buckets[i]; l; l = l->next)
            fn(arg, MW_HASH_ENTRY(l, mw_room, link));
}

static void room_key(const mw_hash_link *l, const char **key, size_t *len)
{
    const mw_room *r = MW_HASH_ENTRY(l, const mw_room, link);
    *key = r->name;
    *len = r->name_len;
}

/* Takes an empty room out of the index (the caller frees it). */
static void unlink_room(mw_rooms *rs, mw_room *r)
{
    assert(r->n == 0);
    size_t i = mw_hashtab_bucket(r->name, r->name_len, rs->n_buckets);
    for (mw_hash_link **p = &rs->buckets[i]; *p; p = &(*p)->next) {
        if (*p == &r->link) {
            *p = r->link.next;
            break;
        }
    }
    rs->count--;
}

static int reserve(void **items, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    uint32_t ncap = *cap ? *cap * 2 : 4;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*items, ncap * size);
    if (!p)
        return -1;
    *items = p;
    *cap = ncap;
    return 0;
}

int mw_rooms_join(mw_rooms *rs, mw_client *c, const char *name, size_t len, int *first)
{
    mw_memberships *ms = mw_rooms_of(rs, c);
    mw_room *r = mw_rooms_find(rs, name, len);
    *first = 0;
    if (r) {
        for (uint32_t i = 0; i < ms->n; i++)
            if (ms->items[i].room == r)
                return 0;
    } else {
        r = calloc(1, sizeof(mw_room) + len + 1);
        if (!r)
            return -1;
        memcpy(r->name, name, len);
        r->name_len = (uint32_t)len;
        r->gen = ++rs->gens;
        if (rs->count + 1 > rs->n_buckets)
            mw_hashtab_grow(&rs->buckets, &rs->n_buckets, room_key);
        size_t i = mw_hashtab_bucket(name, len, rs->n_buckets);
        r->link.next = rs->buckets[i];
        rs->buckets[i] = &r->link;
        rs->count++;
    }
    if (reserve((void **)&r->members, &r->cap, r->n + 1, sizeof(mw_room_member)) != 0 ||
        reserve((void **)&ms->items, &ms->cap, ms->n + 1, sizeof(mw_membership)) != 0) {
        if (r->n == 0) { /* a room made for this join */
            unlink_room(rs, r);
            mw_room_free(r);
        }
        return -1;
    }
    r->members[r->n] = (mw_room_member){ c, ms->n };
    ms->items[ms->n] = (mw_membership){ r, r->n };
    r->n++;
    ms->n++;
    *first = r->n == 1;
    return 1;
}

mw_room *mw_rooms_leave_slot(mw_rooms *rs, mw_client *c, uint32_t slot)
{
    mw_memberships *ms = mw_rooms_of(rs, c);
    if (slot >= ms->n)
        return NULL;
    mw_membership m = ms->items[slot];
    mw_room *r = m.room;
    assert(m.index < r->n && r->members[m.index].client == c);
    /* remove the client from the room: move the room's last member into its place */
    mw_room_member last = r->members[--r->n];
    if (m.index != r->n) {
        r->members[m.index] = last;
        mw_rooms_of(rs, last.client)->items[last.slot].index = m.index;
    }
    /* remove the room from the client's list the same way */
    mw_membership lastm = ms->items[--ms->n];
    if (slot != ms->n) {
        ms->items[slot] = lastm;
        lastm.room->members[lastm.index].slot = slot;
    }
    if (r->n > 0)
        return NULL;
    unlink_room(rs, r);
    return r;
}

int mw_rooms_leave(mw_rooms *rs, mw_client *c, const char *name, size_t len, int *last)
{
    mw_room *r = mw_rooms_find(rs, name, len);
    mw_memberships *ms = mw_rooms_of(rs, c);
    *last = 0;
    if (!r)
        return 0;
    for (uint32_t i = 0; i < ms->n; i++) {
        if (ms->items[i].room == r) {
            mw_room *gone = mw_rooms_leave_slot(rs, c, i);
            *last = gone != NULL;
            mw_room_free(gone);
            return 1;
        }
    }
    return 0;
}
