/* mw_lapi_server: what the webSocketServer binding (core.send, core.room_join, ...) works on:
 * the hub's fan-out, this worker's identity, and one report upward (a handler that waited on
 * I/O finished), filled in by the owner. */
#ifndef MW_LAPI_SERVER_H
#define MW_LAPI_SERVER_H

#include "mw_fanout.h"
#include "mw_metrics.h"

struct lua_State;

typedef struct mw_lapi_server {
    mw_fanout *fanout;
    const char *worker_id;
    mw_metrics_slot *m; /* stats(): messagesIn, messagesOut */
    /* core.handler_finished: the handler of c's message, which had waited on I/O, is done. */
    void (*handler_finished)(void *owner, mw_client *c, int errored);
    void *owner;
} mw_lapi_server;

/* Adds the functions to the moonwire.core table on top of the stack; ctx is an mw_lapi_server
 * (void * so that it can open a binding family like any other). [-0, +0] */
void mw_lapi_server_inject(struct lua_State *L, void *ctx);

/* The text of a raw message being handled, valid UTF-8 already (the frame layer checked it):
 * sendRaw of that very string skips checking it again. Each call adds one (a batch may hold
 * several); NULL forgets them all, when the handlers return. */
void mw_lapi_server_checked_text(const char *text, size_t len);

/* sendRaw for LuaJIT's FFI (core.send_raw_ffi is its address; server.lua declares it): 1 sent,
 * 0 no such client, or one of these. */
enum { MW_SEND_RAW_IN_LUA = -1, MW_SEND_RAW_NOT_UTF8 = -2, MW_SEND_RAW_NO_MEMORY = -3 };
int mw_lapi_server_ffi_send_raw(const char *id, size_t idlen, const char *payload, size_t len, int binary);

#endif
