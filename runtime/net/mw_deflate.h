/* mw_deflate: a worker's permessage-deflate codec: one zlib deflate stream and one inflate stream,
 * reset for every message (both sides negotiated no_context_takeover), so nothing of it lives per
 * connection. A frame's compressed twin is kept with the frame: a broadcast is compressed once. */
#ifndef MW_DEFLATE_H
#define MW_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "mw_frame.h"
#include "mw_metrics.h"

typedef struct mw_deflate mw_deflate;

enum { MW_INFLATE_OK = 0, MW_INFLATE_TOO_BIG = -1, MW_INFLATE_BAD = -2, MW_INFLATE_NOMEM = -3 };

/* level: zlib's 0..9. m: the worker's metrics (the received byte counters). NULL when memory is short. */
mw_deflate *mw_deflate_new(int level, mw_metrics_slot *m);
void mw_deflate_free(mw_deflate *d);

/* The frame to queue for a peer that negotiated permessage-deflate: the compressed twin of f
 * (RSV1 set; made on the first call and released with f), or f itself when f is not a whole
 * data frame, its payload is shorter than threshold, or compressing it does not make it shorter. */
mw_frame *mw_deflate_pick(mw_deflate *d, mw_frame *f, size_t threshold);

/* Inflates one compressed message (the payload of its frames, joined). At most max bytes come
 * out: past that it stops and returns MW_INFLATE_TOO_BIG, so a deflate bomb is never inflated
 * beyond the limit. On MW_INFLATE_OK, *out holds *out_len bytes until the next call or
 * mw_deflate_trim. MW_INFLATE_BAD: not a valid deflate stream. */
int mw_deflate_inflate(mw_deflate *d, const uint8_t *in, size_t len, size_t max, const uint8_t **out,
                       size_t *out_len);
/* Gives back a large inflate buffer once its message was handled. */
void mw_deflate_trim(mw_deflate *d);

/* The largest compressed message to accept for max inflated bytes: deflate's stored blocks make
 * incompressible data a little longer than it was. */
size_t mw_deflate_wire_max(size_t max);

#endif
