/*
 * tlsrpt: what TLS-RPT reports (RFC 8460) are made of, written as it happens.
 *
 * One JSON line per outbound session and recipient domain (the first RCPT
 * of the domain in the session): which policy applied (MTA-STS, DANE, or
 * none), and whether the TLS the destination gave met it ("success") or
 * what went wrong (an RFC 8460 result type). Lines go to
 * STATE_DIR/tlsrpt/YYYY-MM-DD.jsonl, one file per UTC day, each line with
 * one write(2) on an O_APPEND descriptor, so workers share the files.
 * scripts/tlsrpt-report aggregates the days that are over into reports and
 * sends them; nothing here sends anything.
 *
 * A line: {"time", "policy-type" ("sts", "tlsa", "no-policy-found"),
 * "policy-domain", "policy-string" [...], "mx-host" [...], "result",
 * "sending-mta-ip", "receiving-ip", and when known "receiving-mx-hostname",
 * "failure-reason-code" (why it failed, in words)}, with the RFC's member
 * names.
 */
#ifndef MAILWARD_TLSRPT_H
#define MAILWARD_TLSRPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mtasts_policy;
struct dane_result;
struct tlsrpt;

#define TLSRPT_DIR "tlsrpt"

struct tlsrpt_result {
        int64_t time;       /* seconds since the epoch */
        const char *domain; /* the policy domain: the recipient domain */
        /* The policy that applied: sts (mode enforce or testing), else the
         * DANE lookup's TLSA records, else none (no-policy-found). */
        const struct mtasts_policy *sts;
        const struct dane_result *dane;
        /* Neither, and the domain's MTA-STS policy could not be had: type sts,
         * with no policy string or mx hosts, result the RFC 8460 failure. */
        bool sts_failed;
        const char *result;       /* "success" or an RFC 8460 result-type */
        const char *sending_ip;   /* our address on the server leg */
        const char *receiving_ip; /* the server's address */
        const char *receiving_mx; /* its host name, NULL if unknown */
        const char *info;         /* more words on a failure, or NULL */
};

/*
 * The line, with its "\n", into out (like snprintf: the length it needs is
 * returned, out is NUL-terminated when it fits).
 */
size_t tlsrpt_format(const struct tlsrpt_result *r, char *out, size_t outlen);

/*
 * Make STATE_DIR/tlsrpt if need be (as the unprivileged user). NULL with the
 * reason in err.
 */
struct tlsrpt *tlsrpt_open(const char *state_dir, char *err, size_t errlen);
void tlsrpt_close(struct tlsrpt *t);

/* Append r to its day's file: 0, or -errno. */
int tlsrpt_record(struct tlsrpt *t, const struct tlsrpt_result *r);

#endif
