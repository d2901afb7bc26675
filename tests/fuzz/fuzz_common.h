/* fuzz_common: what every harness shares: an assertion that aborts (libFuzzer then saves the
 * input as a crash) and sanitizer defaults, so a bare run stops at the first report as
 * scripts/test's run does. Include it from exactly one file per harness. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_ASSERT(e) ((e) ? (void)0 : (fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #e), abort()))

const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }

#endif
