/* mw_bus: the publishing worker's tag travels in every message: it skips its own messages (its
 * clients were served directly) except its probes, which prove its subscriber still delivers. */
#include "mw_bus.h"

#include <stdlib.h>
#include <string.h>

#include "mw_log.h"
#include "mw_redis.h"

void mw_bus_init(mw_bus *b, uv_loop_t *loop, const char *prefix, const char *tag, double timeout,
                 const mw_bus_handler *handler, void *owner)
{
    memset(b, 0, sizeof(*b));
    b->loop = loop;
    b->prefix = prefix;
    memcpy(b->tag, tag, MW_WORKER_TAG_LEN);
    b->tag[MW_WORKER_TAG_LEN] = '\0';
    b->timeout = timeout;
    b->handler = handler;
    b->owner = owner;
}

void mw_bus_attach(mw_bus *b, struct mw_redis *redis, struct mw_redis *sub)
{
    char ch[MW_BUS_CHANNEL_MAX];
    b->redis = redis;
    b->sub = sub;
    if (!sub)
        return;
    if (mw_bus_channel(b->prefix, MW_BUS_ALL, NULL, 0, ch, sizeof(ch)))
        mw_redis_subscribe(sub, ch, 0);
    if (mw_bus_channel(b->prefix, MW_BUS_CLIENT, b->tag, MW_WORKER_TAG_LEN, ch, sizeof(ch)))
        mw_redis_subscribe(sub, ch, 0);
}

int mw_bus_reaches(const mw_bus *b, const char *id, size_t len)
{
    return b->redis && len == MW_CLIENT_ID_LEN && memcmp(id, b->tag, MW_WORKER_TAG_LEN) != 0;
}

void mw_bus_watch(mw_bus *b, int kind, const char *name, size_t len, int on)
{
    char ch[MW_BUS_CHANNEL_MAX];
    if (!b->sub || !mw_bus_channel(b->prefix, kind, name, len, ch, sizeof(ch)))
        return;
    if (on)
        mw_redis_subscribe(b->sub, ch, 0);
    else
        mw_redis_unsubscribe(b->sub, ch);
}

void mw_bus_publish(mw_bus *b, int kind, const char *name, size_t name_len, const char *exclude, int code,
                    const char *payload, size_t payload_len)
{
    char ch[MW_BUS_CHANNEL_MAX];
    size_t len;
    if (!b->redis)
        return;
    /* excludeClientId comes from the app: anything that is not a clientId excludes nobody */
    if (exclude && !mw_bus_is_client_id(exclude, strlen(exclude)))
        exclude = NULL;
    size_t clen = mw_bus_channel(b->prefix, kind, name, name_len, ch, sizeof(ch));
    if (!clen)
        return;
    char *msg = mw_bus_encode(b->tag, kind, name, name_len, exclude, code, payload, payload_len, &len);
    if (!msg)
        return;
    const char *argv[3] = { "PUBLISH", ch, msg };
    size_t lens[3] = { 7, clen, len };
    if (mw_redis_fire(b->redis, 3, argv, lens) != 0 && mw_log_enabled(MW_LOG_DEBUG))
        mw_logf(MW_LOG_DEBUG, "bus: redis unavailable, a message for other workers was dropped");
    free(msg);
}

int mw_bus_on_message(mw_bus *b, const char *channel, size_t channel_len, const char *msg, size_t msg_len)
{
    mw_bus_msg m;
    if (!b->redis || !mw_bus_is_channel(b->prefix, channel, channel_len))
        return 0;
    if (mw_bus_decode(b->prefix, channel, channel_len, msg, msg_len, &m) != 0) {
        mw_logf(MW_LOG_WARN, "bus: ignoring a malformed message on %.*s", (int)channel_len, channel);
        return 1;
    }
    /* a history room's message is delivered by its publisher too (in offset order, mw_hist_redis) */
    if (m.kind != MW_BUS_HISTORY && m.origin_len == MW_WORKER_TAG_LEN &&
        memcmp(m.origin, b->tag, MW_WORKER_TAG_LEN) == 0) {
        if (m.kind == MW_BUS_PROBE && (uint64_t)atoll(m.code) == b->probe_seq)
            b->probe_pending = 0; /* the subscriber connection delivers */
        return 1; /* ours: our own clients were served directly */
    }
    b->handler->on_message(b->owner, &m);
    return 1;
}

void mw_bus_forget_probe(mw_bus *b) { b->probe_pending = 0; }

void mw_bus_probe_tick(mw_bus *b)
{
    if (!b->redis || !b->sub || !mw_redis_connected(b->redis))
        return;
    uint64_t now = uv_now(b->loop);
    if (b->probe_pending) {
        if (now - b->probe_sent_ms > (uint64_t)(b->timeout * 1000)) {
            mw_logf(MW_LOG_WARN, "bus: the Redis subscriber connection delivers nothing (probe lost); reconnecting it");
            b->probe_pending = 0;
            mw_redis_reconnect(b->sub);
        }
        return;
    }
    if (!mw_redis_connected(b->sub))
        return;
    b->probe_seq++;
    b->probe_sent_ms = now;
    b->probe_pending = 1;
    mw_bus_publish(b, MW_BUS_PROBE, b->tag, MW_WORKER_TAG_LEN, NULL, (int)(b->probe_seq & 0x7fffffff), "", 0);
}
