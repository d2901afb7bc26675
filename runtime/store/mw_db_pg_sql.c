/* mw_db_pg_sql: a one-pass scanner over the statement that copies it byte for byte and turns
 * each `?` outside quotes and comments into $n. Written by hand because libpq has no such
 * conversion (it only knows $n) and the lexer rules needed here are few. */
#include "mw_db_pg_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_ident_start(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80; }

static int is_ident_char(unsigned char c) { return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$'; }

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Index just past the quoted text that starts at sql[i] (a ' or "): a doubled quote stays
 * inside; with backslashes set (E'...'), a backslash escapes the next byte. */
static size_t skip_quoted(const char *sql, size_t len, size_t i, int backslashes)
{
    char q = sql[i++];
    while (i < len) {
        if (backslashes && sql[i] == '\\') {
            i += 2;
            continue;
        }
        if (sql[i] == q) {
            if (i + 1 < len && sql[i + 1] == q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i++;
    }
    return len;
}

/* Index just past the block comment that starts at sql[i] ("/" "*"); they nest in PostgreSQL. */
static size_t skip_block_comment(const char *sql, size_t len, size_t i)
{
    int depth = 0;
    while (i < len) {
        if (sql[i] == '/' && i + 1 < len && sql[i + 1] == '*') {
            depth++;
            i += 2;
        } else if (sql[i] == '*' && i + 1 < len && sql[i + 1] == '/') {
            i += 2;
            if (--depth == 0)
                return i;
        } else {
            i++;
        }
    }
    return len;
}

/* sql[i] is a '$' that does not continue an identifier. When it opens a dollar-quoted body
 * ($$ or $tag$), returns the index just past the closing tag (or len); else returns i. */
static size_t skip_dollar_quoted(const char *sql, size_t len, size_t i)
{
    size_t k = i + 1;
    if (k < len && sql[k] != '$') {
        if (!is_ident_start((unsigned char)sql[k]))
            return i; /* $1, a positional parameter, or a lone $ */
        while (k < len && is_ident_char((unsigned char)sql[k]) && sql[k] != '$')
            k++;
        if (k >= len || sql[k] != '$')
            return i;
    }
    if (k >= len)
        return i;
    size_t taglen = k - i + 1; /* the tag with both dollars */
    for (size_t j = k + 1; j + taglen <= len; j++)
        if (sql[j] == '$' && memcmp(sql + j, sql + i, taglen) == 0)
            return j + taglen;
    return len;
}

char *mw_db_pg_rewrite(const char *sql, size_t len, int *nplaceholders)
{
    size_t marks = 0;
    for (size_t i = 0; i < len; i++)
        marks += sql[i] == '?';
    char *out = malloc(len + marks * 11 + 1); /* "?" becomes at most "$" and 10 digits */
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    int next = 0, highest = 0;
    while (i < len) {
        unsigned char c = (unsigned char)sql[i];
        size_t end = i + 1;
        if (c == '\'') {
            int escapes = i >= 1 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                          (i == 1 || !is_ident_char((unsigned char)sql[i - 2]));
            end = skip_quoted(sql, len, i, escapes);
        } else if (c == '"') {
            end = skip_quoted(sql, len, i, 0);
        } else if (c == '-' && i + 1 < len && sql[i + 1] == '-') {
            while (end < len && sql[end] != '\n')
                end++;
        } else if (c == '/' && i + 1 < len && sql[i + 1] == '*') {
            end = skip_block_comment(sql, len, i);
        } else if (c == '$' && (i == 0 || !is_ident_char((unsigned char)sql[i - 1]))) {
            size_t body_end = skip_dollar_quoted(sql, len, i);
            if (body_end > i)
                end = body_end;
        } else if (c == '?') {
            if (i + 1 < len && sql[i + 1] == '?') { /* ?? is a literal ? */
                out[o++] = '?';
                i += 2;
                continue;
            }
            if (i + 1 < len && is_digit((unsigned char)sql[i + 1])) { /* ?NNN */
                long n = 0;
                size_t j = i + 1;
                while (j < len && is_digit((unsigned char)sql[j]) && n < 100000)
                    n = n * 10 + (sql[j++] - '0');
                out[o++] = '$';
                memcpy(out + o, sql + i + 1, j - i - 1);
                o += j - i - 1;
                if (n > highest)
                    highest = (int)n;
                i = j;
                continue;
            }
            next++;
            if (next > highest)
                highest = next;
            o += (size_t)sprintf(out + o, "$%d", next);
            i++;
            continue;
        }
        memcpy(out + o, sql + i, end - i);
        o += end - i;
        i = end;
    }
    out[o] = '\0';
    *nplaceholders = highest;
    return out;
}
