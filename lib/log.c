#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static const char *const log_names[] = {"err", "warning", "info", "debug"};

const char *log_level_str(enum log_level level)
{
        if ((size_t)level < UTIL_ARRAY_LEN(log_names))
                return log_names[level];
        return "?";
}

int log_level_parse(const char *s, enum log_level *out)
{
        size_t i;

        for (i = 0; i < UTIL_ARRAY_LEN(log_names); i++) {
                if (strcmp(s, log_names[i]) == 0) {
                        *out = (enum log_level)i;
                        return 0;
                }
        }
        if (strcmp(s, "error") == 0 || strcmp(s, "warn") == 0) {
                *out = s[0] == 'e' ? LOG_LVL_ERR : LOG_LVL_WARN;
                return 0;
        }
        return -1;
}

void log_use_syslog(struct log *lg, const char *ident)
{
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
        lg->syslog = true;
}

void log_emit(const struct log *lg, enum log_level level, const char *sid,
              const char *fmt, ...)
{
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        char line[2048];
        va_list ap;
        int n;

        if (!log_enabled(lg, level))
                return;
        n = snprintf(line, sizeof(line), "%s ", sid ? sid : "-");
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
        if (lg->syslog) {
                syslog(prio[level], "%s", line);
        } else {
                struct timespec ts;
                char when[32];

                clock_gettime(CLOCK_REALTIME, &ts);
                util_rfc3339(when, &ts);
                fprintf(stderr, "%s mailward[%ld]: %s: %s\n", when, (long)getpid(),
                        log_level_str(level), line);
        }
}

static size_t log_escaped_len(unsigned char c)
{
        return (c >= 0x21 && c <= 0x7e && c != '"' && c != '\\') ? 1 : 4;
}

char *log_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
        static const char hex[] = "0123456789abcdef";
        size_t i, o = 0, total = 0, room;

        if (dstlen == 0)
                return dst;
        for (i = 0; i < srclen; i++)
                total += log_escaped_len((unsigned char)src[i]);
        /* All of it when it fits; else leave room for "..." and the NUL. */
        room = total < dstlen ? dstlen - 1 : (dstlen > 4 ? dstlen - 4 : 0);
        for (i = 0; i < srclen; i++) {
                unsigned char c = (unsigned char)src[i];
                size_t need = log_escaped_len(c);

                if (o + need > room)
                        break;
                if (need == 1) {
                        dst[o++] = (char)c;
                } else {
                        dst[o++] = '\\';
                        dst[o++] = 'x';
                        dst[o++] = hex[c >> 4];
                        dst[o++] = hex[c & 15];
                }
        }
        if (i < srclen && o + 4 <= dstlen) {
                memcpy(dst + o, "...", 3);
                o += 3;
        }
        dst[o] = '\0';
        return dst;
}
