/* mw_hist_script: the scripts take their keys in KEYS (the stream, the hash, and for PUBLISH the
 * dedupe key) so they name every key they touch; the channel is built by the caller. */
#include "mw_hist_script.h"

#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_bus_msg.h"

/* KEYS: stream, hash, dedupe key (or ""). ARGV: 1 size, 2 ttl ms, 3 room as JSON, 4 head of the
 * message (before its '}'), 5 "," or "" (an empty object), 6 epoch of a new history, 7 bus
 * channel, 8 origin tag, 9 excludeClientId or "". A hash without its stream (the stream lost)
 * is a lost history too. Returns the offset, 0 when the dedupe key was already set. */
static const char script_publish[] =
    "local s, h = KEYS[1], KEYS[2]\n"
    "if KEYS[3] ~= '' and not redis.call('SET', KEYS[3], '1', 'NX', 'PX', 5000) then return 0 end\n"
    "local e = redis.call('HGET', h, 'e')\n"
    "local last = tonumber(redis.call('HGET', h, 'o')) or 0\n"
    "if e and last > 0 and redis.call('EXISTS', s) == 0 then e = false end\n"
    "if not e then\n"
    "  e, last = ARGV[6], 0\n"
    "  redis.call('DEL', s)\n"
    "  redis.call('HSET', h, 'e', e, 'o', 0)\n"
    "end\n"
    "local o = string.format('%d', last + 1)\n"
    "local f = ARGV[4] .. ARGV[5] .. '\"room\":' .. ARGV[3] .. ',\"offset\":' .. o .. '}'\n"
    "redis.call('XADD', s, 'MAXLEN', ARGV[1], '0-' .. o, 'f', f, 'x', ARGV[9])\n" /* fails: nothing changed */
    "redis.call('HSET', h, 'o', o)\n"
    "redis.call('PEXPIRE', s, ARGV[2])\n"
    "redis.call('PEXPIRE', h, ARGV[2])\n"
    "redis.call('PUBLISH', ARGV[7], ARGV[8] .. '\\nH\\n' .. e .. '\\n' .. ARGV[9] .. '\\n' .. o .. '\\n' .. f)\n"
    "return last + 1\n";

/* KEYS: stream, hash. ARGV: 1 since, 2 count, 3 ttl ms, 4 epoch of a new history ("": do not
 * create one), 5 wanted epoch ("": any), 6 "1": all or nothing. Returns {epoch or false, last
 * offset, entries}. */
static const char script_read[] =
    "local s, h = KEYS[1], KEYS[2]\n"
    "local e = redis.call('HGET', h, 'e')\n"
    "local o = tonumber(redis.call('HGET', h, 'o')) or 0\n"
    "if e and o > 0 and redis.call('EXISTS', s) == 0 then e = false end\n"
    "if not e then\n"
    "  if ARGV[4] == '' then return {false, 0, {}} end\n"
    "  e, o = ARGV[4], 0\n"
    "  redis.call('DEL', s)\n"
    "  redis.call('HSET', h, 'e', e, 'o', 0)\n"
    "  redis.call('PEXPIRE', h, ARGV[3])\n"
    "end\n"
    "local since, count = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local entries = {}\n"
    "if count > 0 and since < o and (ARGV[5] == '' or ARGV[5] == e) and (ARGV[6] ~= '1' or o - since <= count) then\n"
    "  entries = redis.call('XRANGE', s, '(0-' .. ARGV[1], '+', 'COUNT', count)\n"
    "end\n"
    "return {e, o, entries}\n";

static void sha1_hex(const char *text, char out[41])
{
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)text, strlen(text), d);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void mw_hist_scripts_init(mw_hist_scripts *s)
{
    sha1_hex(script_publish, s->sha_publish);
    sha1_hex(script_read, s->sha_read);
}

void mw_hist_scripts_load(mw_redis *r)
{
    const char *scripts[2] = { script_publish, script_read };
    for (int i = 0; i < 2; i++) {
        const char *argv[3] = { "SCRIPT", "LOAD", scripts[i] };
        size_t lens[3] = { 6, 4, strlen(scripts[i]) };
        mw_redis_fire(r, 3, argv, lens);
    }
}

/* {P}hs:ROOM and {P}hm:ROOM into the buffers; 0, or -1 when they do not fit. */
static int keys_of(const char *prefix, const char *room, size_t rlen, char *stream, char *hash, size_t size)
{
    int a = snprintf(stream, size, "%shs:%.*s", prefix, (int)rlen, room);
    int b = snprintf(hash, size, "%shm:%.*s", prefix, (int)rlen, room);
    return a > 0 && b > 0 && (size_t)a < size && (size_t)b < size ? 0 : -1;
}

int mw_hist_script_publish(mw_redis *r, const mw_hist_scripts *s, const mw_hist_publish_args *a, mw_redis_reply_cb cb,
                           void *data)
{
    char stream[MW_BUS_CHANNEL_MAX], hash[MW_BUS_CHANNEL_MAX], channel[MW_BUS_CHANNEL_MAX];
    char size[16], ttl[24];
    if (keys_of(a->prefix, a->room, a->room_len, stream, hash, sizeof(stream)) != 0 ||
        !mw_bus_channel(a->prefix, MW_BUS_ROOM, a->room, a->room_len, channel, sizeof(channel)))
        return -1;
    snprintf(size, sizeof(size), "%u", (unsigned)a->size);
    snprintf(ttl, sizeof(ttl), "%" PRIu64, a->ttl_ms);
    const char *argv[] = { "EVALSHA", s->sha_publish, "3", stream, hash, a->dedupe, size, ttl, a->room_json,
                           a->head, a->empty ? "" : ",", a->epoch, channel, a->origin, a->exclude };
    size_t lens[sizeof(argv) / sizeof(argv[0])];
    for (size_t i = 0; i < sizeof(argv) / sizeof(argv[0]); i++)
        lens[i] = strlen(argv[i]);
    lens[8] = a->room_json_len;
    lens[9] = a->head_len;
    return mw_redis_command(r, (int)(sizeof(argv) / sizeof(argv[0])), argv, lens, cb, data);
}

int mw_hist_script_read(mw_redis *r, const mw_hist_scripts *s, const mw_hist_read_args *a, mw_redis_reply_cb cb,
                        void *data)
{
    char stream[MW_BUS_CHANNEL_MAX], hash[MW_BUS_CHANNEL_MAX];
    char since[24], count[16], ttl[24];
    if (keys_of(a->prefix, a->room, a->room_len, stream, hash, sizeof(stream)) != 0)
        return -1;
    snprintf(since, sizeof(since), "%" PRIu64, a->since);
    snprintf(count, sizeof(count), "%u", (unsigned)a->count);
    snprintf(ttl, sizeof(ttl), "%" PRIu64, a->ttl_ms);
    const char *argv[] = { "EVALSHA", s->sha_read, "2", stream, hash, since, count, ttl,
                           a->epoch ? a->epoch : "", a->want_epoch ? a->want_epoch : "",
                           a->all_or_nothing ? "1" : "0" };
    size_t lens[sizeof(argv) / sizeof(argv[0])];
    for (size_t i = 0; i < sizeof(argv) / sizeof(argv[0]); i++)
        lens[i] = strlen(argv[i]);
    lens[9] = a->want_epoch ? a->want_epoch_len : 0;
    return mw_redis_command(r, (int)(sizeof(argv) / sizeof(argv[0])), argv, lens, cb, data);
}

/* An entry id "0-N" -> N; 0 when it is not one. */
static uint64_t offset_of(const redisReply *id)
{
    if (id->type != REDIS_REPLY_STRING || id->len < 3 || id->str[0] != '0' || id->str[1] != '-')
        return 0;
    return strtoull(id->str + 2, NULL, 10);
}

int mw_hist_script_parse(const redisReply *reply, mw_hist_read *out, const char **err)
{
    memset(out, 0, sizeof(*out));
    *err = "unexpected reply to the history read";
    if (reply->type == REDIS_REPLY_ERROR) {
        *err = reply->str;
        return -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || reply->element[1]->type != REDIS_REPLY_INTEGER ||
        reply->element[2]->type != REDIS_REPLY_ARRAY)
        return -1;
    const redisReply *e = reply->element[0];
    if (e->type == REDIS_REPLY_STRING) {
        out->epoch = e->str;
        out->epoch_len = e->len;
    }
    out->last = (uint64_t)reply->element[1]->integer;
    const redisReply *list = reply->element[2];
    if (list->elements == 0)
        return 0;
    out->entries = calloc(list->elements, sizeof(mw_hist_entry));
    if (!out->entries) {
        *err = "out of memory reading a room's history";
        return -1;
    }
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *item = list->element[i];
        if (item->type != REDIS_REPLY_ARRAY || item->elements != 2 || item->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *fields = item->element[1];
        mw_hist_entry *en = &out->entries[out->n];
        en->offset = offset_of(item->element[0]);
        en->exclude = "";
        for (size_t j = 0; j + 1 < fields->elements; j += 2) {
            const redisReply *k = fields->element[j], *v = fields->element[j + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len != 1)
                continue;
            if (k->str[0] == 'f') {
                en->text = v->str;
                en->len = v->len;
            } else if (k->str[0] == 'x') {
                en->exclude = v->str;
                en->exclude_len = v->len;
            }
        }
        if (en->offset && en->text)
            out->n++;
    }
    return 0;
}

int mw_hist_script_missing(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}
