/* Unit test for mw_history as a pure container: offsets and epochs, the frame shape (the message
 * object with "room" and "offset" appended, JSON escaping of the name), the ring kept at `size`
 * while it grows, what a recovery may rely on (first, get, covers), expiry after ttl, a smaller
 * size, the per-worker memory cap (least recently written rooms lose their oldest messages
 * first), and the frame references it holds. Links mw_hub. */
#include <stdlib.h>

#include "mw_history.h"
#include "mw_test.h"

static char text[4096];

/* The payload of f as a NUL-terminated string (in a static buffer). */
static const char *payload_of(const mw_frame *f)
{
    size_t len;
    const uint8_t *p = mw_frame_payload(f, &len);
    if (len >= sizeof(text))
        len = sizeof(text) - 1;
    memcpy(text, p, len);
    text[len] = '\0';
    return text;
}

static mw_frame *append(mw_history *h, mw_history_room *r, const char *body, uint64_t now)
{
    return mw_history_append(h, r, body, strlen(body), now);
}

static void test_frames_and_offsets(void)
{
    mw_history h;
    CHECK(mw_history_init(&h, "TAGTAG01", 1 << 20, NULL) == 0);
    mw_history_room *r = mw_history_open(&h, "chat:1", 6, 5, 1000, 0);
    CHECK(r != NULL);
    CHECK_EQ_INT(r->last, 0);
    CHECK_EQ_INT(mw_history_first(r), 1);
    CHECK(strncmp(r->epoch, "TAGTAG01-", 9) == 0);
    CHECK(mw_history_covers(r, 0));
    CHECK(!mw_history_covers(r, 1));

    mw_frame *f = append(&h, r, "{\"a\":1}", 10);
    CHECK(f != NULL);
    CHECK_EQ_STR(payload_of(f), "{\"a\":1,\"room\":\"chat:1\",\"offset\":1}");
    CHECK_EQ_INT(f->refs, 2); /* the caller's and the history's */
    CHECK(f->data[0] == 0x81);
    mw_frame_unref(f);
    f = append(&h, r, " { } ", 11);
    CHECK_EQ_STR(payload_of(f), " { \"room\":\"chat:1\",\"offset\":2}");
    mw_frame_unref(f);
    f = append(&h, r, "{\"b\":[1,2] }\n", 12);
    CHECK_EQ_STR(payload_of(f), "{\"b\":[1,2] ,\"room\":\"chat:1\",\"offset\":3}");
    mw_frame_unref(f);
    CHECK(append(&h, r, "[1]", 13) == NULL);
    CHECK(append(&h, r, "{", 13) == NULL);
    CHECK(append(&h, r, "", 13) == NULL);
    CHECK(append(&h, r, "\"x\"", 13) == NULL);
    CHECK_EQ_INT(r->last, 3); /* refused messages take no offset */
    CHECK(mw_history_get(r, 2) != NULL);
    CHECK_EQ_STR(payload_of(mw_history_get(r, 2)), " { \"room\":\"chat:1\",\"offset\":2}");

    /* the same room again: the same history; another room: another epoch */
    CHECK(mw_history_open(&h, "chat:1", 6, 5, 1000, 20) == r);
    mw_history_room *r2 = mw_history_open(&h, "chat:2", 6, 5, 1000, 20);
    CHECK(r2 && r2 != r && strcmp(r2->epoch, r->epoch) != 0);
    CHECK_EQ_INT(h.count, 2);
    mw_history_free(&h);
}

static void test_ring_and_recovery_window(void)
{
    mw_history h;
    mw_history_init(&h, "TAGTAG02", 1 << 20, NULL);
    mw_history_room *r = mw_history_open(&h, "r", 1, 3, 1000, 0);
    mw_frame *kept[10];
    for (int i = 0; i < 10; i++) {
        char body[32];
        snprintf(body, sizeof(body), "{\"i\":%d}", i + 1);
        kept[i] = append(&h, r, body, (uint64_t)i);
    }
    CHECK_EQ_INT(r->last, 10);
    CHECK_EQ_INT(r->n, 3);
    CHECK_EQ_INT(mw_history_first(r), 8);
    CHECK(mw_history_get(r, 7) == NULL);
    CHECK(mw_history_get(r, 8) == kept[7]);
    CHECK(mw_history_get(r, 10) == kept[9]);
    CHECK(mw_history_get(r, 11) == NULL);
    CHECK(!mw_history_covers(r, 6)); /* 7 was trimmed */
    CHECK(mw_history_covers(r, 7));
    CHECK(mw_history_covers(r, 10));
    CHECK(!mw_history_covers(r, 11)); /* ahead of the room */
    CHECK(!mw_history_covers(r, UINT64_MAX - 1));
    for (int i = 0; i < 7; i++)
        CHECK_EQ_INT(kept[i]->refs, 1); /* dropped by the history */
    for (int i = 7; i < 10; i++)
        CHECK_EQ_INT(kept[i]->refs, 2);
    /* a smaller size drops the oldest at once */
    mw_history_open(&h, "r", 1, 1, 1000, 20);
    CHECK_EQ_INT(r->n, 1);
    CHECK(mw_history_get(r, 10) == kept[9]);
    CHECK_EQ_INT(kept[8]->refs, 1);
    mw_history_free(&h);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ_INT(kept[i]->refs, 1); /* freeing the history let go of every frame */
        mw_frame_unref(kept[i]);
    }
}

static void test_expiry(void)
{
    mw_history h;
    mw_history_init(&h, "TAGTAG03", 1 << 20, NULL);
    mw_history_room *r = mw_history_open(&h, "t", 1, 10, 100, 1000);
    char epoch[MW_HISTORY_EPOCH_MAX];
    snprintf(epoch, sizeof(epoch), "%s", r->epoch);
    mw_frame_unref(append(&h, r, "{}", 1050)); /* a message moves the expiry */
    CHECK(mw_history_find(&h, "t", 1, 1149) == r);
    mw_history_expire(&h, 1149);
    CHECK_EQ_INT(h.count, 1);
    CHECK(mw_history_find(&h, "t", 1, 1150) == NULL); /* 100 ms after the last message */
    CHECK_EQ_INT(h.count, 0);
    r = mw_history_open(&h, "t", 1, 10, 100, 1200);
    CHECK_EQ_INT(r->last, 0); /* offsets start again, in a new epoch */
    CHECK(strcmp(r->epoch, epoch) != 0);
    mw_history_open(&h, "u", 1, 10, 100, 1200);
    mw_history_expire(&h, 1300);
    CHECK_EQ_INT(h.count, 0);
    CHECK(h.lru_head == NULL && h.lru_tail == NULL);
    mw_history_free(&h);
}

static void test_memory_cap(void)
{
    mw_history h;
    mw_history_init(&h, "TAGTAG04", 1000, NULL);
    char body[120];
    memset(body, ' ', sizeof(body));
    body[0] = '{';
    body[sizeof(body) - 2] = '}';
    body[sizeof(body) - 1] = '\0';
    mw_history_room *rooms[20];
    for (int i = 0; i < 20; i++) {
        char name[8];
        snprintf(name, sizeof(name), "c%d", i);
        rooms[i] = mw_history_open(&h, name, strlen(name), 100, 100000, 0);
        mw_frame_unref(append(&h, rooms[i], body, (uint64_t)i));
        CHECK(h.bytes <= 1000);
    }
    CHECK(h.warned);
    CHECK(rooms[0]->n == 0 && rooms[0]->last == 1); /* the least recently written lost its message */
    CHECK(rooms[19]->n == 1);
    CHECK(!mw_history_covers(rooms[0], 0));
    CHECK(mw_history_covers(rooms[0], 1));
    /* writing to an old room makes it the most recent */
    mw_frame_unref(append(&h, rooms[0], body, 30));
    CHECK(rooms[0]->n == 1 && rooms[0]->last == 2);
    CHECK(h.lru_tail == rooms[0]);
    size_t total = 0;
    for (int i = 0; i < 20; i++)
        total += rooms[i]->bytes;
    CHECK_EQ_INT(total, h.bytes);
    mw_history_free(&h);
}

static void test_json_string(void)
{
    char out[64];
    const char *name = "a\"b\\c\n\x01/é";
    size_t n = mw_history_json_string(name, strlen(name), out, sizeof(out));
    out[n] = '\0';
    CHECK_EQ_STR(out, "\"a\\\"b\\\\c\\n\\u0001/é\"");
    CHECK_EQ_INT(mw_history_json_string("abcdef", 6, out, 7), 0); /* does not fit */
    int empty;
    CHECK_EQ_INT(mw_history_body_head("{}", 2, &empty), 1);
    CHECK(empty);
    CHECK_EQ_INT(mw_history_body_head("{\"a\":1}", 7, &empty), 6);
    CHECK(!empty);
    CHECK_EQ_INT(mw_history_body_head("[]", 2, &empty), -1);
    CHECK_EQ_INT(mw_history_body_head("  ", 2, &empty), -1);
}

int main(void)
{
    test_frames_and_offsets();
    test_ring_and_recovery_window();
    test_expiry();
    test_memory_cap();
    test_json_string();
    MW_TEST_DONE();
}
