/* mw_log: one line per event, as text for people or JSON for containers.
 * A line is built field by field so the JSON form needs no parsing of the text form. */
#ifndef MW_LOG_H
#define MW_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum { MW_LOG_DEBUG = 0, MW_LOG_INFO, MW_LOG_WARN, MW_LOG_ERROR } mw_log_level;
typedef enum { MW_LOG_TEXT = 0, MW_LOG_JSON } mw_log_format;

/* Process-wide settings: set once at start and again in each worker after fork. */
void mw_log_setup(mw_log_level level, mw_log_format format, int worker_index);
int mw_log_enabled(mw_log_level level);
int mw_log_level_parse(const char *name, mw_log_level *out);

/* mw_log_begin returns 0 when the level is filtered out; the other calls then do nothing.
 * Usage: if (mw_log_begin(MW_LOG_INFO, "client connected")) { mw_log_str("clientId", id); mw_log_end(); } */
int mw_log_begin(mw_log_level level, const char *message);
void mw_log_str(const char *key, const char *value);
void mw_log_strn(const char *key, const char *value, size_t len);
void mw_log_int(const char *key, int64_t value);
void mw_log_double(const char *key, double value);
void mw_log_end(void);

/* A line with just a message (printf-style). */
void mw_logf(mw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
