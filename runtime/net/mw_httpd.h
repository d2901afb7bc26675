/* mw_httpd: the plain HTTP requests a worker answers besides the upgrade: /health, /ready,
 * /metrics, /moonwire.js, the app's public/ files, and with an API key the HTTP API's gate
 * (POST /api/METHOD: key, size, rate) and the /admin page. What only the worker knows (its
 * client count, whether it takes new clients) it asks through mw_httpd_handler, and it hands
 * the API calls that pass the gate up to it. */
#ifndef MW_HTTPD_H
#define MW_HTTPD_H

#include <limits.h>
#include <stddef.h>

#include "mw_api_gate.h"
#include "mw_conn.h"
#include "mw_http.h"
#include "mw_metrics.h"

typedef struct mw_httpd_handler {
    /* The WebSocket clients of this worker now (/health). */
    size_t (*connections)(void *owner);
    /* NULL when the worker takes new clients, else the reason it does not: "draining",
     * "redis unavailable" (/ready answers 503 with it). */
    const char *(*not_ready)(void *owner);
    /* POST /api/METHOD passed the gate: the owner runs it, calls mw_conn_http_wait and later
     * mw_httpd_api_answer (or answers at once). method: the metrics index of the name (see
     * mw_metrics_api_method); start_ns: uv_hrtime() when the request was taken. */
    void (*api_call)(void *owner, mw_conn *c, int method, const char *name, size_t name_len,
                     const char *body, size_t body_len, uint64_t start_ns);
} mw_httpd_handler;

typedef struct mw_httpd {
    const char *worker_id;
    const mw_metrics *metrics; /* every worker's, rendered by /metrics */
    mw_metrics_slot *m;        /* this worker's: counts the requests */
    char client_js[PATH_MAX + 32];
    char public_dir[PATH_MAX]; /* the app's public/ folder, a real path */
    int has_public;
    char admin_page[PATH_MAX + 32];
    const char *api_key; /* "" when the API is off (/api/ and /admin answer 404) */
    size_t api_key_len;
    mw_api_rate api_rate;
    const mw_httpd_handler *handler;
    void *owner;
} mw_httpd;

/* Sets up the endpoints; app_dir/public is served when it exists now. The API is on when
 * cfg->api_key is set. Returns 0, or -1 when memory is short. */
int mw_httpd_init(mw_httpd *h, const char *worker_id, const mw_config *cfg, const mw_metrics *metrics,
                  mw_metrics_slot *m, const mw_httpd_handler *handler, void *owner);
void mw_httpd_free(mw_httpd *h);
/* Answers an API call with status and its JSON body, counts it and logs it (info: method,
 * status, duration; never the key). */
void mw_httpd_api_answer(mw_httpd *h, mw_conn *c, int method, const char *name, size_t name_len, int status,
                         const char *json, size_t len, uint64_t start_ns);
/* Answers a request that is not an upgrade (mw_conn_handler.http_request). */
void mw_httpd_serve(mw_httpd *h, mw_conn *c, const mw_http_request *r);

#endif
