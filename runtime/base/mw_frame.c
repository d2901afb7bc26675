/* mw_frame: server frames are never masked (RFC 6455 5.1), so the same bytes serve every
 * recipient; that is why data frames are framed here and not by wslay, which copies per peer. */
#include "mw_frame.h"

#include <stdlib.h>
#include <string.h>

static mw_frame *frame_alloc(size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    mw_frame *f = malloc(sizeof(mw_frame) + len);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = (uint32_t)len;
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
    if (f && --f->refs == 0)
        free(f);
}
