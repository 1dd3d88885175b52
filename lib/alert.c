/*
 * alert: format an event once as JSON, once as a log line, and count it.
 *
 * The JSON writer measures as it goes (like snprintf), so alert_emit() can
 * size the buffer exactly and append the whole line with one write(2) on an
 * O_APPEND descriptor: lines from concurrent writers never interleave. The
 * same line, NUL-terminated, goes to the hook.
 */
#include "alert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "util.h"

#define ALERT_STACK_BUF 2048
#define ALERT_LOG_VALUE 256 /* escaped value in the log line */

static const char *const alert_event_names[] = {
    "plaintext_refused",    "plaintext_relayed",   "starttls_injection",
    "tls_handshake_failed", "starttls_stripped",   "starttls_refused",
    "tls_version_too_low",  "certificate_invalid", "tls_absent",
    "dnssec_invalid",       "dane_required",
};

_Static_assert(UTIL_ARRAY_LEN(alert_event_names) == ALERT_EVENT_COUNT,
               "alert_event_names");

static const char *const alert_severity_names[] = {"info", "warning", "critical"};

const char *alert_event_str(enum alert_event e)
{
        if ((size_t)e < UTIL_ARRAY_LEN(alert_event_names))
                return alert_event_names[e];
        return "?";
}

const char *alert_severity_str(enum alert_severity s)
{
        if ((size_t)s < UTIL_ARRAY_LEN(alert_severity_names))
                return alert_severity_names[s];
        return "?";
}

/* The line with its "\n" into o; o->len is its length. */
static void alert_json(struct json_out *o, const struct alert *a, const char *when)
{
        json_puts(o, "{\"time\":");
        json_string(o, when);
        json_field(o, "event", alert_event_str(a->event));
        json_field(o, "severity", alert_severity_str(a->severity));
        json_field(o, "session", a->session);
        json_field(o, "listener", a->listener);
        json_field(o, "client", a->client);
        json_field(o, "server", a->server);
        json_field(o, "action", a->action);
        json_field(o, "domain", a->domain);
        json_field(o, "expected", a->expected);
        json_field(o, "observed", a->observed);
        json_field(o, "reason", a->reason);
        json_put(o, "}\n", 2);
}

int alert_format_json(const struct alert *a, const char *when, char *out, size_t outlen)
{
        struct json_out o = {out, outlen, 0};

        alert_json(&o, a, when);
        if (o.len >= outlen) {
                if (outlen > 0)
                        out[0] = '\0';
                return -1;
        }
        out[o.len] = '\0';
        return (int)o.len;
}

/*
 * The file opened for appending, or -errno. Never through a symbolic link:
 * the first open is root's, and whoever may write in the file's directory
 * (mailward's own user, with the file in state_dir) could otherwise make
 * root create or append to any file (-ELOOP then).
 */
static int alert_open(const char *path)
{
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);

        return fd < 0 ? -errno : fd;
}

int alert_sink_init(struct alert_sink *s, const struct log *log, const char *path)
{
        int fd;

        memset(s, 0, sizeof(*s));
        s->log = log;
        s->fd = -1;
        if (path == NULL)
                return 0;
        fd = alert_open(path);
        if (fd < 0)
                return fd;
        s->fd = fd;
        return 0;
}

int alert_sink_reopen(struct alert_sink *s, const char *path)
{
        struct stat now, open_one;
        int fd;

        if (s->fd < 0 || path == NULL)
                return 0;
        /* Not rotated: the file opened at start-up may be root's, and stays. */
        if (stat(path, &now) == 0 && fstat(s->fd, &open_one) == 0 &&
            now.st_dev == open_one.st_dev && now.st_ino == open_one.st_ino)
                return 0;
        fd = alert_open(path);
        if (fd < 0)
                return fd;
        close(s->fd);
        s->fd = fd;
        s->cut = false; /* a fragment, if any, stays in the old file */
        return 1;
}

void alert_sink_cleanup(struct alert_sink *s)
{
        if (s->fd >= 0)
                close(s->fd);
        s->fd = -1;
}

/*
 * One line, appended with one write(2). On a full disk a write may take the
 * start of the line only: the next write then begins with the newline that
 * ends that fragment, so that a reader loses the fragment alone and not
 * the whole line after it too.
 */
static void alert_write_file(struct alert_sink *s, const struct alert *a,
                             const char *line, size_t len)
{
        struct iovec iov[2] = {{(void *)"\n", 1}, {(void *)line, len}};
        size_t total = len + (s->cut ? 1 : 0);
        ssize_t w;

        w = writev(s->fd, s->cut ? iov : iov + 1, s->cut ? 2 : 1);
        if (w >= 0 && (size_t)w == total) {
                s->cut = false;
                if (s->failing)
                        log_emit(s->log, LOG_LVL_INFO, a->session,
                                 "event=alert_log_written lost=%lu", s->lost);
                s->failing = false;
                s->lost = 0;
                return;
        }
        /* A fragment of this line is there, which its newline may not end. */
        if (w > 0)
                s->cut = true;
        s->lost++;
        if (s->failing)
                return;
        s->failing = true;
        if (w < 0)
                log_emit(s->log, LOG_LVL_ERR, a->session,
                         "event=alert_log_failed error=\"%s\" note=\"logged once; the "
                         "alerts are still logged here\"",
                         strerror(errno));
        else
                log_emit(s->log, LOG_LVL_ERR, a->session,
                         "event=alert_log_failed error=short_write wrote=%zd of=%zu "
                         "note=\"logged once; the alerts are still logged here\"",
                         w, total);
}

/* The JSON line, once, for the file and the hook. */
static void alert_write_json(struct alert_sink *s, const struct alert *a)
{
        char stack[ALERT_STACK_BUF], *buf = stack;
        struct json_out o = {stack, sizeof(stack) - 1, 0};
        struct timespec ts;
        char when[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        util_rfc3339(when, &ts);
        alert_json(&o, a, when);
        if (o.len > o.size) {
                buf = xmalloc(o.len + 1);
                o = (struct json_out){buf, o.len, 0};
                alert_json(&o, a, when);
        }
        buf[o.len] = '\0';
        if (s->fd >= 0)
                alert_write_file(s, a, buf, o.len);
        if (s->hook != NULL)
                s->hook(s->hook_arg, a, buf, o.len);
        if (buf != stack)
                free(buf);
}

/* " key=value" with the value escaped, or nothing for NULL. */
static void alert_put_log_field(struct json_out *o, const char *key, const char *value)
{
        char esc[ALERT_LOG_VALUE];

        if (value == NULL)
                return;
        json_put(o, " ", 1);
        json_puts(o, key);
        json_put(o, "=", 1);
        json_puts(o, log_escape(esc, sizeof(esc), value, strlen(value)));
}

static void alert_log_line(const struct alert_sink *s, const struct alert *a)
{
        char line[1536];
        struct json_out o = {line, sizeof(line) - 1, 0};

        if (!log_enabled(s->log, LOG_LVL_WARN))
                return;
        json_puts(&o, "event=alert type=");
        json_puts(&o, alert_event_str(a->event));
        json_puts(&o, " severity=");
        json_puts(&o, alert_severity_str(a->severity));
        alert_put_log_field(&o, "listener", a->listener);
        alert_put_log_field(&o, "client", a->client);
        alert_put_log_field(&o, "server", a->server);
        alert_put_log_field(&o, "action", a->action);
        alert_put_log_field(&o, "domain", a->domain);
        alert_put_log_field(&o, "expected", a->expected);
        alert_put_log_field(&o, "observed", a->observed);
        alert_put_log_field(&o, "reason", a->reason);
        line[o.len < o.size ? o.len : o.size] = '\0';
        log_emit(s->log, LOG_LVL_WARN, a->session, "%s", line);
}

void alert_emit(struct alert_sink *s, const struct alert *a)
{
        if (s == NULL)
                return;
        if ((size_t)a->event >= ALERT_EVENT_COUNT)
                fatalx("alert_emit: bad event %d", (int)a->event);
        s->count[a->event]++;
        alert_log_line(s, a);
        if (s->fd >= 0 || s->hook != NULL)
                alert_write_json(s, a);
}
