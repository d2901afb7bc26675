/* Unit tests for mw_wsctx_pool and the memory rule of mw_ws (issue 15): an idle session holds no
 * wslay context; one is borrowed for a partial frame or message and given back (reused, not
 * re-made) when the stream is at a message boundary again; heartbeats and a whole close
 * handshake need none; the bytes of a partial message are counted; a spare context behaves as a
 * new one for the next session. No sockets: frames are fed as bytes. */
#include <stdlib.h>

#include "mw_test.h"
#include "mw_ws.h"

typedef struct sink {
    int messages, pongs;
    char last[70000];
    size_t last_len;
    unsigned char out[1024];
    size_t out_len;
} sink;

static void on_message(void *owner, int opcode, const uint8_t *data, size_t len)
{
    sink *s = owner;
    (void)opcode;
    s->messages++;
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

static void on_pong(void *owner) { ((sink *)owner)->pongs++; }

static const mw_ws_handler handler = { on_message, on_output, on_pong };

static size_t frame(unsigned char *out, int fin, int opcode, const void *payload, size_t len)
{
    static const unsigned char key[4] = { 0x9a, 0x01, 0x7c, 0x33 };
    size_t n = 0;
    out[n++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[n++] = (unsigned char)(0x80 | len);
    } else {
        out[n++] = 0x80 | 126;
        out[n++] = (unsigned char)(len >> 8);
        out[n++] = (unsigned char)len;
    }
    memcpy(out + n, key, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const unsigned char *)payload)[i] ^ key[i % 4];
    return n + len;
}

static mw_ws *session(sink *s, mw_wsctx_pool *pool)
{
    memset(s, 0, sizeof(*s));
    mw_ws_limits lim = { 65536, 16, 0, pool, NULL };
    return mw_ws_new(&lim, &handler, s);
}

/* The pool alone: spares are reused, capped, and a dirty context is never kept. */
static void test_pool_reuse_and_cap(void)
{
    mw_wsctx_pool pool;
    mw_ws_pool_init(&pool, 2);
    int user;
    mw_wsctx *a = mw_wsctx_acquire(&pool, NULL, &user);
    mw_wsctx *b = mw_wsctx_acquire(&pool, NULL, &user);
    mw_wsctx *c = mw_wsctx_acquire(&pool, NULL, &user);
    CHECK(a && b && c && a->user == &user);
    CHECK_EQ_INT(pool.lent, 3);
    CHECK_EQ_INT(pool.created, 3);
    mw_wsctx_release(&pool, a, 1);
    mw_wsctx_release(&pool, b, 1);
    mw_wsctx_release(&pool, c, 1); /* past max_spare: freed */
    CHECK_EQ_INT(pool.lent, 0);
    CHECK_EQ_INT(pool.n_spare, 2);
    mw_wsctx *d = mw_wsctx_acquire(&pool, NULL, &user);
    CHECK(d == b || d == a);
    CHECK_EQ_INT(pool.created, 3); /* reused, not made */
    mw_wsctx_release(&pool, d, 0); /* not clean: freed */
    CHECK_EQ_INT(pool.n_spare, 1);
    mw_wsctx_pool_free(&pool);
    CHECK_EQ_INT(pool.n_spare, 0);
}

/* Whole messages and control frames leave the session idle; a split one borrows a context,
 * counts its declared bytes and gives both back when it completes. */
static void test_session_borrows_only_while_partial(void)
{
    static unsigned char buf[70000];
    static char big[60000];
    mw_wsctx_pool pool;
    mw_ws_pool_init(&pool, 4);
    sink s;
    mw_ws *ws = session(&s, &pool);
    size_t n = frame(buf, 1, 1, "hello", 5);
    n += frame(buf + n, 1, 9, "hb", 2); /* a ping: answered without a context */
    n += frame(buf + n, 1, 10, "mw", 2); /* a pong */
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK_EQ_INT(s.messages, 1);
    CHECK_EQ_INT(s.pongs, 1);
    CHECK(s.out_len == 4 && s.out[0] == 0x8a && s.out[2] == 'h' && s.out[3] == 'b');
    CHECK(!mw_ws_has_context(ws));
    CHECK_EQ_INT(pool.created, 0);
    mw_ws_ping(ws); /* the heartbeat's ping: written directly */
    CHECK(s.out_len == 8 && s.out[4] == 0x89 && s.out[5] == 2);
    CHECK(!mw_ws_has_context(ws));

    memset(big, 'x', sizeof(big));
    n = frame(buf, 1, 1, big, sizeof(big));
    CHECK_EQ_INT(mw_ws_feed(ws, buf, 1000), 0); /* a 60000-byte frame, partly in */
    CHECK(mw_ws_has_context(ws));
    CHECK(mw_ws_partial(ws));
    CHECK_EQ_INT(mw_ws_held_bytes(ws), sizeof(big));
    CHECK_EQ_INT(pool.held_bytes, sizeof(big));
    CHECK_EQ_INT(pool.lent, 1);
    CHECK_EQ_INT(mw_ws_feed(ws, buf + 1000, n - 1000), 0);
    CHECK_EQ_INT(s.messages, 2);
    CHECK_EQ_INT(s.last_len, sizeof(big));
    CHECK(!mw_ws_has_context(ws));
    CHECK(!mw_ws_partial(ws));
    CHECK_EQ_INT(pool.held_bytes, 0);
    CHECK_EQ_INT(pool.lent, 0);
    CHECK_EQ_INT(pool.n_spare, 1);

    /* a fragmented message: held across reads, the spare is reused */
    n = frame(buf, 0, 1, "ab", 2);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK(mw_ws_has_context(ws));
    CHECK_EQ_INT(pool.created, 1);
    CHECK_EQ_INT(pool.held_bytes, 2);
    n = frame(buf, 1, 0, "cd", 2);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK(s.messages == 3 && s.last_len == 4 && memcmp(s.last, "abcd", 4) == 0);
    CHECK(!mw_ws_has_context(ws));
    mw_ws_free(ws);

    /* a new session on the spare context: a clean slate (message starts, limits apply) */
    ws = session(&s, &pool);
    n = frame(buf, 1, 1, "x", 1);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, 3), 0);
    CHECK(mw_ws_has_context(ws));
    CHECK_EQ_INT(mw_ws_feed(ws, buf + 3, n - 3), 0);
    CHECK(s.messages == 1 && s.last[0] == 'x');
    CHECK_EQ_INT(pool.created, 1);
    mw_ws_free(ws);

    /* freed while partial: the context is dropped and its bytes leave the gauge */
    ws = session(&s, &pool);
    n = frame(buf, 1, 1, big, 1000);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, 100), 0);
    CHECK_EQ_INT(pool.held_bytes, 1000);
    mw_ws_free(ws);
    CHECK_EQ_INT(pool.held_bytes, 0);
    CHECK_EQ_INT(pool.lent, 0);
    mw_wsctx_pool_free(&pool);
}

/* Both close handshakes pass without a context; a close sent while idle is known to wslay when
 * the peer's answer needs one (no second close is sent). */
static void test_close_without_context(void)
{
    unsigned char buf[256];
    mw_wsctx_pool pool;
    mw_ws_pool_init(&pool, 4);
    sink s;

    mw_ws *ws = session(&s, &pool); /* the peer closes */
    size_t n = frame(buf, 1, 8, "\x03\xe8" "bye", 5);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK(!mw_ws_has_context(ws));
    CHECK(mw_ws_close_received(ws) && mw_ws_close_sent(ws) && mw_ws_done(ws));
    CHECK_EQ_INT(mw_ws_close_code(ws), 1000);
    CHECK_EQ_STR(mw_ws_close_reason(ws), "bye");
    CHECK(s.out_len == 7 && s.out[0] == 0x88 && s.out[1] == 5 && memcmp(s.out + 4, "bye", 3) == 0);
    mw_ws_free(ws);

    ws = session(&s, &pool); /* we close; the peer answers */
    mw_ws_close(ws, 1001, "Server shutting down");
    CHECK(!mw_ws_has_context(ws));
    CHECK(mw_ws_close_sent(ws) && !mw_ws_done(ws));
    CHECK_EQ_INT(mw_ws_close_code(ws), 1001);
    size_t out = s.out_len;
    n = frame(buf, 1, 8, "\x03\xe9", 2);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK(mw_ws_done(ws));
    CHECK_EQ_INT(s.out_len, out); /* no second close */
    CHECK_EQ_INT(mw_ws_close_code(ws), 1001);
    mw_ws_free(ws);

    ws = session(&s, &pool); /* we close; the peer sends a split frame, then its close */
    mw_ws_close(ws, 4503, "Slow consumer");
    out = s.out_len;
    n = frame(buf, 1, 1, "late", 4);
    n += frame(buf + n, 1, 8, "\x03\xe8", 2);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, 3), 0);
    CHECK(mw_ws_has_context(ws));
    CHECK_EQ_INT(mw_ws_feed(ws, buf + 3, n - 3), 0);
    mw_ws_flush(ws);
    CHECK_EQ_INT(s.messages, 0); /* data after our close is not delivered */
    CHECK_EQ_INT(s.out_len, out); /* wslay knew the close was sent */
    CHECK(mw_ws_done(ws));
    CHECK_EQ_INT(mw_ws_close_code(ws), 1000);
    mw_ws_free(ws);

    ws = session(&s, &pool); /* a bad close code: wslay's answer, 1002 */
    n = frame(buf, 1, 8, "\x03\xed", 2); /* 1005 may not be sent */
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    mw_ws_flush(ws);
    CHECK(s.out_len >= 4 && s.out[0] == 0x88 && ((s.out[2] << 8) | s.out[3]) == 1002);
    mw_ws_free(ws);
    CHECK_EQ_INT(pool.lent, 0);
    mw_wsctx_pool_free(&pool);
}

int main(void)
{
    test_pool_reuse_and_cap();
    test_session_borrows_only_while_partial();
    test_close_without_context();
    MW_TEST_DONE();
}
