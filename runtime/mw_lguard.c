/* mw_lguard: the Lua memory cap (a counting allocator) and the handler time watchdog (a thread
 * that sets a count hook, and kills the worker when even that cannot stop the code). The hook
 * and the allocator run on the loop thread; the watchdog only reads the entry counters and
 * calls lua_sethook, which Lua allows from another thread or a signal handler (lua.c does the
 * same for Ctrl-C). */
#include "mw_lguard.h"

#include <lauxlib.h>
#include <lua.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "mw_log.h"

#define WATCH_INTERVAL_MS 20
#define HOOK_INSTRUCTIONS 1000 /* the hook runs every this many VM instructions once armed */
#define REARM_NS 100000000ull  /* re-arm after 100 ms when the code caught the error and went on */
/* Once an allocation failed, the code that handles the error (the error frame, the log line)
 * may use this much more until Lua returns to C and the garbage is collected. */
#define MEMORY_RESERVE (8u << 20)

struct mw_lguard {
    size_t used, cap;
    int tripped; /* an allocation failed since Lua was entered: the reserve is open */
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
    return g;
}

void *mw_lguard_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    mw_lguard *g = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        g->used -= old;
        return NULL;
    }
    /* only while Lua code runs: an allocation failure outside a protected call would panic */
    if (nsize > old && g->cap && __atomic_load_n(&g->depth, __ATOMIC_RELAXED)) {
        size_t limit = g->tripped ? g->cap + MEMORY_RESERVE : g->cap;
        if (g->used - old + nsize > limit) {
            g->tripped = 1;
            return NULL;
        }
    }
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    g->used = g->used - old + nsize;
    return p;
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

static void watchdog(void *arg)
{
    mw_lguard *g = arg;
    uint64_t timeout_ns = (uint64_t)(g->timeout * 1e9);
    /* how long after the timeout a compiled loop is given before the worker is replaced */
    uint64_t grace_ns = timeout_ns > 1000000000ull ? timeout_ns : 1000000000ull;
    uint64_t last_arm_ns = 0;
    while (!__atomic_load_n(&g->stop, __ATOMIC_ACQUIRE)) {
        uv_sleep(WATCH_INTERVAL_MS);
        if (!__atomic_load_n(&g->depth, __ATOMIC_ACQUIRE))
            continue;
        uint64_t seq = __atomic_load_n(&g->entry_seq, __ATOMIC_ACQUIRE);
        uint64_t now = uv_hrtime();
        uint64_t ran = now - __atomic_load_n(&g->entered_ns, __ATOMIC_ACQUIRE);
        if (ran < timeout_ns || seq != __atomic_load_n(&g->entry_seq, __ATOMIC_ACQUIRE))
            continue;
        if (ran > timeout_ns + grace_ns) {
            mw_logf(MW_LOG_ERROR,
                    "a handler is still running %.1f s after limits.handlerTimeout (%g s): a loop compiled "
                    "by LuaJIT cannot be interrupted, so this worker is replaced; its clients reconnect",
                    (double)(ran - timeout_ns) / 1e9, g->timeout);
            kill(getpid(), SIGKILL);
            return;
        }
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
    if (g->timeout <= 0)
        return 0;
    if (uv_thread_create(&g->thread, watchdog, g) != 0)
        return -1;
    g->started = 1;
    return 0;
}

void mw_lguard_enter(mw_lguard *g)
{
    if (!g)
        return;
    if (g->depth == 0) {
        __atomic_store_n(&g->entered_ns, uv_hrtime(), __ATOMIC_RELEASE);
        __atomic_add_fetch(&g->entry_seq, 1, __ATOMIC_ACQ_REL);
    }
    __atomic_add_fetch(&g->depth, 1, __ATOMIC_ACQ_REL);
}

void mw_lguard_leave(mw_lguard *g)
{
    if (!g)
        return;
    if (__atomic_sub_fetch(&g->depth, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    lua_sethook(g->L, NULL, 0, 0);
    /* near the cap, collect now (outside Lua, where it is safe) rather than fail the next handler
     * for garbage the incremental collector has not reached yet */
    if (g->tripped || (g->cap && g->used > g->cap / 4 * 3))
        lua_gc(g->L, LUA_GCCOLLECT, 0);
    g->tripped = 0;
}

size_t mw_lguard_used(const mw_lguard *g) { return g ? g->used : 0; }

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
