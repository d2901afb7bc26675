/* mw_conn: one TCP connection: the HTTP request head, then (after the upgrade) the WebSocket
 * session and its send queue. What the requests and messages mean is its owner's business: the
 * connection reports upward through mw_conn_handler (admit?, open, message, closed, a plain HTTP
 * request). mw_net is what every connection of a worker shares: loop, limits, lists. */
#ifndef MW_CONN_H
#define MW_CONN_H

#include <stdint.h>
#include <uv.h>

#include "mw_config.h"
#include "mw_frame.h"
#include "mw_http.h"
#include "mw_metrics.h"
#include "mw_outq.h"
#include "mw_util.h"
#include "mw_ws.h"

#define MW_READ_BUF_SIZE 65536

typedef enum { MW_CONN_HTTP = 0, MW_CONN_WS, MW_CONN_CLOSED } mw_conn_state;

typedef struct mw_conn mw_conn;

/* The owner's answer to an upgrade request that passed the protocol checks. */
typedef struct mw_conn_admission {
    int status;       /* 101 to accept, else the HTTP status to refuse with */
    char reason[256]; /* why it was refused */
} mw_conn_admission;

/* How a connection reports to its owner. Every callback gets the owner pointer of mw_net. */
typedef struct mw_conn_handler {
    /* An upgrade request on the WebSocket path passed the protocol checks: fill out (status 101
     * to accept). The owner may set c->data (it gets it back in release) and rewrite c->remote. */
    void (*admit)(void *owner, mw_conn *c, const mw_http_request *r, mw_conn_admission *out);
    /* The WebSocket session is open: the 101 response is queued and c->id is set. */
    void (*open)(void *owner, mw_conn *c);
    /* A complete message: opcode 1 (text) or 2 (binary); data lives until return. */
    void (*message)(void *owner, mw_conn *c, int opcode, const uint8_t *data, size_t len);
    /* Every message of one read was delivered (the owner may have batched them). May be NULL. */
    void (*read_done)(void *owner, mw_conn *c);
    /* A later loop turn after mw_conn_defer (not called once the connection is freed). */
    void (*deferred)(void *owner, mw_conn *c);
    /* An opened session ended: the socket is closing. code and reason: the close frame's (code
     * 1006 and "" when there was none). Called once, inside mw_conn_close or mw_conn_abort. */
    void (*closed)(void *owner, mw_conn *c, uint16_t code, const char *reason);
    /* The connection is being freed; c->data is set: let go of it. */
    void (*release)(void *owner, mw_conn *c);
    /* A request that is not an upgrade: answer with mw_conn_respond or mw_conn_respond_error, or
     * later after mw_conn_http_wait. Also called for a request whose body was refused as too
     * large (r->error_status 413, the head complete), so the answer can be the endpoint's own. */
    void (*http_request)(void *owner, mw_conn *c, const mw_http_request *r);
    /* A request left waiting (mw_conn_http_wait) with ticket will never be answered: the
     * connection is being freed. May be NULL. */
    void (*http_dropped)(void *owner, mw_conn *c, uint64_t ticket);
} mw_conn_handler;

/* What the connections of one worker share. */
typedef struct mw_net {
    uv_loop_t *loop;
    int index;                       /* the worker's number, for logs */
    char tag[MW_WORKER_TAG_LEN + 1]; /* every clientId starts with it */
    mw_limits limits;                /* copied from the config */
    char path[1024];                 /* the WebSocket endpoint */
    int allow_binary;                /* raw mode: binary messages reach the owner */
    size_t max_body;                 /* request bodies kept up to this (0: none; the API's 1 MiB) */
    int compression;                 /* permessage-deflate is negotiated with clients that offer it */
    size_t compression_threshold;
    int compression_level;
    mw_deflate *codec;               /* the worker's zlib streams, made by the first negotiation */
    mw_metrics_slot *m;
    const mw_conn_handler *handler;
    void *owner;
    mw_conn *conns;       /* every open TCP connection (HTTP or WebSocket) */
    long tcp_conns;       /* how many: what the connection limit counts */
    mw_conn *flush_head;  /* connections with output: written once per loop iteration */
    mw_conn *defer_head;  /* connections waiting for handler->deferred */
    uv_idle_t defer_idle;
    uint64_t wall_ms, wall_at; /* mw_wall_ms() as read when uv_now(loop) was wall_at */
    mw_wsctx_pool wsctx_pool;  /* wslay contexts, lent only while a message is in flight */
    size_t send_queue_bytes;   /* queued for all connections, not yet taken by the kernel */
    mw_outq_pool outq_pool;    /* send-queue arrays, lent while more than one frame waits */
    uint8_t read_buf[MW_READ_BUF_SIZE]; /* one per worker: a read is handled before the next */
} mw_net;

struct mw_conn {
    uv_tcp_t tcp;
    uv_timer_t *timer; /* while waiting on something: request head, a partial message, close; else NULL */
    mw_net *net;
    mw_conn_state state;
    uint8_t handles_open;
    uint8_t free_pending; /* closed while on a list of mw_net: the list frees it */
    uint8_t opened;       /* open was reported, closed not yet */
    mw_http_request *http;
    mw_ws *ws;
    char id[MW_CLIENT_ID_LEN + 1];
    char remote[64];
    uint64_t connected_at_ms, last_activity_ms, connected_hr;

    mw_outq out; /* the send queue: frames shared by reference */
    uint8_t close_after_flush;
    uint8_t slow_consumer;
    uint8_t in_flush;
    uint8_t in_defer;
    mw_conn *flush_next;
    mw_conn *defer_next;
    uint8_t held;       /* the owner holds reading (mw_conn_hold_reading) */
    uint8_t out_paused; /* control frames (pongs) filled the send queue */
    uint8_t awaiting_pong; /* heartbeat: a protocol ping was sent and its pong is awaited */
    uint8_t msg_timer_on; /* the timer runs for limits.messageTimeout (a message is partly in) */
    uint8_t msg_done;     /* a message completed during the current read */
    uint8_t deflate;      /* permessage-deflate was negotiated: net->codec compresses what it is sent */

    mw_conn *tcp_prev, *tcp_next; /* mw_net's list of every connection */

    uint64_t ping_sent_ms, last_ping_ms; /* heartbeat */

    uint64_t http_ticket; /* the owner's number for a request left waiting (0: none) */
    int http_waiting;     /* mw_conn_http_wait was called, no answer yet */
    int continue_sent;    /* "100 Continue" was written */

    void *data; /* the owner's */
};

/* Sets up the shared part (the config's limits, path and raw mode are copied). */
void mw_net_init(mw_net *net, uv_loop_t *loop, const mw_config *cfg, int index, const char *tag,
                 mw_metrics_slot *m, const mw_conn_handler *handler, void *owner);
/* Writes every connection's pending output; call it once per loop iteration (a uv_prepare). */
void mw_net_flush(mw_net *net);
/* Closes every connection (shutdown). */
void mw_net_close_all(mw_net *net);
/* After the loop has run the last close callbacks: frees connections still on a list, and the
 * compression codec. */
void mw_net_free_closed(mw_net *net);

/* Starts serving an accepted socket (non-blocking), which it owns from now on (see mw_accept). */
void mw_conn_accept(mw_net *net, int fd);
/* Queues a frame for the client, taking a new reference. Returns 0, or -1 when the client can
 * take no more data (closing), in which case no reference is taken. Never closes synchronously:
 * a frame past the send-queue limit cuts the client as a slow consumer, which only starts its
 * close handshake (the handler's closed comes later, from the loop), so a caller walking a list
 * of clients may send to each. */
int mw_conn_send(mw_conn *c, mw_frame *f);
/* Starts the WebSocket close handshake with code and reason. */
void mw_conn_close_ws(mw_conn *c, uint16_t code, const char *reason);
/* Closes the socket now; the connection is freed after libuv lets go of it. */
void mw_conn_close(mw_conn *c);
/* Closes the socket with a reset (the peer is not reading): nothing stays queued for it. */
void mw_conn_abort(mw_conn *c);
/* Sends a heartbeat ping; the pong clears awaiting_pong. */
void mw_conn_ping(mw_conn *c);
/* The owner stops (1) or allows (0) reading from a WebSocket client; reading also waits while
 * pongs fill the send queue. */
void mw_conn_hold_reading(mw_conn *c, int hold);
/* Asks for handler->deferred on a later loop turn (not now: the caller may be deep in a call). */
void mw_conn_defer(mw_conn *c);
/* Answers a plain HTTP request and closes the connection once the response is written. */
void mw_conn_respond(mw_conn *c, int status, const char *content_type, const char *body, size_t len,
                     int head_only);
/* The owner answers the request later (with mw_conn_respond*, while mw_conn_http_waiting):
 * reading stops; after timeout_ms without an answer the client gets 504. ticket (not 0) is
 * handed back to handler->http_dropped if the connection goes first. */
void mw_conn_http_wait(mw_conn *c, uint64_t ticket, uint64_t timeout_ms);
static inline int mw_conn_http_waiting(const mw_conn *c) { return c->http_waiting && c->state == MW_CONN_HTTP; }
/* Answers with an error status (text body: reason; extra: more header lines) and closes. */
void mw_conn_respond_error(mw_conn *c, int status, const char *reason, const char *extra);

#endif
