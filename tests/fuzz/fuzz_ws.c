/* fuzz_ws: libFuzzer harness for the frame path in both directions: client bytes (masked or
 * not, fragmented, control and close frames) go through mw_ws (wslay) with the server's limits,
 * interleaved with what the server sends (data frames from mw_frame_ws, pings, closes with
 * any reason). Everything the server writes is then read back by an independent RFC 6455 §5
 * checker: a second reading of the protocol, since checking wslay's output with wslay would
 * share its mistakes.
 * Input: byte 0 picks the limits (bit 5: contexts from a pool; bit 6: permessage-deflate
 * negotiated, at level 0 or 1 by bit 7: client messages with RSV1 are inflated, and a message
 * the server sends goes out as mw_conn_send would, through mw_deflate_pick, whose compressed
 * frames the checker inflates with zlib on its own); then
 * operations, one byte each plus their arguments (op % 8: 0-2 feed n bytes, 3 feed n bytes
 * and flush, 4 send a message, 5 close, 6 ping, 7 flush, with bit 7 set: the next write is
 * refused). FUZZ_WS_DUMP=1 prints the server's output in hex when reproducing a report. */
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_common.h"
#include "mw_deflate.h"
#include "mw_frame.h"
#include "mw_util.h"
#include "mw_ws.h"

typedef struct session {
    const uint8_t *in;
    size_t in_len, in_off;
    mw_ws_limits limits;
    uint8_t *out; /* everything written to the peer, in order */
    size_t out_len, out_cap;
    int refuse_next; /* the next write fails (a dead socket) */
    int refused;
} session;

static const size_t max_sizes[] = { 65536, 16, 125, 1000 }; /* 65536: maxMessageSize's default */
static const unsigned max_frags[] = { 1024, 1, 2, 4 };      /* 1024: maxFragments' default */
/* codes the runtime closes with (its own, and disconnectClient's 1000 / 3000-4999) */
static const uint16_t close_codes[] = { 1000, 1001, 1003, 1008, 1009, 1011, 3000, 4401,
                                        4408, 4429, 4503, 4999 };

static void append_out(session *s, const uint8_t *data, size_t len)
{
    if (s->out_len + len > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap * 2 : 4096;
        while (cap < s->out_len + len)
            cap *= 2;
        uint8_t *p = realloc(s->out, cap);
        FUZZ_ASSERT(p != NULL);
        s->out = p;
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_len, data, len);
    s->out_len += len;
}

static void on_message(void *owner, int opcode, const uint8_t *data, size_t len)
{
    session *s = owner;
    FUZZ_ASSERT(opcode == 1 || (opcode == 2 && s->limits.allow_binary));
    FUZZ_ASSERT(len <= s->limits.max_message_size);
    FUZZ_ASSERT(opcode != 1 || mw_utf8_valid(data, len));
}

static int on_output(void *owner, const uint8_t *data, size_t len)
{
    session *s = owner;
    if (s->refuse_next) {
        s->refuse_next = 0;
        s->refused = 1;
        return -1;
    }
    append_out(s, data, len);
    return 0;
}

static const mw_ws_handler handler = { on_message, on_output, NULL };

static int next_byte(session *s)
{
    return s->in_off < s->in_len ? s->in[s->in_off++] : 0;
}

/* The next n bytes of input (n from one input byte; 0 means all that is left). */
static const uint8_t *next_bytes(session *s, size_t *n)
{
    size_t want = (size_t)next_byte(s);
    size_t left = s->in_len - s->in_off;
    if (want == 0 || want > left)
        want = left;
    const uint8_t *p = s->in + s->in_off;
    s->in_off += want;
    *n = want;
    return p;
}

static int valid_close_code(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/* A compressed data frame's payload, inflated as RFC 7692 7.2.2 says, by zlib directly (not
 * through mw_deflate): into *out (malloc'd), or -1 when it is not valid deflate data. */
static long client_inflate(const uint8_t *in, size_t len, uint8_t **out)
{
    static const uint8_t tail[4] = { 0, 0, 0xff, 0xff };
    z_stream z;
    memset(&z, 0, sizeof(z));
    FUZZ_ASSERT(inflateInit2(&z, -15) == Z_OK);
    size_t cap = 1024 + len * 8, n = 0;
    uint8_t *buf = malloc(cap);
    FUZZ_ASSERT(buf != NULL);
    int rc = Z_OK;
    for (int part = 0; part < 2 && (rc == Z_OK || rc == Z_BUF_ERROR); part++) {
        z.next_in = (Bytef *)(part ? tail : in);
        z.avail_in = (uInt)(part ? 4 : len);
        while (z.avail_in > 0 || z.avail_out == 0) {
            if (n == cap) {
                buf = realloc(buf, cap *= 2);
                FUZZ_ASSERT(buf != NULL);
            }
            z.next_out = buf + n;
            z.avail_out = (uInt)(cap - n);
            rc = inflate(&z, Z_SYNC_FLUSH);
            n = cap - z.avail_out;
            if (rc != Z_OK)
                break;
        }
    }
    inflateEnd(&z);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
        free(buf);
        return -1;
    }
    *out = buf;
    return (long)n;
}

/* Reads the server's output as a client would: unmasked frames, FIN set (the server never
 * fragments), no RSV bits but RSV1 on a data frame once permessage-deflate was negotiated (its
 * payload inflates), minimal lengths, control frames of at most 125 bytes, text and close
 * reasons in UTF-8, a close code allowed on the wire, and nothing after the close frame.
 * complete: the stream must end on a frame boundary. */
static void check_output(const uint8_t *p, size_t len, int complete, int deflate)
{
    size_t i = 0;
    int closed = 0;
    if (getenv("FUZZ_WS_DUMP")) { /* for triage: what the server wrote, in hex */
        for (size_t k = 0; k < len; k++)
            fprintf(stderr, "%02x%s", p[k], k + 1 < len ? " " : "\n");
    }
    while (i < len) {
        FUZZ_ASSERT(!closed); /* bytes after the close frame */
        if (len - i < 2)
            break;
        uint8_t b0 = p[i], b1 = p[i + 1];
        int opcode = b0 & 0x0f;
        int compressed = (b0 & 0x40) != 0;
        FUZZ_ASSERT((b0 & 0x80) && (b0 & 0x30) == 0);
        FUZZ_ASSERT(!compressed || (deflate && (opcode == 1 || opcode == 2)));
        FUZZ_ASSERT(opcode == 1 || opcode == 2 || opcode == 8 || opcode == 9 || opcode == 10);
        FUZZ_ASSERT((b1 & 0x80) == 0);
        size_t hdr = 2, len7 = b1 & 0x7f;
        uint64_t plen = len7;
        if (len7 == 126) {
            if (len - i < 4)
                break;
            plen = ((uint64_t)p[i + 2] << 8) | p[i + 3];
            FUZZ_ASSERT(plen >= 126);
            hdr = 4;
        } else if (len7 == 127) {
            if (len - i < 10)
                break;
            plen = 0;
            for (int k = 0; k < 8; k++)
                plen = (plen << 8) | p[i + 2 + k];
            FUZZ_ASSERT(plen > 0xffff && plen >> 63 == 0);
            hdr = 10;
        }
        if (len - i - hdr < plen)
            break;
        const uint8_t *payload = p + i + hdr;
        if (opcode >= 8)
            FUZZ_ASSERT(plen <= 125);
        if (compressed) {
            uint8_t *plain;
            long n = client_inflate(payload, (size_t)plen, &plain);
            FUZZ_ASSERT(n >= 0 && (uint64_t)n > plen); /* sent compressed only when shorter */
            FUZZ_ASSERT(opcode != 1 || mw_utf8_valid(plain, (size_t)n));
            free(plain);
        } else if (opcode == 1) {
            FUZZ_ASSERT(mw_utf8_valid(payload, (size_t)plen));
        }
        if (opcode == 8) {
            FUZZ_ASSERT(plen != 1);
            if (plen >= 2) {
                FUZZ_ASSERT(valid_close_code((unsigned)(payload[0] << 8 | payload[1])));
                FUZZ_ASSERT(mw_utf8_valid(payload + 2, (size_t)plen - 2));
            }
            closed = 1;
        }
        i += hdr + (size_t)plen;
    }
    if (complete)
        FUZZ_ASSERT(i == len); /* a frame was left half written */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    session s;
    memset(&s, 0, sizeof(s));
    s.limits.max_message_size = max_sizes[data[0] & 3];
    s.limits.max_fragments = max_frags[(data[0] >> 2) & 3];
    s.limits.allow_binary = (data[0] >> 4) & 1;
    /* bit 5: contexts from a pool, so that a spare given back is reused within the input (a
     * context given back in the wrong state would show on the next message) */
    mw_wsctx_pool pool;
    mw_ws_pool_init(&pool, 2);
    if ((data[0] >> 5) & 1)
        s.limits.pool = &pool;
    /* bit 6: permessage-deflate negotiated (bit 7: compression level 0 or 1) */
    mw_deflate *codec = (data[0] & 0x40) ? mw_deflate_new(data[0] >> 7, NULL) : NULL;
    s.limits.inflate = codec;
    s.in = data + 1;
    s.in_len = size - 1;
    mw_ws *ws = mw_ws_new(&s.limits, &handler, &s);
    FUZZ_ASSERT(ws != NULL);
    int dropped = 0; /* the runtime drops the connection: nothing more happens on it */
    while (s.in_off < s.in_len && !dropped) {
        int op = next_byte(&s);
        size_t n;
        const uint8_t *p;
        switch (op & 7) {
        case 0: case 1: case 2: case 3:
            p = next_bytes(&s, &n);
            dropped = mw_ws_feed(ws, p, n) != 0 || ((op & 7) == 3 && mw_ws_flush(ws) != 0);
            break;
        case 4: { /* what mw_conn_send does: nothing once closing; sendRaw refuses bad UTF-8 */
            int opcode = (op & 0x08) ? 2 : 1;
            p = next_bytes(&s, &n);
            if (mw_ws_closing(ws) || (opcode == 1 && !mw_utf8_valid(p, n)))
                break;
            mw_frame *f = mw_frame_ws(opcode, p, n);
            FUZZ_ASSERT(f != NULL);
            /* threshold 0 or 16; a second pick must give the same twin */
            mw_frame *w = codec ? mw_deflate_pick(codec, f, (op & 0x10) ? 16 : 0) : f;
            FUZZ_ASSERT(!codec || mw_deflate_pick(codec, f, (op & 0x10) ? 16 : 0) == w);
            dropped = on_output(&s, w->data, w->len) != 0; /* the socket write */
            mw_frame_unref(f);
            break;
        }
        case 5: { /* the reason arrives as a C string (Lua, or the Redis bus) */
            char reason[256];
            p = next_bytes(&s, &n);
            if (n > sizeof(reason) - 1)
                n = sizeof(reason) - 1;
            memcpy(reason, p, n);
            reason[n] = '\0';
            mw_ws_close(ws, close_codes[(op >> 3) % (sizeof(close_codes) / sizeof(close_codes[0]))], reason);
            break;
        }
        case 6:
            mw_ws_ping(ws);
            break;
        case 7:
            if (op & 0x80)
                s.refuse_next = 1;
            dropped = mw_ws_flush(ws) != 0;
            break;
        }
    }
    if (!dropped)
        dropped = mw_ws_flush(ws) != 0;
    FUZZ_ASSERT(!dropped || s.refused); /* only a refused write drops the connection */
    uint16_t code = mw_ws_close_code(ws);
    FUZZ_ASSERT(code == 1006 || code >= 1000);
    FUZZ_ASSERT(strlen(mw_ws_close_reason(ws)) < 124);
    (void)mw_ws_done(ws);
    (void)mw_ws_want_read(ws);
    check_output(s.out, s.out_len, !s.refused, codec != NULL);
    mw_ws_free(ws);
    FUZZ_ASSERT(pool.lent == 0 && pool.held_bytes == 0);
    mw_wsctx_pool_free(&pool);
    mw_deflate_free(codec);
    free(s.out);
    return 0;
}
