/* Unit test for mw_rooms: random joins and leaves of many connections in many rooms, checked
 * after every step against a plain membership matrix, and the two-way indexes (room member ->
 * connection slot, connection membership -> room index) checked for consistency. */
#include <stdlib.h>

#include "mw_conn.h"
#include "mw_rooms.h"
#include "mw_test.h"

#define CONNS 40
#define ROOMS 12

static mw_conn conns[CONNS];
static int model[CONNS][ROOMS];

static void room_name(int r, char *out) { snprintf(out, 16, "room-%d", r); }

static void check_consistent(mw_rooms *rs)
{
    size_t rooms_seen = 0;
    for (int r = 0; r < ROOMS; r++) {
        char name[16];
        room_name(r, name);
        mw_room *room = mw_rooms_find(rs, name, strlen(name));
        int expected = 0;
        for (int c = 0; c < CONNS; c++)
            expected += model[c][r];
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
            mw_memberships *ms = mw_rooms_of(rs, m.conn);
            CHECK(m.slot < ms->n);
            CHECK(ms->items[m.slot].room == room);
            CHECK_EQ_INT(ms->items[m.slot].index, i);
            CHECK(model[m.conn - conns][r] == 1);
        }
    }
    CHECK_EQ_INT(rs->count, rooms_seen);
    for (int c = 0; c < CONNS; c++) {
        mw_memberships *ms = mw_rooms_of(rs, &conns[c]);
        int expected = 0;
        for (int r = 0; r < ROOMS; r++)
            expected += model[c][r];
        CHECK_EQ_INT(ms->n, expected);
        for (uint32_t j = 0; j < ms->n; j++) {
            mw_membership m = ms->items[j];
            CHECK(m.room->members[m.index].conn == &conns[c]);
            CHECK_EQ_INT(m.room->members[m.index].slot, j);
        }
    }
}

int main(void)
{
    mw_rooms rs;
    CHECK_EQ_INT(mw_rooms_init(&rs, MW_ROOMS_ROOMS), 0);
    srand(12345);
    for (int step = 0; step < 20000 && !mw_test_failures; step++) {
        int c = rand() % CONNS, r = rand() % ROOMS, op = rand() % 10;
        char name[16];
        room_name(r, name);
        if (op < 5) {
            int rv = mw_rooms_join(&rs, &conns[c], name, strlen(name));
            CHECK_EQ_INT(rv, model[c][r] ? 0 : 1); /* joining twice is not a second membership */
            model[c][r] = 1;
        } else if (op < 9) {
            int rv = mw_rooms_leave(&rs, &conns[c], name, strlen(name));
            CHECK_EQ_INT(rv, model[c][r]);
            model[c][r] = 0;
        } else { /* leave everything, last slot first, as a disconnect does */
            mw_memberships *ms = mw_rooms_of(&rs, &conns[c]);
            while (ms->n > 0)
                mw_rooms_leave_slot(&rs, &conns[c], ms->n - 1);
            for (int k = 0; k < ROOMS; k++)
                model[c][k] = 0;
        }
        check_consistent(&rs);
    }
    for (int c = 0; c < CONNS; c++)
        free(conns[c].memberships[MW_ROOMS_ROOMS].items);
    mw_rooms_free(&rs);
    MW_TEST_DONE();
}
