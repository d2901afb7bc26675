/* mw_accept: the worker's accept loop. We poll the listening socket and call accept4 ourselves
 * instead of using uv_listen, because libuv handles EMFILE inside uv__server_io (its own
 * "emfile trick": give up a spare descriptor, accept every pending connection and close it
 * without a word) before our callback could answer anything. Here every connection we cannot
 * serve is answered "503 Service Unavailable" and closed on the spot, so it never holds a
 * descriptor, and a listener that cannot accept at all is paused instead of spinning. */
#include "mw_accept.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mw_handshake.h"
#include "mw_log.h"

#define MW_ACCEPT_BATCH 256                /* per wake-up, so a flood does not starve the loop */
#define MW_ACCEPT_RETRY_MS 250             /* a paused listener tries again after this */
#define MW_REFUSAL_LOG_INTERVAL_MS 10000   /* at most one warning per kind per interval */
/* Descriptors kept back from the connection limit: at least MW_FD_RESERVE_MIN, and at least
 * what is open when the worker starts (stdio, the loop's own, the listener, Redis, log, the
 * --dev watcher, whatever onServerStarted opened) plus MW_FD_HEADROOM for what opens later:
 * the database (SQLite opens its file, journal or WAL and shm on first use; PostgreSQL a
 * socket), Redis reconnects and their DNS look-ups, a static file being served, Lua files and
 * modules read by controllers, and the reserve given up to refuse a connection at EMFILE. */
#define MW_FD_RESERVE_MIN 64
#define MW_FD_HEADROOM 32

/* Descriptors open in this process now (-1: unknown). */
static long open_descriptors(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void log_refusals(mw_acceptor *a, mw_refusal kind, uint64_t now)
{
    uint64_t n = a->refused_unlogged[kind];
    int first = !a->logged[kind];
    uint64_t since_ms = now - a->logged_ms[kind];
    a->refused_unlogged[kind] = 0;
    a->logged[kind] = 1;
    a->logged_ms[kind] = now;
    const char *what, *hint;
    if (kind == MW_REFUSED_LIMIT) {
        what = "connection limit reached: new connections are answered 503";
        hint = a->limit_configured ? "raise limits.maxConnections (and ulimit -n to match)"
                                   : "raise the open-file limit (ulimit -n; the default limits.maxConnections follows it) "
                                     "or set limits.maxConnections";
    } else {
        what = "out of file descriptors: new connections are answered 503";
        hint = "raise the open-file limit (ulimit -n) or lower limits.maxConnections";
    }
    if (mw_log_begin(MW_LOG_WARN, what)) {
        mw_log_int("refused", (int64_t)n); /* since the previous warning of this kind */
        if (!first)
            mw_log_int("sinceSeconds", (int64_t)(since_ms / 1000));
        mw_log_int("connections", a->net->tcp_conns);
        mw_log_int("limit", a->limit);
        mw_log_int("openFileLimit", a->open_file_limit);
        mw_log_int("worker", a->net->index);
        mw_log_str("hint", hint);
        mw_log_end();
    }
}

/* Answers 503 and closes fd now. The client's bytes that already arrived are read first:
 * closing a socket with unread data sends a reset, which can destroy the answer before the
 * client reads it. The response is tiny and the socket new, so one non-blocking send takes it. */
static void refuse(mw_acceptor *a, int fd, mw_refusal kind)
{
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    ssize_t sent = send(fd, a->refusal[kind], a->refusal_len[kind], MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)sent; /* nothing else to do for a client that went away */
    close(fd);
    mw_metrics_add(a->net->m, kind == MW_REFUSED_LIMIT ? MW_M_REFUSED_LIMIT : MW_M_REFUSED_FDS, 1);
    a->refused_unlogged[kind]++;
    uint64_t now = uv_now(a->net->loop);
    if (!a->logged[kind] || now - a->logged_ms[kind] >= MW_REFUSAL_LOG_INTERVAL_MS)
        log_refusals(a, kind, now);
}

/* EMFILE/ENFILE: frees the reserve descriptor for one accept, refuses that connection and takes
 * the reserve back. Returns 1 when one was refused, 0 when none was pending, -1 when it cannot
 * be done (no reserve, or the freed descriptor was taken meanwhile, e.g. by a thread-pool job). */
static int refuse_with_reserve(mw_acceptor *a)
{
    if (a->reserve_fd < 0)
        a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (a->reserve_fd < 0)
        return -1;
    close(a->reserve_fd);
    int fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int err = errno;
    if (fd >= 0)
        refuse(a, fd, MW_REFUSED_FDS);
    a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        return 1;
    return err == EAGAIN || err == EWOULDBLOCK ? 0 : -1;
}

static void accept_cb(uv_poll_t *h, int status, int events);

static void retry_cb(uv_timer_t *t)
{
    mw_acceptor *a = t->data;
    uv_poll_start(&a->poll, UV_READABLE, accept_cb);
}

/* The socket stays readable while connections are pending, and the poll is level-triggered:
 * an error that repeats (no descriptor even for the reserve, ENOBUFS) would spin the loop.
 * Pending clients wait in the backlog for MW_ACCEPT_RETRY_MS instead. */
static void pause_listener(mw_acceptor *a, int err)
{
    uint64_t now = uv_now(a->net->loop);
    if (a->accept_error_logged_ms == 0 || now - a->accept_error_logged_ms >= MW_REFUSAL_LOG_INTERVAL_MS) {
        a->accept_error_logged_ms = now ? now : 1;
        mw_logf(MW_LOG_WARN, "accept failed: %s; pausing the listener for %d ms (open-file limit %ld)",
                strerror(err), MW_ACCEPT_RETRY_MS, a->open_file_limit);
    }
    uv_poll_stop(&a->poll);
    uv_timer_start(&a->retry, retry_cb, MW_ACCEPT_RETRY_MS, 0);
}

static void accept_cb(uv_poll_t *h, int status, int events)
{
    mw_acceptor *a = h->data;
    (void)events;
    if (status < 0) {
        pause_listener(a, -status);
        return;
    }
    for (int i = 0; i < MW_ACCEPT_BATCH; i++) {
        int fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return; /* nothing pending (or another worker took it) */
            /* the pending connection failed, not the listener (accept(2): treat the network
             * errors like EAGAIN; EPERM is a firewall rule) */
            if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM || err == ENETDOWN ||
                err == ENOPROTOOPT || err == EHOSTDOWN || err == ENONET || err == EHOSTUNREACH ||
                err == EOPNOTSUPP || err == ENETUNREACH)
                continue;
            if (err == EMFILE || err == ENFILE) {
                int r = refuse_with_reserve(a);
                if (r > 0)
                    continue;
                if (r == 0)
                    return;
            }
            pause_listener(a, err);
            return;
        }
        /* HTTP-phase connections count too: sockets that never send a request must not be
         * able to use up the descriptors a new client needs to hear why it is refused */
        if (a->net->tcp_conns >= a->limit)
            refuse(a, fd, MW_REFUSED_LIMIT);
        else
            mw_conn_accept(a->net, fd);
    }
}

/* The connection limit: limits.maxConnections, capped by what the open-file limit allows. */
static void compute_limit(mw_acceptor *a)
{
    long configured = a->net->limits.max_connections;
    struct rlimit rl;
    long by_files = 0;
    a->open_file_limit = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        long nofile = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000 ? 1000000 : (long)rl.rlim_cur;
        long open_now = open_descriptors();
        long reserve = open_now < 0 ? MW_FD_RESERVE_MIN * 2 : open_now + MW_FD_HEADROOM;
        if (reserve < MW_FD_RESERVE_MIN)
            reserve = MW_FD_RESERVE_MIN;
        a->open_file_limit = nofile;
        by_files = nofile > reserve * 2 ? nofile - reserve : nofile / 4;
        if (by_files < 1)
            by_files = 1;
    }
    a->limit_configured = configured > 0;
    if (configured > 0 && (by_files == 0 || configured <= by_files)) {
        a->limit = configured;
    } else if (configured > 0) {
        a->limit = by_files;
        if (mw_log_begin(MW_LOG_WARN, "limits.maxConnections is more than the open-file limit allows; "
                                      "connections past the lower limit are answered 503")) {
            mw_log_int("maxConnections", configured);
            mw_log_int("limit", by_files);
            mw_log_int("openFileLimit", a->open_file_limit);
            mw_log_int("worker", a->net->index);
            mw_log_str("hint", "raise the open-file limit (ulimit -n)");
            mw_log_end();
        }
    } else {
        a->limit = by_files > 0 ? by_files : 1000000;
    }
    if (mw_log_begin(MW_LOG_DEBUG, "connection limit")) {
        mw_log_int("limit", a->limit);
        mw_log_int("openFileLimit", a->open_file_limit);
        mw_log_int("worker", a->net->index);
        mw_log_end();
    }
}

int mw_accept_start(mw_acceptor *a, mw_net *net, int listen_fd)
{
    a->net = net;
    a->started = 1; /* reserve_fd is ours from here on (-1 or open) */
    a->listen_fd = listen_fd;
    a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    compute_limit(a);
    const char *reasons[MW_REFUSED_KINDS] = { "Connection limit reached", "Out of file descriptors" };
    for (int k = 0; k < MW_REFUSED_KINDS; k++)
        a->refusal_len[k] = mw_http_error_response(503, reasons[k], "Retry-After: 1\r\n", a->refusal[k],
                                                   sizeof(a->refusal[k]));
    int rv = uv_poll_init(net->loop, &a->poll, listen_fd); /* also makes it non-blocking */
    if (rv != 0)
        return rv;
    a->poll.data = a;
    uv_timer_init(net->loop, &a->retry);
    a->retry.data = a;
    return uv_poll_start(&a->poll, UV_READABLE, accept_cb);
}

void mw_accept_tick(mw_acceptor *a)
{
    if (!a->started)
        return;
    uint64_t now = uv_now(a->net->loop);
    for (int k = 0; k < MW_REFUSED_KINDS; k++)
        if (a->refused_unlogged[k] > 0 && now - a->logged_ms[k] >= MW_REFUSAL_LOG_INTERVAL_MS)
            log_refusals(a, (mw_refusal)k, now);
}

void mw_accept_stop(mw_acceptor *a)
{
    if (!a->started)
        return;
    for (int k = 0; k < MW_REFUSED_KINDS; k++) /* the last interval's count is not lost */
        if (a->refused_unlogged[k] > 0)
            log_refusals(a, (mw_refusal)k, uv_now(a->net->loop));
    if (a->reserve_fd >= 0)
        close(a->reserve_fd);
    a->reserve_fd = -1;
}
