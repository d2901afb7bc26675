/* Unit test for mw_clients as a pure container: clients added, found by id, removed (also while
 * walking the list, as a heartbeat that drops clients does), the table grown past its first
 * size with every client still found; and a client's user-index entry (an mw_rooms of kind
 * USERS) reporting its first and last connection. Links mw_hub. */
#include <stdlib.h>

#include "mw_clients.h"
#include "mw_rooms.h"
#include "mw_test.h"

#define N 3000 /* more than the 1024 buckets the table starts with */

static mw_client clients[N];

static void make_id(int i, char *out)
{
    /* a worker tag of 8 characters, then 22 random-looking ones */
    snprintf(out, MW_CLIENT_ID_LEN + 1, "wkrTag01%022d", i * 7919);
}

static size_t walk(const mw_clients *cs)
{
    size_t n = 0;
    for (mw_client *c = cs->head; c; c = c->all_next)
        n++;
    return n;
}

int main(void)
{
    mw_clients cs;
    CHECK_EQ_INT(mw_clients_init(&cs), 0);
    for (int i = 0; i < N; i++) {
        make_id(i, clients[i].id);
        CHECK_EQ_INT(strlen(clients[i].id), MW_CLIENT_ID_LEN);
        mw_clients_add(&cs, &clients[i]);
        CHECK(clients[i].registered);
    }
    CHECK_EQ_INT(cs.count, N);
    CHECK(cs.n_buckets >= N); /* it grew */
    CHECK_EQ_INT(walk(&cs), N);
    CHECK(cs.head == &clients[N - 1]); /* newest first */
    for (int i = 0; i < N; i++)
        CHECK(mw_clients_find(&cs, clients[i].id, MW_CLIENT_ID_LEN) == &clients[i]);
    char other[MW_CLIENT_ID_LEN + 1];
    make_id(N + 1, other);
    CHECK(mw_clients_find(&cs, other, MW_CLIENT_ID_LEN) == NULL);
    CHECK(mw_clients_find(&cs, clients[0].id, MW_CLIENT_ID_LEN - 1) == NULL); /* not an id's length */

    /* remove every third while walking: the next pointer taken before stays valid */
    mw_client *next;
    for (mw_client *c = cs.head; c; c = next) {
        next = c->all_next;
        if ((c - clients) % 3 == 0)
            mw_clients_remove(&cs, c);
    }
    CHECK_EQ_INT(cs.count, N - (N + 2) / 3);
    CHECK_EQ_INT(walk(&cs), cs.count);
    for (int i = 0; i < N; i++) {
        mw_client *found = mw_clients_find(&cs, clients[i].id, MW_CLIENT_ID_LEN);
        CHECK(found == (i % 3 == 0 ? NULL : &clients[i]));
        CHECK_EQ_INT(clients[i].registered, i % 3 != 0);
    }
    mw_clients_remove(&cs, &clients[0]); /* not registered: nothing happens */
    CHECK_EQ_INT(cs.count, N - (N + 2) / 3);

    /* the user index: one user's connections, first and last reported */
    mw_rooms users;
    CHECK_EQ_INT(mw_rooms_init(&users, MW_ROOMS_USERS), 0);
    int first = -1, last = -1;
    CHECK_EQ_INT(mw_rooms_join(&users, &clients[1], "alice", 5, &first), 1);
    CHECK_EQ_INT(first, 1);
    CHECK_EQ_INT(mw_rooms_join(&users, &clients[2], "alice", 5, &first), 1);
    CHECK_EQ_INT(first, 0);
    CHECK_EQ_INT(mw_rooms_of(&users, &clients[1])->n, 1);
    CHECK_EQ_INT(clients[1].memberships[MW_ROOMS_ROOMS].n, 0); /* the other kind is untouched */
    CHECK_EQ_INT(mw_rooms_leave(&users, &clients[1], "alice", 5, &last), 1);
    CHECK_EQ_INT(last, 0);
    CHECK_EQ_INT(mw_rooms_leave(&users, &clients[1], "alice", 5, &last), 0); /* not a member any more */
    CHECK_EQ_INT(last, 0);
    CHECK_EQ_INT(mw_rooms_leave(&users, &clients[2], "alice", 5, &last), 1);
    CHECK_EQ_INT(last, 1);
    CHECK(mw_rooms_find(&users, "alice", 5) == NULL);
    mw_rooms_free(&users);

    clients[5].user_key = strdup("bob");
    for (int i = 0; i < N; i++) {
        mw_clients_remove(&cs, &clients[i]);
        mw_client_release(&clients[i]);
    }
    CHECK(clients[5].user_key == NULL);
    CHECK_EQ_INT(cs.count, 0);
    CHECK(cs.head == NULL);
    mw_clients_free(&cs);
    MW_TEST_DONE();
}
