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

/* Opens path (creating its folder and the file) and takes and drops the write lock, so
 * `serve` can refuse to start with a database it cannot write. Returns 0, or -1 with err set. */
int mw_db_sqlite_probe(const char *path, char *err, size_t errlen);

extern const mw_db_ops mw_db_sqlite_ops;

#endif
