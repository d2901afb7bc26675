/* mw_metrics: counters are relaxed atomics in a MAP_SHARED region; each worker writes only its
 * own slot, any process may read all of them. */
#include "mw_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const double bucket_bounds[MW_METRICS_BUCKETS - 1] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0
};

static const struct {
    const char *name, *type, *help;
} metric_info[MW_M_COUNT] = {
    { "moonwire_connections", "gauge", "Open WebSocket connections." },
    { "moonwire_messages_received_total", "counter", "WebSocket messages received from clients." },
    { "moonwire_messages_sent_total", "counter", "WebSocket messages sent to clients (one per recipient)." },
    { "moonwire_connects_total", "counter", "WebSocket connections accepted." },
    { "moonwire_disconnects_total", "counter", "WebSocket connections closed." },
    { "moonwire_handler_errors_total", "counter", "Controller calls that raised an error." },
    { "moonwire_http_requests_total", "counter", "Plain HTTP requests answered." },
    { "moonwire_handshakes_refused_total", "counter", "Upgrade requests answered with an error status." },
    { "moonwire_received_bytes_total", "counter", "Bytes read from client sockets." },
    { "moonwire_sent_bytes_total", "counter", "Bytes written to client sockets." },
    { "moonwire_rate_limited_total", "counter", "Messages refused by the per-connection rate limit." },
    { "moonwire_slow_consumers_total", "counter", "Clients cut off because their send queue passed its cap." },
    { "moonwire_rooms", "gauge", "Rooms with at least one member on this worker." },
    { "moonwire_auth_failures_total", "counter", "Upgrades refused with 401." },
};

static const int close_codes[MW_METRICS_CLOSE_CODES - 1] = {
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 4401, 4408, 4429, 4503, 4000
};

void mw_metrics_count_disconnect(mw_metrics_slot *s, int code)
{
    int i = 0;
    while (i < MW_METRICS_CLOSE_CODES - 1 && close_codes[i] != code)
        i++;
    __atomic_fetch_add(&s->disconnects_by_code[i], 1, __ATOMIC_RELAXED);
}

static size_t slots_size(int workers)
{
    return sizeof(mw_metrics) + (size_t)workers * sizeof(mw_metrics_slot);
}

mw_metrics *mw_metrics_create(int workers)
{
    if (workers > MW_METRICS_MAX_WORKERS)
        workers = MW_METRICS_MAX_WORKERS;
    void *p = mmap(NULL, slots_size(workers), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    mw_metrics *m = p;
    memset(m, 0, slots_size(workers));
    m->workers = workers;
    return m;
}

void mw_metrics_destroy(mw_metrics *m)
{
    if (m)
        munmap(m, slots_size(m->workers));
}

void mw_metrics_reset_slot(mw_metrics *m, int index, int pid)
{
    mw_metrics_slot *s = &m->slots[index];
    /* a replaced worker starts with no connections; counters keep counting up */
    __atomic_store_n(&s->values[MW_M_CONNECTIONS], 0, __ATOMIC_RELAXED);
    s->pid = pid;
    s->alive = 1;
}

void mw_metrics_observe_handler(mw_metrics_slot *s, uint64_t duration_ns)
{
    double secs = (double)duration_ns / 1e9;
    int i = 0;
    while (i < MW_METRICS_BUCKETS - 1 && secs > bucket_bounds[i])
        i++;
    __atomic_fetch_add(&s->handler_buckets[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->handler_count, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->handler_sum_ns, duration_ns, __ATOMIC_RELAXED);
}

typedef struct {
    char *buf;
    size_t len, cap;
} strbuf;

static void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *sb, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (sb->len + (size_t)n < sb->cap) {
            sb->len += (size_t)n;
            return;
        }
        size_t ncap = sb->cap * 2 + (size_t)n;
        char *nb = realloc(sb->buf, ncap);
        if (!nb)
            return;
        sb->buf = nb;
        sb->cap = ncap;
    }
}

static uint64_t load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

size_t mw_metrics_render(const mw_metrics *m, char **out)
{
    strbuf sb = { malloc(8192), 0, 8192 };
    if (!sb.buf)
        return 0;
    sb.buf[0] = '\0';
    for (int k = 0; k < MW_M_COUNT; k++) {
        if (k == MW_M_DISCONNECTS)
            continue; /* rendered below with a code label */
        sb_printf(&sb, "# HELP %s %s\n# TYPE %s %s\n", metric_info[k].name, metric_info[k].help,
                  metric_info[k].name, metric_info[k].type);
        for (int w = 0; w < m->workers; w++)
            sb_printf(&sb, "%s{worker=\"%d\"} %llu\n", metric_info[k].name, w,
                      (unsigned long long)load(&m->slots[w].values[k]));
    }
    const char *d = metric_info[MW_M_DISCONNECTS].name; /* labelled by close code */
    sb_printf(&sb, "# HELP %s WebSocket connections closed, by close code.\n# TYPE %s counter\n", d, d);
    for (int w = 0; w < m->workers; w++) {
        for (int i = 0; i < MW_METRICS_CLOSE_CODES; i++) {
            uint64_t v = load(&m->slots[w].disconnects_by_code[i]);
            if (v == 0 && i > 1) /* 1000 and 1001 always appear, other codes once seen */
                continue;
            if (i < MW_METRICS_CLOSE_CODES - 1)
                sb_printf(&sb, "%s{worker=\"%d\",code=\"%d\"} %llu\n", d, w, close_codes[i], (unsigned long long)v);
            else
                sb_printf(&sb, "%s{worker=\"%d\",code=\"other\"} %llu\n", d, w, (unsigned long long)v);
        }
    }
    const char *h = "moonwire_handler_duration_seconds";
    sb_printf(&sb, "# HELP %s Time spent running controller handlers.\n# TYPE %s histogram\n", h, h);
    for (int w = 0; w < m->workers; w++) {
        const mw_metrics_slot *s = &m->slots[w];
        uint64_t cumulative = 0;
        for (int b = 0; b < MW_METRICS_BUCKETS; b++) {
            cumulative += load(&s->handler_buckets[b]);
            if (b < MW_METRICS_BUCKETS - 1)
                sb_printf(&sb, "%s_bucket{worker=\"%d\",le=\"%g\"} %llu\n", h, w, bucket_bounds[b],
                          (unsigned long long)cumulative);
            else
                sb_printf(&sb, "%s_bucket{worker=\"%d\",le=\"+Inf\"} %llu\n", h, w,
                          (unsigned long long)cumulative);
        }
        sb_printf(&sb, "%s_sum{worker=\"%d\"} %.9f\n", h, w, (double)load(&s->handler_sum_ns) / 1e9);
        sb_printf(&sb, "%s_count{worker=\"%d\"} %llu\n", h, w, (unsigned long long)load(&s->handler_count));
    }
    *out = sb.buf;
    return sb.len;
}
