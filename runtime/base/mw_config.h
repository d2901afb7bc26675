/* mw_config: the settings the C runtime needs, read out of the merged config table that
 * lua/moonwire/config.lua builds (defaults < app.lua < environment < flags; the loading is
 * in vm/mw_config_lua.c, which runs that file). */
#ifndef MW_CONFIG_H
#define MW_CONFIG_H

#include <stddef.h>

#include "mw_log.h"

#define MW_MAX_OVERRIDES 32

typedef struct mw_override {
    const char *key;   /* config key, e.g. "port" */
    const char *value; /* as given on the command line or in the environment */
    const char *origin; /* "--port" or "MOONWIRE_PORT", for error messages */
} mw_override;

typedef struct mw_limits {
    size_t max_message_size;
    unsigned max_fragments;
    size_t max_header_bytes;
    double handshake_timeout;
    double message_timeout; /* seconds to receive one message from its first byte; 0: none */
    long max_connections; /* per worker; 0 = derived from the open-file limit */
    size_t send_queue_bytes;
    double rate_messages, rate_per, rate_burst;
    int json_depth;
    double handler_timeout;
    size_t lua_memory;
    double shutdown_timeout;
} mw_limits;

typedef struct mw_config {
    char app_dir[4096];     /* absolute */
    char runtime_dir[4096]; /* folder holding the runtime's lua/ and controllers/ */
    char host[256];
    int port;
    char path[1024];
    int workers;
    char redis_url[1024];    /* empty: none */
    double redis_timeout;
    char redis_prefix[128];
    char database_url[4096];
    int dev;
    int has_raw;             /* app.lua defines raw = function(...) */
    int has_jwt_secret;
    char auth_algorithm[16];
    char auth_secret[4096];
    char auth_public_key_file[4096];
    double auth_leeway;         /* seconds of clock skew allowed on exp/nbf */
    double auth_refresh_before; /* auth/expiring is sent this many seconds before exp */
    mw_log_level log_level;
    mw_log_format log_format;
    mw_limits limits;
    double heartbeat_interval, heartbeat_timeout;
    double inactivity_check_interval, inactivity_max;
    double cluster_heartbeat;
    char api_key[513];       /* api.key / MOONWIRE_API_KEY; empty: /api and /admin answer 404 */
    double api_rate_requests, api_rate_per, api_rate_burst; /* per client address, per worker */
    int compression;              /* permessage-deflate offered to clients (compression.enabled) */
    size_t compression_threshold; /* messages shorter than this go out plain */
    int compression_level;        /* zlib's 0..9 */
    mw_override overrides[MW_MAX_OVERRIDES];
    int n_overrides;
} mw_config;

/* Locates the runtime's lua/ folder (next to the install prefix, or the source tree). */
int mw_config_find_runtime_dir(char *out, size_t size);

/* Adds an override; later ones win. Returns -1 when the table is full. */
int mw_config_add_override(mw_config *cfg, const char *key, const char *value, const char *origin);

#endif
