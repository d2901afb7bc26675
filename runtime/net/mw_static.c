/* mw_static: decode, refuse ".." segments and NUL, then realpath() and check the prefix, so
 * neither encoded dots nor symlinks lead outside public/. */
#include "mw_static.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "mw_util.h"

int mw_static_resolve(const char *public_dir, const char *url_path, size_t url_len, char *out,
                      size_t size)
{
    char decoded[PATH_MAX], joined[PATH_MAX * 2], real[PATH_MAX];
    size_t n = 0;
    for (size_t i = 0; i < url_len; i++) {
        char c = url_path[i];
        if (c == '%') {
            if (i + 2 >= url_len)
                return 400;
            int byte = mw_hex_byte(url_path + i + 1);
            if (byte < 0)
                return 400;
            c = (char)byte;
            i += 2;
        }
        if (c == '\0' || c == '\\')
            return 400;
        if (n + 1 >= sizeof(decoded))
            return 404;
        decoded[n++] = c;
    }
    decoded[n] = '\0';
    if (decoded[0] != '/')
        return 400;
    /* refuse any "." or ".." segment outright: they are never needed to name a public file */
    for (const char *seg = decoded; *seg;) {
        while (*seg == '/')
            seg++;
        const char *end = strchr(seg, '/');
        size_t slen = end ? (size_t)(end - seg) : strlen(seg);
        if ((slen == 1 && seg[0] == '.') || (slen == 2 && seg[0] == '.' && seg[1] == '.'))
            return 404;
        seg += slen;
    }
    snprintf(joined, sizeof(joined), "%s%s", public_dir, decoded);
    size_t jl = strlen(joined);
    if (jl && joined[jl - 1] == '/')
        snprintf(joined + jl, sizeof(joined) - jl, "index.html");
    if (!realpath(joined, real))
        return 404;
    size_t pl = strlen(public_dir);
    if (strncmp(real, public_dir, pl) != 0 || (real[pl] != '/' && real[pl] != '\0'))
        return 404;
    struct stat st;
    if (stat(real, &st) != 0)
        return 404;
    if (S_ISDIR(st.st_mode)) {
        char idx[PATH_MAX + 16];
        snprintf(idx, sizeof(idx), "%s/index.html", real);
        if (stat(idx, &st) != 0 || !S_ISREG(st.st_mode))
            return 404;
        snprintf(out, size, "%s", idx);
        return 0;
    }
    if (!S_ISREG(st.st_mode))
        return 404;
    snprintf(out, size, "%s", real);
    return 0;
}

const char *mw_static_content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html; charset=utf-8" },
        { ".htm", "text/html; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" },
        { ".mjs", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" },
        { ".map", "application/json" },
        { ".txt", "text/plain; charset=utf-8" },
        { ".svg", "image/svg+xml" },
        { ".png", "image/png" },
        { ".jpg", "image/jpeg" },
        { ".jpeg", "image/jpeg" },
        { ".gif", "image/gif" },
        { ".webp", "image/webp" },
        { ".ico", "image/x-icon" },
        { ".wasm", "application/wasm" },
        { ".woff", "font/woff" },
        { ".woff2", "font/woff2" },
        { ".xml", "application/xml" },
        { ".pdf", "application/pdf" },
    };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash)) {
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    }
    return "application/octet-stream";
}
