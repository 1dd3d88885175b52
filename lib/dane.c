/*
 * dane: TLSA records for (recipient domain, server address), looked up and
 * cached. See dane.h.
 *
 * A lookup is one job per cache entry that walks: MX, the MX hosts'
 * addresses one after the other, (when none has the destination) the relay
 * host's addresses, TLSA. Every way out goes through dane_job_end(), which
 * stores the result in the entry and calls back the waiting.
 */
#include "dane.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "log.h"
#include "lru.h"
#include "util.h"

#define DANE_JOB_MAGIC 0x64616e6aU
#define DANE_BUCKETS   1024

struct dane_entry {
        struct dane_entry *next; /* hash chain */
        struct lru_link use;     /* the order of last use (lru.h) */
        char domain[256];
        struct sockaddr_storage dst;
        bool have; /* res holds a result */
        struct dane_result res;
        int64_t expires; /* dane_get()'s clock: the result holds before this */
        struct dane_job *job;
        struct pending waits;
};

struct dane_job {
        unsigned magic;
        struct dane *d;
        struct dane_entry *e;
        struct dns_req *dns;
        int64_t started; /* dane_get()'s now: the result's lifetime counts from it */
        char hosts[DANE_MX_HOSTS][256];
        size_t nhosts, next;
        bool addr_failed;   /* a host's addresses could not be looked up */
        bool mx_insecure;   /* the MX answer was not validated: no TLSA lookup */
        bool mx_ad_ignored; /* ... because the resolver's AD bit was not believed */
        bool ad_ignored;    /* the result is "none" for that reason */
        bool alias_tried;   /* TLSA at the CNAME's target had none: now the host's */
        unsigned port;      /* of the TLSA name: 25, or the relay host's */
        int mx_error; /* the MX lookup failed with it (a relay host is asked next) */
        struct dane_result res;
};

struct dane {
        struct dane_conf conf;
        char relay_host[256]; /* "" when none */
        struct dane_entry *buckets[DANE_BUCKETS];
        struct lru_list used; /* the entries, by last use */
        unsigned count;
        unsigned max;      /* conf.cache_max, or DANE_CACHE_MAX */
        unsigned evict_at; /* dane_evict() when count reaches it */
        bool closing;
        bool ad_warned; /* dane_ad_ignored logged (again after dane_flush()) */
};

const char *dane_state_str(enum dane_state s)
{
        switch (s) {
        case DANE_NONE:
                return "none";
        case DANE_TLSA:
                return "tlsa";
        case DANE_FAILED:
                return "failed";
        }
        return "invalid";
}

static bool dane_same_ip(const struct sockaddr_storage *a,
                         const struct sockaddr_storage *b)
{
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET)
                return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                              &((const struct sockaddr_in *)b)->sin_addr,
                              sizeof(struct in_addr)) == 0;
        if (a->ss_family == AF_INET6)
                return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                              &((const struct sockaddr_in6 *)b)->sin6_addr,
                              sizeof(struct in6_addr)) == 0;
        return false;
}

static unsigned dane_port(const struct sockaddr_storage *a)
{
        if (a->ss_family == AF_INET)
                return ntohs(((const struct sockaddr_in *)a)->sin_port);
        if (a->ss_family == AF_INET6)
                return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
        return 0;
}

static unsigned dane_hash(const char *domain, const struct sockaddr_storage *dst)
{
        uint32_t h = 2166136261U;
        const unsigned char *p;
        size_t n;

        for (p = (const unsigned char *)domain; *p != '\0'; p++)
                h = (h ^ *p) * 16777619U;
        if (dst->ss_family == AF_INET) {
                p = (const unsigned char *)&((const struct sockaddr_in *)dst)->sin_addr;
                n = sizeof(struct in_addr);
        } else {
                p = (const unsigned char *)&((const struct sockaddr_in6 *)dst)->sin6_addr;
                n = sizeof(struct in6_addr);
        }
        while (n-- > 0)
                h = (h ^ *p++) * 16777619U;
        return h % DANE_BUCKETS;
}

static void dane_result_cleanup(struct dane_result *r)
{
        for (size_t i = 0; i < r->ntlsa; i++)
                free(r->tlsa[i].data);
        memset(r, 0, sizeof(*r));
}

struct dane *dane_new(const struct dane_conf *conf)
{
        struct dane *d = xcalloc(1, sizeof(*d));

        d->conf = *conf;
        d->max = conf->cache_max > 0 ? conf->cache_max : DANE_CACHE_MAX;
        d->evict_at = d->max;
        if (conf->relay_host != NULL) {
                size_t n = 0;

                /* As the DNS answers name it: lower case, no trailing dot. */
                for (const char *c = conf->relay_host;
                     *c != '\0' && n + 1 < sizeof(d->relay_host); c++)
                        d->relay_host[n++] = (char)tolower((unsigned char)*c);
                if (n > 0 && d->relay_host[n - 1] == '.')
                        n--;
                d->relay_host[n] = '\0';
        }
        d->conf.relay_host = NULL;
        return d;
}

static void dane_entry_free(struct dane_entry *e)
{
        dane_result_cleanup(&e->res);
        free(e);
}

void dane_free(struct dane *d)
{
        if (d == NULL)
                return;
        for (unsigned i = 0; i < DANE_BUCKETS; i++) {
                struct dane_entry *e, *next;

                for (e = d->buckets[i]; e != NULL; e = next) {
                        next = e->next;
                        if (e->job != NULL || !pending_empty(&e->waits))
                                fatalx("dane_free: %s still looked up or waited for",
                                       e->domain);
                        dane_entry_free(e);
                }
        }
        free(d);
}

static struct dane_entry *dane_find(const struct dane *d, const char *domain,
                                    const struct sockaddr_storage *dst)
{
        struct dane_entry *e;

        for (e = d->buckets[dane_hash(domain, dst)]; e != NULL; e = e->next) {
                if (strcmp(e->domain, domain) == 0 && dane_same_ip(&e->dst, dst) &&
                    dane_port(&e->dst) == dane_port(dst))
                        return e;
        }
        return NULL;
}

/* e becomes the most recently used entry. */
static void dane_touch(struct dane *d, struct dane_entry *e)
{
        lru_touch(&d->used, &e->use);
}

static void dane_drop(struct dane *d, struct dane_entry *e)
{
        struct dane_entry **pp = &d->buckets[dane_hash(e->domain, &e->dst)];

        while (*pp != e)
                pp = &(*pp)->next;
        *pp = e->next;
        lru_unlink(&d->used, &e->use);
        dane_entry_free(e);
        d->count--;
}

/*
 * Make room: the cache is full (count reached evict_at). First every
 * result that has run out goes, then, least recently used first, valid
 * ones (a new lookup at the next use) until an eighth of the room is free;
 * never an entry looked up or waited for, nor the one used last (given out
 * by this dane_get()). The walks are linear, but each frees an eighth of
 * the cache: constant time per key. When lookups under way hold more than
 * that, the next try waits until as many more keys came.
 */
static void dane_evict(struct dane *d, int64_t now)
{
        unsigned low = d->max - (d->max / 8 > 0 ? d->max / 8 : 1);
        struct lru_link *k, *next;

        for (k = d->used.oldest; k != NULL; k = next) {
                struct dane_entry *e = LRU_ENTRY(k, struct dane_entry, use);

                next = k->newer;
                if (e->job == NULL && pending_empty(&e->waits) && now >= e->expires)
                        dane_drop(d, e);
        }
        for (k = d->used.oldest; k != NULL && k != d->used.newest && d->count > low;
             k = next) {
                struct dane_entry *e = LRU_ENTRY(k, struct dane_entry, use);

                next = k->newer;
                if (e->job == NULL && pending_empty(&e->waits))
                        dane_drop(d, e);
        }
        d->evict_at = d->count < d->max ? d->max : d->count + (d->max - low);
}

unsigned dane_count(const struct dane *d)
{
        return d->count;
}

static void dane_set(struct dane_job *j, enum dane_state state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The job's outcome (the TLSA records are in j->res already for DANE_TLSA). */
static void dane_set(struct dane_job *j, enum dane_state state, const char *fmt, ...)
{
        va_list ap;

        j->res.state = state;
        va_start(ap, fmt);
        vsnprintf(j->res.why, sizeof(j->res.why), fmt, ap);
        va_end(ap);
}

/* The job is over: its result goes into the entry, the waiting are called. */
static void dane_job_end(struct dane_job *j)
{
        struct dane *d = j->d;
        struct dane_entry *e = j->e;
        const struct dane_result *r = &j->res;

        if (!d->closing)
                log_emit(
                    d->conf.log, r->state == DANE_FAILED ? LOG_LVL_WARN : LOG_LVL_INFO,
                    NULL,
                    "event=dane_lookup listener=%s domain=%s %s=%s state=%s tlsa=%zu "
                    "why=\"%s\"",
                    d->conf.listener, e->domain, r->relay ? "relay_host" : "mx",
                    r->mx_host[0] ? r->mx_host : "-", dane_state_str(r->state), r->ntlsa,
                    r->why);
        /* A lookup line is at level info, and at level dane mail then goes
         * on with TLS unauthenticated: a resolver elsewhere (one that
         * served before the AD bit was held to trust-ad) would lose DANE
         * unseen. Said once, as a warning, until a SIGHUP. */
        if (!d->closing && j->ad_ignored && !d->ad_warned) {
                d->ad_warned = true;
                log_emit(d->conf.log, LOG_LVL_WARN, NULL,
                         "event=dane_ad_ignored listener=%s note=\"DNSSEC answers are "
                         "not believed: a nameserver in /etc/resolv.conf is not on this "
                         "host and it has no options trust-ad, so no TLSA record is used "
                         "(SIGHUP after changing it)\"",
                         d->conf.listener);
        }
        dane_result_cleanup(&e->res);
        e->res = j->res;
        e->have = true;
        e->expires =
            j->started + (r->state == DANE_FAILED ? DANE_RETRY_SECS : DANE_CACHE_SECS);
        e->job = NULL;
        j->magic = 0;
        free(j);
        if (!d->closing)
                pending_deliver(&e->waits);
}

static bool dane_tlsa_query(struct dane_job *j, const char *host);

/* Why an answer is not validated, when the resolver said it was (dns.h). */
static const char *dane_insecure(struct dane_job *j, bool ad_ignored)
{
        j->ad_ignored = j->ad_ignored || ad_ignored;
        return ad_ignored ? "(insecure: the AD bit of a resolver not on this host "
                            "is believed only with options trust-ad)"
                          : "(insecure)";
}

static void dane_tlsa_cb(void *arg, int status, const struct dns_rrset *set)
{
        struct dane_job *j = arg;
        struct dane_result *r;

        UTIL_CHECK_MAGIC(j, DANE_JOB_MAGIC);
        j->dns = NULL;
        r = &j->res;
        if (status == -ENOENT && !j->alias_tried &&
            strcmp(r->tlsa_host, r->mx_host) != 0) {
                /* None at the CNAME's target: the MX host's own name next. */
                j->alias_tried = true;
                if (dane_tlsa_query(j, r->mx_host))
                        return;
        }
        if (status == -ENOENT) {
                dane_set(j, DANE_NONE, "no TLSA records at _%u._tcp.%s", j->port,
                         r->tlsa_host);
        } else if (status != 0) {
                dane_set(j, DANE_FAILED, "TLSA lookup for _%u._tcp.%s: %s", j->port,
                         r->tlsa_host, dns_strerror(status));
        } else if (!set->secure) {
                dane_set(j, DANE_NONE, "TLSA records of %s not validated %s",
                         r->tlsa_host, dane_insecure(j, set->ad_ignored));
        } else {
                for (size_t i = 0; i < set->n && r->ntlsa < DANE_TLSA_MAX; i++) {
                        struct dane_tlsa *t = &r->tlsa[r->ntlsa];

                        if (set->rr[i].len > DANE_TLSA_DATA)
                                continue;
                        t->usage = set->rr[i].usage;
                        t->selector = set->rr[i].selector;
                        t->mtype = set->rr[i].mtype;
                        t->len = set->rr[i].len;
                        t->data = xmalloc(t->len + 1);
                        memcpy(t->data, set->rr[i].data, t->len);
                        r->ntlsa++;
                }
                dane_set(j, DANE_TLSA, "%zu TLSA records at _%u._tcp.%s", r->ntlsa,
                         j->port, r->tlsa_host);
        }
        dane_job_end(j);
}

/* Ask for host's TLSA records (the TLSA base domain). false: a name too long. */
static bool dane_tlsa_query(struct dane_job *j, const char *host)
{
        char name[300];

        snprintf(j->res.tlsa_host, sizeof(j->res.tlsa_host), "%s", host);
        snprintf(name, sizeof(name), "_%u._tcp.%s", j->port, host);
        j->dns = dns_query(j->d->conf.loop, name, DNS_T_TLSA, dane_tlsa_cb, j);
        return j->dns != NULL;
}

static void dane_addr_next(struct dane_job *j);

/*
 * Neither an MX host nor the relay host has the destination: no DANE here,
 * or nothing can be said (a lookup failed). relay_error: the relay host's
 * address lookup failed (NULL: it did not, or there is no relay host).
 */
static void dane_not_mx(struct dane_job *j, const char *relay_error)
{
        const struct dane *d = j->d;
        const char *nor = d->relay_host[0] != '\0' ? ", nor of relay host " : "";

        if (d->conf.direct && relay_error != NULL)
                dane_set(j, DANE_FAILED, "addresses of %s: %s", d->relay_host,
                         relay_error);
        else if (d->conf.direct)
                dane_set(j, DANE_NONE, "the destination is not an address of %s",
                         d->relay_host);
        else if (j->mx_error != 0)
                dane_set(j, DANE_FAILED, "MX lookup for %s: %s%s%s", j->e->domain,
                         dns_strerror(j->mx_error),
                         d->relay_host[0] != '\0'
                             ? "; the destination is not an address of relay host "
                             : "",
                         d->relay_host);
        else if (j->addr_failed && !j->mx_insecure)
                dane_set(j, DANE_FAILED,
                         "the destination is not among the addresses found for the MX "
                         "hosts of %s%s%s, and a lookup failed",
                         j->e->domain, nor, d->relay_host);
        else if (relay_error != NULL)
                dane_set(j, DANE_FAILED,
                         "the destination is not an address of an MX host of %s; "
                         "addresses of relay host %s: %s",
                         j->e->domain, d->relay_host, relay_error);
        else
                dane_set(j, DANE_NONE,
                         "the destination is not an address of an MX host of %s%s%s",
                         j->e->domain, nor, d->relay_host);
        dane_job_end(j);
}

static void dane_relay_cb(void *arg, int status, const struct dns_rrset *set);

/*
 * Whether one of set's addresses is the destination; when it is, the job
 * goes on from there: host (what = "MX host" or "relay host") is the
 * destination's host, and its TLSA records are asked for when its
 * addresses are validated (a validated CNAME: its target first), or the
 * job ends.
 */
static bool dane_host_found(struct dane_job *j, const struct dns_rrset *set,
                            const char *host, const char *what)
{
        size_t i;

        for (i = 0; i < set->n && !dane_same_ip(&set->rr[i].addr, &j->e->dst); i++)
                ;
        if (i == set->n)
                return false;
        snprintf(j->res.mx_host, sizeof(j->res.mx_host), "%s", host);
        if (j->mx_insecure && !j->res.relay)
                dane_set(j, DANE_NONE, "MX records of %s not validated %s", j->e->domain,
                         dane_insecure(j, j->mx_ad_ignored));
        else if (!set->secure)
                dane_set(j, DANE_NONE, "addresses of %s %s not validated%s%s", what, host,
                         set->ad_ignored ? " " : "",
                         set->ad_ignored ? dane_insecure(j, true) : "");
        else if (dane_tlsa_query(j, set->name[0] != '\0' ? set->name : host))
                return true;
        else
                dane_set(j, DANE_NONE, "%s name %s too long", what, host);
        dane_job_end(j);
        return true;
}

/* After the MX hosts: the relay host's addresses, when there is one. */
static void dane_relay_next(struct dane_job *j)
{
        if (j->d->relay_host[0] != '\0') {
                j->dns = dns_query(j->d->conf.loop, j->d->relay_host, DNS_T_ADDR,
                                   dane_relay_cb, j);
                if (j->dns != NULL)
                        return;
        }
        dane_not_mx(j, NULL);
}

/*
 * The relay host's addresses: when one is the destination, the relay host
 * is the TLSA base domain (RFC 7672 section 2.2.2 and 2.2.3: validated
 * addresses, a CNAME's target first), at the destination's port.
 */
static void dane_relay_cb(void *arg, int status, const struct dns_rrset *set)
{
        struct dane_job *j = arg;
        const char *host;

        UTIL_CHECK_MAGIC(j, DANE_JOB_MAGIC);
        j->dns = NULL;
        host = j->d->relay_host;
        if (status == 0) {
                /* Its TLSA records are at the destination's port. */
                j->res.relay = true;
                j->port = dane_port(&j->e->dst);
                if (dane_host_found(j, set, host, "relay host"))
                        return;
                j->res.relay = false;
                j->port = 25;
        }
        dane_not_mx(j, status != 0 && status != -ENOENT ? dns_strerror(status) : NULL);
}

static void dane_addr_cb(void *arg, int status, const struct dns_rrset *set)
{
        struct dane_job *j = arg;
        const char *host;

        UTIL_CHECK_MAGIC(j, DANE_JOB_MAGIC);
        j->dns = NULL;
        host = j->hosts[j->next - 1];
        if (status == -EAGAIN || status == -EINVAL)
                j->addr_failed = true;
        if (status == 0 && dane_host_found(j, set, host, "MX host"))
                return;
        dane_addr_next(j);
}

/* Look at the next MX host's addresses, or end: none has the destination. */
static void dane_addr_next(struct dane_job *j)
{
        while (j->next < j->nhosts) {
                const char *host = j->hosts[j->next++];

                j->dns = dns_query(j->d->conf.loop, host, DNS_T_ADDR, dane_addr_cb, j);
                if (j->dns != NULL)
                        return;
        }
        dane_relay_next(j);
}

static void dane_mx_cb(void *arg, int status, const struct dns_rrset *set)
{
        struct dane_job *j = arg;
        const char *domain;

        UTIL_CHECK_MAGIC(j, DANE_JOB_MAGIC);
        j->dns = NULL;
        domain = j->e->domain;
        if (status != 0 && status != -ENOENT) {
                j->mx_error = status;
                dane_relay_next(j);
                return;
        }
        /*
         * Not validated: no DANE, but the MX host is still looked for (for
         * verify, whose "hostname" trusts DNS as Postfix's does).
         */
        j->mx_insecure = !set->secure;
        j->mx_ad_ignored = set->ad_ignored;
        if (status == -ENOENT) {
                /* No MX: the domain is its own host (RFC 5321 section 5.1). */
                snprintf(j->hosts[0], sizeof(j->hosts[0]), "%s", domain);
                j->nhosts = 1;
        } else {
                for (size_t i = 0; i < set->n && j->nhosts < DANE_MX_HOSTS; i++)
                        snprintf(j->hosts[j->nhosts++], sizeof(j->hosts[0]), "%s",
                                 set->rr[i].name);
        }
        dane_addr_next(j);
}

static void dane_job_start(struct dane *d, struct dane_entry *e, int64_t now)
{
        struct dane_job *j = xcalloc(1, sizeof(*j));

        j->magic = DANE_JOB_MAGIC;
        j->d = d;
        j->e = e;
        j->started = now;
        j->port = 25;
        e->job = j;
        if (d->conf.direct) {
                dane_relay_next(j);
                return;
        }
        j->dns = dns_query(d->conf.loop, e->domain, DNS_T_MX, dane_mx_cb, j);
        if (j->dns == NULL) {
                dane_set(j, DANE_NONE, "domain name too long");
                dane_job_end(j);
        }
}

enum dane_answer dane_get(struct dane *d, const char *domain,
                          const struct sockaddr_storage *dst, int64_t now,
                          const struct dane_result **res, pending_cb cb, void *arg,
                          struct pending_wait **w)
{
        static const struct dane_result none = {.state = DANE_NONE,
                                                .why = "not looked up"};
        struct dane_entry *e = dane_find(d, domain, dst);
        unsigned h;

        *res = &none;
        *w = NULL;
        if (d->closing || domain[0] == '\0' || strlen(domain) >= sizeof(e->domain) ||
            (dst->ss_family != AF_INET && dst->ss_family != AF_INET6))
                return DANE_READY;
        if (e != NULL) {
                dane_touch(d, e);
                if (e->have && now < e->expires) {
                        *res = &e->res;
                        return DANE_READY;
                }
        } else {
                if (d->count >= d->evict_at)
                        dane_evict(d, now);
                e = xcalloc(1, sizeof(*e));
                snprintf(e->domain, sizeof(e->domain), "%s", domain);
                e->dst = *dst;
                h = dane_hash(domain, dst);
                e->next = d->buckets[h];
                d->buckets[h] = e;
                d->count++;
                dane_touch(d, e);
        }
        if (e->job == NULL) {
                dane_job_start(d, e, now);
                if (e->job == NULL) {
                        *res = &e->res;
                        return DANE_READY;
                }
        }
        *w = pending_add(&e->waits, cb, arg);
        return DANE_PENDING;
}

unsigned dane_flush(struct dane *d)
{
        for (unsigned i = 0; i < DANE_BUCKETS; i++) {
                for (struct dane_entry *e = d->buckets[i]; e != NULL; e = e->next)
                        e->expires = 0;
        }
        d->ad_warned = false;
        return d->count;
}

void dane_shutdown(struct dane *d)
{
        d->closing = true;
        for (unsigned i = 0; i < DANE_BUCKETS; i++) {
                for (struct dane_entry *e = d->buckets[i]; e != NULL; e = e->next) {
                        struct dane_job *j = e->job;

                        pending_clear(&e->waits);
                        if (j == NULL)
                                continue;
                        dns_cancel(j->dns);
                        j->dns = NULL;
                        dane_set(j, DANE_FAILED, "shutting down");
                        dane_job_end(j);
                }
        }
}
