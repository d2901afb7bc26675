/* mw_db: picks the backend from the URL's scheme and forwards every call to it, so the Lua
 * binding is written once for SQLite and PostgreSQL. */
#include "mw_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_db_pg.h"
#include "mw_db_sqlite.h"

struct mw_db {
    const mw_db_ops *ops;
    void *impl;
};

mw_db *mw_db_open(uv_loop_t *loop, const char *url, char *err, size_t errlen)
{
    const mw_db_ops *ops;
    void *impl;
    if (strncmp(url, "sqlite:", 7) == 0) {
        ops = &mw_db_sqlite_ops;
        impl = mw_db_sqlite_open(loop, url + 7);
        if (!impl)
            snprintf(err, errlen, "database: out of memory");
    } else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0) {
        ops = &mw_db_pg_ops;
        impl = mw_db_pg_open(loop, url, err, errlen);
    } else {
        /* the scheme only: the rest may hold a password */
        size_t scheme = strcspn(url, ":/");
        snprintf(err, errlen,
                 "database.url must be sqlite:PATH, sqlite::memory: or postgres://USER:PASSWORD@HOST:PORT/DB "
                 "(got \"%.*s:...\")",
                 (int)(scheme < 32 ? scheme : 32), url);
        return NULL;
    }
    if (!impl)
        return NULL;
    mw_db *db = malloc(sizeof(*db));
    if (!db) {
        ops->close(impl);
        snprintf(err, errlen, "database: out of memory");
        return NULL;
    }
    db->ops = ops;
    db->impl = impl;
    return db;
}

int mw_db_probe(const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "sqlite:", 7) != 0 || strcmp(url + 7, ":memory:") == 0)
        return 0;
    return mw_db_sqlite_probe(url + 7, err, errlen);
}

const char *mw_db_backend(const mw_db *db) { return db->ops->name; }

unsigned mw_db_session_open(mw_db *db) { return db->ops->session_open(db->impl); }

void mw_db_session_close(mw_db *db, unsigned session) { db->ops->session_close(db->impl, session); }

int mw_db_run(mw_db *db, unsigned session, const char *sql, size_t sql_len, const mw_db_value *params,
              int nparams, mw_db_cb cb, void *data)
{
    return db->ops->run(db->impl, session, sql, sql_len, params, nparams, cb, data);
}

void mw_db_close(mw_db *db)
{
    if (!db)
        return;
    db->ops->close(db->impl);
    free(db);
}
