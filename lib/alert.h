/*
 * alert: structured security events and their sinks.
 *
 * An alert is one event (type, severity, session, listener, client, action,
 * and where they apply domain, server, expected, observed, reason). Each is
 * written to every sink configured: the log (one key=value line at warning
 * level), a JSON-lines file (one object per line, appended with a single
 * write(2) so concurrent writers never interleave; a line a full disk cut
 * short is ended by the next one written), a hook (the daemon's
 * external command runner, proxy/alertcmd.c: lib/ runs no processes) and
 * per-event counters.
 *
 * struct alert_sink is owned by the daemon; the file is opened before the
 * privilege drop. Nothing here blocks for long: the file write is a single
 * append, and the hook must not block either (it copies the line and
 * returns). The hook is called from inside alert_emit(), which the relay
 * calls in the middle of a session's callbacks: it must not call back into
 * the relay or emit alerts itself.
 */
#ifndef MAILWARD_ALERT_H
#define MAILWARD_ALERT_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

enum alert_event {
        ALERT_PLAINTEXT_REFUSED,
        ALERT_PLAINTEXT_RELAYED,
        ALERT_STARTTLS_INJECTION,
        ALERT_TLS_HANDSHAKE_FAILED,
        ALERT_STARTTLS_STRIPPED,
        ALERT_STARTTLS_REFUSED,
        ALERT_TLS_VERSION_TOO_LOW,
        ALERT_CERTIFICATE_INVALID,
        ALERT_TLS_ABSENT,
        ALERT_DNSSEC_INVALID, /* DANE: the DNSSEC lookups failed */
        ALERT_DANE_REQUIRED,  /* dane-only: no usable TLSA records */
        ALERT_EVENT_COUNT,
};

enum alert_severity {
        ALERT_SEV_INFO,
        ALERT_SEV_WARNING,
        ALERT_SEV_CRITICAL,
};

/* Every string may be NULL (then it is left out of the JSON object). */
struct alert {
        enum alert_event event;
        enum alert_severity severity;
        const char *session;
        const char *listener;
        const char *client; /* address:port */
        const char *server; /* address:port */
        const char *action; /* "rejected", "relayed", "closed", "deferred" */
        const char *domain;
        const char *expected;
        const char *observed;
        const char *reason;
};

/*
 * Called once per alert with the alert and its JSON line: len bytes ending
 * in '\n', then a NUL. Both are valid only during the call.
 */
typedef void (*alert_hook_cb)(void *arg, const struct alert *a, const char *json,
                              size_t len);

/* Members may be read by the daemon (counters); set hook after init. */
struct alert_sink {
        const struct log *log;
        int fd; /* JSON-lines file, -1 for none */
        /* Writing the file failed (a full disk): logged once, with the count
         * of lines lost until a write succeeds again. A line cut short is
         * ended by the next write, so the line after it stays whole. */
        bool failing;
        bool cut;
        unsigned long lost;
        unsigned long count[ALERT_EVENT_COUNT];
        alert_hook_cb hook; /* NULL for none */
        void *hook_arg;
};

/* Open (create, append) the JSON-lines file if path is not NULL. 0 or -errno. */
int alert_sink_init(struct alert_sink *s, const struct log *log, const char *path);
void alert_sink_cleanup(struct alert_sink *s);
/*
 * Open the file again (SIGHUP, after a log rotation moved it away) and write
 * there from now on: 1, or -errno with the file opened before kept. 0 when
 * there is nothing to do: no file, or the path still names the file open.
 */
int alert_sink_reopen(struct alert_sink *s, const char *path);

void alert_emit(struct alert_sink *s, const struct alert *a);

const char *alert_event_str(enum alert_event e);
const char *alert_severity_str(enum alert_severity s);

/*
 * Format one alert as a JSON object followed by "\n" into out (NUL-terminated),
 * with "time" (RFC 3339) first. Returns the length, or -1 if it does not fit.
 * Exposed for tests.
 */
int alert_format_json(const struct alert *a, const char *time, char *out, size_t outlen);

#endif
