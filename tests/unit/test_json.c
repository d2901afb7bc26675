/* test_json: the wire codec (vm/mw_json.c) without sockets: JSON text in, Lua value, JSON text
 * out, compared byte for byte; every boundary of the number rules, arrays vs objects, escapes
 * and surrogates, nesting limits, and the values that must be refused. Links only mw_vm. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mw_json.h"
#include "mw_test.h"

static lua_State *L;
static char err[256];

/* decode then encode; returns the text (static buffer) or "ERR: why" */
static const char *round_trip(const char *in, int depth)
{
    static char out[4096];
    mw_json_buf b = { 0 };
    int top = lua_gettop(L);
    if (mw_json_decode(L, in, strlen(in), depth, err, sizeof(err)) != 0) {
        snprintf(out, sizeof(out), "ERR: %s", err);
        CHECK_EQ_INT(lua_gettop(L), top); /* nothing left on the stack */
        return out;
    }
    CHECK_EQ_INT(lua_gettop(L), top + 1);
    if (mw_json_encode(L, -1, &b, err, sizeof(err)) != 0)
        snprintf(out, sizeof(out), "ERR: %s", err);
    else
        snprintf(out, sizeof(out), "%.*s", (int)b.len, b.data);
    lua_settop(L, top);
    mw_json_buf_free(&b);
    return out;
}

static const char *same(const char *in) { return round_trip(in, 32); }

/* encodes the value a Lua expression gives */
static const char *encode_lua(const char *expr)
{
    static char out[4096];
    char code[512];
    snprintf(code, sizeof(code), "local json = ...; return %s", expr);
    mw_json_buf b = { 0 };
    if (luaL_loadstring(L, code) != 0) {
        snprintf(out, sizeof(out), "LOAD: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return out;
    }
    mw_json_push_module(L);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(out, sizeof(out), "RUN: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return out;
    }
    if (mw_json_encode(L, -1, &b, err, sizeof(err)) != 0)
        snprintf(out, sizeof(out), "ERR: %s", err);
    else
        snprintf(out, sizeof(out), "%.*s", (int)b.len, b.data);
    lua_pop(L, 1);
    mw_json_buf_free(&b);
    return out;
}

static const char *number(double d)
{
    static char out[64];
    mw_json_buf b = { 0 };
    if (mw_json_put_number(&b, d) != 0)
        snprintf(out, sizeof(out), "refused");
    else
        snprintf(out, sizeof(out), "%.*s", (int)b.len, b.data);
    mw_json_buf_free(&b);
    return out;
}

/* mw_json_decode_fields with the names "a" and "b": "[a,b]" of the values (encoded, missing
 * ones as null), "NOT_OBJECT", or "ERR: why" */
static const char *fields(const char *in, int depth)
{
    static const char *const names[] = { "a", "b" };
    static char out[4096];
    int top = lua_gettop(L);
    int rc = mw_json_decode_fields(L, in, strlen(in), depth, names, 2, err, sizeof(err));
    if (rc <= 0) {
        CHECK_EQ_INT(lua_gettop(L), top);
        snprintf(out, sizeof(out), rc < 0 ? "ERR: %s" : "NOT_OBJECT", err);
        return out;
    }
    CHECK_EQ_INT(lua_gettop(L), top + 2);
    mw_json_buf b = { 0 };
    mw_json_buf_put(&b, "[", 1);
    mw_json_encode(L, top + 1, &b, err, sizeof(err));
    mw_json_buf_put(&b, ",", 1);
    mw_json_encode(L, top + 2, &b, err, sizeof(err));
    mw_json_buf_put(&b, "]", 1);
    snprintf(out, sizeof(out), "%.*s", (int)b.len, b.data);
    mw_json_buf_free(&b);
    lua_settop(L, top);
    return out;
}

static int starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

int main(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);

    /* integers up to 2^53 exactly, in both directions */
    CHECK_EQ_STR(same("1764700000000123"), "1764700000000123");
    CHECK_EQ_STR(same("9007199254740991"), "9007199254740991");
    CHECK_EQ_STR(same("9007199254740992"), "9007199254740992");
    CHECK_EQ_STR(same("-9007199254740992"), "-9007199254740992");
    CHECK_EQ_STR(same("{\"n\":1764700000000123,\"big\":9007199254740991}"),
                 same("{\"big\":9007199254740991,\"n\":1764700000000123}")); /* order is the table's */
    CHECK(strstr(same("{\"n\":1764700000000123}"), "1764700000000123") != NULL);
    /* beyond 2^53: the double nearest, in the shortest text that reads back to it */
    CHECK_EQ_STR(same("9007199254740993"), "9007199254740992");
    CHECK_EQ_STR(same("-0"), "-0");
    CHECK_EQ_STR(same("-0.0"), "-0");
    CHECK_EQ_STR(same("0"), "0");
    CHECK_EQ_STR(same("1e-7"), "1e-07");
    CHECK_EQ_STR(same("1e21"), "1e+21");
    CHECK_EQ_STR(same("5e-324"), "4.94065645841247e-324"); /* 15 digits read back to it */
    CHECK_EQ_STR(same("1.7976931348623157e308"), "1.7976931348623157e+308");
    CHECK_EQ_STR(same("0.1"), "0.1");
    CHECK_EQ_STR(same("3.14159"), "3.14159");
    CHECK_EQ_STR(same("0.30000000000000004"), "0.30000000000000004");
    CHECK_EQ_STR(same("1E2"), "100");
    CHECK_EQ_STR(same("1.5e300"), "1.5e+300");
    CHECK_EQ_STR(same("123456789012345678901234567890"), "1.2345678901234568e+29");
    CHECK_EQ_STR(number(1e16), "1e+16"); /* past 2^53: shortest form */
    CHECK_EQ_STR(number(0.5), "0.5");
    CHECK_EQ_STR(number(NAN), "refused");
    CHECK_EQ_STR(number(INFINITY), "refused");
    CHECK_EQ_STR(number(-INFINITY), "refused");
    /* every double survives decode(encode(x)) */
    const double samples[] = { 1.0 / 3, 2.0 / 3, 1e-300, 123456.789e10, -7.1e-10, 4503599627370497.5,
                               9007199254740994.0, 1.7976931348623157e308, 2.2250738585072014e-308 };
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
        CHECK(strtod(number(samples[i]), NULL) == samples[i]);
    /* beyond the double range: a parse error, never an infinity */
    CHECK(starts(same("1e400"), "ERR: number out of range"));
    CHECK(starts(same("-1e400"), "ERR: number out of range"));
    CHECK(starts(same("[1,2,1e400]"), "ERR: number out of range"));
    char digits[420] = "[";
    memset(digits + 1, '9', 400);
    strcpy(digits + 401, "]");
    CHECK(starts(same(digits), "ERR: number out of range"));
    CHECK_EQ_STR(same("1e-400"), "0"); /* underflow is a zero, not an error */

    /* arrays and objects */
    CHECK_EQ_STR(same("[]"), "[]");
    CHECK_EQ_STR(same("{}"), "{}");
    CHECK_EQ_STR(same("{\"arr\":[]}"), "{\"arr\":[]}");
    CHECK_EQ_STR(same("[[],{},[[]]]"), "[[],{},[[]]]");
    CHECK_EQ_STR(same("[1,null,3]"), "[1,null,3]");
    CHECK_EQ_STR(same("[null]"), "[null]");
    CHECK_EQ_STR(same(" [ true , false , null ] "), "[true,false,null]");
    CHECK_EQ_STR(same("{\"a\":null}"), "{\"a\":null}");
    CHECK_EQ_STR(encode_lua("{}"), "{}");
    CHECK_EQ_STR(encode_lua("json.emptyArray"), "[]");
    CHECK_EQ_STR(encode_lua("json.array({})"), "[]");
    CHECK_EQ_STR(encode_lua("{ list = json.array({}), n = 1 }"), encode_lua("{ n = 1, list = json.emptyArray }"));
    CHECK_EQ_STR(encode_lua("json.array({1, 2})"), "[1,2]");
    CHECK_EQ_STR(encode_lua("{1, 2, 3}"), "[1,2,3]");
    CHECK_EQ_STR(encode_lua("{[1] = 'a', [3] = 'c'}"), "[\"a\",null,\"c\"]");
    CHECK_EQ_STR(encode_lua("{[20] = 1}"), "{\"20\":1}"); /* too sparse for an array */
    CHECK_EQ_STR(encode_lua("{[1.5] = true}"), "{\"1.5\":true}");
    CHECK_EQ_STR(encode_lua("json.decode('[]')"), "[]");
    CHECK_EQ_STR(encode_lua("json.encode(json.decode('{\"a\":[]}'))"), "\"{\\\"a\\\":[]}\"");
    CHECK(starts(encode_lua("{ [true] = 1 }"), "ERR: Cannot serialise table: table key must be"));
    CHECK(starts(encode_lua("{ f = print }"), "ERR: Cannot serialise function"));
    CHECK(starts(encode_lua("{ x = 0/0 }"), "ERR: Cannot serialise number"));
    CHECK(starts(encode_lua("{ x = math.huge }"), "ERR: Cannot serialise number"));
    CHECK(starts(encode_lua("(function() local t = {} t.t = t return t end)()"),
                 "ERR: Cannot serialise, excessive nesting"));
    CHECK(starts(encode_lua("json.array(setmetatable({}, {}))"), "RUN:"));

    /* strings: escapes, \u, surrogate pairs; '/' is not escaped on the way out */
    CHECK_EQ_STR(same("\"a/b\""), "\"a/b\"");
    CHECK_EQ_STR(same("\"a\\/b\""), "\"a/b\"");
    CHECK_EQ_STR(same("\"q\\\"b\\\\s\\n\\t\\r\\b\\f\""), "\"q\\\"b\\\\s\\n\\t\\r\\b\\f\"");
    CHECK_EQ_STR(same("\"\\u0041\\u00e9\""), "\"A\xc3\xa9\"");
    CHECK_EQ_STR(same("\"\\u20AC\""), "\"\xe2\x82\xac\"");
    CHECK_EQ_STR(same("\"\\ud83d\\ude00\""), "\"\xf0\x9f\x98\x80\"");
    CHECK_EQ_STR(same("\"\\u0001\\u001f\""), "\"\\u0001\\u001f\"");
    CHECK_EQ_STR(same("\"caf\xc3\xa9\""), "\"caf\xc3\xa9\"");
    CHECK(starts(same("\"\\ud83d\""), "ERR: unpaired surrogate"));
    CHECK(starts(same("\"\\ud83dx\""), "ERR: unpaired surrogate"));
    CHECK(starts(same("\"\\ud83d\\u0041\""), "ERR: unpaired surrogate"));
    CHECK(starts(same("\"\\ude00\""), "ERR: unpaired surrogate"));
    CHECK(starts(same("\"\\u12\""), "ERR: invalid \\u escape"));
    CHECK(starts(same("\"\\x\""), "ERR: invalid escape"));
    CHECK(starts(same("\"a\nb\""), "ERR: control character in string"));
    CHECK(starts(same("\"abc"), "ERR: unterminated string"));
    /* a NUL inside a string survives */
    lua_pushlstring(L, "a\0b", 3);
    mw_json_buf nb = { 0 };
    CHECK(mw_json_encode(L, -1, &nb, err, sizeof(err)) == 0);
    CHECK(nb.len == 10 && memcmp(nb.data, "\"a\\u0000b\"", 10) == 0);
    mw_json_buf_free(&nb);
    lua_pop(L, 1);

    /* strict JSON */
    const char *invalid[] = { "", " ", "01", "-", "1.", ".5", "+1", "1e", "0x10", "NaN", "Infinity", "-Infinity",
                              "[1,]", "{\"a\":1,}", "{a:1}", "'x'", "[1 2]", "tru", "nul", "{\"a\" 1}", "[", "{",
                              "1 2", "[]]", "{\"a\":1}}" };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        const char *r = same(invalid[i]);
        if (!starts(r, "ERR: "))
            fprintf(stderr, "accepted invalid JSON: '%s' -> %s\n", invalid[i], r);
        CHECK(starts(r, "ERR: "));
    }

    /* nesting: max_depth levels are fine, one more is an error */
    char deep[200];
    for (int d = 1; d <= 33; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        deep[2 * d] = '\0';
        const char *r = round_trip(deep, 32);
        if (d <= 32)
            CHECK_EQ_STR(r, deep);
        else
            CHECK(starts(r, "ERR: nesting deeper than 32"));
    }
    CHECK(starts(round_trip("{\"a\":{\"b\":{}}}", 2), "ERR: nesting deeper than 2"));
    CHECK_EQ_STR(round_trip("{\"a\":{\"b\":1}}", 2), "{\"a\":{\"b\":1}}");

    /* decoding only the named members of an object */
    CHECK_EQ_STR(fields("{\"a\":1,\"c\":{\"x\":[2]},\"b\":[]}", 32), "[1,[]]");
    CHECK_EQ_STR(fields(" {\"b\":\"x\"} ", 32), "[null,\"x\"]");
    CHECK_EQ_STR(fields("{\"a\":1,\"a\":2,\"\\u0062\":null}", 32), "[2,null]"); /* the last wins; escaped names */
    CHECK_EQ_STR(fields("{}", 32), "[null,null]");
    CHECK_EQ_STR(fields("[1]", 32), "NOT_OBJECT");
    CHECK_EQ_STR(fields("\"a\"", 32), "NOT_OBJECT");
    CHECK(starts(fields("[1", 32), "ERR: "));
    CHECK(starts(fields("{\"a\":1} 2", 32), "ERR: unexpected text after the value"));
    CHECK(starts(fields("{\"c\":[[1]]}", 2), "ERR: nesting deeper than 2"));
    CHECK_EQ_STR(fields("{\"a\":[1]}", 2), "[[1],null]");
    CHECK(starts(fields("{\"a\":1e400}", 32), "ERR: number out of range"));

    /* the Lua module: decode raises with the position, encode raises with the reason */
    CHECK_EQ_STR(encode_lua("select(2, pcall(json.decode, '[1,'))"), "\"expected a value at the end of the text\"");
    CHECK_EQ_STR(encode_lua("select(2, pcall(json.decode, '{\"a\":x}'))"), "\"expected a value at byte 6 ('x')\"");
    CHECK_EQ_STR(encode_lua("json.decode('[[1]]', 2)"), "[[1]]");
    CHECK_EQ_STR(encode_lua("select(2, pcall(json.decode, '[[[1]]]', 2))"), "\"nesting deeper than 2 at byte 3 ('[')\"");
    CHECK_EQ_STR(encode_lua("json.decode('null') == json.null"), "true");
    CHECK_EQ_STR(encode_lua("select(2, pcall(json.encode, {1, 0/0}))"), "\"Cannot serialise number: must not be NaN or Infinity\"");
    CHECK_EQ_STR(encode_lua("json.encode({a = {1, 'x', false}})"), "\"{\\\"a\\\":[1,\\\"x\\\",false]}\"");
    CHECK_EQ_STR(encode_lua("getmetatable(json.decode('[]')) == json.array_mt"), "true");
    CHECK_EQ_STR(encode_lua("getmetatable(json.decode('{}')) == nil"), "true");

    lua_close(L);
    MW_TEST_DONE();
}
