/* mw_lvm: the worker's LuaJIT state. C reaches Lua only through the functions that
 * lua/moonwire/runtime.lua's start() returns (hooks.lua's table, kept as registry references),
 * each called under lua_pcall so that nothing a controller does can unwind through C. */
#include "mw_lvm.h"

#include "mw_config_lua.h"
#include "mw_envelope.h"
#include "mw_json.h"

#include <assert.h>
#include <dirent.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mw_async.h"
#include "mw_http.h"
#include "mw_lapi.h"
#include "mw_lapi_server.h"
#include "mw_lco.h"
#include "mw_lguard.h"
#include "mw_log.h"
#include "mw_reply.h"
#include "mw_util.h"

struct mw_lvm {
    lua_State *L;
    mw_lguard *guard; /* memory cap and time budget (NULL for `moonwire check`) */
    mw_async_host *async; /* the bindings' pending calls; resumes and spawns coroutines */
    int ref_on_message, ref_on_connect, ref_on_disconnect, ref_on_started, ref_admit;
    int ref_resume, ref_spawn, ref_on_redis_message, ref_on_redis_state, ref_on_bus_op, ref_reload;
    int ref_on_expiring;
    int ref_on_invalid, ref_on_runtime_error; /* a refused envelope; the runtime failed a message */
    int ref_decode;                     /* l_decode, made once */
    int ref_on_api;
    mw_lco *lco;                        /* the message coroutines C resumes */
    int ref_raw_batch;                  /* hooks.raw_batch_body: several raw messages of one client */
    lua_State *batch;                   /* the coroutine a batch of raw messages is pushed onto */
    int batch_n;                        /* messages in it */
    char batch_client[MW_CLIENT_ID_LEN];
    int raw;                            /* app.lua raw: every message goes to on_message as is */
    char raw_label[96], raw_source[160]; /* raw's site for the watchdog (hooks.raw_site) */
    size_t raw_label_len, raw_source_len; /* 0: not known, Lua pushes it */
    int raw_line;
    int json_depth;                     /* limits.jsonDepth */
    /* the message l_decode decodes (set just before the call: no Lua string of it is made) */
    const char *msg_client;
    const uint8_t *msg;
    size_t msg_len;
    int msg_decoding; /* l_decode has not finished decoding it */
};

lua_State *mw_lvm_state(mw_lvm *vm) { return vm->L; }

static int l_decode(lua_State *L);

/* core.list_dir(path [, folders]) -> sorted array of the *.lua file names in path, or with
 * folders true the names of its subfolders (for `check` walking lib/); {} when absent.
 * Names starting with a dot are skipped. */
static int l_list_dir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int folders = lua_toboolean(L, 2);
    DIR *d = opendir(path);
    lua_newtable(L);
    if (!d)
        return 1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.')
            continue;
        int wanted;
        if (folders) {
            /* d_type is DT_UNKNOWN on some file systems: stat then (it also follows symlinks) */
            struct stat st;
            char full[4096];
            snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
            wanted = e->d_type == DT_DIR ||
                     ((e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) && stat(full, &st) == 0 &&
                      S_ISDIR(st.st_mode));
        } else {
            wanted = len > 4 && strcmp(e->d_name + len - 4, ".lua") == 0;
        }
        if (wanted) {
            lua_pushstring(L, e->d_name);
            lua_rawseti(L, -2, ++n);
        }
    }
    closedir(d);
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    return 1;
}

/* Creates a state with the standard libraries and package.loaded["moonwire.core"]: list_dir,
 * the guard's functions and those of the n binding families. [-0, +0]; returns NULL with err
 * set on failure. */
static lua_State *new_state(const mw_lapi_family *families, size_t n, mw_lguard *guard, char *err, size_t errlen)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        snprintf(err, errlen, "out of memory creating the Lua state");
        return NULL;
    }
    if (guard)
        mw_lguard_wrap(guard, L);
    luaL_openlibs(L);
    /* moonwire.core: the C half of the bindings */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_newtable(L);
    lua_pushcfunction(L, l_list_dir);
    lua_setfield(L, -2, "list_dir");
    if (guard)
        mw_lguard_inject(guard, L);
    for (size_t i = 0; i < n; i++)
        families[i].open(L, families[i].ctx);
    lua_setfield(L, -2, "moonwire.core");
    mw_json_push_module(L); /* the wire codec; lua/moonwire/json.lua wraps it */
    mw_reply_add_functions(L); /* and the reply frame's encoder (frames.lua) */
    mw_envelope_add_functions(L); /* and the message envelope's decoder (hooks.lua) */
    lua_setfield(L, -2, "moonwire.wire");
    lua_pop(L, 2);
    return L;
}

/* Pushes the options table handed to runtime.start / runtime.check; config_index is the
 * absolute stack index of the merged config table. [-0, +1] */
static void push_options(lua_State *L, const mw_config *cfg, const mw_lvm_worker *w, int config_index)
{
    lua_newtable(L);
    lua_pushvalue(L, config_index);
    lua_setfield(L, -2, "config");
    lua_pushstring(L, cfg->app_dir);
    lua_setfield(L, -2, "app_dir");
    lua_pushstring(L, cfg->runtime_dir);
    lua_setfield(L, -2, "runtime_dir");
    lua_pushboolean(L, cfg->dev);
    lua_setfield(L, -2, "dev");
    if (w) {
        lua_newtable(L);
        lua_pushstring(L, w->id);
        lua_setfield(L, -2, "id");
        lua_pushinteger(L, w->index);
        lua_setfield(L, -2, "index");
        lua_pushinteger(L, w->count);
        lua_setfield(L, -2, "count");
        lua_pushstring(L, w->tag);
        lua_setfield(L, -2, "tag");
        lua_setfield(L, -2, "worker");
    }
}

static int take_ref(lua_State *L, int table, const char *name)
{
    lua_getfield(L, table, name);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return LUA_NOREF;
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

mw_lvm *mw_lvm_new(const mw_config *cfg, const mw_lvm_worker *w, const mw_lapi_family *families, size_t n,
                   char *err, size_t errlen)
{
    mw_lvm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    vm->guard = mw_lguard_new(cfg->limits.lua_memory, cfg->limits.handler_timeout);
    if (vm->guard) /* for the watchdog's line: how many clients a replacement drops */
        mw_lguard_watch_clients(vm->guard, w ? w->client_count : NULL);
    vm->L = vm->guard ? new_state(families, n, vm->guard, err, errlen) : NULL;
    if (!vm->L) {
        if (!vm->guard)
            snprintf(err, errlen, "out of memory");
        mw_lguard_free(vm->guard);
        free(vm);
        return NULL;
    }
    lua_State *L = vm->L;
    vm->async = mw_async_host_new(L, vm->guard);
    if (!vm->async) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (mw_lguard_start(vm->guard, L) != 0) {
        snprintf(err, errlen, "cannot start the handler watchdog thread");
        goto fail;
    }
    if (mw_config_push(L, cfg, err, errlen) != 0)
        goto fail;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "moonwire.runtime");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        goto fail;
    }
    lua_getfield(L, -1, "start");
    push_options(L, cfg, w, 1);
    /* not under the time budget: loading an app may legitimately take long */
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error loading the app");
        goto fail;
    }
    int hooks = lua_gettop(L);
    vm->ref_on_message = take_ref(L, hooks, "on_message");
    vm->ref_on_connect = take_ref(L, hooks, "on_connect");
    vm->ref_on_disconnect = take_ref(L, hooks, "on_disconnect");
    vm->ref_on_started = take_ref(L, hooks, "on_started");
    vm->ref_admit = take_ref(L, hooks, "admit");
    vm->ref_resume = take_ref(L, hooks, "resume");
    vm->ref_spawn = take_ref(L, hooks, "spawn");
    vm->ref_on_redis_message = take_ref(L, hooks, "on_redis_message");
    vm->ref_on_redis_state = take_ref(L, hooks, "on_redis_state");
    vm->ref_on_bus_op = take_ref(L, hooks, "on_bus_op");
    vm->ref_reload = take_ref(L, hooks, "reload");
    vm->ref_on_expiring = take_ref(L, hooks, "on_expiring");
    vm->ref_on_api = take_ref(L, hooks, "on_api");
    vm->ref_on_invalid = take_ref(L, hooks, "on_invalid");
    vm->ref_on_runtime_error = take_ref(L, hooks, "on_runtime_error");
    vm->raw = cfg->has_raw;
    vm->ref_raw_batch = take_ref(L, hooks, "raw_batch_body");
    vm->lco = mw_lco_new(L, hooks);
    if (!vm->lco) {
        snprintf(err, errlen, "the runtime's hooks lack the message loop (moonwire.hooks)");
        goto fail;
    }
    lua_getfield(L, hooks, "raw_site"); /* {label, source, line} under app.lua raw */
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "label");
        lua_getfield(L, -2, "source");
        lua_getfield(L, -3, "line");
        snprintf(vm->raw_label, sizeof(vm->raw_label), "%s", lua_isstring(L, -3) ? lua_tostring(L, -3) : "raw");
        snprintf(vm->raw_source, sizeof(vm->raw_source), "%s", lua_isstring(L, -2) ? lua_tostring(L, -2) : "?");
        vm->raw_line = (int)lua_tointeger(L, -1);
        vm->raw_label_len = strlen(vm->raw_label);
        vm->raw_source_len = strlen(vm->raw_source);
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    vm->json_depth = cfg->limits.json_depth;
    lua_pushlightuserdata(L, vm);
    lua_pushcclosure(L, l_decode, 1);
    vm->ref_decode = luaL_ref(L, LUA_REGISTRYINDEX);
    /* called without a check: runtime.start returns them all (the others may be absent) */
    assert(vm->ref_on_message != LUA_NOREF && vm->ref_admit != LUA_NOREF && vm->ref_resume != LUA_NOREF &&
           vm->ref_on_runtime_error != LUA_NOREF && vm->ref_on_invalid != LUA_NOREF);
    mw_async_host_set_hooks(vm->async, vm->ref_resume, vm->ref_spawn);
    lua_settop(L, 0);
    return vm;
fail:
    mw_lguard_stop(vm->guard);
    mw_async_host_free(vm->async);
    mw_lco_free(vm->lco);
    lua_close(L);
    mw_lguard_free(vm->guard);
    free(vm);
    return NULL;
}

void mw_lvm_free(mw_lvm *vm)
{
    if (!vm)
        return;
    mw_lguard_stop(vm->guard);
    mw_async_host_free(vm->async); /* calls still pending drop their completions */
    mw_lco_free(vm->lco);
    lua_close(vm->L);
    mw_lguard_free(vm->guard);
    free(vm);
}

/* Every call from C into Lua goes through here (or mw_async, for the bindings): under
 * lua_pcall and the guard's clock; a failure is logged as the runtime's own error. */
static int guarded_pcall(mw_lvm *vm, int nargs, int nresults, const char *where)
{
    return mw_lguard_pcall(vm->guard, vm->L, nargs, nresults, where);
}

/* Decodes the message vm->msg names: returns clientId, type, action, data, requestId (the body's
 * arguments), or the kind of refusal (one integer) when the envelope is refused. Runs under a
 * protected call, so the decoded values count against the memory cap like any other Lua
 * allocation, and running out of memory is an error, not a panic. */
static int l_decode(lua_State *L)
{
    mw_lvm *vm = lua_touserdata(L, lua_upvalueindex(1));
    lua_settop(L, 0);
    lua_pushlstring(L, vm->msg_client, MW_CLIENT_ID_LEN);
    int kind = mw_envelope_decode(L, (const char *)vm->msg, vm->msg_len, vm->json_depth);
    vm->msg_decoding = 0;
    if (kind == MW_ENVELOPE_OK)
        return 5;
    lua_pushinteger(L, kind);
    return 1;
}

/* The client hears that its text was refused (kind: mw_envelope), or, for kind < 0, that the
 * runtime failed on its message. */
static int refuse(mw_lvm *vm, const char *client_id, int kind)
{
    lua_State *L = vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, kind < 0 ? vm->ref_on_runtime_error : vm->ref_on_invalid);
    lua_pushlstring(L, client_id, MW_CLIENT_ID_LEN);
    lua_pushinteger(L, kind);
    guarded_pcall(vm, 2, 0, kind < 0 ? "on_runtime_error" : "on_invalid");
    return kind < 0 ? MW_LVM_FAILED : MW_LVM_DONE;
}

int mw_lvm_on_message(mw_lvm *vm, const char *client_id, int opcode, const uint8_t *data, size_t len)
{
    lua_State *L = vm->L;
    if (vm->raw) {
        /* straight into a pooled coroutine (mw_lco): the body is the router's handle_raw */
        lua_State *co = mw_lco_begin(vm->lco);
        lua_pushlstring(co, client_id, MW_CLIENT_ID_LEN);
        lua_pushlstring(co, (const char *)data, len);
        if (opcode == 1)
            mw_lapi_server_checked_text(lua_tostring(co, -1), len);
        lua_pushboolean(co, opcode == 2);
        /* the handler's site is pushed from here: a call into C from the traced Lua code costs more */
        lua_pushboolean(co, vm->raw_label_len > 0);
        if (vm->raw_label_len > 0)
            mw_lguard_push_fixed_site(vm->guard, vm->raw_label, vm->raw_label, vm->raw_label_len, vm->raw_source,
                                      vm->raw_source_len, vm->raw_line);
        int rv = mw_lco_run(vm->lco, vm->guard, 4, client_id, MW_CLIENT_ID_LEN);
        mw_lapi_server_checked_text(NULL, 0);
        return rv < 0 ? MW_LVM_FAILED : rv;
    }
    /* the envelope is decoded in C (mw_envelope): Lua gets its parts, not the text */
    vm->msg_client = client_id;
    vm->msg = data;
    vm->msg_len = len;
    vm->msg_decoding = 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_decode);
    int top = lua_gettop(L) - 1;
    if (guarded_pcall(vm, 0, LUA_MULTRET, "on_message") != 0)
        return refuse(vm, client_id, vm->msg_decoding ? MW_ENVELOPE_NOT_JSON : -1); /* out of memory */
    if (lua_gettop(L) - top != 5) {
        int kind = (int)lua_tointeger(L, -1);
        lua_settop(L, top);
        return refuse(vm, client_id, kind);
    }
    /* straight into a pooled coroutine (mw_lco): the body is the router's handle */
    lua_State *co = mw_lco_begin(vm->lco);
    lua_xmove(L, co, 5);
    int rv = mw_lco_run(vm->lco, vm->guard, 5, client_id, MW_CLIENT_ID_LEN);
    return rv < 0 ? refuse(vm, client_id, -1) : rv;
}

/* ---- raw messages in batches -------------------------------------------------------------
 * Under app.lua `raw` the messages of one read (an echo client sends several at once) are
 * pushed onto one coroutine as they are parsed and run by one resume: the resume, the guard's
 * entry and the handler's site are paid once per read, not once per message. The Lua side
 * (router.handle_raw_batch) runs them in order, each under its own time limit, exactly as
 * separate messages would run; one that waits on I/O holds the rest back. */

int mw_lvm_raw_add(mw_lvm *vm, const char *client_id, int opcode, const uint8_t *data, size_t len)
{
    lua_State *co = vm->batch;
    if (vm->batch_n == 0) {
        co = vm->batch = mw_lco_begin_with(vm->lco, vm->ref_raw_batch);
        memcpy(vm->batch_client, client_id, MW_CLIENT_ID_LEN);
        lua_pushlstring(co, client_id, MW_CLIENT_ID_LEN);
        lua_pushboolean(co, vm->raw_label_len > 0); /* the site is pushed by C */
        /* a table, not varargs: a loop over a table stays in LuaJIT's compiled code. [0] is
         * the Lua side's position in it (handle_raw_batch) */
        lua_createtable(co, MW_LVM_RAW_BATCH + 1, 0);
        lua_pushnil(co); /* which messages are binary: made for the first binary one */
    }
    int k = ++vm->batch_n;
    lua_pushlstring(co, (const char *)data, len);
    if (opcode == 1)
        mw_lapi_server_checked_text(lua_tostring(co, -1), len);
    lua_rawseti(co, -3, k);
    if (opcode == 2) {
        if (lua_isnil(co, -1)) {
            lua_pop(co, 1);
            lua_createtable(co, MW_LVM_RAW_BATCH, 0);
        }
        lua_pushboolean(co, 1);
        lua_rawseti(co, -2, k);
    }
    return k >= MW_LVM_RAW_BATCH;
}

int mw_lvm_raw_run(mw_lvm *vm, int *count)
{
    int n = vm->batch_n;
    *count = n;
    if (n == 0)
        return MW_LVM_DONE;
    vm->batch_n = 0;
    lua_pushinteger(vm->batch, n);
    if (vm->raw_label_len > 0)
        mw_lguard_push_fixed_site(vm->guard, vm->raw_label, vm->raw_label, vm->raw_label_len, vm->raw_source,
                                  vm->raw_source_len, vm->raw_line);
    int rv = mw_lco_run(vm->lco, vm->guard, 5, vm->batch_client, MW_CLIENT_ID_LEN);
    mw_lapi_server_checked_text(NULL, 0);
    vm->batch = NULL;
    return rv < 0 ? MW_LVM_FAILED : rv;
}

static void call_hook(mw_lvm *vm, int ref, const char *name, int nargs)
{
    lua_State *L = vm->L;
    if (ref == LUA_NOREF) {
        lua_pop(L, nargs);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_insert(L, -(nargs + 1));
    guarded_pcall(vm, nargs, 0, name);
}

void mw_lvm_on_connect(mw_lvm *vm, const char *client_id)
{
    lua_pushlstring(vm->L, client_id, MW_CLIENT_ID_LEN);
    call_hook(vm, vm->ref_on_connect, "on_connect", 1);
}

void mw_lvm_on_expiring(mw_lvm *vm, const char *client_id)
{
    if (vm->ref_on_expiring == LUA_NOREF)
        return;
    lua_pushlstring(vm->L, client_id, MW_CLIENT_ID_LEN);
    call_hook(vm, vm->ref_on_expiring, "on_expiring", 1);
}

void mw_lvm_on_disconnect(mw_lvm *vm, const char *client_id, int code, const char *reason,
                          const char *const *rooms, const uint32_t *room_lens, uint32_t n)
{
    lua_State *L = vm->L;
    lua_pushlstring(L, client_id, MW_CLIENT_ID_LEN);
    lua_pushinteger(L, code);
    lua_pushstring(L, reason ? reason : "");
    lua_createtable(L, (int)n, 0);
    for (uint32_t i = 0; i < n; i++) {
        lua_pushlstring(L, rooms[i], room_lens[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    call_hook(vm, vm->ref_on_disconnect, "on_disconnect", 4);
}

/* Pushes {path, query, headers = {lowercased = value}, remoteAddress, origin}. [-0, +1] */
static void push_request(lua_State *L, const mw_http_request *r, const char *remote)
{
    const char *path, *query;
    size_t plen, qlen;
    mw_http_url_parts(r, &path, &plen, &query, &qlen);
    lua_createtable(L, 0, 5);
    lua_pushlstring(L, path, plen);
    lua_setfield(L, -2, "path");
    /* the app gets the claims, never the token: the query without it, no Authorization header */
    mw_http_credentials cred;
    char *rest = lua_newuserdata(L, qlen ? qlen : 1); /* collected, even if a push below throws */
    mw_http_credentials_read(r, NULL, 0, rest, &cred);
    lua_pushlstring(L, rest, cred.query_len);
    lua_setfield(L, -3, "query");
    lua_pop(L, 1);
    lua_pushstring(L, remote);
    lua_setfield(L, -2, "remoteAddress");
    lua_createtable(L, 0, r->n_headers);
    for (int i = 0; i < r->n_headers; i++) {
        const mw_http_header *h = &r->headers[i];
        if (cred.hide[i])
            continue;
        char name[256];
        size_t n = h->name_len < sizeof(name) ? h->name_len : sizeof(name) - 1;
        for (size_t k = 0; k < n; k++) {
            char ch = r->buf[h->name_off + k];
            name[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        }
        lua_pushlstring(L, name, n);
        lua_pushlstring(L, r->buf + h->value_off, h->value_len);
        lua_settable(L, -3);
    }
    lua_setfield(L, -2, "headers");
    size_t olen;
    const char *origin = mw_http_header_value(r, "Origin", &olen);
    if (origin) {
        lua_pushlstring(L, origin, olen);
        lua_setfield(L, -2, "origin");
    }
}

void mw_lvm_admit(mw_lvm *vm, const mw_http_request *r, const char *remote, const char *claims_json,
                  const char *token_error, int has_token, mw_admission *out)
{
    lua_State *L = vm->L;
    memset(out, 0, sizeof(*out));
    out->status = 500;
    snprintf(out->reason, sizeof(out->reason), "Admission check failed");
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_admit);
    push_request(L, r, remote);
    if (claims_json)
        lua_pushstring(L, claims_json);
    else
        lua_pushnil(L);
    if (token_error)
        lua_pushstring(L, token_error);
    else
        lua_pushnil(L);
    lua_pushboolean(L, has_token);
    if (guarded_pcall(vm, 4, 5, "admit") != 0)
        return;
    out->status = (int)lua_tointeger(L, -5);
    if (lua_isstring(L, -4))
        snprintf(out->reason, sizeof(out->reason), "%s", lua_tostring(L, -4));
    else
        out->reason[0] = '\0';
    if (lua_isstring(L, -3))
        out->user_key = strdup(lua_tostring(L, -3));
    out->expires_ms = lua_isnumber(L, -2) ? lua_tonumber(L, -2) : 0;
    if (lua_type(L, -1) == LUA_TSTRING)
        snprintf(out->remote, sizeof(out->remote), "%s", lua_tostring(L, -1));
    lua_pop(L, 5);
}

void mw_lvm_on_redis_message(mw_lvm *vm, const char *pattern, const char *channel, size_t channel_len,
                             const char *payload, size_t payload_len)
{
    lua_State *L = vm->L;
    if (pattern)
        lua_pushstring(L, pattern);
    else
        lua_pushnil(L);
    lua_pushlstring(L, channel, channel_len);
    lua_pushlstring(L, payload, payload_len);
    call_hook(vm, vm->ref_on_redis_message, "on_redis_message", 3);
}

void mw_lvm_on_bus_op(mw_lvm *vm, const char *client_id, const char *json, size_t len)
{
    lua_pushlstring(vm->L, client_id, MW_CLIENT_ID_LEN);
    lua_pushlstring(vm->L, json, len);
    call_hook(vm, vm->ref_on_bus_op, "on_bus_op", 2);
}

void mw_lvm_on_api(mw_lvm *vm, uint64_t ticket, const char *name, size_t name_len, const char *body,
                   size_t body_len)
{
    lua_pushnumber(vm->L, (lua_Number)ticket);
    lua_pushlstring(vm->L, name, name_len);
    lua_pushlstring(vm->L, body, body_len);
    call_hook(vm, vm->ref_on_api, "on_api", 3);
}

void mw_lvm_on_redis_state(mw_lvm *vm, int up)
{
    lua_pushboolean(vm->L, up);
    call_hook(vm, vm->ref_on_redis_state, "on_redis_state", 1);
}

void mw_lvm_on_started(mw_lvm *vm)
{
    call_hook(vm, vm->ref_on_started, "on_started", 0);
}

void mw_lvm_reload(mw_lvm *vm, const char *const *changed, int n)
{
    lua_State *L = vm->L;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, changed[i]);
        lua_rawseti(L, -2, i + 1);
    }
    call_hook(vm, vm->ref_reload, "reload", 1);
}

int mw_lvm_check(const mw_config *cfg, const mw_lapi_family *families, size_t n, int quiet)
{
    char err[4096];
    lua_State *L = new_state(families, n, NULL, err, sizeof(err));
    if (!L) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (mw_config_push(L, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        lua_close(L);
        return 1;
    }
    lua_getglobal(L, "require");
    lua_pushliteral(L, "moonwire.runtime");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    lua_getfield(L, -1, "check");
    push_options(L, cfg, NULL, 1);
    lua_pushboolean(L, quiet);
    lua_setfield(L, -2, "quiet");
    int status = 1;
    if (lua_pcall(L, 1, 1, 0) != 0)
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
    else
        status = lua_toboolean(L, -1) ? 0 : 1;
    lua_close(L);
    return status;
}
