/* Unit test for mw_hist_script's reading of the READ script's reply (built here by hand as
 * hiredis would hand it over): epoch, last offset, the entries' offsets, frame texts and
 * excludeClientIds; a room without history; replies of the wrong shape; NOSCRIPT. Links mw_hub. */
#include <stdarg.h>
#include <stdlib.h>

#include "mw_hist_script.h"
#include "mw_test.h"

static redisReply *str(const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = (char *)s;
    r->len = strlen(s);
    return r;
}

static redisReply *num(long long v)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *nil(void)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_NIL;
    return r;
}

static redisReply *arr(size_t n, ...)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof(redisReply *));
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static void release(redisReply *r)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        release(r->element[i]);
    if (r->type == REDIS_REPLY_ARRAY)
        free(r->element);
    free(r);
}

static void test_entries(void)
{
    redisReply *reply =
        arr(3, str("TAG-1"), num(5),
            arr(3, arr(2, str("0-4"), arr(4, str("f"), str("{\"a\":4,\"room\":\"r\",\"offset\":4}"), str("x"), str(""))),
                arr(2, str("0-5"), arr(4, str("f"), str("{\"offset\":5}"), str("x"), str("CLIENT"))),
                arr(2, str("bad"), arr(2, str("f"), str("{}"))))); /* not an entry id: skipped */
    mw_hist_read res;
    const char *err;
    CHECK_EQ_INT(mw_hist_script_parse(reply, &res, &err), 0);
    CHECK(res.epoch_len == 5 && memcmp(res.epoch, "TAG-1", 5) == 0);
    CHECK_EQ_INT(res.last, 5);
    CHECK_EQ_INT(res.n, 2);
    CHECK_EQ_INT(res.entries[0].offset, 4);
    CHECK(res.entries[0].len == strlen("{\"a\":4,\"room\":\"r\",\"offset\":4}"));
    CHECK_EQ_INT(res.entries[0].exclude_len, 0);
    CHECK_EQ_INT(res.entries[1].offset, 5);
    CHECK(res.entries[1].exclude_len == 6 && memcmp(res.entries[1].exclude, "CLIENT", 6) == 0);
    free(res.entries);
    release(reply);
}

static void test_no_history_and_bad_shapes(void)
{
    mw_hist_read res;
    const char *err;
    redisReply *none = arr(3, nil(), num(0), arr(0));
    CHECK_EQ_INT(mw_hist_script_parse(none, &res, &err), 0);
    CHECK(res.epoch == NULL && res.n == 0 && res.entries == NULL);
    release(none);
    redisReply *bad[] = { arr(2, str("e"), num(1)), arr(3, str("e"), str("1"), arr(0)), str("OK"),
                          arr(3, str("e"), num(1), str("x")) };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(mw_hist_script_parse(bad[i], &res, &err), -1);
        release(bad[i]);
    }
    redisReply e = { .type = REDIS_REPLY_ERROR, .str = "NOSCRIPT No matching script", .len = 27 };
    CHECK_EQ_INT(mw_hist_script_parse(&e, &res, &err), -1);
    CHECK_EQ_STR(err, "NOSCRIPT No matching script");
    CHECK(mw_hist_script_missing(&e));
    redisReply other = { .type = REDIS_REPLY_ERROR, .str = "ERR x", .len = 5 };
    CHECK(!mw_hist_script_missing(&other));
    CHECK(!mw_hist_script_missing(NULL));
}

static void test_scripts_have_stable_names(void)
{
    mw_hist_scripts a, b;
    mw_hist_scripts_init(&a);
    mw_hist_scripts_init(&b);
    CHECK_EQ_INT(strlen(a.sha_publish), 40);
    CHECK_EQ_STR(a.sha_publish, b.sha_publish);
    CHECK(strcmp(a.sha_publish, a.sha_read) != 0);
}

int main(void)
{
    test_entries();
    test_no_history_and_bad_shapes();
    test_scripts_have_stable_names();
    MW_TEST_DONE();
}
