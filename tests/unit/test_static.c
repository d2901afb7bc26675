/* Unit tests for mw_static: files under public/ resolve, anything that would leave it does not,
 * and content types follow the extension. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mw_frame.h"
#include "mw_static.h"
#include "mw_test.h"
#include "mw_util.h"

static int resolve(const char *pub, const char *url, char *out)
{
    return mw_static_resolve(pub, url, strlen(url), out, 4096);
}

int main(void)
{
    char tmpl[] = "/tmp/mw_static_XXXXXX";
    char *root = mkdtemp(tmpl);
    CHECK(root != NULL);
    char pub[4096], path[4200], out[4096];
    snprintf(pub, sizeof(pub), "%s/public", root);
    mkdir(pub, 0755);
    snprintf(path, sizeof(path), "%s/sub", pub);
    mkdir(path, 0755);
    const char *files[] = { "/index.html", "/app.js", "/sub/x.css", "/../secret.txt" };
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s%s", pub, files[i]);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        if (f) {
            fputs("x", f);
            fclose(f);
        }
    }
    snprintf(path, sizeof(path), "%s/link", pub);
    symlink("/etc/passwd", path);

    CHECK_EQ_INT(resolve(pub, "/", out), 0);
    CHECK(strstr(out, "/public/index.html") != NULL);
    CHECK_EQ_INT(resolve(pub, "/app.js", out), 0);
    CHECK_EQ_INT(resolve(pub, "/sub/x.css", out), 0);
    CHECK_EQ_INT(resolve(pub, "/sub/%78.css", out), 0); /* %78 = x */
    CHECK_EQ_INT(resolve(pub, "/missing.js", out), 404);
    CHECK_EQ_INT(resolve(pub, "/../secret.txt", out), 404);
    CHECK_EQ_INT(resolve(pub, "/%2e%2e/secret.txt", out), 404);
    CHECK_EQ_INT(resolve(pub, "/..%2fsecret.txt", out), 404);
    CHECK_EQ_INT(resolve(pub, "/sub/../../secret.txt", out), 404);
    CHECK_EQ_INT(resolve(pub, "/link", out), 404); /* a symlink out of public/ */
    CHECK_EQ_INT(resolve(pub, "/a%00b", out), 400);
    CHECK_EQ_INT(resolve(pub, "/bad%zz", out), 400);
    CHECK_EQ_INT(resolve(pub, "/trunc%2", out), 400);

    CHECK_EQ_STR(mw_static_content_type("/a/b.html"), "text/html; charset=utf-8");
    CHECK_EQ_STR(mw_static_content_type("/a/b.JS"), "text/javascript; charset=utf-8");
    CHECK_EQ_STR(mw_static_content_type("/a/b.css"), "text/css; charset=utf-8");
    CHECK_EQ_STR(mw_static_content_type("/a.d/noext"), "application/octet-stream");

    /* frames: server frames are unmasked, header sizes 2/4/10 */
    mw_frame *f = mw_frame_ws(1, "hi", 2);
    CHECK(f->len == 4 && f->data[0] == 0x81 && f->data[1] == 2 && f->data[2] == 'h');
    mw_frame_unref(f);
    char big[70000] = { 0 };
    f = mw_frame_ws(1, big, 300);
    CHECK(f->len == 304 && f->data[1] == 126 && f->data[2] == 1 && f->data[3] == 44);
    mw_frame_unref(f);
    f = mw_frame_ws(2, big, 70000);
    CHECK(f->len == 70010 && f->data[0] == 0x82 && f->data[1] == 127 && f->data[9] == (70000 & 0xff));
    CHECK_EQ_INT(f->refs, 1);
    mw_frame_ref(f);
    CHECK_EQ_INT(f->refs, 2);
    mw_frame_unref(f);
    mw_frame_unref(f);

    /* client ids: 22 URL-safe characters, distinct */
    char a[MW_RANDOM_ID_LEN + 1], b[MW_RANDOM_ID_LEN + 1];
    CHECK_EQ_INT(mw_random_id(a), 0);
    CHECK_EQ_INT(mw_random_id(b), 0);
    CHECK_EQ_INT(strlen(a), 22);
    CHECK(strcmp(a, b) != 0);
    CHECK(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 22);

    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK_EQ_INT(system(cmd), 0);
    MW_TEST_DONE();
}
