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
    uint8_t data[];
} mw_frame;

/* A server-to-client WebSocket data frame (FIN set, unmasked) around payload. opcode: 1 text, 2 binary. */
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

#endif
