/* mw_outq: the queue is a ring-less array compacted on demand (frames leave from the front, in
 * order); bytes are written straight from the shared frames, never copied. A frame stays
 * referenced until the kernel has all of it, including while a uv_write holds its buffer.
 * Memory rule: a queue of one frame uses the struct's own slot; a longer one an array that is
 * given back (to the worker's pool of spares, or freed) when the queue empties; the uv_write_t
 * is allocated per uv_write and freed in its callback. An idle connection's queue so holds
 * nothing on the heap. */
#include "mw_outq.h"

#include <stdlib.h>
#include <string.h>

static void write_cb(uv_write_t *req, int status);

void mw_outq_init(mw_outq *q, uv_stream_t *stream, size_t limit, mw_outq_written_cb cb, void *owner)
{
    memset(q, 0, sizeof(*q));
    q->stream = stream;
    q->limit = limit;
    q->written_cb = cb;
    q->owner = owner;
}

void mw_outq_pool_init(mw_outq_pool *p, uint32_t max_spare)
{
    p->spare = NULL;
    p->n_spare = 0;
    p->max_spare = max_spare;
}

void mw_outq_pool_free(mw_outq_pool *p)
{
    while (p->spare) {
        mw_frame **a = p->spare;
        p->spare = (mw_frame **)a[0];
        free(a);
    }
    p->n_spare = 0;
}

static mw_frame **array_get(mw_outq *q)
{
    mw_outq_pool *p = q->pool;
    if (p && p->spare) {
        mw_frame **a = p->spare;
        p->spare = (mw_frame **)a[0];
        p->n_spare--;
        return a;
    }
    return malloc(MW_OUTQ_POOLED_CAP * sizeof(mw_frame *));
}

static void array_put(mw_outq *q, mw_frame **a, uint32_t cap)
{
    mw_outq_pool *p = q->pool;
    if (cap == MW_OUTQ_POOLED_CAP && p && p->n_spare < p->max_spare) {
        a[0] = (mw_frame *)p->spare;
        p->spare = a;
        p->n_spare++;
        return;
    }
    free(a);
}

static void add_bytes(mw_outq *q, size_t n)
{
    q->bytes += n;
    if (q->total)
        *q->total += n;
}

static void sub_bytes(mw_outq *q, size_t n)
{
    q->bytes -= n;
    if (q->total)
        *q->total -= n;
}

/* An empty queue gives its array back (not while a uv_write may still read it). */
static void shrink_if_empty(mw_outq *q)
{
    if (q->len > 0 || q->writing)
        return;
    if (q->items != &q->one)
        array_put(q, q->items, q->cap);
    q->items = NULL;
    q->head = q->cap = 0;
}

void mw_outq_free(mw_outq *q)
{
    for (uint32_t i = 0; i < q->len; i++)
        mw_frame_unref(q->items[q->head + i]);
    sub_bytes(q, q->bytes);
    q->len = 0;
    q->head_off = 0;
    q->writing = 0;
    shrink_if_empty(q);
}

int mw_outq_push(mw_outq *q, mw_frame *f)
{
    if (q->cap == 0) {
        q->items = &q->one;
        q->cap = 1;
        q->head = 0;
    }
    if (q->head + q->len == q->cap) {
        if (q->head > 0) { /* compact: a running uv_write holds the frames' bytes, not this array */
            memmove(q->items, q->items + q->head, q->len * sizeof(mw_frame *));
            q->head = 0;
        }
        if (q->head + q->len == q->cap) {
            uint32_t ncap = q->cap < MW_OUTQ_POOLED_CAP ? MW_OUTQ_POOLED_CAP : q->cap * 2;
            mw_frame **n = ncap == MW_OUTQ_POOLED_CAP ? array_get(q) : malloc(ncap * sizeof(mw_frame *));
            if (!n)
                return -1;
            memcpy(n, q->items, q->len * sizeof(mw_frame *)); /* head is 0 here */
            if (q->items != &q->one)
                array_put(q, q->items, q->cap);
            q->items = n;
            q->cap = ncap;
        }
    }
    q->items[q->head + q->len++] = f;
    add_bytes(q, f->len);
    return 0;
}

int mw_outq_push_bytes(mw_outq *q, const void *bytes, size_t len)
{
    mw_frame *f = mw_frame_raw(bytes, len);
    if (!f || mw_outq_push(q, f) != 0) {
        mw_frame_unref(f);
        return -1;
    }
    return 0;
}

/* Drops n bytes from the front of the queue (they were written). */
static void consume(mw_outq *q, size_t n)
{
    while (n > 0 && q->len > 0) {
        mw_frame *f = q->items[q->head];
        size_t left = f->len - q->head_off;
        if (n < left) {
            q->head_off += n;
            sub_bytes(q, n);
            return;
        }
        n -= left;
        sub_bytes(q, left);
        mw_frame_unref(f);
        q->head++;
        q->len--;
        q->head_off = 0;
    }
    if (q->len == 0)
        q->head = 0;
    shrink_if_empty(q);
}

void mw_outq_drop_unsent(mw_outq *q)
{
    uint32_t keep = q->writing ? q->inflight : 0;
    if (!q->writing && q->len > 0 && q->head_off > 0)
        keep = 1; /* a partly written frame must be finished or the stream is corrupt */
    for (uint32_t i = keep; i < q->len; i++) {
        mw_frame *f = q->items[q->head + i];
        sub_bytes(q, f->len);
        mw_frame_unref(f);
    }
    q->len = keep;
    shrink_if_empty(q);
}

/* Fills bufs with up to MW_OUTQ_BATCH frames from the front; returns how many, *total bytes. */
static uint32_t gather(const mw_outq *q, uv_buf_t *bufs, size_t *total)
{
    uint32_t nb = q->len < MW_OUTQ_BATCH ? q->len : MW_OUTQ_BATCH;
    *total = 0;
    for (uint32_t i = 0; i < nb; i++) {
        mw_frame *f = q->items[q->head + i];
        size_t off = i == 0 ? q->head_off : 0;
        bufs[i] = uv_buf_init((char *)f->data + off, (unsigned)(f->len - off));
        *total += f->len - off;
    }
    return nb;
}

/* Small frames are copied into one buffer before a write: the kernel copies one contiguous
 * buffer faster than many short iovecs (an echo batch is ten ~60-byte frames), and the copy here
 * costs less than the kernel's per-segment work it saves. Only for uv_try_write, which is done
 * with its buffers when it returns, so one buffer serves every connection of the loop. */
#define COALESCE_BYTES 16384
static uint8_t coalesced[COALESCE_BYTES];

static void coalesce(uv_buf_t *bufs, uint32_t *nb, size_t total)
{
    if (*nb < 2 || total > COALESCE_BYTES)
        return;
    size_t off = 0;
    for (uint32_t i = 0; i < *nb; i++) {
        memcpy(coalesced + off, bufs[i].base, bufs[i].len);
        off += bufs[i].len;
    }
    bufs[0] = uv_buf_init((char *)coalesced, (unsigned)off);
    *nb = 1;
}

int mw_outq_try_write(mw_outq *q, size_t *written)
{
    uv_buf_t bufs[MW_OUTQ_BATCH];
    *written = 0;
    if (q->writing)
        return 0;
    while (q->len > 0) {
        size_t total;
        uint32_t nb = gather(q, bufs, &total);
        coalesce(bufs, &nb, total);
        int n = uv_try_write(q->stream, bufs, nb);
        if (n == UV_EAGAIN || n == UV_ENOSYS)
            n = 0;
        if (n < 0)
            return n;
        consume(q, (size_t)n);
        *written += (size_t)n;
        if ((size_t)n < total)
            return 0; /* the kernel buffer is full */
    }
    return 0;
}

int mw_outq_write_async(mw_outq *q)
{
    uv_buf_t bufs[MW_OUTQ_BATCH];
    size_t total;
    if (q->writing || q->len == 0)
        return 0;
    uv_write_t *req = malloc(sizeof(*req));
    if (!req)
        return UV_ENOMEM;
    uint32_t nb = gather(q, bufs, &total);
    req->data = q;
    q->inflight = nb;
    q->writing = 1;
    q->wreq = req;
    int rv = uv_write(req, q->stream, bufs, nb, write_cb);
    if (rv != 0) {
        free(req);
        q->wreq = NULL;
        q->writing = 0;
        q->inflight = 0;
    }
    return rv;
}

static void write_cb(uv_write_t *req, int status)
{
    mw_outq *q = req->data;
    free(req);
    q->wreq = NULL;
    size_t bytes = 0;
    for (uint32_t i = 0; i < q->inflight; i++) {
        mw_frame *f = q->items[q->head + i];
        bytes += f->len - (i == 0 ? q->head_off : 0);
    }
    q->writing = 0;
    q->inflight = 0;
    consume(q, bytes);
    if (q->written_cb)
        q->written_cb(q->owner, status, bytes);
}
