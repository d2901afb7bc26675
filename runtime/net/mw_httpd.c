/* mw_httpd: GET and HEAD only; every answer closes the connection (mw_conn_respond). Static
 * files are small and in the page cache: they are read synchronously, with a size cap (serving
 * large assets belongs to the proxy in front). */
#include "mw_httpd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mw_static.h"

#define MW_MAX_STATIC_FILE (8u * 1024 * 1024)

void mw_httpd_init(mw_httpd *h, const char *worker_id, const char *runtime_dir, const char *app_dir,
                   const mw_metrics *metrics, mw_metrics_slot *m, const mw_httpd_handler *handler,
                   void *owner)
{
    char pub[PATH_MAX + 16];
    h->worker_id = worker_id;
    h->metrics = metrics;
    h->m = m;
    h->handler = handler;
    h->owner = owner;
    snprintf(h->client_js, sizeof(h->client_js), "%s/clients/js/moonwire.js", runtime_dir);
    snprintf(pub, sizeof(pub), "%s/public", app_dir);
    h->has_public = realpath(pub, h->public_dir) != NULL;
}

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

void mw_httpd_serve(mw_httpd *h, mw_conn *c, const mw_http_request *r)
{
    const char *path, *query;
    size_t path_len, query_len;
    mw_http_url_parts(r, &path, &path_len, &query, &query_len);
    int method = mw_http_method(r);
    int head_only = method == HTTP_HEAD;
    char body[512];
    mw_metrics_add(h->m, MW_M_HTTP_REQUESTS, 1);
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
