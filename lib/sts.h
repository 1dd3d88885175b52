/*
 * sts: MTA-STS (RFC 8461) for an outbound listener: each recipient domain's
 * policy, looked up, fetched and cached.
 *
 * What is looked up. For a domain D: the TXT record at _mta-sts.D (dns.h);
 * when it holds one valid "v=STSv1; id=..." record and the id is not the
 * cached policy's, the policy at https://mta-sts.D/.well-known/mta-sts.txt
 * over TLS (a conn, HTTP/1.0, no redirects, at most MTASTS_BODY_MAX bytes of
 * body). The policy host's certificate must chain to the listener's trust
 * anchors (ca_file), be unexpired, and name mta-sts.D; otherwise the fetch
 * fails, as does anything but "200" with text/plain.
 *
 * Cache (in memory, per listener, STS_CACHE_MAX domains). A fetched
 * policy is used until its max_age runs out (STS_MIN_SECS at least, so that
 * a max_age of 0 still serves the sessions that waited for it). Every
 * policy fetched is also written to the store (state_dir/mta-sts.mdb, see
 * learned.h: durable, shared by the worker processes), and a domain first
 * asked for in this process is read from it: a restart does not forget a
 * policy before its max_age, which would let whoever can block the fetch
 * turn enforcement off (RFC 8461, Security Considerations). A record is
 *     byte 0 STS_STORE_FORMAT, bytes 1..8 expiry (unix seconds, big-endian),
 *     a length byte and the id, then the policy as fetched;
 * the policy is parsed again when read, and a record that does not read, or
 * has expired, is removed. A full cache drops, least recently used first,
 * domains without a policy and those whose policy the store holds (read
 * again at the next use); a valid policy the store does not hold (no
 * store, or writing to it failed) is never dropped, so the cache grows
 * past its size with those rather than forget a policy before its max_age.
 *
 * While a policy is valid, its TXT record is looked at again in the
 * background at most every STS_RECHECK_SECS when the domain is used (and
 * when the refresh is due even if it is not: sts_sweep()), and a
 * changed id fetches the policy again, as does an unchanged one once the
 * policy is STS_REFRESH_SECS old (or half its max_age, if that is less: RFC
 * 8461 section 3.3, refresh before it expires); a refresh that fetches a
 * policy starts its max_age anew, and a failed one keeps the cached policy
 * (as RFC 8461 says), or, if ours has expired, the one in the store that
 * another process (workers) may have fetched since. Without a valid cached policy, a
 * domain with no TXT record (or a failed lookup or fetch) is "none" for STS_NEGATIVE_SECS
 * (no record) or STS_RETRY_SECS (a failure): mail goes on as if the domain
 * had no policy, as the RFC says, and the failure is logged. A fetch that
 * could not connect because this process was out of descriptors (its conn
 * loop keeps a reserve: conn_loop_reserve()) says nothing of the domain:
 * nothing is cached, and for STS_LOCAL_SECS sts_get() answers STS_TEMPFAIL
 * (a cached policy still serves, as after any failed refresh).
 *
 * Clocks. A policy's expiry is a date (unix seconds: it is stored and
 * outlives the process), and so is sts_get()'s now. How long ago a domain
 * was looked up, and how long it stays "none", are durations, counted on
 * a clock that no change of the date moves (sts_conf.mono).
 *
 * Waiting. sts_get() answers at once from the cache when it can. Otherwise
 * it starts a lookup (one per domain, whoever asks) and answers
 * STS_PENDING; the caller's callback comes from the loop when the lookup
 * has ended, and the caller asks again (the answer is then in the cache).
 * Every fetch ends within STS_FETCH_TIMEOUT_MS (plus the resolver's own
 * time for the DNS lookups), so a waiting session always hears back. A
 * caller that goes away first cancels its wait with pending_cancel().
 *
 * A policy given out by sts_get() stays valid until control returns to the
 * loop, or until the next sts_get() or sts_sweep() (which may drop it to
 * make room): copy what must live longer.
 */
#ifndef MAILWARD_STS_H
#define MAILWARD_STS_H

#include <stdint.h>

#include "mtasts.h"
#include "pending.h"

struct uv_loop_s;
struct conn_loop;
struct tls_ctx;
struct log;
struct sts;

#define STS_CACHE_MAX        10000
#define STS_RECHECK_SECS     300
#define STS_REFRESH_SECS     86400
#define STS_NEGATIVE_SECS    3600
#define STS_RETRY_SECS       300
#define STS_MIN_SECS         60 /* a policy is kept at least this long */
#define STS_LOCAL_SECS       2  /* STS_TEMPFAIL after a fetch with no descriptor */
#define STS_STORE_FILE       "mta-sts.mdb"
#define STS_STORE_MAP_SIZE   ((size_t)256 << 20)
#define STS_STORE_FORMAT     1
#define STS_FETCH_TIMEOUT_MS 30000
#define STS_SWEEP_FETCHES    16 /* the sweep starts no more while as many run */

/* Why a domain whose TXT record announced a policy has none (RFC 8460 4.3.2.3). */
enum sts_failure {
        STS_FAILURE_NONE,    /* a policy, no record, or the TXT lookup itself failed */
        STS_FAILURE_FETCH,   /* sts-policy-fetch-error: address, connection, HTTP */
        STS_FAILURE_INVALID, /* sts-policy-invalid: the body is no valid policy */
        STS_FAILURE_WEBPKI,  /* sts-webpki-invalid: the policy host's certificate */
};

/* The RFC 8460 result type ("sts-policy-fetch-error", ...); NULL for NONE. */
const char *sts_failure_str(enum sts_failure f);

enum sts_answer {
        STS_NONE,     /* no policy applies: carry on without MTA-STS */
        STS_POLICY,   /* *policy is the domain's policy (mode none included) */
        STS_PENDING,  /* a lookup runs: the callback comes when it ends */
        STS_TEMPFAIL, /* out of descriptors here: defer (4xx), ask again later */
};

/* Seconds on a clock that does not jump (util.h: util_mono_secs()). */
typedef int64_t (*sts_clock_cb)(void);

struct sts_conf {
        struct uv_loop_s *loop;
        struct conn_loop *cloop;
        struct tls_ctx
            *tls; /* client role, verify_record, the listener's trust anchors */
        const struct log *log;
        const char *listener;  /* for log lines */
        struct learned *store; /* STS_STORE_FILE, or NULL: memory only */
        unsigned cache_max;    /* domains held in memory; 0: STS_CACHE_MAX */
        sts_clock_cb mono;     /* for durations; NULL: util_mono_secs() (tests) */
};

struct sts *sts_new(const struct sts_conf *conf);
/* The domains held in memory. */
unsigned sts_count(const struct sts *s);
/* Fetch policies with this context from now on (its owner reloaded it). */
void sts_set_tls(struct sts *s, struct tls_ctx *tls);
/*
 * Stop every lookup and fetch under way (waiting callers are called back
 * and get STS_NONE from then on). The loop then closes what remains.
 */
void sts_shutdown(struct sts *s);
/* After sts_shutdown() and the loop has run down. s may be NULL. */
void sts_free(struct sts *s);

/*
 * domain: lower case, no trailing dot; an address literal ("[192.0.2.1]")
 * has no policy (STS_NONE, nothing looked up). now: unix seconds. On STS_PENDING,
 * *w is the caller's wait (cb(arg) comes once, then *w is gone; see
 * pending.h).
 */
enum sts_answer sts_get(struct sts *s, const char *domain, int64_t now,
                        const struct mtasts_policy **policy, pending_cb cb, void *arg,
                        struct pending_wait **w);

/*
 * Why the domain has no policy now, when its last lookup found a TXT record
 * and then failed (and no cached policy was left): the kind, and *why in
 * words (printable ASCII). STS_FAILURE_NONE otherwise.
 */
enum sts_failure sts_failure(struct sts *s, const char *domain, const char **why);

/*
 * Make every cached domain be looked up again at its next use (SIGHUP): a
 * valid policy keeps serving while its TXT record is checked in the
 * background; a domain cached as having none is looked up before it is
 * judged. Returns the number of domains in the cache.
 */
unsigned sts_recheck(struct sts *s);

/*
 * Keep every policy fresh, whether or not it is used (RFC 8461 section
 * 3.3: refresh cached policies, about daily): from this call on, each
 * valid policy is fetched again when due (as at a use, above), at most
 * STS_SWEEP_FETCHES at a time, on a timer of its own; a failed try keeps
 * the policy and is tried again after STS_RETRY_SECS (or half the refresh
 * period). With a store, every policy in it that this process does not
 * hold is read in first (the whole store, a page at a time; once the cache
 * is full, only those due for their refresh, half a cache at most per
 * call), and only the sweeper does the sweep (workers
 * share the store: one of them keeps it fresh, the others take from it
 * what they cannot fetch, above); without a store, each process sweeps
 * its own cache. Call it now and then: it picks up what other processes
 * stored. Returns the number of policies read in.
 */
unsigned sts_sweep(struct sts *s, bool sweeper);

#endif
