/*
 * util: allocation that cannot fail (out of memory aborts), fatal errors for
 * broken invariants, the magic-number check used by every callback-driven
 * struct, and small string helpers.
 *
 * Nothing here has state. fatalx() never returns.
 */
#ifndef MAILWARD_UTIL_H
#define MAILWARD_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Print "mailward: fatal: ..." to stderr and abort(). For broken invariants. */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Magic numbers: a struct driven by callbacks keeps `unsigned magic` as its
 * first member, set at creation and cleared at free. UTIL_CHECK_MAGIC aborts
 * naming the function when a callback finds a freed or foreign object.
 */
#define UTIL_CHECK_MAGIC(obj, value)                                                     \
        do {                                                                             \
                if ((obj) == NULL || (obj)->magic != (value))                            \
                        fatalx("%s: bad magic (use after free?)", __func__);             \
        } while (0)

/* Case-insensitive ASCII prefix test; returns true if s (length n) starts with p. */
bool util_prefix_ci(const char *s, size_t n, const char *p);

/*
 * Seconds on CLOCK_BOOTTIME: for durations (cache lifetimes), which a
 * change of the date (an NTP step, an administrator) must neither stretch
 * nor cut short; it never jumps, and it counts a suspend, unlike
 * CLOCK_MONOTONIC. Not a date: a time that outlives the process (one
 * stored) is a date, time(NULL).
 */
int64_t util_mono_secs(void);

/* Write t as RFC 3339 UTC with milliseconds ("2026-11-23T19:40:00.123Z"). */
void util_rfc3339(char out[32], const struct timespec *t);

/* Parse "host:port", "[v6]:port"; host may be empty for "any". 0 or -1. */
int util_split_hostport(const char *s, char *host, size_t hostlen, unsigned *port);

/* Whether s is an IPv4 or IPv6 address (not a host name). */
bool util_is_address(const char *s);

/*
 * The next word of a list separated by blanks or commas ("127.0.0.1:25
 * [::1]:25"): 1 with it in out and *p past it, 0 at the end, -1 when it is
 * longer than outlen - 1.
 */
int util_list_next(const char **p, char *out, size_t outlen);
/* The i-th word (from 0) of such a list, as util_list_next() returns it. */
int util_list_nth(const char *list, unsigned i, char *out, size_t outlen);

/* An address or a network: "192.0.2.0/24", "2001:db8::/32", "192.0.2.7". */
struct util_net {
        int family; /* AF_INET or AF_INET6 */
        unsigned char addr[16];
        unsigned bits; /* prefix length; an address alone is a /32 or /128 */
};

/* 0, or -1 if s is not one (host bits set after the prefix count as wrong). */
int util_net_parse(const char *s, struct util_net *out);
/* Whether the address of sa (AF_INET or AF_INET6; an IPv4-mapped IPv6
 * address counts as IPv4) is inside n. */
struct sockaddr;
bool util_net_match(const struct util_net *n, const struct sockaddr *sa);

#endif
