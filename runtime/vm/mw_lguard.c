/* mw_lguard: the Lua memory cap (a counting allocator) and the handler time watchdog (a thread
 * that sets a count hook, and kills the worker when even that cannot stop the code). The hook
 * and the allocator run on the loop thread; the watchdog only reads the entry counters and the
 * handler sites, and calls lua_sethook, which Lua allows from another thread or a signal
 * handler (lua.c does the same for Ctrl-C). */
#include "mw_lguard.h"

#include <assert.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "mw_log.h"

#define WATCH_INTERVAL_MS 20
#define HOOK_INSTRUCTIONS 1000 /* the hook runs every this many VM instructions once armed */
#define REARM_NS 100000000ull  /* re-arm after 100 ms when the code caught the error and went on */
/* Past the cap, the code runs on until the collection memory_hook makes (compiled code runs no
 * hook: then until this reserve is used up), and once an allocation failed, the code that
 * handles the error (the error frame, the log line) may use it until Lua returns to C. */
#define MEMORY_RESERVE (8u << 20)
#define MAX_GCS_PER_ENTRY 3
/* Handlers run inside one another (a handler's send fires an event handler): the innermost few
 * are kept, deeper ones are only counted. */
#define SITE_SLOTS 4

/* Every raw message becomes a Lua string that a collection frees later: in a profile of a raw
 * echo, LuaJIT's allocator (lj_alloc_free, lj_alloc_malloc) took 5 % of the CPU. The guard keeps
 * up to SMALL_KEEP_BYTES of freed blocks of at most SMALL_MAX bytes and hands the most recently
 * freed out first: 4 % less CPU per echo (A/B, same run); 512 KiB kept made no measurable
 * difference, since one collection of that load frees more. */
#define SMALL_MAX 256
#define SMALL_KEEP_BYTES (2048 * 1024)

/* A handler the loop thread runs: what names it in logs ("chat:send", "timer", "job mail")
 * and where its function is defined. Fixed buffers: the watchdog copies them without a lock. */
typedef struct {
    char label[96];
    char source[160];
    int line;
    size_t label_len, source_len; /* the loop thread's: what the slot holds already */
    const void *fixed;            /* the loop thread's: the fixed site it holds, or NULL */
} site;

struct mw_lguard {
    lua_Alloc inner; /* LuaJIT's own allocator, which this one wraps (it is faster than malloc) */
    void *inner_ud;
    size_t used, cap;
    int tripped;  /* an allocation failed since Lua was entered: the reserve is open */
    int gc_asked; /* the cap was reached: memory_hook collects at the next instruction */
    int gcs_in_entry; /* collections memory_hook made in this entry (bounded: they cost time) */
    double timeout;
    lua_State *L;
    /* shared with the watchdog thread (atomics) */
    int depth;             /* nesting of C -> Lua calls; 0 = Lua is not running */
    uint64_t entry_seq;    /* counts outermost entries */
    uint64_t entered_ns;   /* uv_hrtime() at the outermost entry */
    uint64_t armed_seq;    /* the entry the hook was armed for */
    int stop;
    int started;
    uv_thread_t thread;
    clockid_t cpu_clock; /* the loop thread's CPU clock */
    size_t gc_base;      /* what a full collection left: the next one waits for real growth */
    int gc_near;         /* the collector settings last set: -1 none yet, 0 normal, 1 near the cap */
    /* The handlers being run, innermost last: written by the loop thread between two
     * increments of site_seq, read by the watchdog, which retries while the count is odd or
     * moved (a seqlock: the writer never waits, which matters since it writes per message). */
    site sites[SITE_SLOTS];
    int n_sites; /* may exceed SITE_SLOTS */
    unsigned site_seq;
    const size_t *clients; /* the worker's client count; NULL for none */
    /* Small blocks Lua freed, kept for its next allocations of the same size class (8-byte
     * classes up to SMALL_MAX bytes; each block links to the next): see mw_lguard_alloc. */
    void *small_free[SMALL_MAX / 8 + 1];
    size_t small_bytes; /* what the lists hold, at most SMALL_KEEP_BYTES */
};

/* The hook has no user data: one guard per worker process. */
static mw_lguard *active;

mw_lguard *mw_lguard_new(size_t memory_cap, double timeout)
{
    mw_lguard *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->cap = memory_cap;
    g->timeout = timeout;
    g->gc_near = -1;
    return g;
}

static void memory_hook(lua_State *L, lua_Debug *ar);

/* The seqlock's writer side (loop thread only): site_seq is odd while the sites change. */
static void site_write_begin(mw_lguard *g)
{
    assert((g->site_seq & 1) == 0); /* one writer: no write in progress */
    __atomic_store_n(&g->site_seq, g->site_seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void site_write_end(mw_lguard *g) { __atomic_store_n(&g->site_seq, g->site_seq + 1, __ATOMIC_RELEASE); }

/* A freed small block goes to the list of its class when the lists have room. Any block of n
 * bytes holds (n + 7) / 8 * 8: LuaJIT's allocator (lj_alloc.c, like glibc's malloc) rounds
 * every request up to a multiple of 8, and the blocks this file asks it for are whole classes
 * already. The lists are not given back while the state lives; on lua_close they are dropped
 * with the guard: LuaJIT does not destroy the arena of a state whose allocator was replaced
 * (close_state in lj_state.c), so these blocks stay where the rest of that arena stays. */
static int keep_small(mw_lguard *g, void *ptr, size_t size)
{
    size_t k = (size + 7) >> 3;
    if (size == 0 || size > SMALL_MAX || g->small_bytes + (k << 3) > SMALL_KEEP_BYTES)
        return 0;
    *(void **)ptr = g->small_free[k];
    g->small_free[k] = ptr;
    g->small_bytes += k << 3;
    return 1;
}

static void *new_small(mw_lguard *g, size_t size)
{
    size_t k = (size + 7) >> 3;
    void *p = g->small_free[k];
    if (!p)
        return g->inner(g->inner_ud, NULL, 0, k << 3);
    g->small_free[k] = *(void **)p;
    g->small_bytes -= k << 3;
    return p;
}

void *mw_lguard_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    mw_lguard *g = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        assert(g->used >= old); /* frees only what was counted (mw_lguard_wrap counts the start) */
        if (!ptr || !keep_small(g, ptr, old))
            g->inner(g->inner_ud, ptr, osize, 0);
        g->used -= old;
        return NULL;
    }
    /* only while Lua code runs: an allocation failure outside a protected call would panic */
    if (nsize > old && g->cap && __atomic_load_n(&g->depth, __ATOMIC_RELAXED) && g->used - old + nsize > g->cap) {
        if (!g->tripped && !g->gc_asked && g->gcs_in_entry < MAX_GCS_PER_ENTRY) {
            /* maybe garbage: let this one through (the reserve) and collect at the next VM
             * instruction, where that is safe (memory_hook) */
            g->gc_asked = 1;
            lua_sethook(g->L, memory_hook, LUA_MASKCOUNT, 1);
        } else if (g->tripped || g->gcs_in_entry >= MAX_GCS_PER_ENTRY ||
                   g->used - old + nsize > g->cap + MEMORY_RESERVE) {
            if (g->gc_asked) { /* the failure is the verdict: no collection hook after it */
                g->gc_asked = 0;
                lua_sethook(g->L, NULL, 0, 0);
            }
            g->tripped = 1;
            return NULL;
        }
    }
    void *p = !ptr && nsize <= SMALL_MAX ? new_small(g, nsize) : g->inner(g->inner_ud, ptr, osize, nsize);
    if (!p)
        return NULL;
    g->used = g->used - old + nsize;
    return p;
}

void mw_lguard_wrap(mw_lguard *g, lua_State *L)
{
    g->inner = lua_getallocf(L, &g->inner_ud);
    /* what the state holds already, so frees of it do not go below zero */
    g->used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    lua_setallocf(L, mw_lguard_alloc, g);
}

/* Asked for by the allocator when the cap was reached: a full collection, then the verdict. */
static void memory_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    mw_lguard *g = active;
    if (!g || !g->gc_asked || g->tripped)
        return;
    lua_gc(L, LUA_GCCOLLECT, 0);
    g->gc_asked = 0;
    g->gcs_in_entry++;
    g->gc_base = g->used;
    if (g->used > g->cap) {
        g->tripped = 1;
        luaL_error(L, "not enough memory");
    }
}

static void timeout_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    mw_lguard *g = active;
    /* armed for an entry that already ended: a late hook must not hit the next handler */
    if (!g || !__atomic_load_n(&g->depth, __ATOMIC_ACQUIRE) ||
        __atomic_load_n(&g->armed_seq, __ATOMIC_ACQUIRE) != __atomic_load_n(&g->entry_seq, __ATOMIC_ACQUIRE))
        return;
    luaL_error(L, MW_LGUARD_TIMEOUT_MESSAGE " after %g s (limits.handlerTimeout)", g->timeout);
}

/* CPU time of the loop thread: Lua run time, which a busy machine or a paused process does not
 * inflate (wall-clock time would). */
static uint64_t loop_cpu_ns(const mw_lguard *g)
{
    struct timespec ts;
    if (clock_gettime(g->cpu_clock, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Copies the innermost handler site the loop thread published; 0, or -1 when none is known
 * (Lua runs the runtime's own code, or the writer kept moving). Watchdog thread. */
static int read_site(mw_lguard *g, site *out, int *depth)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned before = __atomic_load_n(&g->site_seq, __ATOMIC_ACQUIRE);
        if (before & 1) {
            uv_sleep(1);
            continue;
        }
        int n = __atomic_load_n(&g->n_sites, __ATOMIC_RELAXED);
        if (n > 0)
            memcpy(out, &g->sites[(n < SITE_SLOTS ? n : SITE_SLOTS) - 1], sizeof(*out));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&g->site_seq, __ATOMIC_RELAXED) != before)
            continue;
        out->label[sizeof(out->label) - 1] = out->source[sizeof(out->source) - 1] = '\0';
        *depth = n;
        return n > 0 ? 0 : -1;
    }
    return -1;
}

/* The line that says why the worker is replaced, which handler did it (route, the file:line
 * its function is defined at) and how many clients it drops. Watchdog thread; the loop thread
 * is stuck in Lua, so the logger's buffer is not in use. */
static void log_replacement(mw_lguard *g, const char *why)
{
    site s;
    int depth = 0;
    int known = read_site(g, &s, &depth) == 0;
    if (!mw_log_begin(MW_LOG_ERROR, why))
        return;
    if (known) {
        char where[sizeof(s.source) + 16];
        snprintf(where, sizeof(where), "%s:%d", s.source, s.line);
        mw_log_str("route", s.label);
        mw_log_str("where", where);
        if (depth > SITE_SLOTS) /* the one running is nested deeper than the slots kept */
            mw_log_int("nestedDeeper", depth - SITE_SLOTS);
    } else {
        mw_log_str("route", "(the runtime's own code, no handler)");
    }
    if (g->clients)
        mw_log_int("clientsDropped", (int64_t)__atomic_load_n(g->clients, __ATOMIC_RELAXED));
    mw_log_end();
}

static void watchdog(void *arg)
{
    mw_lguard *g = arg;
    uint64_t timeout_ns = (uint64_t)(g->timeout * 1e9);
    /* how long after the timeout a compiled loop is given before the worker is replaced */
    uint64_t grace_ns = timeout_ns > 1000000000ull ? timeout_ns : 1000000000ull;
    /* a call that does not come back although it uses no CPU is blocked in C (a system call) */
    uint64_t blocked_ns = timeout_ns * 10 > 30000000000ull ? timeout_ns * 10 : 30000000000ull;
    uint64_t seen_seq = 0, seq_cpu = 0, last_arm_ns = 0;
    while (!__atomic_load_n(&g->stop, __ATOMIC_ACQUIRE)) {
        uv_sleep(WATCH_INTERVAL_MS);
        if (!__atomic_load_n(&g->depth, __ATOMIC_ACQUIRE))
            continue;
        uint64_t seq = __atomic_load_n(&g->entry_seq, __ATOMIC_ACQUIRE);
        uint64_t cpu = loop_cpu_ns(g);
        if (seq != seen_seq) { /* a new entry: its CPU time counts from here (at most 20 ms late) */
            seen_seq = seq;
            seq_cpu = cpu;
            continue;
        }
        uint64_t now = uv_hrtime();
        uint64_t ran = cpu - seq_cpu;
        uint64_t waited = now - __atomic_load_n(&g->entered_ns, __ATOMIC_ACQUIRE);
        if (ran > timeout_ns + grace_ns || waited > blocked_ns) {
            char why[512];
            if (ran > timeout_ns + grace_ns)
                snprintf(why, sizeof(why),
                         "a handler is still running %.1f s after limits.handlerTimeout (%g s): a loop compiled by "
                         "LuaJIT, or code that catches the timeout error, cannot be interrupted, so this worker is "
                         "replaced; its clients reconnect (--dev runs the app's code without the JIT, where the "
                         "time limit stops such a loop)",
                         (double)(ran - timeout_ns) / 1e9, g->timeout);
            else
                snprintf(why, sizeof(why),
                         "a handler has not returned for %.0f s (blocked in a C call?), so this worker is replaced; "
                         "its clients reconnect",
                         (double)waited / 1e9);
            log_replacement(g, why);
            kill(getpid(), SIGKILL);
            return;
        }
        if (ran < timeout_ns)
            continue;
        if (__atomic_load_n(&g->armed_seq, __ATOMIC_ACQUIRE) != seq || now - last_arm_ns > REARM_NS) {
            __atomic_store_n(&g->armed_seq, seq, __ATOMIC_RELEASE);
            last_arm_ns = now;
            lua_sethook(g->L, timeout_hook, LUA_MASKCOUNT, HOOK_INSTRUCTIONS);
        }
    }
}

int mw_lguard_start(mw_lguard *g, lua_State *L)
{
    g->L = L;
    active = g;
    if (pthread_getcpuclockid(pthread_self(), &g->cpu_clock) != 0) /* called on the loop thread */
        return -1;
    if (g->timeout <= 0)
        return 0;
    if (uv_thread_create(&g->thread, watchdog, g) != 0)
        return -1;
    g->started = 1;
    return 0;
}

/* Monotonic time at the clock tick's resolution (a few ms): enough for the watchdog's "blocked
 * for 30 s" and cheaper than uv_hrtime, which this would call once per message. Same clock as
 * uv_hrtime (CLOCK_MONOTONIC), so the watchdog may subtract one from the other. */
static uint64_t coarse_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
        return uv_hrtime();
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void mw_lguard_enter(mw_lguard *g)
{
    if (!g)
        return;
    if (g->depth == 0) {
        __atomic_store_n(&g->entered_ns, coarse_ns(), __ATOMIC_RELEASE);
        /* the loop thread is the only writer of entry_seq and depth (the watchdog reads them):
         * release stores, not locked read-modify-writes, which this would pay twice a message */
        __atomic_store_n(&g->entry_seq, g->entry_seq + 1, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&g->depth, g->depth + 1, __ATOMIC_RELEASE);
}

void mw_lguard_leave(mw_lguard *g)
{
    if (!g)
        return;
    assert(__atomic_load_n(&g->depth, __ATOMIC_RELAXED) > 0); /* each leave matches an enter */
    int depth = g->depth - 1;
    __atomic_store_n(&g->depth, depth, __ATOMIC_RELEASE);
    if (depth != 0)
        return;
    /* only a hook this entry may have set (the watchdog armed it, or the allocator asked for a
     * collection): lua_sethook costs a dispatch update, once per message otherwise */
    if (g->gc_asked || __atomic_load_n(&g->armed_seq, __ATOMIC_ACQUIRE) == __atomic_load_n(&g->entry_seq, __ATOMIC_ACQUIRE))
        lua_sethook(g->L, NULL, 0, 0);
    if (g->n_sites) { /* a handler that yielded or raised never popped its site */
        site_write_begin(g);
        __atomic_store_n(&g->n_sites, 0, __ATOMIC_RELAXED);
        site_write_end(g);
    }
    if (!g->cap)
        return;
    /* LuaJIT has no emergency collection when an allocation fails (memory_hook makes one), and
     * by default starts a cycle only at twice the live size. Near the cap: collect now (outside
     * Lua, where it is safe) when memory grew half-way from what the last full collection left
     * towards the cap, and keep the collector eager (pause 100 %, step multiplier 10x) so garbage
     * does not pile up to the cap meanwhile. */
    if (g->tripped || g->used > g->gc_base + (g->cap - (g->gc_base < g->cap ? g->gc_base : g->cap)) / 2) {
        if (g->tripped || g->used > g->cap / 2) {
            lua_gc(g->L, LUA_GCCOLLECT, 0);
            g->gc_base = g->used;
        }
    }
    int near = g->used > g->cap / 2;
    if (near != g->gc_near) { /* set on a change only: this runs once per message */
        lua_gc(g->L, LUA_GCSETPAUSE, near ? 100 : 200);
        lua_gc(g->L, LUA_GCSETSTEPMUL, near ? 1000 : 200); /* more collection work per byte allocated */
        g->gc_near = near;
    }
    g->tripped = 0;
    g->gc_asked = 0;
    g->gcs_in_entry = 0;
}

int mw_lguard_pcall(mw_lguard *g, lua_State *L, int nargs, int nresults, const char *where)
{
    mw_lguard_enter(g);
    int rv = lua_pcall(L, nargs, nresults, 0);
    mw_lguard_leave(g);
    if (rv != 0) {
        if (mw_log_begin(MW_LOG_ERROR, "runtime error")) {
            mw_log_str("in", where);
            mw_log_str("error", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
            mw_log_end();
        }
        lua_pop(L, 1);
    }
    return rv;
}

void mw_lguard_watch_clients(mw_lguard *g, const size_t *count)
{
    if (g)
        g->clients = count;
}

void mw_lguard_push_site(mw_lguard *g, const char *label, size_t llen, const char *source, size_t slen, int line)
{
    int n = g->n_sites;
    site_write_begin(g);
    if (n < SITE_SLOTS) {
        site *s = &g->sites[n];
        if (llen >= sizeof(s->label))
            llen = sizeof(s->label) - 1;
        /* a slot mostly gets the site it had (the same route again): compared, not copied
         * (a copy of a string of unknown length is a `rep movs`, slow to start) */
        if (llen != s->label_len || memcmp(s->label, label, llen) != 0) {
            memcpy(s->label, label, llen);
            s->label[llen] = '\0';
            s->label_len = llen;
        }
        if (slen >= sizeof(s->source)) { /* keep the end of a long path: the file name */
            source += slen - (sizeof(s->source) - 4);
            slen = sizeof(s->source) - 4;
            memcpy(s->source, "...", 3);
            memcpy(s->source + 3, source, slen);
            s->source[slen + 3] = '\0';
            s->source_len = (size_t)-1; /* cut: never equal, copied again next time */
        } else if (slen != s->source_len || memcmp(s->source, source, slen) != 0) {
            memcpy(s->source, source, slen);
            s->source[slen] = '\0';
            s->source_len = slen;
        }
        s->line = line;
        s->fixed = NULL;
    }
    __atomic_store_n(&g->n_sites, n + 1, __ATOMIC_RELAXED);
    site_write_end(g);
}

void mw_lguard_push_fixed_site(mw_lguard *g, const void *key, const char *label, size_t llen,
                               const char *source, size_t slen, int line)
{
    int n = g->n_sites;
    if (n < SITE_SLOTS && g->sites[n].fixed == key) { /* the slot holds it: only count it */
        site_write_begin(g);
        __atomic_store_n(&g->n_sites, n + 1, __ATOMIC_RELAXED);
        site_write_end(g);
        return;
    }
    mw_lguard_push_site(g, label, llen, source, slen, line);
    if (n < SITE_SLOTS)
        g->sites[n].fixed = key;
}

/* core.site_push(label, source, line): the loop thread starts or resumes the handler so named
 * (scheduler.lua calls it once per message, so it copies and nothing more). */
static int l_site_push(lua_State *L)
{
    mw_lguard *g = lua_touserdata(L, lua_upvalueindex(1));
    size_t llen, slen;
    /* lua_tolstring, not luaL_check*: only the scheduler calls this, once per message */
    const char *label = lua_tolstring(L, 1, &llen);
    const char *source = lua_tolstring(L, 2, &slen);
    int line = (int)lua_tointeger(L, 3);
    if (!label)
        label = "?", llen = 1;
    if (!source)
        source = "?", slen = 1;
    mw_lguard_push_site(g, label, llen, source, slen, line);
    return 0;
}

/* core.site_pop(): the handler site_push named returned or yielded. */
static int l_site_pop(lua_State *L)
{
    mw_lguard *g = lua_touserdata(L, lua_upvalueindex(1));
    if (g->n_sites > 0) {
        site_write_begin(g);
        __atomic_store_n(&g->n_sites, g->n_sites - 1, __ATOMIC_RELAXED);
        site_write_end(g);
    }
    return 0;
}

/* core.guard_next(): the next message of a batch starts (router.handle_raw_batch): its time
 * limit counts from here, and its memory verdict is its own (a message before it that ran out
 * of memory does not fail it), as if it had been a call of its own. */
static void next_message(mw_lguard *g)
{
    g->tripped = 0;
    g->gcs_in_entry = 0;
    __atomic_store_n(&g->entered_ns, coarse_ns(), __ATOMIC_RELEASE);
    __atomic_store_n(&g->entry_seq, g->entry_seq + 1, __ATOMIC_RELEASE);
}

static int l_guard_next(lua_State *L)
{
    mw_lguard *g = lua_touserdata(L, lua_upvalueindex(1));
    if (g->depth > 0) {
        /* a hook armed for the message that ended is not wanted by the next one */
        if (!g->gc_asked &&
            __atomic_load_n(&g->armed_seq, __ATOMIC_ACQUIRE) == __atomic_load_n(&g->entry_seq, __ATOMIC_ACQUIRE))
            lua_sethook(g->L, NULL, 0, 0);
        next_message(g);
    }
    return 0;
}

/* The same for LuaJIT's FFI (router.lua), so that a batch's loop stays in compiled code: 1 when
 * the classic call above must be made instead, which the router then does: when a hook armed
 * for the message that ended must go (only that call may touch the Lua state), when the memory
 * limit asked for a collection, so that its hook runs there, between two messages (compiled
 * code runs no hook, and a trace could leave it to any later point), and when the memory state
 * of the message that ended must be reset. */
int mw_lguard_ffi_next(mw_lguard *g)
{
    if (g->depth == 0)
        return 0;
    if (g->gc_asked || g->tripped || g->gcs_in_entry ||
        __atomic_load_n(&g->armed_seq, __ATOMIC_ACQUIRE) == __atomic_load_n(&g->entry_seq, __ATOMIC_ACQUIRE))
        return 1;
    next_message(g);
    return 0;
}

void mw_lguard_inject(mw_lguard *g, lua_State *L)
{
    lua_pushlightuserdata(L, (void *)(uintptr_t)mw_lguard_ffi_next);
    lua_setfield(L, -2, "guard_next_ffi");
    lua_pushlightuserdata(L, g);
    lua_setfield(L, -2, "guard");
    lua_pushlightuserdata(L, g);
    lua_pushcclosure(L, l_guard_next, 1);
    lua_setfield(L, -2, "guard_next");
    lua_pushlightuserdata(L, g);
    lua_pushcclosure(L, l_site_push, 1);
    lua_setfield(L, -2, "site_push");
    lua_pushlightuserdata(L, g);
    lua_pushcclosure(L, l_site_pop, 1);
    lua_setfield(L, -2, "site_pop");
}

void mw_lguard_stop(mw_lguard *g)
{
    if (!g || !g->started)
        return;
    __atomic_store_n(&g->stop, 1, __ATOMIC_RELEASE);
    uv_thread_join(&g->thread);
    g->started = 0;
}

void mw_lguard_free(mw_lguard *g)
{
    if (!g)
        return;
    mw_lguard_stop(g);
    if (active == g)
        active = NULL;
    free(g);
}
