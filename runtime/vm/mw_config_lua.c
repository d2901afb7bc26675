/* mw_config_lua: the config schema, defaults and merge rules live in lua/moonwire/config.lua (one
 * place, also used by each worker's Lua state); this file runs it and copies what C needs. */
#include "mw_config_lua.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mw_config_push(lua_State *L, const mw_config *cfg, char *err, size_t errlen)
{
    int base = lua_gettop(L);
    /* runtime lua/ first so `require "moonwire.x"` finds ours; the app's lib/ next */
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s/lib/?.lua;%s/lib/?/init.lua;",
                    cfg->runtime_dir, cfg->runtime_dir, cfg->app_dir, cfg->app_dir);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "moonwire.config");
    if (lua_pcall(L, 1, 1, 0) != 0)
        goto fail;
    lua_getfield(L, -1, "load");
    lua_remove(L, -2);
    lua_pushstring(L, cfg->app_dir);
    lua_createtable(L, 0, cfg->n_overrides);
    for (int i = 0; i < cfg->n_overrides; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, cfg->overrides[i].value);
        lua_setfield(L, -2, "value");
        lua_pushstring(L, cfg->overrides[i].origin);
        lua_setfield(L, -2, "origin");
        lua_setfield(L, -2, cfg->overrides[i].key);
    }
    if (lua_pcall(L, 2, 1, 0) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "unknown error");
    lua_settop(L, base);
    return -1;
}

/* Reads a dotted path ("limits.maxMessageSize") from the table at the top of the stack. */
static int get_path(lua_State *L, const char *path)
{
    char part[128];
    lua_pushvalue(L, -1);
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof(part))
            n = sizeof(part) - 1;
        memcpy(part, path, n);
        part[n] = '\0';
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_pushnil(L);
            return 0;
        }
        lua_getfield(L, -1, part);
        lua_remove(L, -2);
        path += n + (dot ? 1 : 0);
    }
    return 1;
}

static double num(lua_State *L, const char *path, double dflt)
{
    get_path(L, path);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

static void str(lua_State *L, const char *path, char *out, size_t size)
{
    get_path(L, path);
    snprintf(out, size, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
}

static int boolean(lua_State *L, const char *path)
{
    get_path(L, path);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

int mw_config_load(mw_config *cfg, char *err, size_t errlen)
{
    char buf[64];
    lua_State *L = luaL_newstate();
    if (!L) {
        snprintf(err, errlen, "out of memory creating a Lua state");
        return -1;
    }
    luaL_openlibs(L);
    if (mw_config_push(L, cfg, err, errlen) != 0) {
        lua_close(L);
        return -1;
    }
    str(L, "host", cfg->host, sizeof(cfg->host));
    cfg->port = (int)num(L, "port", 8080);
    str(L, "path", cfg->path, sizeof(cfg->path));
    get_path(L, "workers");
    if (lua_type(L, -1) == LUA_TSTRING) /* "auto": one per online CPU */
        cfg->workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
    else
        cfg->workers = (int)lua_tonumber(L, -1);
    if (cfg->workers < 1)
        cfg->workers = 1;
    lua_pop(L, 1);
    str(L, "redis.url", cfg->redis_url, sizeof(cfg->redis_url));
    cfg->redis_timeout = num(L, "redis.timeout", 5);
    str(L, "redis.prefix", cfg->redis_prefix, sizeof(cfg->redis_prefix));
    str(L, "database.url", cfg->database_url, sizeof(cfg->database_url));
    cfg->dev = boolean(L, "dev");
    get_path(L, "raw");
    cfg->has_raw = lua_isfunction(L, -1);
    lua_pop(L, 1);
    get_path(L, "auth.secret");
    cfg->has_jwt_secret = lua_isstring(L, -1);
    lua_pop(L, 1);
    str(L, "auth.algorithm", cfg->auth_algorithm, sizeof(cfg->auth_algorithm));
    str(L, "auth.secret", cfg->auth_secret, sizeof(cfg->auth_secret));
    str(L, "auth.publicKeyFile", cfg->auth_public_key_file, sizeof(cfg->auth_public_key_file));
    cfg->auth_leeway = num(L, "auth.leeway", 30);
    cfg->auth_refresh_before = num(L, "auth.refreshBefore", 30);
    str(L, "log.level", buf, sizeof(buf));
    mw_log_level_parse(buf, &cfg->log_level);
    str(L, "log.format", buf, sizeof(buf));
    cfg->log_format = strcmp(buf, "json") == 0 ? MW_LOG_JSON : MW_LOG_TEXT;

    mw_limits *lim = &cfg->limits;
    lim->max_message_size = (size_t)num(L, "limits.maxMessageSize", 65536);
    lim->max_fragments = (unsigned)num(L, "limits.maxFragments", 1024);
    lim->max_header_bytes = (size_t)num(L, "limits.maxHeaderBytes", 8192);
    lim->handshake_timeout = num(L, "limits.handshakeTimeout", 10);
    lim->message_timeout = num(L, "limits.messageTimeout", 30);
    lim->max_connections = (long)num(L, "limits.maxConnections", 0);
    lim->send_queue_bytes = (size_t)num(L, "limits.sendQueueBytes", 1048576);
    lim->rate_messages = num(L, "limits.rate.messages", 100);
    lim->rate_per = num(L, "limits.rate.per", 1);
    lim->rate_burst = num(L, "limits.rate.burst", 200);
    lim->json_depth = (int)num(L, "limits.jsonDepth", 32);
    lim->handler_timeout = num(L, "limits.handlerTimeout", 5);
    lim->lua_memory = (size_t)num(L, "limits.luaMemory", 268435456);
    lim->shutdown_timeout = num(L, "limits.shutdownTimeout", 8);
    cfg->heartbeat_interval = num(L, "heartbeat.interval", 25);
    cfg->heartbeat_timeout = num(L, "heartbeat.timeout", 10);
    cfg->inactivity_check_interval = num(L, "inactivity.checkInterval", 60);
    cfg->inactivity_max = num(L, "inactivity.maxInactive", 300);
    cfg->cluster_heartbeat = num(L, "cluster.heartbeat", 5);
    str(L, "api.key", cfg->api_key, sizeof(cfg->api_key));
    cfg->api_rate_requests = num(L, "api.rate.requests", 1000);
    cfg->api_rate_per = num(L, "api.rate.per", 1);
    cfg->api_rate_burst = num(L, "api.rate.burst", 2000);
    cfg->compression = boolean(L, "compression.enabled");
    cfg->compression_threshold = (size_t)num(L, "compression.threshold", 256);
    cfg->compression_level = (int)num(L, "compression.level", 1);
    lua_close(L);
    return 0;
}
