/* mw_lguard: keeps one worker's Lua within its limits (limits.luaMemory, limits.handlerTimeout).
 * - Memory: the Lua state's allocator counts every byte; while Lua code runs, an allocation past
 *   limits.luaMemory fails, which raises "not enough memory" in the running handler only.
 *   (Debian's LuaJIT 2.1 in GC64 mode accepts a custom allocator; this one wraps LuaJIT's own,
 *   which is faster than malloc, through lua_getallocf/lua_setallocf.)
 * - Time: a watchdog thread sees how long the current entry into Lua has run. Past
 *   limits.handlerTimeout it sets a count hook that raises an error in the running code; the
 *   hook fires in the interpreter only, so a loop LuaJIT compiled to machine code ignores it:
 *   if the entry still runs after a grace period, the watchdog logs why and kills the worker,
 *   and the supervisor replaces it (its clients reconnect). Time spent waiting on I/O is not
 *   Lua time: a coroutine that yields leaves Lua.
 * - Sites: scheduler.lua names the handler it starts or resumes (route label, file:line of the
 *   function) through core.site_push/site_pop, so that the watchdog's log line says which
 *   handler cost the worker, and how many clients go with it. */
#ifndef MW_LGUARD_H
#define MW_LGUARD_H

#include <stddef.h>

struct lua_State;
typedef struct mw_lguard mw_lguard;

/* The message the time hook raises; errors.lua recognises it. */
#define MW_LGUARD_TIMEOUT_MESSAGE "handler timed out"

/* memory_cap: bytes (0 = none); timeout: seconds (0 = none). NULL when out of memory. */
mw_lguard *mw_lguard_new(size_t memory_cap, double timeout);
/* Puts the counting allocator in front of the state's own (call right after luaL_newstate). */
void mw_lguard_wrap(mw_lguard *g, struct lua_State *L);
void *mw_lguard_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* Starts the watchdog on the state created with the allocator; 0 or -1. */
int mw_lguard_start(mw_lguard *g, struct lua_State *L);
/* Around every call from C into Lua; nested calls count as one. */
void mw_lguard_enter(mw_lguard *g);
void mw_lguard_leave(mw_lguard *g);
/* The one way C calls into Lua: lua_pcall of the function below the nargs arguments on top of
 * L's stack, between mw_lguard_enter and mw_lguard_leave (g may be NULL: no limits). On error
 * logs "runtime error" naming where (the runtime's own code failed: handler errors are caught
 * in Lua) and pops the message. Returns the lua_pcall status; nresults are left on success. */
int mw_lguard_pcall(mw_lguard *g, struct lua_State *L, int nargs, int nresults, const char *where);
/* Adds core.site_push(label, source, line) and core.site_pop() to the table on top of the
 * stack. [-0, +0] */
void mw_lguard_inject(mw_lguard *g, struct lua_State *L);
/* What core.site_push does, from C: the handler so named starts (loop thread). The site is
 * forgotten when Lua returns to C. */
void mw_lguard_push_site(mw_lguard *g, const char *label, size_t llen, const char *source, size_t slen,
                         int line);
/* The same for a site whose texts never change while g lives (the raw handler's, kept by the
 * VM): key names it, and a slot that holds it already is not compared again. */
void mw_lguard_push_fixed_site(mw_lguard *g, const void *key, const char *label, size_t llen,
                               const char *source, size_t slen, int line);
/* The worker's client count, read by the watchdog when it replaces the worker (it is stable
 * then: the loop thread is stuck in Lua). */
void mw_lguard_watch_clients(mw_lguard *g, const size_t *count);
/* Stops the watchdog; the state must be closed before (the allocator still uses the guard). */
void mw_lguard_stop(mw_lguard *g);
void mw_lguard_free(mw_lguard *g);

/* core.guard_next for LuaJIT's FFI (core.guard_next_ffi is its address, core.guard the g to
 * pass): 0, or 1 when the classic core.guard_next must be called instead. */
int mw_lguard_ffi_next(mw_lguard *g);

#endif
