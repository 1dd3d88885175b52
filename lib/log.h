/*
 * log: one line per event, session id first, then key=value pairs.
 *
 * A struct log is plain configuration owned by the caller (the daemon keeps
 * one and hands a pointer to every module that logs); nothing here keeps
 * global state apart from syslog's own. In the foreground lines go to stderr
 * as "TIME mailward[PID]: LEVEL: SID key=value ..."; with syslog, to facility
 * mail with the matching priority.
 *
 * Peer data must go through log_escape() before it is logged; AUTH payloads
 * are never logged at all.
 */
#ifndef MAILWARD_LOG_H
#define MAILWARD_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
        LOG_LVL_ERR,
        LOG_LVL_WARN,
        LOG_LVL_INFO,
        LOG_LVL_DEBUG,
};

struct log {
        enum log_level level;
        bool syslog;
};

const char *log_level_str(enum log_level level);
/* "err", "warning", "info", "debug"; 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);

/* Start logging to syslog, facility mail, with this identity. */
void log_use_syslog(struct log *lg, const char *ident);

/* sid may be NULL for lines that belong to no session ("-" is printed). */
void log_emit(const struct log *lg, enum log_level level, const char *sid,
              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static inline bool log_enabled(const struct log *lg, enum log_level level)
{
        return lg != NULL && level <= lg->level;
}

/*
 * Copy src (srclen bytes of peer data) into dst as printable ASCII: bytes
 * 0x21..0x7e stay except '"' and '\\', everything else becomes \xHH. The result
 * is always NUL-terminated and cut with "..." when it does not fit. Returns
 * dst.
 */
char *log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

#endif
