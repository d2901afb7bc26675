/* mw_lvm: the worker's single LuaJIT state: opens the binding families its owner hands it, loads
 * the runtime's Lua half (router, bindings) and the app's controllers, and is the door through
 * which the worker's events reach Lua (the bindings' completions come back through mw_async). */
#ifndef MW_LVM_H
#define MW_LVM_H

#include <stddef.h>
#include <stdint.h>

#include "mw_config.h"
#include "mw_lapi.h"

struct lua_State;

typedef struct mw_lvm mw_lvm;

/* The worker the state serves, as the Lua side sees it (runtime.start's options.worker). */
typedef struct mw_lvm_worker {
    const char *id;             /* host:pid:tag, for logs and stats */
    int index, count;           /* this worker's number, and how many there are */
    const char *tag;            /* the prefix of this worker's clientIds */
    const size_t *client_count; /* read by the watchdog's log line when it replaces the worker */
} mw_lvm_worker;

enum { MW_LVM_DONE = 0, MW_LVM_FAILED = 1, MW_LVM_PENDING = 2 };

/* Creates the state, opens the n binding families into moonwire.core (see mw_lapi.h), loads the
 * app. NULL with a message in err (file:line for Lua errors). */
mw_lvm *mw_lvm_new(const mw_config *cfg, const mw_lvm_worker *worker, const mw_lapi_family *families,
                   size_t n, char *err, size_t errlen);
void mw_lvm_free(mw_lvm *vm);
struct lua_State *mw_lvm_state(mw_lvm *vm);

/* Routes one message (opcode 1 text, 2 binary for the raw handler). Returns MW_LVM_DONE,
 * MW_LVM_FAILED (handler raised; the client got an error frame) or MW_LVM_PENDING (the
 * handler waits on I/O and will call core.handler_finished). */
int mw_lvm_on_message(mw_lvm *vm, const char *client_id, int opcode, const uint8_t *data, size_t len);
/* Under app.lua `raw`: adds a message of client_id to the batch the next mw_lvm_raw_run runs
 * (every message of a batch is one client's; the caller runs the batch before it adds another
 * client's, and before anything else of that client reaches Lua). Returns 1 when the batch is
 * full: run it now. */
#define MW_LVM_RAW_BATCH 16
int mw_lvm_raw_add(mw_lvm *vm, const char *client_id, int opcode, const uint8_t *data, size_t len);
/* Runs the batch (*count: how many messages it had; 0 does nothing): MW_LVM_DONE, MW_LVM_FAILED
 * (one of them raised) or MW_LVM_PENDING (one waits on I/O; the rest run after it, and
 * core.handler_finished comes when the last one is done). */
int mw_lvm_raw_run(mw_lvm *vm, int *count);
void mw_lvm_on_connect(mw_lvm *vm, const char *client_id);
/* The client's token expires within auth.refreshBefore seconds: Lua sends auth/expiring. */
void mw_lvm_on_expiring(mw_lvm *vm, const char *client_id);
/* rooms: the names of the rooms the client was removed from, n of them. */
void mw_lvm_on_disconnect(mw_lvm *vm, const char *client_id, int code, const char *reason,
                          const char *const *rooms, const uint32_t *room_lens, uint32_t n);

struct mw_http_request;
typedef struct mw_admission {
    int status;          /* 101 to accept, else the HTTP status to refuse with */
    char reason[256];
    char *user_key;      /* malloc'd; NULL when anonymous */
    double expires_ms;   /* 0: no token expiry */
    char remote[64];     /* the client's address from a trusted proxy's X-Forwarded-For, or "" */
} mw_admission;

/* Applies the admission policy (origin, token claims, events.onAuthenticate) in Lua.
 * claims_json is the verified token's claims (or NULL); token_error why it failed (or NULL). */
void mw_lvm_admit(mw_lvm *vm, const struct mw_http_request *r, const char *remote,
                  const char *claims_json, const char *token_error,
                  int has_token, mw_admission *out);
void mw_lvm_on_started(mw_lvm *vm);
/* Reloads the app's controllers, jobs and lib/ modules (and the changed runtime modules that
 * can be reloaded); changed: the files that changed (--dev), or n = 0 for everything (SIGHUP). */
void mw_lvm_reload(mw_lvm *vm, const char *const *changed, int n);

/* A message on a channel that app.lua's subscribers listen to. */
void mw_lvm_on_redis_message(mw_lvm *vm, const char *pattern, const char *channel, size_t channel_len,
                             const char *payload, size_t payload_len);

/* Another worker asks for a webSocketServer call on one of our clients (JSON [op, args...]). */
void mw_lvm_on_bus_op(mw_lvm *vm, const char *client_id, const char *json, size_t len);
/* An HTTP API call (POST /api/NAME with body) to run in lua/moonwire/api.lua, which answers
 * through core.api_reply(ticket, ...). */
void mw_lvm_on_api(mw_lvm *vm, uint64_t ticket, const char *name, size_t name_len, const char *body,
                   size_t body_len);
/* The command connection to Redis came up (1) or went down (0). */
void mw_lvm_on_redis_state(mw_lvm *vm, int up);

/* `moonwire check`: compiles config and every controller/job in a fresh state with the n binding
 * families (those that work without a worker); prints errors (and, unless quiet, a one-line
 * summary). Returns 0 when everything compiles, else 1. */
int mw_lvm_check(const mw_config *cfg, const mw_lapi_family *families, size_t n, int quiet);

#endif
