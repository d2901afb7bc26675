/* mw_main: the command line. `moonwire [serve] [APP_DIR] [options]`, `moonwire check [APP_DIR]`,
 * `moonwire version`. Flags beat environment variables, which beat app.lua, which beats the
 * defaults; the merge itself happens in lua/moonwire/config.lua. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mw_config.h"
#include "mw_config_lua.h"
#include "mw_db.h"
#include "mw_jwt.h"
#include "mw_lapi_log.h"
#include "mw_log.h"
#include "mw_lvm.h"
#include "mw_metrics.h"
#include "mw_redis.h"
#include "mw_supervisor.h"
#include "mw_version.h"
#include "mw_worker.h"

static const char usage_main[] =
    "moonwire " MW_VERSION " - WebSocket application server with Lua controllers\n"
    "\n"
    "Usage:\n"
    "  moonwire [serve] [APP_DIR] [options]   start the server for the app in APP_DIR (default .)\n"
    "  moonwire check [APP_DIR]               check app.lua, every controller, job and lib/ module;\n"
    "                                         exit 1 listing every error\n"
    "  moonwire version                       print the version and the library versions\n"
    "\n"
    "Run 'moonwire serve --help' for the server options.\n";

static const char usage_serve[] =
    "Usage: moonwire serve [APP_DIR] [options]\n"
    "\n"
    "Starts the supervisor and its workers for the app in APP_DIR (default: the current folder).\n"
    "An app folder holds app.lua (optional config), controllers/, jobs/ and public/.\n"
    "\n"
    "Options (flags beat environment variables, which beat app.lua):\n"
    "  --host HOST           address to listen on           MOONWIRE_HOST         (0.0.0.0)\n"
    "  --port PORT           TCP port                       MOONWIRE_PORT         (8080)\n"
    "  --path PATH           WebSocket endpoint, exact      MOONWIRE_PATH         (/ws)\n"
    "  --workers N|auto      worker processes               MOONWIRE_WORKERS      (1; >1 needs --redis)\n"
    "  --redis URL           redis://host:port/db           MOONWIRE_REDIS_URL    (none)\n"
    "  --database URL        sqlite:PATH, sqlite::memory:,  MOONWIRE_DATABASE_URL (sqlite:APP_DIR/data/app.db)\n"
    "                        postgres://...\n"
    "  --jwt-secret SECRET   HMAC secret for JWT auth       MOONWIRE_JWT_SECRET   (none: anonymous only)\n"
    "  --dev                 hot reload, tracebacks in      MOONWIRE_DEV=1        (off)\n"
    "                        error replies, debug logs\n"
    "  --log-level LEVEL     debug, info, warn, error       MOONWIRE_LOG_LEVEL    (info)\n"
    "  --log-format FORMAT   text or json                   MOONWIRE_LOG_FORMAT   (text)\n"
    "  --compression         permessage-deflate             MOONWIRE_COMPRESSION=1 (off)\n"
    "  -h, --help            show this help\n"
    "Environment only: MOONWIRE_API_KEY (api.key: enables POST /api/METHOD and /admin).\n"
    "\n"
    "Signals: SIGTERM/SIGINT drain and stop;\n"
    "         SIGHUP reloads controllers, jobs and lib/ modules in every worker.\n";

static const char usage_check[] =
    "Usage: moonwire check [APP_DIR]\n"
    "\n"
    "Loads APP_DIR/app.lua (default: the current folder) with the MOONWIRE_* environment\n"
    "variables, as serve would, and lists every config error. Loads every controller in\n"
    "controllers/ and job in jobs/, and compiles every module under lib/. Prints\n"
    "'file:line: message' for each error and exits 1; exits 0 when everything compiles.\n";

static const char usage_version[] =
    "Usage: moonwire version\n"
    "\n"
    "Prints the moonwire version, then one line per library it uses: libuv, LuaJIT, wslay,\n"
    "llhttp, hiredis, libjwt, SQLite, libpq and OpenSSL (paste it into bug reports).\n";

typedef struct flag_def {
    const char *flag;
    const char *key; /* override key understood by lua/moonwire/config.lua */
    const char *env;
    int takes_value;
} flag_def;

static const flag_def flags[] = {
    { "--host", "host", "MOONWIRE_HOST", 1 },
    { "--port", "port", "MOONWIRE_PORT", 1 },
    { "--path", "path", "MOONWIRE_PATH", 1 },
    { "--workers", "workers", "MOONWIRE_WORKERS", 1 },
    { "--redis", "redis", "MOONWIRE_REDIS_URL", 1 },
    { "--database", "database", "MOONWIRE_DATABASE_URL", 1 },
    { "--jwt-secret", "jwt_secret", "MOONWIRE_JWT_SECRET", 1 },
    { "--dev", "dev", "MOONWIRE_DEV", 0 },
    { "--log-level", "log_level", "MOONWIRE_LOG_LEVEL", 1 },
    { "--log-format", "log_format", "MOONWIRE_LOG_FORMAT", 1 },
    { "--compression", "compression", "MOONWIRE_COMPRESSION", 0 },
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

static int fail_usage(const char *msg, const char *arg, const char *usage)
{
    fprintf(stderr, "moonwire: %s%s%s\n\n%s", msg, arg ? ": " : "", arg ? arg : "", usage);
    return 2;
}

/* The MOONWIRE_* variables as overrides. `check` reads them too, so it judges the config
 * `serve` would run (auth.required is fine when MOONWIRE_JWT_SECRET is set). */
static void add_env_overrides(mw_config *cfg)
{
    for (size_t f = 0; f < N_FLAGS; f++) {
        const char *v = getenv(flags[f].env);
        if (v && *v)
            mw_config_add_override(cfg, flags[f].key, v, flags[f].env);
    }
    /* a secret: environment only (a flag would show in the process list) */
    const char *key = getenv("MOONWIRE_API_KEY");
    if (key && *key)
        mw_config_add_override(cfg, "api_key", key, "MOONWIRE_API_KEY");
}

/* Parses argv after the command into cfg: APP_DIR and overrides. Returns -1 (printed) on error,
 * 1 when help was printed, 0 to go on. */
static int parse_args(int argc, char **argv, mw_config *cfg, const char *usage, int allow_flags,
                      const char **app_dir)
{
    *app_dir = NULL;
    /* environment first: flags replace these overrides below */
    if (allow_flags)
        add_env_overrides(cfg);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        if (a[0] == '-' && a[1] == '-' && allow_flags) {
            const char *eq = strchr(a, '=');
            size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
            const flag_def *fd = NULL;
            for (size_t f = 0; f < N_FLAGS; f++)
                if (strlen(flags[f].flag) == name_len && strncmp(flags[f].flag, a, name_len) == 0)
                    fd = &flags[f];
            if (!fd) {
                fail_usage("unknown option", a, usage);
                return -1;
            }
            const char *value = "1";
            if (fd->takes_value) {
                if (eq)
                    value = eq + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else {
                    fail_usage("option needs a value", a, usage);
                    return -1;
                }
            } else if (eq) {
                value = eq + 1;
            }
            mw_config_add_override(cfg, fd->key, value, fd->flag);
            continue;
        }
        if (a[0] == '-') {
            fail_usage("unknown option", a, usage);
            return -1;
        }
        if (*app_dir) {
            fail_usage("only one APP_DIR may be given; unexpected argument", a, usage);
            return -1;
        }
        *app_dir = a;
    }
    return 0;
}

/* The settings each worker would otherwise refuse on its own (the JWT algorithm and key file,
 * the Redis URL): checked once here, so a config error stops start-up (and `check` reports
 * it) instead of the supervisor restarting workers that can never start. */
static int check_auth_and_redis(const mw_config *cfg)
{
    char err[1024];
    int bad = 0;
    mw_jwt_verifier jwt;
    if (mw_jwt_init(&jwt, cfg->auth_algorithm, cfg->auth_secret, cfg->auth_public_key_file, err,
                    sizeof(err)) != 0) {
        fprintf(stderr, "moonwire: %s\n", err);
        bad = 1;
    } else {
        mw_jwt_free(&jwt);
    }
    if (cfg->redis_url[0] && mw_redis_check_url(cfg->redis_url, err, sizeof(err)) != 0) {
        fprintf(stderr, "moonwire: config error: redis.url: %s\n", err);
        bad = 1;
    }
    return bad ? -1 : 0;
}

static int prepare(mw_config *cfg, const char *app_dir)
{
    struct stat st;
    if (!app_dir)
        app_dir = ".";
    if (stat(app_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "moonwire: the app folder '%s' does not exist (give the folder that holds "
                        "app.lua and controllers/)\n", app_dir);
        return -1;
    }
    if (!realpath(app_dir, cfg->app_dir)) {
        fprintf(stderr, "moonwire: cannot resolve '%s': %s\n", app_dir, strerror(errno));
        return -1;
    }
    if (mw_config_find_runtime_dir(cfg->runtime_dir, sizeof(cfg->runtime_dir)) != 0) {
        fprintf(stderr, "moonwire: cannot find the runtime's lua/ folder next to the binary or in %s; "
                        "set MOONWIRE_RUNTIME_DIR to the folder that holds lua/ and controllers/\n",
                MW_INSTALL_DATADIR);
        return -1;
    }
    char err[4096];
    if (mw_config_load(cfg, err, sizeof(err)) != 0) {
        /* config.lua lists every config error, one per line: prefix each one */
        for (char *line = err, *next; line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            fprintf(stderr, "moonwire: %s\n", line);
        }
        return -1;
    }
    return check_auth_and_redis(cfg);
}

/* A database that cannot be written fails once, here, with the way out: otherwise every
 * worker's queue poller would log "unable to open database file" five times a second. */
static int check_database(const mw_config *cfg)
{
    char err[1024];
    if (mw_db_probe(cfg->database_url, err, sizeof(err)) == 0)
        return 0;
    char default_url[sizeof(cfg->app_dir) + 32];
    snprintf(default_url, sizeof(default_url), "sqlite:%s/data/app.db", cfg->app_dir);
    fprintf(stderr, "moonwire: %s\n", err);
    if (strcmp(cfg->database_url, default_url) == 0)
        fprintf(stderr, "moonwire: that is where an app's data goes by default: moonwire must be "
                        "able to create and write the folder %s/data.\n", cfg->app_dir);
    fprintf(stderr, "moonwire: make the database's folder writable, or start with --database "
                    "sqlite::memory: (kept in memory, lost at exit) or --database "
                    "sqlite:/a/writable/folder/app.db (or set MOONWIRE_DATABASE_URL, or database.url "
                    "in app.lua).\n");
    return -1;
}

/* `check` and the start-up load check run without a worker: only the log binding. */
static const mw_lapi_family check_families[] = { { "log", mw_lapi_log_open, NULL } };

static int cmd_serve(int argc, char **argv)
{
    static mw_config cfg; /* large: keep it off the stack; lives for the process */
    const char *app_dir;
    int rv = parse_args(argc, argv, &cfg, usage_serve, 1, &app_dir);
    if (rv != 0)
        return rv > 0 ? 0 : 2;
    if (prepare(&cfg, app_dir) != 0)
        return 1;
    mw_log_setup(cfg.log_level, cfg.log_format, -1);
    if (cfg.workers > 1 && !cfg.redis_url[0]) {
        fprintf(stderr, "moonwire: --workers %d needs --redis: workers coordinate clients, rooms and "
                        "broadcasts through Redis. Start Redis and add --redis redis://127.0.0.1:6379, "
                        "or run with --workers 1.\n", cfg.workers);
        return 1;
    }
    if (check_database(&cfg) != 0)
        return 1;
    if (cfg.workers > MW_METRICS_MAX_WORKERS) {
        fprintf(stderr, "moonwire: config error: workers must be at most %d, got %d\n",
                MW_METRICS_MAX_WORKERS, cfg.workers);
        return 1;
    }
    /* from here on, the supervisor takes its signals with sigtimedwait: block them before the
     * (possibly slow) load check so an early SIGTERM is handled, not fatal */
    sigset_t set;
    mw_worker_signals(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (mw_lvm_check(&cfg, check_families, 1, 1) != 0)
        return 1;
    return mw_supervisor_run(&cfg);
}

static int cmd_check(int argc, char **argv)
{
    static mw_config cfg;
    const char *app_dir;
    int rv = parse_args(argc, argv, &cfg, usage_check, 0, &app_dir);
    if (rv != 0)
        return rv > 0 ? 0 : 2;
    add_env_overrides(&cfg);
    if (prepare(&cfg, app_dir) != 0)
        return 1;
    return mw_lvm_check(&cfg, check_families, 1, 0);
}

static int cmd_version(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_version, stdout);
            return 0;
        }
    }
    char libs[1024];
    mw_version_libraries(libs, sizeof(libs), "\n");
    printf("moonwire %s\n%s\n", MW_VERSION, libs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2) {
        const char *cmd = argv[1];
        if (strcmp(cmd, "serve") == 0)
            return cmd_serve(argc - 2, argv + 2);
        if (strcmp(cmd, "check") == 0)
            return cmd_check(argc - 2, argv + 2);
        if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
            return cmd_version(argc - 2, argv + 2);
        if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
            fputs(usage_main, stdout);
            return 0;
        }
    }
    /* `moonwire [APP_DIR] [options]` is `moonwire serve ...` */
    return cmd_serve(argc - 1, argv + 1);
}
