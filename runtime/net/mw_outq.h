/* mw_outq: a send queue of shared, reference-counted frames and the writing of it to a libuv
 * stream: what the kernel takes now (uv_try_write), the rest with one uv_write at a time. It
 * knows bytes and limits only: what to do with a consumer that falls behind is its owner's call.
 * An empty queue holds no memory of its own: one frame fits in the struct, more take an array
 * allocated while they wait, and the uv_write request exists only while a write runs. */
#ifndef MW_OUTQ_H
#define MW_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mw_frame.h"

#define MW_OUTQ_BATCH 64 /* frames per uv_try_write / uv_write */
/* A burst may exceed the limit within one loop turn (it is measured after the kernel took what
 * it could); this many times the limit is refused outright (mw_outq_refuses). */
#define MW_OUTQ_HARD_FACTOR 4

typedef struct mw_outq mw_outq;

/* A uv_write handed over by mw_outq_write_async completed: bytes of the queue were written
 * (and dropped from it), or status is a negative libuv error. */
typedef void (*mw_outq_written_cb)(void *owner, int status, size_t bytes);

struct mw_outq {
    uv_stream_t *stream;
    size_t limit;       /* queued bytes the owner tolerates (sendQueueBytes) */
    mw_frame **items;   /* items[head .. head+len) are queued, oldest first: &one, or an array */
    mw_frame *one;      /* the storage of a queue of one frame (the usual case) */
    uint32_t head, len, cap;
    uint32_t inflight;  /* frames handed to the running uv_write, counted from head */
    size_t head_off;    /* bytes of items[head] already written */
    size_t bytes;       /* queued bytes not yet written */
    size_t *total;      /* optional: a sum of bytes over several queues (the worker's gauge) */
    int writing;        /* a uv_write is running: its buffers must stay put */
    uv_write_t *wreq;   /* the running uv_write's request (allocated for it) */
    mw_outq_written_cb written_cb;
    void *owner;
};

void mw_outq_init(mw_outq *q, uv_stream_t *stream, size_t limit, mw_outq_written_cb cb, void *owner);
/* Drops every queued frame (the stream is closed: a running uv_write was cancelled). */
void mw_outq_free(mw_outq *q);

/* Queues f, taking over the caller's reference. Returns 0, or -1 (out of memory) when the caller
 * keeps its reference. */
int mw_outq_push(mw_outq *q, mw_frame *f);
/* Queues a copy of len bytes. Returns 0 or -1. */
int mw_outq_push_bytes(mw_outq *q, const void *bytes, size_t len);
/* Drops every frame not yet handed to the kernel or to the running uv_write; a frame partly
 * written stays, or the byte stream would be corrupt. */
void mw_outq_drop_unsent(mw_outq *q);

/* Writes what the kernel takes now, batch after batch, until the queue is empty, the kernel
 * takes less than offered, or a uv_write is running (then nothing is written). *written: the
 * bytes written. Returns 0 or a negative libuv error (the stream is broken). */
int mw_outq_try_write(mw_outq *q, size_t *written);
/* Hands the next batch to uv_write; written_cb reports its end. Returns 0 or a libuv error. */
int mw_outq_write_async(mw_outq *q);

static inline int mw_outq_empty(const mw_outq *q) { return q->len == 0; }
/* More queued than the limit. */
static inline int mw_outq_over(const mw_outq *q) { return q->bytes > q->limit; }
/* At most half the limit queued: a producer paused at the limit may go on. */
static inline int mw_outq_below_half(const mw_outq *q) { return q->bytes <= q->limit / 2; }
/* Queuing len more bytes would pass the hard cap (MW_OUTQ_HARD_FACTOR times the limit). */
static inline int mw_outq_refuses(const mw_outq *q, size_t len)
{
    return q->bytes + len > q->limit * MW_OUTQ_HARD_FACTOR;
}

#endif
