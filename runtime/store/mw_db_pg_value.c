/* mw_db_pg_value: conversions are by PostgreSQL's type OIDs (fixed in its catalog,
 * pg_type.dat), on the text forms libpq returns by default; bytea uses libpq's own decoder. */
#include "mw_db_pg_value.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700

/* Text PostgreSQL takes as a text parameter: valid UTF-8 without NUL bytes. */
static int text_safe(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return 0;
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += k + 1;
    }
    return 1;
}

int mw_db_pg_params_init(mw_db_pg_params *p, const mw_db_value *params, int n)
{
    memset(p, 0, sizeof(*p));
    if (n <= 0)
        return 0;
    p->n = n;
    p->values = calloc((size_t)n, sizeof(char *));
    p->lengths = calloc((size_t)n, sizeof(int));
    p->formats = calloc((size_t)n, sizeof(int));
    if (!p->values || !p->lengths || !p->formats)
        return -1;
    for (int i = 0; i < n; i++) {
        const mw_db_value *v = &params[i];
        char num[40];
        const char *text = num;
        switch (v->type) {
        case MW_DB_NULL: continue;
        case MW_DB_INT: snprintf(num, sizeof(num), "%" PRId64, v->i); break;
        case MW_DB_BOOL: text = v->i ? "1" : "0"; break;
        case MW_DB_REAL:
            if (isnan(v->d))
                text = "NaN";
            else if (isinf(v->d))
                text = v->d > 0 ? "Infinity" : "-Infinity";
            else
                snprintf(num, sizeof(num), "%.17g", v->d);
            break;
        default: /* TEXT, BLOB */
            if (v->len > INT32_MAX)
                return -1;
            p->values[i] = malloc(v->len + 1);
            if (!p->values[i])
                return -1;
            memcpy(p->values[i], v->s, v->len);
            p->values[i][v->len] = '\0';
            p->lengths[i] = (int)v->len;
            p->formats[i] = !text_safe((const unsigned char *)v->s, v->len);
            continue;
        }
        size_t len = strlen(text);
        p->values[i] = malloc(len + 1);
        if (!p->values[i])
            return -1;
        memcpy(p->values[i], text, len + 1);
        p->lengths[i] = (int)len;
    }
    return 0;
}

void mw_db_pg_params_free(mw_db_pg_params *p)
{
    for (int i = 0; p->values && i < p->n; i++)
        free(p->values[i]);
    free(p->values);
    free(p->lengths);
    free(p->formats);
    memset(p, 0, sizeof(*p));
}

static int convert_cell(const PGresult *r, int row, int col, mw_db_value *v)
{
    if (PQgetisnull(r, row, col))
        return 0; /* MW_DB_NULL */
    char *s = PQgetvalue(r, row, col);
    switch (PQftype(r, col)) {
    case OID_BOOL:
        v->type = MW_DB_BOOL;
        v->i = s[0] == 't';
        return 0;
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        v->type = MW_DB_INT;
        v->i = strtoll(s, NULL, 10);
        return 0;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        v->type = MW_DB_REAL;
        v->d = strtod(s, NULL);
        return 0;
    case OID_BYTEA: {
        size_t n = 0;
        unsigned char *bytes = PQunescapeBytea((const unsigned char *)s, &n);
        if (!bytes)
            return -1;
        v->type = MW_DB_BLOB;
        v->s = (char *)bytes;
        v->len = n;
        return 0;
    }
    default:
        v->type = MW_DB_TEXT;
        v->s = s;
        v->len = (size_t)PQgetlength(r, row, col);
        return 0;
    }
}

int mw_db_pg_result_convert(const PGresult *r, mw_db_result *res)
{
    res->changes = strtoll(PQcmdTuples((PGresult *)r), NULL, 10);
    int ncols = PQnfields(r);
    size_t nrows = (size_t)PQntuples(r);
    if (ncols <= 0)
        return 0;
    res->cols = malloc((size_t)ncols * sizeof(char *));
    res->values = nrows ? calloc(nrows * (size_t)ncols, sizeof(mw_db_value)) : NULL;
    if (!res->cols || (nrows && !res->values))
        return -1;
    res->ncols = ncols;
    res->nrows = nrows;
    for (int c = 0; c < ncols; c++)
        res->cols[c] = PQfname(r, c);
    for (size_t row = 0; row < nrows; row++)
        for (int c = 0; c < ncols; c++)
            if (convert_cell(r, (int)row, c, &res->values[row * (size_t)ncols + (size_t)c]) != 0)
                return -1;
    /* PostgreSQL has no last insert id: INSERT ... RETURNING id gives it as the first cell */
    if (nrows > 0)
        res->last_insert_id = res->values[0];
    return 0;
}

void mw_db_pg_result_free(mw_db_result *res)
{
    for (size_t i = 0; res->values && i < res->nrows * (size_t)res->ncols; i++)
        if (res->values[i].type == MW_DB_BLOB)
            PQfreemem(res->values[i].s);
    free(res->values);
    free(res->cols);
    res->values = NULL;
    res->cols = NULL;
    res->nrows = 0;
    res->ncols = 0;
}

void mw_db_pg_tidy(const char *msg, char *out, size_t outlen)
{
    const char *p = msg && *msg ? msg : "unknown error";
    if (strncmp(p, "connection to server ", 21) == 0) {
        const char *f = strstr(p, " failed: ");
        if (f)
            p = f + 9;
    }
    if (strncmp(p, "FATAL:  ", 8) == 0 || strncmp(p, "ERROR:  ", 8) == 0)
        p += 8;
    size_t n = strcspn(p, "\n");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\r' || p[n - 1] == '\t'))
        n--;
    snprintf(out, outlen, "%.*s", (int)n, p);
}

void mw_db_pg_result_error(const PGresult *r, char *out, size_t outlen)
{
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (primary && *primary)
        snprintf(out, outlen, "%s", primary);
    else
        mw_db_pg_tidy(PQresultErrorMessage(r), out, outlen);
}
