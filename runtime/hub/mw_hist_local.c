/* mw_hist_local: the frame members get is the frame the history keeps (one allocation). */
#include "mw_hist_local.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

uint64_t mw_hist_now_ms(void) { return uv_hrtime() / 1000000; }

long mw_hist_local_publish(mw_fanout *fo, mw_history *h, const char *room, size_t rlen, uint32_t size,
                           uint64_t ttl_ms, const char *body, size_t len, const char *exclude_id, uint64_t *offset)
{
    int empty;
    if (mw_history_body_head(body, len, &empty) < 0)
        return -2;
    uint64_t now = mw_hist_now_ms();
    mw_history_room *hr = mw_history_open(h, room, rlen, size, ttl_ms, now);
    if (!hr)
        return -1;
    mw_frame *f = mw_history_append(h, hr, body, len, now);
    if (!f)
        return -1;
    *offset = hr->last;
    long n = 0;
    mw_room *r = mw_rooms_find(&fo->rooms, room, rlen);
    if (r)
        n = mw_fanout_room_frame(fo, r, f, mw_fanout_find_exclude(fo, exclude_id), NULL, NULL);
    mw_frame_unref(f);
    return n;
}

int mw_hist_local_join(mw_fanout *fo, mw_history *h, mw_client *c, const char *room, size_t rlen, uint32_t size,
                       uint64_t ttl_ms, int has_since, uint64_t since, const char *epoch, size_t elen,
                       mw_hist_info *out)
{
    mw_history_room *hr = mw_history_open(h, room, rlen, size, ttl_ms, mw_hist_now_ms());
    if (!hr)
        return -1;
    memset(out, 0, sizeof(*out));
    out->recovered = -1;
    out->offset = hr->last;
    snprintf(out->epoch, sizeof(out->epoch), "%s", hr->epoch);
    if (!has_since)
        return 0;
    mw_metrics_slot *m = h->m;
    if (m)
        mw_metrics_add(m, MW_M_RECOVERIES, 1);
    int same_epoch = elen == strlen(hr->epoch) && memcmp(epoch, hr->epoch, elen) == 0;
    out->recovered = same_epoch && mw_history_covers(hr, since);
    if (!out->recovered) {
        if (m)
            mw_metrics_add(m, MW_M_RECOVERIES_FAILED, 1);
        return 0;
    }
    for (uint64_t o = since + 1; o <= hr->last; o++)
        if (mw_fanout_client_frame(c, mw_history_get(hr, o)))
            out->replayed++;
    if (m) {
        mw_metrics_add(m, MW_M_RECOVERIES_OK, 1);
        mw_metrics_add(m, MW_M_REPLAYED, (int64_t)out->replayed);
    }
    return 0;
}
