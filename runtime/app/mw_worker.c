/* mw_worker: a worker's event loop, and the place where the layers are wired together: the
 * connections (net) report to the sessions (mw_session), the bus (hub) to the fan-out and the
 * Lua state (vm), the HTTP endpoints ask the worker. It adopts the listening socket the
 * supervisor opened, flushes every send queue once per loop iteration (a uv_prepare: after the
 * callbacks of an iteration, before the loop blocks), and drains on SIGTERM/SIGINT. */
#include "mw_worker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mw_db.h"
#include "mw_hist_local.h"
#include "mw_lapi.h"
#include "mw_lapi_log.h"
#include "mw_log.h"
#include "mw_lvm.h"
#include "mw_reload.h"
#include "mw_redis.h"
#include "mw_session.h"

void mw_worker_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGCHLD);
}

/* ---- the wiring: what each layer reports to ----------------------------------------------- */

static void http_request_cb(void *owner, mw_conn *c, const mw_http_request *r)
{
    mw_worker *w = owner;
    mw_httpd_serve(&w->httpd, c, r);
}

static void http_dropped_cb(void *owner, mw_conn *c, uint64_t ticket)
{
    mw_worker *w = owner;
    mw_api_dropped(&w->api, c, ticket);
}

static const mw_conn_handler conn_handler = {
    .admit = mw_session_admit,
    .open = mw_session_open,
    .message = mw_session_message,
    .read_done = mw_session_read_done,
    .deferred = mw_session_run_queued,
    .closed = mw_session_closed,
    .release = mw_session_release,
    .http_request = http_request_cb,
    .http_dropped = http_dropped_cb,
};

static size_t connections_cb(void *owner)
{
    mw_worker *w = owner;
    return w->fanout.clients.count;
}

static const char *not_ready_cb(void *owner)
{
    mw_worker *w = owner;
    if (w->draining)
        return "draining";
    if (w->redis && !mw_redis_connected(w->redis))
        return "redis unavailable";
    return NULL;
}

static void api_call_cb(void *owner, mw_conn *c, int method, const char *name, size_t name_len, const char *body,
                        size_t body_len, uint64_t start_ns)
{
    mw_worker *w = owner;
    mw_api_call(&w->api, c, method, name, name_len, body, body_len, start_ns);
}

static const mw_httpd_handler httpd_handler = { connections_cb, not_ready_cb, api_call_cb };

static void api_reply_cb(void *owner, uint64_t ticket, int status, const char *json, size_t len)
{
    mw_worker *w = owner;
    mw_api_reply(&w->api, ticket, status, json, len);
}

/* Another worker published for our clients: the fan-out delivers sends and closes, Lua runs the
 * webSocketServer calls (OP). */
static void bus_message_cb(void *owner, const mw_bus_msg *m)
{
    mw_worker *w = owner;
    if (m->kind == MW_BUS_HISTORY) {
        mw_hist_redis_on_message(&w->hist_redis, m);
        return;
    }
    if (m->kind != MW_BUS_OP) {
        mw_fanout_deliver(&w->fanout, m);
        return;
    }
    mw_client *c = mw_clients_find(&w->fanout.clients, m->target, m->target_len);
    if (c && w->lvm)
        mw_lvm_on_bus_op(w->lvm, c->id, m->payload, m->payload_len);
}

static const mw_bus_handler bus_handler = { bus_message_cb };

/* ---- the loop ----------------------------------------------------------------------------- */

static void drain_step(mw_worker *w);

/* Draining ends when no WebSocket client and no running job is left (plain HTTP requests may
 * still come in: the listener stays open so /ready can answer 503 until the process exits).
 * limits.shutdownTimeout bounds the wait. */
static void stop_if_drained(mw_worker *w)
{
    if (!w->draining)
        return;
    if (w->fanout.clients.count == 0 && w->queue_api.jobs_active == 0)
        uv_stop(&w->loop);
}

static void flush_prepare_cb(uv_prepare_t *h)
{
    mw_worker *w = h->data;
    mw_redis_flush(w->redis); /* the bus first: other workers start delivering in parallel */
    /* a join's SUBSCRIBE goes out before its reply does (the joiner's next step may be another
     * worker's publish to the room) */
    mw_redis_flush(w->redis_sub);
    drain_step(w);
    mw_net_flush(&w->net);
    stop_if_drained(w);
}

/* Every tick: close clients inactive for too long (4408), ping each client once per heartbeat
 * interval and drop those whose pong is overdue, close clients whose token expired (4401). */
static void housekeeping_cb(uv_timer_t *t)
{
    mw_worker *w = t->data;
    const mw_config *cfg = w->cfg;
    uint64_t now = uv_now(&w->loop);
    uint64_t wall = mw_wall_ms();
    uint64_t interval_ms = (uint64_t)(cfg->heartbeat_interval * 1000);
    uint64_t timeout_ms = (uint64_t)(cfg->heartbeat_timeout * 1000);
    int check_inactive = now - w->last_inactivity_check_ms >= (uint64_t)(cfg->inactivity_check_interval * 1000);
    if (check_inactive)
        w->last_inactivity_check_ms = now;
    mw_accept_tick(&w->acceptor);
    if (now - w->last_history_sweep_ms >= 1000) {
        w->last_history_sweep_ms = now;
        mw_history_expire(&w->history, mw_hist_now_ms());
        mw_hist_redis_sweep(&w->hist_redis);
    }
    if (w->draining)
        return;
    mw_client *next;
    for (mw_client *client = w->fanout.clients.head; client; client = next) {
        next = client->all_next;
        mw_session *s = mw_session_of(client);
        mw_conn *c = client->conn;
        if (!c->ws || mw_ws_closing(c->ws))
            continue;
        if (s->token_expires_at_ms > 0 && (double)wall >= s->token_expires_at_ms) {
            mw_conn_close_ws(c, 4401, "Token expired");
            continue;
        }
        /* auth/expiring, once per token, auth.refreshBefore seconds before exp */
        if (s->token_expires_at_ms > 0 && !s->expiring_sent &&
            (double)wall >= s->token_expires_at_ms - (cfg->auth_leeway + cfg->auth_refresh_before) * 1000) {
            s->expiring_sent = 1;
            mw_lvm_on_expiring(w->lvm, client->id);
        }
        /* signed: a wall clock stepped back must not make everybody look idle */
        if (check_inactive && (double)((int64_t)wall - (int64_t)c->last_activity_ms) >= cfg->inactivity_max * 1000) {
            mw_conn_close_ws(c, 4408, "Inactive");
            continue;
        }
        if (s->read_paused || c->out_paused) {
            /* we are not reading from it (back-pressure): its pong may sit unread */
            c->awaiting_pong = 0;
            c->last_ping_ms = now;
        } else if (c->awaiting_pong) {
            if (now - c->ping_sent_ms >= timeout_ms) {
                if (mw_log_begin(MW_LOG_INFO, "heartbeat: no pong in time, dropping client")) {
                    mw_log_str("clientId", c->id);
                    mw_log_end();
                }
                mw_conn_abort(c); /* does not unlink next: only c leaves the registry */
            }
        } else if (now - c->last_ping_ms >= interval_ms) {
            mw_conn_ping(c);
        }
    }
}

static uint64_t housekeeping_period_ms(const mw_config *cfg)
{
    double p = 0.5;
    if (cfg->heartbeat_interval / 2 < p) p = cfg->heartbeat_interval / 2;
    if (cfg->heartbeat_timeout / 2 < p) p = cfg->heartbeat_timeout / 2;
    if (cfg->inactivity_check_interval < p) p = cfg->inactivity_check_interval;
    if (p < 0.02) p = 0.02;
    return (uint64_t)(p * 1000);
}

static void redis_message_cb(mw_redis *r, const char *pattern, const char *channel, size_t channel_len,
                             const char *payload, size_t payload_len, void *owner)
{
    mw_worker *w = owner;
    if (!pattern && mw_bus_on_message(&w->bus, channel, channel_len, payload, payload_len))
        return;
    if (w->lvm)
        mw_lvm_on_redis_message(w->lvm, pattern, channel, channel_len, payload, payload_len);
}

static void redis_subscribed_cb(mw_redis *r, const char *channel, size_t len, void *owner)
{
    mw_worker *w = owner;
    mw_hist_redis_on_subscribed(&w->hist_redis, channel, len);
}

static void redis_state_cb(mw_redis *r, int up, void *owner)
{
    mw_worker *w = owner;
    mw_bus_forget_probe(&w->bus); /* a probe sent on a connection that failed proves nothing */
    mw_hist_redis_on_state(&w->hist_redis, up); /* its scripts load before anything else runs */
    if (w->lvm)
        mw_lvm_on_redis_state(w->lvm, up);
}

/* The binding families the worker's Lua state gets (mw_lapi.h), each with its context. */
static mw_lvm *start_lvm(mw_worker *w, char *err, size_t errlen)
{
    const mw_lapi_family families[] = {
        { "log", mw_lapi_log_open, NULL },
        { "server", mw_lapi_server_inject, &w->lapi_server },
        { "redis", mw_lapi_redis_open, &w->redis_api },
        { "timer", mw_lapi_timer_open, &w->timer_api },
        { "db", mw_lapi_db_open, &w->db_api },
        { "queue", mw_lapi_queue_open, &w->queue_api },
        { "auth", mw_lapi_auth_open, &w->auth_api },
        { "history", mw_lapi_history_open, &w->history_api },
        { "api", mw_lapi_api_open, &w->api_api },
    };
    mw_lvm_worker info = { .id = w->id, .index = w->index, .count = w->count, .tag = w->tag,
                           .client_count = &w->fanout.clients.count };
    return mw_lvm_new(w->cfg, &info, families, sizeof(families) / sizeof(families[0]), err, errlen);
}

/* Opens the command and subscriber connections when --redis is given. */
static int start_redis(mw_worker *w, char *err, size_t errlen)
{
    if (!w->cfg->redis_url[0])
        return 0;
    mw_redis_options o = { .url = w->cfg->redis_url, .name = "commands", .timeout = w->cfg->redis_timeout,
                           .on_state = redis_state_cb, .owner = w };
    w->redis = mw_redis_new(&w->loop, &o, err, errlen);
    if (!w->redis)
        return -1;
    o.name = "subscriber";
    o.on_state = NULL;
    o.on_message = redis_message_cb;
    o.on_subscribed = redis_subscribed_cb;
    w->redis_sub = mw_redis_new(&w->loop, &o, err, errlen);
    if (!w->redis_sub)
        return -1;
    mw_bus_attach(&w->bus, w->redis, w->redis_sub);
    mw_hist_redis_attach(&w->hist_redis, w->redis);
    w->history_api.redis = &w->hist_redis;
    w->redis_api.cmd = w->redis;
    w->redis_api.sub = w->redis_sub;
    return 0;
}

static void bus_probe_cb(uv_timer_t *t)
{
    mw_worker *w = t->data;
    mw_bus_probe_tick(&w->bus);
}

/* With --redis, the loop runs until both connections are up or their first attempt failed
 * (bounded by redis.timeout: a hanging connect counts as failed then), before the first client is
 * accepted: a client served earlier could join a room before this worker's bus subscription
 * exists and miss what other workers send to the room (a join event, a message). A signal that
 * starts draining ends the wait. */
static void wait_for_redis(mw_worker *w)
{
    if (!w->redis)
        return;
    while (!w->draining && !(mw_redis_tried(w->redis) && mw_redis_tried(w->redis_sub)))
        uv_run(&w->loop, UV_RUN_ONCE);
}

/* Frees the Redis connections; the bus, which uses them, is told first. */
static void close_redis(mw_worker *w)
{
    mw_bus_attach(&w->bus, NULL, NULL);
    mw_hist_redis_attach(&w->hist_redis, NULL);
    w->redis_api.cmd = w->redis_api.sub = NULL;
    mw_redis_free(w->redis); /* pending calls resume their coroutines with an error */
    mw_redis_free(w->redis_sub);
    w->redis = w->redis_sub = NULL;
}

static void shutdown_timeout_cb(uv_timer_t *t)
{
    mw_worker *w = t->data;
    mw_logf(MW_LOG_WARN, "shutdown timeout reached: closing %ld remaining connection(s)", w->net.tcp_conns);
    mw_net_close_all(&w->net);
}

#define MW_DRAIN_BATCH 500
#define MW_EXIT_FLUSH_MS 500 /* at most this long writing the last Redis commands at exit */

/* Closes up to MW_DRAIN_BATCH clients with 1001 per loop turn. A client whose handler still
 * waits on I/O is closed once it has finished and its reply is queued; the others do not wait
 * for it. Runs before the send queues are flushed, so the close frames go out this turn. */
static void drain_step(mw_worker *w)
{
    if (!w->draining)
        return;
    int n = 0;
    for (mw_client *client = w->fanout.clients.head; client && n < MW_DRAIN_BATCH; client = client->all_next) {
        mw_conn *c = client->conn;
        if (c->ws && !mw_session_of(client)->busy && !mw_ws_closing(c->ws)) {
            mw_conn_close_ws(c, 1001, "Server shutting down");
            n++;
        }
    }
}

static void begin_drain(mw_worker *w, const char *why)
{
    if (w->draining)
        return;
    w->draining = 1; /* upgrades get 503, /ready says 503, new messages are not handled */
    mw_logf(MW_LOG_INFO, "%s: draining %zu client(s)", why, w->fanout.clients.count);
    uv_timer_stop(&w->housekeeping);
    uv_timer_start(&w->shutdown_timer, shutdown_timeout_cb,
                   (uint64_t)(w->cfg->limits.shutdown_timeout * 1000), 0);
    drain_step(w);
    stop_if_drained(w);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    mw_worker *w = h->data;
    if (signum == SIGHUP) {
        if (!w->draining && w->lvm) {
            mw_logf(MW_LOG_INFO, "SIGHUP received: reloading controllers, jobs and lib/");
            mw_lvm_reload(w->lvm, NULL, 0);
        }
        return;
    }
    begin_drain(w, signum == SIGTERM ? "SIGTERM received" : "SIGINT received");
}

/* --dev: Lua files changed (debounced by mw_reload). */
static void files_changed_cb(const char *const *changed, int n, void *data)
{
    mw_worker *w = data;
    if (w->draining || !w->lvm)
        return;
    mw_lvm_reload(w->lvm, changed, n);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Frees the worker and what it owns once its loop has no handle left. */
static void free_worker(mw_worker *w)
{
    uv_loop_close(&w->loop);
    mw_fanout_free(&w->fanout);
    mw_history_free(&w->history);
    mw_hist_redis_free(&w->hist_redis);
    mw_jwt_free(&w->jwt);
    mw_httpd_free(&w->httpd);
    free(w);
}

/* A worker that failed before its loop ran: closes what was opened (the database, Redis) and
 * frees it. */
static void free_unstarted(mw_worker *w)
{
    mw_db_close(w->db_api.db);
    w->db_api.db = NULL;
    close_redis(w);
    uv_walk(&w->loop, close_walk_cb, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    free_worker(w);
}

int mw_worker_run(const mw_config *cfg, int index, int listen_fd, mw_metrics *metrics)
{
    char err[2048], host[64] = "host";
    int status = 0;
    mw_log_setup(cfg->log_level, cfg->log_format, index);
    mw_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        mw_logf(MW_LOG_ERROR, "out of memory starting worker %d", index);
        return 1;
    }
    w->cfg = cfg;
    w->index = index;
    w->count = cfg->workers;
    w->metrics = metrics;
    w->m = &metrics->slots[index];
    mw_metrics_reset_slot(metrics, index, (int)getpid());
    gethostname(host, sizeof(host) - 1);
    char random_tag[MW_RANDOM_ID_LEN + 1];
    if (mw_random_id(random_tag) != 0) {
        mw_logf(MW_LOG_ERROR, "cannot read random bytes for the worker id");
        return 1;
    }
    memcpy(w->tag, random_tag, MW_WORKER_TAG_LEN);
    w->tag[MW_WORKER_TAG_LEN] = '\0';
    snprintf(w->id, sizeof(w->id), "%s:%d:%s", host, (int)getpid(), w->tag);
    if (mw_httpd_init(&w->httpd, w->id, cfg, metrics, w->m, &httpd_handler, w) != 0) {
        mw_logf(MW_LOG_ERROR, "out of memory starting worker %d", index);
        mw_httpd_free(&w->httpd);
        free(w);
        return 1;
    }
    /* an API call waits for Lua: its run time, and a few Redis round trips */
    mw_api_init(&w->api, &w->httpd, &w->lvm, cfg->limits.handler_timeout + 2 * cfg->redis_timeout + 5);
    w->api_api = (mw_lapi_api_ctx){ api_reply_cb, w };

    if (mw_fanout_init(&w->fanout, &w->bus, w->m) != 0) {
        mw_logf(MW_LOG_ERROR, "out of memory starting worker %d", index);
        mw_httpd_free(&w->httpd);
        free(w);
        return 1;
    }
    if (mw_history_init(&w->history, w->tag, MW_HISTORY_DEFAULT_CAP, w->m) != 0) {
        mw_logf(MW_LOG_ERROR, "out of memory starting worker %d", index);
        mw_fanout_free(&w->fanout);
        mw_httpd_free(&w->httpd);
        free(w);
        return 1;
    }
    if (mw_hist_redis_init(&w->hist_redis, &w->fanout, cfg->redis_prefix, w->tag, w->m) != 0) {
        mw_logf(MW_LOG_ERROR, "out of memory starting worker %d", index);
        mw_fanout_free(&w->fanout);
        mw_history_free(&w->history);
        mw_httpd_free(&w->httpd);
        free(w);
        return 1;
    }
    w->history_api = (mw_lapi_history_ctx){ &w->fanout, &w->history, NULL };
    if (mw_jwt_init(&w->jwt, cfg->auth_algorithm, cfg->auth_secret, cfg->auth_public_key_file, err,
                    sizeof(err)) != 0) {
        mw_logf(MW_LOG_ERROR, "%s", err);
        mw_fanout_free(&w->fanout);
        mw_history_free(&w->history);
        mw_hist_redis_free(&w->hist_redis);
        mw_httpd_free(&w->httpd);
        free(w);
        return 3;
    }
    uv_loop_init(&w->loop);
    mw_bus_init(&w->bus, &w->loop, cfg->redis_prefix, w->tag, cfg->redis_timeout, &bus_handler, w);
    mw_net_init(&w->net, &w->loop, cfg, index, w->tag, w->m, &conn_handler, w);
    w->lapi_server = (mw_lapi_server){ &w->fanout, w->id, w->m, mw_session_handler_finished, w };
    w->timer_api.loop = &w->loop;
    w->queue_api.m = w->db_api.m = w->m;
    w->queue_api.draining = &w->draining;
    w->auth_api = (mw_lapi_auth_ctx){ &w->jwt, mw_session_set_expiry, w };
    /* opened by its first statement */
    w->db_api.db = mw_db_open(&w->loop, cfg->database_url, w->db_api.error, sizeof(w->db_api.error));
    if (!w->db_api.db)
        mw_logf(MW_LOG_ERROR, "%s", w->db_api.error); /* every statement answers nil, this message */
    if (start_redis(w, err, sizeof(err)) != 0) {
        mw_logf(MW_LOG_ERROR, "config error: redis.url: %s", err);
        free_unstarted(w);
        return 3;
    }
    w->lvm = start_lvm(w, err, sizeof(err));
    if (!w->lvm) {
        if (mw_log_begin(MW_LOG_ERROR, "could not load the app")) {
            mw_log_str("error", err);
            mw_log_end();
        }
        free_unstarted(w);
        return 3;
    }

    uv_prepare_init(&w->loop, &w->flush_prepare);
    w->flush_prepare.data = w;
    uv_prepare_start(&w->flush_prepare, flush_prepare_cb);
    uv_timer_init(&w->loop, &w->shutdown_timer);
    w->shutdown_timer.data = w;
    uv_timer_init(&w->loop, &w->housekeeping);
    w->housekeeping.data = w;
    uint64_t period = housekeeping_period_ms(cfg);
    uv_timer_start(&w->housekeeping, housekeeping_cb, period, period);
    uv_timer_init(&w->loop, &w->bus_probe);
    w->bus_probe.data = w;
    if (w->redis) {
        uint64_t every = (uint64_t)(cfg->cluster_heartbeat * 1000);
        uv_timer_start(&w->bus_probe, bus_probe_cb, every, every);
    }
    w->last_inactivity_check_ms = uv_now(&w->loop);
    uv_unref((uv_handle_t *)&w->shutdown_timer);
    uv_signal_init(&w->loop, &w->sig_term);
    uv_signal_init(&w->loop, &w->sig_int);
    uv_signal_init(&w->loop, &w->sig_hup);
    w->sig_term.data = w->sig_int.data = w->sig_hup.data = w;
    uv_signal_start(&w->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&w->sig_int, signal_cb, SIGINT);
    uv_signal_start(&w->sig_hup, signal_cb, SIGHUP);
    /* the supervisor forked us with these blocked; pending ones are delivered now */
    sigset_t handled;
    mw_worker_signals(&handled);
    sigprocmask(SIG_UNBLOCK, &handled, NULL);

    if (cfg->dev)
        w->reload = mw_reload_start(&w->loop, cfg->app_dir, cfg->runtime_dir, files_changed_cb, w);
    mw_logf(MW_LOG_DEBUG, "worker %d ready (pid %d, id %s)", index, (int)getpid(), w->id);
    mw_lvm_on_started(w->lvm);
    wait_for_redis(w);
    /* last: the default connection limit leaves what is open by now plus a headroom */
    int rv = mw_accept_start(&w->acceptor, &w->net, listen_fd);
    if (rv != 0) {
        mw_logf(MW_LOG_ERROR, "worker %d cannot listen: %s", index, uv_strerror(rv));
        status = 1;
        goto out;
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    mw_logf(MW_LOG_INFO, "worker %d stopped", index);

out:
    /* close whatever is left, let the close callbacks run, then free */
    w->draining = 1;
    mw_reload_stop(w->reload);
    w->reload = NULL;
    mw_accept_stop(&w->acceptor);
    mw_lapi_timer_close_all(&w->timer_api); /* callbacks run only to clean up: no new timers */
    struct mw_db *db = w->db_api.db;
    w->db_api.db = NULL; /* callbacks run by the close find no database to queue more on */
    snprintf(w->db_api.error, sizeof(w->db_api.error), "database: the worker is shutting down");
    mw_db_close(db); /* SQLite: statements already running finish in the loop below */
    /* the last loop turn's writes (the leave events of the clients closed last, the removal
     * of their presence records) are still buffered: out they go, or another worker would send
     * some of those events again when it claims this dead worker's records */
    mw_redis_flush_wait(w->redis, MW_EXIT_FLUSH_MS);
    close_redis(w); /* pending calls resume their coroutines with an error */
    mw_net_close_all(&w->net);
    uv_walk(&w->loop, close_walk_cb, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    mw_net_free_closed(&w->net);
    mw_lvm_free(w->lvm);
    w->lvm = NULL;
    free_worker(w);
    return status;
}
