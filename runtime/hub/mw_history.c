/* mw_history: a chained hash of room histories by name (mw_hashtab), each a ring of frame
 * references, and a list of them by last write for the memory cap. The ring grows by doubling
 * up to the room's size, so a room with few messages costs little. */
#include "mw_history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_log.h"

int mw_history_init(mw_history *h, const char *tag, size_t cap_bytes, mw_metrics_slot *m)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->tag, sizeof(h->tag), "%s", tag);
    h->cap_bytes = cap_bytes;
    h->m = m;
    h->n_buckets = 64;
    h->buckets = calloc(h->n_buckets, sizeof(mw_hash_link *));
    return h->buckets ? 0 : -1;
}

static void update_gauge(mw_history *h)
{
    if (h->m)
        mw_metrics_set(h->m, MW_M_HISTORY_BYTES, h->bytes);
}

/* Drops the oldest kept message of r. */
static void drop_oldest(mw_history *h, mw_history_room *r)
{
    mw_frame *f = r->ring[r->head];
    r->ring[r->head] = NULL;
    r->head = (r->head + 1) % r->cap;
    r->n--;
    r->bytes -= f->len;
    h->bytes -= f->len;
    mw_frame_unref(f);
}

static void lru_unlink(mw_history *h, mw_history_room *r)
{
    if (r->lru_prev)
        r->lru_prev->lru_next = r->lru_next;
    else
        h->lru_head = r->lru_next;
    if (r->lru_next)
        r->lru_next->lru_prev = r->lru_prev;
    else
        h->lru_tail = r->lru_prev;
    r->lru_prev = r->lru_next = NULL;
}

static void lru_append(mw_history *h, mw_history_room *r)
{
    r->lru_prev = h->lru_tail;
    r->lru_next = NULL;
    if (h->lru_tail)
        h->lru_tail->lru_next = r;
    else
        h->lru_head = r;
    h->lru_tail = r;
}

static void room_free(mw_history *h, mw_history_room *r)
{
    while (r->n > 0)
        drop_oldest(h, r);
    free(r->ring);
    free(r);
}

/* Takes r out of the index and the list, and frees it. */
static void room_remove(mw_history *h, mw_history_room *r)
{
    size_t i = mw_hashtab_bucket(r->name, r->name_len, h->n_buckets);
    for (mw_hash_link **p = &h->buckets[i]; *p; p = &(*p)->next) {
        if (*p == &r->link) {
            *p = r->link.next;
            break;
        }
    }
    lru_unlink(h, r);
    h->count--;
    room_free(h, r);
    update_gauge(h);
}

void mw_history_free(mw_history *h)
{
    while (h->lru_head)
        room_remove(h, h->lru_head);
    free(h->buckets);
    h->buckets = NULL;
}

void mw_history_set_cap(mw_history *h, size_t cap_bytes) { h->cap_bytes = cap_bytes; }

static int expired(const mw_history_room *r, uint64_t now_ms) { return now_ms - r->touched_ms >= r->ttl_ms; }

static mw_history_room *lookup(const mw_history *h, const char *name, size_t len)
{
    size_t i = mw_hashtab_bucket(name, len, h->n_buckets);
    for (mw_hash_link *l = h->buckets[i]; l; l = l->next) {
        mw_history_room *r = MW_HASH_ENTRY(l, mw_history_room, link);
        if (r->name_len == len && memcmp(r->name, name, len) == 0)
            return r;
    }
    return NULL;
}

mw_history_room *mw_history_find(mw_history *h, const char *name, size_t len, uint64_t now_ms)
{
    mw_history_room *r = lookup(h, name, len);
    if (r && expired(r, now_ms)) {
        room_remove(h, r);
        r = NULL;
    }
    return r;
}

static void room_key(const mw_hash_link *l, const char **key, size_t *len)
{
    const mw_history_room *r = MW_HASH_ENTRY(l, const mw_history_room, link);
    *key = r->name;
    *len = r->name_len;
}

/* A new epoch: the worker's tag (random per start), then a counter, in base 36. */
static void new_epoch(mw_history *h, char *out)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    char num[16];
    int n = 0;
    uint64_t v = ++h->epochs;
    do {
        num[n++] = digits[v % 36];
        v /= 36;
    } while (v && n < (int)sizeof(num));
    size_t tl = strlen(h->tag);
    memcpy(out, h->tag, tl);
    out[tl] = '-';
    for (int i = 0; i < n; i++)
        out[tl + 1 + i] = num[n - 1 - i];
    out[tl + 1 + n] = '\0';
}

mw_history_room *mw_history_open(mw_history *h, const char *name, size_t len, uint32_t size, uint64_t ttl_ms,
                                 uint64_t now_ms)
{
    if (size == 0)
        size = 1;
    mw_history_room *r = mw_history_find(h, name, len, now_ms);
    if (!r) {
        r = calloc(1, sizeof(*r) + len + 1);
        if (!r)
            return NULL;
        memcpy(r->name, name, len);
        r->name_len = (uint32_t)len;
        r->touched_ms = now_ms;
        new_epoch(h, r->epoch);
        size_t i = mw_hashtab_bucket(name, len, h->n_buckets);
        r->link.next = h->buckets[i];
        h->buckets[i] = &r->link;
        h->count++;
        lru_append(h, r);
        if (h->count > h->n_buckets)
            mw_hashtab_grow(&h->buckets, &h->n_buckets, room_key);
    }
    r->ttl_ms = ttl_ms;
    r->size = size;
    while (r->n > size)
        drop_oldest(h, r);
    return r;
}

/* Makes room for one more frame in the ring (doubling it up to the room's size). */
static int ring_reserve(mw_history_room *r)
{
    if (r->n < r->cap)
        return 0;
    uint32_t ncap = r->cap ? r->cap * 2 : 4;
    if (ncap > r->size)
        ncap = r->size;
    if (ncap <= r->cap)
        return 0; /* full at size: the caller drops the oldest first */
    mw_frame **ring = malloc((size_t)ncap * sizeof(*ring));
    if (!ring)
        return -1;
    for (uint32_t i = 0; i < r->n; i++)
        ring[i] = r->ring[(r->head + i) % r->cap];
    free(r->ring);
    r->ring = ring;
    r->cap = ncap;
    r->head = 0;
    return 0;
}

/* Over the cap: drops the oldest messages of the least recently written rooms. */
static void enforce_cap(mw_history *h)
{
    if (h->bytes <= h->cap_bytes)
        return;
    if (!h->warned) {
        h->warned = 1;
        if (mw_log_begin(MW_LOG_WARN, "room history reached its memory cap: the oldest messages of the least "
                                      "recently written rooms are dropped (their recovery fails)")) {
            mw_log_int("limits.historyBytes", (int64_t)h->cap_bytes);
            mw_log_int("rooms", (int64_t)h->count);
            mw_log_end();
        }
    }
    for (mw_history_room *r = h->lru_head; r && h->bytes > h->cap_bytes; r = r->lru_next)
        while (r->n > 0 && h->bytes > h->cap_bytes)
            drop_oldest(h, r);
}

mw_frame *mw_history_append(mw_history *h, mw_history_room *r, const char *body, size_t len, uint64_t now_ms)
{
    int empty;
    long head = mw_history_body_head(body, len, &empty);
    if (head < 0)
        return NULL;
    char room_json[MW_HISTORY_ROOM_JSON_MAX];
    size_t rj = mw_history_json_string(r->name, r->name_len, room_json, sizeof(room_json));
    if (!rj)
        return NULL;
    if (r->n == r->size)
        drop_oldest(h, r);
    if (ring_reserve(r) != 0)
        return NULL;
    mw_frame *f = mw_history_frame(body, (size_t)head, empty, room_json, rj, r->last + 1);
    if (!f)
        return NULL;
    r->last++;
    r->ring[(r->head + r->n) % r->cap] = mw_frame_ref(f);
    r->n++;
    r->bytes += f->len;
    h->bytes += f->len;
    r->touched_ms = now_ms;
    lru_unlink(h, r);
    lru_append(h, r);
    enforce_cap(h);
    update_gauge(h);
    if (h->m)
        mw_metrics_add(h->m, MW_M_HISTORY_STORED, 1);
    return f;
}

uint64_t mw_history_first(const mw_history_room *r) { return r->last - r->n + 1; }

mw_frame *mw_history_get(const mw_history_room *r, uint64_t offset)
{
    uint64_t first = mw_history_first(r);
    if (offset < first || offset > r->last)
        return NULL;
    return r->ring[(r->head + (uint32_t)(offset - first)) % r->cap];
}

int mw_history_covers(const mw_history_room *r, uint64_t since)
{
    return since <= r->last && since + 1 >= mw_history_first(r);
}

void mw_history_expire(mw_history *h, uint64_t now_ms)
{
    for (mw_history_room *r = h->lru_head, *next; r; r = next) {
        next = r->lru_next;
        if (expired(r, now_ms))
            room_remove(h, r);
    }
}

/* ---- frames ------------------------------------------------------------------------------ */

size_t mw_history_json_string(const char *s, size_t len, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    if (size < 2)
        return 0;
    out[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (n + 7 > size)
            return 0;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            const char *esc = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (esc) {
                out[n++] = esc[0];
                out[n++] = esc[1];
            } else {
                memcpy(out + n, "\\u00", 4);
                out[n + 4] = hex[c >> 4];
                out[n + 5] = hex[c & 15];
                n += 6;
            }
        } else {
            out[n++] = (char)c;
        }
    }
    if (n + 1 > size)
        return 0;
    out[n++] = '"';
    return n;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

long mw_history_body_head(const char *body, size_t len, int *empty)
{
    size_t start = 0, end = len;
    while (start < len && is_space(body[start]))
        start++;
    while (end > start && is_space(body[end - 1]))
        end--;
    if (end - start < 2 || body[start] != '{' || body[end - 1] != '}')
        return -1;
    size_t i = start + 1;
    while (i < end - 1 && is_space(body[i]))
        i++;
    *empty = i == end - 1;
    return (long)(end - 1);
}

mw_frame *mw_history_frame(const char *body, size_t head_len, int empty, const char *room_json, size_t rj_len,
                           uint64_t offset)
{
    char tail[48];
    int tl = snprintf(tail, sizeof(tail), ",\"offset\":%" PRIu64 "}", offset);
    size_t sep = empty ? 0 : 1;
    size_t len = head_len + sep + 7 + rj_len + (size_t)tl; /* 7: "room": */
    mw_frame *f = mw_frame_ws(1, NULL, len);
    if (!f)
        return NULL;
    size_t plen;
    uint8_t *p = (uint8_t *)mw_frame_payload(f, &plen);
    memcpy(p, body, head_len);
    p += head_len;
    if (sep)
        *p++ = ',';
    memcpy(p, "\"room\":", 7);
    p += 7;
    memcpy(p, room_json, rj_len);
    p += rj_len;
    memcpy(p, tail, (size_t)tl);
    return f;
}
