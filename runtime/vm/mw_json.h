/* mw_json: the wire codec, JSON text <-> Lua values, straight against the Lua C API (no
 * intermediate tree). Why not lua-cjson for the wire: Debian's 2.1.0 prints numbers with 14
 * significant digits and cannot tell [] from {}, so a controller echoing what it got changed it.
 *
 * The rules (the "JSON fidelity" section of README.md):
 *   - integers up to 2^53 in magnitude are written exactly; other numbers with the fewest
 *     significant digits (15 to 17) that read back to the same double; -0 stays -0;
 *   - NaN and the infinities are refused when encoding; a number beyond the double range
 *     (1e400, a 400-digit integer) is a decoding error, never an infinity;
 *   - a decoded array is a table with the array metatable, so [] encodes back as [] and {} as
 *     {}; a table with that metatable (`array(t)`) encodes as an array, and the `emptyArray`
 *     value as []; a plain table with keys 1..n is an array, a sparse one (max key > 2 x count
 *     and > 10) an object, like the runtime's earlier cjson settings;
 *   - JSON null is a light userdata NULL (equal to cjson.null), strings are bytes (UTF-8 is the
 *     WebSocket layer's check), '/' is not escaped;
 *   - decoding follows RFC 8259 strictly, with a nesting limit; encoding stops at 1000 levels
 *     (which also catches a table that contains itself). */
#ifndef MW_JSON_H
#define MW_JSON_H

#include <stddef.h>

struct lua_State;

#define MW_JSON_ENCODE_MAX_DEPTH 1000

/* Decodes text[0..len) and pushes the value. On error pushes nothing and returns -1 with a
 * message (position included) in err. [-0, +1 or +0] */
int mw_json_decode(struct lua_State *L, const char *text, size_t len, int max_depth, char *err,
                   size_t errlen);

/* Decodes text[0..len) when it is a JSON object, keeping only the members named in names[0..n) (n at most 8):
 * pushes their n values in that order (nil for a member that is absent; JSON null is null) and
 * returns 1. Valid JSON that is not an object: pushes nothing, returns 0. Invalid JSON (by the
 * same rules and nesting limit as mw_json_decode, the object counting as one level): pushes
 * nothing, returns -1 with a message in err. The other members are checked and dropped, and no
 * table is made for the object itself. [-0, +n or +0] */
int mw_json_decode_fields(struct lua_State *L, const char *text, size_t len, int max_depth,
                          const char *const *names, int n, char *err, size_t errlen);

/* A growable output buffer; reuse one across calls to avoid allocating per message. */
typedef struct mw_json_buf {
    char *data;
    size_t len, cap;
} mw_json_buf;
void mw_json_buf_free(mw_json_buf *b);
/* Appends n bytes. Returns 0, or -1 when out of memory. */
int mw_json_buf_put(mw_json_buf *b, const char *s, size_t n);

/* Appends the JSON text of the value at index idx to out (out->len is not reset). On error
 * returns -1 with the reason in err, and out holds a partial text. [-0, +0] */
int mw_json_encode(struct lua_State *L, int idx, mw_json_buf *out, char *err, size_t errlen);

/* Appends the shortest text of a finite number that reads back to the same double
 * (integers up to 2^53 in full). Returns -1 for NaN and the infinities. */
int mw_json_put_number(mw_json_buf *out, double d);

/* Pushes the array metatable (created once per state). [-0, +1] */
void mw_json_push_array_mt(struct lua_State *L);

/* Pushes a table with the functions encode(value) -> text, decode(text [, depth]) -> value,
 * array(t) -> t, and the values null, emptyArray and array_mt. encode raises on a value it
 * cannot encode; decode raises with the position. [-0, +1] */
void mw_json_push_module(struct lua_State *L);

#endif
