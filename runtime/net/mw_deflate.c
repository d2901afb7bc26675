/* mw_deflate: RFC 7692 7.2: a message is compressed as raw deflate ended by a sync flush, whose
 * trailing 00 00 ff ff is removed; the receiver appends it again before inflating. The streams
 * are created on first use (a worker that never meets a compressing peer pays nothing) and reset
 * per message. Frames live on the loop thread only, so the twin pointer needs no lock. */
#include "mw_deflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SCRATCH_KEEP (256 * 1024) /* buffers above this are freed after each message */
#define INFLATE_FIRST (16 * 1024)

struct mw_deflate {
    int level;
    mw_metrics_slot *m;
    z_stream def, inf;
    int def_ready, inf_ready;
    uint8_t *scratch; /* compressed output before it is framed */
    size_t scratch_cap;
    uint8_t *buf; /* an inflated message */
    size_t buf_cap;
};

static void count(mw_deflate *d, mw_metric which, size_t n)
{
    if (d->m) /* unit tests run without metrics */
        mw_metrics_add(d->m, which, (int64_t)n);
}

mw_deflate *mw_deflate_new(int level, mw_metrics_slot *m)
{
    mw_deflate *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->level = level;
    d->m = m;
    return d;
}

void mw_deflate_free(mw_deflate *d)
{
    if (!d)
        return;
    if (d->def_ready)
        deflateEnd(&d->def);
    if (d->inf_ready)
        inflateEnd(&d->inf);
    free(d->scratch);
    free(d->buf);
    free(d);
}

size_t mw_deflate_wire_max(size_t max)
{
    size_t extra = max / 1024 + 1024; /* 5 bytes per 64 KiB stored block, and then some */
    return max > SIZE_MAX - extra ? SIZE_MAX : max + extra;
}

static int grow(uint8_t **p, size_t *cap, size_t want)
{
    if (*cap >= want)
        return 0;
    uint8_t *n = realloc(*p, want);
    if (!n)
        return -1;
    *p = n;
    *cap = want;
    return 0;
}

/* Compresses payload into d->scratch; returns the compressed length without the sync-flush tail,
 * or 0 on failure. */
static size_t deflate_message(mw_deflate *d, const uint8_t *payload, size_t len)
{
    if (!d->def_ready) {
        if (deflateInit2(&d->def, d->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return 0;
        d->def_ready = 1;
    } else if (deflateReset(&d->def) != Z_OK) {
        return 0;
    }
    size_t bound = deflateBound(&d->def, (uLong)len) + 16; /* the sync flush's empty block too */
    if (len > UINT32_MAX || grow(&d->scratch, &d->scratch_cap, bound) != 0)
        return 0;
    d->def.next_in = (Bytef *)payload;
    d->def.avail_in = (uInt)len;
    d->def.next_out = d->scratch;
    d->def.avail_out = (uInt)bound;
    if (deflate(&d->def, Z_SYNC_FLUSH) != Z_OK || d->def.avail_in != 0 || d->def.avail_out == 0)
        return 0;
    size_t n = bound - d->def.avail_out;
    return n >= 4 ? n - 4 : 0;
}

mw_frame *mw_deflate_pick(mw_deflate *d, mw_frame *f, size_t threshold)
{
    if (f->alt)
        return f->alt;
    size_t len;
    const uint8_t *payload = mw_frame_payload(f, &len);
    /* FIN, no reserved bits, text or binary: what mw_frame_ws makes */
    if (len < threshold || f->len < 2 || (f->data[0] != 0x81 && f->data[0] != 0x82))
        return f;
    size_t n = deflate_message(d, payload, len);
    mw_frame *z = NULL;
    if (n > 0 && n < len && (z = mw_frame_ws(f->data[0] & 0x0f, d->scratch, n)) != NULL)
        z->data[0] |= 0x40; /* RSV1: this message is compressed */
    if (d->scratch_cap > SCRATCH_KEEP) {
        free(d->scratch);
        d->scratch = NULL;
        d->scratch_cap = 0;
    }
    count(d, MW_M_COMPRESSIONS, 1);
    f->alt = z ? z : f; /* f itself: sending it plain is best, do not try again */
    return f->alt;
}

/* Runs the inflate stream over in until it is consumed, growing d->buf up to max + 1 bytes.
 * *total: bytes inflated so far. Returns MW_INFLATE_OK, 1 at the end of a final block, or an error. */
static int inflate_some(mw_deflate *d, const uint8_t *in, size_t len, size_t max, size_t *total)
{
    d->inf.next_in = (Bytef *)in;
    d->inf.avail_in = (uInt)len;
    for (;;) {
        if (*total == d->buf_cap) {
            if (d->buf_cap > max)
                return MW_INFLATE_TOO_BIG;
            size_t want = d->buf_cap ? d->buf_cap * 2 : INFLATE_FIRST;
            if (want > max + 1 || want < d->buf_cap)
                want = max + 1;
            if (grow(&d->buf, &d->buf_cap, want) != 0)
                return MW_INFLATE_NOMEM;
        }
        size_t room = d->buf_cap - *total;
        if (room > UINT32_MAX)
            room = UINT32_MAX;
        d->inf.next_out = d->buf + *total;
        d->inf.avail_out = (uInt)room;
        int rc = inflate(&d->inf, Z_SYNC_FLUSH);
        *total += room - d->inf.avail_out;
        if (*total > max)
            return MW_INFLATE_TOO_BIG;
        if (rc == Z_STREAM_END)
            return 1;
        if (rc == Z_MEM_ERROR)
            return MW_INFLATE_NOMEM;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return MW_INFLATE_BAD;
        if (d->inf.avail_in == 0 && d->inf.avail_out > 0)
            return MW_INFLATE_OK;
        if (rc == Z_BUF_ERROR && d->inf.avail_out > 0)
            return MW_INFLATE_BAD; /* no progress with input and room left */
    }
}

int mw_deflate_inflate(mw_deflate *d, const uint8_t *in, size_t len, size_t max, const uint8_t **out,
                       size_t *out_len)
{
    static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };
    if (len > UINT32_MAX)
        return MW_INFLATE_TOO_BIG;
    if (!d->inf_ready) {
        if (inflateInit2(&d->inf, -15) != Z_OK)
            return MW_INFLATE_NOMEM;
        d->inf_ready = 1;
    } else if (inflateReset(&d->inf) != Z_OK) {
        return MW_INFLATE_NOMEM;
    }
    size_t total = 0;
    int rc = inflate_some(d, in, len, max, &total);
    if (rc == MW_INFLATE_OK) {
        rc = inflate_some(d, tail, sizeof(tail), max, &total);
        /* the tail is an empty stored block: after it the stream must stand between blocks, or
         * the message was cut in the middle of one */
        if (rc == MW_INFLATE_OK && !(d->inf.data_type & 128))
            rc = MW_INFLATE_BAD;
    }
    if (rc < 0)
        return rc;
    count(d, MW_M_COMPRESSION_IN_WIRE, len);
    count(d, MW_M_COMPRESSION_IN_PLAIN, total);
    *out = d->buf ? d->buf : tail; /* an empty message may never have needed the buffer */
    *out_len = total;
    return MW_INFLATE_OK;
}

void mw_deflate_trim(mw_deflate *d)
{
    if (d->buf_cap > SCRATCH_KEEP) {
        free(d->buf);
        d->buf = NULL;
        d->buf_cap = 0;
    }
}
