/* test_util: the UTF-8 check a text frame must pass (mw_utf8_valid), bytes in, verdict out;
 * hex digits and the trimming of HTTP's optional whitespace. */
#include <string.h>

#include "mw_util.h"
#include "mw_test.h"

static int valid(const char *s) { return mw_utf8_valid((const uint8_t *)s, strlen(s)); }

/* mw_trim_ows on s; the result as a NUL-terminated copy in out. */
static const char *trimmed(const char *s, char *out)
{
    size_t len = strlen(s);
    const char *t = mw_trim_ows(s, &len);
    memcpy(out, t, len);
    out[len] = '\0';
    return out;
}

static void test_hex(void)
{
    CHECK_EQ_INT(mw_hex_digit('0'), 0);
    CHECK_EQ_INT(mw_hex_digit('9'), 9);
    CHECK_EQ_INT(mw_hex_digit('a'), 10);
    CHECK_EQ_INT(mw_hex_digit('F'), 15);
    CHECK_EQ_INT(mw_hex_digit('g'), -1);
    CHECK_EQ_INT(mw_hex_digit('G'), -1);
    CHECK_EQ_INT(mw_hex_digit('/'), -1); /* just below '0' */
    CHECK_EQ_INT(mw_hex_digit(':'), -1); /* just above '9' */
    CHECK_EQ_INT(mw_hex_digit('\0'), -1);
    CHECK_EQ_INT(mw_hex_byte("2f"), 0x2f);
    CHECK_EQ_INT(mw_hex_byte("FF"), 255);
    CHECK_EQ_INT(mw_hex_byte("00"), 0);
    CHECK_EQ_INT(mw_hex_byte("2g"), -1);
    CHECK_EQ_INT(mw_hex_byte("x0"), -1);
    CHECK_EQ_INT(mw_hex_byte(""), -1); /* stops at the NUL */
}

static void test_trim(void)
{
    char out[64];
    CHECK_EQ_STR(trimmed("13", out), "13");
    CHECK_EQ_STR(trimmed("  13\t", out), "13");
    CHECK_EQ_STR(trimmed("\t a b \t", out), "a b"); /* inner whitespace stays */
    CHECK_EQ_STR(trimmed("   ", out), "");
    CHECK_EQ_STR(trimmed("", out), "");
    CHECK_EQ_STR(trimmed("\r\n x", out), "\r\n x"); /* only spaces and tabs */
    size_t len = 5;
    const char *s = " abc  and more";
    const char *t = mw_trim_ows(s, &len); /* only the first len bytes count */
    CHECK(t == s + 1);
    CHECK_EQ_INT(len, 3);
}

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
    /* ASCII is checked eight bytes at a time: every position and length around the words */
    for (size_t n = 1; n <= 40; n++) {
        for (size_t at = 0; at < n; at++) {
            uint8_t b[48];
            memset(b, 'a', sizeof(b));
            b[at] = 0xff;
            CHECK(!mw_utf8_valid(b, n));
            b[at] = 0xc3; /* cut short unless followed by a continuation byte */
            CHECK(!mw_utf8_valid(b, n));
            if (at + 1 < n) {
                b[at + 1] = 0xa9;
                CHECK(mw_utf8_valid(b, n));
            }
        }
    }
    const uint8_t nul[] = { 'a', 0, 'b' };
    CHECK(mw_utf8_valid(nul, sizeof(nul)));      /* NUL is a valid code point */
    test_hex();
    test_trim();
    MW_TEST_DONE();
}
