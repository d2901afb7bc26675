/* mw_db: the database behind the `database` binding, one interface over two backends: SQLite
 * (embedded, statements on libuv's thread pool) and PostgreSQL (libpq's non-blocking API on the
 * worker's loop, a small pool of connections). mw_lapi_db.c talks to this header only. */
#ifndef MW_DB_H
#define MW_DB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef enum { MW_DB_NULL = 0, MW_DB_INT, MW_DB_REAL, MW_DB_TEXT, MW_DB_BLOB, MW_DB_BOOL } mw_db_type;

typedef struct mw_db_value {
    mw_db_type type;
    int64_t i;   /* INT, and BOOL as 0/1 */
    double d;    /* REAL */
    char *s;     /* TEXT/BLOB bytes, len bytes (a parameter's are copied by mw_db_run) */
    size_t len;
} mw_db_value;

/* Valid only during the callback: copy what must outlive it. */
typedef struct mw_db_result {
    const char *error;          /* NULL, or why the statement failed */
    int ncols;
    char **cols;                /* column names */
    size_t nrows;
    mw_db_value *values;        /* nrows * ncols, row-major; NULL cells are MW_DB_NULL */
    int64_t changes;            /* rows changed by INSERT/UPDATE/DELETE */
    mw_db_value last_insert_id; /* SQLite: the rowid; PostgreSQL: the first cell of the first row
                                   (INSERT ... RETURNING id), MW_DB_NULL when there is none */
} mw_db_result;

typedef void (*mw_db_cb)(mw_db_result *res, void *data);

/* mw_db_run's errors; the callback is then never called. */
#define MW_DB_ENOMEM (-1)   /* out of memory */
#define MW_DB_ECLOSED (-2)  /* the database is closing */
#define MW_DB_ESESSION (-3) /* no such session: its transaction ended */

typedef struct mw_db mw_db;

/* url: sqlite:PATH, sqlite::memory:, postgres://... or postgresql://... (libpq's URI form).
 * Nothing is opened here: the first statement opens the file or connects. Returns NULL with
 * a message in err for a URL that cannot work (unknown scheme, malformed URI). */
mw_db *mw_db_open(uv_loop_t *loop, const char *url, char *err, size_t errlen);

/* Checks once, before any worker starts, that an SQLite database (not :memory:) can be
 * created and written; other URLs pass (PostgreSQL reconnects on its own). 0, or -1 with err. */
int mw_db_probe(const char *url, char *err, size_t errlen);

/* "sqlite" or "postgres". */
const char *mw_db_backend(const mw_db *db);

/* A session is a transaction's claim on one connection: its first statement (BEGIN) waits
 * for a connection like any other and pins it; its later statements run on that connection
 * only; mw_db_session_close gives it back (a connection left inside a transaction is dropped).
 * SQLite has one connection and ignores sessions (the Lua side serialises transactions).
 * Returns a session id, or 0 when out of memory. */
unsigned mw_db_session_open(mw_db *db);
void mw_db_session_close(mw_db *db, unsigned session);

/* Queues one statement with `?` placeholders and its parameters (copied); session 0 is any
 * connection. Returns 0 and later calls cb exactly once on the loop thread (never from
 * inside this call), or a negative MW_DB_E* code and never calls cb. */
int mw_db_run(mw_db *db, unsigned session, const char *sql, size_t sql_len, const mw_db_value *params,
              int nparams, mw_db_cb cb, void *data);

/* Closes the database: SQLite lets queued statements finish first; PostgreSQL fails what is
 * queued or running at once (each callback gets an error) and closes its connections. */
void mw_db_close(mw_db *db);

/* What a backend provides (mw_db.c dispatches to it). */
typedef struct mw_db_ops {
    const char *name;
    int (*run)(void *impl, unsigned session, const char *sql, size_t sql_len, const mw_db_value *params,
               int nparams, mw_db_cb cb, void *data);
    unsigned (*session_open)(void *impl);
    void (*session_close)(void *impl, unsigned session);
    void (*close)(void *impl);
} mw_db_ops;

#endif
