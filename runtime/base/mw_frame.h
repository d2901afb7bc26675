/* mw_frame: an immutable, reference-counted buffer of bytes ready for the wire. A broadcast is
 * encoded once and framed once; every recipient's send queue holds a reference to the same frame. */
#ifndef MW_FRAME_H
#define MW_FRAME_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mw_frame {
    uint32_t refs;
    uint32_t len;
    /* Another encoding of the same message, released with this frame: the permessage-deflate
     * one (net/mw_deflate), made for the first recipient that wants it so that every other
     * shares it; the frame itself when that encoding would not be shorter. NULL until asked. */
    struct mw_frame *alt;
    uint8_t data[];
} mw_frame;

/* A server-to-client WebSocket data frame (FIN set, unmasked) around payload. opcode: 1 text, 2 binary.
 * payload NULL leaves the len payload bytes to fill in (mw_frame_payload finds them). */
mw_frame *mw_frame_ws(int opcode, const void *payload, size_t len);
/* Raw bytes (an HTTP response, or bytes wslay produced); bytes NULL leaves the data to fill in. */
mw_frame *mw_frame_raw(const void *bytes, size_t len);

static inline mw_frame *mw_frame_ref(mw_frame *f)
{
    assert(f->refs > 0); /* a freed frame cannot be shared again */
    f->refs++;
    return f;
}
void mw_frame_unref(mw_frame *f);

/* The payload of a frame made by mw_frame_ws (after its 2, 4 or 10 header bytes). */
static inline const uint8_t *mw_frame_payload(const mw_frame *f, size_t *len)
{
    uint8_t n = f->len >= 2 ? (uint8_t)(f->data[1] & 0x7f) : 0;
    size_t header = n == 127 ? 10 : n == 126 ? 4 : 2;
    *len = f->len >= header ? f->len - header : 0;
    return f->data + header;
}

#endif
