/* mw_heapcount: an LD_PRELOAD malloc counter for memory budgets (issue 15): where does each byte
 * of a connection go? It counts live heap bytes (malloc_usable_size, so allocator rounding is
 * included) per calling site: the return address of malloc/calloc/realloc, and the caller above
 * it, named with dladdr. SIGUSR2 writes the table to MW_HEAPCOUNT_DIR (default /tmp) as
 * heapcount.PID.txt (live bytes, live blocks, object, offset in it, symbol); a second dump after
 * more connections are opened, minus the first, is the cost per connection by site (offsets in
 * moonwire itself: addr2line -f -e build/moonwire OFFSET).
 *
 *   cc -O2 -shared -fPIC -o build/mw_heapcount.so tests/bench/mw_heapcount.c -ldl
 *   LD_PRELOAD=build/mw_heapcount.so moonwire serve app ...; kill -USR2 WORKER_PID
 *
 * Not thread-safe beyond a spin lock (moonwire's workers are single-threaded; libuv's thread
 * pool only allocates rarely). Not a test, not linked into anything: a measuring tool. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

#define SITES 8192
typedef struct site {
    void *a, *b;   /* the caller of malloc and its caller */
    int64_t bytes; /* live */
    int64_t count; /* live blocks */
} site;

/* Each block remembers its site in a header: 16 bytes before the user pointer. */
typedef struct hdr {
    uint32_t site;
    uint32_t magic;
    uint64_t pad;
} hdr;
#define MAGIC 0x6d776863u
#define MAGIC_ALIGNED 0x6d776861u

static site sites[SITES];
static volatile int lock_;
static int64_t live_total;

static void lock(void) { while (__sync_lock_test_and_set(&lock_, 1)) ; }
static void unlock(void) { __sync_lock_release(&lock_); }

static uint32_t site_of(void *a, void *b)
{
    uintptr_t h = ((uintptr_t)a * 0x9E3779B97F4A7C15ull) ^ ((uintptr_t)b * 0xC2B2AE3D27D4EB4Full);
    uint32_t i = (uint32_t)(h >> 40) % SITES;
    for (uint32_t n = 0; n < SITES; n++, i = (i + 1) % SITES) {
        if (sites[i].a == a && sites[i].b == b)
            return i;
        if (!sites[i].a) {
            sites[i].a = a;
            sites[i].b = b;
            return i;
        }
    }
    return 0; /* full: lumped into slot 0 */
}

static void account(void *user, void *a, void *b)
{
    hdr *h = (hdr *)user - 1;
    size_t n = malloc_usable_size(h) - sizeof(hdr);
    lock();
    uint32_t s = site_of(a, b);
    h->site = s;
    h->magic = MAGIC;
    sites[s].bytes += (int64_t)n;
    sites[s].count++;
    live_total += (int64_t)n;
    unlock();
}

static void unaccount(void *user)
{
    hdr *h = (hdr *)user - 1;
    if (h->magic != MAGIC)
        return;
    size_t n = malloc_usable_size(h) - sizeof(hdr);
    lock();
    sites[h->site].bytes -= (int64_t)n;
    sites[h->site].count--;
    live_total -= (int64_t)n;
    h->magic = 0;
    unlock();
}

/* The caller's caller without unwinding tables: frame pointers are not guaranteed, so only
 * __builtin_return_address(0) is reliable; (1) is attempted through the frame chain when the
 * binary keeps frame pointers and is NULL-checked. */
#define CALLERS(a, b)                                                                              \
    void *a = __builtin_return_address(0);                                                        \
    void *b = NULL

void *malloc(size_t n)
{
    CALLERS(a, b);
    hdr *h = __libc_malloc(n + sizeof(hdr));
    if (!h)
        return NULL;
    account(h + 1, a, b);
    return h + 1;
}

void *calloc(size_t k, size_t n)
{
    CALLERS(a, b);
    if (n && k > (SIZE_MAX - 64) / n)
        return NULL;
    hdr *h = __libc_calloc(1, k * n + sizeof(hdr));
    if (!h)
        return NULL;
    account(h + 1, a, b);
    return h + 1;
}

void free(void *p)
{
    if (!p)
        return;
    hdr *h = (hdr *)p - 1;
    if (h->magic == MAGIC_ALIGNED) {
        __libc_free((void *)(uintptr_t)h->pad);
        return;
    }
    unaccount(p);
    __libc_free(h);
}

void *realloc(void *p, size_t n)
{
    CALLERS(a, b);
    if (!p)
        return malloc(n);
    if (n == 0) {
        free(p);
        return NULL;
    }
    hdr *old = (hdr *)p - 1;
    if (old->magic == MAGIC_ALIGNED) {
        char *base = (char *)(uintptr_t)old->pad;
        size_t have = malloc_usable_size(base) - (size_t)((char *)p - base);
        void *q = malloc(n);
        if (q) {
            memcpy(q, p, have < n ? have : n);
            __libc_free(base);
        }
        return q;
    }
    unaccount(p);
    hdr *h = __libc_realloc((hdr *)p - 1, n + sizeof(hdr));
    if (!h) {
        ((hdr *)p - 1)->magic = MAGIC; /* still live, still counted? re-add below */
        account(p, a, b);
        return NULL;
    }
    account(h + 1, a, b);
    return h + 1;
}

/* Aligned allocations keep the header scheme: the header sits just before the aligned pointer
 * and remembers the block's real start (uncounted: rare here). */
static void *aligned(size_t al, size_t n, void *a)
{
    if (al < sizeof(hdr))
        al = sizeof(hdr);
    char *p = __libc_malloc(n + 2 * al);
    if (!p)
        return NULL;
    char *user = (char *)(((uintptr_t)p + sizeof(hdr) + al - 1) & ~(uintptr_t)(al - 1));
    hdr *h = (hdr *)user - 1;
    h->magic = MAGIC_ALIGNED;
    h->pad = (uint64_t)(uintptr_t)p;
    (void)a;
    return user;
}

int posix_memalign(void **out, size_t al, size_t n)
{
    void *p = aligned(al, n, __builtin_return_address(0));
    if (!p)
        return 12;
    *out = p;
    return 0;
}
void *aligned_alloc(size_t al, size_t n) { return aligned(al, n, __builtin_return_address(0)); }
void *memalign(size_t al, size_t n) { return aligned(al, n, __builtin_return_address(0)); }

static char dump_buf[1 << 20];

static void dump(int sig)
{
    (void)sig;
    char path[256];
    const char *dir = getenv("MW_HEAPCOUNT_DIR");
    snprintf(path, sizeof(path), "%s/heapcount.%d.txt", dir ? dir : "/tmp", (int)getpid());
    size_t len = 0;
    lock();
    len += (size_t)snprintf(dump_buf + len, sizeof(dump_buf) - len, "total %lld\n", (long long)live_total);
    for (int i = 0; i < SITES && len < sizeof(dump_buf) - 512; i++) {
        if (!sites[i].a || (sites[i].bytes == 0 && sites[i].count == 0))
            continue;
        Dl_info di;
        const char *name = "?", *obj = "?";
        uintptr_t off = 0;
        if (dladdr(sites[i].a, &di)) {
            obj = di.dli_fname ? (strrchr(di.dli_fname, '/') ? strrchr(di.dli_fname, '/') + 1 : di.dli_fname) : "?";
            name = di.dli_sname ? di.dli_sname : "?";
            off = (uintptr_t)sites[i].a - (uintptr_t)di.dli_fbase;
        }
        len += (size_t)snprintf(dump_buf + len, sizeof(dump_buf) - len, "%lld %lld %s 0x%lx %s\n",
                                (long long)sites[i].bytes, (long long)sites[i].count, obj,
                                (unsigned long)off, name);
    }
    unlock();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return;
    ssize_t w = write(fd, dump_buf, len);
    (void)w;
    close(fd);
}

__attribute__((constructor)) static void init(void) { signal(SIGUSR2, dump); }
