/* mw_ws: one WebSocket session's receive pump around wslay's event API, free of sockets: bytes
 * go in with mw_ws_feed, whole messages come out through a callback, and control frames
 * (pong, close) come out as bytes through another. Limits are enforced before allocation. */
#ifndef MW_WS_H
#define MW_WS_H

#include <stddef.h>
#include <stdint.h>

#include "mw_deflate.h"

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
    /* the worker's codec when permessage-deflate was negotiated (RSV1 marks a compressed
     * message, max_message_size bounds it inflated), else NULL (RSV1 closes with 1002) */
    mw_deflate *inflate;
} mw_ws_limits;

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

#endif
