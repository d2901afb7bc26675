/* test_pg_sql: what the PostgreSQL backend does to statements and values, without a server:
 * `?` → $n rewriting (mw_db_pg_sql: every place a `?` must stay a `?`, and the counts), the
 * parameters' text forms and result cells by column type (mw_db_pg_value, on PGresults built
 * by hand), and libpq's messages cut to one line. */
#include <libpq-fe.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mw_db_pg_sql.h"
#include "mw_db_pg_value.h"
#include "mw_test.h"

/* Rewrites sql and checks the text and the number of placeholders. */
static void expect(const char *sql, const char *want, int want_count)
{
    int count = -1;
    char *got = mw_db_pg_rewrite(sql, strlen(sql), &count);
    CHECK(got != NULL);
    if (!got)
        return;
    CHECK_EQ_STR(got, want);
    CHECK_EQ_INT(count, want_count);
    free(got);
}

static void test_plain_placeholders(void)
{
    expect("SELECT 1", "SELECT 1", 0);
    expect("", "", 0);
    expect("SELECT ?", "SELECT $1", 1);
    expect("INSERT INTO m(room, text) VALUES (?, ?)", "INSERT INTO m(room, text) VALUES ($1, $2)", 2);
    expect("SELECT * FROM t WHERE a=? AND b=?", "SELECT * FROM t WHERE a=$1 AND b=$2", 2);
    expect("SELECT ?::int + ?", "SELECT $1::int + $2", 2);
    expect("?,?,?,?,?,?,?,?,?,?,?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11", 11);
    /* the statement's own $n is left alone and not counted */
    expect("SELECT $1, $2", "SELECT $1, $2", 0);
}

static void test_numbered_and_literal(void)
{
    expect("SELECT ?1, ?1, ?2", "SELECT $1, $1, $2", 2);
    expect("SELECT ?3", "SELECT $3", 3);
    expect("SELECT data ?? 'key' FROM t WHERE id = ?", "SELECT data ? 'key' FROM t WHERE id = $1", 1);
    expect("SELECT data ??| array['a'] WHERE x = ?", "SELECT data ?| array['a'] WHERE x = $1", 1);
}

static void test_strings(void)
{
    expect("SELECT '?' , ?", "SELECT '?' , $1", 1);
    expect("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1);
    expect("SELECT '', ?", "SELECT '', $1", 1);
    expect("SELECT '''?''', ?", "SELECT '''?''', $1", 1);
    /* a backslash is an ordinary character in a standard string ... */
    expect("SELECT 'a\\', ?", "SELECT 'a\\', $1", 1);
    /* ... and an escape in E'...' */
    expect("SELECT E'a\\'?', ?", "SELECT E'a\\'?', $1", 1);
    expect("SELECT e'\\\\', ?", "SELECT e'\\\\', $1", 1);
    /* an identifier ending in E is not an escape-string prefix */
    expect("SELECT some'a\\', ?", "SELECT some'a\\', $1", 1);
    expect("SELECT U&'d\\0061t?', ?", "SELECT U&'d\\0061t?', $1", 1);
    /* unterminated: the rest is string */
    expect("SELECT 'abc ?", "SELECT 'abc ?", 0);
}

static void test_identifiers(void)
{
    expect("SELECT \"what?\" FROM t WHERE a = ?", "SELECT \"what?\" FROM t WHERE a = $1", 1);
    expect("SELECT \"a\"\"?\" , ?", "SELECT \"a\"\"?\" , $1", 1);
}

static void test_comments(void)
{
    expect("SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2", 2);
    expect("SELECT ? -- to the end ?", "SELECT $1 -- to the end ?", 1);
    expect("SELECT /* ? */ ?", "SELECT /* ? */ $1", 1);
    expect("SELECT /* a /* nested ? */ still ? */ ?", "SELECT /* a /* nested ? */ still ? */ $1", 1);
    expect("SELECT /* unterminated ?", "SELECT /* unterminated ?", 0);
    expect("SELECT 5-?", "SELECT 5-$1", 1);
    expect("SELECT 4/?", "SELECT 4/$1", 1);
}

static void test_dollar_quotes(void)
{
    expect("SELECT $$?$$, ?", "SELECT $$?$$, $1", 1);
    expect("SELECT $fn$ it's ? $$ $fn$, ?", "SELECT $fn$ it's ? $$ $fn$, $1", 1);
    expect("DO $body$ BEGIN PERFORM '?'; END $body$", "DO $body$ BEGIN PERFORM '?'; END $body$", 0);
    expect("SELECT $a$ ? $b$ ? $a$ , ?", "SELECT $a$ ? $b$ ? $a$ , $1", 1);
    expect("SELECT $$ unterminated ?", "SELECT $$ unterminated ?", 0);
    /* a $ inside an identifier does not open a quote */
    expect("SELECT a$b$ , ?, c$$", "SELECT a$b$ , $1, c$$", 1);
    /* $1 is a parameter, not a tag */
    expect("SELECT $1 , ?", "SELECT $1 , $1", 1);
}

static void test_embedded_nul_is_copied(void)
{
    const char sql[] = "SELECT ?\0?";
    int count = -1;
    char *got = mw_db_pg_rewrite(sql, sizeof(sql) - 1, &count);
    CHECK(got != NULL);
    if (got) {
        CHECK(memcmp(got, "SELECT $1\0$2", 12) == 0);
        CHECK_EQ_INT(count, 2);
        free(got);
    }
}

/* ---- values ---------------------------------------------------------------------------- */

static mw_db_value text_value(const char *s, size_t len)
{
    mw_db_value v = { .type = MW_DB_TEXT, .s = (char *)s, .len = len };
    return v;
}

static void test_params(void)
{
    mw_db_value in[] = {
        { .type = MW_DB_INT, .i = -42 },
        { .type = MW_DB_BOOL, .i = 1 },
        { .type = MW_DB_BOOL, .i = 0 },
        { .type = MW_DB_REAL, .d = 1.5 },
        { .type = MW_DB_REAL, .d = NAN },
        { .type = MW_DB_REAL, .d = -INFINITY },
        { .type = MW_DB_NULL },
        text_value("h\xc3\xa9llo '); --", 13),
        text_value("a\0b", 3),             /* NUL: binary */
        text_value("\xff", 1),              /* not UTF-8: binary */
        text_value("\xc0\x80", 2),          /* overlong */
        text_value("\xed\xa0\x80", 3),      /* a surrogate */
        text_value("\xe2\x82", 2),          /* cut short */
        text_value("\xf0\x9f\x98\x80", 4),  /* an emoji: fine */
        text_value("", 0),
    };
    int n = (int)(sizeof(in) / sizeof(in[0]));
    mw_db_pg_params p;
    CHECK_EQ_INT(mw_db_pg_params_init(&p, in, n), 0);
    CHECK_EQ_INT(p.n, n);
    CHECK_EQ_STR(p.values[0], "-42");
    CHECK_EQ_STR(p.values[1], "1");
    CHECK_EQ_STR(p.values[2], "0");
    CHECK_EQ_STR(p.values[3], "1.5");
    CHECK_EQ_STR(p.values[4], "NaN");
    CHECK_EQ_STR(p.values[5], "-Infinity");
    CHECK(p.values[6] == NULL);
    CHECK_EQ_STR(p.values[7], "h\xc3\xa9llo '); --");
    int formats[] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0 };
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(p.formats[i], formats[i]);
    CHECK_EQ_INT(p.lengths[8], 3);
    CHECK(memcmp(p.values[8], "a\0b", 3) == 0);
    CHECK_EQ_STR(p.values[14], "");
    mw_db_pg_params_free(&p);

    CHECK_EQ_INT(mw_db_pg_params_init(&p, NULL, 0), 0);
    CHECK(p.values == NULL);
    mw_db_pg_params_free(&p);
}

static void test_result_cells(void)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    CHECK(r != NULL);
    if (!r)
        return;
    PGresAttDesc cols[] = {
        { .name = "id", .typid = 20, .typlen = 8 },        /* int8 */
        { .name = "ok", .typid = 16, .typlen = 1 },        /* bool */
        { .name = "f", .typid = 701, .typlen = 8 },        /* float8 */
        { .name = "num", .typid = 1700, .typlen = -1 },    /* numeric */
        { .name = "bytes", .typid = 17, .typlen = -1 },    /* bytea */
        { .name = "t", .typid = 25, .typlen = -1 },        /* text */
        { .name = "when", .typid = 1184, .typlen = 8 },    /* timestamptz: as text */
        { .name = "small", .typid = 21, .typlen = 2 },     /* int2 */
    };
    CHECK(PQsetResultAttrs(r, 8, cols));
    const char *row0[] = { "7", "t", "1.25", "12345678901.5", "\\x00ff41", "h\xc3\xa9", "2024-01-02 03:04:05+00", "-3" };
    for (int c = 0; c < 8; c++)
        CHECK(PQsetvalue(r, 0, c, (char *)row0[c], (int)strlen(row0[c])));
    CHECK(PQsetvalue(r, 1, 0, "8", 1));
    CHECK(PQsetvalue(r, 1, 1, "f", 1));
    for (int c = 2; c < 8; c++)
        CHECK(PQsetvalue(r, 1, c, NULL, -1)); /* SQL NULL */

    mw_db_result res;
    memset(&res, 0, sizeof(res));
    CHECK_EQ_INT(mw_db_pg_result_convert(r, &res), 0);
    CHECK_EQ_INT(res.ncols, 8);
    CHECK_EQ_INT(res.nrows, 2);
    CHECK_EQ_INT(res.changes, 0);
    if (res.nrows == 2 && res.ncols == 8) {
        CHECK_EQ_STR(res.cols[4], "bytes");
        mw_db_value *v = res.values;
        CHECK(v[0].type == MW_DB_INT && v[0].i == 7);
        CHECK(v[1].type == MW_DB_BOOL && v[1].i == 1);
        CHECK(v[2].type == MW_DB_REAL && v[2].d == 1.25);
        CHECK(v[3].type == MW_DB_REAL && v[3].d == 12345678901.5);
        CHECK(v[4].type == MW_DB_BLOB && v[4].len == 3 && memcmp(v[4].s, "\0\xff" "A", 3) == 0);
        CHECK(v[5].type == MW_DB_TEXT && v[5].len == 3 && memcmp(v[5].s, "h\xc3\xa9", 3) == 0);
        CHECK(v[6].type == MW_DB_TEXT && strcmp(v[6].s, "2024-01-02 03:04:05+00") == 0);
        CHECK(v[7].type == MW_DB_INT && v[7].i == -3);
        CHECK(v[9].type == MW_DB_BOOL && v[9].i == 0);
        for (int c = 2; c < 8; c++)
            CHECK(v[8 + c].type == MW_DB_NULL);
        /* PostgreSQL's stand-in for a last insert id: the first cell */
        CHECK(res.last_insert_id.type == MW_DB_INT && res.last_insert_id.i == 7);
    }
    mw_db_pg_result_free(&res);
    PQclear(r);

    /* a statement that returns no rows: no last insert id */
    r = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
    memset(&res, 0, sizeof(res));
    CHECK_EQ_INT(mw_db_pg_result_convert(r, &res), 0);
    CHECK_EQ_INT(res.ncols, 0);
    CHECK(res.last_insert_id.type == MW_DB_NULL);
    mw_db_pg_result_free(&res);
    PQclear(r);
}

static void test_messages(void)
{
    char out[256];
    mw_db_pg_tidy("connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n"
                  "\tIs the server running on that host and accepting TCP/IP connections?\n",
                  out, sizeof(out));
    CHECK_EQ_STR(out, "Connection refused");
    mw_db_pg_tidy("connection to server at \"h\", port 5432 failed: FATAL:  password authentication failed for "
                  "user \"x\"\n", out, sizeof(out));
    CHECK_EQ_STR(out, "password authentication failed for user \"x\"");
    mw_db_pg_tidy("server closed the connection unexpectedly\n\tThis probably means...\n", out, sizeof(out));
    CHECK_EQ_STR(out, "server closed the connection unexpectedly");
    mw_db_pg_tidy(NULL, out, sizeof(out));
    CHECK_EQ_STR(out, "unknown error");
    mw_db_pg_tidy("", out, sizeof(out));
    CHECK_EQ_STR(out, "unknown error");
}

int main(void)
{
    test_plain_placeholders();
    test_numbered_and_literal();
    test_strings();
    test_identifiers();
    test_comments();
    test_dollar_quotes();
    test_embedded_nul_is_copied();
    test_params();
    test_result_cells();
    test_messages();
    MW_TEST_DONE();
}
