/* test_util: the UTF-8 check a text frame must pass (mw_utf8_valid), bytes in, verdict out. */
#include <string.h>

#include "mw_util.h"
#include "mw_test.h"

static int valid(const char *s) { return mw_utf8_valid((const uint8_t *)s, strlen(s)); }

int main(void)
{
    CHECK(valid(""));
    CHECK(valid("plain ascii"));
    CHECK(valid("caf\xc3\xa9"));                /* 2 bytes */
    CHECK(valid("\xe2\x82\xac"));               /* euro sign, 3 bytes */
    CHECK(valid("\xf0\x9f\x98\x80"));           /* emoji, 4 bytes */
    CHECK(valid("\xf4\x8f\xbf\xbf"));           /* U+10FFFF, the last code point */
    CHECK(!valid("\xff\xfe"));                  /* never in UTF-8 */
    CHECK(!valid("\x80"));                      /* a continuation byte first */
    CHECK(!valid("\xc3"));                      /* cut short */
    CHECK(!valid("\xe2\x82"));                  /* cut short */
    CHECK(!valid("\xc0\xaf"));                  /* overlong '/' */
    CHECK(!valid("\xe0\x80\xaf"));              /* overlong, 3 bytes */
    CHECK(!valid("\xed\xa0\x80"));              /* a UTF-16 surrogate */
    CHECK(!valid("\xf4\x90\x80\x80"));          /* past U+10FFFF */
    CHECK(!valid("ok\xc3(")); /* a bad continuation */
    const uint8_t nul[] = { 'a', 0, 'b' };
    CHECK(mw_utf8_valid(nul, sizeof(nul)));      /* NUL is a valid code point */
    MW_TEST_DONE();
}
