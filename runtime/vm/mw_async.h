/* mw_async: how C code that finishes later gets back into the worker's Lua: the one protocol
 * of every binding that waits for I/O (redis:call, database:query, timer:sleep; the queue's
 * jobs go through those), and the spawning of timer ticks in coroutines of their own.
 *
 * A waiting binding, after OpenResty's check -> register cleanup -> start -> yield and luv's
 * request objects:
 *   1. check its arguments (misuse raises; "not configured" answers nil, err);
 *   2. a = mw_async_new(L, token, size, message): raises unless the caller is a coroutine that
 *      may wait, takes a reference on it and registers the call with the host, which cancels it
 *      if the Lua state goes away first (mw_async_on_cancel names what stops the operation);
 *   3. start the operation with a as its callback data; when it cannot start, return
 *      mw_async_failed(L, a, why) (nil, why), else return mw_async_started(L, a) (true), and
 *      the Lua side yields until the coroutine is resumed with the call's token.
 * On completion the operation calls mw_async_resume_begin(a): NULL when the call was cancelled
 * (the results are dropped), else the main state with hooks.resume (scheduler.resume), the
 * coroutine and the token pushed: push the results, then mw_async_resume_end(a, n).
 * mw_async_free(a) once the operation will not call back again. scheduler.resume resumes the
 * coroutine only if it still waits for that token (scheduler.wait), so a call abandoned in Lua
 * (client gone, reload, job timeout) is dropped there; the reference taken in step 2 keeps the
 * coroutine alive until then. */
#ifndef MW_ASYNC_H
#define MW_ASYNC_H

#include <stddef.h>

#include <lua.h>

struct mw_lguard;
typedef struct mw_async_host mw_async_host;
typedef struct mw_async mw_async;

/* ---- the host: one per Lua state, created by its owner (mw_lvm) ------------------------- */

/* Registers a new host in L's registry, where mw_async_host_of finds it from any coroutine.
 * Every entry into Lua it makes runs under guard (NULL: no limits). NULL when out of memory. */
mw_async_host *mw_async_host_new(lua_State *L, struct mw_lguard *guard);
/* The runtime's hooks.resume(co, token, ...) and hooks.spawn(what, fn, ...) (registry
 * references, kept by the caller; LUA_NOREF: none). */
void mw_async_host_set_hooks(mw_async_host *h, int resume_ref, int spawn_ref);
/* Cancels every pending call (their cancel callbacks run now, their completions are dropped
 * later) and frees the host. Before lua_close. */
void mw_async_host_free(mw_async_host *h);
mw_async_host *mw_async_host_of(lua_State *L);
lua_State *mw_async_host_state(const mw_async_host *h);
/* Calls registered and neither resumed, failed, freed nor cancelled. */
size_t mw_async_host_pending(const mw_async_host *h);
/* Runs the function fn_ref (a registry reference, kept) in a new coroutine with the nargs values
 * on top of the main state's stack as its arguments; what names it in logs ("timer"). */
void mw_async_spawn(mw_async_host *h, const char *what, int fn_ref, int nargs);

/* ---- one call of a binding ----------------------------------------------------------------- */

/* Step 2, inside a C function called from Lua: raises not_here unless L is a coroutine (the
 * Lua side checks first that it may yield), raises on out of memory. size: bytes of operation
 * state the binding gets at mw_async_data (zeroed). */
mw_async *mw_async_new(lua_State *L, lua_Number token, size_t size, const char *not_here);
void *mw_async_data(mw_async *a);
/* What stops the operation when the call is cancelled (optional); it runs at most once, and
 * the operation still ends with mw_async_free. */
void mw_async_on_cancel(mw_async *a, void (*cancel_cb)(mw_async *a));
/* Step 3: pushes true; returns 1 (the binding returns it). [-0, +1] */
int mw_async_started(lua_State *L, mw_async *a);
/* Step 3, the operation did not start: frees a, pushes nil and why; returns 2. [-0, +2] */
int mw_async_failed(lua_State *L, mw_async *a, const char *why);
/* Completion: NULL when the call was cancelled; else the host's main state with hooks.resume,
 * the coroutine and the token pushed (the coroutine's reference is released). */
lua_State *mw_async_resume_begin(mw_async *a);
/* Resumes with the nvalues values pushed since mw_async_resume_begin (a protected call). */
void mw_async_resume_end(mw_async *a, int nvalues);
/* The operation is over: frees a (an unresumed call lets its coroutine go). */
void mw_async_free(mw_async *a);

#endif
