/* mw_static: maps a URL path to a file under the app's public/ folder, refusing anything that
 * would leave it, and names its content type. */
#ifndef MW_STATIC_H
#define MW_STATIC_H

#include <stddef.h>

/* Resolves url_path (raw, percent-encoded) under public_dir (absolute, real path). Returns 0 with
 * the file path in out, or an HTTP status: 400 for a malformed path, 404 when absent/outside. */
int mw_static_resolve(const char *public_dir, const char *url_path, size_t url_len, char *out,
                      size_t size);
const char *mw_static_content_type(const char *path);

#endif
