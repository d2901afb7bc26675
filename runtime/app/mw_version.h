/* mw_version: the versions of moonwire and of every library it is built with, for
 * `moonwire version` and the start log line (one list, so the two never disagree). */
#ifndef MW_VERSION_H
#define MW_VERSION_H

#include <stddef.h>

/* Writes "libuv 1.44.2<sep>LuaJIT 2.1.0<sep>..." into out (always NUL-terminated). */
void mw_version_libraries(char *out, size_t size, const char *sep);

#endif
