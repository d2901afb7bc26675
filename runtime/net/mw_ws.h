/* mw_ws: one WebSocket session's receive pump around wslay's event API, free of sockets: bytes
 * go in with mw_ws_feed, whole messages come out through a callback, and control frames
 * (pong, close) come out as bytes through another. Limits are enforced before allocation. An
 * idle session holds no wslay context: one is borrowed from a pool only while a frame or
 * message is partly received or a close handshake is on (the rule is in mw_ws.c). */
#ifndef MW_WS_H
#define MW_WS_H

#include <stddef.h>
#include <stdint.h>

#include "mw_deflate.h"
#include "mw_wsctx_pool.h"

typedef struct mw_ws mw_ws;

typedef struct mw_ws_handler {
    /* A complete message: opcode 1 (text, valid UTF-8) or 2 (binary). data lives until return. */
    void (*on_message)(void *owner, int opcode, const uint8_t *data, size_t len);
    /* Bytes to write to the peer (wslay's control frames), in order. Return 0, or -1 to fail. */
    int (*on_output)(void *owner, const uint8_t *data, size_t len);
    /* A pong arrived (may be NULL). */
    void (*on_pong)(void *owner);
} mw_ws_handler;

typedef struct mw_ws_limits {
    size_t max_message_size;
    unsigned max_fragments;
    int allow_binary; /* 0: a binary message closes with 1003 */
    mw_wsctx_pool *pool; /* the worker's spare contexts (mw_ws_pool_init); NULL: made and freed per use */
    /* the worker's codec when permessage-deflate was negotiated (RSV1 marks a compressed
     * message, max_message_size bounds it inflated), else NULL (RSV1 closes with 1002) */
    mw_deflate *inflate;
} mw_ws_limits;

/* Sets up a pool of contexts for sessions (keeping at most max_spare spares). */
void mw_ws_pool_init(mw_wsctx_pool *pool, size_t max_spare);

mw_ws *mw_ws_new(const mw_ws_limits *limits, const mw_ws_handler *handler, void *owner);
void mw_ws_free(mw_ws *ws);

/* Processes bytes from the peer. Returns 0, or -1 on a failure that leaves nothing to say to
 * the peer (out of memory, output refused): drop the connection. */
int mw_ws_feed(mw_ws *ws, const uint8_t *data, size_t len);
/* Emits the control frames wslay has queued through on_output. Returns 0 or -1 as above. */
int mw_ws_flush(mw_ws *ws);
/* Queues a ping with a small payload (for the heartbeat). */
void mw_ws_ping(mw_ws *ws);
/* Queues a close frame (code, reason); data frames must not follow. Idempotent. */
void mw_ws_close(mw_ws *ws, uint16_t code, const char *reason);

int mw_ws_closing(const mw_ws *ws);       /* a close was queued or received: send no more data */
int mw_ws_close_sent(const mw_ws *ws);
int mw_ws_close_received(const mw_ws *ws);
int mw_ws_want_read(const mw_ws *ws);
int mw_ws_done(const mw_ws *ws);          /* nothing left to read or write: close the socket */
/* The code to report for this session: the one received, else the one sent, else 1006. */
uint16_t mw_ws_close_code(const mw_ws *ws);
/* The reason that came with the peer's close frame (UTF-8, possibly empty). */
const char *mw_ws_close_reason(const mw_ws *ws);
/* A frame or message is partly received (a read timeout applies; see mw_conn). */
int mw_ws_partial(const mw_ws *ws);
/* The session holds a wslay context now (1) or is idle (0). */
int mw_ws_has_context(const mw_ws *ws);
/* Bytes of the data message partly received (declared lengths: wslay allocates them). */
uint64_t mw_ws_held_bytes(const mw_ws *ws);

#endif
