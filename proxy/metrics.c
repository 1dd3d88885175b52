/*
 * metrics: format into a buffer, write a temporary file, rename it.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define METRICS_BUF 4096

struct metrics_out {
        char *buf;
        size_t size, len;
        bool overflow;
};

static void metrics_printf(struct metrics_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void metrics_printf(struct metrics_out *o, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (o->overflow)
                return;
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= o->size - o->len) {
                o->overflow = true;
                return;
        }
        o->len += (size_t)n;
}

/* A label value as the exposition format escapes it: \\, \" and \n. */
static void metrics_label(struct metrics_out *o, const char *v)
{
        for (; *v != '\0' && !o->overflow; v++) {
                if (*v == '\\' || *v == '"')
                        metrics_printf(o, "\\%c", *v);
                else if (*v == '\n')
                        metrics_printf(o, "\\n");
                else
                        metrics_printf(o, "%c", *v);
        }
}

int metrics_format(const struct alert_sink *alerts, const struct relay_stats *stats,
                   const struct metrics_certs *certs, char *out, size_t outlen)
{
        struct metrics_out o = {out, outlen, 0, false};
        int i;

        if (outlen == 0)
                return -1;
        out[0] = '\0';
        metrics_printf(&o, "# HELP mailward_alerts_total Alerts raised, by event.\n"
                           "# TYPE mailward_alerts_total counter\n");
        for (i = 0; i < ALERT_EVENT_COUNT; i++)
                metrics_printf(&o, "mailward_alerts_total{event=\"%s\"} %lu\n",
                               alert_event_str((enum alert_event)i), alerts->count[i]);
        metrics_printf(&o,
                       "# HELP mailward_sessions_active Client sessions in progress.\n"
                       "# TYPE mailward_sessions_active gauge\n"
                       "mailward_sessions_active %llu\n"
                       "# HELP mailward_sessions_total Client sessions accepted.\n"
                       "# TYPE mailward_sessions_total counter\n"
                       "mailward_sessions_total %llu\n"
                       "# HELP mailward_messages_total Messages delivered (the server "
                       "side accepted the end of data).\n"
                       "# TYPE mailward_messages_total counter\n"
                       "mailward_messages_total %llu\n",
                       (unsigned long long)stats->sessions_active,
                       (unsigned long long)stats->sessions_total,
                       (unsigned long long)stats->messages_total);
        metrics_printf(&o, "# HELP mailward_sessions_refused_total Client sessions "
                           "refused at the greeting (a 421), by reason.\n"
                           "# TYPE mailward_sessions_refused_total counter\n");
        for (i = 0; i < RELAY_REFUSED_COUNT; i++)
                metrics_printf(&o,
                               "mailward_sessions_refused_total{reason=\"%s\"} %llu\n",
                               relay_refusal_str((enum relay_refusal)i),
                               (unsigned long long)stats->refused[i]);
        metrics_printf(&o, "# HELP mailward_tls_sessions_total Client sessions that "
                           "reached TLS, by TLS version and the key type of the "
                           "certificate served.\n"
                           "# TYPE mailward_tls_sessions_total counter\n");
        for (i = 0; i < RELAY_TLS_COUNT; i++)
                metrics_printf(
                    &o,
                    "mailward_tls_sessions_total{version=\"%s\",key_type=\"%s\"} "
                    "%llu\n",
                    relay_tls_version_str((unsigned)i), relay_tls_key_str((unsigned)i),
                    (unsigned long long)stats->tls[i]);
        if (certs != NULL && certs->n > 0)
                metrics_printf(&o, "# HELP mailward_certificate_expiry_timestamp_seconds "
                                   "When a certificate of a listener expires (use: "
                                   "server, it serves it; client, it shows it; cert: "
                                   "its file).\n"
                                   "# TYPE mailward_certificate_expiry_timestamp_seconds "
                                   "gauge\n");
        for (size_t c = 0; certs != NULL && c < certs->n; c++) {
                if (certs->v[c].not_after == 0)
                        continue;
                metrics_printf(&o,
                               "mailward_certificate_expiry_timestamp_seconds{"
                               "listener=\"%s\",use=\"%s\",key_type=\"%s\",cert=\"",
                               certs->v[c].listener,
                               certs->v[c].client ? "client" : "server",
                               certs->v[c].key_type);
                metrics_label(&o, certs->v[c].file);
                metrics_printf(&o, "\"} %lld\n", (long long)certs->v[c].not_after);
        }
        if (o.overflow) {
                out[0] = '\0';
                return -1;
        }
        return (int)o.len;
}

int metrics_write(const char *path, const struct alert_sink *alerts,
                  const struct relay_stats *stats, const struct metrics_certs *certs,
                  const char **step)
{
        /*
         * A line per certificate: listener names are at most 49 characters
         * (config.c); a file's, escaped, at most twice its own.
         */
        size_t textlen = METRICS_BUF;
        char *text, *tmp;
        size_t tmplen = strlen(path) + 5;
        ssize_t w;
        int fd, n, err = 0;

        for (size_t c = 0; certs != NULL && c < certs->n; c++)
                textlen += 160 + 2 * strlen(certs->v[c].file);
        text = xmalloc(textlen);

        n = metrics_format(alerts, stats, certs, text, textlen);
        if (n < 0)
                fatalx("metrics_format: buffer too small");
        tmp = xmalloc(tmplen);
        snprintf(tmp, tmplen, "%s.tmp", path);
        *step = "open";
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
                err = -errno;
                goto out;
        }
        *step = "write";
        /* A short write (the disk filling up) is asked again for its errno. */
        for (size_t off = 0; off < (size_t)n; off += (size_t)w) {
                w = write(fd, text + off, (size_t)n - off);
                if (w < 0 && errno == EINTR) {
                        w = 0;
                        continue;
                }
                if (w <= 0) {
                        err = w < 0 ? -errno : -EIO;
                        break;
                }
        }
        if (close(fd) != 0 && err == 0)
                err = -errno;
        if (err == 0) {
                *step = "rename";
                if (rename(tmp, path) != 0)
                        err = -errno;
        }
        if (err != 0)
                unlink(tmp);
out:
        free(tmp);
        free(text);
        return err;
}
