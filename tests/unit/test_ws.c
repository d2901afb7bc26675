/* Unit tests for mw_ws, the WebSocket pump, without sockets: client frames (masked) are fed in
 * every chunk size; messages and the bytes the pump writes back (pong, close) are checked. */
#include <stdlib.h>

#include "mw_test.h"
#include "mw_ws.h"

typedef struct sink {
    int messages;
    int last_opcode;
    char last[70000];
    size_t last_len;
    unsigned char out[1024];
    size_t out_len;
} sink;

static void on_message(void *owner, int opcode, const uint8_t *data, size_t len)
{
    sink *s = owner;
    s->messages++;
    s->last_opcode = opcode;
    s->last_len = len < sizeof(s->last) ? len : sizeof(s->last);
    memcpy(s->last, data, s->last_len);
}

static int on_output(void *owner, const uint8_t *data, size_t len)
{
    sink *s = owner;
    if (s->out_len + len > sizeof(s->out))
        return -1;
    memcpy(s->out + s->out_len, data, len);
    s->out_len += len;
    return 0;
}

static const mw_ws_handler handler = { on_message, on_output, NULL };

/* Builds a client frame: FIN flag, opcode, masked unless mask == 0. Returns its length. */
static size_t frame(unsigned char *out, int fin, int opcode, const void *payload, size_t len, int mask)
{
    static const unsigned char key[4] = { 0x12, 0x34, 0x56, 0x78 };
    size_t n = 0;
    out[n++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    unsigned char m = mask ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (unsigned char)(m | len);
    } else if (len <= 0xffff) {
        out[n++] = m | 126;
        out[n++] = (unsigned char)(len >> 8);
        out[n++] = (unsigned char)len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    if (mask) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const unsigned char *)payload)[i] ^ (mask ? key[i % 4] : 0);
    return n + len;
}

static mw_ws *session(sink *s, size_t max, unsigned frags, int binary)
{
    memset(s, 0, sizeof(*s));
    mw_ws_limits lim = { max, frags, binary, NULL, NULL };
    return mw_ws_new(&lim, &handler, s);
}

/* The close code in the pump's output (expects a close frame somewhere in it), or -1. */
static int close_code_out(const sink *s)
{
    size_t i = 0;
    while (i + 2 <= s->out_len) {
        int op = s->out[i] & 0x0f;
        size_t len = s->out[i + 1] & 0x7f;
        if (op == 8)
            return len >= 2 ? (s->out[i + 2] << 8) | s->out[i + 3] : 1005;
        i += 2 + len;
    }
    return -1;
}

static void test_text_in_all_chunk_sizes(void)
{
    unsigned char buf[256];
    const char *msg = "{\"type\":\"echo\",\"action\":\"say\"}";
    size_t n = frame(buf, 1, 1, msg, strlen(msg), 1);
    n += frame(buf + n, 1, 1, msg, strlen(msg), 1);
    for (size_t chunk = 1; chunk <= n; chunk++) {
        sink s;
        mw_ws *ws = session(&s, 65536, 16, 0);
        for (size_t off = 0; off < n; off += chunk)
            CHECK_EQ_INT(mw_ws_feed(ws, buf + off, off + chunk > n ? n - off : chunk), 0);
        CHECK_EQ_INT(s.messages, 2);
        CHECK_EQ_INT(s.last_opcode, 1);
        CHECK(s.last_len == strlen(msg) && memcmp(s.last, msg, s.last_len) == 0);
        CHECK(!mw_ws_closing(ws));
        mw_ws_free(ws);
    }
}

static void test_fragmented_message(void)
{
    unsigned char buf[256];
    sink s;
    mw_ws *ws = session(&s, 65536, 4, 0);
    size_t n = frame(buf, 0, 1, "hel", 3, 1);
    n += frame(buf + n, 0, 0, "lo ", 3, 1);
    n += frame(buf + n, 1, 9, "p", 1, 1); /* a ping between fragments is allowed */
    n += frame(buf + n, 1, 0, "you", 3, 1);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK_EQ_INT(s.messages, 1);
    CHECK(s.last_len == 9 && memcmp(s.last, "hello you", 9) == 0);
    mw_ws_flush(ws);
    CHECK(s.out_len == 3 && s.out[0] == 0x8a && s.out[1] == 1 && s.out[2] == 'p'); /* the pong */
    mw_ws_free(ws);
}

/* Whole frames take mw_ws's own fast path, anything else wslay's; the two take turns correctly. */
static void test_fast_path_and_wslay_take_turns(void)
{
    static unsigned char buf[80000];
    static char big[70000];
    sink s;
    mw_ws *ws = session(&s, 100000, 16, 0);
    size_t n = frame(buf, 1, 1, "a", 1, 1);
    n += frame(buf + n, 1, 9, "p", 1, 1); /* a ping: wslay from here on in this read */
    n += frame(buf + n, 1, 1, "b", 1, 1);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK(s.messages == 2 && s.last_len == 1 && s.last[0] == 'b');
    memset(big, 'x', sizeof(big));
    n = frame(buf, 1, 1, big, 200, 1); /* 16-bit length: fast */
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK(s.messages == 3 && s.last_len == 200);
    n = frame(buf, 1, 1, big, sizeof(big), 1); /* 64-bit length: wslay */
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK(s.messages == 4 && s.last_len == sizeof(big));
    n = frame(buf, 1, 1, "c", 1, 1);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n - 1), 0); /* a partial frame: wslay holds its start */
    n += frame(buf + n, 1, 1, "d", 1, 1);
    CHECK_EQ_INT(mw_ws_feed(ws, buf + n - 8, 8), 0); /* its last byte, then a whole frame */
    CHECK(s.messages == 6 && s.last[0] == 'd');
    mw_ws_flush(ws);
    CHECK(s.out_len == 3 && s.out[0] == 0x8a); /* the pong */
    /* a fragment started: a whole text frame now is a protocol error (wslay says so) */
    n = frame(buf, 0, 1, "e", 1, 1);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    n = frame(buf, 1, 1, "f", 1, 1);
    mw_ws_feed(ws, buf, n);
    CHECK_EQ_INT(s.messages, 6);
    CHECK(mw_ws_closing(ws));
    mw_ws_free(ws);
}

static void expect_close(const char *what, const unsigned char *buf, size_t n, size_t max,
                         unsigned frags, int code)
{
    sink s;
    mw_ws *ws = session(&s, max, frags, 0);
    mw_ws_feed(ws, buf, n);
    CHECK(mw_ws_closing(ws));
    mw_ws_flush(ws);
    if (close_code_out(&s) != code)
        fprintf(stderr, "  case: %s\n", what);
    CHECK_EQ_INT(close_code_out(&s), code);
    CHECK_EQ_INT(s.messages, 0);
    mw_ws_free(ws);
}

static void test_refusals(void)
{
    static unsigned char buf[70000];
    static unsigned char big[70000];
    size_t n;
    memset(big, 'a', sizeof(big));

    n = frame(buf, 1, 1, big, 100, 1);
    expect_close("message over the limit", buf, n, 99, 16, 1009);

    /* a header that only declares 2^40 bytes: refused at once, nothing allocated for it */
    unsigned char huge[14] = { 0x81, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
    expect_close("declared huge length", huge, sizeof(huge), 65536, 16, 1009);

    n = 0;
    for (int i = 0; i < 5; i++)
        n += frame(buf + n, i == 4, i == 0 ? 1 : 0, "ab", 2, 1);
    expect_close("too many fragments", buf, n, 65536, 4, 1008);

    const unsigned char bad_utf8[] = { 0xc3, 0x28 };
    n = frame(buf, 1, 1, bad_utf8, sizeof(bad_utf8), 1);
    expect_close("invalid UTF-8", buf, n, 65536, 16, 1007);

    n = frame(buf, 1, 1, "hi", 2, 0);
    expect_close("unmasked frame", buf, n, 65536, 16, 1002);

    n = frame(buf, 1, 2, "\x01\x02", 2, 1);
    expect_close("binary without raw handler", buf, n, 65536, 16, 1003);

    n = frame(buf, 1, 3, "x", 1, 1);
    expect_close("reserved opcode", buf, n, 65536, 16, 1002);

    n = frame(buf, 0, 9, "p", 1, 1);
    expect_close("fragmented ping", buf, n, 65536, 16, 1002);

    n = frame(buf, 1, 9, big, 126, 1);
    expect_close("ping over 125 bytes", buf, n, 65536, 16, 1002);

    n = frame(buf, 1, 8, "\x03", 1, 1);
    expect_close("close with a one-byte payload", buf, n, 65536, 16, 1002);

    /* a 16-bit length field holding a value that fits in 7 bits is not minimal */
    const unsigned char non_minimal[] = { 0x81, 0xfe, 0x00, 0x05, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e' };
    expect_close("non-minimal length", non_minimal, sizeof(non_minimal), 65536, 16, 1002);
}

static void test_binary_allowed_in_raw_mode(void)
{
    unsigned char buf[64];
    sink s;
    mw_ws *ws = session(&s, 65536, 16, 1);
    size_t n = frame(buf, 1, 2, "\x00\x01\xff", 3, 1);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK_EQ_INT(s.messages, 1);
    CHECK_EQ_INT(s.last_opcode, 2);
    CHECK(!mw_ws_closing(ws));
    mw_ws_free(ws);
}

static void test_close_handshake(void)
{
    unsigned char buf[64];
    sink s;
    mw_ws *ws = session(&s, 65536, 16, 0);
    /* peer closes with 1000: the pump answers 1000 and is done */
    const unsigned char payload[] = { 0x03, 0xe8, 'b', 'y', 'e' };
    size_t n = frame(buf, 1, 8, payload, sizeof(payload), 1);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK(mw_ws_close_received(ws));
    mw_ws_flush(ws);
    CHECK_EQ_INT(close_code_out(&s), 1000);
    CHECK(mw_ws_done(ws));
    CHECK_EQ_INT(mw_ws_close_code(ws), 1000);
    mw_ws_free(ws);

    /* server-initiated: close sent, then waits for the peer's close */
    ws = session(&s, 65536, 16, 0);
    mw_ws_close(ws, 1001, "Server shutting down");
    mw_ws_flush(ws);
    CHECK_EQ_INT(close_code_out(&s), 1001);
    CHECK(mw_ws_close_sent(ws));
    CHECK(!mw_ws_done(ws));
    n = frame(buf, 1, 8, "\x03\xe9", 2, 1);
    mw_ws_feed(ws, buf, n);
    CHECK(mw_ws_done(ws));
    mw_ws_free(ws);
}

/* The fast path skips the UTF-8 check for an all-ASCII text, which unmasking finds out eight
 * bytes at a time and then byte by byte: a non-ASCII byte at any position of either part makes
 * the check run (an invalid one is refused with 1007, a valid 2-byte character delivered). */
static void test_non_ascii_at_every_position(void)
{
    unsigned char buf[64], text[21];
    for (size_t at = 0; at + 1 < sizeof(text); at++) {
        memset(text, 'a', sizeof(text));
        text[at] = 0xc3;
        text[at + 1] = 0x28; /* not a continuation byte */
        size_t n = frame(buf, 1, 1, text, sizeof(text), 1);
        expect_close("invalid UTF-8 inside an otherwise ASCII text", buf, n, 65536, 16, 1007);
        text[at + 1] = 0xa9; /* U+00E9 */
        sink s;
        mw_ws *ws = session(&s, 65536, 16, 0);
        CHECK_EQ_INT(mw_ws_feed(ws, buf, frame(buf, 1, 1, text, sizeof(text), 1)), 0);
        CHECK(s.messages == 1 && s.last_len == sizeof(text) && memcmp(s.last, text, sizeof(text)) == 0);
        CHECK(!mw_ws_closing(ws));
        mw_ws_free(ws);
    }
}

/* Close reasons on the wire are UTF-8 both ways (found by tests/fuzz/fuzz_ws): a peer's reason
 * split across reads is checked whole (wslay alone skips bytes of it), and a reason the app
 * gives that is not UTF-8 is cut to its valid prefix. */
static void test_close_reason_utf8(void)
{
    unsigned char buf[64];
    const unsigned char payload[] = { 0x0f, 0xa0, 'o', 'k', 0x82, 0x82, 'x' };
    size_t n = frame(buf, 1, 8, payload, sizeof(payload), 1);
    for (size_t split = 1; split < n; split++) {
        sink s;
        mw_ws *ws = session(&s, 65536, 16, 0);
        mw_ws_feed(ws, buf, split);
        mw_ws_feed(ws, buf + split, n - split);
        mw_ws_flush(ws);
        CHECK_EQ_INT(close_code_out(&s), 1007);
        mw_ws_free(ws);
    }
    sink s;
    mw_ws *ws = session(&s, 65536, 16, 0);
    mw_ws_close(ws, 4000, "bye\xc3");
    mw_ws_flush(ws);
    CHECK(s.out_len == 7 && s.out[1] == 5 && memcmp(s.out + 4, "bye", 3) == 0);
    mw_ws_free(ws);
}

int main(void)
{
    test_text_in_all_chunk_sizes();
    test_fragmented_message();
    test_fast_path_and_wslay_take_turns();
    test_refusals();
    test_binary_allowed_in_raw_mode();
    test_close_handshake();
    test_close_reason_utf8();
    test_non_ascii_at_every_position();
    MW_TEST_DONE();
}
