/* mw_metrics: per-worker counters in memory shared with the supervisor (mapped before fork),
 * so whichever worker answers /metrics reports the whole host, each series labelled by worker. */
#ifndef MW_METRICS_H
#define MW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define MW_METRICS_BUCKETS 12
#define MW_METRICS_MAX_WORKERS 256
#define MW_METRICS_CLOSE_CODES 16 /* disconnects are counted per close code, the last is "other" */
#define MW_METRICS_QUEUES 16       /* queue depth is kept for this many queue names per worker */
#define MW_METRICS_QUEUE_NAME 64
#define MW_METRICS_API_METHODS 13  /* the HTTP API's methods (DESIGN 16), the last is "other" */
#define MW_METRICS_API_STATUSES 11 /* the statuses it answers with, the last is "other" */

typedef struct mw_histogram {
    uint64_t buckets[MW_METRICS_BUCKETS]; /* non-cumulative counts per bucket */
    uint64_t count;
    uint64_t sum_ns;
} mw_histogram;

typedef enum {
    MW_M_CONNECTIONS = 0,      /* gauge */
    MW_M_MESSAGES_IN,
    MW_M_MESSAGES_OUT,
    MW_M_CONNECTS,
    MW_M_DISCONNECTS,
    MW_M_HANDLER_ERRORS,
    MW_M_HTTP_REQUESTS,
    MW_M_HANDSHAKES_REFUSED,
    MW_M_BYTES_IN,
    MW_M_BYTES_OUT,
    MW_M_RATE_LIMITED,
    MW_M_SLOW_CONSUMERS,
    MW_M_ROOMS,               /* gauge */
    MW_M_AUTH_FAILURES,
    MW_M_DB_QUERIES,
    MW_M_DB_ERRORS,
    MW_M_JOBS_ADDED,
    MW_M_JOBS_COMPLETED,
    MW_M_JOBS_FAILED,
    MW_M_JOBS_RETRIED,
    MW_M_REFUSED_LIMIT,       /* rendered as one family with a reason label */
    MW_M_REFUSED_FDS,
    MW_M_HISTORY_STORED,      /* messages stored in a room's history */
    MW_M_RECOVERIES,          /* joins with a `since` in a history room */
    MW_M_RECOVERIES_OK,       /* ... that replayed (recovered: true) */
    MW_M_RECOVERIES_FAILED,   /* ... that could not (recovered: false) */
    MW_M_REPLAYED,            /* messages replayed to recovering clients */
    MW_M_HISTORY_BYTES,       /* gauge: bytes of frames the worker's memory history keeps */
    MW_M_PRESENCE_JOINS,      /* presence/join events sent (one per change, not per member) */
    MW_M_PRESENCE_LEAVES,     /* presence/leave events sent (a dead worker's clients' included) */
    MW_M_JOINS_REFUSED,       /* client-side joins refused by a room's canJoin */
    MW_M_SEND_QUEUE_BYTES,    /* gauge: bytes queued for clients, not yet taken by the kernel */
    MW_M_PARTIAL_BYTES,       /* gauge: bytes of client messages received in part */
    MW_M_WS_CONTEXTS,         /* gauge: wslay contexts lent to connections (partial message, close) */
    MW_M_COMPRESSIONS,        /* messages compressed (once per broadcast, not per recipient) */
    MW_M_COMPRESSION_OUT_PLAIN, /* payload bytes sent compressed, before compression (per recipient) */
    MW_M_COMPRESSION_OUT_WIRE,  /* ... after compression */
    MW_M_COMPRESSION_IN_WIRE,   /* compressed payload bytes received, as sent */
    MW_M_COMPRESSION_IN_PLAIN,  /* ... inflated */
    MW_M_COUNT
} mw_metric;

typedef struct mw_metrics_slot {
    int32_t pid;
    int32_t alive;
    uint64_t values[MW_M_COUNT];
    mw_histogram handler;  /* controller handler run time */
    mw_histogram db_query; /* database statement latency */
    uint64_t disconnects_by_code[MW_METRICS_CLOSE_CODES];
    /* queue depth (waiting + delayed + running jobs) as this worker last saw it, per queue; a name
     * is written once before its depth is first published (seq_cst store of queue_used). */
    int32_t queue_used;
    char queue_names[MW_METRICS_QUEUES][MW_METRICS_QUEUE_NAME];
    uint64_t queue_depth[MW_METRICS_QUEUES];
    uint64_t api[MW_METRICS_API_METHODS][MW_METRICS_API_STATUSES]; /* HTTP API requests answered */
    mw_histogram api_duration;
} mw_metrics_slot;

typedef struct mw_metrics {
    int workers;
    mw_metrics_slot slots[];
} mw_metrics;

mw_metrics *mw_metrics_create(int workers); /* shared anonymous mapping; NULL on failure */
void mw_metrics_destroy(mw_metrics *m);
void mw_metrics_reset_slot(mw_metrics *m, int index, int pid);

/* A slot has one writer, its worker's loop thread: an atomic load and store, never torn for the
 * reader, without the locked read-modify-write (several per message). */
static inline void mw_metrics_bump(uint64_t *v, uint64_t delta)
{
    __atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + delta, __ATOMIC_RELAXED);
}

static inline void mw_metrics_add(mw_metrics_slot *s, mw_metric which, int64_t delta)
{
    mw_metrics_bump(&s->values[which], (uint64_t)delta);
}
void mw_metrics_observe(mw_histogram *h, uint64_t duration_ns);
/* n observations of duration_ns each (the messages of a batch, timed together). */
void mw_metrics_observe_n(mw_histogram *h, uint64_t duration_ns, uint64_t n);
static inline void mw_metrics_observe_handler(mw_metrics_slot *s, uint64_t duration_ns)
{
    mw_metrics_observe(&s->handler, duration_ns);
}
/* Sets the depth of a queue; queues past MW_METRICS_QUEUES names are not reported. */
void mw_metrics_queue_depth(mw_metrics_slot *s, const char *queue, uint64_t depth);
void mw_metrics_count_disconnect(mw_metrics_slot *s, int code);
static inline void mw_metrics_set(mw_metrics_slot *s, mw_metric which, uint64_t value)
{
    __atomic_store_n(&s->values[which], value, __ATOMIC_RELAXED);
}

/* The index of an HTTP API method name (MW_METRICS_API_METHODS - 1 for an unknown one) and its
 * name. */
int mw_metrics_api_method(const char *name, size_t len);
const char *mw_metrics_api_method_name(int index);
/* Counts an HTTP API request answered with status after duration_ns. */
void mw_metrics_count_api(mw_metrics_slot *s, int method, int status, uint64_t duration_ns);

/* Renders Prometheus text exposition into a malloc'd buffer; returns its length. */
size_t mw_metrics_render(const mw_metrics *m, char **out);

#endif
