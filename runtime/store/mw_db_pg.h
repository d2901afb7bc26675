/* mw_db_pg: PostgreSQL for the `database` binding, on libpq's non-blocking API driven by the
 * worker's libuv loop: up to MW_DB_PG_POOL connections per worker, opened when statements need
 * them, statements queued first in first out while all are busy, reconnection with a capped
 * backoff after the server went away, a deadline on every statement. Used through mw_db.h. */
#ifndef MW_DB_PG_H
#define MW_DB_PG_H

#include <uv.h>

#include "mw_db.h"

/* compile-time settings (-D to override, e.g. short timeouts to test them) */
#ifndef MW_DB_PG_POOL
#define MW_DB_PG_POOL 4 /* connections per worker */
#endif
#ifndef MW_DB_PG_CONNECT_TIMEOUT_MS
#define MW_DB_PG_CONNECT_TIMEOUT_MS 10000
#endif
#ifndef MW_DB_PG_STATEMENT_TIMEOUT_MS
#define MW_DB_PG_STATEMENT_TIMEOUT_MS 30000 /* from mw_db_run to the result, queueing included */
#endif
#define MW_DB_PG_BACKOFF_MIN_MS 100 /* after a failed connect; doubles while they keep failing */
#define MW_DB_PG_BACKOFF_MAX_MS 5000

typedef struct mw_db_pg mw_db_pg;

/* url: libpq's postgres:// or postgresql:// URI; checked here (NULL with a message in err when
 * libpq cannot parse it), connected to by the first statement. */
mw_db_pg *mw_db_pg_open(uv_loop_t *loop, const char *url, char *err, size_t errlen);

extern const mw_db_ops mw_db_pg_ops;

#endif
