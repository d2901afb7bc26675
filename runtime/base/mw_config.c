/* mw_config: where the runtime's Lua files are, and the command-line/environment overrides
 * collected before the config is loaded (loading runs Lua: vm/mw_config_lua.c). */
#include "mw_config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int has_runtime(const char *dir)
{
    char probe[4200];
    snprintf(probe, sizeof(probe), "%s/lua/moonwire/runtime.lua", dir);
    return access(probe, R_OK) == 0;
}

int mw_config_find_runtime_dir(char *out, size_t size)
{
    char exe[PATH_MAX], cand[PATH_MAX + 64];
    const char *env = getenv("MOONWIRE_RUNTIME_DIR");
    if (env && *env && has_runtime(env)) {
        snprintf(out, size, "%s", env);
        return 0;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        /* installed: PREFIX/bin/moonwire next to PREFIX/share/moonwire */
        snprintf(cand, sizeof(cand), "%s/../share/moonwire", exe);
        if (has_runtime(cand) && realpath(cand, out))
            return 0;
    }
    if (has_runtime(MW_INSTALL_DATADIR)) {
        snprintf(out, size, "%s", MW_INSTALL_DATADIR);
        return 0;
    }
    if (has_runtime(MW_SOURCE_DIR)) { /* built from a source tree, run in place */
        snprintf(out, size, "%s", MW_SOURCE_DIR);
        return 0;
    }
    return -1;
}

int mw_config_add_override(mw_config *cfg, const char *key, const char *value, const char *origin)
{
    for (int i = 0; i < cfg->n_overrides; i++) {
        if (strcmp(cfg->overrides[i].key, key) == 0) {
            cfg->overrides[i].value = value;
            cfg->overrides[i].origin = origin;
            return 0;
        }
    }
    if (cfg->n_overrides >= MW_MAX_OVERRIDES)
        return -1;
    cfg->overrides[cfg->n_overrides++] = (mw_override){ key, value, origin };
    return 0;
}
