/* Unit test for mw_rooms as a pure container: random joins and leaves of many clients in many
 * rooms, checked after every step against a plain membership matrix; the two-way indexes (room
 * member -> client slot, client membership -> room index) checked for consistency; and the
 * first-member / last-member reports a caller uses to watch and unwatch a room. Links mw_hub. */
#include <stdlib.h>

#include "mw_clients.h"
#include "mw_rooms.h"
#include "mw_test.h"

#define CLIENTS 12
#define ROOMS 40 /* more rooms than clients: rooms empty and fill up again often */

static mw_client clients[CLIENTS];
static int model[CLIENTS][ROOMS];

static void room_name(int r, char *out) { snprintf(out, 16, "room-%d", r); }

static int members_in_model(int r)
{
    int n = 0;
    for (int c = 0; c < CLIENTS; c++)
        n += model[c][r];
    return n;
}

static void check_consistent(mw_rooms *rs)
{
    size_t rooms_seen = 0;
    for (int r = 0; r < ROOMS; r++) {
        char name[16];
        room_name(r, name);
        mw_room *room = mw_rooms_find(rs, name, strlen(name));
        int expected = members_in_model(r);
        if (expected == 0) {
            CHECK(room == NULL); /* an empty room is freed */
            continue;
        }
        rooms_seen++;
        CHECK(room != NULL);
        if (!room)
            continue;
        CHECK_EQ_INT(room->n, expected);
        for (uint32_t i = 0; i < room->n; i++) {
            mw_room_member m = room->members[i];
            mw_memberships *ms = mw_rooms_of(rs, m.client);
            CHECK(m.slot < ms->n);
            CHECK(ms->items[m.slot].room == room);
            CHECK_EQ_INT(ms->items[m.slot].index, i);
            CHECK(model[m.client - clients][r] == 1);
        }
    }
    CHECK_EQ_INT(rs->count, rooms_seen);
    for (int c = 0; c < CLIENTS; c++) {
        mw_memberships *ms = mw_rooms_of(rs, &clients[c]);
        int expected = 0;
        for (int r = 0; r < ROOMS; r++)
            expected += model[c][r];
        CHECK_EQ_INT(ms->n, expected);
        for (uint32_t j = 0; j < ms->n; j++) {
            mw_membership m = ms->items[j];
            CHECK(m.room->members[m.index].client == &clients[c]);
            CHECK_EQ_INT(m.room->members[m.index].slot, j);
        }
    }
}

static void count_room(void *arg, const mw_room *r) { (*(int *)arg)++; }

int main(void)
{
    mw_rooms rs;
    CHECK_EQ_INT(mw_rooms_init(&rs, MW_ROOMS_ROOMS), 0);
    srand(12345);
    int firsts = 0, lasts = 0;
    for (int step = 0; step < 20000 && !mw_test_failures; step++) {
        int c = rand() % CLIENTS, r = rand() % ROOMS, op = rand() % 10;
        char name[16];
        room_name(r, name);
        if (op < 5) {
            int was_empty = members_in_model(r) == 0, first = -1;
            int rv = mw_rooms_join(&rs, &clients[c], name, strlen(name), &first);
            CHECK_EQ_INT(rv, model[c][r] ? 0 : 1); /* joining twice is not a second membership */
            CHECK_EQ_INT(first, rv == 1 && was_empty); /* the first member, reported once */
            firsts += first == 1;
            model[c][r] = 1;
        } else if (op < 9) {
            int last = -1;
            int rv = mw_rooms_leave(&rs, &clients[c], name, strlen(name), &last);
            CHECK_EQ_INT(rv, model[c][r]);
            model[c][r] = 0;
            CHECK_EQ_INT(last, rv == 1 && members_in_model(r) == 0); /* the last member left */
            lasts += last == 1;
        } else { /* leave everything, last slot first, as a disconnect does */
            mw_memberships *ms = mw_rooms_of(&rs, &clients[c]);
            while (ms->n > 0) {
                mw_room *room = ms->items[ms->n - 1].room;
                int k = atoi(room->name + 5);
                model[c][k] = 0;
                mw_room *gone = mw_rooms_leave_slot(&rs, &clients[c], ms->n - 1);
                /* the emptied room comes back, out of the index, its name still readable */
                CHECK((gone != NULL) == (members_in_model(k) == 0));
                if (gone) {
                    CHECK(gone == room && strcmp(gone->name, room->name) == 0);
                    CHECK(mw_rooms_find(&rs, gone->name, gone->name_len) == NULL);
                    lasts++;
                }
                mw_room_free(gone);
            }
        }
        check_consistent(&rs);
    }
    CHECK(firsts > 100 && lasts > 100);
    CHECK(firsts - lasts == (int)rs.count); /* every room still alive was made and not emptied */
    int seen = 0;
    mw_rooms_each(&rs, count_room, &seen);
    CHECK_EQ_INT(seen, rs.count);
    for (int c = 0; c < CLIENTS; c++) {
        mw_memberships *ms = mw_rooms_of(&rs, &clients[c]);
        while (ms->n > 0)
            mw_room_free(mw_rooms_leave_slot(&rs, &clients[c], ms->n - 1));
        mw_client_release(&clients[c]);
    }
    CHECK_EQ_INT(rs.count, 0);

    /* past the first bucket array: every room still found after the table grew */
    for (int k = 0; k < 1000; k++) {
        char name[16];
        int first;
        snprintf(name, sizeof(name), "big-%d", k);
        CHECK_EQ_INT(mw_rooms_join(&rs, &clients[k % CLIENTS], name, strlen(name), &first), 1);
    }
    CHECK(rs.n_buckets >= 1000);
    for (int k = 0; k < 1000; k++) {
        char name[16];
        snprintf(name, sizeof(name), "big-%d", k);
        mw_room *r = mw_rooms_find(&rs, name, strlen(name));
        CHECK(r && r->n == 1 && r->members[0].client == &clients[k % CLIENTS]);
    }
    mw_rooms_free(&rs); /* frees the rooms that still have members */
    for (int c = 0; c < CLIENTS; c++) {
        clients[c].memberships[MW_ROOMS_ROOMS].n = 0; /* their rooms are gone with the table */
        mw_client_release(&clients[c]);
    }
    MW_TEST_DONE();
}
