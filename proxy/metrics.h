/*
 * metrics: the counters as a Prometheus text file (node_exporter's textfile
 * collector format).
 *
 * metrics_write() writes the whole file to PATH.tmp and renames it over
 * PATH, so a reader sees the old file or the new one, never half of one;
 * PATH's directory must therefore be writable by the user mailward runs as
 * after the privilege drop. It is a few hundred bytes written synchronously
 * on the event loop, every METRICS_INTERVAL_MS and at exit: the directory
 * belongs on a local file system.
 *
 * Nothing here keeps state; the counters belong to the alert sink and the
 * relay environment.
 */
#ifndef MAILWARD_METRICS_H
#define MAILWARD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "alert.h"
#include "relay.h"

#define METRICS_INTERVAL_MS 10000

/* The certificates the listeners serve: when each expires. */
struct metrics_cert {
        const char *listener;
        const char *key_type; /* "ecdsa", "rsa" or "other" */
        const char *file;     /* its file (cert or forward_cert) */
        bool client;          /* shown to the server side (forward_cert), not served */
        int64_t not_after;    /* seconds since the epoch; 0: none or unknown (left out) */
};

struct metrics_certs {
        size_t n;
        struct metrics_cert *v;
};

/*
 * The exposition text into out (NUL-terminated). Its length, or -1 if too
 * small. certs may be NULL.
 */
int metrics_format(const struct alert_sink *alerts, const struct relay_stats *stats,
                   const struct metrics_certs *certs, char *out, size_t outlen);

/* 0, or -errno with the failing step ("open", "write", "rename") in *step. */
int metrics_write(const char *path, const struct alert_sink *alerts,
                  const struct relay_stats *stats, const struct metrics_certs *certs,
                  const char **step);

#endif
