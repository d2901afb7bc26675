/* Unit test for the cluster bus's wire format (mw_bus_msg), without Redis: channel names per
 * kind, which channels are the bus's, the clientId check an exclude must pass, and messages
 * encoded then decoded (fields, payload untouched, room and user names from the channel), and
 * malformed ones refused. Links mw_hub. */
#include <stdlib.h>

#include "mw_bus_msg.h"
#include "mw_test.h"

static const char *id = "AbCdEfGh0123456789abcdefghij-_"; /* tag AbCdEfGh + 22 */

static void test_channels(void)
{
    char ch[MW_BUS_CHANNEL_MAX];
    CHECK_EQ_INT(mw_bus_channel("mw:", MW_BUS_ALL, NULL, 0, ch, sizeof(ch)), 6);
    CHECK_EQ_STR(ch, "mw:all");
    CHECK(mw_bus_channel("mw:", MW_BUS_ROOM, "lobby", 5, ch, sizeof(ch)) > 0);
    CHECK_EQ_STR(ch, "mw:room:lobby");
    CHECK(mw_bus_channel("mw:", MW_BUS_USER, "alice", 5, ch, sizeof(ch)) > 0);
    CHECK_EQ_STR(ch, "mw:user:alice");
    /* the kinds addressed to one client go to its worker: the tag is the id's first 8 bytes */
    CHECK(mw_bus_channel("mw:", MW_BUS_CLIENT, id, strlen(id), ch, sizeof(ch)) > 0);
    CHECK_EQ_STR(ch, "mw:w:AbCdEfGh");
    CHECK(mw_bus_channel("mw:", MW_BUS_DISCONNECT, id, strlen(id), ch, sizeof(ch)) > 0);
    CHECK_EQ_STR(ch, "mw:w:AbCdEfGh");
    CHECK_EQ_INT(mw_bus_channel("mw:", MW_BUS_ROOM, "lobby", 5, ch, 8), 0); /* does not fit */

    CHECK(mw_bus_is_channel("mw:", "mw:all", 6));
    CHECK(!mw_bus_is_channel("mw:", "mw:allx", 7)); /* "all" is a whole name */
    CHECK(mw_bus_is_channel("mw:", "mw:w:AbCdEfGh", 13));
    CHECK(mw_bus_is_channel("mw:", "mw:room:x", 9));
    CHECK(mw_bus_is_channel("mw:", "mw:user:x", 9));
    CHECK(!mw_bus_is_channel("mw:", "mw:news", 7)); /* an app's own channel under the prefix */
    CHECK(!mw_bus_is_channel("mw:", "xx:all", 6));
    CHECK(!mw_bus_is_channel("mw:", "mw", 2));

    CHECK(mw_bus_is_client_id(id, strlen(id)));
    CHECK(!mw_bus_is_client_id(id, strlen(id) - 1));
    CHECK(!mw_bus_is_client_id("AbCdEfGh0123456789abcdefghij+/", 30)); /* not base64url */
    CHECK(!mw_bus_is_client_id("AbCdEfGh0123456789abcdefghij\0x", 30));
}

static void test_round_trip(void)
{
    size_t len;
    mw_bus_msg m;
    const char payload[] = "{\"a\":\"line\\nbreak\"}\n";
    char *msg = mw_bus_encode("WorkerT1", MW_BUS_ROOM, "lobby", 5, id, 0, payload, sizeof(payload) - 1, &len);
    CHECK(msg != NULL);
    CHECK_EQ_INT(mw_bus_decode("mw:", "mw:room:lobby", 13, msg, len, &m), 0);
    CHECK(m.origin_len == 8 && memcmp(m.origin, "WorkerT1", 8) == 0);
    CHECK_EQ_INT(m.kind, MW_BUS_ROOM);
    CHECK_EQ_INT(m.target_len, 0); /* a room send names no target: the room is in the channel */
    CHECK(m.exclude_len == strlen(id) && memcmp(m.exclude, id, m.exclude_len) == 0);
    CHECK(m.name_len == 5 && memcmp(m.name, "lobby", 5) == 0);
    CHECK(m.payload_len == sizeof(payload) - 1 && memcmp(m.payload, payload, m.payload_len) == 0);
    free(msg);

    msg = mw_bus_encode("WorkerT1", MW_BUS_DISCONNECT, id, strlen(id), NULL, 4001, "bye now", 7, &len);
    CHECK_EQ_INT(mw_bus_decode("mw:", "mw:w:AbCdEfGh", 13, msg, len, &m), 0);
    CHECK_EQ_INT(m.kind, MW_BUS_DISCONNECT);
    CHECK(m.target_len == strlen(id) && memcmp(m.target, id, m.target_len) == 0);
    CHECK_EQ_INT(m.exclude_len, 0);
    CHECK_EQ_INT(atoi(m.code), 4001);
    CHECK(m.name == NULL);
    CHECK(m.payload_len == 7 && memcmp(m.payload, "bye now", 7) == 0);
    free(msg);

    msg = mw_bus_encode("WorkerT1", MW_BUS_USER, "alice", 5, NULL, 0, "", 0, &len);
    CHECK_EQ_INT(mw_bus_decode("mw:", "mw:user:alice", 13, msg, len, &m), 0);
    CHECK(m.name_len == 5 && memcmp(m.name, "alice", 5) == 0);
    CHECK_EQ_INT(m.payload_len, 0);
    /* a user message on a room channel names no user */
    CHECK_EQ_INT(mw_bus_decode("mw:", "mw:room:alice", 13, msg, len, &m), 0);
    CHECK(m.name == NULL);
    free(msg);
}

/* A history room's message as the Redis script publishes it: the epoch in the target field, the
 * offset in the code field, the room from the channel. */
static void test_history_message(void)
{
    const char *msg = "AbCdEfGh\nH\nAbCdEfGh-1f\n\n12\n{\"a\":1,\"room\":\"r:1\",\"offset\":12}";
    mw_bus_msg m;
    CHECK_EQ_INT(mw_bus_decode("mw:", "mw:room:r:1", 11, msg, strlen(msg), &m), 0);
    CHECK_EQ_INT(m.kind, MW_BUS_HISTORY);
    CHECK(m.target_len == 11 && memcmp(m.target, "AbCdEfGh-1f", 11) == 0);
    CHECK(m.code_len == 2 && memcmp(m.code, "12", 2) == 0);
    CHECK(m.name_len == 3 && memcmp(m.name, "r:1", 3) == 0);
    CHECK_EQ_INT(m.exclude_len, 0);
    CHECK(m.payload_len == strlen("{\"a\":1,\"room\":\"r:1\",\"offset\":12}"));
}

static void test_malformed(void)
{
    mw_bus_msg m;
    const char *bad[] = { "", "WorkerT1\n", "WorkerT1\nR\n\n\n", "WorkerT1\nRR\n\n\n0\n{}" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(mw_bus_decode("mw:", "mw:all", 6, bad[i], strlen(bad[i]), &m), -1);
    const char ok[] = "WorkerT1\nA\n\n\n0\n";
    CHECK_EQ_INT(mw_bus_decode("mw:", "mw:all", 6, ok, strlen(ok), &m), 0);
}

int main(void)
{
    test_history_message();
    test_channels();
    test_round_trip();
    test_malformed();
    MW_TEST_DONE();
}
