/* mw_httpd: GET and HEAD, and POST for the API; every answer closes the connection
 * (mw_conn_respond). Static files are small and in the page cache: they are read synchronously,
 * with a size cap (serving large assets belongs to the proxy in front). */
#include "mw_httpd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mw_log.h"
#include "mw_static.h"

#define MW_MAX_STATIC_FILE (8u * 1024 * 1024)

int mw_httpd_init(mw_httpd *h, const char *worker_id, const mw_config *cfg, const mw_metrics *metrics,
                  mw_metrics_slot *m, const mw_httpd_handler *handler, void *owner)
{
    char pub[PATH_MAX + 16];
    h->worker_id = worker_id;
    h->metrics = metrics;
    h->m = m;
    h->handler = handler;
    h->owner = owner;
    snprintf(h->client_js, sizeof(h->client_js), "%s/clients/js/moonwire.js", cfg->runtime_dir);
    snprintf(h->admin_page, sizeof(h->admin_page), "%s/clients/admin/index.html", cfg->runtime_dir);
    snprintf(pub, sizeof(pub), "%s/public", cfg->app_dir);
    h->has_public = realpath(pub, h->public_dir) != NULL;
    h->api_key = cfg->api_key;
    h->api_key_len = strlen(cfg->api_key);
    return mw_api_rate_init(&h->api_rate, cfg->api_rate_requests, cfg->api_rate_per, cfg->api_rate_burst);
}

void mw_httpd_free(mw_httpd *h) { mw_api_rate_free(&h->api_rate); }

static int path_is(const char *path, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(path, want, len) == 0;
}

static void serve_file(mw_conn *c, const char *file, int head_only)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        mw_conn_respond_error(c, 404, "No such file", NULL);
        return;
    }
    if ((uint64_t)st.st_size > MW_MAX_STATIC_FILE) {
        close(fd);
        mw_conn_respond_error(c, 404, "File too large to serve", NULL);
        return;
    }
    size_t size = (size_t)st.st_size;
    char *body = malloc(size ? size : 1);
    size_t got = 0;
    while (body && got < size) {
        ssize_t r = read(fd, body + got, size - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (!body || got != size) {
        free(body);
        mw_conn_respond_error(c, 500, "Could not read the file", NULL);
        return;
    }
    mw_conn_respond(c, 200, mw_static_content_type(file), body, size, head_only);
    free(body);
}

/* ---- the HTTP API's gate --------------------------------------------------------------------- */

/* {"error":{"code":C,"message":M}}: M is ours (no quotes or backslashes to escape). */
static void api_error(mw_httpd *h, mw_conn *c, int method, const char *name, size_t name_len, int status,
                      const char *code, const char *message, uint64_t start_ns)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
    mw_httpd_api_answer(h, c, method, name, name_len, status, body, (size_t)n, start_ns);
}

static void answer(mw_httpd *h, mw_conn *c, int method, const char *name, size_t name_len, int status,
                   const char *json, size_t len, uint64_t start_ns, int head_only)
{
    uint64_t took = uv_hrtime() - start_ns;
    mw_metrics_count_api(h->m, method, status, took);
    /* refusals of a flood at debug: the metrics count them, the log is not flooded */
    if (mw_log_begin(status == 429 ? MW_LOG_DEBUG : MW_LOG_INFO, "api request")) {
        char shown[65]; /* the name as asked, cut short: it comes from the client */
        size_t n = name_len < sizeof(shown) - 1 ? name_len : sizeof(shown) - 1;
        memcpy(shown, name, n);
        shown[n] = '\0';
        mw_log_str("method", shown);
        mw_log_int("status", status);
        mw_log_double("durationMs", (double)took / 1e6);
        mw_log_str("remote", c->remote);
        mw_log_end();
    }
    mw_conn_respond(c, status, "application/json", json, len, head_only);
}

void mw_httpd_api_answer(mw_httpd *h, mw_conn *c, int method, const char *name, size_t name_len, int status,
                         const char *json, size_t len, uint64_t start_ns)
{
    answer(h, c, method, name, name_len, status, json, len, start_ns, 0);
}

/* POST /api/NAME: key, method, size, rate and draining are checked here, the call itself runs in
 * the owner. Refused bodies (413) arrive with r->error_status set. */
static void serve_api(mw_httpd *h, mw_conn *c, const mw_http_request *r, const char *name, size_t name_len)
{
    uint64_t start = uv_hrtime();
    int method = mw_metrics_api_method(name, name_len);
    if (!mw_api_rate_take(&h->api_rate, c->remote, uv_now(c->net->loop))) {
        /* first: a flood is refused before anything else is looked at */
        api_error(h, c, method, name, name_len, 429, "rate_limited", "Too many API requests from this address", start);
    } else if (!mw_api_authorized(r, h->api_key, h->api_key_len)) {
        api_error(h, c, method, name, name_len, 401, "unauthorized", "Missing or wrong API key (Authorization: apikey KEY)", start);
    } else if (r->error_status == 413) {
        api_error(h, c, method, name, name_len, 413, "too_large", "The request body is over 1 MiB", start);
    } else if (mw_http_method(r) != HTTP_POST) {
        static const char body[] = "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"Use POST\"}}";
        answer(h, c, method, name, name_len, 405, body, sizeof(body) - 1, start, mw_http_method(r) == HTTP_HEAD);
    } else if (h->handler->not_ready(h->owner) && strcmp(h->handler->not_ready(h->owner), "draining") == 0) {
        api_error(h, c, method, name, name_len, 503, "unavailable", "The server is shutting down", start);
    } else {
        h->handler->api_call(h->owner, c, method, name, name_len, r->body ? r->body : "", r->body_len, start);
    }
}

void mw_httpd_serve(mw_httpd *h, mw_conn *c, const mw_http_request *r)
{
    const char *path, *query;
    size_t path_len, query_len;
    mw_http_url_parts(r, &path, &path_len, &query, &query_len);
    int method = mw_http_method(r);
    int head_only = method == HTTP_HEAD;
    char body[512];
    mw_metrics_add(h->m, MW_M_HTTP_REQUESTS, 1);
    if (path_len >= 5 && memcmp(path, "/api/", 5) == 0) {
        if (h->api_key_len)
            serve_api(h, c, r, path + 5, path_len - 5);
        else
            mw_conn_respond_error(c, 404, "No such file (the HTTP API is off: no api.key)", NULL);
        return;
    }
    if (r->error_status) { /* a body over the limit, elsewhere than /api/ */
        mw_conn_respond_error(c, r->error_status, r->error_reason, NULL);
        return;
    }
    if (method != HTTP_GET && method != HTTP_HEAD) {
        mw_conn_respond_error(c, 405, "Only GET and HEAD are served here", "Allow: GET, HEAD\r\n");
        return;
    }
    if (path_is(path, path_len, "/health")) {
        int n = snprintf(body, sizeof(body), "{\"status\":\"ok\",\"workerId\":\"%s\",\"connections\":%zu}",
                         h->worker_id, h->handler->connections(h->owner));
        mw_conn_respond(c, 200, "application/json", body, (size_t)n, head_only);
    } else if (path_is(path, path_len, "/ready")) {
        const char *why = h->handler->not_ready(h->owner);
        int n = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"workerId\":\"%s\"}", why ? why : "ready",
                         h->worker_id);
        mw_conn_respond(c, why ? 503 : 200, "application/json", body, (size_t)n, head_only);
    } else if (path_is(path, path_len, "/metrics")) {
        char *text = NULL;
        size_t n = mw_metrics_render(h->metrics, &text);
        if (!text) {
            mw_conn_respond_error(c, 500, "Out of memory", NULL);
            return;
        }
        mw_conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, n, head_only);
        free(text);
    } else if (h->api_key_len && (path_is(path, path_len, "/admin") || path_is(path, path_len, "/admin/"))) {
        serve_file(c, h->admin_page, head_only);
    } else if (path_is(path, path_len, "/moonwire.js")) {
        serve_file(c, h->client_js, head_only);
    } else if (h->has_public) {
        char file[PATH_MAX];
        int st = mw_static_resolve(h->public_dir, path, path_len, file, sizeof(file));
        if (st != 0)
            mw_conn_respond_error(c, st, st == 404 ? "No such file" : "Bad path", NULL);
        else
            serve_file(c, file, head_only);
    } else {
        mw_conn_respond_error(c, 404, "No such file", NULL);
    }
}
