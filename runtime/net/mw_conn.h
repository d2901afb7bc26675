/* mw_conn: one TCP connection: the HTTP request head, then (after the upgrade) the WebSocket
 * session, its send queue of shared frames and its queue of messages waiting for the handler. */
#ifndef MW_CONN_H
#define MW_CONN_H

#include <stdint.h>
#include <uv.h>

#include "mw_frame.h"
#include "mw_http.h"
#include "mw_outq.h"
#include "mw_rooms.h"
#include "mw_util.h"
#include "mw_ws.h"

struct mw_worker;

typedef enum { MW_CONN_HTTP = 0, MW_CONN_WS, MW_CONN_CLOSED } mw_conn_state;

typedef struct mw_msg {
    struct mw_msg *next;
    int opcode;
    uint32_t len;
    uint8_t data[];
} mw_msg;

typedef struct mw_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake timeout, then close-handshake timeout */
    struct mw_worker *w;
    mw_conn_state state;
    int handles_open;
    int free_pending; /* closed while on a worker list: the list frees it */
    mw_http_request *http;
    mw_ws *ws;
    char id[MW_CLIENT_ID_LEN + 1];
    char remote[64];
    uint64_t connected_at_ms, last_activity_ms, connected_hr;

    mw_outq out; /* the send queue: frames shared by reference */
    int close_after_flush;
    int slow_consumer;
    int in_flush;
    struct mw_conn *flush_next;

    /* messages of this client wait here while its previous handler is still running */
    mw_msg *msg_head, *msg_tail;
    uint32_t msg_count;
    int busy;
    int read_paused;  /* too many messages wait for the handler */
    int out_paused;   /* control frames (pongs) filled the send queue */
    int in_ready;
    struct mw_conn *ready_next;
    uint64_t handler_started_hr;

    struct mw_conn *tcp_prev, *tcp_next; /* every connection of the worker */

    mw_memberships memberships[MW_ROOMS_KINDS]; /* rooms, and the user index */
    char *user_key;      /* the token's sub (NULL: anonymous) */
    char *claims_json;   /* the token's claims, for the Lua side (freed after connect) */
    double token_expires_at_ms; /* 0: no expiry */

    /* rate limit: a token bucket, refilled on use */
    double tokens;
    uint64_t tokens_at_ms;
    uint32_t refusals;

    /* heartbeat: a protocol ping was sent and its pong is awaited */
    int awaiting_pong;
    uint64_t ping_sent_ms, last_ping_ms;
    /* registry links (mw_clients) */
    struct mw_conn *all_prev, *all_next, *hash_next;
    int registered;
} mw_conn;

/* Starts serving an accepted socket (non-blocking), which it owns from now on (see mw_accept). */
void mw_conn_accept(struct mw_worker *w, int fd);
/* Queues a frame for the client, taking a new reference. Returns 0, or -1 when the client can
 * take no more data (closing), in which case no reference is taken. */
int mw_conn_send(mw_conn *c, mw_frame *f);
/* Starts the WebSocket close handshake with code and reason. */
void mw_conn_close_ws(mw_conn *c, uint16_t code, const char *reason);
/* Closes the socket now; the client is unregistered and freed after libuv lets go of it. */
void mw_conn_close(mw_conn *c);
/* Called by the worker once per loop iteration for every connection with output. */
void mw_conn_flush(mw_conn *c);
/* Called by the worker for connections whose queued messages may now run. */
void mw_conn_run_queued(mw_conn *c);
/* The handler of the message in progress finished (after having waited on I/O). */
void mw_conn_handler_finished(mw_conn *c, int errored);
/* Closes the socket with a reset (the peer is not reading): nothing stays queued for it. */
void mw_conn_abort(mw_conn *c);
/* Frees a closed connection that was kept because it was on a worker list. */
void mw_conn_free(mw_conn *c);

#endif
