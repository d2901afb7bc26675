/* mw_supervisor: plain POSIX on purpose: no libuv loop in the supervisor, so a forked worker
 * inherits no loop state (libuv's signal pipe would be shared across the fork). Signals are
 * blocked and taken synchronously with sigtimedwait, which also times the restarts. */
#include "mw_supervisor.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mw_log.h"
#include "mw_lvm.h"
#include "mw_metrics.h"
#include "mw_version.h"
#include "mw_worker.h"

#define MW_MAX_BACKOFF_S 10.0
#define MW_QUICK_DEATH_S 5.0 /* a worker that dies sooner than this "keeps dying" */

typedef struct worker_slot {
    pid_t pid;            /* 0 when not running */
    double started_at;
    double restart_at;    /* when pid == 0: time to fork it again */
    int quick_deaths;
    int listen_fd;
} worker_slot;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bind_socket(const struct addrinfo *ai, int port, int reuseport, char *err, size_t errlen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "%s", errno == EADDRINUSE ? "address in use" : strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Opens one listening socket per worker. With several workers they share the port through
 * SO_REUSEPORT; a plain bind first makes sure no other process holds the port, because
 * SO_REUSEPORT would otherwise let a second instance of the same user join silently. */
static int open_listeners(mw_config *cfg, worker_slot *slots, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", cfg->port);
    int rv = getaddrinfo(cfg->host, port_s, &hints, &res);
    if (rv != 0) {
        snprintf(err, errlen, "cannot resolve host '%s': %s", cfg->host, gai_strerror(rv));
        return -1;
    }
    int port = cfg->port;
    int fd = bind_socket(res, port, 0, err, errlen);
    if (fd < 0)
        goto fail;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                             : ((struct sockaddr_in6 *)&ss)->sin6_port);
    if (cfg->workers == 1) {
        slots[0].listen_fd = fd;
    } else {
        close(fd);
        for (int i = 0; i < cfg->workers; i++) {
            slots[i].listen_fd = bind_socket(res, port, 1, err, errlen);
            if (slots[i].listen_fd < 0) {
                while (i-- > 0)
                    close(slots[i].listen_fd);
                goto fail;
            }
        }
    }
    cfg->port = port;
    freeaddrinfo(res);
    return 0;
fail:
    freeaddrinfo(res);
    return -1;
}

static void log_start(const mw_config *cfg)
{
    char addr[512], libs[1024];
    snprintf(addr, sizeof(addr), "http://%s:%d", cfg->host, cfg->port);
    mw_version_libraries(libs, sizeof(libs), ", ");
    if (mw_log_begin(MW_LOG_INFO, "moonwire " MW_VERSION " listening")) {
        mw_log_str("address", addr);
        mw_log_str("websocket", cfg->path);
        mw_log_int("workers", cfg->workers);
        mw_log_str("app", cfg->app_dir);
        mw_log_str("redis", cfg->redis_url[0] ? "configured" : "none");
        mw_log_str("mode", cfg->dev ? "dev" : "production");
        mw_log_int("pid", (int)getpid());
        mw_log_str("libraries", libs);
        mw_log_end();
    }
}

static pid_t spawn_worker(const mw_config *cfg, worker_slot *slots, int index, mw_metrics *metrics,
                          const sigset_t *original_mask)
{
    pid_t supervisor = getpid();
    pid_t pid = fork();
    if (pid != 0) {
        if (pid > 0) {
            slots[index].pid = pid;
            slots[index].started_at = now_s();
        }
        return pid;
    }
    /* child: die with the supervisor, keep only its own socket. SIGTERM/SIGINT/SIGHUP stay
     * blocked (as in the supervisor) until the worker has loaded the app and installed its
     * handlers, so a signal during start-up is handled, not fatal (mw_worker_run unblocks). */
    (void)original_mask;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != supervisor)
        _exit(1);
    for (int i = 0; i < cfg->workers; i++)
        if (i != index && slots[i].listen_fd != slots[index].listen_fd)
            close(slots[i].listen_fd);
    int status = mw_worker_run(cfg, index, slots[index].listen_fd, metrics);
    exit(status);
}

static void describe_exit(int status, char *out, size_t size)
{
    if (WIFEXITED(status))
        snprintf(out, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, size, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(out, size, "stopped (status %d)", status);
}

int mw_supervisor_run(mw_config *cfg)
{
    char err[1024];
    worker_slot *slots = calloc((size_t)cfg->workers, sizeof(worker_slot));
    if (!slots) {
        fprintf(stderr, "moonwire: out of memory\n");
        return 1;
    }
    /* limits.maxConnections left at 0 is derived by each worker (mw_accept): it knows what it
     * keeps open once started */
    if (open_listeners(cfg, slots, err, sizeof(err)) != 0) {
        fprintf(stderr, "moonwire: cannot listen on %s:%d: %s (is another server using this port? "
                        "choose another one with --port)\n", cfg->host, cfg->port, err);
        free(slots);
        return 1;
    }
    mw_metrics *metrics = mw_metrics_create(cfg->workers);
    if (!metrics) {
        fprintf(stderr, "moonwire: cannot map shared memory for metrics: %s\n", strerror(errno));
        free(slots);
        return 1;
    }

    sigset_t set, original;
    mw_worker_signals(&set);
    sigprocmask(SIG_BLOCK, &set, &original);
    signal(SIGPIPE, SIG_IGN);

    log_start(cfg);
    for (int i = 0; i < cfg->workers; i++) {
        if (spawn_worker(cfg, slots, i, metrics, &original) < 0) {
            mw_logf(MW_LOG_ERROR, "cannot fork worker %d: %s", i, strerror(errno));
            slots[i].restart_at = now_s() + 1;
        }
    }

    int shutting_down = 0, exit_status = 0;
    double deadline = 0;
    for (;;) {
        int alive = 0;
        double next = now_s() + 1.0;
        for (int i = 0; i < cfg->workers; i++) {
            if (slots[i].pid > 0)
                alive++;
            else if (!shutting_down && slots[i].restart_at < next)
                next = slots[i].restart_at;
        }
        if (shutting_down && alive == 0)
            break;
        if (shutting_down && now_s() >= deadline) {
            mw_logf(MW_LOG_WARN, "workers did not stop in time: killing them");
            for (int i = 0; i < cfg->workers; i++)
                if (slots[i].pid > 0)
                    kill(slots[i].pid, SIGKILL);
            deadline = now_s() + 5;
            exit_status = 1;
        }
        double wait = next - now_s();
        if (shutting_down)
            wait = 0.2;
        if (wait < 0)
            wait = 0;
        struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            if (shutting_down) {
                if (sig == SIGINT) { /* a second Ctrl-C: stop waiting */
                    for (int i = 0; i < cfg->workers; i++)
                        if (slots[i].pid > 0)
                            kill(slots[i].pid, SIGKILL);
                }
                continue;
            }
            shutting_down = 1;
            deadline = now_s() + cfg->limits.shutdown_timeout + 2;
            mw_logf(MW_LOG_INFO, "%s received: shutting down %d worker(s)",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg->workers);
            for (int i = 0; i < cfg->workers; i++)
                if (slots[i].pid > 0)
                    kill(slots[i].pid, SIGTERM);
        } else if (sig == SIGHUP) {
            mw_logf(MW_LOG_INFO, "SIGHUP received: asking every worker to reload");
            for (int i = 0; i < cfg->workers; i++)
                if (slots[i].pid > 0)
                    kill(slots[i].pid, SIGHUP);
        }
        /* reap every child, whatever woke us (we may run as PID 1 in a container) */
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int i = 0; i < cfg->workers; i++) {
                if (slots[i].pid != pid)
                    continue;
                slots[i].pid = 0;
                if (metrics)
                    metrics->slots[i].alive = 0;
                if (shutting_down) {
                    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        exit_status = 1;
                    break;
                }
                char how[128];
                describe_exit(status, how, sizeof(how));
                double lived = now_s() - slots[i].started_at;
                slots[i].quick_deaths = lived < MW_QUICK_DEATH_S ? slots[i].quick_deaths + 1 : 0;
                double delay = 0;
                if (slots[i].quick_deaths > 1) {
                    delay = 0.25 * (double)(1 << (slots[i].quick_deaths < 8 ? slots[i].quick_deaths - 2 : 6));
                    if (delay > MW_MAX_BACKOFF_S)
                        delay = MW_MAX_BACKOFF_S;
                }
                slots[i].restart_at = now_s() + delay;
                if (mw_log_begin(MW_LOG_WARN, "worker died; replacing it")) {
                    mw_log_int("worker", i);
                    mw_log_int("pid", pid);
                    mw_log_str("how", how);
                    mw_log_double("restartIn", delay);
                    mw_log_end();
                }
                break;
            }
        }
        if (!shutting_down) {
            for (int i = 0; i < cfg->workers; i++) {
                if (slots[i].pid == 0 && now_s() >= slots[i].restart_at &&
                    spawn_worker(cfg, slots, i, metrics, &original) < 0) {
                    mw_logf(MW_LOG_ERROR, "cannot fork worker %d: %s", i, strerror(errno));
                    slots[i].restart_at = now_s() + 1;
                }
            }
        }
    }
    mw_logf(MW_LOG_INFO, "moonwire stopped");
    for (int i = 0; i < cfg->workers; i++)
        if (i == 0 || slots[i].listen_fd != slots[0].listen_fd)
            close(slots[i].listen_fd);
    mw_metrics_destroy(metrics);
    free(slots);
    return exit_status;
}
