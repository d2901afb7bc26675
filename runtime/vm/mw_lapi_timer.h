/* mw_lapi_timer: the timer binding family (core.timer_start, timer_stop, timer_sleep) behind
 * lua/moonwire/timer.lua, the runtime's start-up retry and the jobs' time limits. */
#ifndef MW_LAPI_TIMER_H
#define MW_LAPI_TIMER_H

#include <uv.h>

struct lua_State;
typedef struct mw_ltimer mw_ltimer;

/* What the family works on, kept by the owner of the Lua state: the timers belong to it (a
 * dropped Lua handle does not stop one), not to Lua. */
typedef struct mw_lapi_timer_ctx {
    uv_loop_t *loop;
    mw_ltimer *timers; /* every running timer and sleep */
    long long last_id;
    int closed; /* mw_lapi_timer_close_all ran: a new timer would keep the final loop running */
} mw_lapi_timer_ctx;

/* Adds the family's functions to the table on top of the stack; ctx: an mw_lapi_timer_ctx. [-0, +0] */
void mw_lapi_timer_open(struct lua_State *L, void *ctx);
/* Stops every timer and sleep (at exit, while the Lua state is still open) and refuses new
 * ones. */
void mw_lapi_timer_close_all(mw_lapi_timer_ctx *ctx);

#endif
