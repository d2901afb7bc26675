/* mw_db_pg_value: values between the binding (mw_db_value) and libpq: parameters out in
 * PQsendQueryParams' form, result cells back by column type, and libpq's messages cut to the
 * one line a Lua caller sees. No I/O, so it is unit tested on its own (tests/unit/test_pg_sql.c). */
#ifndef MW_DB_PG_VALUE_H
#define MW_DB_PG_VALUE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "mw_db.h"

typedef struct mw_db_pg_params {
    int n;
    char **values; /* NUL-terminated; NULL entries are SQL NULL */
    int *lengths;
    int *formats;  /* 0 text, 1 binary */
} mw_db_pg_params;

/* Every parameter goes as text with type OID 0, so PostgreSQL infers its type from where it is
 * used: integers in decimal, reals with 17 digits (NaN, Infinity), booleans as 1/0 (boolean and
 * integer columns both accept them). A string that is not valid UTF-8 or holds a NUL byte goes
 * in binary format instead (text cannot hold it; a bytea column receives it unchanged).
 * Returns 0, or -1 when out of memory (free p either way). */
int mw_db_pg_params_init(mw_db_pg_params *p, const mw_db_value *params, int n);
void mw_db_pg_params_free(mw_db_pg_params *p);

/* Fills res (zeroed by the caller) from a successful result: rows (bool → BOOL, int2/4/8 and
 * oid → INT, float4/8 and numeric → REAL, bytea → BLOB with the bytes decoded, anything else →
 * TEXT), changes (PQcmdTuples) and last_insert_id (the first cell of the first row, if any).
 * TEXT cells and column names point into r. Returns 0, or -1 when out of memory; release with
 * mw_db_pg_result_free in both cases, before PQclear(r). */
int mw_db_pg_result_convert(const PGresult *r, mw_db_result *res);
void mw_db_pg_result_free(mw_db_result *res);

/* libpq's message, first line only, without the "connection to server at ... failed: " and
 * "FATAL:  " prefixes (our own message says where). */
void mw_db_pg_tidy(const char *msg, char *out, size_t outlen);
/* A failed result's primary message, as the database phrased it (no severity, no LINE). */
void mw_db_pg_result_error(const PGresult *r, char *out, size_t outlen);

#endif
