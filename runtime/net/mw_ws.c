/* mw_ws: wslay validates framing, masking, UTF-8 (1007), control frames and the declared
 * length against max_recv_msg_length (1009) before it allocates. We add what it lacks: a cap on
 * fragments per message (1008) and refusing binary messages without a raw handler (1003).
 *
 * Memory rule (issue 15): an idle session holds no wslay context. A context (~9.4 KB with its
 * read and write buffers) is borrowed from the worker's pool (mw_wsctx_pool) when bytes arrive
 * that the fast path does not take whole, and given back as soon as the stream is again at a
 * message boundary with nothing queued (give_back_if_idle, after every feed and flush). It is
 * kept only while a frame or message is partly received or a close handshake is on. What
 * matters across messages stays here, small: the limits, the frame tracker, the close flags and
 * the code of a close sent while idle (written directly and replayed into a context borrowed
 * later, muted, so wslay knows it was sent). Pings from the heartbeat are written directly too. */
#include "mw_ws.h"

#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "mw_util.h"

struct mw_ws {
    mw_wsctx *x; /* borrowed wslay context, or NULL while idle (see the rule above) */
    const mw_ws_handler *handler;
    void *owner;
    mw_ws_limits limits;
    /* frame-boundary tracker: wslay checks a frame's declared length only once its first
     * payload byte arrives; we read each header as it completes so that a header alone that
     * declares too much is refused at once (1009). It also tells when wslay holds nothing. */
    uint64_t skip;     /* payload bytes of the current frame still to pass */
    uint64_t msg_len;  /* declared length of the data message so far */
    uint64_t held;     /* msg_len while a data message is partly received (wslay buffers it) */
    unsigned fragments; /* frames in the message being received */
    uint16_t code_sent; /* the code of a close written while idle (close_direct) */
    uint16_t code_rcvd; /* the code of a close read while idle (close_rcvd) */
    char *peer_reason;  /* its reason, when not empty */
    uint8_t hdr[14];
    uint8_t hdr_len;
    uint8_t in_message;  /* a data frame without FIN was seen: its message goes on */
    uint8_t msg_compressed; /* its first frame had RSV1 (permessage-deflate): the wire limit applies */
    uint8_t in_data;     /* the frame being passed (skip) is a data frame */
    /* the peer's close payload is unmasked into the context: wslay skips the first two bytes
     * of every chunk of it when checking the reason's UTF-8, so a close split across reads
     * would pass unchecked */
    uint8_t in_close;
    uint8_t close_queued;
    uint8_t close_direct; /* a close frame was written without a context */
    uint8_t close_rcvd;   /* the peer's close was read without a context: nothing more is read */
    uint8_t mute;         /* replaying that close into a context: its output is dropped */
    uint8_t broken;       /* a protocol error wslay could only report as a failure: we sent 1002 */
    uint8_t failed;       /* nothing more can be written: drop the connection */
    uint8_t failed_output;
};

#define WS_OF(user) ((mw_ws *)((mw_wsctx *)(user))->user)

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    mw_wsctx *x = user;
    size_t avail = x->in_len - x->in_off;
    if (avail == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > avail)
        len = avail;
    memcpy(buf, x->in + x->in_off, len);
    x->in_off += len;
    return (ssize_t)len;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    mw_ws *ws = WS_OF(user);
    if (ws->mute)
        return (ssize_t)len;
    if (ws->handler->on_output(ws->owner, data, len) != 0) {
        ws->failed_output = 1;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void refuse(mw_ws *ws, uint16_t code, const char *reason)
{
    mw_ws_close(ws, code, reason);
    wslay_event_shutdown_read(ws->x->ctx);
}

static void frame_start_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *arg,
                           void *user)
{
    mw_ws *ws = WS_OF(user);
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        ws->fragments = 1;
    else if (arg->opcode == WSLAY_CONTINUATION_FRAME)
        ws->fragments++;
    else
        return;
    if (ws->fragments > ws->limits.max_fragments)
        refuse(ws, 1008, "Too many fragments");
}

/* The largest message to accept as sent: a compressed one may be a little longer than the limit
 * (deflate's stored blocks), which applies to it once inflated. */
static size_t wire_max(const mw_ws *ws, int compressed)
{
    return compressed ? mw_deflate_wire_max(ws->limits.max_message_size) : ws->limits.max_message_size;
}

/* Inflates a compressed message (into the worker's codec, so that no buffer lives per
 * connection) under max_message_size: *data and *len then point to it. Returns 0, or -1 with the
 * reason to refuse it in *code and *reason (nothing is queued). */
static int inflate_msg(mw_ws *ws, int opcode, const uint8_t **data, size_t *len, uint16_t *code, const char **reason)
{
    int rc = mw_deflate_inflate(ws->limits.inflate, *data, *len, ws->limits.max_message_size, data, len);
    if (rc == MW_INFLATE_OK && (opcode == 2 || mw_utf8_valid(*data, *len)))
        return 0;
    *code = rc == MW_INFLATE_TOO_BIG ? 1009 : rc == MW_INFLATE_NOMEM ? 1011 : 1007;
    *reason = rc == MW_INFLATE_TOO_BIG ? "Message too big"
            : rc == MW_INFLATE_NOMEM   ? "Out of memory"
            : rc == MW_INFLATE_BAD     ? "Invalid compressed data"
                                       : "Invalid UTF-8";
    mw_deflate_trim(ws->limits.inflate);
    return -1;
}

/* Hands a data message to the owner, inflated first when it came compressed; a message refused
 * (over the limit, not inflating) queues its close instead. */
static void deliver(mw_ws *ws, int opcode, int compressed, const uint8_t *data, size_t len)
{
    uint16_t code;
    const char *reason;
    if (!compressed && len > ws->limits.max_message_size) { /* wslay's limit is the wire one */
        refuse(ws, 1009, "Message too big");
    } else if (compressed && inflate_msg(ws, opcode, &data, &len, &code, &reason) != 0) {
        refuse(ws, code, reason);
    } else {
        ws->handler->on_message(ws->owner, opcode, data, len);
        if (compressed) /* the codec's buffer that held it */
            mw_deflate_trim(ws->limits.inflate);
    }
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    mw_wsctx *x = user;
    mw_ws *ws = x->user;
    if (ws->close_queued)
        return;
    /* answer control frames that came before this message (a ping between its fragments)
     * before the handler's reply, in the order the peer sent them */
    if (arg->opcode != WSLAY_CONNECTION_CLOSE && wslay_event_want_write(ctx) && wslay_event_send(ctx) != 0)
        ws->failed = 1;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        int compressed = (arg->rsv & WSLAY_RSV1_BIT) != 0; /* wslay allows it only once negotiated */
        if (arg->opcode == WSLAY_BINARY_FRAME && !ws->limits.allow_binary)
            refuse(ws, 1003, "Binary frames are not accepted");
        else
            deliver(ws, arg->opcode, compressed, arg->msg, arg->msg_length);
    } else if (arg->opcode == WSLAY_PONG) {
        if (ws->handler->on_pong)
            ws->handler->on_pong(ws->owner);
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        ws->close_queued = 1; /* wslay queued the echo of the peer's close */
        if (arg->msg_length > 2) { /* valid UTF-8: checked in track_frames */
            size_t n = arg->msg_length - 2 < sizeof(x->close_reason) - 1 ? arg->msg_length - 2
                                                                       : sizeof(x->close_reason) - 1;
            memcpy(x->close_reason, arg->msg + 2, n);
            x->close_reason[n] = '\0';
        }
    }
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_frame_recv_start_callback = frame_start_cb,
    .on_msg_recv_callback = msg_cb,
};

void mw_ws_pool_init(mw_wsctx_pool *pool, size_t max_spare)
{
    mw_wsctx_pool_init(pool, &callbacks, max_spare);
}

mw_ws *mw_ws_new(const mw_ws_limits *limits, const mw_ws_handler *handler, void *owner)
{
    mw_ws *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->handler = handler;
    ws->owner = owner;
    ws->limits = *limits;
    return ws;
}

/* Borrows a context for bytes that need wslay, set up for this session. Returns 0 or -1. */
static int borrow(mw_ws *ws)
{
    if (ws->x)
        return 0;
    ws->x = mw_wsctx_acquire(ws->limits.pool, &callbacks, ws);
    if (!ws->x)
        return -1;
    wslay_event_config_set_max_recv_msg_length(ws->x->ctx, wire_max(ws, ws->limits.inflate != NULL));
    /* a context from the pool may have served a session with the other setting */
    wslay_event_config_set_allowed_rsv_bits(ws->x->ctx, ws->limits.inflate ? WSLAY_RSV1_BIT : WSLAY_RSV_NONE);
    if (ws->close_direct) {
        /* a close went out while idle: wslay must know, or it would answer the peer's close
         * with a second one; its copy of the frame is dropped */
        ws->mute = 1;
        wslay_event_queue_close(ws->x->ctx, ws->code_sent, NULL, 0);
        wslay_event_send(ws->x->ctx);
        ws->mute = 0;
    }
    return 0;
}

/* A frame or message is partly received (wslay holds part of it). */
static int partial(const mw_ws *ws) { return ws->hdr_len > 0 || ws->skip > 0 || ws->in_message; }

/* Gives the context back once the session is idle again: at a message boundary, nothing left to
 * send (queued control frames go out now), no close on. */
static void give_back_if_idle(mw_ws *ws)
{
    if (!ws->x || ws->close_queued || ws->failed || ws->broken || ws->in_close || partial(ws))
        return;
    if (wslay_event_want_write(ws->x->ctx) && wslay_event_send(ws->x->ctx) != 0) {
        ws->failed = 1;
        return;
    }
    if (wslay_event_want_write(ws->x->ctx) || !wslay_event_get_read_enabled(ws->x->ctx))
        return;
    mw_wsctx_release(ws->limits.pool, ws->x, 1);
    ws->x = NULL;
}

/* Keeps the pool's count of bytes held in partial messages. */
static void account_held(mw_ws *ws)
{
    uint64_t held = ws->in_message || (ws->in_data && ws->skip > 0) ? ws->msg_len : 0;
    if (held != ws->held && ws->limits.pool)
        ws->limits.pool->held_bytes += held - ws->held;
    ws->held = held;
}

void mw_ws_free(mw_ws *ws)
{
    if (!ws)
        return;
    if (ws->limits.pool)
        ws->limits.pool->held_bytes -= ws->held;
    if (ws->x)
        mw_wsctx_release(ws->limits.pool, ws->x, 0);
    free(ws->peer_reason);
    free(ws);
}

int mw_ws_partial(const mw_ws *ws) { return partial(ws); }
int mw_ws_has_context(const mw_ws *ws) { return ws->x != NULL; }
uint64_t mw_ws_held_bytes(const mw_ws *ws) { return ws->held; }

/* Follows frame boundaries in data. Returns the offset just past the first frame header that
 * must be refused, setting *refuse_code (1009: the declared length takes the message over the
 * limit; 1002: a malformed header; 1007: a close reason that is not UTF-8, and then the offset
 * is that of the frame's last byte), or len when there is none. */
static size_t track_frames(mw_ws *ws, const uint8_t *data, size_t len, int *refuse_code)
{
    *refuse_code = 0;
    size_t i = 0;
    while (i < len) {
        if (ws->skip > 0) {
            uint64_t n = len - i < ws->skip ? len - i : ws->skip;
            mw_wsctx *x = ws->x;
            for (uint64_t k = 0; ws->in_close && k < n; k++, x->close_off++)
                x->close_buf[x->close_off] = data[i + k] ^ x->close_mask[x->close_off & 3];
            ws->skip -= n;
            i += (size_t)n;
            if (ws->in_close && ws->skip == 0) {
                ws->in_close = 0;
                if (!mw_utf8_valid(x->close_buf + 2, x->close_off - 2)) {
                    *refuse_code = 1007;
                    return i - 1; /* wslay never sees the end of this frame */
                }
            }
            continue;
        }
        ws->hdr[ws->hdr_len++] = data[i++];
        if (ws->hdr_len < 2)
            continue;
        size_t len7 = ws->hdr[1] & 0x7f;
        size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((ws->hdr[1] & 0x80) ? 4 : 0);
        if (ws->hdr_len < need)
            continue;
        uint64_t payload = len7;
        if (len7 == 126)
            payload = ((uint64_t)ws->hdr[2] << 8) | ws->hdr[3];
        else if (len7 == 127)
            for (int k = 0; k < 8; k++)
                payload = (payload << 8) | ws->hdr[2 + k];
        int opcode = ws->hdr[0] & 0x0f;
        int fin = ws->hdr[0] & 0x80;
        ws->hdr_len = 0;
        ws->skip = payload;
        ws->in_data = opcode < 8;
        /* what wslay's frame layer rejects without a close code: answer 1002 ourselves */
        if ((len7 == 126 && payload < 126) || (len7 == 127 && (payload <= 0xffff || payload >> 63)) ||
            (opcode >= 8 && (!fin || payload > 125)) || (opcode == 8 && payload == 1)) {
            *refuse_code = 1002;
            return i;
        }
        if (opcode == 8 && payload > 2 && (ws->hdr[1] & 0x80)) {
            ws->in_close = 1;
            ws->x->close_off = 0;
            memcpy(ws->x->close_mask, ws->hdr + need - 4, 4);
        }
        if (opcode == 1 || opcode == 2) {
            ws->msg_len = payload;
            ws->msg_compressed = (ws->hdr[0] & 0x40) && ws->limits.inflate;
        } else if (opcode == 0) {
            ws->msg_len += payload;
        } else {
            continue;
        }
        ws->in_message = !fin;
        if (ws->msg_len > wire_max(ws, ws->msg_compressed)) {
            *refuse_code = 1009;
            return i;
        }
    }
    return len;
}

/* Unmasked payloads of the fast path; a read is handled before the next, and the owner copies
 * what it keeps, so one buffer serves every connection. */
static uint8_t unmasked[0xffff];

/* Returns nonzero when some unmasked byte is not ASCII: a text message of ASCII only (most
 * JSON) then needs no UTF-8 check, found while its bytes pass through here anyway. */
static uint64_t unmask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4])
{
    uint32_t k32;
    memcpy(&k32, key, 4);
    uint64_t k64 = (uint64_t)k32 << 32 | k32, w, high = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* eight bytes at a time: the key repeats every four */
        memcpy(&w, src + i, 8);
        w ^= k64;
        high |= w;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++) {
        dst[i] = src[i] ^ key[i & 3];
        high |= dst[i];
    }
    return high & 0x8080808080808080ull;
}

/* wslay's rule for a close code a peer may send (RFC 6455 7.4). */
static int valid_close_code(uint16_t code)
{
    return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
           (code >= 3000 && code <= 4999);
}

/* A whole control frame while no context is lent, answered as wslay would: a ping with a pong
 * of its payload (not once closing), a pong reported, a close echoed (code and reason) unless
 * one was sent, after which nothing more is read. Returns 0 to leave the frame to wslay (a close
 * it refuses: bad code, 1-byte payload, invalid UTF-8). An idle session so stays without a
 * context through heartbeats and the close handshake (a mass disconnect costs no 9 KB each). */
static int fast_control(mw_ws *ws, int opcode, const uint8_t *pl, size_t plen)
{
    uint8_t f[2 + 125];
    if (opcode == 9) {
        if (ws->close_queued)
            return 1;
        f[0] = 0x8a;
        f[1] = (uint8_t)plen;
        memcpy(f + 2, pl, plen);
        if (ws->handler->on_output(ws->owner, f, 2 + plen) != 0)
            ws->failed = 1;
        return 1;
    }
    if (opcode == 10) {
        if (ws->handler->on_pong)
            ws->handler->on_pong(ws->owner);
        return 1;
    }
    uint16_t code = 0;
    if (plen == 1)
        return 0;
    if (plen >= 2) {
        code = (uint16_t)(pl[0] << 8 | pl[1]);
        if (!valid_close_code(code) || !mw_utf8_valid(pl + 2, plen - 2))
            return 0;
        if (plen > 2) {
            if (!(ws->peer_reason = malloc(plen - 1))) {
                ws->failed = 1;
                return 1;
            }
            memcpy(ws->peer_reason, pl + 2, plen - 2);
            ws->peer_reason[plen - 2] = '\0';
        }
    }
    ws->close_rcvd = 1;
    ws->code_rcvd = code ? code : 1005;
    if (!ws->close_queued) { /* the echo: the peer's code and reason, as wslay answers */
        f[0] = 0x88;
        f[1] = (uint8_t)plen;
        memcpy(f + 2, pl, plen);
        ws->close_queued = 1;
        ws->close_direct = 1;
        ws->code_sent = code;
        if (ws->handler->on_output(ws->owner, f, 2 + plen) != 0)
            ws->failed = 1;
    }
    return 1;
}

/* The common case without wslay: whole, unfragmented, masked text or binary frames of at most
 * 64 KiB that begin data (wslay then holds nothing: the stream is at a frame boundary and no
 * message is in progress), and whole control frames while no context is lent (fast_control).
 * wslay would copy each payload into a chunk it allocates, flatten it into another, unmask and
 * check UTF-8 a byte at a time; here the payload is unmasked eight bytes at a time into one
 * static buffer and handed over (inflated first when RSV1 marks it compressed). Anything else
 * (a fragment, a partial frame, other reserved bits, a frame to refuse, invalid UTF-8 or deflate
 * data) stops the fast path, and the bytes from there on go through wslay, which answers them as
 * always. Returns the bytes consumed. */
static size_t feed_fast(mw_ws *ws, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (!ws->failed && !ws->close_rcvd && ws->hdr_len == 0 && ws->skip == 0 && !ws->in_message) {
        const uint8_t *p = data + off;
        size_t avail = len - off;
        if (avail < 6)
            break;
        int opcode = p[0] & 0x0f;
        int control = opcode >= 8, compressed = (p[0] & 0x40) != 0;
        /* FIN, no reserved bits (but RSV1 on a data frame once negotiated), masked; text or (when
         * allowed) binary while not closing, or a known control frame while no context is lent */
        if ((p[0] & 0xb0) != 0x80 || !(p[1] & 0x80) || (compressed && (control || !ws->limits.inflate)))
            break;
        if (control ? ws->x || opcode > 10
                    : ws->close_queued || !(opcode == 1 || (opcode == 2 && ws->limits.allow_binary)))
            break;
        size_t plen = p[1] & 0x7f, hlen = 6;
        if (plen == 127 || (control && plen > 125))
            break;
        if (plen == 126) {
            if (avail < 8)
                break;
            plen = (size_t)p[2] << 8 | p[3];
            hlen = 8;
            if (plen < 126)
                break;
        }
        if (plen > avail - hlen || plen > wire_max(ws, compressed))
            break;
        uint64_t not_ascii = unmask(unmasked, p + hlen, plen, p + hlen - 4);
        if (control) {
            if (!fast_control(ws, opcode, unmasked, plen))
                break;
            off += hlen + plen;
            if (ws->close_rcvd)
                return len; /* nothing after a close is read */
            continue;
        }
        const uint8_t *msg = unmasked;
        size_t msg_len = plen;
        uint16_t code;
        const char *reason;
        if (compressed ? inflate_msg(ws, opcode, &msg, &msg_len, &code, &reason) != 0
                       : opcode == 1 && not_ascii && !mw_utf8_valid(unmasked, plen))
            break; /* wslay's path refuses it (1007; inflating it again for the code) */
        off += hlen + plen;
        ws->fragments = 1;
        ws->msg_len = plen;
        /* as msg_cb: control frames answered before this message go out before its reply */
        if (ws->x && wslay_event_want_write(ws->x->ctx) && wslay_event_send(ws->x->ctx) != 0)
            ws->failed = 1;
        ws->handler->on_message(ws->owner, opcode, msg, msg_len);
        if (compressed)
            mw_deflate_trim(ws->limits.inflate);
    }
    return off;
}

int mw_ws_feed(mw_ws *ws, const uint8_t *data, size_t len)
{
    if (ws->failed)
        return -1;
    if (ws->close_rcvd || (ws->close_queued && ws->x && !wslay_event_want_read(ws->x->ctx)))
        return 0;
    size_t fast = feed_fast(ws, data, len);
    if (ws->failed)
        return -1;
    data += fast;
    len -= fast;
    if (len == 0)
        return 0;
    if (borrow(ws) != 0) {
        ws->failed = 1;
        return -1;
    }
    wslay_event_context_ptr ctx = ws->x->ctx;
    int refuse_code;
    len = track_frames(ws, data, len, &refuse_code);
    ws->x->in = data;
    ws->x->in_len = len;
    ws->x->in_off = 0;
    int rv = 0;
    while (ws->x->in_off < ws->x->in_len && wslay_event_want_read(ctx)) {
        if (wslay_event_recv(ctx) != 0) {
            rv = -1;
            break;
        }
    }
    /* wslay queues a close itself on protocol errors (1002, 1007, 1009) and stops reading */
    if (rv != 0 && !ws->failed_output) {
        /* wslay's frame layer met a protocol error: it queued a close without a code, which
         * would tell the peer nothing. Say 1002 ourselves and stop. */
        static const uint8_t close_1002[] = { 0x88, 0x02, 0x03, 0xea };
        wslay_event_shutdown_read(ctx);
        wslay_event_shutdown_write(ctx);
        ws->broken = 1;
        ws->close_queued = 1;
        rv = 0;
        if (!wslay_event_get_close_sent(ctx))
            rv = ws->handler->on_output(ws->owner, close_1002, sizeof(close_1002)) == 0 ? 0 : -1;
    } else if (refuse_code && wslay_event_get_read_enabled(ctx)) {
        refuse(ws, (uint16_t)refuse_code, refuse_code == 1009   ? "Message too big"
                                          : refuse_code == 1007 ? "Invalid UTF-8 in the close reason"
                                                                : "Protocol error");
    }
    if (!wslay_event_get_read_enabled(ctx))
        ws->close_queued = 1;
    ws->x->in = NULL;
    ws->x->in_len = ws->x->in_off = 0;
    if (rv != 0)
        ws->failed = 1;
    account_held(ws);
    if (rv == 0)
        give_back_if_idle(ws);
    return ws->failed ? -1 : rv;
}

int mw_ws_flush(mw_ws *ws)
{
    if (ws->failed)
        return -1;
    if (ws->broken || !ws->x)
        return 0;
    if (wslay_event_want_write(ws->x->ctx) && wslay_event_send(ws->x->ctx) != 0) {
        ws->failed = 1;
        return -1;
    }
    give_back_if_idle(ws);
    return ws->failed ? -1 : 0;
}

void mw_ws_ping(mw_ws *ws)
{
    static const uint8_t payload[] = "mw";
    if (ws->close_queued || ws->failed)
        return;
    if (!ws->x) { /* idle: no context for one frame; the bytes are wslay's, FIN + ping, "mw" */
        static const uint8_t ping[] = { 0x89, 0x02, 'm', 'w' };
        if (ws->handler->on_output(ws->owner, ping, sizeof(ping)) != 0)
            ws->failed = 1;
        return;
    }
    struct wslay_event_msg msg = { WSLAY_PING, payload, sizeof(payload) - 1 };
    wslay_event_queue_msg(ws->x->ctx, &msg);
}

void mw_ws_close(mw_ws *ws, uint16_t code, const char *reason)
{
    if (ws->close_queued)
        return;
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > 123) { /* a close frame's payload is at most 125 bytes; cut at a character */
        rlen = 123;
        while (rlen > 0 && ((unsigned char)reason[rlen] & 0xc0) == 0x80)
            rlen--;
    }
    /* the reason must be UTF-8 (RFC 6455 5.5.1) or the peer fails the connection (1007) and
     * never sees the code; a Lua string or the bus's byte-cut copy may not be: keep the valid prefix */
    while (rlen > 0 && !mw_utf8_valid((const uint8_t *)reason, rlen))
        rlen--;
    ws->close_queued = 1;
    if (ws->x) {
        wslay_event_queue_close(ws->x->ctx, code, (const uint8_t *)reason, rlen);
        return;
    }
    /* idle: write the frame as wslay would (no code: empty payload), remember the code for a
     * context borrowed when the peer answers */
    uint8_t f[2 + 125];
    size_t n = code ? 2 + rlen : 0;
    f[0] = 0x88;
    f[1] = (uint8_t)n;
    if (code) {
        f[2] = (uint8_t)(code >> 8);
        f[3] = (uint8_t)code;
        memcpy(f + 4, reason, rlen);
    }
    ws->close_direct = 1;
    ws->code_sent = code;
    if (ws->handler->on_output(ws->owner, f, 2 + n) != 0)
        ws->failed = 1;
}

int mw_ws_closing(const mw_ws *ws) { return ws->close_queued || ws->failed; }
int mw_ws_close_sent(const mw_ws *ws)
{
    return ws->broken || (ws->x ? wslay_event_get_close_sent(ws->x->ctx) : ws->close_direct);
}
int mw_ws_close_received(const mw_ws *ws)
{
    return ws->close_rcvd || (ws->x && wslay_event_get_close_received(ws->x->ctx));
}
int mw_ws_want_read(const mw_ws *ws)
{
    return ws->x ? wslay_event_want_read(ws->x->ctx) : !ws->failed && !ws->close_rcvd;
}

int mw_ws_done(const mw_ws *ws)
{
    if (ws->failed || ws->broken)
        return 1;
    if (!ws->x) /* both closes passed without a context, or (0) idle or waiting for the answer */
        return ws->close_rcvd;
    wslay_event_context_ptr ctx = ws->x->ctx;
    return !wslay_event_want_read(ctx) && !wslay_event_want_write(ctx) &&
           (wslay_event_get_close_sent(ctx) || !wslay_event_get_write_enabled(ctx));
}

const char *mw_ws_close_reason(const mw_ws *ws)
{
    return ws->x ? ws->x->close_reason : ws->peer_reason ? ws->peer_reason : "";
}

uint16_t mw_ws_close_code(const mw_ws *ws)
{
    if (ws->broken)
        return 1002;
    if (!ws->x)
        return ws->close_rcvd     ? ws->code_rcvd
               : ws->close_direct ? (ws->code_sent ? ws->code_sent : 1005)
                                  : 1006;
    if (wslay_event_get_close_received(ws->x->ctx))
        return wslay_event_get_status_code_received(ws->x->ctx);
    if (wslay_event_get_close_sent(ws->x->ctx))
        return wslay_event_get_status_code_sent(ws->x->ctx);
    return 1006;
}
