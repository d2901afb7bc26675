/* mw_log: text lines ("2026-11-25T10:00:00.123Z INFO  w0 client connected clientId=...") or JSON
 * objects, one per line on stderr. A single line buffer is enough: each process has one thread. */
#include "mw_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct {
    mw_log_level level;
    mw_log_format format;
    int worker_index; /* -1 in the supervisor */
    char line[16384];
    size_t len;
    char tail[16384]; /* multi-line values (tracebacks), printed after the line in text form */
    size_t tail_len;
    int active;
} logger = { .level = MW_LOG_INFO, .format = MW_LOG_TEXT, .worker_index = -1 };

static const char *level_names[] = { "debug", "info", "warn", "error" };
static const char *level_labels[] = { "DEBUG", "INFO ", "WARN ", "ERROR" };

void mw_log_setup(mw_log_level level, mw_log_format format, int worker_index)
{
    logger.level = level;
    logger.format = format;
    logger.worker_index = worker_index;
}

int mw_log_enabled(mw_log_level level) { return level >= logger.level; }

int mw_log_level_parse(const char *name, mw_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (mw_log_level)i;
            return 0;
        }
    }
    if (strcmp(name, "warning") == 0) {
        *out = MW_LOG_WARN;
        return 0;
    }
    return -1;
}

static void put(const char *s, size_t n)
{
    size_t room = sizeof(logger.line) - 2 - logger.len; /* keep space for "\n" */
    if (n > room)
        n = room;
    memcpy(logger.line + logger.len, s, n);
    logger.len += n;
}

static void puts_(const char *s) { put(s, strlen(s)); }

/* JSON string body escaping; also used for text values that contain spaces or quotes. */
static void put_escaped(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        switch (c) {
        case '"': put("\\\"", 2); break;
        case '\\': put("\\\\", 2); break;
        case '\n': put("\\n", 2); break;
        case '\r': put("\\r", 2); break;
        case '\t': put("\\t", 2); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                puts_(esc);
            } else {
                put((const char *)&c, 1);
            }
        }
    }
}

static void timestamp(char *out, size_t size)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

int mw_log_begin(mw_log_level level, const char *message)
{
    char ts[40], who[16];
    if (level < logger.level) {
        logger.active = 0;
        return 0;
    }
    logger.active = 1;
    logger.len = 0;
    logger.tail_len = 0;
    timestamp(ts, sizeof(ts));
    if (logger.worker_index >= 0)
        snprintf(who, sizeof(who), "w%d", logger.worker_index);
    else
        snprintf(who, sizeof(who), "main");
    if (logger.format == MW_LOG_JSON) {
        puts_("{\"time\":\"");
        puts_(ts);
        puts_("\",\"level\":\"");
        puts_(level_names[level]);
        puts_("\",\"process\":\"");
        puts_(who);
        puts_("\",\"msg\":\"");
        put_escaped(message, strlen(message));
        puts_("\"");
    } else {
        puts_(ts);
        puts_(" ");
        puts_(level_labels[level]);
        puts_(" ");
        puts_(who);
        puts_(" ");
        puts_(message);
    }
    return 1;
}

static int needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\')
            return 1;
    }
    return 0;
}

void mw_log_strn(const char *key, const char *value, size_t len)
{
    if (!logger.active)
        return;
    if (!value) {
        value = "";
        len = 0;
    }
    if (logger.format == MW_LOG_JSON) {
        puts_(",\"");
        puts_(key);
        puts_("\":\"");
        put_escaped(value, len);
        puts_("\"");
    } else if (memchr(value, '\n', len)) {
        /* multi-line values (tracebacks) go below the line, indented, to stay readable */
        size_t room = sizeof(logger.tail) - logger.tail_len;
        int n = snprintf(logger.tail + logger.tail_len, room, "\n  %s:", key);
        if (n > 0 && (size_t)n < room)
            logger.tail_len += (size_t)n;
        for (size_t i = 0; i < len && logger.tail_len + 8 < sizeof(logger.tail); i++) {
            if (i == 0 || value[i - 1] == '\n') {
                memcpy(logger.tail + logger.tail_len, i == 0 ? "\n    " : "    ", i == 0 ? 5 : 4);
                logger.tail_len += i == 0 ? 5 : 4;
            }
            logger.tail[logger.tail_len++] = value[i];
        }
    } else {
        puts_(" ");
        puts_(key);
        puts_("=");
        if (needs_quotes(value, len)) {
            puts_("\"");
            put_escaped(value, len);
            puts_("\"");
        } else {
            put(value, len);
        }
    }
}

void mw_log_str(const char *key, const char *value) { mw_log_strn(key, value, value ? strlen(value) : 0); }

void mw_log_int(const char *key, int64_t value)
{
    char buf[32];
    if (!logger.active)
        return;
    snprintf(buf, sizeof(buf), "%lld", (long long)value);
    puts_(logger.format == MW_LOG_JSON ? ",\"" : " ");
    puts_(key);
    puts_(logger.format == MW_LOG_JSON ? "\":" : "=");
    puts_(buf);
}

void mw_log_double(const char *key, double value)
{
    char buf[32];
    if (!logger.active)
        return;
    snprintf(buf, sizeof(buf), "%.3f", value);
    puts_(logger.format == MW_LOG_JSON ? ",\"" : " ");
    puts_(key);
    puts_(logger.format == MW_LOG_JSON ? "\":" : "=");
    puts_(buf);
}

void mw_log_end(void)
{
    if (!logger.active)
        return;
    if (logger.format == MW_LOG_JSON)
        puts_("}");
    else if (logger.tail_len)
        put(logger.tail, logger.tail_len);
    logger.line[logger.len++] = '\n';
    /* one write per line so lines from several workers never interleave */
    ssize_t ignored = write(STDERR_FILENO, logger.line, logger.len);
    (void)ignored;
    logger.active = 0;
}

void mw_logf(mw_log_level level, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (mw_log_begin(level, msg))
        mw_log_end();
}
