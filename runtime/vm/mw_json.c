/* mw_json: the wire codec (see mw_json.h for the rules and why it is not lua-cjson). The
 * decoder walks the text once and builds Lua values on the stack as it goes; the encoder walks
 * the Lua value with raw accesses only (no metamethod runs, so no Lua code runs while a buffer
 * is half written). */
#include "mw_json.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char array_mt_key = 0;   /* registry key of the array metatable */
static const char empty_array_sentinel = 0; /* `emptyArray`: a light userdata, never mutated */
#define EXACT_LIMIT 9007199254740992.0 /* 2^53: every integer up to it is a double exactly */

/* The array metatable's address for the encoder, which compares by identity, without a
 * registry lookup per encode (one per reply): valid for the state whose registry is at
 * mt_registry, forgotten when that state closes (the __gc of a userdata it holds). */
static const void *mt_registry, *mt_address;
static const char mt_guard_key = 0;

static int l_forget_mt(lua_State *L)
{
    (void)L;
    mt_registry = mt_address = NULL;
    return 0;
}

void mw_json_push_array_mt(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_istable(L, -1))
        return;
    lua_pop(L, 1);
    lua_pushlightuserdata(L, (void *)&mt_guard_key); /* forgets mt_address when the state closes */
    lua_newuserdata(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_forget_mt);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__name"); /* shows in debuggers; the codec compares by identity */
    lua_pushlightuserdata(L, (void *)&array_mt_key);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
}

/* The array metatable's address (see mt_address). */
static const void *array_mt_address(lua_State *L)
{
    const void *registry = lua_topointer(L, LUA_REGISTRYINDEX);
    if (registry != mt_registry || !mt_address) {
        mw_json_push_array_mt(L);
        mt_address = lua_topointer(L, -1);
        mt_registry = registry;
        lua_pop(L, 1); /* the registry keeps it alive */
    }
    return mt_address;
}

/* ---- output buffer ------------------------------------------------------------------------ */

void mw_json_buf_free(mw_json_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Grows b so that more bytes fit (the slow path of reserve). */
static int grow(mw_json_buf *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* inline: called for every token written */
static inline int reserve(mw_json_buf *b, size_t more)
{
    return b->cap - b->len >= more ? 0 : grow(b, more);
}

static inline int put(mw_json_buf *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

/* The first byte of s[0..n) that a JSON string cannot hold as it is ('"', '\\' or a control
 * character), or n: eight bytes at a time, since most strings have none (the decoder and the
 * encoder both scan every string byte). */
static size_t plain_prefix(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
        /* a zero byte in q or bs, or a byte below 0x20 in w (bytes >= 0x80 are not below) */
        uint64_t hit = (((q - ones) & ~q) | ((bs - ones) & ~bs) | ((w - ones * 0x20) & ~w)) & highs;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (hit) /* the lowest flag is exact (a borrow only runs upwards from a real match) */
            return i + ((size_t)__builtin_ctzll(hit) >> 3);
#else
        if (hit)
            break; /* the byte loop below finds which */
#endif
    }
    while (i < n && s[i] != '"' && s[i] != '\\' && (unsigned char)s[i] >= 0x20)
        i++;
    return i;
}

int mw_json_buf_put(mw_json_buf *b, const char *s, size_t n) { return put(b, s, n); }

/* ---- numbers ------------------------------------------------------------------------------ */

int mw_json_put_number(mw_json_buf *out, double d)
{
    char tmp[40];
    int n;
    if (!isfinite(d))
        return -1;
    if (fabs(d) <= EXACT_LIMIT && d == floor(d)) {
        /* an integer a double holds exactly: all its digits, no exponent ("-0" for -0) */
        static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                    "8081828384858687888990919293949596979899";
        uint64_t u = (uint64_t)fabs(d);
        char digits[24];
        int i = (int)sizeof(digits);
        while (u >= 10) { /* two digits per division */
            unsigned r = (unsigned)(u % 100);
            u /= 100;
            digits[--i] = pairs[2 * r + 1];
            digits[--i] = pairs[2 * r];
        }
        if (u || i == (int)sizeof(digits))
            digits[--i] = (char)('0' + u);
        if (signbit(d))
            digits[--i] = '-';
        return put(out, digits + i, sizeof(digits) - (size_t)i);
    }
    /* the fewest significant digits that read back to the same double */
    for (int precision = 15;; precision++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", precision, d);
        if (precision == 17 || strtod(tmp, NULL) == d)
            break;
    }
    return put(out, tmp, (size_t)n);
}

/* ---- encoder ------------------------------------------------------------------------------ */

typedef struct encoder {
    lua_State *L;
    mw_json_buf *out;
    const void *array_mt;
    char *err;
    size_t errlen;
} encoder;

/* bytes that must be escaped in a JSON string: 1 (\uXXXX) or the letter after the backslash */
static const char escape_of[256] = {
    ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't', ['"'] = '"', ['\\'] = '\\',
    [0] = 1, [1] = 1, [2] = 1, [3] = 1, [4] = 1, [5] = 1, [6] = 1, [7] = 1, [11] = 1, [14] = 1,
    [15] = 1, [16] = 1, [17] = 1, [18] = 1, [19] = 1, [20] = 1, [21] = 1, [22] = 1, [23] = 1,
    [24] = 1, [25] = 1, [26] = 1, [27] = 1, [28] = 1, [29] = 1, [30] = 1, [31] = 1,
};

static int put_string(mw_json_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (reserve(b, n + 2) != 0)
        return -1;
    b->data[b->len++] = '"';
    size_t i = plain_prefix(s, n);
    if (i == n) { /* nothing to escape: the common case, one copy */
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len++] = '"';
        return 0;
    }
    size_t run = 0; /* start of the bytes not copied yet */
    for (; i < n; i++) {
        char e = escape_of[(unsigned char)s[i]];
        if (!e)
            continue;
        if (put(b, s + run, i - run) != 0)
            return -1;
        run = i + 1;
        if (e == 1) {
            char u[6] = { '\\', 'u', '0', '0', hex[(unsigned char)s[i] >> 4], hex[s[i] & 15] };
            if (put(b, u, 6) != 0)
                return -1;
        } else {
            char two[2] = { '\\', e };
            if (put(b, two, 2) != 0)
                return -1;
        }
    }
    if (put(b, s + run, n - run) != 0 || put(b, "\"", 1) != 0)
        return -1;
    return 0;
}

static int fail(encoder *e, const char *why)
{
    snprintf(e->err, e->errlen, "%s", why);
    return -1;
}

static int encode_value(encoder *e, int idx, int depth);

static int encode_array(encoder *e, int idx, size_t n, int depth)
{
    lua_State *L = e->L;
    if (put(e->out, "[", 1) != 0)
        return fail(e, "out of memory");
    for (size_t i = 1; i <= n; i++) {
        if (i > 1 && put(e->out, ",", 1) != 0)
            return fail(e, "out of memory");
        lua_rawgeti(L, idx, (int)i);
        int rc = encode_value(e, lua_gettop(L), depth);
        lua_pop(L, 1);
        if (rc != 0)
            return -1;
    }
    if (put(e->out, "]", 1) != 0)
        return fail(e, "out of memory");
    return 0;
}

/* The member whose key and value are on top of the stack ("," before it unless first); pops
 * the value (and on error the key too). */
static int encode_member(encoder *e, int depth, int first)
{
    lua_State *L = e->L;
    if (!first && put(e->out, ",", 1) != 0) {
        lua_pop(L, 2);
        return fail(e, "out of memory");
    }
    int rc = 0;
    int kt = lua_type(L, -2);
    if (kt == LUA_TSTRING) {
        size_t n;
        const char *k = lua_tolstring(L, -2, &n);
        rc = put_string(e->out, k, n);
    } else if (kt == LUA_TNUMBER) { /* a number key becomes its text */
        rc = put(e->out, "\"", 1);
        if (rc == 0 && mw_json_put_number(e->out, lua_tonumber(L, -2)) != 0) {
            lua_pop(L, 2);
            return fail(e, "Cannot serialise table: a number key is NaN or infinite");
        }
        if (rc == 0)
            rc = put(e->out, "\"", 1);
    } else {
        lua_pop(L, 2);
        return fail(e, "Cannot serialise table: table key must be a number or string");
    }
    if (rc != 0 || put(e->out, ":", 1) != 0) {
        lua_pop(L, 2);
        return fail(e, "out of memory");
    }
    if (encode_value(e, lua_gettop(L), depth) != 0) {
        lua_pop(L, 2);
        return -1;
    }
    lua_pop(L, 1);
    return 0;
}

/* started: the first member's key and value are on the stack already (encode_table found them) */
static int encode_object(encoder *e, int idx, int depth, int started)
{
    lua_State *L = e->L;
    int first = 1;
    if (put(e->out, "{", 1) != 0) {
        if (started)
            lua_pop(L, 2);
        return fail(e, "out of memory");
    }
    if (started) {
        if (encode_member(e, depth, 1) != 0)
            return -1;
        first = 0;
    } else {
        lua_pushnil(L);
    }
    while (lua_next(L, idx)) {
        if (encode_member(e, depth, first) != 0)
            return -1;
        first = 0;
    }
    if (put(e->out, "}", 1) != 0)
        return fail(e, "out of memory");
    return 0;
}

static int encode_table(encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth >= MW_JSON_ENCODE_MAX_DEPTH)
        return fail(e, "Cannot serialise, excessive nesting (a table containing itself?)");
    if (!lua_checkstack(L, 6))
        return fail(e, "Cannot serialise: out of Lua stack");
    if (lua_getmetatable(L, idx)) {
        int marked = lua_topointer(L, -1) == e->array_mt;
        lua_pop(L, 1);
        if (marked)
            return encode_array(e, idx, lua_objlen(L, idx), depth + 1);
    }
    /* A plain table: an array when its keys are exactly 1..n, give or take holes */
    double max = 0;
    size_t count = 0;
    int array = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        double k;
        if (lua_type(L, -2) == LUA_TNUMBER && (k = lua_tonumber(L, -2)) >= 1 && k == floor(k) &&
            k <= EXACT_LIMIT) {
            if (k > max)
                max = k;
            count++;
            lua_pop(L, 1);
        } else {
            array = 0;
            if (count == 0) /* an object from its first key on (most are): go on from here */
                return encode_object(e, idx, depth + 1, 1);
            lua_pop(L, 2);
            break;
        }
    }
    if (count == 0 && array)
        return put(e->out, "{}", 2) == 0 ? 0 : fail(e, "out of memory");
    if (array && !(max > 10 && max > 2.0 * (double)count)) /* not too sparse */
        return encode_array(e, idx, (size_t)max, depth + 1);
    return encode_object(e, idx, depth + 1, 0);
}

static int encode_value(encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return put_string(e->out, s, n) == 0 ? 0 : fail(e, "out of memory");
    }
    case LUA_TNUMBER:
        if (mw_json_put_number(e->out, lua_tonumber(L, idx)) != 0)
            return fail(e, "Cannot serialise number: must not be NaN or Infinity");
        return 0;
    case LUA_TBOOLEAN:
        return (lua_toboolean(L, idx) ? put(e->out, "true", 4) : put(e->out, "false", 5)) == 0
                   ? 0 : fail(e, "out of memory");
    case LUA_TNIL:
        return put(e->out, "null", 4) == 0 ? 0 : fail(e, "out of memory");
    case LUA_TLIGHTUSERDATA: {
        const void *p = lua_touserdata(L, idx);
        if (p == NULL)
            return put(e->out, "null", 4) == 0 ? 0 : fail(e, "out of memory");
        if (p == &empty_array_sentinel)
            return put(e->out, "[]", 2) == 0 ? 0 : fail(e, "out of memory");
        return fail(e, "Cannot serialise userdata: type not supported");
    }
    case LUA_TTABLE:
        return encode_table(e, idx, depth);
    default: {
        char why[96];
        snprintf(why, sizeof(why), "Cannot serialise %s: type not supported", luaL_typename(L, idx));
        return fail(e, why);
    }
    }
}

int mw_json_encode(lua_State *L, int idx, mw_json_buf *out, char *err, size_t errlen)
{
    if (idx < 0 && idx > LUA_REGISTRYINDEX)
        idx = lua_gettop(L) + idx + 1;
    encoder e = { L, out, array_mt_address(L), err, errlen };
    return encode_value(&e, idx, 0);
}

/* ---- decoder ------------------------------------------------------------------------------ */

typedef struct decoder {
    lua_State *L;
    const char *start, *p, *end;
    int depth, max_depth;
    int array_mt; /* stack index of the array metatable, nil until the first array */
    mw_json_buf scratch; /* strings with escapes */
    char *err;
    size_t errlen;
} decoder;

static int bad(decoder *d, const char *what)
{
    size_t at = (size_t)(d->p - d->start);
    if (d->p >= d->end)
        snprintf(d->err, d->errlen, "%s at the end of the text", what);
    else if ((unsigned char)*d->p >= 0x20 && (unsigned char)*d->p < 0x7f)
        snprintf(d->err, d->errlen, "%s at byte %zu ('%c')", what, at + 1, *d->p);
    else
        snprintf(d->err, d->errlen, "%s at byte %zu", what, at + 1);
    return -1;
}

static void skip_space(decoder *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t'))
        d->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int put_utf8(mw_json_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return put(b, u, n);
}

/* At the opening quote: reads the string up to its closing quote into *out (*n bytes), which points
 * into the text itself when it has no escapes, else into d->scratch (valid until the next
 * string). */
static int scan_string(decoder *d, const char **out, size_t *n)
{
    const char *run = ++d->p;
    d->p += plain_prefix(d->p, (size_t)(d->end - d->p));
    if (d->p < d->end && *d->p == '"') { /* no escapes: straight from the text */
        *out = run;
        *n = (size_t)(d->p - run);
        d->p++;
        return 0;
    }
    mw_json_buf *b = &d->scratch;
    b->len = 0;
    for (;;) {
        while (d->p < d->end && *d->p != '"' && *d->p != '\\' && (unsigned char)*d->p >= 0x20)
            d->p++;
        if (put(b, run, (size_t)(d->p - run)) != 0)
            return bad(d, "out of memory");
        if (d->p >= d->end)
            return bad(d, "unterminated string");
        if (*d->p == '"')
            break;
        if (*d->p != '\\')
            return bad(d, "control character in string");
        if (d->end - d->p < 2)
            return bad(d, "unterminated string");
        char c = d->p[1], out_c;
        switch (c) {
        case '"': out_c = '"'; break;
        case '\\': out_c = '\\'; break;
        case '/': out_c = '/'; break;
        case 'b': out_c = '\b'; break;
        case 'f': out_c = '\f'; break;
        case 'n': out_c = '\n'; break;
        case 'r': out_c = '\r'; break;
        case 't': out_c = '\t'; break;
        case 'u': {
            unsigned cp, low;
            if (d->end - d->p < 6 || hex4(d->p + 2, &cp) != 0)
                return bad(d, "invalid \\u escape");
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return bad(d, "unpaired surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* must be followed by the low half */
                if (d->end - d->p < 12 || d->p[6] != '\\' || d->p[7] != 'u' || hex4(d->p + 8, &low) != 0 ||
                    low < 0xDC00 || low > 0xDFFF)
                    return bad(d, "unpaired surrogate in \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                d->p += 6;
            }
            if (put_utf8(b, cp) != 0)
                return bad(d, "out of memory");
            d->p += 6;
            run = d->p;
            continue;
        }
        default:
            d->p++;
            return bad(d, "invalid escape");
        }
        if (put(b, &out_c, 1) != 0)
            return bad(d, "out of memory");
        d->p += 2;
        run = d->p;
    }
    *out = b->data ? b->data : "";
    *n = b->len;
    d->p++;
    return 0;
}

/* At the opening quote; pushes the string. */
static int decode_string(decoder *d)
{
    const char *s;
    size_t n;
    if (scan_string(d, &s, &n) != 0)
        return -1;
    lua_pushlstring(d->L, s, n);
    return 0;
}

static int is_digit(const decoder *d)
{
    return d->p < d->end && *d->p >= '0' && *d->p <= '9';
}

static int decode_number(decoder *d)
{
    const char *s = d->p;
    int integer = 1;
    if (*d->p == '-')
        d->p++;
    const char *digits = d->p;
    if (!is_digit(d))
        return bad(d, "invalid number");
    if (*d->p == '0')
        d->p++;
    else
        while (is_digit(d))
            d->p++;
    size_t int_digits = (size_t)(d->p - digits);
    if (d->p < d->end && *d->p == '.') {
        d->p++;
        if (!is_digit(d))
            return bad(d, "invalid number");
        while (is_digit(d))
            d->p++;
        integer = 0;
    }
    if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
        d->p++;
        if (d->p < d->end && (*d->p == '+' || *d->p == '-'))
            d->p++;
        if (!is_digit(d))
            return bad(d, "invalid number");
        while (is_digit(d))
            d->p++;
        integer = 0;
    }
    double v;
    if (integer && int_digits <= 15) { /* exact without strtod */
        int64_t n = 0;
        for (const char *q = digits; q < d->p; q++)
            n = n * 10 + (*q - '0');
        v = *s == '-' ? -(double)n : (double)n;
        if (*s == '-' && n == 0)
            v = -0.0;
    } else {
        size_t n = (size_t)(d->p - s);
        char local[64], *copy = n < sizeof(local) ? local : malloc(n + 1);
        if (!copy)
            return bad(d, "out of memory");
        memcpy(copy, s, n); /* strtod on the span alone: it would also read hex, inf, ... */
        copy[n] = '\0';
        v = strtod(copy, NULL);
        if (copy != local)
            free(copy);
        if (isinf(v)) {
            d->p = s;
            return bad(d, "number out of range");
        }
    }
    lua_pushnumber(d->L, v);
    return 0;
}

static int literal(decoder *d, const char *word, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return bad(d, "invalid value");
    d->p += n;
    return 0;
}

static int decode_value(decoder *d);

static int enter(decoder *d)
{
    if (++d->depth > d->max_depth) {
        char why[64];
        snprintf(why, sizeof(why), "nesting deeper than %d", d->max_depth);
        return bad(d, why);
    }
    if (!lua_checkstack(d->L, 4))
        return bad(d, "out of Lua stack");
    d->p++;
    return 0;
}

/* The container being decoded ends here (at `close`): consumes it and leaves the level. */
static int closes(decoder *d, char close)
{
    if (d->p >= d->end || *d->p != close)
        return 0;
    d->p++;
    d->depth--;
    return 1;
}

static int decode_array(decoder *d)
{
    lua_State *L = d->L;
    if (enter(d) != 0)
        return -1;
    lua_newtable(L);
    if (lua_isnil(L, d->array_mt)) { /* the first array: fetch the metatable now */
        mw_json_push_array_mt(L);
        lua_replace(L, d->array_mt);
    }
    lua_pushvalue(L, d->array_mt);
    lua_setmetatable(L, -2);
    skip_space(d);
    if (closes(d, ']'))
        return 0;
    for (int i = 1;; i++) {
        if (decode_value(d) != 0)
            return -1;
        lua_rawseti(L, -2, i);
        skip_space(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (closes(d, ']'))
            return 0;
        return bad(d, "expected ',' or ']'");
    }
}

static int decode_object(decoder *d)
{
    lua_State *L = d->L;
    if (enter(d) != 0)
        return -1;
    lua_newtable(L);
    skip_space(d);
    if (closes(d, '}'))
        return 0;
    for (;;) {
        skip_space(d);
        if (d->p >= d->end || *d->p != '"')
            return bad(d, "expected a string key");
        if (decode_string(d) != 0)
            return -1;
        skip_space(d);
        if (d->p >= d->end || *d->p != ':')
            return bad(d, "expected ':'");
        d->p++;
        if (decode_value(d) != 0)
            return -1;
        lua_rawset(L, -3);
        skip_space(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (closes(d, '}'))
            return 0;
        return bad(d, "expected ',' or '}'");
    }
}

static int decode_value(decoder *d)
{
    skip_space(d);
    if (d->p >= d->end)
        return bad(d, "expected a value");
    switch (*d->p) {
    case '{': return decode_object(d);
    case '[': return decode_array(d);
    case '"': return decode_string(d);
    case 't':
        if (literal(d, "true", 4) != 0)
            return -1;
        lua_pushboolean(d->L, 1);
        return 0;
    case 'f':
        if (literal(d, "false", 5) != 0)
            return -1;
        lua_pushboolean(d->L, 0);
        return 0;
    case 'n':
        if (literal(d, "null", 4) != 0)
            return -1;
        lua_pushlightuserdata(d->L, NULL);
        return 0;
    default:
        if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
            return decode_number(d);
        return bad(d, "expected a value");
    }
}

int mw_json_decode(lua_State *L, const char *text, size_t len, int max_depth, char *err, size_t errlen)
{
    int top = lua_gettop(L);
    if (!lua_checkstack(L, 8)) {
        snprintf(err, errlen, "out of Lua stack");
        return -1;
    }
    lua_pushnil(L); /* the array metatable's slot: filled at the first array (most texts have none) */
    decoder d = { L, text, text, text + len, 0, max_depth, top + 1, { 0 }, err, errlen };
    int rc = decode_value(&d);
    if (rc == 0) {
        skip_space(&d);
        if (d.p != d.end)
            rc = bad(&d, "unexpected text after the value");
    }
    mw_json_buf_free(&d.scratch);
    if (rc != 0) {
        lua_settop(L, top);
        return -1;
    }
    lua_remove(L, top + 1); /* the metatable */
    return 0;
}

/* The members of the object decode_fields is at: the values of the named ones replace their
 * slots (the last of a repeated name wins, as in a decoded table), the others are decoded and
 * dropped. */
static int decode_members(decoder *d, const char *const *names, const size_t *lens, int n, int base)
{
    lua_State *L = d->L;
    if (enter(d) != 0)
        return -1;
    skip_space(d);
    if (closes(d, '}'))
        return 0;
    for (;;) {
        skip_space(d);
        if (d->p >= d->end || *d->p != '"')
            return bad(d, "expected a string key");
        const char *key;
        size_t klen;
        if (scan_string(d, &key, &klen) != 0)
            return -1;
        int slot = -1;
        for (int i = 0; i < n && slot < 0; i++)
            if (lens[i] == klen && memcmp(names[i], key, klen) == 0)
                slot = i;
        skip_space(d);
        if (d->p >= d->end || *d->p != ':')
            return bad(d, "expected ':'");
        d->p++;
        if (decode_value(d) != 0)
            return -1;
        if (slot >= 0)
            lua_replace(L, base + slot);
        else
            lua_pop(L, 1);
        skip_space(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (closes(d, '}'))
            return 0;
        return bad(d, "expected ',' or '}'");
    }
}

int mw_json_decode_fields(lua_State *L, const char *text, size_t len, int max_depth, const char *const *names,
                          int n, char *err, size_t errlen)
{
    int top = lua_gettop(L);
    if (!lua_checkstack(L, n + 8)) {
        snprintf(err, errlen, "out of Lua stack");
        return -1;
    }
    lua_pushnil(L); /* the array metatable's slot, as in mw_json_decode */
    for (int i = 0; i < n; i++)
        lua_pushnil(L);
    decoder d = { L, text, text, text + len, 0, max_depth, top + 1, { 0 }, err, errlen };
    skip_space(&d);
    int object = d.p < d.end && *d.p == '{';
    size_t lens[8];
    for (int i = 0; i < n && i < 8; i++)
        lens[i] = strlen(names[i]);
    int rc = object ? decode_members(&d, names, lens, n < 8 ? n : 8, top + 2) : decode_value(&d);
    if (rc == 0) {
        skip_space(&d);
        if (d.p != d.end)
            rc = bad(&d, "unexpected text after the value");
    }
    mw_json_buf_free(&d.scratch);
    if (rc != 0 || !object) {
        lua_settop(L, top);
        return rc != 0 ? -1 : 0;
    }
    lua_remove(L, top + 1); /* the metatable */
    return 1;
}

/* ---- the Lua module ----------------------------------------------------------------------- */

#define DEFAULT_DECODE_DEPTH 1000
#define KEEP_BUFFER_BYTES (256 * 1024) /* a larger encode buffer is freed after use */

static int l_buf_gc(lua_State *L)
{
    mw_json_buf_free(lua_touserdata(L, 1));
    return 0;
}

static int l_encode(lua_State *L)
{
    char err[160];
    mw_json_buf *b = lua_touserdata(L, lua_upvalueindex(1));
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    b->len = 0;
    int rc = mw_json_encode(L, 1, b, err, sizeof(err));
    if (rc == 0)
        lua_pushlstring(L, b->data, b->len);
    if (b->cap > KEEP_BUFFER_BYTES)
        mw_json_buf_free(b);
    if (rc != 0)
        return luaL_error(L, "%s", err);
    return 1;
}

static int l_decode(lua_State *L)
{
    char err[160];
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    int depth = (int)luaL_optinteger(L, 2, DEFAULT_DECODE_DEPTH);
    lua_settop(L, 1);
    if (mw_json_decode(L, text, len, depth, err, sizeof(err)) != 0)
        return luaL_error(L, "%s", err);
    return 1;
}

static int l_array(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    mw_json_push_array_mt(L);
    if (lua_getmetatable(L, 1)) {
        if (!lua_rawequal(L, -1, -2))
            return luaL_error(L, "array(t): t already has a metatable");
        lua_pop(L, 2);
        return 1;
    }
    lua_setmetatable(L, 1);
    return 1;
}

void mw_json_push_module(lua_State *L)
{
    lua_createtable(L, 0, 7);
    mw_json_buf *b = lua_newuserdata(L, sizeof(*b));
    memset(b, 0, sizeof(*b));
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_buf_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_pushcclosure(L, l_encode, 1);
    lua_setfield(L, -2, "encode");
    lua_pushcfunction(L, l_decode);
    lua_setfield(L, -2, "decode");
    lua_pushcfunction(L, l_array);
    lua_setfield(L, -2, "array");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_pushlightuserdata(L, (void *)&empty_array_sentinel);
    lua_setfield(L, -2, "emptyArray");
    mw_json_push_array_mt(L);
    lua_setfield(L, -2, "array_mt");
}
