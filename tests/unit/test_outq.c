/* Unit test for mw_outq over a socketpair whose buffers are small, so that the kernel takes part
 * of a batch: the bytes arrive complete and in order (partial-write offsets), byte counts stay
 * exact, a frame shared by two queues is freed only after both wrote it, and the limits
 * (over, below half, the hard cap) and dropping unsent frames behave as their comments say;
 * small frames copied into one write keep every queue's bytes exact.
 * Links mw_net only. */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mw_outq.h"
#include "mw_test.h"

typedef struct peer {
    uv_pipe_t writer, reader;
    mw_outq q;
    uint8_t *got;
    size_t got_len, got_cap;
    size_t expect;     /* bytes the reader waits for */
    int written_calls; /* written_cb totals, checked after uv_run */
    size_t written_bytes;
    size_t tried_bytes;
} peer;

static uv_loop_t loop;

static void read_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char chunk[4096];
    *buf = uv_buf_init(chunk, sizeof(chunk));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    peer *p = s->data;
    if (nread <= 0)
        return;
    if (p->got_len + (size_t)nread > p->got_cap) {
        p->got_cap = (p->got_len + (size_t)nread) * 2;
        p->got = realloc(p->got, p->got_cap);
    }
    memcpy(p->got + p->got_len, buf->base, (size_t)nread);
    p->got_len += (size_t)nread;
    if (p->got_len >= p->expect)
        uv_read_stop(s);
}

/* What mw_conn.c's flush does: write what the kernel takes, hand the rest to uv_write. */
static void flush(peer *p)
{
    size_t n;
    CHECK_EQ_INT(mw_outq_try_write(&p->q, &n), 0);
    p->tried_bytes += n;
    if (!mw_outq_empty(&p->q))
        CHECK_EQ_INT(mw_outq_write_async(&p->q), 0);
}

static void written_cb(void *owner, int status, size_t bytes)
{
    peer *p = owner;
    CHECK_EQ_INT(status, 0);
    p->written_calls++;
    p->written_bytes += bytes;
    flush(p);
}

static void peer_open(peer *p, size_t limit)
{
    int fds[2];
    memset(p, 0, sizeof(*p));
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    int small = 4096;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    uv_pipe_init(&loop, &p->writer, 0);
    uv_pipe_init(&loop, &p->reader, 0);
    CHECK_EQ_INT(uv_pipe_open(&p->writer, fds[0]), 0);
    CHECK_EQ_INT(uv_pipe_open(&p->reader, fds[1]), 0);
    p->reader.data = p;
    mw_outq_init(&p->q, (uv_stream_t *)&p->writer, limit, written_cb, p);
}

static void peer_close(peer *p)
{
    mw_outq_free(&p->q);
    uv_close((uv_handle_t *)&p->writer, NULL);
    uv_close((uv_handle_t *)&p->reader, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    free(p->got);
}

/* Frames of many sizes with a running byte pattern: the reader must see the pattern unbroken. */
static void test_partial_writes(void)
{
    peer p;
    peer_open(&p, 1 << 30);
    size_t total = 0;
    uint8_t next = 0;
    for (int i = 0; i < 300; i++) {
        size_t len = 1 + (size_t)(i * 7919) % 6000;
        mw_frame *f = mw_frame_raw(NULL, len);
        for (size_t k = 0; k < len; k++)
            f->data[k] = next++;
        CHECK_EQ_INT(mw_outq_push(&p.q, f), 0);
        total += len;
    }
    CHECK_EQ_INT(p.q.bytes, total);
    p.expect = total;
    size_t n;
    CHECK_EQ_INT(mw_outq_try_write(&p.q, &n), 0);
    CHECK(n > 0 && n < total);          /* the small buffer took part of it */
    CHECK_EQ_INT(p.q.bytes, total - n); /* what is left is exactly what was not taken */
    p.tried_bytes = n;
    CHECK_EQ_INT(mw_outq_write_async(&p.q), 0);
    CHECK(p.q.writing);
    CHECK_EQ_INT(mw_outq_try_write(&p.q, &n), 0); /* nothing while a uv_write runs */
    CHECK_EQ_INT(n, 0);
    uv_read_start((uv_stream_t *)&p.reader, read_alloc_cb, read_cb);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(mw_outq_empty(&p.q));
    CHECK_EQ_INT(p.q.bytes, 0);
    CHECK(p.written_calls > 0);
    CHECK_EQ_INT(p.tried_bytes + p.written_bytes, total);
    CHECK_EQ_INT(p.got_len, total);
    int intact = p.got_len == total;
    for (size_t k = 0; intact && k < total; k++)
        intact = p.got[k] == (uint8_t)k;
    CHECK(intact);
    peer_close(&p);
}

/* Many small frames (an echo batch), in two queues written in turns: mw_outq_try_write copies
 * them into one buffer shared by every queue, and a partial write of that copy must still leave
 * each queue exactly the bytes the kernel did not take, from its own frames. */
static void test_small_frames_coalesced(void)
{
    peer a, b;
    peer_open(&a, 1 << 30);
    peer_open(&b, 1 << 30);
    size_t total = 0;
    for (int i = 0; i < 200; i++) {
        size_t len = 20 + (size_t)i % 50;
        mw_frame *fa = mw_frame_raw(NULL, len), *fb = mw_frame_raw(NULL, len);
        for (size_t k = 0; k < len; k++) {
            fa->data[k] = (uint8_t)(total + k);
            fb->data[k] = (uint8_t)~(total + k);
        }
        CHECK_EQ_INT(mw_outq_push(&a.q, fa), 0);
        CHECK_EQ_INT(mw_outq_push(&b.q, fb), 0);
        total += len;
    }
    a.expect = b.expect = total;
    size_t na, nb;
    CHECK_EQ_INT(mw_outq_try_write(&a.q, &na), 0);
    CHECK_EQ_INT(mw_outq_try_write(&b.q, &nb), 0); /* overwrites the shared copy */
    CHECK(na > 0 && na < total && nb > 0 && nb < total);
    CHECK_EQ_INT(a.q.bytes, total - na);
    CHECK_EQ_INT(b.q.bytes, total - nb);
    a.tried_bytes = na;
    b.tried_bytes = nb;
    CHECK_EQ_INT(mw_outq_write_async(&a.q), 0);
    CHECK_EQ_INT(mw_outq_write_async(&b.q), 0);
    uv_read_start((uv_stream_t *)&a.reader, read_alloc_cb, read_cb);
    uv_read_start((uv_stream_t *)&b.reader, read_alloc_cb, read_cb);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(mw_outq_empty(&a.q) && mw_outq_empty(&b.q));
    CHECK_EQ_INT(a.got_len, total);
    CHECK_EQ_INT(b.got_len, total);
    int intact = a.got_len == total && b.got_len == total;
    for (size_t k = 0; intact && k < total; k++)
        intact = a.got[k] == (uint8_t)k && b.got[k] == (uint8_t)~k;
    CHECK(intact);
    peer_close(&a);
    peer_close(&b);
}

/* One frame in two queues: each holds a reference until it has written all of it. */
static void test_shared_frames(void)
{
    peer a, b;
    peer_open(&a, 1 << 30);
    peer_open(&b, 1 << 30);
    size_t len = 200000;
    mw_frame *f = mw_frame_raw(NULL, len);
    for (size_t k = 0; k < len; k++)
        f->data[k] = (uint8_t)(k * 31);
    CHECK_EQ_INT(mw_outq_push(&a.q, mw_frame_ref(f)), 0);
    CHECK_EQ_INT(mw_outq_push(&b.q, mw_frame_ref(f)), 0);
    CHECK_EQ_INT(f->refs, 3);
    a.expect = b.expect = len;
    flush(&a);
    flush(&b);
    CHECK_EQ_INT(f->refs, 3); /* neither is done: 200 kB do not fit the small buffers */
    uv_read_start((uv_stream_t *)&a.reader, read_alloc_cb, read_cb);
    uv_read_start((uv_stream_t *)&b.reader, read_alloc_cb, read_cb);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(f->refs, 1); /* both queues let go */
    CHECK_EQ_INT(a.got_len, len);
    CHECK_EQ_INT(b.got_len, len);
    CHECK(a.got_len == len && memcmp(a.got, f->data, len) == 0);
    CHECK(b.got_len == len && memcmp(b.got, f->data, len) == 0);
    mw_frame_unref(f);
    peer_close(&a);
    peer_close(&b);
}

static void test_caps(void)
{
    peer p;
    peer_open(&p, 1000);
    CHECK(!mw_outq_over(&p.q));
    CHECK(mw_outq_below_half(&p.q));
    CHECK_EQ_INT(mw_outq_push_bytes(&p.q, "x", 1), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(mw_outq_push(&p.q, mw_frame_raw(NULL, 100)), 0);
    CHECK_EQ_INT(p.q.bytes, 501);
    CHECK(!mw_outq_below_half(&p.q)); /* 501 > 500 */
    CHECK(!mw_outq_over(&p.q));
    CHECK(!mw_outq_refuses(&p.q, 3499)); /* 4000: the hard cap itself is allowed */
    CHECK(mw_outq_refuses(&p.q, 3500));
    CHECK_EQ_INT(mw_outq_push(&p.q, mw_frame_raw(NULL, 500)), 0);
    CHECK(mw_outq_over(&p.q));
    mw_outq_drop_unsent(&p.q); /* nothing written yet: everything goes */
    CHECK(mw_outq_empty(&p.q));
    CHECK_EQ_INT(p.q.bytes, 0);
    peer_close(&p);
}

/* A frame the kernel took part of stays when the rest is dropped; the stream stays whole. */
static void test_drop_keeps_partial(void)
{
    peer p;
    peer_open(&p, 1 << 30);
    for (int i = 0; i < 50; i++)
        CHECK_EQ_INT(mw_outq_push(&p.q, mw_frame_raw(NULL, 10000)), 0);
    size_t n;
    CHECK_EQ_INT(mw_outq_try_write(&p.q, &n), 0);
    CHECK(n > 0 && n < 500000);
    CHECK(p.q.head_off > 0 || n % 10000 == 0);
    size_t left_of_first = p.q.head_off ? 10000 - p.q.head_off : 0;
    mw_outq_drop_unsent(&p.q);
    if (left_of_first) {
        CHECK_EQ_INT(p.q.len, 1);
        CHECK_EQ_INT(p.q.bytes, left_of_first);
    } else {
        CHECK(mw_outq_empty(&p.q));
    }
    /* while a uv_write runs, the frames it holds stay too */
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(mw_outq_push(&p.q, mw_frame_raw(NULL, 10000)), 0);
    CHECK_EQ_INT(mw_outq_write_async(&p.q), 0);
    uint32_t inflight = p.q.inflight;
    CHECK(inflight > 0);
    mw_outq_drop_unsent(&p.q);
    CHECK_EQ_INT(p.q.len, inflight);
    p.expect = n + left_of_first + (inflight - (left_of_first ? 1 : 0)) * 10000;
    uv_read_start((uv_stream_t *)&p.reader, read_alloc_cb, read_cb);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(mw_outq_empty(&p.q));
    CHECK_EQ_INT(p.got_len, p.expect);
    peer_close(&p);
}

/* Memory rule: an empty queue holds nothing on the heap; one frame uses the struct's slot; more
 * borrow an array from the pool, given back (and reused) when the queue empties; the byte total
 * shared by several queues follows every push, write and drop. */
static void test_empty_queue_holds_nothing(void)
{
    mw_outq_pool pool;
    mw_outq_pool_init(&pool, 4);
    size_t total = 0;
    peer p;
    peer_open(&p, 1 << 30);
    p.q.pool = &pool;
    p.q.total = &total;
    CHECK(p.q.items == NULL && p.q.cap == 0);
    CHECK_EQ_INT(mw_outq_push(&p.q, mw_frame_raw("a", 1)), 0);
    CHECK(p.q.items == &p.q.one);
    CHECK_EQ_INT(total, 1);
    for (int i = 0; i < 20; i++) /* past the pooled size: a bigger array, the pooled one back */
        CHECK_EQ_INT(mw_outq_push(&p.q, mw_frame_raw("bb", 2)), 0);
    CHECK_EQ_INT(total, 41);
    CHECK_EQ_INT(pool.n_spare, 1);
    size_t n;
    CHECK_EQ_INT(mw_outq_try_write(&p.q, &n), 0);
    CHECK_EQ_INT(n, 41);
    CHECK(mw_outq_empty(&p.q) && p.q.items == NULL && p.q.cap == 0);
    CHECK_EQ_INT(total, 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(mw_outq_push(&p.q, mw_frame_raw("c", 1)), 0);
    CHECK_EQ_INT(pool.n_spare, 0); /* the spare was taken */
    mw_outq_drop_unsent(&p.q);
    CHECK(p.q.items == NULL);
    CHECK_EQ_INT(pool.n_spare, 1);
    CHECK_EQ_INT(total, 0);
    peer_close(&p);
    mw_outq_pool_free(&pool);
    CHECK_EQ_INT(pool.n_spare, 0);
}

int main(void)
{
    uv_loop_init(&loop);
    test_empty_queue_holds_nothing();
    test_partial_writes();
    test_shared_frames();
    test_small_frames_coalesced();
    test_caps();
    test_drop_keeps_partial();
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    MW_TEST_DONE();
}
