/* mw_session: what the app keeps for one WebSocket client, between its connection (net) and the
 * Lua handlers (vm): admission (token, onAuthenticate), the queue of messages waiting for the
 * client's previous handler, the rate limit, handler bookkeeping, and the client's registration
 * in the hub at open and close. Its functions are the worker's mw_conn_handler callbacks (the
 * owner pointer is the worker). */
#ifndef MW_SESSION_H
#define MW_SESSION_H

#include <stdint.h>

#include "mw_clients.h"
#include "mw_conn.h"

#define MW_MAX_QUEUED_MESSAGES 64 /* past this, stop reading from the client */

typedef struct mw_msg {
    struct mw_msg *next;
    int opcode;
    uint32_t len;
    uint8_t data[];
} mw_msg;

typedef struct mw_session {
    mw_client client; /* first: the hub's record of this client is the session */
    mw_conn *conn;
    /* messages of this client wait here while its previous handler is still running */
    mw_msg *msg_head, *msg_tail;
    uint32_t msg_count;
    int busy;        /* the handler of a message waits on I/O */
    int read_paused; /* too many messages wait for the handler */
    uint64_t handler_started_hr;
    /* rate limit: a token bucket, refilled on use */
    double tokens;
    uint64_t tokens_at_ms;
    uint32_t refusals;
    double token_expires_at_ms; /* 0: no expiry (exp + leeway, ms) */
    int expiring_sent;          /* auth/expiring was sent for the current token */
} mw_session;

static inline mw_session *mw_session_of(mw_client *c) { return (mw_session *)c; }

/* mw_conn_handler callbacks; owner: the mw_worker. */
void mw_session_admit(void *owner, mw_conn *c, const mw_http_request *r, mw_conn_admission *out);
void mw_session_open(void *owner, mw_conn *c);
void mw_session_message(void *owner, mw_conn *c, int opcode, const uint8_t *data, size_t len);
/* Every message of one read was delivered: runs the raw messages batched meanwhile. */
void mw_session_read_done(void *owner, mw_conn *c);
/* Raw mode: runs the messages of one read that mw_lvm batched, now (before anything else of
 * that client reaches Lua). owner: the mw_worker. */
struct mw_worker;
void mw_session_run_batch(struct mw_worker *w);
/* Runs the queued messages that may run now (deferred after a handler finished). */
void mw_session_run_queued(void *owner, mw_conn *c);
void mw_session_closed(void *owner, mw_conn *c, uint16_t code, const char *reason);
void mw_session_release(void *owner, mw_conn *c);
/* Moves the token expiry of client id (auth/refresh); mw_lapi_auth_ctx.set_expiry. */
int mw_session_set_expiry(void *owner, const char *id, size_t len, double expires_ms);
/* The handler of c's message, which had waited on I/O, finished (mw_lapi_server's report). */
void mw_session_handler_finished(void *owner, mw_client *c, int errored);

#endif
