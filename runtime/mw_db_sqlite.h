/* mw_db_sqlite: the embedded database. Statements run on libuv's thread pool, one at a time
 * per database (SQLite connections are not shared between threads), so a slow query does not
 * stall the event loop; results are copied out on the pool thread and handed back on the loop. */
#ifndef MW_DB_SQLITE_H
#define MW_DB_SQLITE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct mw_db mw_db;

typedef enum { MW_DB_NULL = 0, MW_DB_INT, MW_DB_REAL, MW_DB_TEXT, MW_DB_BLOB } mw_db_type;

typedef struct mw_db_value {
    mw_db_type type;
    int64_t i;
    double d;
    char *s; /* TEXT/BLOB bytes (malloc'd), len bytes */
    size_t len;
} mw_db_value;

typedef struct mw_db_result {
    const char *error;    /* NULL, or the database's message (valid during the callback) */
    int ncols;
    char **cols;          /* column names */
    size_t nrows;
    mw_db_value *values;  /* nrows * ncols, row-major */
    int64_t changes, last_insert_id;
} mw_db_result;

typedef void (*mw_db_cb)(mw_db_result *res, void *data);

/* path: a file (its folder is created) or ":memory:". */
mw_db *mw_db_open(uv_loop_t *loop, const char *path);
/* Queues a statement with params (copied). cb runs on the loop thread, exactly once. */
int mw_db_run(mw_db *db, const char *sql, size_t sql_len, const mw_db_value *params, int nparams, mw_db_cb cb,
              void *data);
/* Closes after the queued statements finished. */
void mw_db_close(mw_db *db);

#endif
