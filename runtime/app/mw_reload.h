/* mw_reload: watches the app's and the runtime's Lua folders in --dev and calls back, debounced,
 * with the *.lua files that changed (see mw_reload.c). */
#ifndef MW_RELOAD_H
#define MW_RELOAD_H

#include <uv.h>

typedef struct mw_reload mw_reload;
/* changed: absolute paths of the *.lua files that changed (n may be 0: a folder appeared). */
typedef void (*mw_reload_cb)(const char *const *changed, int n, void *data);

mw_reload *mw_reload_start(uv_loop_t *loop, const char *app_dir, const char *runtime_dir, mw_reload_cb cb,
                           void *data);
/* Closes the watchers; frees itself once libuv has closed them. */
void mw_reload_stop(mw_reload *r);

#endif
