/* mw_loadgen: WebSocket load generator for the moonwire benchmark protocol (echo, broadcast).
 * N client connections on libuv + wslay, latency histograms, text and JSON reports, server RSS. */

#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <uv.h>
#include <wslay/wslay.h>
#include <zlib.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define LG_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define LG_MAX_PIDS 16
#define LG_MAX_HEAD 8192                /* bytes of HTTP response head we accept */
#define LG_MAX_MSG (16u << 20)          /* largest WebSocket message we accept */
#define LG_OUT_LIMIT (8u << 20)         /* per-connection unsent bytes before wslay is told to wait */
#define LG_SENDER_QUEUE (1u << 20)      /* a broadcast sender skips its turn past this backlog */
#define LG_READ_BUF 65536
#define LG_FD_RESERVE 64                /* descriptors kept free for the loop, pipes, /proc */

/* Latency histogram in nanoseconds: exact below 256 ns, then 128 linear sub-buckets per power
 * of two (under 0.8 % error) up to 2^40 ns (18 minutes). Mergeable across processes. */
#define LG_HIST_SUB_BITS 7
#define LG_HIST_SUB (1u << LG_HIST_SUB_BITS)
#define LG_HIST_MAX_BITS 40
#define LG_HIST_BUCKETS (2 * LG_HIST_SUB + (LG_HIST_MAX_BITS - LG_HIST_SUB_BITS - 1) * LG_HIST_SUB)

enum lg_scenario { LG_ECHO, LG_BROADCAST, LG_IDLE_HOLD };

enum lg_err {
  LG_ERR_CONNECT,    /* TCP connect failed or timed out */
  LG_ERR_HANDSHAKE,  /* upgrade refused or malformed 101 */
  LG_ERR_PROTOCOL,   /* wslay reported a framing error, or a write failed */
  LG_ERR_CLOSED,     /* server closed the connection during the run */
  LG_ERR_FRAME,      /* server sent {"type":"error",...} */
  LG_ERR_REPLY,      /* reply with unknown requestId, wrong payload, binary frame */
  LG_ERR_STALLED,    /* echo: request unanswered for longer than --timeout at the end */
  LG_ERR_COUNT
};

static const char *const lg_err_names[LG_ERR_COUNT] = {
  "connect", "handshake", "protocol", "closed", "error_frames", "bad_replies", "stalled",
};

typedef struct {
  char url[512];
  char host_header[300];
  char path[1024];
  struct sockaddr_in dst;
  int loopback;
} lg_target;

typedef struct {
  lg_target target;  /* --url: every connection, or the receivers when split */
  lg_target sender;  /* --sender-url: the sender connections when split */
  int split;         /* --sender-url given: senders are extra connections, not receivers */
  int by_worker;     /* --by-worker: split delivery latency by the receiver's server worker */
  int requested;     /* -c as given (receivers when split) */
  int connections;   /* connections opened: requested, plus the senders when split */
  double duration;
  double warmup;
  double drain;
  double connect_timeout;
  double timeout;
  enum lg_scenario scenario;
  int payload;
  int depth;
  double echo_rate; /* --echo-rate: requests/s over all connections, sent on a clock (0: closed loop) */
  double rate;
  int senders;
  int sources;
  int first_source;  /* the last byte of the first source address, 127.0.0.N */
  int procs;
  int concurrency;
  pid_t server_pids[LG_MAX_PIDS];
  int n_server_pids;
  int json;
  int deflate;       /* --deflate: offer permessage-deflate, inflate compressed messages */
  int rows;          /* --rows BYTES: broadcasts carry data.rows, about BYTES of JSON records */
  char label[64];
  uint64_t base_ns; /* every "t" on the wire is relative to this; shared by forked workers */
} lg_config;

/* One latency distribution (used for the --by-worker split). */
typedef struct {
  uint64_t hist[LG_HIST_BUCKETS];
  uint64_t count, sum_ns, max_ns;
} lg_lat;

typedef struct {
  uint64_t hist[LG_HIST_BUCKETS];
  uint64_t lat_count, lat_sum_ns, lat_max_ns;
  lg_lat wlat[2];          /* --by-worker: receiver on the sender's worker [0], on another [1] */
  uint64_t wunknown;       /* --by-worker: deliveries whose receiver or sender worker is unknown */
  uint64_t sent;        /* echo: requests sent in the window; broadcast: broadcasts sent in it */
  uint64_t received;    /* echo: replies received in the window; broadcast: ticks sent in it */
  uint64_t errors[LG_ERR_COUNT];
  uint64_t opened;      /* connections that completed the upgrade */
  uint64_t open_at_end; /* connections still open when the window closed */
  uint64_t starved;     /* broadcast: open receivers that got no tick from the window */
  uint64_t skipped;     /* broadcast: sends skipped because the sender's queue was full;
                           echo at --echo-rate: requests skipped, --depth already in flight */
  uint64_t rx_bytes;    /* bytes read from the server in the window (frames as on the wire) */
  uint64_t deflated;    /* connections that negotiated permessage-deflate */
  uint64_t connect_ns;  /* time from first connect to the last upgrade (or failure) */
  int64_t rss_kib, hwm_kib; /* -1 when not sampled */
  double server_cpu_s;  /* CPU seconds the server used in the window; -1 when not sampled */
  double own_cpu_s;     /* CPU seconds the load generator used in the window (all processes) */
  int rss_procs;
  char first_error[160];
} lg_stats;

typedef struct {
  char *data;
  size_t len, cap;
} lg_buf;

enum lg_conn_state { LG_IDLE, LG_CONNECTING, LG_HANDSHAKE, LG_OPEN, LG_CLOSING, LG_CLOSED };

typedef struct lg_worker lg_worker;

typedef struct {
  uint64_t id, sent_ns;
} lg_inflight;

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  lg_worker *w;
  int index;      /* global connection number, 0..connections-1 */
  enum lg_conn_state state;
  int writing;
  int sender;
  wslay_event_context_ptr ws;
  char key[32];
  lg_buf head;    /* HTTP response head while upgrading */
  lg_buf rx;      /* the start of a server frame not wholly received yet */
  lg_buf out;     /* bytes produced by wslay, not yet handed to the kernel */
  lg_buf flying;  /* bytes owned by the pending uv_write */
  const uint8_t *in;
  size_t in_len;
  uint64_t next_id;
  int outstanding;
  lg_inflight *ring; /* echo: depth slots, indexed by requestId % depth */
  uint64_t bc_sent;  /* broadcast sender, or echo at --echo-rate: messages sent so far */
  uint64_t ticks;    /* broadcast receiver: window ticks received */
  char worker[96];   /* server worker id from {"action":"hello"} (--by-worker app); "" unknown */
  int deflate;       /* permessage-deflate was negotiated */
  int deflate_reset; /* ... with server_no_context_takeover: reset the inflater per message */
  z_stream *zin;     /* this connection's inflater (the server may keep its context) */
} lg_conn;

enum lg_phase { LG_PH_CONNECT, LG_PH_READY, LG_PH_RUN, LG_PH_DRAIN, LG_PH_CLOSE, LG_PH_DONE };

struct lg_worker {
  uv_loop_t loop;
  uv_timer_t phase_timer;
  uv_timer_t send_timer;
  uv_timer_t cpu_timer;   /* fires when the window opens: CPU counters sampled */
  uv_poll_t ctrl_poll;    /* initialised only when ctrl_fd >= 0 */
  int ctrl_fd;    /* parent -> worker: start time; -1 when running in-process */
  int ready_fd;   /* worker -> parent: 'R' when connected; -1 in-process */
  const lg_config *cfg;
  int index;
  int first, count;       /* global connection numbers [first, first+count) */
  lg_conn *conns;
  int next_connect, pending, open, closed;
  int connecting_loop;    /* lg_worker_connect_next is on the stack */
  enum lg_phase phase;
  int sending;
  uint64_t connect_start, t0, measure_start, measure_end;
  double cpu_own0, cpu_server0; /* CPU seconds when the window opened; server: -1 unknown */
  uint64_t rng;
  char *scratch;
  size_t scratch_len;
  char *payload;          /* cfg->payload 'x' characters */
  char *rows;             /* --rows: the JSON array every broadcast carries ("" without) */
  uint8_t *inflated;      /* an inflated message */
  size_t inflated_cap;
  char read_buf[LG_READ_BUF];
  lg_stats stats;
};

/* ---------------------------------------------------------------------------------------- */
/* small helpers */

static void lg_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("mw_loadgen: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static uint64_t lg_now(void) {
  return uv_hrtime();
}

static int lg_buf_append(lg_buf *b, const void *data, size_t len) {
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + len)
      cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
      return -1;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

static void lg_buf_free(lg_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

static void lg_stats_error(lg_stats *s, enum lg_err kind, const char *msg) {
  s->errors[kind]++;
  if (s->first_error[0] == '\0' && msg != NULL)
    snprintf(s->first_error, sizeof s->first_error, "%s: %s", lg_err_names[kind], msg);
}

static unsigned lg_hist_bucket(uint64_t v) {
  if (v >= (UINT64_C(1) << LG_HIST_MAX_BITS))
    v = (UINT64_C(1) << LG_HIST_MAX_BITS) - 1;
  if (v < 2 * LG_HIST_SUB)
    return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = e - LG_HIST_SUB_BITS;
  return (shift + 1) * LG_HIST_SUB + (unsigned)(v >> shift) - LG_HIST_SUB;
}

static uint64_t lg_hist_low(unsigned b) {
  if (b < 2 * LG_HIST_SUB)
    return b;
  unsigned shift = b / LG_HIST_SUB - 1;
  return (uint64_t)(b % LG_HIST_SUB + LG_HIST_SUB) << shift;
}

static void lg_stats_latency(lg_stats *s, uint64_t ns) {
  s->hist[lg_hist_bucket(ns)]++;
  s->lat_count++;
  s->lat_sum_ns += ns;
  if (ns > s->lat_max_ns)
    s->lat_max_ns = ns;
}

/* The q-quantile in ms: midpoint of the bucket holding it, never above the exact maximum. */
static double lg_hist_quantile_ms(const uint64_t *hist, uint64_t count, uint64_t max_ns, double q) {
  if (count == 0)
    return 0;
  uint64_t rank = (uint64_t)ceil(q * (double)count);
  if (rank < 1)
    rank = 1;
  uint64_t seen = 0;
  for (unsigned b = 0; b < LG_HIST_BUCKETS; b++) {
    seen += hist[b];
    if (seen >= rank) {
      uint64_t lo = lg_hist_low(b);
      uint64_t hi = b + 1 < LG_HIST_BUCKETS ? lg_hist_low(b + 1) - 1 : lo;
      uint64_t mid = lo + (hi - lo) / 2;
      if (mid > max_ns)
        mid = max_ns;
      return (double)mid / 1e6;
    }
  }
  return (double)max_ns / 1e6;
}

static double lg_stats_quantile_ms(const lg_stats *s, double q) {
  return lg_hist_quantile_ms(s->hist, s->lat_count, s->lat_max_ns, q);
}

static double lg_lat_quantile_ms(const lg_lat *l, double q) {
  return lg_hist_quantile_ms(l->hist, l->count, l->max_ns, q);
}

static void lg_lat_add(lg_lat *l, uint64_t ns) {
  l->hist[lg_hist_bucket(ns)]++;
  l->count++;
  l->sum_ns += ns;
  if (ns > l->max_ns)
    l->max_ns = ns;
}

static void lg_stats_merge(lg_stats *into, const lg_stats *from) {
  for (unsigned b = 0; b < LG_HIST_BUCKETS; b++)
    into->hist[b] += from->hist[b];
  into->lat_count += from->lat_count;
  into->lat_sum_ns += from->lat_sum_ns;
  if (from->lat_max_ns > into->lat_max_ns)
    into->lat_max_ns = from->lat_max_ns;
  for (int k = 0; k < 2; k++) {
    lg_lat *a = &into->wlat[k];
    const lg_lat *b = &from->wlat[k];
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++)
      a->hist[i] += b->hist[i];
    a->count += b->count;
    a->sum_ns += b->sum_ns;
    if (b->max_ns > a->max_ns)
      a->max_ns = b->max_ns;
  }
  into->wunknown += from->wunknown;
  into->sent += from->sent;
  into->received += from->received;
  for (int i = 0; i < LG_ERR_COUNT; i++)
    into->errors[i] += from->errors[i];
  into->opened += from->opened;
  into->open_at_end += from->open_at_end;
  into->starved += from->starved;
  into->skipped += from->skipped;
  into->rx_bytes += from->rx_bytes;
  into->deflated += from->deflated;
  if (from->connect_ns > into->connect_ns)
    into->connect_ns = from->connect_ns;
  into->own_cpu_s += from->own_cpu_s;
  if (from->server_cpu_s >= 0)
    into->server_cpu_s = from->server_cpu_s;
  if (from->rss_kib >= 0) {
    into->rss_kib = from->rss_kib;
    into->hwm_kib = from->hwm_kib;
    into->rss_procs = from->rss_procs;
  }
  if (into->first_error[0] == '\0')
    memcpy(into->first_error, from->first_error, sizeof into->first_error);
}

/* ---------------------------------------------------------------------------------------- */
/* server memory: VmRSS / VmHWM summed over the given pids and all their descendants */

static int64_t lg_proc_status_kib(pid_t pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  size_t flen = strlen(field);
  int64_t kib = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
      kib = strtoll(line + flen + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kib;
}

static pid_t lg_proc_ppid(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  pid_t ppid = -1;
  char state;
  if (p == NULL || sscanf(p + 1, " %c %d", &state, &ppid) != 2)
    return -1;
  return ppid;
}

enum { LG_MAX_TRACKED = 4096 };

/* The --server-pid processes and all their descendants; returns how many (up to max). */
static int lg_server_pids(const lg_config *cfg, pid_t *set, int max) {
  int n = 0;
  for (int i = 0; i < cfg->n_server_pids && n < max; i++)
    set[n++] = cfg->server_pids[i];
  if (n == 0)
    return 0;
  /* Add descendants until a pass over /proc finds nothing new (covers grandchildren). */
  for (int grew = 1, passes = 0; grew && passes < 8; passes++) {
    grew = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
      break;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
      if (!isdigit((unsigned char)e->d_name[0]))
        continue;
      pid_t pid = (pid_t)atoi(e->d_name);
      int known = 0;
      for (int i = 0; i < n && !known; i++)
        known = set[i] == pid;
      if (known)
        continue;
      pid_t ppid = lg_proc_ppid(pid);
      for (int i = 0; i < n; i++) {
        if (set[i] == ppid) {
          set[n++] = pid;
          grew = 1;
          break;
        }
      }
    }
    closedir(d);
  }
  return n;
}

/* Fills rss/hwm (KiB) and the number of processes counted; -1 when no pid was readable. */
static void lg_server_memory(const lg_config *cfg, int64_t *rss, int64_t *hwm, int *procs) {
  pid_t set[LG_MAX_TRACKED];
  int n = lg_server_pids(cfg, set, LG_MAX_TRACKED);
  *rss = *hwm = -1;
  *procs = 0;
  for (int i = 0; i < n; i++) {
    int64_t r = lg_proc_status_kib(set[i], "VmRSS");
    int64_t h = lg_proc_status_kib(set[i], "VmHWM");
    if (r < 0)
      continue;
    *rss = (*rss < 0 ? 0 : *rss) + r;
    *hwm = (*hwm < 0 ? 0 : *hwm) + (h > 0 ? h : r);
    (*procs)++;
  }
}

/* CPU seconds (user + system, all threads) of the server processes; -1 when none readable. */
static double lg_server_cpu(const lg_config *cfg) {
  pid_t set[LG_MAX_TRACKED];
  int n = lg_server_pids(cfg, set, LG_MAX_TRACKED);
  double ticks = -1;
  for (int i = 0; i < n; i++) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)set[i]);
    FILE *f = fopen(path, "r");
    if (f == NULL)
      continue;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    /* after the name: state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
     * cmajflt utime(14) stime(15) */
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
      continue;
    ticks = (ticks < 0 ? 0 : ticks) + (double)(ut + st);
  }
  return ticks < 0 ? -1 : ticks / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds this process has used (every thread). */
static double lg_own_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------------------------- */
/* connections */

static void lg_conn_pump(lg_conn *c);
static void lg_worker_connect_next(lg_worker *w);
static void lg_worker_check_connected(lg_worker *w);
static void lg_worker_check_closed(lg_worker *w);

static void lg_conn_close_cb(uv_handle_t *h) {
  lg_conn *c = h->data;
  lg_worker *w = c->w;
  if (c->ws != NULL)
    wslay_event_context_free(c->ws);
  c->ws = NULL;
  if (c->zin != NULL) {
    inflateEnd(c->zin);
    free(c->zin);
    c->zin = NULL;
  }
  lg_buf_free(&c->head);
  lg_buf_free(&c->rx);
  lg_buf_free(&c->out);
  lg_buf_free(&c->flying);
  free(c->ring);
  c->ring = NULL;
  c->state = LG_CLOSED;
  w->closed++;
  lg_worker_check_closed(w);
}

static void lg_conn_close(lg_conn *c) {
  if (c->state == LG_CLOSING || c->state == LG_CLOSED)
    return;
  if (c->state == LG_OPEN)
    c->w->open--;
  c->state = LG_CLOSING;
  uv_close((uv_handle_t *)&c->tcp, lg_conn_close_cb);
}

/* Counts the failure, closes the connection and, while connecting, starts the next one. */
static void lg_conn_fail(lg_conn *c, enum lg_err kind, const char *msg) {
  lg_worker *w = c->w;
  if (c->state == LG_CLOSING || c->state == LG_CLOSED)
    return;
  int was_pending = c->state == LG_CONNECTING || c->state == LG_HANDSHAKE;
  lg_stats_error(&w->stats, kind, msg);
  lg_conn_close(c);
  if (was_pending) {
    w->pending--;
    lg_worker_connect_next(w);
    lg_worker_check_connected(w);
  }
}

static void lg_conn_write_cb(uv_write_t *req, int status) {
  lg_conn *c = req->data;
  c->writing = 0;
  c->flying.len = 0;
  if (status < 0) {
    if (status != UV_ECANCELED)
      lg_conn_fail(c, LG_ERR_PROTOCOL, uv_strerror(status));
    return;
  }
  lg_conn_pump(c);
}

/* Hands c->out to the kernel: try_write first, the rest through one uv_write at a time. */
static void lg_conn_flush(lg_conn *c) {
  if (c->writing || c->out.len == 0 || c->state == LG_CLOSING || c->state == LG_CLOSED)
    return;
  uv_buf_t buf = uv_buf_init(c->out.data, (unsigned)c->out.len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
  if (n == UV_EAGAIN || n == UV_ENOSYS)
    n = 0;
  if (n < 0) {
    lg_conn_fail(c, LG_ERR_PROTOCOL, uv_strerror(n));
    return;
  }
  if ((size_t)n == c->out.len) {
    c->out.len = 0;
    return;
  }
  lg_buf tmp = c->flying; /* swap so the pending write owns its bytes until the callback */
  c->flying = c->out;
  c->out = tmp;
  c->out.len = 0;
  buf = uv_buf_init(c->flying.data + n, (unsigned)(c->flying.len - (size_t)n));
  c->write_req.data = c;
  int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, lg_conn_write_cb);
  if (rc < 0) {
    c->flying.len = 0;
    lg_conn_fail(c, LG_ERR_PROTOCOL, uv_strerror(rc));
    return;
  }
  c->writing = 1;
}

/* Lets wslay produce frames, flushes them, and closes the socket once wslay is done both ways. */
static void lg_conn_pump(lg_conn *c) {
  if (c->state != LG_OPEN)
    return;
  if (wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) {
    lg_conn_fail(c, LG_ERR_PROTOCOL, "wslay_event_send failed");
    return;
  }
  lg_conn_flush(c);
  if (c->state == LG_OPEN && !wslay_event_want_read(c->ws) && !wslay_event_want_write(c->ws) &&
      !c->writing && c->out.len == 0) {
    if (c->w->phase < LG_PH_CLOSE) {
      char msg[64];
      snprintf(msg, sizeof msg, "closed by server with code %u",
               (unsigned)wslay_event_get_status_code_received(c->ws));
      lg_stats_error(&c->w->stats, LG_ERR_CLOSED, msg);
    }
    lg_conn_close(c);
  }
}

static ssize_t lg_ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                             void *user_data) {
  (void)flags;
  lg_conn *c = user_data;
  if (c->in_len == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < c->in_len ? len : c->in_len;
  memcpy(buf, c->in, n);
  c->in += n;
  c->in_len -= n;
  return (ssize_t)n;
}

static ssize_t lg_ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                             int flags, void *user_data) {
  (void)flags;
  lg_conn *c = user_data;
  if (c->out.len + len > LG_OUT_LIMIT) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (lg_buf_append(&c->out, data, len) != 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return (ssize_t)len;
}

/* Masks only stop proxy cache poisoning, so a fast xorshift is enough and saves a syscall. */
static int lg_ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                            void *user_data) {
  (void)ctx;
  lg_conn *c = user_data;
  uint64_t *s = &c->w->rng;
  for (size_t i = 0; i < len; i++) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    buf[i] = (uint8_t)*s;
  }
  return 0;
}

/* JSON look-ups over the flat frames of this protocol (server-generated, payload all 'x').
 * Return a pointer just past `"key":` and optional spaces, or NULL. */
static const char *lg_json_find(const char *s, size_t n, const char *key) {
  char pat[40];
  size_t klen = strlen(key);
  if (klen > sizeof pat - 3)
    return NULL;
  pat[0] = '"'; /* built by hand: this runs for every reply, snprintf showed in the profile */
  memcpy(pat + 1, key, klen);
  pat[klen + 1] = '"';
  pat[klen + 2] = ':';
  size_t plen = klen + 3;
  const char *p = memmem(s, n, pat, plen);
  if (p == NULL)
    return NULL;
  p += plen;
  while (p < s + n && *p == ' ')
    p++;
  return p;
}

static int lg_json_number(const char *s, size_t n, const char *key, double *out) {
  const char *p = lg_json_find(s, n, key);
  if (p == NULL)
    return -1;
  /* a plain integer (requestId, t) without strtod: every reply has two */
  uint64_t v = 0;
  const char *q = p;
  while (q < s + n && q - p < 19 && *q >= '0' && *q <= '9')
    v = v * 10 + (uint64_t)(*q++ - '0');
  if (q > p && (q == s + n || (*q != '.' && *q != 'e' && *q != 'E' && (*q < '0' || *q > '9')))) {
    *out = (double)v;
    return 0;
  }
  char num[48];
  size_t k = 0;
  while (p < s + n && k < sizeof num - 1 && strchr("0123456789+-.eE", *p) != NULL && *p != '\0')
    num[k++] = *p++;
  num[k] = '\0';
  if (k == 0)
    return -1;
  char *end;
  *out = strtod(num, &end);
  return *end == '\0' ? 0 : -1;
}

/* Copies a string value (escapes kept verbatim) into out; returns its length or -1. */
static int lg_json_string(const char *s, size_t n, const char *key, char *out, size_t cap) {
  const char *p = lg_json_find(s, n, key);
  if (p == NULL || p >= s + n || *p != '"')
    return -1;
  p++;
  size_t k = 0, len = 0;
  while (p < s + n && *p != '"') {
    if (*p == '\\' && p + 1 < s + n) {
      if (k + 1 < cap)
        out[k++] = *p;
      p++;
      len++;
    }
    if (k + 1 < cap)
      out[k++] = *p;
    p++;
    len++;
  }
  if (cap > 0)
    out[k] = '\0';
  return p < s + n ? (int)len : -1;
}

/* Appends v in decimal at p; returns the end. */
static char *lg_put_u64(char *p, uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0)
    *p++ = tmp[--n];
  return p;
}

static char *lg_put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}
#define LG_PUT_LIT(p, lit) lg_put((p), (lit), sizeof(lit) - 1)

/* One masked text frame: written straight into the output buffer while wslay has nothing queued
 * (so frames keep their order), else queued through wslay. 0, or -1 when wslay refused it (a
 * close is under way). */
static int lg_send_text_frame(lg_conn *c, const char *text, size_t len) {
  uint8_t hdr[8];
  size_t hl;
  if (len < LG_MAX_MSG && len <= 0xffff && !wslay_event_want_write(c->ws) &&
      c->out.len + len + sizeof hdr <= LG_OUT_LIMIT) {
    hdr[0] = 0x81;
    if (len < 126) {
      hdr[1] = (uint8_t)(0x80 | len);
      hl = 2;
    } else {
      hdr[1] = 0x80 | 126;
      hdr[2] = (uint8_t)(len >> 8);
      hdr[3] = (uint8_t)len;
      hl = 4;
    }
    uint64_t *r = &c->w->rng; /* the mask: as lg_ws_genmask_cb makes them */
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    uint8_t mask[4];
    memcpy(mask, r, 4);
    memcpy(hdr + hl, mask, 4);
    hl += 4;
    size_t at = c->out.len;
    if (lg_buf_append(&c->out, hdr, hl) != 0 || lg_buf_append(&c->out, text, len) != 0)
      return -1;
    uint8_t *q = (uint8_t *)c->out.data + at + hl;
    for (size_t i = 0; i < len; i++)
      q[i] ^= mask[i & 3];
    return 0;
  }
  struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
  return wslay_event_queue_msg(c->ws, &msg) != 0 ? -1 : 0;
}

static void lg_echo_send(lg_conn *c, uint64_t now) {
  lg_worker *w = c->w;
  const lg_config *cfg = w->cfg;
  uint64_t id = ++c->next_id;
  /* {"type":"bench","action":"echo","data":{"t":T,"p":"xxx"},"requestId":N}, put together by
   * hand: snprintf was a fifth of the load generator's time, and the load generator is what
   * limits the fastest servers */
  char *p = w->scratch;
  p = LG_PUT_LIT(p, "{\"type\":\"bench\",\"action\":\"echo\",\"data\":{\"t\":");
  p = lg_put_u64(p, now - cfg->base_ns);
  p = LG_PUT_LIT(p, ",\"p\":\"");
  p = lg_put(p, w->payload, (size_t)cfg->payload);
  p = LG_PUT_LIT(p, "\"},\"requestId\":");
  p = lg_put_u64(p, id);
  *p++ = '}';
  int len = (int)(p - w->scratch);
  if (lg_send_text_frame(c, w->scratch, (size_t)len) != 0)
    return; /* a close is queued: the connection is going away */
  lg_inflight *slot = &c->ring[id % (uint64_t)cfg->depth];
  slot->id = id;
  slot->sent_ns = now;
  c->outstanding++;
  if (now >= w->measure_start && now < w->measure_end)
    w->stats.sent++;
}

static void lg_broadcast_send(lg_conn *c, uint64_t now) {
  lg_worker *w = c->w;
  int len = snprintf(w->scratch, w->scratch_len,
                     "{\"type\":\"bench\",\"action\":\"broadcast\",\"data\":{\"t\":%" PRIu64
                     "%s%s%s%s%s}}",
                     now - w->cfg->base_ns, w->cfg->payload > 0 ? ",\"p\":\"" : "", w->payload,
                     w->cfg->payload > 0 ? "\"" : "", w->rows[0] ? ",\"rows\":" : "", w->rows);
  struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)w->scratch, (size_t)len};
  if (wslay_event_queue_msg(c->ws, &msg) != 0)
    return;
  c->bc_sent++;
  if (now >= w->measure_start && now < w->measure_end)
    w->stats.sent++;
}

static void lg_on_echo(lg_conn *c, const char *s, size_t n, uint64_t now) {
  lg_worker *w = c->w;
  double rid;
  if (lg_json_number(s, n, "requestId", &rid) != 0 || rid < 1) {
    lg_stats_error(&w->stats, LG_ERR_REPLY, "echo reply without requestId");
    return;
  }
  uint64_t id = (uint64_t)rid;
  lg_inflight *slot = &c->ring[id % (uint64_t)w->cfg->depth];
  if (slot->id != id) {
    lg_stats_error(&w->stats, LG_ERR_REPLY, "echo reply with an unknown requestId");
    return;
  }
  slot->id = 0;
  c->outstanding--;
  /* A controller replies {"response":{"p":...},"requestId":N}; a raw echo server (moonwire's
   * raw mode, bun_peer.js, ws_peer.js --raw) sends the request itself back: data.p. */
  const char *resp = lg_json_find(s, n, "response");
  if (resp == NULL)
    resp = lg_json_find(s, n, "data");
  char p[8];
  int plen = resp == NULL ? -1 : lg_json_string(resp, n - (size_t)(resp - s), "p", p, sizeof p);
  if (plen != w->cfg->payload) {
    lg_stats_error(&w->stats, LG_ERR_REPLY, "echo reply does not carry the payload back");
  } else if (now >= w->measure_start && now < w->measure_end) {
    w->stats.received++;
    lg_stats_latency(&w->stats, now - slot->sent_ns);
  }
  if (w->sending && w->cfg->echo_rate == 0)
    lg_echo_send(c, now);
}

static void lg_on_tick(lg_conn *c, const char *s, size_t n, uint64_t now) {
  lg_worker *w = c->w;
  double t;
  if (w->cfg->split && c->sender)
    return; /* --sender-url: senders are not receivers; their own ticks are not measured */
  if (lg_json_number(s, n, "t", &t) != 0 || t < 0) {
    lg_stats_error(&w->stats, LG_ERR_REPLY, "tick without data.t");
    return;
  }
  uint64_t sent = w->cfg->base_ns + (uint64_t)t;
  if (sent < w->measure_start || sent >= w->measure_end)
    return;
  w->stats.received++;
  c->ticks++;
  uint64_t lat = now > sent ? now - sent : 0;
  lg_stats_latency(&w->stats, lat);
  if (w->cfg->by_worker) {
    char from[96];
    const char *data = lg_json_find(s, n, "data");
    if (c->worker[0] != '\0' && data != NULL &&
        lg_json_string(data, n - (size_t)(data - s), "w", from, sizeof from) > 0)
      lg_lat_add(&w->stats.wlat[strcmp(from, c->worker) == 0 ? 0 : 1], lat);
    else
      w->stats.wunknown++;
  }
}

/* {"type":"bench","action":"hello","data":{"worker":ID}}: the worker this connection is on
 * (sent by the --by-worker app, tests/bench/worker_app, from events.onConnect). */
static void lg_on_hello(lg_conn *c, const char *s, size_t n) {
  const char *data = lg_json_find(s, n, "data");
  if (data == NULL ||
      lg_json_string(data, n - (size_t)(data - s), "worker", c->worker, sizeof c->worker) <= 0)
    c->worker[0] = '\0';
}

static void lg_on_text(lg_conn *c, const char *s, size_t n) {
  lg_worker *w = c->w;
  uint64_t now = lg_now();
  char type[16], action[16];
  if (lg_json_string(s, n, "type", type, sizeof type) < 0 ||
      lg_json_string(s, n, "action", action, sizeof action) < 0) {
    lg_stats_error(&w->stats, LG_ERR_REPLY, "frame without type/action");
    return;
  }
  if (strcmp(type, "bench") == 0) {
    if (strcmp(action, "echo") == 0 && w->cfg->scenario == LG_ECHO)
      lg_on_echo(c, s, n, now);
    else if (strcmp(action, "tick") == 0 && w->cfg->scenario == LG_BROADCAST)
      lg_on_tick(c, s, n, now);
    else if (strcmp(action, "hello") == 0)
      lg_on_hello(c, s, n);
    else if (strcmp(action, "broadcast") != 0) /* the sender's own ack is ignored */
      lg_stats_error(&w->stats, LG_ERR_REPLY, "unexpected bench action");
  } else if (strcmp(type, "error") == 0) {
    char text[120];
    if (lg_json_string(s, n, "error", text, sizeof text) < 0)
      snprintf(text, sizeof text, "%.*s", (int)(n < 100 ? n : 100), s);
    lg_stats_error(&w->stats, LG_ERR_FRAME, text);
    double rid;
    if (w->cfg->scenario == LG_ECHO && lg_json_number(s, n, "requestId", &rid) == 0 && rid >= 1) {
      /* A refused request is answered: free its slot and keep the pipeline full. */
      lg_inflight *slot = &c->ring[(uint64_t)rid % (uint64_t)w->cfg->depth];
      if (slot->id == (uint64_t)rid) {
        slot->id = 0;
        c->outstanding--;
        if (w->sending && w->cfg->echo_rate == 0)
          lg_echo_send(c, now);
      }
    }
  }
  /* "system" (connected) and anything else is not part of the measurement. */
}

/* A compressed message (RFC 7692 7.2.2: the 00 00 ff ff tail appended) into w->inflated;
 * returns its length or -1. */
static long lg_inflate(lg_conn *c, const uint8_t *in, size_t len) {
  static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
  lg_worker *w = c->w;
  z_stream *z = c->zin;
  size_t n = 0;
  for (int part = 0; part < 2; part++) {
    z->next_in = (Bytef *)(part ? tail : in);
    z->avail_in = part ? 4 : (uInt)len;
    for (;;) {
      if (n == w->inflated_cap) {
        size_t cap = w->inflated_cap ? w->inflated_cap * 2 : 65536;
        uint8_t *p = cap <= LG_MAX_MSG * 2 ? realloc(w->inflated, cap) : NULL;
        if (p == NULL)
          return -1;
        w->inflated = p;
        w->inflated_cap = cap;
      }
      z->next_out = w->inflated + n;
      z->avail_out = (uInt)(w->inflated_cap - n);
      int rc = inflate(z, Z_SYNC_FLUSH);
      n = w->inflated_cap - z->avail_out;
      if (rc != Z_OK && rc != Z_BUF_ERROR)
        return -1;
      if (z->avail_in == 0 && z->avail_out > 0)
        break;
    }
  }
  if (c->deflate_reset)
    inflateReset(z);
  return (long)n;
}

static void lg_ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                         void *user_data) {
  (void)ctx;
  lg_conn *c = user_data;
  if ((arg->rsv & WSLAY_RSV1_BIT) && arg->opcode == WSLAY_TEXT_FRAME) {
    long n = lg_inflate(c, arg->msg, arg->msg_length);
    if (n < 0)
      lg_stats_error(&c->w->stats, LG_ERR_REPLY, "compressed message does not inflate");
    else
      lg_on_text(c, (const char *)c->w->inflated, (size_t)n);
  } else if (arg->opcode == WSLAY_TEXT_FRAME)
    lg_on_text(c, (const char *)arg->msg, arg->msg_length);
  else if (arg->opcode == WSLAY_BINARY_FRAME)
    lg_stats_error(&c->w->stats, LG_ERR_REPLY, "binary frame");
}

static const struct wslay_event_callbacks lg_ws_callbacks = {
  lg_ws_recv_cb, lg_ws_send_cb, lg_ws_genmask_cb, NULL, NULL, NULL, lg_ws_msg_cb,
};

/* Hands wslay whole frames (it then never holds part of one between reads); 0, or -1 when the
 * connection failed. */
static int lg_conn_feed_wslay(lg_conn *c, const uint8_t *data, size_t len) {
  c->in = data;
  c->in_len = len;
  int rc = wslay_event_recv(c->ws);
  c->in_len = 0;
  if (rc != 0) {
    lg_conn_fail(c, LG_ERR_PROTOCOL, "wslay_event_recv failed");
    return -1;
  }
  return 0;
}

/* Server frames: a whole text message in one uncompressed frame (what every reply and tick is)
 * is read here, every other frame goes to wslay whole. The load generator has to be faster than
 * the servers it measures; wslay's copy and allocation per message were a fifth of its time. */
static void lg_conn_feed(lg_conn *c, const char *data, size_t len) {
  const uint8_t *p = (const uint8_t *)data;
  size_t n = len;
  if (c->rx.len > 0) { /* a frame began in the last read */
    if (lg_buf_append(&c->rx, data, len) != 0) {
      lg_conn_fail(c, LG_ERR_PROTOCOL, "out of memory");
      return;
    }
    p = (const uint8_t *)c->rx.data;
    n = c->rx.len;
  }
  size_t off = 0;
  while (off < n && c->state == LG_OPEN) {
    const uint8_t *f = p + off;
    size_t left = n - off, hl = 2;
    if (left < 2)
      break;
    uint64_t pl = f[1] & 0x7f;
    if (f[1] & 0x80) { /* a masked server frame: wslay fails the connection */
      lg_conn_feed_wslay(c, f, left);
      return;
    }
    if (pl == 126) {
      if (left < 4)
        break;
      pl = (uint64_t)f[2] << 8 | f[3];
      hl = 4;
    } else if (pl == 127) {
      if (left < 10)
        break;
      pl = 0;
      for (int i = 2; i < 10; i++)
        pl = pl << 8 | f[i];
      hl = 10;
    }
    if (pl > LG_MAX_MSG * 2 || left - hl < pl)
      break;
    if (f[0] == 0x81) /* FIN, no RSV bits, text */
      lg_on_text(c, (const char *)f + hl, (size_t)pl);
    else if (lg_conn_feed_wslay(c, f, hl + (size_t)pl) != 0)
      return;
    off += hl + (size_t)pl;
  }
  if (c->state != LG_OPEN)
    return;
  if (off < n) { /* keep the start of the next frame */
    if (p == (const uint8_t *)c->rx.data) {
      memmove(c->rx.data, c->rx.data + off, n - off);
      c->rx.len = n - off;
    } else if (lg_buf_append(&c->rx, p + off, n - off) != 0) {
      lg_conn_fail(c, LG_ERR_PROTOCOL, "out of memory");
      return;
    }
  } else {
    c->rx.len = 0;
  }
  lg_conn_pump(c);
}

/* Checks the 101 head; returns NULL when it is good, else a static reason. */
static const char *lg_check_upgrade(lg_conn *c, const char *head, size_t len) {
  static const char *const bad_status = "no 101 Switching Protocols";
  static const char *const bad_accept = "wrong or missing Sec-WebSocket-Accept";
  if (len < 12 || memcmp(head, "HTTP/1.1 101", 12) != 0)
    return bad_status;
  char src[64];
  unsigned char digest[EVP_MAX_MD_SIZE], want[64];
  unsigned int dlen = 0;
  int slen = snprintf(src, sizeof src, "%s%s", c->key, LG_WS_GUID);
  if (!EVP_Digest(src, (size_t)slen, digest, &dlen, EVP_sha1(), NULL))
    return bad_accept;
  int wlen = EVP_EncodeBlock(want, digest, (int)dlen);
  const char *p = head, *end = head + len;
  while (p < end) {
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (eol == NULL)
      break;
    static const char name[] = "sec-websocket-accept:";
    if ((size_t)(eol - p) > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
      const char *v = p + sizeof name - 1;
      while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
      const char *ve = eol;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      if (ve - v == wlen && memcmp(v, want, (size_t)wlen) == 0)
        return NULL;
      return bad_accept;
    }
    p = eol + 2;
  }
  return bad_accept;
}

/* Sets c->deflate (and deflate_reset) from the response's Sec-WebSocket-Extensions. */
static void lg_scan_extensions(lg_conn *c, const char *head, size_t len) {
  static const char name[] = "sec-websocket-extensions:";
  const char *p = head, *end = head + len;
  while (p < end) {
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (eol == NULL)
      break;
    if ((size_t)(eol - p) > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0 &&
        memmem(p, (size_t)(eol - p), "permessage-deflate", 18) != NULL) {
      c->deflate = 1;
      c->deflate_reset = memmem(p, (size_t)(eol - p), "server_no_context_takeover", 26) != NULL;
    }
    p = eol + 2;
  }
}

static void lg_conn_upgraded(lg_conn *c, size_t head_len) {
  lg_worker *w = c->w;
  if (wslay_event_context_client_init(&c->ws, &lg_ws_callbacks, c) != 0) {
    lg_conn_fail(c, LG_ERR_PROTOCOL, "wslay_event_context_client_init failed");
    return;
  }
  wslay_event_config_set_max_recv_msg_length(c->ws, LG_MAX_MSG);
  lg_scan_extensions(c, c->head.data, head_len);
  if (c->deflate) {
    c->zin = calloc(1, sizeof *c->zin);
    if (c->zin == NULL || inflateInit2(c->zin, -15) != Z_OK) {
      free(c->zin);
      c->zin = NULL;
      lg_conn_fail(c, LG_ERR_PROTOCOL, "out of memory");
      return;
    }
    wslay_event_config_set_allowed_rsv_bits(c->ws, WSLAY_RSV1_BIT);
    w->stats.deflated++;
  }
  if (w->cfg->scenario == LG_ECHO) {
    c->ring = calloc((size_t)w->cfg->depth, sizeof *c->ring);
    if (c->ring == NULL) {
      lg_conn_fail(c, LG_ERR_PROTOCOL, "out of memory");
      return;
    }
  }
  c->state = LG_OPEN;
  w->open++;
  w->pending--;
  w->stats.opened++;
  c->sender = w->cfg->scenario == LG_BROADCAST && c->index < w->cfg->senders;
  lg_buf head = c->head; /* bytes after the head already belong to the WebSocket stream */
  c->head = (lg_buf){0};
  if (head.len > head_len)
    lg_conn_feed(c, head.data + head_len, head.len - head_len);
  lg_buf_free(&head);
  lg_worker_connect_next(w);
  lg_worker_check_connected(w);
}

static void lg_conn_on_head_bytes(lg_conn *c, const char *data, size_t len) {
  size_t old = c->head.len;
  if (old + len > LG_MAX_HEAD + LG_READ_BUF || lg_buf_append(&c->head, data, len) != 0) {
    lg_conn_fail(c, LG_ERR_HANDSHAKE, "response head too large");
    return;
  }
  size_t from = old > 3 ? old - 3 : 0;
  const char *end = memmem(c->head.data + from, c->head.len - from, "\r\n\r\n", 4);
  if (end == NULL) {
    if (c->head.len > LG_MAX_HEAD)
      lg_conn_fail(c, LG_ERR_HANDSHAKE, "response head too large");
    return;
  }
  size_t head_len = (size_t)(end - c->head.data) + 4;
  const char *why = lg_check_upgrade(c, c->head.data, head_len);
  if (why != NULL) {
    char msg[160];
    const char *eol = memmem(c->head.data, head_len, "\r\n", 2);
    snprintf(msg, sizeof msg, "%s (%.*s)", why, (int)(eol - c->head.data > 80 ? 80 : eol - c->head.data),
             c->head.data);
    lg_conn_fail(c, LG_ERR_HANDSHAKE, msg);
    return;
  }
  lg_conn_upgraded(c, head_len);
}

static void lg_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  lg_conn *c = h->data;
  /* One buffer per worker: every read is consumed (copied by wslay) before the next alloc. */
  *buf = uv_buf_init(c->w->read_buf, sizeof c->w->read_buf);
}

static void lg_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  lg_conn *c = s->data;
  if (nread == 0)
    return;
  if (nread < 0) {
    if (c->state == LG_OPEN && c->w->phase >= LG_PH_CLOSE) {
      lg_conn_close(c);
      return;
    }
    enum lg_err kind = c->state == LG_HANDSHAKE ? LG_ERR_HANDSHAKE : LG_ERR_CLOSED;
    lg_conn_fail(c, kind, nread == UV_EOF ? "connection closed by server" : uv_strerror((int)nread));
    return;
  }
  if (c->state == LG_HANDSHAKE) {
    lg_conn_on_head_bytes(c, buf->base, (size_t)nread);
  } else if (c->state == LG_OPEN) {
    uint64_t now = lg_now();
    if (now >= c->w->measure_start && now < c->w->measure_end)
      c->w->stats.rx_bytes += (uint64_t)nread;
    lg_conn_feed(c, buf->base, (size_t)nread);
  }
}

/* Senders go to --sender-url when it was given; everything else to --url. */
static const lg_target *lg_conn_target(const lg_conn *c) {
  const lg_config *cfg = c->w->cfg;
  return cfg->split && c->index < cfg->senders ? &cfg->sender : &cfg->target;
}

static void lg_connect_cb(uv_connect_t *req, int status) {
  lg_conn *c = req->data;
  if (c->state != LG_CONNECTING)
    return;
  if (status < 0) {
    lg_conn_fail(c, LG_ERR_CONNECT, uv_strerror(status));
    return;
  }
  c->state = LG_HANDSHAKE;
  uv_tcp_nodelay(&c->tcp, 1);
  int rc = uv_read_start((uv_stream_t *)&c->tcp, lg_alloc_cb, lg_read_cb);
  if (rc < 0) {
    lg_conn_fail(c, LG_ERR_CONNECT, uv_strerror(rc));
    return;
  }
  unsigned char raw[16];
  uv_random(NULL, NULL, raw, sizeof raw, 0, NULL);
  EVP_EncodeBlock((unsigned char *)c->key, raw, sizeof raw);
  char req_text[1600];
  int len = snprintf(req_text, sizeof req_text,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s"
                     "User-Agent: mw_loadgen\r\n\r\n",
                     lg_conn_target(c)->path, lg_conn_target(c)->host_header, c->key,
                     c->w->cfg->deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                                        : "");
  if (len <= 0 || (size_t)len >= sizeof req_text ||
      lg_buf_append(&c->out, req_text, (size_t)len) != 0) {
    lg_conn_fail(c, LG_ERR_HANDSHAKE, "request too long");
    return;
  }
  /* lg_conn_flush refuses only closing states, so the request goes out while upgrading. */
  lg_conn_flush(c);
}

static void lg_conn_start(lg_conn *c) {
  lg_worker *w = c->w;
  const lg_config *cfg = w->cfg;
  const lg_target *tgt = lg_conn_target(c);
  c->state = LG_CONNECTING;
  w->pending++;
  int rc = uv_tcp_init_ex(&w->loop, &c->tcp, AF_INET);
  if (rc < 0) {
    c->state = LG_CLOSED; /* no handle was created, so there is nothing to close */
    w->closed++;
    w->pending--;
    lg_stats_error(&w->stats, LG_ERR_CONNECT, uv_strerror(rc));
    return;
  }
  c->tcp.data = c;
  if (tgt->loopback && cfg->sources > 0) {
    uv_os_fd_t fd;
    int one = 1;
    /* Let connect() pick the port per 4-tuple, so each source address has its own range. */
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
      (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {0};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000000u + (uint32_t)cfg->first_source + (uint32_t)(c->index % cfg->sources));
    rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&src, 0);
    if (rc < 0) {
      lg_conn_fail(c, LG_ERR_CONNECT, uv_strerror(rc));
      return;
    }
  }
  c->connect_req.data = c;
  rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&tgt->dst, lg_connect_cb);
  if (rc < 0)
    lg_conn_fail(c, LG_ERR_CONNECT, uv_strerror(rc));
}

/* ---------------------------------------------------------------------------------------- */
/* worker: connect phase, start signal, run, drain, close */

static void lg_worker_enter_close(lg_worker *w);

static void lg_worker_connect_next(lg_worker *w) {
  /* A connect that fails synchronously calls back here: let the outer loop go on instead of
   * recursing once per connection. */
  if (w->connecting_loop)
    return;
  w->connecting_loop = 1;
  while (w->phase == LG_PH_CONNECT && w->pending < w->cfg->concurrency &&
         w->next_connect < w->count) {
    lg_conn *c = &w->conns[w->next_connect++];
    lg_conn_start(c);
  }
  w->connecting_loop = 0;
}

static void lg_timer_at(uv_timer_t *t, uint64_t at_ns, uv_timer_cb cb) {
  uv_update_time(t->loop); /* timers count from the cached loop time */
  uint64_t now = lg_now();
  uint64_t ms = at_ns > now ? (at_ns - now + 999999) / 1000000 : 0;
  uv_timer_start(t, cb, ms, 0);
}

static void lg_send_timer_cb(uv_timer_t *t) {
  lg_worker *w = t->data;
  uint64_t now = lg_now();
  if (!w->sending || now < w->t0)
    return;
  double per_sender = w->cfg->rate / w->cfg->senders;
  for (int i = 0; i < w->count; i++) {
    lg_conn *c = &w->conns[i];
    if (!c->sender)
      continue;
    if (c->state != LG_OPEN)
      continue;
    uint64_t due = (uint64_t)((double)(now - w->t0) / 1e9 * per_sender) + 1;
    if (c->bc_sent < due && wslay_event_get_queued_msg_length(c->ws) > LG_SENDER_QUEUE) {
      /* The server does not read as fast as we send: skip rather than queue without bound. */
      w->stats.skipped += due - c->bc_sent;
      c->bc_sent = due;
    }
    for (int burst = 0; c->bc_sent < due && burst < 1000; burst++)
      lg_broadcast_send(c, now);
    lg_conn_pump(c);
  }
}

/* --echo-rate: every millisecond, each connection sends what its share of the rate owes since
 * the start (open loop: a slow reply does not slow the sender), at most --depth in flight; a
 * request that would pass that is skipped and counted. */
static void lg_echo_rate_timer_cb(uv_timer_t *t) {
  lg_worker *w = t->data;
  uint64_t now = lg_now();
  if (!w->sending || now < w->t0)
    return;
  double per_conn = w->cfg->echo_rate / w->cfg->connections;
  for (int i = 0; i < w->count; i++) {
    lg_conn *c = &w->conns[i];
    if (c->state != LG_OPEN)
      continue;
    uint64_t due = (uint64_t)((double)(now - w->t0) / 1e9 * per_conn) + 1;
    for (; c->bc_sent < due; c->bc_sent++) {
      if (c->outstanding >= w->cfg->depth) {
        if (now >= w->measure_start && now < w->measure_end)
          w->stats.skipped += due - c->bc_sent;
        c->bc_sent = due;
        break;
      }
      lg_echo_send(c, now);
    }
    lg_conn_pump(c);
  }
}

static void lg_worker_done_timer_cb(uv_timer_t *t) {
  lg_worker *w = t->data;
  /* Close grace over: drop whatever did not finish its close handshake. */
  for (int i = 0; i < w->count; i++) {
    lg_conn *c = &w->conns[i];
    if (c->state != LG_CLOSED && c->state != LG_CLOSING && c->state != LG_IDLE)
      lg_conn_close(c);
  }
  lg_worker_check_closed(w);
}

static void lg_worker_drain_timer_cb(uv_timer_t *t) {
  lg_worker_enter_close(t->data);
}

static void lg_worker_end_timer_cb(uv_timer_t *t) {
  lg_worker *w = t->data;
  uint64_t now = lg_now();
  w->sending = 0;
  uv_timer_stop(&w->send_timer);
  w->stats.open_at_end = (uint64_t)w->open;
  if (w->cfg->split) { /* count receivers only */
    for (int i = 0; i < w->count; i++) {
      if (w->conns[i].sender && w->conns[i].state == LG_OPEN)
        w->stats.open_at_end--;
    }
  }
  w->stats.own_cpu_s = lg_own_cpu() - w->cpu_own0;
  if (w->index == 0) {
    double cpu = w->cpu_server0 >= 0 ? lg_server_cpu(w->cfg) : -1;
    w->stats.server_cpu_s = cpu >= 0 ? cpu - w->cpu_server0 : -1;
    lg_server_memory(w->cfg, &w->stats.rss_kib, &w->stats.hwm_kib, &w->stats.rss_procs);
  }
  if (w->cfg->scenario == LG_ECHO) {
    uint64_t limit = (uint64_t)(w->cfg->timeout * 1e9);
    for (int i = 0; i < w->count; i++) {
      lg_conn *c = &w->conns[i];
      if (c->state != LG_OPEN || c->outstanding == 0)
        continue;
      for (int k = 0; k < w->cfg->depth; k++) {
        if (c->ring[k].id != 0 && now - c->ring[k].sent_ns > limit) {
          lg_stats_error(&w->stats, LG_ERR_STALLED, "request unanswered past --timeout");
          break;
        }
      }
    }
    lg_worker_enter_close(w);
    return;
  }
  if (w->cfg->scenario == LG_IDLE_HOLD) {
    lg_worker_enter_close(w);
    return;
  }
  w->phase = LG_PH_DRAIN;
  lg_timer_at(&w->phase_timer, w->measure_end + (uint64_t)(w->cfg->drain * 1e9),
              lg_worker_drain_timer_cb);
}

static void lg_worker_window_timer_cb(uv_timer_t *t) {
  lg_worker *w = t->data;
  w->cpu_own0 = lg_own_cpu();
  w->cpu_server0 = w->index == 0 ? lg_server_cpu(w->cfg) : -1;
}

static void lg_worker_start(lg_worker *w, uint64_t t0) {
  const lg_config *cfg = w->cfg;
  if (w->open == 0) { /* nothing to measure */
    lg_worker_enter_close(w);
    return;
  }
  w->phase = LG_PH_RUN;
  w->t0 = t0;
  w->measure_start = t0 + (uint64_t)(cfg->warmup * 1e9);
  w->measure_end = w->measure_start + (uint64_t)(cfg->duration * 1e9);
  w->sending = 1;
  w->cpu_own0 = lg_own_cpu(); /* replaced when the window opens, if warm-up is not 0 */
  w->cpu_server0 = w->index == 0 ? lg_server_cpu(cfg) : -1;
  if (w->measure_start > t0)
    lg_timer_at(&w->cpu_timer, w->measure_start, lg_worker_window_timer_cb);
  lg_timer_at(&w->phase_timer, w->measure_end, lg_worker_end_timer_cb);
  if (cfg->scenario == LG_BROADCAST || cfg->echo_rate > 0) {
    uv_timer_start(&w->send_timer, cfg->echo_rate > 0 ? lg_echo_rate_timer_cb : lg_send_timer_cb, 0, 1);
    return;
  }
  if (cfg->scenario == LG_IDLE_HOLD)
    return; /* hold the connections open, send nothing */
  uint64_t now = lg_now();
  for (int i = 0; i < w->count; i++) {
    lg_conn *c = &w->conns[i];
    if (c->state != LG_OPEN)
      continue;
    for (int k = 0; k < cfg->depth; k++)
      lg_echo_send(c, now);
    lg_conn_pump(c);
  }
}

static void lg_worker_start_timer_cb(uv_timer_t *t) {
  lg_worker *w = t->data;
  lg_worker_start(w, w->t0);
}

static void lg_ctrl_cb(uv_poll_t *p, int status, int events) {
  (void)events;
  lg_worker *w = p->data;
  uint64_t t0 = 0;
  ssize_t n = status < 0 ? -1 : read(w->ctrl_fd, &t0, sizeof t0);
  uv_poll_stop(p);
  if (n != (ssize_t)sizeof t0) {
    /* The coordinator is gone or gave up: close without a run. */
    lg_worker_enter_close(w);
    return;
  }
  w->t0 = t0; /* every worker starts on the coordinator's instant */
  lg_timer_at(&w->phase_timer, t0, lg_worker_start_timer_cb);
}

static void lg_worker_connect_timeout_cb(uv_timer_t *t) {
  lg_worker *w = t->data;
  for (int i = 0; i < w->count; i++) {
    lg_conn *c = &w->conns[i];
    if (c->state == LG_CONNECTING)
      lg_conn_fail(c, LG_ERR_CONNECT, "timed out (--connect-timeout)");
    else if (c->state == LG_HANDSHAKE)
      lg_conn_fail(c, LG_ERR_HANDSHAKE, "no upgrade response before --connect-timeout");
  }
  for (; w->next_connect < w->count; w->next_connect++) {
    w->conns[w->next_connect].state = LG_CLOSED;
    w->closed++;
    lg_stats_error(&w->stats, LG_ERR_CONNECT, "not attempted before --connect-timeout");
  }
  lg_worker_check_connected(w);
}

static void lg_worker_check_connected(lg_worker *w) {
  if (w->phase != LG_PH_CONNECT || w->pending > 0 || w->next_connect < w->count)
    return;
  uv_timer_stop(&w->phase_timer);
  w->phase = LG_PH_READY;
  w->stats.connect_ns = lg_now() - w->connect_start;
  if (w->ready_fd < 0) {
    lg_worker_start(w, lg_now());
    return;
  }
  char r = 'R';
  if (write(w->ready_fd, &r, 1) != 1 ||
      uv_poll_start(&w->ctrl_poll, UV_READABLE, lg_ctrl_cb) != 0)
    lg_worker_enter_close(w);
}

static void lg_close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static void lg_worker_check_closed(lg_worker *w) {
  if (w->phase != LG_PH_CLOSE || w->closed < w->count)
    return;
  w->phase = LG_PH_DONE;
  lg_close_handle((uv_handle_t *)&w->phase_timer);
  lg_close_handle((uv_handle_t *)&w->send_timer);
  lg_close_handle((uv_handle_t *)&w->cpu_timer);
  if (w->ctrl_fd >= 0)
    lg_close_handle((uv_handle_t *)&w->ctrl_poll);
}

static void lg_worker_enter_close(lg_worker *w) {
  if (w->phase >= LG_PH_CLOSE)
    return;
  w->phase = LG_PH_CLOSE;
  w->sending = 0;
  uv_timer_stop(&w->send_timer);
  if (w->ctrl_fd >= 0)
    uv_poll_stop(&w->ctrl_poll);
  if (w->cfg->scenario == LG_BROADCAST) {
    for (int i = 0; i < w->count; i++) {
      if (w->conns[i].state == LG_OPEN && w->conns[i].ticks == 0 &&
          !(w->cfg->split && w->conns[i].sender))
        w->stats.starved++;
    }
  }
  for (int i = 0; i < w->count; i++) {
    lg_conn *c = &w->conns[i];
    if (c->state == LG_OPEN) {
      if (wslay_event_queue_close(c->ws, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0) != 0)
        lg_conn_close(c);
      else
        lg_conn_pump(c);
    } else if (c->state == LG_CONNECTING || c->state == LG_HANDSHAKE) {
      lg_conn_close(c);
    } else if (c->state == LG_IDLE) {
      c->state = LG_CLOSED;
      w->closed++;
    }
  }
  uv_timer_start(&w->phase_timer, lg_worker_done_timer_cb, 2000, 0);
  lg_worker_check_closed(w);
}

/* About `bytes` of JSON records, the same in every process and run (a fixed seed), as an app
 * would publish them: [{"id":1,"sym":"KQZ","px":123.45,"qty":17,"side":"buy",...},...]. "" for 0. */
static char *lg_make_rows(int bytes) {
  static const char *const sides[] = {"buy", "sell"};
  static const char *const venues[] = {"XNAS", "XNYS", "BATS", "ARCX", "EDGX"};
  char *out = malloc((size_t)bytes + 256);
  if (out == NULL || bytes == 0) {
    if (out != NULL)
      out[0] = '\0';
    return out;
  }
  uint64_t x = 0x2545F4914F6CDD1Dull;
  size_t n = 0;
  out[n++] = '[';
  for (int id = 1; n < (size_t)bytes - 2; id++) {
    char row[200];
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int len = snprintf(row, sizeof row,
                       "%s{\"id\":%d,\"sym\":\"%c%c%c\",\"px\":%u.%02u,\"qty\":%u,\"side\":\"%s\","
                       "\"venue\":\"%s\",\"ts\":17000000%05u}",
                       id > 1 ? "," : "", id, 'A' + (int)(x % 26), 'A' + (int)(x >> 8) % 26,
                       'A' + (int)(x >> 16) % 26, (unsigned)(x >> 20) % 1000, (unsigned)(x >> 32) % 100,
                       (unsigned)(x >> 40) % 500 + 1, sides[(x >> 50) & 1], venues[(x >> 52) % 5],
                       (unsigned)(x >> 3) % 100000);
    if (n + (size_t)len + 2 > (size_t)bytes + 200)
      break;
    memcpy(out + n, row, (size_t)len);
    n += (size_t)len;
  }
  out[n++] = ']';
  out[n] = '\0';
  return out;
}

/* Runs one worker's share of connections to completion; fills w->stats. 0 or -1. */
static int lg_worker_run(lg_worker *w) {
  const lg_config *cfg = w->cfg;
  if (uv_loop_init(&w->loop) != 0)
    return -1;
  w->conns = calloc((size_t)w->count, sizeof *w->conns);
  w->scratch_len = (size_t)cfg->payload + (size_t)cfg->rows + 512;
  w->scratch = malloc(w->scratch_len);
  w->payload = malloc((size_t)cfg->payload + 1);
  w->rows = lg_make_rows(cfg->rows);
  if (w->conns == NULL || w->scratch == NULL || w->payload == NULL || w->rows == NULL)
    return -1;
  memset(w->payload, 'x', (size_t)cfg->payload);
  w->payload[cfg->payload] = '\0';
  w->rng = 0x9E3779B97F4A7C15ull ^ (lg_now() + (uint64_t)w->index * 7919);
  w->stats.rss_kib = w->stats.hwm_kib = -1;
  w->stats.server_cpu_s = -1;
  for (int i = 0; i < w->count; i++) {
    w->conns[i].w = w;
    w->conns[i].index = w->first + i;
  }
  uv_timer_init(&w->loop, &w->phase_timer);
  uv_timer_init(&w->loop, &w->send_timer);
  uv_timer_init(&w->loop, &w->cpu_timer);
  w->phase_timer.data = w->send_timer.data = w->cpu_timer.data = w;
  if (w->ctrl_fd >= 0) {
    if (uv_poll_init(&w->loop, &w->ctrl_poll, w->ctrl_fd) != 0)
      return -1;
    w->ctrl_poll.data = w;
  }
  w->phase = LG_PH_CONNECT;
  w->connect_start = lg_now();
  uv_timer_start(&w->phase_timer, lg_worker_connect_timeout_cb,
                 (uint64_t)(cfg->connect_timeout * 1000), 0);
  lg_worker_connect_next(w);
  lg_worker_check_connected(w);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
  free(w->conns);
  free(w->scratch);
  free(w->payload);
  free(w->rows);
  free(w->inflated);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* processes: fork workers when one process cannot hold every descriptor */

static int lg_write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

typedef struct {
  pid_t pid;
  int up_fd, down_fd; /* up: worker -> parent ('R' then lg_stats); down: parent -> worker */
  int ready;
  size_t got;
  int done;
} lg_child;

static int lg_poll_children(lg_child *ch, int n, lg_stats *results, int want_ready,
                            uint64_t deadline) {
  for (;;) {
    struct pollfd pfd[256];
    int idx[256], m = 0;
    for (int i = 0; i < n; i++) {
      int waiting = want_ready ? !ch[i].ready && !ch[i].done : !ch[i].done;
      if (waiting && ch[i].up_fd >= 0) {
        pfd[m] = (struct pollfd){.fd = ch[i].up_fd, .events = POLLIN};
        idx[m++] = i;
      }
    }
    if (m == 0)
      return 0;
    uint64_t now = lg_now();
    if (now >= deadline)
      return -1;
    int r = poll(pfd, (nfds_t)m, (int)((deadline - now) / 1000000 + 1));
    if (r < 0 && errno != EINTR)
      return -1;
    for (int k = 0; k < m && r > 0; k++) {
      if (pfd[k].revents == 0)
        continue;
      lg_child *c = &ch[idx[k]];
      ssize_t got;
      if (want_ready) {
        char byte;
        got = read(c->up_fd, &byte, 1);
        if (got == 1)
          c->ready = 1;
      } else {
        got = read(c->up_fd, (char *)&results[idx[k]] + c->got, sizeof(lg_stats) - c->got);
        if (got > 0) {
          c->got += (size_t)got;
          c->done = c->got == sizeof(lg_stats);
        }
      }
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
        c->done = 1; /* the worker died: its share is lost, reported below */
        c->got = 0;
      }
    }
  }
}

static void lg_alarm_handler(int sig) {
  (void)sig;
  static const char msg[] = "mw_loadgen: overall time limit exceeded, aborting\n";
  ssize_t ignored = write(2, msg, sizeof msg - 1);
  (void)ignored;
  _exit(3);
}

static int lg_run_processes(const lg_config *cfg, lg_stats *total) {
  int procs = cfg->procs;
  lg_child ch[256];
  lg_stats *results = calloc((size_t)procs, sizeof *results);
  if (results == NULL)
    return -1;
  fflush(NULL);
  for (int i = 0; i < procs; i++) {
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0)
      lg_die("pipe: %s", strerror(errno));
    int first = (int)((int64_t)cfg->connections * i / procs);
    int last = (int)((int64_t)cfg->connections * (i + 1) / procs);
    pid_t pid = fork();
    if (pid < 0)
      lg_die("fork: %s", strerror(errno));
    if (pid == 0) {
      alarm((unsigned)(cfg->connect_timeout + cfg->warmup + cfg->duration + cfg->drain +
                       cfg->timeout + 60)); /* a pending alarm is not inherited */
      for (int k = 0; k < i; k++) {
        close(ch[k].up_fd);
        close(ch[k].down_fd);
      }
      close(up[0]);
      close(down[1]);
      lg_worker *w = calloc(1, sizeof *w);
      if (w == NULL)
        _exit(1);
      w->cfg = cfg;
      w->index = i;
      w->first = first;
      w->count = last - first;
      w->ctrl_fd = down[0];
      w->ready_fd = up[1];
      if (lg_worker_run(w) != 0)
        _exit(1);
      _exit(lg_write_all(up[1], &w->stats, sizeof w->stats) == 0 ? 0 : 1);
    }
    close(up[1]);
    close(down[0]);
    ch[i] = (lg_child){.pid = pid, .up_fd = up[0], .down_fd = down[1]};
  }
  uint64_t deadline = lg_now() + (uint64_t)((cfg->connect_timeout + 5) * 1e9);
  if (lg_poll_children(ch, procs, results, 1, deadline) != 0)
    fprintf(stderr, "mw_loadgen: some workers did not finish connecting in time\n");
  uint64_t t0 = lg_now() + 50000000; /* 50 ms so every worker starts on the same instant */
  for (int i = 0; i < procs; i++) {
    if (ch[i].ready)
      (void)lg_write_all(ch[i].down_fd, &t0, sizeof t0);
    close(ch[i].down_fd); /* a worker that is not ready reads EOF and closes down */
  }
  deadline = lg_now() +
             (uint64_t)((cfg->warmup + cfg->duration + cfg->drain + cfg->timeout + 10) * 1e9);
  if (lg_poll_children(ch, procs, results, 0, deadline) != 0)
    fprintf(stderr, "mw_loadgen: some workers did not report in time\n");
  memset(total, 0, sizeof *total);
  total->rss_kib = total->hwm_kib = -1;
  total->server_cpu_s = -1;
  int lost = 0;
  for (int i = 0; i < procs; i++) {
    if (ch[i].got == sizeof(lg_stats))
      lg_stats_merge(total, &results[i]);
    else
      lost++;
    close(ch[i].up_fd);
    int st;
    if (ch[i].got != sizeof(lg_stats))
      kill(ch[i].pid, SIGKILL); /* only our own worker, by pid */
    waitpid(ch[i].pid, &st, 0);
  }
  free(results);
  if (lost > 0) {
    char msg[64];
    snprintf(msg, sizeof msg, "%d worker process(es) lost", lost);
    lg_stats_error(total, LG_ERR_PROTOCOL, msg);
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* reporting */

static void lg_json_escape(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

static void lg_report(const lg_config *cfg, const lg_stats *s, int64_t rss_base) {
  uint64_t errors = 0;
  for (int i = 0; i < LG_ERR_COUNT; i++)
    errors += s->errors[i];
  double rate = (double)s->received / cfg->duration;
  double p50 = lg_stats_quantile_ms(s, 0.50), p90 = lg_stats_quantile_ms(s, 0.90);
  double p99 = lg_stats_quantile_ms(s, 0.99), p999 = lg_stats_quantile_ms(s, 0.999);
  double max = (double)s->lat_max_ns / 1e6;
  double mean = s->lat_count ? (double)s->lat_sum_ns / (double)s->lat_count / 1e6 : 0;
  uint64_t conns = s->open_at_end;
  double expected = (double)s->sent * (double)conns;
  double completeness = cfg->scenario == LG_BROADCAST && expected > 0 ? (double)s->received / expected : 1;
  double per_conn = s->rss_kib >= 0 && conns > 0 ? (double)s->rss_kib / (double)conns : -1;
  double added = s->rss_kib >= 0 && rss_base >= 0 && conns > 0
                     ? (double)(s->rss_kib - rss_base) / (double)conns
                     : -1;
  const char *scen = cfg->scenario == LG_ECHO ? "echo" : cfg->scenario == LG_IDLE_HOLD ? "idle" : "broadcast";
  double own_cpu_pct = s->own_cpu_s / cfg->duration * 100;
  double server_cpu_pct = s->server_cpu_s >= 0 ? s->server_cpu_s / cfg->duration * 100 : -1;

  printf("mw_loadgen %s%s%s  %s  %s\n", cfg->label[0] ? "[" : "", cfg->label,
         cfg->label[0] ? "]" : "", scen, cfg->target.url);
  if (cfg->split)
    printf("  senders       %d connection%s to %s (not counted as receivers)\n", cfg->senders,
           cfg->senders == 1 ? "" : "s", cfg->sender.url);
  int any_loopback = cfg->target.loopback || (cfg->split && cfg->sender.loopback);
  printf("  connections   %" PRIu64 " %sopen / %d requested (connected in %.2f s, %d process%s, %d source address%s)\n",
         conns, cfg->split ? "receivers " : "", cfg->requested, (double)s->connect_ns / 1e9,
         cfg->procs, cfg->procs == 1 ? "" : "es", any_loopback ? cfg->sources : 0,
         any_loopback && cfg->sources == 1 ? "" : "es");
  printf("  duration      %.2f s after %.2f s warm-up, payload %d B", cfg->duration, cfg->warmup,
         cfg->payload);
  if (cfg->scenario == LG_ECHO && cfg->echo_rate > 0)
    printf(", %.0f requests/s on a clock, at most %d in flight per connection\n", cfg->echo_rate, cfg->depth);
  else if (cfg->scenario == LG_ECHO)
    printf(", pipeline depth %d\n", cfg->depth);
  else if (cfg->scenario == LG_IDLE_HOLD)
    printf(", idle: nothing sent\n");
  else
    printf(", %.1f broadcasts/s from %d sender%s\n", cfg->rate, cfg->senders,
           cfg->senders == 1 ? "" : "s");
  if (cfg->scenario == LG_ECHO)
    printf("  messages      %" PRIu64 " replies, %.0f msg/s (%" PRIu64 " requests sent, %" PRIu64
           " skipped: --depth in flight)\n", s->received, rate, s->sent, s->skipped);
  else
    printf("  messages      %" PRIu64 " deliveries, %.0f msg/s (%" PRIu64
           " broadcasts sent, %.2f %% delivered, %" PRIu64 " receivers got none, %" PRIu64
           " sends skipped)\n",
           s->received, rate, s->sent, completeness * 100, s->starved, s->skipped);
  printf("  latency ms    p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f  (%" PRIu64
         " samples)\n",
         p50, p90, p99, p999, max, mean, s->lat_count);
  double wire = s->received ? (double)s->rx_bytes / (double)s->received : 0;
  printf("  wire          %.1f bytes read per %s (%" PRIu64 " B in the window)%s", wire,
         cfg->scenario == LG_ECHO ? "reply" : "delivery", s->rx_bytes, cfg->deflate ? "" : "\n");
  if (cfg->deflate)
    printf("; permessage-deflate on %" PRIu64 " of %" PRIu64 " connections\n", s->deflated, s->opened);
  if (cfg->by_worker) {
    for (int k = 0; k < 2; k++) {
      const lg_lat *l = &s->wlat[k];
      printf("  %s p50 %.3f  p99 %.3f  max %.3f  mean %.3f  (%" PRIu64 " samples)\n",
             k == 0 ? "same worker   " : "other worker  ", lg_lat_quantile_ms(l, 0.50),
             lg_lat_quantile_ms(l, 0.99), (double)l->max_ns / 1e6,
             l->count ? (double)l->sum_ns / (double)l->count / 1e6 : 0, l->count);
    }
    if (s->wunknown)
      printf("  by worker     %" PRIu64 " deliveries with an unknown worker (no hello, or no data.w)\n",
             s->wunknown);
  }
  printf("  errors        %" PRIu64, errors);
  for (int i = 0; i < LG_ERR_COUNT; i++) {
    if (s->errors[i])
      printf(" %s=%" PRIu64, lg_err_names[i], s->errors[i]);
  }
  if (s->first_error[0])
    printf("  first: %s", s->first_error);
  printf("\n");
  if (cfg->n_server_pids > 0) {
    if (s->rss_kib >= 0)
      printf("  server RSS    %" PRId64 " KiB over %d process%s (peak %" PRId64 " KiB, before connecting %" PRId64
             " KiB); %.1f KiB per connection, %.1f KiB added per connection\n",
             s->rss_kib, s->rss_procs, s->rss_procs == 1 ? "" : "es", s->hwm_kib, rss_base,
             per_conn, added);
    else
      printf("  server RSS    unavailable (no readable /proc/PID/status)\n");
  }
  printf("  CPU           mw_loadgen %.0f %%", own_cpu_pct);
  if (server_cpu_pct >= 0)
    printf(", server %.0f %%", server_cpu_pct);
  printf(" of one core (user + system in the window)\n");
  if (!cfg->json)
    return;
  printf("{\"label\":");
  lg_json_escape(stdout, cfg->label);
  printf(",\"scenario\":\"%s\",\"url\":", scen);
  lg_json_escape(stdout, cfg->target.url);
  if (cfg->split) {
    printf(",\"sender_url\":");
    lg_json_escape(stdout, cfg->sender.url);
  }
  if (cfg->by_worker) {
    static const char *const names[2] = {"same", "other"};
    for (int k = 0; k < 2; k++) {
      const lg_lat *l = &s->wlat[k];
      printf(",\"%s_worker_samples\":%" PRIu64 ",\"%s_worker_p50_ms\":%.6f,\"%s_worker_p99_ms\":%.6f"
             ",\"%s_worker_max_ms\":%.6f,\"%s_worker_mean_ms\":%.6f",
             names[k], l->count, names[k], lg_lat_quantile_ms(l, 0.50), names[k],
             lg_lat_quantile_ms(l, 0.99), names[k], (double)l->max_ns / 1e6, names[k],
             l->count ? (double)l->sum_ns / (double)l->count / 1e6 : 0);
    }
    printf(",\"unknown_worker\":%" PRIu64, s->wunknown);
  }
  printf(",\"connections_requested\":%d,\"connections\":%" PRIu64 ",\"connect_s\":%.3f"
         ",\"duration_s\":%.3f,\"warmup_s\":%.3f,\"payload\":%d,\"depth\":%d,\"rate\":%.3f"
         ",\"senders\":%d,\"processes\":%d,\"sent\":%" PRIu64 ",\"messages\":%" PRIu64
         ",\"msgs_per_s\":%.1f,\"delivered_ratio\":%.5f,\"starved\":%" PRIu64 ",\"skipped\":%" PRIu64
         ",\"p50_ms\":%.6f,\"p90_ms\":%.6f,\"p99_ms\":%.6f,\"p999_ms\":%.6f,\"max_ms\":%.6f"
         ",\"mean_ms\":%.6f,\"samples\":%" PRIu64 ",\"errors\":%" PRIu64,
         cfg->requested, conns, (double)s->connect_ns / 1e9, cfg->duration, cfg->warmup,
         cfg->payload, cfg->depth, cfg->rate, cfg->senders, cfg->procs, s->sent, s->received, rate,
         completeness, s->starved, s->skipped, p50, p90, p99, p999, max, mean, s->lat_count, errors);
  for (int i = 0; i < LG_ERR_COUNT; i++)
    printf(",\"err_%s\":%" PRIu64, lg_err_names[i], s->errors[i]);
  printf(",\"first_error\":");
  lg_json_escape(stdout, s->first_error);
  if (s->rss_kib >= 0)
    printf(",\"rss_kib\":%" PRId64 ",\"rss_hwm_kib\":%" PRId64 ",\"rss_base_kib\":%" PRId64
           ",\"rss_per_conn_kib\":%.3f,\"rss_added_per_conn_kib\":%.3f,\"server_processes\":%d",
           s->rss_kib, s->hwm_kib, rss_base, per_conn, added, s->rss_procs);
  else
    printf(",\"rss_kib\":null,\"rss_per_conn_kib\":null,\"rss_added_per_conn_kib\":null");
  printf(",\"rx_bytes\":%" PRIu64 ",\"wire_bytes_per_msg\":%.1f,\"deflated_connections\":%" PRIu64
         ",\"rows_bytes\":%d", s->rx_bytes, wire, s->deflated, cfg->rows);
  printf(",\"loadgen_cpu_pct\":%.1f", own_cpu_pct);
  if (server_cpu_pct >= 0)
    printf(",\"server_cpu_pct\":%.1f", server_cpu_pct);
  else
    printf(",\"server_cpu_pct\":null");
  printf("}\n");
}

/* ---------------------------------------------------------------------------------------- */
/* command line */

static void lg_usage(FILE *f) {
  fputs(
    "usage: mw_loadgen [options]\n"
    "WebSocket load generator for the moonwire bench protocol (tests/bench/app).\n"
    "\n"
    "  --url URL            ws://HOST:PORT/PATH (default ws://127.0.0.1:8080/ws)\n"
    "  -c, --connections N  connections to open (default 1000)\n"
    "  -d, --duration S     measured seconds (default 10)\n"
    "  --warmup S           traffic before measuring starts (default 2)\n"
    "  --scenario NAME      echo | broadcast | idle (default echo; idle: connect, send\n"
    "                       nothing for the window, then sample the server's RSS)\n"
    "  --payload BYTES      'x' characters in data.p (default 32; 0 leaves p out of broadcasts)\n"
    "  --depth N            echo: requests in flight per connection (default 1)\n"
    "  --rate R             broadcast: messages per second over all senders (default 50)\n"
    "  --echo-rate R        echo: send R requests per second over all connections on a clock\n"
    "                       instead of one per reply (latency at a given load: p99 at half of\n"
    "                       the peak); at most --depth in flight per connection, the rest is\n"
    "                       skipped and counted\n"
    "  --senders N          broadcast: sender connections, the first N (default 1)\n"
    "  --sender-url URL     broadcast: the senders connect to URL, as N extra connections that\n"
    "                       are not receivers (their own ticks are not measured); -c receivers\n"
    "                       connect to --url. Cross-host delivery: --url on host B, this on A\n"
    "  --by-worker          broadcast: also split delivery latency into receivers on the\n"
    "                       sender's server worker and on another worker; needs an app whose\n"
    "                       onConnect sends {\"type\":\"bench\",\"action\":\"hello\",\"data\":\n"
    "                       {\"worker\":ID}} and whose ticks carry data.w = the sender's worker\n"
    "                       (tests/bench/worker_app)\n"
    "  --rows BYTES         broadcast: data.rows, an array of about BYTES of JSON records with\n"
    "                       varied values (compressible as real JSON is; default 0: none)\n"
    "  --deflate            offer permessage-deflate (RFC 7692) and inflate compressed messages;\n"
    "                       the report says how many connections negotiated it\n"
    "  --sources K          spread connections over 127.0.0.1..127.0.0.K (loopback only;\n"
    "                       default 1 per 25000 connections)\n"
    "  --first-source N     the first source address is 127.0.0.N (default 1; 2 keeps the\n"
    "                       ports of 127.0.0.1 free for others)\n"
    "  --procs N            worker processes (default: as many as the open-file limit needs)\n"
    "  --concurrency N      upgrades in progress at once while connecting (default 256)\n"
    "  --connect-timeout S  give up connecting after S seconds (default 60)\n"
    "  --drain S            broadcast: wait S seconds for late deliveries (default 1)\n"
    "  --timeout S          echo: a request older than S at the end counts as stalled (default 5)\n"
    "  --server-pid PID     sample VmRSS of PID and its descendants (repeatable)\n"
    "  --label TEXT         name printed with the results\n"
    "  --json               also print the results as one JSON line\n"
    "  -h, --help           this text\n"
    "\n"
    "Echo replies are matched by requestId and must carry data.p back, in \"response\" (a\n"
    "controller's reply) or in \"data\" (a raw echo server sending the request itself back).\n"
    "Latency: echo is request -> reply round trip; broadcast is send -> delivery (same clock).\n"
    "CPU: user + system seconds in the measured window / its length, for mw_loadgen (all its\n"
    "processes) and the --server-pid processes with their descendants. A server well under\n"
    "100 % while mw_loadgen is near it: the figures measure the load generator, not the server.\n"
    "Broadcast delivered % = deliveries / (broadcasts sent x receivers open at the end).\n"
    "msg/s counts replies (echo) or deliveries to all receivers (broadcast) in the window.\n",
    f);
}

static double lg_parse_num(const char *flag, const char *v, double lo, double hi) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (errno != 0 || end == v || *end != '\0' || !(d >= lo && d <= hi))
    lg_die("%s: expected a number in [%g, %g], got '%s'", flag, lo, hi, v);
  return d;
}

static void lg_parse_url(lg_target *cfg, const char *url, const char *flag) {
  size_t url_len = strlen(url);
  if (url_len >= sizeof cfg->url)
    lg_die("%s too long", flag);
  memcpy(cfg->url, url, url_len + 1);
  if (strncmp(url, "ws://", 5) != 0)
    lg_die("%s must start with ws:// (TLS is the proxy's job)", flag);
  const char *h = url + 5;
  const char *slash = strchr(h, '/');
  size_t hostport_len = slash ? (size_t)(slash - h) : strlen(h);
  if (hostport_len == 0 || hostport_len >= 256)
    lg_die("%s has no host", flag);
  char hostport[256], host[256], port[16] = "80";
  memcpy(hostport, h, hostport_len);
  hostport[hostport_len] = '\0';
  snprintf(cfg->host_header, sizeof cfg->host_header, "%s", hostport);
  snprintf(cfg->path, sizeof cfg->path, "%s", slash ? slash : "/");
  char *colon = strrchr(hostport, ':');
  if (colon != NULL) {
    *colon = '\0';
    snprintf(port, sizeof port, "%s", colon + 1);
  }
  snprintf(host, sizeof host, "%s", hostport);
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0 || res == NULL)
    lg_die("cannot resolve %s:%s: %s", host, port, gai_strerror(rc));
  memcpy(&cfg->dst, res->ai_addr, sizeof cfg->dst);
  freeaddrinfo(res);
  cfg->loopback = (ntohl(cfg->dst.sin_addr.s_addr) >> 24) == 127;
}

static void lg_parse_args(lg_config *cfg, int argc, char **argv) {
  enum {
    OPT_URL = 256, OPT_WARMUP, OPT_SCENARIO, OPT_PAYLOAD, OPT_DEPTH, OPT_RATE, OPT_SENDERS,
    OPT_SOURCES, OPT_PROCS, OPT_CONCURRENCY, OPT_CONNECT_TIMEOUT, OPT_DRAIN, OPT_TIMEOUT,
    OPT_SERVER_PID, OPT_LABEL, OPT_JSON, OPT_SENDER_URL, OPT_BY_WORKER, OPT_ECHO_RATE, OPT_FIRST_SOURCE,
    OPT_DEFLATE, OPT_ROWS
  };
  static const struct option longopts[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"connections", required_argument, NULL, 'c'},
    {"duration", required_argument, NULL, 'd'},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"payload", required_argument, NULL, OPT_PAYLOAD},
    {"depth", required_argument, NULL, OPT_DEPTH},
    {"rate", required_argument, NULL, OPT_RATE},
    {"echo-rate", required_argument, NULL, OPT_ECHO_RATE},
    {"senders", required_argument, NULL, OPT_SENDERS},
    {"sources", required_argument, NULL, OPT_SOURCES},
    {"first-source", required_argument, NULL, OPT_FIRST_SOURCE},
    {"procs", required_argument, NULL, OPT_PROCS},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"server-pid", required_argument, NULL, OPT_SERVER_PID},
    {"label", required_argument, NULL, OPT_LABEL},
    {"json", no_argument, NULL, OPT_JSON},
    {"sender-url", required_argument, NULL, OPT_SENDER_URL},
    {"by-worker", no_argument, NULL, OPT_BY_WORKER},
    {"deflate", no_argument, NULL, OPT_DEFLATE},
    {"rows", required_argument, NULL, OPT_ROWS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
  };
  const char *url = "ws://127.0.0.1:8080/ws";
  const char *sender_url = NULL;
  *cfg = (lg_config){
    .connections = 1000, .duration = 10, .warmup = 2, .drain = 1, .connect_timeout = 60,
    .timeout = 5, .scenario = LG_ECHO, .payload = 32, .depth = 1, .rate = 50, .senders = 1,
    .sources = 0, .first_source = 1, .procs = 0, .concurrency = 256,
  };
  int opt;
  while ((opt = getopt_long(argc, argv, "c:d:h", longopts, NULL)) != -1) {
    switch (opt) {
    case OPT_URL: url = optarg; break;
    case 'c': cfg->connections = (int)lg_parse_num("-c", optarg, 1, 1000000); break;
    case 'd': cfg->duration = lg_parse_num("-d", optarg, 0.1, 86400); break;
    case OPT_WARMUP: cfg->warmup = lg_parse_num("--warmup", optarg, 0, 3600); break;
    case OPT_SCENARIO:
      if (strcmp(optarg, "echo") == 0)
        cfg->scenario = LG_ECHO;
      else if (strcmp(optarg, "broadcast") == 0)
        cfg->scenario = LG_BROADCAST;
      else if (strcmp(optarg, "idle") == 0)
        cfg->scenario = LG_IDLE_HOLD;
      else
        lg_die("--scenario: echo, broadcast or idle, got '%s'", optarg);
      break;
    case OPT_PAYLOAD: cfg->payload = (int)lg_parse_num("--payload", optarg, 0, 1 << 20); break;
    case OPT_DEPTH: cfg->depth = (int)lg_parse_num("--depth", optarg, 1, 1024); break;
    case OPT_RATE: cfg->rate = lg_parse_num("--rate", optarg, 0.001, 1e6); break;
    case OPT_ECHO_RATE: cfg->echo_rate = lg_parse_num("--echo-rate", optarg, 1, 1e8); break;
    case OPT_SENDERS: cfg->senders = (int)lg_parse_num("--senders", optarg, 1, 1000); break;
    case OPT_SOURCES: cfg->sources = (int)lg_parse_num("--sources", optarg, 1, 254); break;
    case OPT_FIRST_SOURCE: cfg->first_source = (int)lg_parse_num("--first-source", optarg, 1, 254); break;
    case OPT_PROCS: cfg->procs = (int)lg_parse_num("--procs", optarg, 1, 256); break;
    case OPT_CONCURRENCY:
      cfg->concurrency = (int)lg_parse_num("--concurrency", optarg, 1, 100000);
      break;
    case OPT_CONNECT_TIMEOUT:
      cfg->connect_timeout = lg_parse_num("--connect-timeout", optarg, 0.1, 3600);
      break;
    case OPT_DRAIN: cfg->drain = lg_parse_num("--drain", optarg, 0, 600); break;
    case OPT_TIMEOUT: cfg->timeout = lg_parse_num("--timeout", optarg, 0.001, 3600); break;
    case OPT_SERVER_PID:
      if (cfg->n_server_pids == LG_MAX_PIDS)
        lg_die("--server-pid given more than %d times", LG_MAX_PIDS);
      cfg->server_pids[cfg->n_server_pids++] = (pid_t)lg_parse_num("--server-pid", optarg, 1, 4194304);
      break;
    case OPT_LABEL: snprintf(cfg->label, sizeof cfg->label, "%s", optarg); break;
    case OPT_JSON: cfg->json = 1; break;
    case OPT_SENDER_URL: sender_url = optarg; break;
    case OPT_BY_WORKER: cfg->by_worker = 1; break;
    case OPT_DEFLATE: cfg->deflate = 1; break;
    case OPT_ROWS: cfg->rows = (int)lg_parse_num("--rows", optarg, 0, 1 << 20); break;
    case 'h': lg_usage(stdout); exit(0);
    default: lg_usage(stderr); exit(2);
    }
  }
  if (optind < argc)
    lg_die("unexpected argument '%s' (see --help)", argv[optind]);
  lg_parse_url(&cfg->target, url, "--url");
  cfg->requested = cfg->connections;
  if (sender_url != NULL) {
    if (cfg->scenario != LG_BROADCAST)
      lg_die("--sender-url needs --scenario broadcast");
    lg_parse_url(&cfg->sender, sender_url, "--sender-url");
    cfg->split = 1;
    cfg->connections += cfg->senders; /* connections 0..senders-1 are the senders */
  }
  if (cfg->by_worker && cfg->scenario != LG_BROADCAST)
    lg_die("--by-worker needs --scenario broadcast");
  if (cfg->scenario == LG_BROADCAST && cfg->senders > cfg->connections)
    lg_die("--senders (%d) exceeds the connection count (%d)", cfg->senders, cfg->connections);
  if (cfg->sources == 0)
    cfg->sources = (cfg->connections + 24999) / 25000;
  if (cfg->first_source + cfg->sources - 1 > 254)
    lg_die("--first-source %d with %d source addresses passes 127.0.0.254", cfg->first_source, cfg->sources);
  if (!cfg->target.loopback && !(cfg->split && cfg->sender.loopback) && cfg->sources > 1)
    fprintf(stderr, "mw_loadgen: --sources applies to loopback targets only; ignored\n");
}

/* Raises the descriptor limit to the hard limit and returns how many connections one process
 * may hold. */
static int lg_per_process_capacity(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 1000;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  rlim_t cap = rl.rlim_cur == RLIM_INFINITY ? 1000000 : rl.rlim_cur;
  return cap > LG_FD_RESERVE + 1 ? (int)(cap - LG_FD_RESERVE) : 1;
}

int main(int argc, char **argv) {
  lg_config cfg;
  lg_parse_args(&cfg, argc, argv);
  int capacity = lg_per_process_capacity();
  int need = (cfg.connections + capacity - 1) / capacity;
  if (cfg.procs == 0)
    cfg.procs = need;
  if (cfg.procs < need)
    lg_die("%d connections need at least %d processes at %d descriptors each", cfg.connections,
           need, capacity);
  if (cfg.procs > cfg.connections)
    cfg.procs = cfg.connections;
  if (cfg.scenario == LG_BROADCAST && cfg.senders > cfg.connections / cfg.procs)
    lg_die("--senders must fit in the first worker process (%d connections)",
           cfg.connections / cfg.procs);
  if (cfg.target.loopback && cfg.connections / cfg.sources > 28000)
    fprintf(stderr, "mw_loadgen: warning: %d connections per source address may exhaust "
                    "ephemeral ports; raise --sources\n", cfg.connections / cfg.sources);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGALRM, lg_alarm_handler);
  alarm((unsigned)(cfg.connect_timeout + cfg.warmup + cfg.duration + cfg.drain + cfg.timeout + 60));
  cfg.base_ns = lg_now();

  int64_t rss_base = -1, hwm_base;
  int base_procs;
  lg_server_memory(&cfg, &rss_base, &hwm_base, &base_procs);

  lg_stats total;
  if (cfg.procs == 1) {
    lg_worker *w = calloc(1, sizeof *w);
    if (w == NULL)
      lg_die("out of memory");
    w->cfg = &cfg;
    w->count = cfg.connections;
    w->ctrl_fd = w->ready_fd = -1;
    if (lg_worker_run(w) != 0)
      lg_die("cannot start the event loop");
    total = w->stats;
    free(w);
  } else if (lg_run_processes(&cfg, &total) != 0) {
    lg_die("out of memory");
  }
  alarm(0);
  lg_report(&cfg, &total, rss_base);
  return total.opened == 0 ? 1 : 0;
}
