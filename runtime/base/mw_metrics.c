/* mw_metrics: counters are relaxed atomics in a MAP_SHARED region; each worker writes only its
 * own slot, any process may read all of them. */
#include "mw_metrics.h"

#include <stdarg.h>
#include <stddef.h>
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
    { "moonwire_db_queries_total", "counter", "Database statements run (query and exec)." },
    { "moonwire_db_query_errors_total", "counter", "Database statements that returned an error." },
    { "moonwire_jobs_added_total", "counter", "Jobs accepted by queue:add." },
    { "moonwire_jobs_completed_total", "counter", "Jobs whose processor returned." },
    { "moonwire_jobs_failed_total", "counter", "Jobs that failed their last attempt." },
    { "moonwire_jobs_retried_total", "counter", "Failed job attempts scheduled to run again." },
    { "moonwire_connections_refused_total", "counter",
      "New connections answered 503 and closed at once, by reason (max_connections, open_files)." },
    { NULL, NULL, NULL }, /* MW_M_REFUSED_FDS: a label of the line above */
    { "moonwire_history_messages_stored_total", "counter", "Messages stored in a room's history." },
    { "moonwire_history_recoveries_attempted_total", "counter", "joinRoom calls with a since in a history room." },
    { "moonwire_history_recoveries_succeeded_total", "counter", "Recoveries that replayed the missed messages." },
    { "moonwire_history_recoveries_failed_total", "counter",
      "Recoveries that could not replay (another epoch, offset ahead, messages trimmed or expired)." },
    { "moonwire_history_replayed_messages_total", "counter", "Messages replayed to recovering clients." },
    { "moonwire_history_bytes", "gauge",
      "Bytes of messages kept by this worker's in-memory room history (single node, no Redis)." },
    { "moonwire_presence_join_events_total", "counter", "presence/join events sent to joinLeave rooms (one per join)." },
    { "moonwire_presence_leave_events_total", "counter",
      "presence/leave events sent to joinLeave rooms (one per leave, a dead worker's clients' included)." },
    { "moonwire_joins_refused_total", "counter", "Client-side joins refused by a room's canJoin." },
    { "moonwire_send_queue_bytes", "gauge",
      "Bytes queued for sending to this worker's clients, not yet taken by the kernel." },
    { "moonwire_partial_message_bytes", "gauge",
      "Bytes held for client messages received in part (declared frame lengths, allocated up front)." },
    { "moonwire_ws_contexts", "gauge",
      "WebSocket parser contexts lent to connections with a partial frame or message or a close in progress." },
    { "moonwire_compression_messages_compressed_total", "counter",
      "Messages compressed with permessage-deflate (once per broadcast, whatever the recipients)." },
    { "moonwire_compression_sent_uncompressed_bytes_total", "counter",
      "Payload bytes of messages sent compressed, before compression (counted per recipient)." },
    { "moonwire_compression_sent_compressed_bytes_total", "counter",
      "Payload bytes of messages sent compressed, after compression (counted per recipient)." },
    { "moonwire_compression_received_compressed_bytes_total", "counter",
      "Payload bytes of compressed messages received, as they arrived." },
    { "moonwire_compression_received_uncompressed_bytes_total", "counter",
      "Payload bytes of compressed messages received, once inflated." },
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

static const char *const api_methods[MW_METRICS_API_METHODS] = {
    "publish", "broadcast", "sendToUser", "sendToClient", "disconnect", "joinRoom", "leaveRoom",
    "presence", "history", "client", "rooms", "stats", "other"
};
static const int api_statuses[MW_METRICS_API_STATUSES - 1] = { 200, 400, 401, 404, 405, 413, 429, 500, 503, 504 };

int mw_metrics_api_method(const char *name, size_t len)
{
    int i = 0;
    while (i < MW_METRICS_API_METHODS - 1 && !(strlen(api_methods[i]) == len && memcmp(api_methods[i], name, len) == 0))
        i++;
    return i;
}

const char *mw_metrics_api_method_name(int index)
{
    return index >= 0 && index < MW_METRICS_API_METHODS ? api_methods[index] : "other";
}

void mw_metrics_count_api(mw_metrics_slot *s, int method, int status, uint64_t duration_ns)
{
    int i = 0;
    while (i < MW_METRICS_API_STATUSES - 1 && api_statuses[i] != status)
        i++;
    if (method < 0 || method >= MW_METRICS_API_METHODS)
        method = MW_METRICS_API_METHODS - 1;
    mw_metrics_bump(&s->api[method][i], 1);
    mw_metrics_observe(&s->api_duration, duration_ns);
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

/* duration_ns * n must fit 64 bits: callers pass a batch's time divided by its n (at most the
 * batch's own time), and 2^64 ns is 584 years. */
void mw_metrics_observe_n(mw_histogram *h, uint64_t duration_ns, uint64_t n)
{
    double secs = (double)duration_ns / 1e9;
    int i = 0;
    while (i < MW_METRICS_BUCKETS - 1 && secs > bucket_bounds[i])
        i++;
    mw_metrics_bump(&h->buckets[i], n);
    mw_metrics_bump(&h->count, n);
    mw_metrics_bump(&h->sum_ns, duration_ns * n);
}

void mw_metrics_observe(mw_histogram *h, uint64_t duration_ns) { mw_metrics_observe_n(h, duration_ns, 1); }

void mw_metrics_queue_depth(mw_metrics_slot *s, const char *queue, uint64_t depth)
{
    int used = __atomic_load_n(&s->queue_used, __ATOMIC_SEQ_CST);
    int i = 0;
    while (i < used && strcmp(s->queue_names[i], queue) != 0)
        i++;
    if (i == used) {
        if (used == MW_METRICS_QUEUES || strlen(queue) >= MW_METRICS_QUEUE_NAME)
            return;
        strcpy(s->queue_names[i], queue); /* only this worker writes its slot */
        __atomic_store_n(&s->queue_used, used + 1, __ATOMIC_SEQ_CST);
    }
    __atomic_store_n(&s->queue_depth[i], depth, __ATOMIC_RELAXED);
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

static void render_histogram(strbuf *sb, const mw_metrics *m, const char *h, const char *help, size_t offset)
{
    sb_printf(sb, "# HELP %s %s\n# TYPE %s histogram\n", h, help, h);
    for (int w = 0; w < m->workers; w++) {
        const mw_histogram *hist = (const mw_histogram *)((const char *)&m->slots[w] + offset);
        uint64_t cumulative = 0;
        for (int b = 0; b < MW_METRICS_BUCKETS; b++) {
            cumulative += load(&hist->buckets[b]);
            if (b < MW_METRICS_BUCKETS - 1)
                sb_printf(sb, "%s_bucket{worker=\"%d\",le=\"%g\"} %llu\n", h, w, bucket_bounds[b],
                          (unsigned long long)cumulative);
            else
                sb_printf(sb, "%s_bucket{worker=\"%d\",le=\"+Inf\"} %llu\n", h, w,
                          (unsigned long long)cumulative);
        }
        sb_printf(sb, "%s_sum{worker=\"%d\"} %.9f\n", h, w, (double)load(&hist->sum_ns) / 1e9);
        sb_printf(sb, "%s_count{worker=\"%d\"} %llu\n", h, w, (unsigned long long)load(&hist->count));
    }
}

size_t mw_metrics_render(const mw_metrics *m, char **out)
{
    strbuf sb = { malloc(8192), 0, 8192 };
    if (!sb.buf)
        return 0;
    sb.buf[0] = '\0';
    for (int k = 0; k < MW_M_COUNT; k++) {
        if (k == MW_M_DISCONNECTS || k == MW_M_REFUSED_LIMIT || k == MW_M_REFUSED_FDS)
            continue; /* rendered below with a code or reason label */
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
    const char *r = metric_info[MW_M_REFUSED_LIMIT].name; /* labelled by reason */
    sb_printf(&sb, "# HELP %s %s\n# TYPE %s counter\n", r, metric_info[MW_M_REFUSED_LIMIT].help, r);
    for (int w = 0; w < m->workers; w++) {
        sb_printf(&sb, "%s{worker=\"%d\",reason=\"max_connections\"} %llu\n", r, w,
                  (unsigned long long)load(&m->slots[w].values[MW_M_REFUSED_LIMIT]));
        sb_printf(&sb, "%s{worker=\"%d\",reason=\"open_files\"} %llu\n", r, w,
                  (unsigned long long)load(&m->slots[w].values[MW_M_REFUSED_FDS]));
    }
    render_histogram(&sb, m, "moonwire_handler_duration_seconds", "Time spent running controller handlers.",
                     offsetof(mw_metrics_slot, handler));
    render_histogram(&sb, m, "moonwire_db_query_duration_seconds",
                     "Database statement latency, from queueing to result.", offsetof(mw_metrics_slot, db_query));
    render_histogram(&sb, m, "moonwire_api_duration_seconds", "HTTP API requests, from the request's head to the answer.",
                     offsetof(mw_metrics_slot, api_duration));
    const char *a = "moonwire_api_requests_total";
    sb_printf(&sb, "# HELP %s HTTP API requests answered, by method and status.\n# TYPE %s counter\n", a, a);
    for (int w = 0; w < m->workers; w++) {
        for (int i = 0; i < MW_METRICS_API_METHODS; i++) {
            for (int k = 0; k < MW_METRICS_API_STATUSES; k++) {
                uint64_t v = load(&m->slots[w].api[i][k]);
                if (v == 0)
                    continue;
                if (k < MW_METRICS_API_STATUSES - 1)
                    sb_printf(&sb, "%s{worker=\"%d\",method=\"%s\",status=\"%d\"} %llu\n", a, w, api_methods[i],
                              api_statuses[k], (unsigned long long)v);
                else
                    sb_printf(&sb, "%s{worker=\"%d\",method=\"%s\",status=\"other\"} %llu\n", a, w, api_methods[i],
                              (unsigned long long)v);
            }
        }
    }
    const char *q = "moonwire_queue_depth";
    sb_printf(&sb, "# HELP %s Jobs waiting, delayed or running in a queue, as each worker last saw it.\n"
                   "# TYPE %s gauge\n", q, q);
    for (int w = 0; w < m->workers; w++) {
        const mw_metrics_slot *s = &m->slots[w];
        int used = __atomic_load_n(&s->queue_used, __ATOMIC_SEQ_CST);
        for (int i = 0; i < used; i++)
            sb_printf(&sb, "%s{worker=\"%d\",queue=\"%s\"} %llu\n", q, w, s->queue_names[i],
                      (unsigned long long)load(&s->queue_depth[i]));
    }
    *out = sb.buf;
    return sb.len;
}
