/*
 * dns: the lookups mailward makes itself (MTA-STS: the _mta-sts TXT record
 * and the policy host's addresses), answered on the event loop.
 *
 * Each lookup runs in libuv's thread pool with the system's resolver
 * (res_nquery() for TXT, getaddrinfo() for addresses), so /etc/resolv.conf,
 * its timeouts and retries and, for addresses, nsswitch apply as for every
 * other program on the host. The callback comes from the loop, once, never
 * from inside dns_txt() or dns_addr(). A lookup in the pool cannot be
 * stopped: dns_cancel() only makes sure its callback never comes, and the
 * request is freed when the lookup returns.
 *
 * Besides conn, the one module of lib/ that includes uv.h: it does no
 * socket I/O of its own on the loop.
 *
 * Status codes given to the callbacks: 0 (an answer; for TXT, n may be 0
 * when the name exists with other records only), -ENOENT (the name does not
 * exist, or has no record of the type: NXDOMAIN or NODATA), -EAGAIN (the
 * resolver failed for now: SERVFAIL, timeout, no server), -EINVAL (a bad
 * name, or an answer that does not parse), or another negative code.
 */
#ifndef MAILWARD_DNS_H
#define MAILWARD_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct uv_loop_s;
struct dns_req;

#define DNS_ADDR_MAX 8  /* addresses kept from one getaddrinfo() answer */
#define DNS_RR_MAX   32 /* records kept from one dns_query() answer */

/*
 * TXT records: each is the concatenation of its character-strings (any
 * bytes, not NUL-terminated; lens[i] bytes). Valid during the callback only.
 */
struct dns_txt {
        size_t n;
        const char *const *recs;
        const size_t *lens;
};

typedef void (*dns_txt_cb)(void *arg, int status, const struct dns_txt *txt);
typedef void (*dns_addr_cb)(void *arg, int status, const struct sockaddr_storage *addrs,
                            size_t n);

/* Look up name's TXT records (class IN). NULL only when name is too long. */
struct dns_req *dns_txt(struct uv_loop_s *loop, const char *name, dns_txt_cb cb,
                        void *arg);
/* name's addresses (IPv4 and IPv6, in getaddrinfo()'s order), with port set. */
struct dns_req *dns_addr(struct uv_loop_s *loop, const char *name, unsigned port,
                         dns_addr_cb cb, void *arg);
/*
 * DNSSEC-aware lookups (DANE): the query asks for DNSSEC records (EDNS0, the
 * DO bit) and for the AD bit: `secure` is true when the resolver says it
 * validated the answer. That is only as good as the path to the resolver,
 * which nothing authenticates: anyone on it can set the AD bit on records
 * of their own. So the AD bit is believed only when every nameserver in
 * resolv.conf is on this host (127.0.0.0/8, ::1; also glibc's default when
 * none is named), or when resolv.conf says "options trust-ad", by which
 * the administrator vouches for the path (glibc's own option); otherwise
 * every answer is insecure (ad_ignored says so).
 *
 * DNS_T_ADDR asks for A and AAAA in one request: the answer holds both, and
 * is secure only when every part that has records is. A negative answer
 * (-ENOENT) still says in `secure` whether the denial was validated.
 */
enum dns_type {
        DNS_T_MX,
        DNS_T_ADDR,
        DNS_T_TLSA,
};

struct dns_rr {
        unsigned pref;                /* MX: preference */
        char name[256];               /* MX: the exchange, lower case, no trailing dot */
        struct sockaddr_storage addr; /* ADDR: the address (port 0) */
        unsigned char usage, selector, mtype; /* TLSA */
        const unsigned char *data;            /* TLSA: association data */
        size_t len;
};

struct dns_rrset {
        bool secure;
        /* the resolver's AD bit was not believed (see above): secure is false */
        bool ad_ignored;
        /* the records' owner: not the name asked when the resolver followed a
         * CNAME (lower case, no trailing dot); "" without records */
        const char *name;
        size_t n;
        const struct dns_rr *rr; /* MX sorted by preference; valid during the callback */
};

typedef void (*dns_rr_cb)(void *arg, int status, const struct dns_rrset *set);

/* Look name up with DNSSEC. NULL only when name is too long. */
struct dns_req *dns_query(struct uv_loop_s *loop, const char *name, enum dns_type type,
                          dns_rr_cb cb, void *arg);

/* The callback will not come; r is freed when its lookup returns. */
void dns_cancel(struct dns_req *r);

/* The status code in words ("no such name", ...). */
const char *dns_strerror(int status);

#endif
