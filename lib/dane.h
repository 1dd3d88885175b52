/*
 * dane: the TLSA records that DANE (RFC 7672) sets for delivering a
 * recipient domain's mail to one server address, looked up with DNSSEC and
 * cached, for an outbound listener; and on the way, the MX host name that
 * the address belongs to (level verify).
 *
 * A transparent proxy knows the address the MTA connected to, not the MX
 * host name that DANE needs, so the lookup finds it (all with DNSSEC, see
 * dns.h): the domain's MX records (a domain with none is its own host), then
 * each MX host's addresses in preference order, until one has the
 * destination address; then that host's TLSA records at _25._tcp.HOST. An
 * MX host that is an alias (a CNAME, validated) is looked up at the name it
 * leads to first, and at its own name when that has none (RFC 7672 section
 * 2.2.3).
 *
 * With a relay host (dane_conf.relay_host, the host the MTA relays
 * through), a destination that is none of the domain's MX hosts (or whose
 * MX lookup failed) is looked for among the relay host's addresses next;
 * when it is one, the relay host takes the MX host's place: `relay` is set,
 * mx_host is the relay host, and its TLSA records are those at
 * _PORT._tcp.RELAYHOST, PORT being the destination's (as Postfix does for
 * a relayhost). The MX hosts come first so that a delivery to a real MX
 * host is judged as one whatever the relay host's DNS says. With
 * dane_conf.direct there are no MX hosts: the relay host is looked at
 * alone (a smarthost that mailward forwards to, forward_verify = dane).
 *
 *   DANE_TLSA    secure TLSA records for the destination's MX host: the
 *                certificate is matched against them (tls_dane_match());
 *   DANE_NONE    no DANE here: the MX records or the host's addresses are
 *                not validated (insecure), the destination is not one of
 *                the domain's MX hosts, or the host has no (validated) TLSA
 *                records; `why` says which;
 *   DANE_FAILED  a lookup failed (SERVFAIL, as a validating resolver answers
 *                a bogus record, or a timeout): nothing can be said, and
 *                RFC 7672 says not to deliver; `why` says which.
 * mx_host is the destination's MX host (or relay host) when it was found ("" otherwise),
 * validated or not: the hosts are looked for even when the MX records are
 * not validated, for level verify, whose "hostname" pattern trusts DNS as
 * Postfix's does (DANE uses the host only when everything was validated).
 *
 * Results are cached per (domain, address, port) for DANE_CACHE_SECS, failures
 * for DANE_RETRY_SECS, counted on dane_get()'s clock from the lookup's
 * start, in memory, at most DANE_CACHE_MAX (dane_conf.cache_max): a full
 * cache drops the results that ran out, then the least recently used
 * (looked up again at their next use); only keys whose lookup runs or is
 * waited for are kept beyond it. One lookup per
 * key runs at a time; callers wait as with sts.h (pending.h), and each
 * lookup is a few DNS queries, each bounded by the resolver's timeouts. A
 * result given out stays valid until control returns to the loop, or until
 * the next dane_get() (which may drop it to make room).
 */
#ifndef MAILWARD_DANE_H
#define MAILWARD_DANE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "pending.h"

struct uv_loop_s;
struct log;
struct dane;

#define DANE_CACHE_MAX  10000
#define DANE_CACHE_SECS 300
#define DANE_RETRY_SECS 60
#define DANE_TLSA_MAX   16 /* TLSA records kept for one host */
#define DANE_MX_HOSTS   10 /* MX hosts tried for one domain */
#define DANE_TLSA_DATA  4096

enum dane_state {
        DANE_NONE,
        DANE_TLSA,
        DANE_FAILED,
};

struct dane_tlsa {
        unsigned char usage, selector, mtype;
        unsigned char *data;
        size_t len;
};

struct dane_result {
        enum dane_state state;
        bool relay; /* the destination is the relay host (mx_host) */
        char mx_host[256];
        /* DANE_TLSA: the TLSA base domain: mx_host, or the name its CNAME
         * leads to when the records are there (RFC 7672 section 2.2.3) */
        char tlsa_host[256];
        char why[200];
        size_t ntlsa;
        struct dane_tlsa tlsa[DANE_TLSA_MAX];
};

struct dane_conf {
        struct uv_loop_s *loop;
        const struct log *log;
        const char *listener;   /* for log lines */
        const char *relay_host; /* the MTA's relay host; NULL: none (copied) */
        /* relay_host is the only host (a smarthost mailward itself forwards
         * to): no MX lookup, the domain given to dane_get() is that host */
        bool direct;
        unsigned cache_max; /* keys held; 0: DANE_CACHE_MAX */
};

enum dane_answer {
        DANE_READY,   /* *res is the result */
        DANE_PENDING, /* a lookup runs: cb(arg) comes when it ends; ask again */
};

const char *dane_state_str(enum dane_state s); /* "none", "tlsa", "failed" */

struct dane *dane_new(const struct dane_conf *conf);
/* Stop every lookup (waits are dropped without a call); then dane_free(). */
void dane_shutdown(struct dane *d);
void dane_free(struct dane *d);

/*
 * domain: lower case, no trailing dot; dst: the server's address and port.
 * now: seconds on a clock that does not jump (util_mono_secs()): the cache
 * lifetimes are durations, which a change of the date must not stretch or
 * cut short.
 */
enum dane_answer dane_get(struct dane *d, const char *domain,
                          const struct sockaddr_storage *dst, int64_t now,
                          const struct dane_result **res, pending_cb cb, void *arg,
                          struct pending_wait **w);

/* The keys held in memory. */
unsigned dane_count(const struct dane *d);

/* Forget every cached result (SIGHUP): the next use looks up again. */
unsigned dane_flush(struct dane *d);

#endif
