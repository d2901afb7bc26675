/* mw_hist_redis: per room with local members, a delivery state: the epoch and the last offset
 * delivered here, the messages that arrived ahead of a gap (pending, in offset order) while the
 * gap is read from the stream, and the joins still settling. A join is `reading` until its
 * read answers (its client's frames of that room are held), then it filters (frames at or below
 * its position are not for its client) until the room's delivery has caught up with it.
 * Rooms are found by name and generation (mw_room.gen): a room left empty and joined again
 * starts with a fresh state. */
#include "mw_hist_redis.h"

#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mw_log.h"
#include "mw_redis.h"

#define MW_HIST_FILL_MAX 10000 /* entries one gap read fetches (a room keeps at most 10000) */

typedef struct held {
    uint64_t offset;
    uint64_t epoch_gen; /* the state's epoch generation when it arrived */
    mw_frame *f;
} held;

typedef struct pend {
    uint64_t offset;
    mw_frame *f;
    char exclude[MW_CLIENT_ID_LEN + 1];
} pend;

typedef struct hist_state hist_state;

typedef struct hjoin {
    struct hjoin *next;
    hist_state *s;
    mw_hist_redis *hr;
    char id[MW_CLIENT_ID_LEN + 1];
    int reading;
    uint64_t position; /* the last offset its client has been sent */
    int has_since;
    uint64_t since;
    char *since_epoch;
    size_t since_epoch_len;
    uint32_t size;
    held *held;
    size_t n_held, cap_held;
    mw_hist_join_cb cb;
    void *arg;
} hjoin;

struct hist_state {
    mw_hash_link link;
    mw_hist_redis *hr;
    uint64_t room_gen;  /* the mw_room this state is about */
    int known;          /* epoch and delivered are set */
    uint64_t epoch_gen; /* bumped whenever the epoch changes or the state is reset */
    char epoch[MW_HISTORY_EPOCH_MAX];
    uint64_t delivered; /* the last offset delivered to the local members */
    int filling;        /* a gap read is in flight */
    int fill_again;     /* asked for while one was in flight: it may have been read too early */
    pend *pending;
    size_t n_pending, cap_pending;
    hjoin *joins;
    int refs;           /* reads in flight that point to this state */
    uint32_t name_len;
    char name[];
};

/* ---- states ------------------------------------------------------------------------------- */

static void state_key(const mw_hash_link *l, const char **key, size_t *len)
{
    const hist_state *s = MW_HASH_ENTRY(l, const hist_state, link);
    *key = s->name;
    *len = s->name_len;
}

static hist_state *lookup(const mw_hist_redis *hr, const char *name, size_t len)
{
    size_t i = mw_hashtab_bucket(name, len, hr->n_buckets);
    for (mw_hash_link *l = hr->buckets[i]; l; l = l->next) {
        hist_state *s = MW_HASH_ENTRY(l, hist_state, link);
        if (s->name_len == len && memcmp(s->name, name, len) == 0)
            return s;
    }
    return NULL;
}

static void drop_pending(hist_state *s)
{
    for (size_t i = 0; i < s->n_pending; i++)
        mw_frame_unref(s->pending[i].f);
    s->n_pending = 0;
}

static void release_held(hjoin *j)
{
    for (size_t i = 0; i < j->n_held; i++)
        mw_frame_unref(j->held[i].f);
    j->n_held = 0;
}

static void join_free(hjoin *j)
{
    release_held(j);
    free(j->held);
    free(j->since_epoch);
    free(j);
}

/* Takes j out of its state's list; its client no longer has it settling. */
static void join_unlink(hjoin *j)
{
    for (hjoin **p = &j->s->joins; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            break;
        }
    }
    mw_client *c = mw_clients_find(&j->hr->fo->clients, j->id, strlen(j->id));
    if (c && c->hist_joins > 0)
        c->hist_joins--;
}

/* Joins done reading whose position the room's delivery has reached (or, all: every one done
 * reading, e.g. when the epoch changed and their positions mean nothing any more). */
static void retire_settled(hist_state *s, int all)
{
    for (hjoin *j = s->joins, *next; j; j = next) {
        next = j->next;
        if (!j->reading && (all || (s->known && s->delivered >= j->position))) {
            join_unlink(j);
            join_free(j);
        }
    }
}

/* Forgets what was delivered (a new room, or a new epoch). */
static void state_reset(hist_state *s)
{
    s->known = 0;
    s->delivered = 0;
    s->epoch_gen++;
    drop_pending(s);
    retire_settled(s, 1);
}

static hist_state *state_new(mw_hist_redis *hr, const char *name, size_t len)
{
    hist_state *s = calloc(1, sizeof(*s) + len + 1);
    if (!s)
        return NULL;
    s->hr = hr;
    memcpy(s->name, name, len);
    s->name_len = (uint32_t)len;
    size_t i = mw_hashtab_bucket(name, len, hr->n_buckets);
    s->link.next = hr->buckets[i];
    hr->buckets[i] = &s->link;
    hr->count++;
    if (hr->count > hr->n_buckets)
        mw_hashtab_grow(&hr->buckets, &hr->n_buckets, state_key);
    return s;
}

static void state_free(mw_hist_redis *hr, hist_state *s)
{
    size_t i = mw_hashtab_bucket(s->name, s->name_len, hr->n_buckets);
    for (mw_hash_link **p = &hr->buckets[i]; *p; p = &(*p)->next) {
        if (*p == &s->link) {
            *p = s->link.next;
            break;
        }
    }
    hr->count--;
    drop_pending(s);
    free(s->pending);
    while (s->joins) {
        hjoin *j = s->joins;
        join_unlink(j);
        join_free(j);
    }
    free(s);
}

/* The state of room r (made, or reset when it was about an earlier room of that name). */
static hist_state *state_for(mw_hist_redis *hr, mw_room *r)
{
    hist_state *s = lookup(hr, r->name, r->name_len);
    if (!s && !(s = state_new(hr, r->name, r->name_len)))
        return NULL;
    if (s->room_gen != r->gen) {
        state_reset(s);
        s->room_gen = r->gen;
    }
    return s;
}

/* The local room of s, or NULL when it has no member or is a newer room than s is about. */
static mw_room *room_of(hist_state *s)
{
    mw_room *r = mw_rooms_find(&s->hr->fo->rooms, s->name, s->name_len);
    return r && r->gen == s->room_gen ? r : NULL;
}

static int same_epoch(const hist_state *s, const char *e, size_t len)
{
    return s->known && len == strlen(s->epoch) && memcmp(s->epoch, e, len) == 0;
}

static void set_epoch(hist_state *s, const char *e, size_t len)
{
    if (len >= sizeof(s->epoch))
        len = sizeof(s->epoch) - 1;
    memcpy(s->epoch, e, len);
    s->epoch[len] = '\0';
}

/* ---- delivery in offset order --------------------------------------------------------------- */

typedef struct offer_ctx {
    hist_state *s;
    uint64_t offset;
    mw_frame *f;
} offer_ctx;

static hjoin *find_join(hist_state *s, const mw_client *c)
{
    for (hjoin *j = s->joins; j; j = j->next)
        if (memcmp(j->id, c->id, MW_CLIENT_ID_LEN) == 0)
            return j;
    return NULL;
}

static int held_push(hjoin *j, uint64_t offset, uint64_t gen, mw_frame *f)
{
    if (j->n_held == j->cap_held) {
        size_t ncap = j->cap_held ? j->cap_held * 2 : 16;
        held *n = realloc(j->held, ncap * sizeof(*n));
        if (!n)
            return -1;
        j->held = n;
        j->cap_held = ncap;
    }
    j->held[j->n_held++] = (held){ offset, gen, mw_frame_ref(f) };
    return 0;
}

/* mw_fanout_room_frame's hold: a client whose join is reading gets the frame later; one whose
 * join is filtering does not get what is at or below its position. */
static int hold_cb(void *arg, mw_client *c)
{
    if (c->hist_joins == 0)
        return 0;
    offer_ctx *x = arg;
    hjoin *j = find_join(x->s, c);
    if (!j)
        return 0;
    if (j->reading)
        return held_push(j, x->offset, x->s->epoch_gen, x->f) == 0;
    return x->offset <= j->position;
}

static void deliver(hist_state *s, mw_room *r, uint64_t offset, mw_frame *f, const char *exclude, size_t exlen)
{
    mw_fanout *fo = s->hr->fo;
    const mw_client *skip = exlen ? mw_clients_find(&fo->clients, exclude, exlen) : NULL;
    offer_ctx x = { s, offset, f };
    mw_fanout_room_frame(fo, r, f, skip, s->joins ? hold_cb : NULL, &x);
    s->delivered = offset;
    if (s->joins)
        retire_settled(s, 0);
}

/* Delivers the pending messages that follow what was delivered. */
static void drain(hist_state *s, mw_room *r)
{
    size_t i = 0;
    while (i < s->n_pending && s->pending[i].offset <= s->delivered + 1) {
        pend *p = &s->pending[i++];
        if (p->offset == s->delivered + 1)
            deliver(s, r, p->offset, p->f, p->exclude, strlen(p->exclude));
        mw_frame_unref(p->f);
    }
    if (i == 0)
        return;
    memmove(s->pending, s->pending + i, (s->n_pending - i) * sizeof(pend));
    s->n_pending -= i;
}

/* Keeps a message that arrived ahead of a gap, in offset order. */
static void pend_push(hist_state *s, uint64_t offset, mw_frame *f, const char *exclude, size_t exlen)
{
    if (s->n_pending == s->cap_pending) {
        size_t ncap = s->cap_pending ? s->cap_pending * 2 : 16;
        pend *n = realloc(s->pending, ncap * sizeof(*n));
        if (!n)
            return; /* dropped: the gap read brings it back */
        s->pending = n;
        s->cap_pending = ncap;
    }
    size_t at = s->n_pending;
    while (at > 0 && s->pending[at - 1].offset >= offset) {
        if (s->pending[at - 1].offset == offset)
            return; /* already waiting */
        at--;
    }
    memmove(s->pending + at + 1, s->pending + at, (s->n_pending - at) * sizeof(pend));
    pend *p = &s->pending[at];
    p->offset = offset;
    p->f = mw_frame_ref(f);
    if (exlen > MW_CLIENT_ID_LEN)
        exlen = 0;
    memcpy(p->exclude, exclude, exlen);
    p->exclude[exlen] = '\0';
    s->n_pending++;
}

static void warn_lost(mw_hist_redis *hr, const hist_state *s, uint64_t lost)
{
    uint64_t now = uv_hrtime() / 1000000;
    if (hr->warned_ms && now - hr->warned_ms < 10000)
        return;
    hr->warned_ms = now;
    if (mw_log_begin(MW_LOG_WARN, "history: messages of a room could not be read back to fill a gap "
                                  "(trimmed, expired, or Redis unavailable); its members missed them")) {
        mw_log_strn("room", s->name, s->name_len);
        mw_log_int("missed", (int64_t)lost);
        mw_log_end();
    }
}

/* Gives up on the gaps still open: what waits after them goes out now. */
static void skip_gaps(hist_state *s, mw_room *r)
{
    while (s->n_pending > 0) {
        if (s->pending[0].offset > s->delivered + 1) {
            warn_lost(s->hr, s, s->pending[0].offset - s->delivered - 1);
            s->delivered = s->pending[0].offset - 1;
        }
        drain(s, r);
    }
}

static void fill_cb(mw_redis *rd, redisReply *reply, const char *err, void *data);
static void switch_epoch(hist_state *s, mw_room *r, const char *epoch, size_t elen);

/* Reads what the stream holds past the last delivered offset (a gap, or a check after the
 * subscription started). Asked for while a read is in flight, it reads again once that one
 * answered: the read in flight may have run before what it is now asked to find (a publish that
 * Redis ran before this worker's SUBSCRIBE, whose confirmation arrives during the join's read). */
static void start_fill(hist_state *s)
{
    mw_hist_redis *hr = s->hr;
    if (s->filling) {
        s->fill_again = 1;
        return;
    }
    if (!s->known)
        return;
    s->fill_again = 0;
    mw_hist_read_args a = { .prefix = hr->prefix, .room = s->name, .room_len = s->name_len, .since = s->delivered,
                            .count = MW_HIST_FILL_MAX };
    if (!hr->redis || mw_hist_script_read(hr->redis, &hr->scripts, &a, fill_cb, s) != 0) {
        mw_room *r = room_of(s);
        if (r)
            skip_gaps(s, r);
        return;
    }
    s->filling = 1;
    s->refs++;
}

static void fill_cb(mw_redis *rd, redisReply *reply, const char *err, void *data)
{
    hist_state *s = data;
    s->filling = 0;
    s->refs--;
    mw_room *r = room_of(s);
    if (!r) {
        s->fill_again = 0;
        drop_pending(s);
        return;
    }
    mw_hist_read res;
    const char *why;
    int refill = 0;
    if (mw_hist_script_missing(reply))
        mw_hist_scripts_load(rd);
    if (!err && mw_hist_script_parse(reply, &res, &why) == 0) {
        if (res.epoch && !same_epoch(s, res.epoch, res.epoch_len) && s->known) {
            /* lost and started again since: read the new epoch from its start */
            switch_epoch(s, r, res.epoch, res.epoch_len);
            refill = res.last > 0;
        } else if (res.epoch) {
            for (size_t i = 0; i < res.n && room_of(s); i++) {
                const mw_hist_entry *e = &res.entries[i];
                if (e->offset != s->delivered + 1)
                    continue;
                mw_frame *f = mw_frame_ws(1, e->text, e->len);
                if (!f)
                    break;
                deliver(s, r, e->offset, f, e->exclude, e->exclude_len);
                mw_frame_unref(f);
                drain(s, r);
            }
        }
        free(res.entries);
    }
    if (!room_of(s))
        return;
    if (refill || s->fill_again)
        start_fill(s);
    else
        skip_gaps(s, r);
}

/* The history was lost and started again: what waits from the old epoch goes out, then
 * delivery follows the new epoch from its first offset (what the members missed of it is read
 * from the stream). */
static void switch_epoch(hist_state *s, mw_room *r, const char *epoch, size_t elen)
{
    skip_gaps(s, r);
    s->epoch_gen++;
    retire_settled(s, 1);
    set_epoch(s, epoch, elen);
    s->delivered = 0;
}

/* A room message from the bus: delivered in offset order. */
static void offer(hist_state *s, mw_room *r, const char *epoch, size_t elen, uint64_t offset, mw_frame *f,
                  const char *exclude, size_t exlen)
{
    if (!s->known) { /* the first message since the room got members here */
        s->known = 1;
        set_epoch(s, epoch, elen);
        s->delivered = offset - 1;
    } else if (!same_epoch(s, epoch, elen)) {
        switch_epoch(s, r, epoch, elen);
    }
    if (offset <= s->delivered)
        return; /* a duplicate */
    if (offset == s->delivered + 1 && s->n_pending == 0) {
        deliver(s, r, offset, f, exclude, exlen);
        return;
    }
    pend_push(s, offset, f, exclude, exlen);
    if (s->n_pending > 0 && s->pending[0].offset == s->delivered + 1)
        drain(s, r);
    if (s->n_pending > 0)
        start_fill(s);
}

void mw_hist_redis_on_message(mw_hist_redis *hr, const mw_bus_msg *m)
{
    if (!m->name || !m->code_len || !m->target_len || m->target_len >= MW_HISTORY_EPOCH_MAX)
        return;
    mw_room *r = mw_rooms_find(&hr->fo->rooms, m->name, m->name_len);
    if (!r)
        return;
    char num[24];
    size_t nl = m->code_len < sizeof(num) - 1 ? m->code_len : sizeof(num) - 1;
    memcpy(num, m->code, nl);
    num[nl] = '\0';
    uint64_t offset = strtoull(num, NULL, 10);
    hist_state *s = state_for(hr, r);
    if (!offset || !s)
        return;
    mw_frame *f = mw_frame_ws(1, m->payload, m->payload_len);
    if (!f)
        return;
    offer(s, r, m->target, m->target_len, offset, f, m->exclude, m->exclude_len);
    mw_frame_unref(f);
}

void mw_hist_redis_on_subscribed(mw_hist_redis *hr, const char *channel, size_t len)
{
    size_t plen = strlen(hr->prefix);
    if (len <= plen + 5 || memcmp(channel, hr->prefix, plen) != 0 || memcmp(channel + plen, "room:", 5) != 0)
        return;
    hist_state *s = lookup(hr, channel + plen + 5, len - plen - 5);
    if (s && s->known && room_of(s))
        start_fill(s);
}

/* ---- joins ------------------------------------------------------------------------------- */

/* Ends a join that could not settle: its held frames go, the caller hears why. */
static void join_fail(hjoin *j, const char *why)
{
    mw_hist_join_cb cb = j->cb;
    void *arg = j->arg;
    join_unlink(j);
    join_free(j);
    cb(arg, NULL, why);
}

/* Whether the read's entries are every message after since up to last, in order. */
static int covers(const mw_hist_read *res, uint64_t since)
{
    if (since > res->last || res->n != res->last - since)
        return 0;
    for (size_t i = 0; i < res->n; i++)
        if (res->entries[i].offset != since + 1 + i)
            return 0;
    return 1;
}

static void join_cb(mw_redis *rd, redisReply *reply, const char *err, void *data)
{
    hjoin *j = data;
    hist_state *s = j->s;
    mw_hist_redis *hr = j->hr;
    s->refs--;
    mw_hist_read res;
    const char *why = err;
    if (mw_hist_script_missing(reply))
        mw_hist_scripts_load(rd);
    if (err || mw_hist_script_parse(reply, &res, &why) != 0 || !res.epoch) {
        join_fail(j, why ? why : "the room's history could not be read");
        return;
    }
    mw_client *c = mw_clients_find(&hr->fo->clients, j->id, strlen(j->id));
    if (!c) {
        free(res.entries);
        join_fail(j, "Unknown client");
        return;
    }
    mw_hist_info info;
    memset(&info, 0, sizeof(info));
    info.recovered = -1;
    size_t el = res.epoch_len < sizeof(info.epoch) - 1 ? res.epoch_len : sizeof(info.epoch) - 1;
    memcpy(info.epoch, res.epoch, el);
    info.epoch[el] = '\0';
    uint64_t position = res.last;
    if (j->has_since) {
        if (hr->m)
            mw_metrics_add(hr->m, MW_M_RECOVERIES, 1);
        int same = j->since_epoch_len == res.epoch_len && memcmp(j->since_epoch, res.epoch, res.epoch_len) == 0;
        info.recovered = same && covers(&res, j->since);
        if (info.recovered) {
            for (size_t i = 0; i < res.n; i++) {
                mw_frame *f = mw_frame_ws(1, res.entries[i].text, res.entries[i].len);
                if (f && mw_fanout_client_frame(c, f))
                    info.replayed++;
                if (f)
                    mw_frame_unref(f);
            }
        }
        if (hr->m) {
            mw_metrics_add(hr->m, info.recovered ? MW_M_RECOVERIES_OK : MW_M_RECOVERIES_FAILED, 1);
            mw_metrics_add(hr->m, MW_M_REPLAYED, (int64_t)info.replayed);
        }
    }
    free(res.entries);
    int seeded = 0;
    if (room_of(s) && !s->known) {
        /* nothing arrived on the bus for this room yet: delivery starts after this position */
        s->known = 1;
        set_epoch(s, res.epoch, res.epoch_len);
        s->delivered = res.last;
        seeded = 1;
    }
    /* the frames held while reading: those after the position go out now, in order */
    int same = same_epoch(s, res.epoch, res.epoch_len);
    for (size_t i = 0; i < j->n_held; i++) {
        held *h = &j->held[i];
        if (h->epoch_gen == s->epoch_gen && (!same || h->offset > position)) {
            mw_fanout_client_frame(c, h->f);
            if (same)
                position = h->offset;
        }
    }
    release_held(j);
    j->reading = 0;
    j->position = position;
    info.offset = position;
    mw_hist_join_cb cb = j->cb;
    void *arg = j->arg;
    if (!same || (s->known && s->delivered >= position)) {
        join_unlink(j);
        join_free(j);
    }
    cb(arg, &info, NULL);
    if (seeded && room_of(s))
        start_fill(s); /* what was published before the subscription took effect */
}

int mw_hist_redis_join(mw_hist_redis *hr, const char *id, size_t idlen, const char *room, size_t rlen, uint32_t size,
                       uint64_t ttl_ms, int has_since, uint64_t since, const char *epoch, size_t elen,
                       mw_hist_join_cb cb, void *arg)
{
    mw_client *c = mw_clients_find(&hr->fo->clients, id, idlen);
    mw_room *r = mw_rooms_find(&hr->fo->rooms, room, rlen);
    if (!c || !r)
        return -2;
    if (!hr->redis || !mw_redis_connected(hr->redis))
        return -1;
    hist_state *s = state_for(hr, r);
    hjoin *j = calloc(1, sizeof(*j));
    if (!s || !j) {
        free(j);
        return -1;
    }
    j->s = s;
    j->hr = hr;
    memcpy(j->id, c->id, MW_CLIENT_ID_LEN);
    j->reading = 1;
    j->has_since = has_since;
    j->since = since;
    j->size = size;
    j->cb = cb;
    j->arg = arg;
    if (has_since) {
        j->since_epoch = malloc(elen + 1);
        if (!j->since_epoch) {
            free(j);
            return -1;
        }
        memcpy(j->since_epoch, epoch, elen);
        j->since_epoch[elen] = '\0';
        j->since_epoch_len = elen;
    }
    char candidate[MW_HISTORY_EPOCH_MAX];
    snprintf(candidate, sizeof(candidate), "%s-%" PRIx64 "j", hr->tag, ++hr->epochs);
    mw_hist_read_args a = { .prefix = hr->prefix, .room = room, .room_len = rlen, .since = since,
                            .count = has_since ? size : 0, .ttl_ms = ttl_ms, .epoch = candidate,
                            .want_epoch = has_since ? epoch : NULL, .want_epoch_len = elen, .all_or_nothing = 1 };
    if (mw_hist_script_read(hr->redis, &hr->scripts, &a, join_cb, j) != 0) {
        free(j->since_epoch);
        free(j);
        return -1;
    }
    j->next = s->joins;
    s->joins = j;
    s->refs++;
    c->hist_joins++;
    return 0;
}

/* ---- reads for getHistory ----------------------------------------------------------------- */

typedef struct read_req {
    mw_hist_read_cb cb;
    void *arg;
} read_req;

static void read_cb(mw_redis *rd, redisReply *reply, const char *err, void *data)
{
    read_req *q = data;
    mw_hist_read res;
    const char *why = err;
    if (mw_hist_script_missing(reply))
        mw_hist_scripts_load(rd);
    if (!err && mw_hist_script_parse(reply, &res, &why) == 0 && res.epoch) {
        q->cb(q->arg, &res, NULL);
        free(res.entries);
    } else {
        q->cb(q->arg, NULL, why ? why : "the room's history could not be read");
    }
    free(q);
}

int mw_hist_redis_read(mw_hist_redis *hr, const char *room, size_t rlen, uint64_t ttl_ms, uint64_t since,
                       uint32_t limit, mw_hist_read_cb cb, void *arg)
{
    if (!hr->redis || !mw_redis_connected(hr->redis))
        return -1;
    read_req *q = malloc(sizeof(*q));
    if (!q)
        return -1;
    q->cb = cb;
    q->arg = arg;
    char candidate[MW_HISTORY_EPOCH_MAX];
    snprintf(candidate, sizeof(candidate), "%s-%" PRIx64 "r", hr->tag, ++hr->epochs);
    mw_hist_read_args a = { .prefix = hr->prefix, .room = room, .room_len = rlen, .since = since, .count = limit,
                            .ttl_ms = ttl_ms, .epoch = candidate };
    if (mw_hist_script_read(hr->redis, &hr->scripts, &a, read_cb, q) != 0) {
        free(q);
        return -1;
    }
    return 0;
}

/* ---- publishing ----------------------------------------------------------------------------- */

static void publish_cb(mw_redis *rd, redisReply *reply, const char *err, void *data)
{
    mw_hist_redis *hr = data;
    if (err || !reply)
        return; /* not run: neither stored nor delivered */
    if (mw_hist_script_missing(reply)) {
        mw_logf(MW_LOG_ERROR, "history: the Redis script was missing (SCRIPT FLUSH?): a room message was "
                              "dropped; loading it again");
        mw_hist_scripts_load(rd);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        mw_logf(MW_LOG_ERROR, "history: storing a room message failed: %s", reply->str);
    } else if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0 && hr->m) {
        mw_metrics_add(hr->m, MW_M_HISTORY_STORED, 1);
    }
}

/* A publish whose offset somebody waits for. */
typedef struct publish_wait {
    mw_hist_redis *hr;
    mw_hist_published_cb cb;
    void *arg;
} publish_wait;

static void publish_wait_cb(mw_redis *rd, redisReply *reply, const char *err, void *data)
{
    publish_wait *pw = data;
    publish_cb(rd, reply, err, pw->hr);
    if (reply && !err && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
        pw->cb(pw->arg, (uint64_t)reply->integer, NULL);
    else
        pw->cb(pw->arg, 0, err ? err : reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "not stored");
    free(pw);
}

static long publish(mw_hist_redis *hr, const char *room, size_t rlen, uint32_t size, uint64_t ttl_ms,
                    const char *body, size_t len, const char *exclude, const char *dedupe, size_t dlen,
                    mw_hist_published_cb done, void *done_arg)
{
    int empty;
    long head = mw_history_body_head(body, len, &empty);
    if (head < 0)
        return -2;
    if (!hr->redis || !mw_redis_connected(hr->redis))
        return -3;
    char room_json[MW_HISTORY_ROOM_JSON_MAX], candidate[MW_HISTORY_EPOCH_MAX], key[256] = "";
    size_t rj = mw_history_json_string(room, rlen, room_json, sizeof(room_json));
    if (!rj)
        return -1;
    snprintf(candidate, sizeof(candidate), "%s-%" PRIx64, hr->tag, ++hr->epochs);
    if (dedupe) {
        unsigned char d[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)dedupe, dlen, d);
        int n = snprintf(key, sizeof(key) - 2 * SHA_DIGEST_LENGTH, "%shd:", hr->prefix);
        for (int i = 0; n > 0 && i < SHA_DIGEST_LENGTH; i++)
            snprintf(key + n + 2 * i, 3, "%02x", d[i]);
    }
    /* excludeClientId comes from the app: anything that is not a clientId excludes nobody */
    if (exclude && !mw_bus_is_client_id(exclude, strlen(exclude)))
        exclude = NULL;
    mw_hist_publish_args a = { .prefix = hr->prefix, .room = room, .room_len = rlen, .size = size, .ttl_ms = ttl_ms,
                               .head = body, .head_len = (size_t)head, .empty = empty, .room_json = room_json,
                               .room_json_len = rj, .epoch = candidate, .origin = hr->tag,
                               .exclude = exclude ? exclude : "", .dedupe = key };
    publish_wait *pw = NULL;
    if (done) {
        pw = malloc(sizeof(*pw));
        if (!pw)
            return -1;
        *pw = (publish_wait){ hr, done, done_arg };
    }
    if (mw_hist_script_publish(hr->redis, &hr->scripts, &a, pw ? publish_wait_cb : publish_cb, pw ? (void *)pw : hr) != 0) {
        free(pw);
        return -3;
    }
    mw_room *r = mw_rooms_find(&hr->fo->rooms, room, rlen);
    if (!r)
        return 0;
    const mw_client *skip = mw_fanout_find_exclude(hr->fo, exclude);
    long n = r->n;
    for (uint32_t i = 0; skip && i < r->n; i++)
        if (r->members[i].client == skip)
            n--;
    return n;
}

long mw_hist_redis_publish(mw_hist_redis *hr, const char *room, size_t rlen, uint32_t size, uint64_t ttl_ms,
                           const char *body, size_t len, const char *exclude, const char *dedupe, size_t dlen)
{
    return publish(hr, room, rlen, size, ttl_ms, body, len, exclude, dedupe, dlen, NULL, NULL);
}

long mw_hist_redis_publish_wait(mw_hist_redis *hr, const char *room, size_t rlen, uint32_t size, uint64_t ttl_ms,
                                const char *body, size_t len, mw_hist_published_cb cb, void *arg)
{
    return publish(hr, room, rlen, size, ttl_ms, body, len, NULL, NULL, 0, cb, arg);
}

/* ---- the module ------------------------------------------------------------------------------ */

int mw_hist_redis_init(mw_hist_redis *hr, mw_fanout *fo, const char *prefix, const char *tag, mw_metrics_slot *m)
{
    memset(hr, 0, sizeof(*hr));
    hr->fo = fo;
    hr->prefix = prefix;
    snprintf(hr->tag, sizeof(hr->tag), "%s", tag);
    hr->m = m;
    mw_hist_scripts_init(&hr->scripts);
    hr->n_buckets = 64;
    hr->buckets = calloc(hr->n_buckets, sizeof(mw_hash_link *));
    return hr->buckets ? 0 : -1;
}

static void each_state(mw_hist_redis *hr, void (*fn)(mw_hist_redis *hr, hist_state *s))
{
    for (size_t i = 0; hr->buckets && i < hr->n_buckets; i++) {
        for (mw_hash_link *l = hr->buckets[i], *next; l; l = next) {
            next = l->next;
            fn(hr, MW_HASH_ENTRY(l, hist_state, link));
        }
    }
}

void mw_hist_redis_free(mw_hist_redis *hr)
{
    each_state(hr, state_free);
    free(hr->buckets);
    hr->buckets = NULL;
}

void mw_hist_redis_attach(mw_hist_redis *hr, struct mw_redis *redis) { hr->redis = redis; }

static void refill(mw_hist_redis *hr, hist_state *s)
{
    if (s->n_pending > 0 && room_of(s))
        start_fill(s);
}

void mw_hist_redis_on_state(mw_hist_redis *hr, int up)
{
    if (!up || !hr->redis)
        return;
    mw_hist_scripts_load(hr->redis); /* before any EVALSHA on this connection */
    each_state(hr, refill);
}

static void sweep_one(mw_hist_redis *hr, hist_state *s)
{
    if (!room_of(s) && s->refs == 0 && !s->joins)
        state_free(hr, s);
}

void mw_hist_redis_sweep(mw_hist_redis *hr) { each_state(hr, sweep_one); }
