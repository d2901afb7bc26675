/* mw_bus: a bus message is "origin\nkind\ntarget\nexclude\ncode\npayload": the publishing
 * worker's tag (it skips its own messages, its clients were served directly), the kind, the
 * target clientId (CLIENT, DISCONNECT), the clientId to skip, a close code, and the payload
 * untouched (the JSON text to frame, or a close reason). Room and user names travel in the
 * channel name, so they need no escaping here. */
#include "mw_bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_conn.h"
#include "mw_log.h"
#include "mw_lvm.h"
#include "mw_redis.h"
#include "mw_worker.h"

#define MW_BUS_CHANNEL_MAX (MW_ROOM_NAME_MAX + 256)

static size_t channel_for(const mw_worker *w, int kind, const char *name, size_t len, char *out, size_t size)
{
    const char *prefix = w->cfg->redis_prefix;
    int n;
    switch (kind) {
    case MW_BUS_ALL: n = snprintf(out, size, "%sall", prefix); break;
    case MW_BUS_ROOM: n = snprintf(out, size, "%sroom:%.*s", prefix, (int)len, name); break;
    case MW_BUS_USER: n = snprintf(out, size, "%suser:%.*s", prefix, (int)len, name); break;
    default: /* CLIENT, DISCONNECT: the worker named by the clientId's tag */
        n = snprintf(out, size, "%sw:%.*s", prefix, MW_WORKER_TAG_LEN, name);
    }
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

void mw_bus_start(mw_worker *w)
{
    char ch[MW_BUS_CHANNEL_MAX];
    if (!w->redis_sub)
        return;
    if (channel_for(w, MW_BUS_ALL, NULL, 0, ch, sizeof(ch)))
        mw_redis_subscribe(w->redis_sub, ch, 0);
    if (channel_for(w, MW_BUS_CLIENT, w->tag, MW_WORKER_TAG_LEN, ch, sizeof(ch)))
        mw_redis_subscribe(w->redis_sub, ch, 0);
}

void mw_bus_watch(mw_worker *w, int kind, const char *name, size_t len, int on)
{
    char ch[MW_BUS_CHANNEL_MAX];
    if (!w->redis_sub || !channel_for(w, kind, name, len, ch, sizeof(ch)))
        return;
    if (on)
        mw_redis_subscribe(w->redis_sub, ch, 0);
    else
        mw_redis_unsubscribe(w->redis_sub, ch);
}

void mw_bus_publish(mw_worker *w, int kind, const char *name, size_t name_len, const char *exclude, int code,
                    const char *payload, size_t payload_len)
{
    char ch[MW_BUS_CHANNEL_MAX], head[160];
    if (!w->redis)
        return;
    /* excludeClientId comes from the app: anything that is not a clientId excludes nobody */
    if (exclude && (strlen(exclude) != MW_CLIENT_ID_LEN ||
                    strspn(exclude, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
                        MW_CLIENT_ID_LEN))
        exclude = NULL;
    size_t clen = channel_for(w, kind, name, name_len, ch, sizeof(ch));
    int target = kind == MW_BUS_CLIENT || kind == MW_BUS_DISCONNECT || kind == MW_BUS_PROBE || kind == MW_BUS_OP;
    int hlen = snprintf(head, sizeof(head), "%s\n%c\n%.*s\n%s\n%d\n", w->tag, kind,
                        target ? (int)name_len : 0, target ? name : "", exclude ? exclude : "", code);
    if (!clen || hlen <= 0 || (size_t)hlen >= sizeof(head))
        return;
    char *msg = malloc((size_t)hlen + payload_len);
    if (!msg)
        return;
    memcpy(msg, head, (size_t)hlen);
    memcpy(msg + hlen, payload, payload_len);
    const char *argv[3] = { "PUBLISH", ch, msg };
    size_t lens[3] = { 7, clen, (size_t)hlen + payload_len };
    if (mw_redis_fire(w->redis, 3, argv, lens) != 0 && mw_log_enabled(MW_LOG_DEBUG))
        mw_logf(MW_LOG_DEBUG, "bus: redis unavailable, a message for other workers was dropped");
    free(msg);
}

/* Splits off the next "\n"-terminated field of msg. */
static int next_field(const char **p, const char *end, const char **field, size_t *len)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl)
        return -1;
    *field = *p;
    *len = (size_t)(nl - *p);
    *p = nl + 1;
    return 0;
}

/* Whether channel is one of the bus's: {p}all, {p}w:..., {p}room:..., {p}user:... (an app may
 * subscribe to other channels under the prefix). */
static int is_bus_channel(const mw_worker *w, const char *channel, size_t len)
{
    static const char *const kinds[] = { "all", "w:", "room:", "user:" };
    size_t plen = strlen(w->cfg->redis_prefix);
    if (len < plen || memcmp(channel, w->cfg->redis_prefix, plen) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t k = strlen(kinds[i]);
        if (len - plen >= k && memcmp(channel + plen, kinds[i], k) == 0 && (i > 0 || len - plen == k))
            return 1;
    }
    return 0;
}

int mw_bus_on_message(mw_worker *w, const char *channel, size_t channel_len, const char *msg, size_t msg_len)
{
    size_t plen = strlen(w->cfg->redis_prefix);
    if (!w->redis || !is_bus_channel(w, channel, channel_len))
        return 0;
    const char *p = msg, *end = msg + msg_len;
    const char *origin, *kind, *target, *exclude, *code_s;
    size_t olen, klen, tlen, elen, codelen;
    if (next_field(&p, end, &origin, &olen) || next_field(&p, end, &kind, &klen) ||
        next_field(&p, end, &target, &tlen) || next_field(&p, end, &exclude, &elen) ||
        next_field(&p, end, &code_s, &codelen) || klen != 1) {
        mw_logf(MW_LOG_WARN, "bus: ignoring a malformed message on %.*s", (int)channel_len, channel);
        return 1;
    }
    if (olen == MW_WORKER_TAG_LEN && memcmp(origin, w->tag, olen) == 0) {
        if (kind[0] == MW_BUS_PROBE && (uint64_t)atoll(code_s) == w->probe_seq)
            w->probe_pending = 0; /* the subscriber connection delivers */
        return 1; /* ours: our own clients were served directly */
    }
    const char *payload = p;
    size_t payload_len = (size_t)(end - p);
    const char *rest = channel + plen;
    size_t rest_len = channel_len - plen;
    const mw_conn *skip = elen ? mw_clients_find(&w->clients, exclude, elen) : NULL;
    if (kind[0] == MW_BUS_OP) {
        mw_conn *c = mw_clients_find(&w->clients, target, tlen);
        if (c && w->lvm)
            mw_lvm_on_bus_op(w->lvm, c->id, payload, payload_len);
        return 1;
    }
    mw_frame *f = NULL;
    if (kind[0] != MW_BUS_DISCONNECT) {
        f = mw_frame_ws(1, payload, payload_len);
        if (!f)
            return 1;
    }
    switch (kind[0]) {
    case MW_BUS_ALL:
        mw_clients_broadcast(&w->clients, f, skip);
        break;
    case MW_BUS_ROOM:
        if (rest_len > 5 && memcmp(rest, "room:", 5) == 0)
            mw_rooms_send(&w->rooms, rest + 5, rest_len - 5, f, skip);
        break;
    case MW_BUS_USER:
        if (rest_len > 5 && memcmp(rest, "user:", 5) == 0)
            mw_rooms_send(&w->users, rest + 5, rest_len - 5, f, NULL);
        break;
    case MW_BUS_CLIENT: {
        mw_conn *c = mw_clients_find(&w->clients, target, tlen);
        if (c)
            mw_conn_send(c, f);
        break;
    }
    case MW_BUS_DISCONNECT: {
        mw_conn *c = mw_clients_find(&w->clients, target, tlen);
        if (c) {
            char reason[124];
            size_t rl = payload_len < sizeof(reason) - 1 ? payload_len : sizeof(reason) - 1;
            memcpy(reason, payload, rl);
            reason[rl] = '\0';
            mw_conn_close_ws(c, (uint16_t)atoi(code_s), reason);
        }
        break;
    }
    default:
        break;
    }
    mw_frame_unref(f);
    return 1;
}

void mw_bus_probe_tick(mw_worker *w)
{
    if (!w->redis || !w->redis_sub || !mw_redis_connected(w->redis))
        return;
    uint64_t now = uv_now(&w->loop);
    if (w->probe_pending) {
        if (now - w->probe_sent_ms > (uint64_t)(w->cfg->redis_timeout * 1000)) {
            mw_logf(MW_LOG_WARN, "bus: the Redis subscriber connection delivers nothing (probe lost); reconnecting it");
            w->probe_pending = 0;
            mw_redis_reconnect(w->redis_sub);
        }
        return;
    }
    if (!mw_redis_connected(w->redis_sub))
        return;
    w->probe_seq++;
    w->probe_sent_ms = now;
    w->probe_pending = 1;
    mw_bus_publish(w, MW_BUS_PROBE, w->tag, MW_WORKER_TAG_LEN, NULL, (int)(w->probe_seq & 0x7fffffff), "", 0);
}
