/* mw_version: libuv, SQLite, libpq and OpenSSL report the version actually loaded; LuaJIT,
 * wslay, llhttp and hiredis only have header macros (llhttp is compiled in, the others are
 * pinned by their soname); libjwt 1.10 has neither, so CMake passes pkg-config's version. */
#include "mw_version.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <llhttp.h>
#include <luajit.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include <wslay/wslayver.h>

#ifndef MW_LIBJWT_VERSION
#define MW_LIBJWT_VERSION "unknown"
#endif

void mw_version_libraries(char *out, size_t size, const char *sep)
{
    /* LUAJIT_VERSION is "LuaJIT 2.1.0-beta3": keep only the number, like the others */
    const char *luajit = LUAJIT_VERSION;
    if (strncmp(luajit, "LuaJIT ", 7) == 0)
        luajit += 7;
    /* PQlibVersion: 150004 is 15.4 (since PostgreSQL 10: major * 10000 + minor) */
    int pq = PQlibVersion();
    snprintf(out, size,
             "libuv %s%sLuaJIT %s%swslay %s%sllhttp %d.%d.%d%shiredis %d.%d.%d%slibjwt %s%s"
             "SQLite %s%slibpq %d.%d%sOpenSSL %s",
             uv_version_string(), sep, luajit, sep, WSLAY_VERSION, sep, LLHTTP_VERSION_MAJOR,
             LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH, sep, HIREDIS_MAJOR, HIREDIS_MINOR,
             HIREDIS_PATCH, sep, MW_LIBJWT_VERSION, sep, sqlite3_libversion(), sep, pq / 10000,
             pq % 10000, sep, OpenSSL_version(OPENSSL_VERSION_STRING));
}
