/* Unit tests for permessage-deflate without sockets: mw_deflate (a frame's compressed twin, made
 * once; inflating under a limit) and mw_ws with the codec (RSV1 frames in every chunk size,
 * fragmented, refused with the right close code). Client frames are compressed here with zlib. */
#include <stdlib.h>
#include <zlib.h>

#include "mw_deflate.h"
#include "mw_test.h"
#include "mw_ws.h"

typedef struct sink {
    int messages;
    int last_opcode;
    unsigned char *last;
    size_t last_len;
    unsigned char out[1024];
    size_t out_len;
} sink;

static void on_message(void *owner, int opcode, const uint8_t *data, size_t len)
{
    sink *s = owner;
    s->messages++;
    s->last_opcode = opcode;
    free(s->last);
    s->last = malloc(len + 1);
    memcpy(s->last, data, len);
    s->last_len = len;
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

/* A masked client frame; rsv: the reserved bits (0x40 = RSV1). Returns its length. */
static size_t frame(unsigned char *out, int fin, int rsv, int opcode, const void *payload, size_t len)
{
    static const unsigned char key[4] = { 0x12, 0x34, 0x56, 0x78 };
    size_t n = 0;
    out[n++] = (unsigned char)((fin ? 0x80 : 0) | rsv | opcode);
    if (len < 126) {
        out[n++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        out[n++] = 0x80 | 126;
        out[n++] = (unsigned char)(len >> 8);
        out[n++] = (unsigned char)len;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(out + n, key, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const unsigned char *)payload)[i] ^ key[i % 4];
    return n + len;
}

/* Compresses as a client does (raw deflate, sync flush, the last four bytes removed). */
static size_t client_deflate(const void *in, size_t len, unsigned char *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_SYNC_FLUSH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return n - 4;
}

static mw_ws *session(sink *s, mw_deflate *codec, size_t max)
{
    memset(s, 0, sizeof(*s));
    mw_ws_limits lim = { max, 16, 1, NULL, codec };
    return mw_ws_new(&lim, &handler, s);
}

static void done(mw_ws *ws, sink *s)
{
    mw_ws_free(ws);
    free(s->last);
}

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

static void expect_close(const char *what, mw_deflate *codec, const unsigned char *bytes, size_t n, size_t max,
                         int code)
{
    sink s;
    mw_ws *ws = session(&s, codec, max);
    mw_ws_feed(ws, bytes, n);
    mw_ws_flush(ws);
    if (close_code_out(&s) != code || s.messages != 0)
        fprintf(stderr, "%s: close %d, messages %d (want close %d, none)\n", what, close_code_out(&s), s.messages,
                code);
    CHECK_EQ_INT(close_code_out(&s), code);
    CHECK_EQ_INT(s.messages, 0);
    done(ws, &s);
}

static const char json[] = "{\"type\":\"chat\",\"action\":\"message\",\"data\":{\"text\":\"hello hello hello hello "
                           "hello hello hello hello\",\"room\":\"lobby\",\"n\":[1,2,3,1,2,3,1,2,3]}}";

static void test_compressed_in_all_chunk_sizes(void)
{
    mw_deflate *codec = mw_deflate_new(1, NULL);
    unsigned char z[512], buf[1024];
    size_t zn = client_deflate(json, strlen(json), z, sizeof(z));
    CHECK(zn < strlen(json));
    size_t n = frame(buf, 1, 0x40, 1, z, zn);
    n += frame(buf + n, 1, 0, 1, "plain", 5); /* compression is per message */
    n += frame(buf + n, 1, 0x40, 1, z, zn);
    for (size_t chunk = 1; chunk <= n; chunk++) {
        sink s;
        mw_ws *ws = session(&s, codec, 65536);
        int seen_first = 0;
        for (size_t off = 0; off < n; off += chunk) {
            CHECK_EQ_INT(mw_ws_feed(ws, buf + off, off + chunk > n ? n - off : chunk), 0);
            if (s.messages == 1 && !seen_first) {
                seen_first = 1;
                CHECK(s.last_len == strlen(json) && memcmp(s.last, json, s.last_len) == 0);
            }
        }
        CHECK_EQ_INT(s.messages, 3);
        CHECK(s.last_len == strlen(json) && memcmp(s.last, json, s.last_len) == 0);
        CHECK(!mw_ws_closing(ws));
        done(ws, &s);
    }
    mw_deflate_free(codec);
}

static void test_fragmented_compressed_message(void)
{
    mw_deflate *codec = mw_deflate_new(1, NULL);
    unsigned char z[512], buf[1024];
    size_t zn = client_deflate(json, strlen(json), z, sizeof(z)), a = zn / 3, b = 2 * zn / 3;
    sink s;
    mw_ws *ws = session(&s, codec, 65536);
    size_t n = frame(buf, 0, 0x40, 1, z, a); /* RSV1 on the first frame only */
    n += frame(buf + n, 0, 0, 0, z + a, b - a);
    n += frame(buf + n, 1, 0, 9, "p", 1); /* a ping in between */
    n += frame(buf + n, 1, 0, 0, z + b, zn - b);
    CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
    CHECK_EQ_INT(s.messages, 1);
    CHECK(s.last_len == strlen(json) && memcmp(s.last, json, s.last_len) == 0);
    done(ws, &s);
    mw_deflate_free(codec);
}

static void test_refusals(void)
{
    mw_deflate *codec = mw_deflate_new(1, NULL);
    static unsigned char z[300000], buf[300000], zeros[1 << 20];
    size_t zn = client_deflate(json, strlen(json), z, sizeof(z)), n;

    n = frame(buf, 1, 0x40, 1, z, zn);
    expect_close("RSV1 without negotiation", NULL, buf, n, 65536, 1002);
    n = frame(buf, 1, 0x20, 1, "x", 1);
    expect_close("RSV2", codec, buf, n, 65536, 1002);
    n = frame(buf, 1, 0x40, 9, "p", 1);
    expect_close("RSV1 on a ping", codec, buf, n, 65536, 1002);
    n = frame(buf, 0, 0x40, 1, z, 4);
    n += frame(buf + n, 1, 0x40, 0, z + 4, zn - 4);
    expect_close("RSV1 on a continuation", codec, buf, n, 65536, 1002);

    /* a deflate bomb: 1 MiB of zeros in about a kilobyte, against a 64 KiB limit */
    size_t bn = client_deflate(zeros, sizeof(zeros), z, sizeof(z));
    CHECK(bn < 2048);
    n = frame(buf, 1, 0x40, 1, z, bn);
    expect_close("deflate bomb", codec, buf, n, 65536, 1009);
    /* the same fragmented in small frames: also refused */
    n = 0;
    for (size_t off = 0; off < bn; off += 100)
        n += frame(buf + n, off + 100 >= bn, off == 0 ? 0x40 : 0, off == 0 ? 2 : 0, z + off,
                   off + 100 > bn ? bn - off : 100);
    expect_close("fragmented deflate bomb", codec, buf, n, 65536, 1009);
    /* exactly at the limit passes, one byte more does not */
    bn = client_deflate(zeros, 1000, z, sizeof(z));
    n = frame(buf, 1, 0x40, 2, z, bn);
    expect_close("one byte over", codec, buf, n, 999, 1009);
    {
        sink s;
        mw_ws *ws = session(&s, codec, 1000);
        CHECK_EQ_INT(mw_ws_feed(ws, buf, n), 0);
        CHECK_EQ_INT(s.messages, 1);
        CHECK_EQ_INT(s.last_len, 1000);
        done(ws, &s);
    }

    const unsigned char bad_utf8[] = { 'a', 0xc3, 0x28, 'b' };
    bn = client_deflate(bad_utf8, sizeof(bad_utf8), z, sizeof(z));
    n = frame(buf, 1, 0x40, 1, z, bn);
    expect_close("invalid UTF-8 once inflated", codec, buf, n, 65536, 1007);

    const unsigned char garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x00, 0x12 };
    n = frame(buf, 1, 0x40, 1, garbage, sizeof(garbage));
    expect_close("not deflate data", codec, buf, n, 65536, 1007);
    bn = client_deflate(json, strlen(json), z, sizeof(z));
    n = frame(buf, 1, 0x40, 1, z, bn / 2);
    expect_close("cut deflate data", codec, buf, n, 65536, 1007);

    /* negotiated: an uncompressed message is still held to the limit (not the compressed slack) */
    memset(zeros, 'a', 2000);
    n = frame(buf, 1, 0, 1, zeros, 1100);
    expect_close("plain message over the limit", codec, buf, n, 1000, 1009);
    n = frame(buf, 0, 0, 1, zeros, 600);
    n += frame(buf + n, 1, 0, 0, zeros, 600);
    expect_close("fragmented plain message over the limit", codec, buf, n, 1000, 1009);
    mw_deflate_free(codec);
}

static void test_pick_makes_one_twin(void)
{
    mw_deflate *codec = mw_deflate_new(1, NULL);
    char text[2000];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = "{\"price\":12.5,\"sym\":\"ABC\"}"[i % 26];

    mw_frame *small = mw_frame_ws(1, text, 100);
    CHECK(mw_deflate_pick(codec, small, 256) == small); /* below the threshold */
    CHECK(small->alt == NULL);
    mw_frame_unref(small);

    mw_frame *f = mw_frame_ws(1, text, sizeof(text));
    mw_frame *z = mw_deflate_pick(codec, f, 256);
    CHECK(z != f && z == f->alt);
    CHECK(mw_deflate_pick(codec, f, 256) == z); /* made once, shared */
    CHECK_EQ_INT(z->data[0], 0xc1);             /* FIN, RSV1, text */
    size_t zlen, out_len;
    const uint8_t *payload = mw_frame_payload(z, &zlen), *out;
    CHECK(zlen < sizeof(text) / 10);
    CHECK_EQ_INT(mw_deflate_inflate(codec, payload, zlen, 65536, &out, &out_len), MW_INFLATE_OK);
    CHECK(out_len == sizeof(text) && memcmp(out, text, out_len) == 0);
    mw_frame_unref(f); /* releases the twin too (ASan would tell) */

    unsigned char noise[1000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(noise); i++) {
        x = x * 1103515245 + 12345;
        noise[i] = (unsigned char)(x >> 16);
    }
    mw_frame *b = mw_frame_ws(2, noise, sizeof(noise));
    CHECK(mw_deflate_pick(codec, b, 0) == b); /* incompressible: sent plain */
    CHECK(b->alt == b);
    mw_frame_unref(b);

    mw_frame *empty = mw_frame_ws(1, "", 0);
    CHECK(mw_deflate_pick(codec, empty, 0) == empty);
    mw_frame_unref(empty);
    mw_deflate_free(codec);
}

int main(void)
{
    test_compressed_in_all_chunk_sizes();
    test_fragmented_compressed_message();
    test_refusals();
    test_pick_makes_one_twin();
    MW_TEST_DONE();
}
