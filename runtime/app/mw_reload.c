/* mw_reload: --dev's file watcher. inotify (through uv_fs_event) is not recursive, so each
 * folder is watched on its own: the app's controllers/, jobs/ and lib/, the runtime's
 * lua/moonwire/ and controllers/, and the app folder itself (to notice one of those folders
 * appearing). Changes to *.lua files are collected and, once nothing changed for
 * MW_RELOAD_DEBOUNCE_MS (editors write a file in several steps), handed to the callback in one
 * batch. Every worker runs its own watcher, so a save reaches every worker. */
#include "mw_reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mw_log.h"

#define MW_RELOAD_DEBOUNCE_MS 100
#define MAX_DIRS 8
#define MAX_CHANGED 64

typedef struct watch {
    uv_fs_event_t ev;
    mw_reload *owner;
    char dir[4096];
    int active, closing;
    dev_t dev; /* the folder watched: one deleted and created again is a new inode */
    ino_t ino;
} watch;

struct mw_reload {
    uv_loop_t *loop;
    watch watches[MAX_DIRS];
    int ndirs;
    uv_timer_t debounce;
    mw_reload_cb cb;
    void *data;
    char *changed[MAX_CHANGED];
    int nchanged;
    int closing, open_handles;
};

static int is_dir(const char *path, struct stat *st)
{
    return stat(path, st) == 0 && S_ISDIR(st->st_mode);
}

static void remember(mw_reload *r, const char *path)
{
    for (int i = 0; i < r->nchanged; i++)
        if (strcmp(r->changed[i], path) == 0)
            return;
    if (r->nchanged == MAX_CHANGED)
        return; /* the reload looks at every file anyway; the list only names runtime modules */
    char *copy = strdup(path);
    if (copy)
        r->changed[r->nchanged++] = copy;
}

static void start_missing(mw_reload *r);
static void closed_cb(uv_handle_t *h);

/* A watched folder that was deleted (and maybe created again) has lost its inotify watch: close
 * it; start_missing watches the new folder once the close is done. */
static void drop_stale(mw_reload *r)
{
    for (int i = 0; i < r->ndirs; i++) {
        watch *w = &r->watches[i];
        struct stat st;
        if (!w->active || w->closing)
            continue;
        if (is_dir(w->dir, &st) && st.st_dev == w->dev && st.st_ino == w->ino)
            continue;
        w->closing = 1;
        uv_close((uv_handle_t *)&w->ev, closed_cb);
    }
}

static void debounce_cb(uv_timer_t *t)
{
    mw_reload *r = t->data;
    drop_stale(r);
    start_missing(r); /* a folder created since (jobs/ in a new app) is watched from now on */
    int n = r->nchanged;
    r->nchanged = 0;
    r->cb((const char *const *)r->changed, n, r->data);
    for (int i = 0; i < n; i++) {
        free(r->changed[i]);
        r->changed[i] = NULL;
    }
}

static void event_cb(uv_fs_event_t *ev, const char *filename, int events, int status)
{
    (void)events;
    watch *w = ev->data;
    mw_reload *r = w->owner;
    if (status < 0 || !filename)
        return;
    size_t len = strlen(filename);
    int lua_file = len > 4 && strcmp(filename + len - 4, ".lua") == 0 && filename[0] != '.';
    int folder = strcmp(filename, "controllers") == 0 || strcmp(filename, "jobs") == 0 || strcmp(filename, "lib") == 0;
    if (!lua_file && !folder)
        return; /* editor swap files, data/app.db, ... */
    if (lua_file) {
        char path[4096 + 256];
        snprintf(path, sizeof(path), "%s/%s", w->dir, filename);
        remember(r, path);
    }
    uv_timer_start(&r->debounce, debounce_cb, MW_RELOAD_DEBOUNCE_MS, 0);
}

static void start_missing(mw_reload *r)
{
    for (int i = 0; i < r->ndirs; i++) {
        watch *w = &r->watches[i];
        struct stat st;
        if (w->active || w->closing || !is_dir(w->dir, &st))
            continue;
        w->dev = st.st_dev;
        w->ino = st.st_ino;
        if (uv_fs_event_init(r->loop, &w->ev) != 0)
            continue;
        w->ev.data = w;
        int rv = uv_fs_event_start(&w->ev, event_cb, w->dir, 0);
        if (rv != 0) {
            mw_logf(MW_LOG_WARN, "dev: cannot watch %s: %s", w->dir, uv_strerror(rv));
            uv_close((uv_handle_t *)&w->ev, NULL);
            continue;
        }
        uv_unref((uv_handle_t *)&w->ev); /* watching never keeps a draining worker alive */
        w->active = 1;
        r->open_handles++;
        mw_logf(MW_LOG_DEBUG, "dev: watching %s", w->dir);
    }
}

mw_reload *mw_reload_start(uv_loop_t *loop, const char *app_dir, const char *runtime_dir, mw_reload_cb cb, void *data)
{
    mw_reload *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->loop = loop;
    r->cb = cb;
    r->data = data;
    const char *dirs[][2] = {
        { app_dir, "" },           { app_dir, "/controllers" },     { app_dir, "/jobs" },
        { app_dir, "/lib" },       { runtime_dir, "/lua/moonwire" }, { runtime_dir, "/controllers" },
    };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        watch *w = &r->watches[r->ndirs++];
        w->owner = r;
        snprintf(w->dir, sizeof(w->dir), "%s%s", dirs[i][0], dirs[i][1]);
    }
    uv_timer_init(loop, &r->debounce);
    r->debounce.data = r;
    uv_unref((uv_handle_t *)&r->debounce);
    start_missing(r);
    return r;
}

static void closed_cb(uv_handle_t *h)
{
    mw_reload *r = h->data;
    if (h->type == UV_FS_EVENT) {
        watch *w = h->data;
        r = w->owner;
        w->active = w->closing = 0;
        if (!r->closing) { /* a stale watch (drop_stale): watch the folder again if it is back */
            r->open_handles--;
            start_missing(r);
            return;
        }
    }
    if (--r->open_handles == 0) {
        for (int i = 0; i < r->nchanged; i++)
            free(r->changed[i]);
        free(r);
    }
}

void mw_reload_stop(mw_reload *r)
{
    if (!r || r->closing)
        return;
    r->closing = 1;
    r->open_handles++; /* the debounce timer */
    for (int i = 0; i < r->ndirs; i++) {
        if (r->watches[i].active && !uv_is_closing((uv_handle_t *)&r->watches[i].ev))
            uv_close((uv_handle_t *)&r->watches[i].ev, closed_cb);
    } /* a watch drop_stale is closing counts itself down in closed_cb */
    uv_close((uv_handle_t *)&r->debounce, closed_cb);
}
