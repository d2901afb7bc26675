/* mw_db_sqlite: the embedded database. Statements run on libuv's thread pool, one at a time
 * per database (SQLite connections are not shared between threads), so a slow query does not
 * stall the event loop; results are copied out on the pool thread and handed back on the loop.
 * Used through mw_db.h. */
#ifndef MW_DB_SQLITE_H
#define MW_DB_SQLITE_H

#include <uv.h>

#include "mw_db.h"

typedef struct mw_db_sqlite mw_db_sqlite;

/* path: a file (its folder is created) or ":memory:"; opened by the first statement. */
mw_db_sqlite *mw_db_sqlite_open(uv_loop_t *loop, const char *path);

extern const mw_db_ops mw_db_sqlite_ops;

#endif
