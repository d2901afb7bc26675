/* mw_bus_msg: the header fields are short and never contain a newline (tags and clientIds are
 * base64url, codes decimal); the payload follows untouched. */
#include "mw_bus_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t mw_bus_channel(const char *prefix, int kind, const char *name, size_t len, char *out, size_t size)
{
    int n;
    switch (kind) {
    case MW_BUS_ALL: n = snprintf(out, size, "%sall", prefix); break;
    case MW_BUS_ROOM: n = snprintf(out, size, "%sroom:%.*s", prefix, (int)len, name); break;
    case MW_BUS_USER:
    case MW_BUS_USER_DISCONNECT: n = snprintf(out, size, "%suser:%.*s", prefix, (int)len, name); break;
    default: /* CLIENT, DISCONNECT, OP, PROBE: the worker named by the tag */
        n = snprintf(out, size, "%sw:%.*s", prefix, MW_WORKER_TAG_LEN, name);
    }
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

int mw_bus_is_channel(const char *prefix, const char *channel, size_t len)
{
    static const char *const kinds[] = { "all", "w:", "room:", "user:" };
    size_t plen = strlen(prefix);
    if (len < plen || memcmp(channel, prefix, plen) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t k = strlen(kinds[i]);
        if (len - plen >= k && memcmp(channel + plen, kinds[i], k) == 0 && (i > 0 || len - plen == k))
            return 1;
    }
    return 0;
}

int mw_bus_is_client_id(const char *id, size_t len)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (len != MW_CLIENT_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!id[i] || !strchr(alphabet, id[i]))
            return 0;
    return 1;
}

char *mw_bus_encode(const char *origin, int kind, const char *target, size_t target_len, const char *exclude,
                    int code, const char *payload, size_t payload_len, size_t *len)
{
    char head[160];
    int addressed = kind == MW_BUS_CLIENT || kind == MW_BUS_DISCONNECT || kind == MW_BUS_PROBE || kind == MW_BUS_OP;
    int hlen = snprintf(head, sizeof(head), "%s\n%c\n%.*s\n%s\n%d\n", origin, kind, addressed ? (int)target_len : 0,
                        addressed ? target : "", exclude ? exclude : "", code);
    if (hlen <= 0 || (size_t)hlen >= sizeof(head))
        return NULL;
    char *msg = malloc((size_t)hlen + payload_len + 1);
    if (!msg)
        return NULL;
    memcpy(msg, head, (size_t)hlen);
    if (payload_len)
        memcpy(msg + hlen, payload, payload_len);
    *len = (size_t)hlen + payload_len;
    return msg;
}

/* Splits off the next "\n"-terminated field of the message. */
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

int mw_bus_decode(const char *prefix, const char *channel, size_t channel_len, const char *msg, size_t msg_len,
                  mw_bus_msg *out)
{
    const char *p = msg, *end = msg + msg_len, *kind;
    size_t klen;
    memset(out, 0, sizeof(*out));
    if (next_field(&p, end, &out->origin, &out->origin_len) || next_field(&p, end, &kind, &klen) ||
        next_field(&p, end, &out->target, &out->target_len) ||
        next_field(&p, end, &out->exclude, &out->exclude_len) || next_field(&p, end, &out->code, &out->code_len) ||
        klen != 1)
        return -1;
    out->kind = (unsigned char)kind[0];
    out->payload = p;
    out->payload_len = (size_t)(end - p);
    size_t plen = strlen(prefix);
    const char *rest = channel + plen;
    size_t rest_len = channel_len >= plen ? channel_len - plen : 0;
    const char *want = out->kind == MW_BUS_ROOM || out->kind == MW_BUS_HISTORY ? "room:"
                       : out->kind == MW_BUS_USER || out->kind == MW_BUS_USER_DISCONNECT ? "user:"
                                                                              : NULL;
    if (want && rest_len > 5 && memcmp(rest, want, 5) == 0) {
        out->name = rest + 5;
        out->name_len = rest_len - 5;
    }
    return 0;
}
