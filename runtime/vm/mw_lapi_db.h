/* mw_lapi_db: the database binding family (core.db_run, db_run_in, db_backend,
 * db_session_open, db_session_close) behind lua/moonwire/database.lua. */
#ifndef MW_LAPI_DB_H
#define MW_LAPI_DB_H

#include "mw_metrics.h"

struct lua_State;
struct mw_db;

/* What the family works on, kept by the owner of the Lua state. */
typedef struct mw_lapi_db_ctx {
    struct mw_db *db;   /* SQLite or PostgreSQL; NULL: none usable, error says why */
    char error[512];
    mw_metrics_slot *m; /* db_queries, db_errors and the statement latency histogram */
} mw_lapi_db_ctx;

/* Adds the family's functions to the table on top of the stack; ctx: an mw_lapi_db_ctx. [-0, +0] */
void mw_lapi_db_open(struct lua_State *L, void *ctx);

#endif
