/* mw_db_sqlite: a FIFO of jobs per database with at most one on the thread pool; the
 * connection is opened by the first job (WAL, a busy timeout for several workers sharing the
 * file) and only ever used on the pool thread that runs the current job. There is a single
 * connection, so sessions (mw_db.h) are accepted and ignored. */
#include "mw_db_sqlite.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mw_log.h"

#define MW_DB_BUSY_TIMEOUT_MS 5000

typedef struct job {
    uv_work_t req;
    struct job *next;
    mw_db_sqlite *db;
    char *sql;
    size_t sql_len;
    mw_db_value *params;
    int nparams;
    mw_db_cb cb;
    void *data;
    mw_db_result res;
    char error[512];
} job;

struct mw_db_sqlite {
    uv_loop_t *loop;
    sqlite3 *conn;
    char path[4096];
    job *head, *tail;
    int running;
    int closing;
    unsigned last_session;
};

static void free_values(mw_db_value *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].s);
    free(v);
}

static void job_free(job *j)
{
    free(j->sql);
    free_values(j->params, (size_t)j->nparams);
    for (int c = 0; j->res.cols && c < j->res.ncols; c++)
        free(j->res.cols[c]);
    free(j->res.cols);
    free_values(j->res.values, j->res.nrows * (size_t)j->res.ncols);
    free(j);
}

/* mkdir -p of the folder holding path */
static void make_parent(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
}

static int open_conn(mw_db_sqlite *db, char *err, size_t errlen)
{
    if (strcmp(db->path, ":memory:") != 0)
        make_parent(db->path);
    if (sqlite3_open_v2(db->path, &db->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %.300s: %s", db->path,
                 db->conn ? sqlite3_errmsg(db->conn) : "out of memory");
        sqlite3_close(db->conn);
        db->conn = NULL;
        return -1;
    }
    sqlite3_busy_timeout(db->conn, MW_DB_BUSY_TIMEOUT_MS);
    sqlite3_exec(db->conn, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;", NULL, NULL, NULL);
    return 0;
}

static int copy_column(sqlite3_stmt *st, int c, mw_db_value *v)
{
    memset(v, 0, sizeof(*v));
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_INTEGER:
        v->type = MW_DB_INT;
        v->i = sqlite3_column_int64(st, c);
        return 0;
    case SQLITE_FLOAT:
        v->type = MW_DB_REAL;
        v->d = sqlite3_column_double(st, c);
        return 0;
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
        int blob = sqlite3_column_type(st, c) == SQLITE_BLOB;
        const void *p = blob ? sqlite3_column_blob(st, c) : (const void *)sqlite3_column_text(st, c);
        v->len = (size_t)sqlite3_column_bytes(st, c);
        v->type = blob ? MW_DB_BLOB : MW_DB_TEXT;
        v->s = malloc(v->len + 1);
        if (!v->s)
            return -1;
        if (v->len)
            memcpy(v->s, p, v->len);
        v->s[v->len] = '\0';
        return 0;
    }
    default:
        v->type = MW_DB_NULL;
        return 0;
    }
}

/* On the pool thread: runs one statement and copies its rows out. */
static void work_cb(uv_work_t *req)
{
    job *j = req->data;
    mw_db_sqlite *db = j->db;
    sqlite3_stmt *st = NULL;
    if (!db->conn && open_conn(db, j->error, sizeof(j->error)) != 0)
        goto fail;
    const char *tail = NULL;
    if (sqlite3_prepare_v2(db->conn, j->sql, (int)j->sql_len, &st, &tail) != SQLITE_OK)
        goto sql_fail;
    if (tail && *tail) {
        while (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' || *tail == ';')
            tail++;
        if (*tail) {
            snprintf(j->error, sizeof(j->error), "one statement at a time, please (found more after the first)");
            goto fail;
        }
    }
    if (!st) /* an empty statement */
        goto done;
    int expected = sqlite3_bind_parameter_count(st);
    if (expected != j->nparams) {
        snprintf(j->error, sizeof(j->error), "the statement has %d placeholder(s) but %d value(s) were given",
                 expected, j->nparams);
        goto fail;
    }
    for (int i = 0; i < j->nparams; i++) {
        const mw_db_value *p = &j->params[i];
        int rc;
        switch (p->type) {
        case MW_DB_INT:
        case MW_DB_BOOL: rc = sqlite3_bind_int64(st, i + 1, p->i); break;
        case MW_DB_REAL: rc = sqlite3_bind_double(st, i + 1, p->d); break;
        case MW_DB_TEXT: rc = sqlite3_bind_text(st, i + 1, p->s, (int)p->len, SQLITE_STATIC); break;
        case MW_DB_BLOB: rc = sqlite3_bind_blob(st, i + 1, p->s, (int)p->len, SQLITE_STATIC); break;
        default: rc = sqlite3_bind_null(st, i + 1);
        }
        if (rc != SQLITE_OK)
            goto sql_fail;
    }
    int ncols = sqlite3_column_count(st);
    size_t cap = 0;
    j->res.ncols = ncols;
    if (ncols > 0) {
        j->res.cols = calloc((size_t)ncols, sizeof(char *));
        if (!j->res.cols)
            goto oom;
        for (int c = 0; c < ncols; c++) {
            const char *name = sqlite3_column_name(st, c);
            j->res.cols[c] = strdup(name ? name : "?");
            if (!j->res.cols[c])
                goto oom;
        }
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (j->res.nrows == cap) {
            cap = cap ? cap * 2 : 16;
            mw_db_value *nv = realloc(j->res.values, cap * (size_t)ncols * sizeof(mw_db_value));
            if (!nv)
                goto oom;
            j->res.values = nv;
        }
        for (int c = 0; c < ncols; c++)
            if (copy_column(st, c, &j->res.values[j->res.nrows * (size_t)ncols + (size_t)c]) != 0)
                goto oom;
        j->res.nrows++;
    }
    if (rc != SQLITE_DONE)
        goto sql_fail;
    j->res.changes = sqlite3_changes(db->conn);
    j->res.last_insert_id.type = MW_DB_INT;
    j->res.last_insert_id.i = sqlite3_last_insert_rowid(db->conn);
done:
    sqlite3_finalize(st);
    return;
oom:
    snprintf(j->error, sizeof(j->error), "out of memory reading the result");
    goto fail;
sql_fail:
    snprintf(j->error, sizeof(j->error), "%s", sqlite3_errmsg(db->conn));
fail:
    sqlite3_finalize(st);
    j->res.error = j->error;
}

static void start_next(mw_db_sqlite *db);

static void after_cb(uv_work_t *req, int status)
{
    job *j = req->data;
    mw_db_sqlite *db = j->db;
    db->running = 0;
    if (status == UV_ECANCELED && !j->res.error) {
        snprintf(j->error, sizeof(j->error), "cancelled");
        j->res.error = j->error;
    }
    j->cb(&j->res, j->data);
    job_free(j);
    start_next(db);
}

static void start_next(mw_db_sqlite *db)
{
    if (db->running)
        return;
    job *j = db->head;
    if (!j) {
        if (db->closing) {
            if (db->conn)
                sqlite3_close(db->conn);
            free(db);
        }
        return;
    }
    db->head = j->next;
    if (!db->head)
        db->tail = NULL;
    db->running = 1;
    j->req.data = j;
    if (uv_queue_work(db->loop, &j->req, work_cb, after_cb) != 0) {
        db->running = 0;
        snprintf(j->error, sizeof(j->error), "cannot queue work on the thread pool");
        j->res.error = j->error;
        j->cb(&j->res, j->data);
        job_free(j);
        start_next(db);
    }
}

int mw_db_sqlite_probe(const char *path, char *err, size_t errlen)
{
    mw_db_sqlite *probe = mw_db_sqlite_open(NULL, path); /* only path and conn are used */
    if (!probe) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = SQLITE_CANTOPEN;
    if (open_conn(probe, err, errlen) == 0) {
        /* SQLite opens a file it may not write read-only without a word; BEGIN IMMEDIATE takes
         * the write lock, which in WAL mode also needs the -wal and -shm files next to it */
        rc = sqlite3_db_readonly(probe->conn, "main") == 1
                 ? SQLITE_READONLY
                 : sqlite3_exec(probe->conn, "BEGIN IMMEDIATE; ROLLBACK;", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            snprintf(err, errlen, "cannot write the database %.300s: %s", path,
                     rc == SQLITE_READONLY ? "it is read-only" : sqlite3_errmsg(probe->conn));
        sqlite3_close(probe->conn);
    }
    free(probe);
    return rc == SQLITE_OK ? 0 : -1;
}

mw_db_sqlite *mw_db_sqlite_open(uv_loop_t *loop, const char *path)
{
    mw_db_sqlite *db = calloc(1, sizeof(*db));
    if (!db)
        return NULL;
    db->loop = loop;
    snprintf(db->path, sizeof(db->path), "%s", path);
    return db;
}

static int sqlite_run(void *impl, unsigned session, const char *sql, size_t sql_len, const mw_db_value *params,
                      int nparams, mw_db_cb cb, void *data)
{
    mw_db_sqlite *db = impl;
    if (db->closing)
        return MW_DB_ECLOSED;
    job *j = calloc(1, sizeof(*j));
    if (!j)
        return MW_DB_ENOMEM;
    j->db = db;
    j->cb = cb;
    j->data = data;
    j->sql = malloc(sql_len + 1);
    j->params = nparams ? calloc((size_t)nparams, sizeof(mw_db_value)) : NULL;
    if (!j->sql || (nparams && !j->params)) {
        job_free(j);
        return MW_DB_ENOMEM;
    }
    memcpy(j->sql, sql, sql_len);
    j->sql[sql_len] = '\0';
    j->sql_len = sql_len;
    j->nparams = nparams;
    for (int i = 0; i < nparams; i++) {
        j->params[i] = params[i];
        j->params[i].s = NULL;
        if (params[i].type == MW_DB_TEXT || params[i].type == MW_DB_BLOB) {
            j->params[i].s = malloc(params[i].len + 1);
            if (!j->params[i].s) {
                job_free(j);
                return MW_DB_ENOMEM;
            }
            memcpy(j->params[i].s, params[i].s, params[i].len);
        }
    }
    if (db->tail)
        db->tail->next = j;
    else
        db->head = j;
    db->tail = j;
    start_next(db);
    return 0;
}

static unsigned sqlite_session_open(void *impl)
{
    mw_db_sqlite *db = impl;
    if (++db->last_session == 0)
        db->last_session = 1;
    return db->last_session;
}

static void sqlite_session_close(void *impl, unsigned session) {}

static void sqlite_close(void *impl)
{
    mw_db_sqlite *db = impl;
    db->closing = 1;
    if (!db->running && !db->head) {
        if (db->conn)
            sqlite3_close(db->conn);
        free(db);
    }
}

const mw_db_ops mw_db_sqlite_ops = {
    .name = "sqlite",
    .run = sqlite_run,
    .session_open = sqlite_session_open,
    .session_close = sqlite_session_close,
    .close = sqlite_close,
};
