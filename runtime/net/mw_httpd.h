/* mw_httpd: the plain HTTP requests a worker answers besides the upgrade: /health, /ready,
 * /metrics, /moonwire.js and the app's public/ files. What only the worker knows (its client
 * count, whether it takes new clients) it asks through mw_httpd_handler. */
#ifndef MW_HTTPD_H
#define MW_HTTPD_H

#include <limits.h>
#include <stddef.h>

#include "mw_conn.h"
#include "mw_http.h"
#include "mw_metrics.h"

typedef struct mw_httpd_handler {
    /* The WebSocket clients of this worker now (/health). */
    size_t (*connections)(void *owner);
    /* NULL when the worker takes new clients, else the reason it does not: "draining",
     * "redis unavailable" (/ready answers 503 with it). */
    const char *(*not_ready)(void *owner);
} mw_httpd_handler;

typedef struct mw_httpd {
    const char *worker_id;
    const mw_metrics *metrics; /* every worker's, rendered by /metrics */
    mw_metrics_slot *m;        /* this worker's: counts the requests */
    char client_js[PATH_MAX + 32];
    char public_dir[PATH_MAX]; /* the app's public/ folder, a real path */
    int has_public;
    const mw_httpd_handler *handler;
    void *owner;
} mw_httpd;

/* Sets up the endpoints; app_dir/public is served when it exists now. */
void mw_httpd_init(mw_httpd *h, const char *worker_id, const char *runtime_dir, const char *app_dir,
                   const mw_metrics *metrics, mw_metrics_slot *m, const mw_httpd_handler *handler,
                   void *owner);
/* Answers a request that is not an upgrade (mw_conn_handler.http_request). */
void mw_httpd_serve(mw_httpd *h, mw_conn *c, const mw_http_request *r);

#endif
