/* mw_lco: message coroutines resumed straight from C. A message used to reach its handler
 * through a protected call of a Lua hook that took a pooled coroutine and resumed it: three
 * Lua frames and a pcall per message, which the profile of the raw echo showed as a third of
 * the worker's user time. Here C keeps the pool: it pushes the handler's arguments onto an
 * idle coroutine and resumes it; a handler that waits on I/O is handed to the Lua scheduler
 * (hooks.adopt), which resumes it from then on like any other. The coroutines run the
 * scheduler's message loop, so both pools speak the same protocol: resume(fn, a, b, c, d, e),
 * yield(FINISHED, status) after each handler. */
#ifndef MW_LCO_H
#define MW_LCO_H

#include <stddef.h>

struct lua_State;
struct mw_lguard;

typedef struct mw_lco mw_lco;

/* hooks (a table at index `hooks` of L) provides message_loop, FINISHED, adopt and the message
 * body (`body`, the function every message runs). NULL when one is missing or on no memory. */
mw_lco *mw_lco_new(struct lua_State *L, int hooks);
void mw_lco_free(mw_lco *p);

/* Takes a coroutine for one message and pushes the body onto it; the caller pushes the body's
 * arguments (at most five) onto the returned state, then calls mw_lco_run with their number. */
struct lua_State *mw_lco_begin(mw_lco *p);
/* The same with another body: the function the registry holds at ref (a batch of messages). */
struct lua_State *mw_lco_begin_with(mw_lco *p, int ref);

/* Resumes the coroutine of the last mw_lco_begin under guard g. Returns the body's status
 * (0 done, 1 failed: MW_LVM_DONE/FAILED), 2 (MW_LVM_PENDING) when the handler waits on I/O and
 * now belongs to the scheduler, which then calls core.handler_finished(clientId, failed), or -1
 * when the coroutine itself raised (a runtime bug: the body catches the app's errors), which
 * is logged. */
int mw_lco_run(mw_lco *p, struct mw_lguard *g, int nargs, const char *client_id, size_t id_len);

#endif
