/* mw_db_pg_sql: rewrites the binding's `?` placeholders as PostgreSQL's $1..$n, leaving alone
 * every `?` inside a string, a quoted identifier, a comment or a dollar-quoted body. Pure text
 * work with no I/O, so it is unit tested on its own (tests/unit/test_pg_sql.c). */
#ifndef MW_DB_PG_SQL_H
#define MW_DB_PG_SQL_H

#include <stddef.h>

/* Returns the rewritten statement (malloc'd, NUL-terminated; the caller frees it), or NULL when
 * out of memory. *nplaceholders is the number of parameters the `?`s ask for (0 when there are
 * none: the statement may use $n itself).
 *   ?      the next parameter: $1, $2, ...
 *   ?NNN   parameter NNN (SQLite's numbered form): $NNN
 *   ??     a literal `?` (the jsonb operators ?, ?| and ?& are written ??, ??| and ??&)
 * Skipped: '...' ('' inside), E'...' (backslash escapes too), "..." identifiers, -- comments to
 * the end of the line, nested block comments, and $$...$$ / $tag$...$tag$ bodies. */
char *mw_db_pg_rewrite(const char *sql, size_t len, int *nplaceholders);

#endif
