/* mw_ws: wslay validates framing, masking, UTF-8 (1007), control frames and the declared
 * length against max_recv_msg_length (1009) before it allocates. We add what it lacks: a cap on
 * fragments per message (1008) and refusing binary messages without a raw handler (1003). */
#include "mw_ws.h"

#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "mw_util.h"

struct mw_ws {
    wslay_event_context_ptr ctx;
    const mw_ws_handler *handler;
    void *owner;
    mw_ws_limits limits;
    const uint8_t *in;
    size_t in_len, in_off;
    unsigned fragments; /* frames in the message being received */
    /* frame-boundary tracker: wslay checks a frame's declared length only once its first
     * payload byte arrives; we read each header as it completes so that a header alone that
     * declares too much is refused at once (1009) */
    uint8_t hdr[14];
    size_t hdr_len;
    uint64_t skip;     /* payload bytes of the current frame still to pass */
    uint64_t msg_len;  /* declared length of the data message so far */
    int in_message;    /* a data frame without FIN was seen: its message goes on */
    int msg_compressed; /* its first frame had RSV1 (permessage-deflate), so the wire limit applies */
    /* the peer's close payload, unmasked: wslay skips the first two bytes of every chunk of
     * it when checking the reason's UTF-8, so a close split across reads passes unchecked */
    uint8_t close_buf[125], close_mask[4];
    size_t close_off;
    int in_close;
    int close_queued;
    int broken;  /* a protocol error wslay could only report as a failure: we sent 1002 */
    int failed;  /* nothing more can be written: drop the connection */
    int failed_output;
    char close_reason[124]; /* from the peer's close frame */
};

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    mw_ws *ws = user;
    size_t avail = ws->in_len - ws->in_off;
    if (avail == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > avail)
        len = avail;
    memcpy(buf, ws->in + ws->in_off, len);
    ws->in_off += len;
    return (ssize_t)len;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    mw_ws *ws = user;
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
    wslay_event_shutdown_read(ws->ctx);
}

static void frame_start_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *arg,
                           void *user)
{
    mw_ws *ws = user;
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
    mw_ws *ws = user;
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
            size_t n = arg->msg_length - 2 < sizeof(ws->close_reason) - 1 ? arg->msg_length - 2
                                                                        : sizeof(ws->close_reason) - 1;
            memcpy(ws->close_reason, arg->msg + 2, n);
            ws->close_reason[n] = '\0';
        }
    }
}

mw_ws *mw_ws_new(const mw_ws_limits *limits, const mw_ws_handler *handler, void *owner)
{
    static const struct wslay_event_callbacks callbacks = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_frame_recv_start_callback = frame_start_cb,
        .on_msg_recv_callback = msg_cb,
    };
    mw_ws *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->handler = handler;
    ws->owner = owner;
    ws->limits = *limits;
    if (wslay_event_context_server_init(&ws->ctx, &callbacks, ws) != 0) {
        free(ws);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, wire_max(ws, limits->inflate != NULL));
    if (limits->inflate)
        wslay_event_config_set_allowed_rsv_bits(ws->ctx, WSLAY_RSV1_BIT);
    return ws;
}

void mw_ws_free(mw_ws *ws)
{
    if (!ws)
        return;
    wslay_event_context_free(ws->ctx);
    free(ws);
}

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
            for (uint64_t k = 0; ws->in_close && k < n; k++, ws->close_off++)
                ws->close_buf[ws->close_off] = data[i + k] ^ ws->close_mask[ws->close_off & 3];
            ws->skip -= n;
            i += (size_t)n;
            if (ws->in_close && ws->skip == 0) {
                ws->in_close = 0;
                if (!mw_utf8_valid(ws->close_buf + 2, ws->close_off - 2)) {
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
        /* what wslay's frame layer rejects without a close code: answer 1002 ourselves */
        if ((len7 == 126 && payload < 126) || (len7 == 127 && (payload <= 0xffff || payload >> 63)) ||
            (opcode >= 8 && (!fin || payload > 125)) || (opcode == 8 && payload == 1)) {
            *refuse_code = 1002;
            return i;
        }
        if (opcode == 8 && payload > 2 && (ws->hdr[1] & 0x80)) {
            ws->in_close = 1;
            ws->close_off = 0;
            memcpy(ws->close_mask, ws->hdr + need - 4, 4);
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

static void unmask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4])
{
    uint32_t k32;
    memcpy(&k32, key, 4);
    uint64_t k64 = (uint64_t)k32 << 32 | k32, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* eight bytes at a time: the key repeats every four */
        memcpy(&w, src + i, 8);
        w ^= k64;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ key[i & 3];
}

/* The common case without wslay: whole, unfragmented, masked text or binary frames of at most
 * 64 KiB that begin data (wslay then holds nothing: the stream is at a frame boundary and no
 * message is in progress). wslay would copy each payload into a chunk it allocates, flatten it
 * into another, unmask and check UTF-8 a byte at a time; here the payload is unmasked eight
 * bytes at a time into one static buffer and handed over (inflated first when RSV1 marks it
 * compressed). Anything else (a control frame, a fragment, a partial frame, other reserved bits,
 * a frame to refuse, invalid UTF-8 or deflate data) stops the fast
 * path, and the bytes from there on go through wslay, which answers them as always. Returns
 * the bytes consumed. */
static size_t feed_fast(mw_ws *ws, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (!ws->close_queued && !ws->failed && ws->hdr_len == 0 && ws->skip == 0 && !ws->in_message) {
        const uint8_t *p = data + off;
        size_t avail = len - off;
        if (avail < 6)
            break;
        int opcode = p[0] & 0x0f, compressed = (p[0] & 0x40) != 0;
        /* FIN, no reserved bits but RSV1 once negotiated, text or (when allowed) binary, masked */
        if ((p[0] & 0xb0) != 0x80 || (compressed && !ws->limits.inflate) ||
            !(opcode == 1 || (opcode == 2 && ws->limits.allow_binary)) || !(p[1] & 0x80))
            break;
        size_t plen = p[1] & 0x7f, hlen = 6;
        if (plen == 127)
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
        unmask(unmasked, p + hlen, plen, p + hlen - 4);
        const uint8_t *msg = unmasked;
        size_t msg_len = plen;
        uint16_t code;
        const char *reason;
        if (compressed ? inflate_msg(ws, opcode, &msg, &msg_len, &code, &reason) != 0
                       : opcode == 1 && !mw_utf8_valid(unmasked, plen))
            break; /* wslay's path refuses it (1007; inflating it again for the code) */
        off += hlen + plen;
        ws->fragments = 1;
        ws->msg_len = plen;
        /* as msg_cb: control frames answered before this message go out before its reply */
        if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0)
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
    if (ws->close_queued && !wslay_event_want_read(ws->ctx))
        return 0;
    size_t fast = feed_fast(ws, data, len);
    if (ws->failed)
        return -1;
    data += fast;
    len -= fast;
    if (len == 0)
        return 0;
    int refuse_code;
    len = track_frames(ws, data, len, &refuse_code);
    ws->in = data;
    ws->in_len = len;
    ws->in_off = 0;
    int rv = 0;
    while (ws->in_off < ws->in_len && wslay_event_want_read(ws->ctx)) {
        if (wslay_event_recv(ws->ctx) != 0) {
            rv = -1;
            break;
        }
    }
    /* wslay queues a close itself on protocol errors (1002, 1007, 1009) and stops reading */
    if (rv != 0 && !ws->failed_output) {
        /* wslay's frame layer met a protocol error: it queued a close without a code, which
         * would tell the peer nothing. Say 1002 ourselves and stop. */
        static const uint8_t close_1002[] = { 0x88, 0x02, 0x03, 0xea };
        wslay_event_shutdown_read(ws->ctx);
        wslay_event_shutdown_write(ws->ctx);
        ws->broken = 1;
        ws->close_queued = 1;
        rv = 0;
        if (!wslay_event_get_close_sent(ws->ctx))
            rv = ws->handler->on_output(ws->owner, close_1002, sizeof(close_1002)) == 0 ? 0 : -1;
    } else if (refuse_code && wslay_event_get_read_enabled(ws->ctx)) {
        refuse(ws, (uint16_t)refuse_code, refuse_code == 1009   ? "Message too big"
                                          : refuse_code == 1007 ? "Invalid UTF-8 in the close reason"
                                                                : "Protocol error");
    }
    if (!wslay_event_get_read_enabled(ws->ctx))
        ws->close_queued = 1;
    ws->in = NULL;
    ws->in_len = ws->in_off = 0;
    if (rv != 0)
        ws->failed = 1;
    return rv;
}

int mw_ws_flush(mw_ws *ws)
{
    if (ws->failed)
        return -1;
    if (ws->broken)
        return 0;
    if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0) {
        ws->failed = 1;
        return -1;
    }
    return 0;
}

void mw_ws_ping(mw_ws *ws)
{
    static const uint8_t payload[] = "mw";
    struct wslay_event_msg msg = { WSLAY_PING, payload, sizeof(payload) - 1 };
    if (!ws->close_queued)
        wslay_event_queue_msg(ws->ctx, &msg);
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
    wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, rlen);
    ws->close_queued = 1;
}

int mw_ws_closing(const mw_ws *ws) { return ws->close_queued || ws->failed; }
int mw_ws_close_sent(const mw_ws *ws) { return ws->broken || wslay_event_get_close_sent(ws->ctx); }
int mw_ws_close_received(const mw_ws *ws) { return wslay_event_get_close_received(ws->ctx); }
int mw_ws_want_read(const mw_ws *ws) { return wslay_event_want_read(ws->ctx); }

int mw_ws_done(const mw_ws *ws)
{
    return ws->failed || ws->broken || (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx) &&
                          (wslay_event_get_close_sent(ws->ctx) || !wslay_event_get_write_enabled(ws->ctx)));
}

const char *mw_ws_close_reason(const mw_ws *ws) { return ws->close_reason; }

uint16_t mw_ws_close_code(const mw_ws *ws)
{
    if (ws->broken)
        return 1002;
    if (wslay_event_get_close_received(ws->ctx))
        return wslay_event_get_status_code_received(ws->ctx);
    if (wslay_event_get_close_sent(ws->ctx))
        return wslay_event_get_status_code_sent(ws->ctx);
    return 1006;
}
