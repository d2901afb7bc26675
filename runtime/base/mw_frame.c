/* mw_frame: server frames are never masked (RFC 6455 5.1), so the same bytes serve every
 * recipient; that is why data frames are framed here and not by wslay, which copies per peer. */
#include "mw_frame.h"

#include <stdlib.h>
#include <string.h>

/* Small frames are reused rather than given back to malloc: a worker makes one or more per
 * message and frees them in batches once written, which defeats malloc's per-thread cache
 * (~300 instructions in _int_malloc and _int_free per frame). Frames are made and freed on the
 * loop thread only. A pooled frame keeps the next one's address in its data. */
#define SMALL_FRAME 256 /* the data bytes of every small frame */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_MAX 0 /* AddressSanitizer builds free every frame: a use after free must show */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_MAX 0
#endif
#endif
#ifndef POOL_MAX
#define POOL_MAX 1024 /* small frames kept at most (256 KiB) */
#endif
static mw_frame *pool;
static unsigned pooled;

static mw_frame *frame_alloc(size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    mw_frame *f;
    if (len <= SMALL_FRAME && pool) {
        f = pool;
        memcpy(&pool, f->data, sizeof(pool));
        pooled--;
    } else {
        f = malloc(sizeof(mw_frame) + (len <= SMALL_FRAME ? SMALL_FRAME : len));
        if (!f)
            return NULL;
    }
    f->refs = 1;
    f->len = (uint32_t)len;
    f->alt = NULL;
    return f;
}

mw_frame *mw_frame_ws(int opcode, const void *payload, size_t len)
{
    size_t header = len < 126 ? 2 : len <= 0xffff ? 4 : 10;
    mw_frame *f = frame_alloc(header + len);
    if (!f)
        return NULL;
    uint8_t *p = f->data;
    p[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        p[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        p[1] = 126;
        p[2] = (uint8_t)(len >> 8);
        p[3] = (uint8_t)len;
    } else {
        p[1] = 127;
        for (int i = 0; i < 8; i++)
            p[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (len && payload)
        memcpy(p + header, payload, len);
    return f;
}

mw_frame *mw_frame_raw(const void *bytes, size_t len)
{
    mw_frame *f = frame_alloc(len);
    if (f && bytes && len)
        memcpy(f->data, bytes, len);
    return f;
}

void mw_frame_unref(mw_frame *f)
{
    assert(!f || f->refs > 0); /* one unref per reference */
    if (!f || --f->refs != 0)
        return;
    if (f->alt && f->alt != f)
        mw_frame_unref(f->alt);
#if POOL_MAX > 0
    if (f->len <= SMALL_FRAME && pooled < POOL_MAX) {
        memcpy(f->data, &pool, sizeof(pool));
        pool = f;
        pooled++;
        return;
    }
#endif
    free(f);
}
