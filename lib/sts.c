/*
 * sts: MTA-STS policies, looked up, fetched and cached. See sts.h.
 *
 * A fetch is one object per domain that walks: TXT lookup, address lookup,
 * connect (each address in turn), TLS, GET, read to the end, parse. Every
 * way out goes through sts_fetch_end(), which updates the domain's entry
 * and calls back whoever waits. While it owns a conn, a fetch ends only
 * once the conn is closed (CONN_EV_CLOSED), so nothing outlives it.
 */
#include "sts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "dns.h"
#include "learned.h"
#include "log.h"
#include "lru.h"
#include "pending.h"
#include "tls.h"
#include "util.h"

#define STS_FETCH_MAGIC  0x73747366U
#define STS_BUCKETS      1024
#define STS_DOMAIN_MAX   253
#define STS_HEADERS_MAX  16384
#define STS_RESPONSE_MAX (MTASTS_BODY_MAX + STS_HEADERS_MAX)
#define STS_PATH         "/.well-known/mta-sts.txt"
#define STS_NEVER        (INT64_MIN / 4) /* checked: long before any sts_mono() */
#define STS_SWEEP_PAGE   1024            /* store keys read at a time */

struct sts_entry {
        struct sts_entry *next; /* hash chain */
        struct lru_link use;    /* the order of last use (lru.h) */
        char domain[STS_DOMAIN_MAX + 1];
        bool have_policy;
        bool stored; /* the store holds the policy as well (sts_evict()) */
        struct mtasts_policy policy;
        char id[MTASTS_ID_MAX + 1];
        int64_t expires; /* the policy is valid before this (a date: stored) */
        /* On the clock that does not jump (sts_mono()): durations only. */
        int64_t checked;          /* the last lookup ended then; STS_NEVER: none did */
        int64_t none_until;       /* without a valid policy: no lookup before this */
        int64_t local_until;      /* STS_TEMPFAIL before this (STS_LOCAL_SECS) */
        enum sts_failure failure; /* without a policy: why (RFC 8460) */
        char failure_why[256];
        struct sts_fetch *fetch;
        struct pending waits;
};

struct sts_fetch {
        unsigned magic;
        struct sts *s;
        struct sts_entry *e;
        struct dns_req *dns;
        struct conn *c;
        bool connected; /* the current address answered */
        bool try_next;  /* once the conn is closed, connect to the next address */
        bool no_record; /* the domain has no MTA-STS record */
        bool done;      /* an outcome is set; what is left is closing the conn */
        bool local;     /* no descriptor to connect with: not the domain's failure */
        struct sockaddr_storage addr[DNS_ADDR_MAX];
        size_t naddr, next;
        uint64_t deadline_ms;
        char host[STS_DOMAIN_MAX + 16]; /* mta-sts.DOMAIN */
        char id[MTASTS_ID_MAX + 1];
        char error[256];       /* why it failed; "" when it did not */
        enum sts_failure kind; /* what a failure counts as, from the TXT record on */
};

struct sts {
        struct sts_conf conf;
        struct sts_entry *buckets[STS_BUCKETS];
        struct lru_list used; /* the entries, by last use */
        unsigned count;
        unsigned max;      /* conf.cache_max, or STS_CACHE_MAX */
        unsigned evict_at; /* sts_evict() when count reaches it */
        unsigned fetches;  /* under way */
        bool closing;
        bool sweeping;    /* sts_sweep() was called: the timer keeps it going */
        uv_timer_t timer; /* the next refresh due (sts_sweep_arm()) */
};

static uint64_t sts_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Seconds on a clock that no change of the date moves: when a domain was
 * last looked up and how long it stays "none" are durations; a date set
 * back by a day would otherwise hold a failed domain at "none", and every
 * policy unchecked and unrefreshed, for that day. A policy's expiry is a
 * date (it is stored, and outlives the process): time(NULL).
 */
static int64_t sts_mono(const struct sts *s)
{
        return s->conf.mono != NULL ? s->conf.mono() : util_mono_secs();
}

static unsigned sts_hash(const char *domain)
{
        uint32_t h = 2166136261U;

        for (; *domain != '\0'; domain++)
                h = (h ^ (unsigned char)*domain) * 16777619U;
        return h % STS_BUCKETS;
}

struct sts *sts_new(const struct sts_conf *conf)
{
        struct sts *s = xcalloc(1, sizeof(*s));

        s->conf = *conf;
        s->max = conf->cache_max > 0 ? conf->cache_max : STS_CACHE_MAX;
        s->evict_at = s->max;
        uv_timer_init(s->conf.loop, &s->timer);
        s->timer.data = s;
        return s;
}

void sts_set_tls(struct sts *s, struct tls_ctx *tls)
{
        s->conf.tls = tls;
}

static void sts_entry_free(struct sts_entry *e)
{
        if (e->have_policy)
                mtasts_policy_cleanup(&e->policy);
        free(e);
}

void sts_free(struct sts *s)
{
        if (s == NULL)
                return;
        if (!uv_is_closing((uv_handle_t *)&s->timer))
                fatalx("sts_free: before sts_shutdown()");
        for (unsigned i = 0; i < STS_BUCKETS; i++) {
                struct sts_entry *e, *next;

                for (e = s->buckets[i]; e != NULL; e = next) {
                        next = e->next;
                        if (e->fetch != NULL || !pending_empty(&e->waits))
                                fatalx("sts_free: %s still looked up or waited for",
                                       e->domain);
                        sts_entry_free(e);
                }
        }
        free(s);
}

static struct sts_entry *sts_find(const struct sts *s, const char *domain)
{
        struct sts_entry *e;

        for (e = s->buckets[sts_hash(domain)]; e != NULL; e = e->next) {
                if (strcmp(e->domain, domain) == 0)
                        return e;
        }
        return NULL;
}

static bool sts_valid(const struct sts_entry *e, int64_t now)
{
        return e->have_policy && now < e->expires;
}

/*
 * How often a valid policy in use is fetched again, its id unchanged (RFC
 * 8461 section 3.3: refresh before it expires, about once a day, so that
 * blocking the one fetch at its expiry cannot take it away): daily, or at
 * half its lifetime when that is shorter.
 */
static int64_t sts_life(const struct sts_entry *e)
{
        return e->policy.max_age > STS_MIN_SECS ? (int64_t)e->policy.max_age
                                                : STS_MIN_SECS;
}

static int64_t sts_refresh_every(const struct sts_entry *e)
{
        return sts_life(e) / 2 < STS_REFRESH_SECS ? sts_life(e) / 2 : STS_REFRESH_SECS;
}

/* Whether e's valid policy is due for that refresh (fetched at expiry - life). */
static bool sts_refresh_due(const struct sts_entry *e, int64_t now)
{
        return now - (e->expires - sts_life(e)) >= sts_refresh_every(e);
}

/* e becomes the most recently used entry. */
static void sts_touch(struct sts *s, struct sts_entry *e)
{
        lru_touch(&s->used, &e->use);
}

static void sts_drop(struct sts *s, struct sts_entry *e)
{
        struct sts_entry **pp = &s->buckets[sts_hash(e->domain)];

        while (*pp != e)
                pp = &(*pp)->next;
        *pp = e->next;
        lru_unlink(&s->used, &e->use);
        sts_entry_free(e);
        s->count--;
}

/* Neither looked up nor waited for. */
static bool sts_idle(const struct sts_entry *e)
{
        return e->fetch == NULL && pending_empty(&e->waits);
}

/*
 * Make room: the cache is full (count reached evict_at). First every entry
 * that says nothing any more (no valid policy, no "none" running) goes;
 * then, least recently used first, those that can be had again, until an
 * eighth of the room is free: a "none" (looked up again at the next use)
 * and a valid policy that the store holds too (read from it again at the
 * next use, sts_store_load()). Never one that is looked up or waited for,
 * nor the one used last (given out by this sts_get()), nor a valid policy
 * that the store does not hold (there is no store, or writing to it
 * failed): dropping that would turn the domain's policy into none, which
 * is what whoever blocks the fetch wants. Those stay beyond the limit, and
 * the next try waits until as many more domains came as an eviction frees,
 * so that a cache full of them costs no walk at every new domain. The
 * walks are linear, but each frees an eighth of the cache: constant time
 * per domain.
 */
static void sts_evict(struct sts *s, int64_t now)
{
        unsigned low = s->max - (s->max / 8 > 0 ? s->max / 8 : 1);
        int64_t mono = sts_mono(s);
        struct lru_link *k, *next;

        for (k = s->used.oldest; k != NULL; k = next) {
                struct sts_entry *e = LRU_ENTRY(k, struct sts_entry, use);

                next = k->newer;
                if (sts_idle(e) && !sts_valid(e, now) && mono >= e->none_until)
                        sts_drop(s, e);
        }
        for (k = s->used.oldest; k != NULL && k != s->used.newest && s->count > low;
             k = next) {
                struct sts_entry *e = LRU_ENTRY(k, struct sts_entry, use);

                next = k->newer;
                if (sts_idle(e) && (!sts_valid(e, now) || e->stored))
                        sts_drop(s, e);
        }
        s->evict_at = s->count < s->max ? s->max : s->count + (s->max - low);
}

static struct sts_entry *sts_insert(struct sts *s, const char *domain, int64_t now)
{
        struct sts_entry *e;
        unsigned h = sts_hash(domain);

        if (s->count >= s->evict_at)
                sts_evict(s, now);
        e = xcalloc(1, sizeof(*e));
        snprintf(e->domain, sizeof(e->domain), "%s", domain);
        e->checked = STS_NEVER;
        e->next = s->buckets[h];
        s->buckets[h] = e;
        s->count++;
        sts_touch(s, e);
        return e;
}

unsigned sts_count(const struct sts *s)
{
        return s->count;
}

static void sts_log_policy(const struct sts *s, const struct sts_entry *e)
{
        char mx[512] = "";
        size_t o = 0;

        for (size_t i = 0; i < e->policy.nmx && o < sizeof(mx); i++)
                o += (size_t)snprintf(mx + o, sizeof(mx) - o, "%s%s", i ? " " : "",
                                      e->policy.mx[i]);
        log_emit(s->conf.log, LOG_LVL_INFO, NULL,
                 "event=mta_sts_policy listener=%s domain=%s mode=%s id=%s max_age=%u "
                 "mx=\"%s\"",
                 s->conf.listener, e->domain, mtasts_mode_str(e->policy.mode), e->id,
                 (unsigned)e->policy.max_age, mx);
}

/*
 * A reason for the log: it may quote the peer (certificate names), so
 * anything but printable ASCII, and the quote and backslash, becomes '?'.
 */
static char *sts_printable(char *out, size_t outlen, const char *in)
{
        size_t i;

        for (i = 0; in[i] != '\0' && i + 1 < outlen; i++) {
                unsigned char ch = (unsigned char)in[i];

                out[i] =
                    (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\') ? '?' : (char)ch;
        }
        out[i] = '\0';
        return out;
}

/* The outcome is known (f->error says whether it failed); update the entry,
 * free the fetch, call back the waiting. */
static bool sts_store_reload(struct sts *s, struct sts_entry *e, int64_t now);
static void sts_sweep_arm(struct sts *s, int64_t now);

static void sts_fetch_end(struct sts_fetch *f)
{
        struct sts *s = f->s;
        struct sts_entry *e = f->e;
        int64_t now = (int64_t)time(NULL), mono = sts_mono(s);

        if (f->error[0] != '\0' || f->no_record) {
                bool keep = sts_valid(e, now) || sts_store_reload(s, e, now);
                char esc[300];

                if (f->error[0] != '\0' && !s->closing)
                        log_emit(s->conf.log, LOG_LVL_WARN, NULL,
                                 "event=mta_sts_failed listener=%s domain=%s "
                                 "reason=\"%s\" action=\"%s\"",
                                 s->conf.listener, e->domain,
                                 sts_printable(esc, sizeof(esc), f->error),
                                 keep       ? "the cached policy stays"
                                 : f->local ? "recipients deferred for now"
                                            : "no policy: delivered as without MTA-STS");
                if (!keep && f->local) {
                        e->local_until = mono + STS_LOCAL_SECS;
                } else if (!keep) {
                        if (e->have_policy)
                                mtasts_policy_cleanup(&e->policy);
                        e->have_policy = false;
                        e->stored = false;
                        e->failure = f->error[0] != '\0' ? f->kind : STS_FAILURE_NONE;
                        sts_printable(e->failure_why, sizeof(e->failure_why), f->error);
                        e->none_until = mono + (f->error[0] != '\0' ? STS_RETRY_SECS
                                                                    : STS_NEGATIVE_SECS);
                }
        }
        e->checked = mono;
        e->fetch = NULL;
        s->fetches--;
        f->magic = 0;
        free(f);
        if (!s->closing) {
                pending_deliver(&e->waits);
                sts_sweep_arm(s, now);
        }
}

static void sts_fail(struct sts_fetch *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record why the fetch failed; it ends at once, or once its conn is closed. */
static void sts_fail(struct sts_fetch *f, const char *fmt, ...)
{
        va_list ap;

        if (!f->done) {
                va_start(ap, fmt);
                vsnprintf(f->error, sizeof(f->error), fmt, ap);
                va_end(ap);
                f->done = true;
        }
        f->try_next = false;
        if (f->c != NULL)
                conn_close(f->c, false);
        else
                sts_fetch_end(f);
}

/* Write e's policy, just fetched as body, to the store (see sts.h): true
 * when the store holds it. */
static bool sts_store_save(struct sts *s, const struct sts_entry *e, const char *body,
                           size_t blen)
{
        size_t idlen = strlen(e->id), n = 10 + idlen + blen, o = 0;
        unsigned char *rec = xmalloc(n);
        uint64_t t = (uint64_t)e->expires;
        int r;

        if (s->conf.store == NULL) {
                free(rec);
                return false;
        }
        rec[o++] = STS_STORE_FORMAT;
        for (int i = 7; i >= 0; i--)
                rec[o++] = (unsigned char)(t >> (8 * i));
        rec[o++] = (unsigned char)idlen;
        memcpy(rec + o, e->id, idlen);
        memcpy(rec + o + idlen, body, blen);
        r = learned_put(s->conf.store, e->domain, rec, n);
        if (r != 0)
                log_emit(s->conf.log, LOG_LVL_WARN, NULL,
                         "event=mta_sts_store_failed listener=%s domain=%s error=%d",
                         s->conf.listener, e->domain, r);
        free(rec);
        return r == 0;
}

/*
 * The stored policy of a domain first asked for in this process, or whose
 * copy could not be had again (sts_store_reload()): true with it in e (to
 * be checked again at this use). A record that does not read or
 * has expired is removed.
 */
static bool sts_store_load(struct sts *s, struct sts_entry *e, int64_t now, bool quiet)
{
        unsigned char *rec;
        struct mtasts_policy pol;
        uint64_t t = 0;
        size_t n, idlen;
        void *v;

        if (s->conf.store == NULL || learned_get(s->conf.store, e->domain, &v, &n) != 1)
                return false;
        rec = v;
        if (n < 10 || rec[0] != STS_STORE_FORMAT || (idlen = rec[9]) > MTASTS_ID_MAX ||
            idlen > n - 10)
                goto drop;
        for (int i = 1; i <= 8; i++)
                t = t << 8 | rec[i];
        if (t > (uint64_t)INT64_MAX || (int64_t)t <= now ||
            mtasts_policy_parse((const char *)rec + 10 + idlen, n - 10 - idlen, &pol,
                                NULL, 0) != 0)
                goto drop;
        e->policy = pol;
        e->have_policy = true;
        e->stored = true;
        e->failure = STS_FAILURE_NONE;
        memcpy(e->id, rec + 10, idlen);
        e->id[idlen] = '\0';
        e->expires = (int64_t)t;
        e->checked = STS_NEVER;
        free(v);
        if (!quiet)
                log_emit(s->conf.log, LOG_LVL_INFO, NULL,
                         "event=mta_sts_stored listener=%s domain=%s mode=%s id=%s "
                         "expires_in=%lld",
                         s->conf.listener, e->domain, mtasts_mode_str(e->policy.mode),
                         e->id, (long long)(e->expires - now));
        return true;
drop:
        free(v);
        learned_forget(s->conf.store, e->domain);
        return false;
}

/*
 * Our copy has expired and could not be fetched again: another process
 * (workers share the store) may have stored a fresher one. true with it.
 */
static bool sts_store_reload(struct sts *s, struct sts_entry *e, int64_t now)
{
        if (s->conf.store == NULL)
                return false;
        if (e->have_policy)
                mtasts_policy_cleanup(&e->policy);
        e->have_policy = false;
        e->stored = false;
        return sts_store_load(s, e, now, false);
}

/* The response is all there: take the policy, or say why not. */
static void sts_take(struct sts_fetch *f)
{
        struct buf *in = conn_input(f->c);
        struct sts_entry *e = f->e;
        struct mtasts_policy pol;
        const char *body;
        size_t blen;
        char err[200];

        if (mtasts_http_parse(buf_data(in), buf_len(in), conn_tls_closed(f->c), &body,
                              &blen, err, sizeof(err)) != 0) {
                sts_fail(f, "https://%s%s: %s", f->host, STS_PATH, err);
                return;
        }
        if (mtasts_policy_parse(body, blen, &pol, err, sizeof(err)) != 0) {
                if (!f->done)
                        f->kind = STS_FAILURE_INVALID;
                sts_fail(f, "https://%s%s: %s", f->host, STS_PATH, err);
                return;
        }
        if (e->have_policy)
                mtasts_policy_cleanup(&e->policy);
        e->policy = pol;
        e->have_policy = true;
        snprintf(e->id, sizeof(e->id), "%s", f->id);
        /* Held a minute at least: the sessions that waited for it must find it. */
        e->expires = (int64_t)time(NULL) + sts_life(e);
        sts_log_policy(f->s, e);
        e->stored = sts_store_save(f->s, e, body, blen);
        f->done = true;
        conn_close(f->c, false);
}

/* The policy host's certificate: trusted, unexpired, naming the host. */
static bool sts_check_cert(struct sts_fetch *f)
{
        struct tls_peer peer;
        char why[400];

        tls_peer_info(conn_tls(f->c), &peer);
        if (!peer.has_cert) {
                snprintf(why, sizeof(why), "no certificate");
        } else if (peer.expired) {
                snprintf(why, sizeof(why), "certificate expired");
        } else if (!peer.chain_trusted) {
                snprintf(why, sizeof(why), "certificate not trusted: %s",
                         peer.verify_reason[0] ? peer.verify_reason : "no trust anchor");
        } else {
                for (unsigned i = 0; i < peer.nnames; i++) {
                        if (mtasts_name_allowed(tls_peer_name(&peer, i), f->host))
                                return true;
                }
                snprintf(why, sizeof(why), "certificate does not name the host (%s%s)",
                         peer.nnames ? tls_peer_name(&peer, 0) : "no names",
                         peer.nnames > 1 ? ", ..." : "");
        }
        if (!f->done)
                f->kind = STS_FAILURE_WEBPKI;
        sts_fail(f, "%s: %s", f->host, why);
        return false;
}

static void sts_connect_next(struct sts_fetch *f);

static void sts_conn_cb(struct conn *c, enum conn_event ev, void *arg)
{
        struct sts_fetch *f = arg;
        char req[512];
        int n;

        UTIL_CHECK_MAGIC(f, STS_FETCH_MAGIC);
        /* Once the outcome is known, only the close matters. */
        if ((f->done || f->try_next) && ev != CONN_EV_CLOSED)
                return;
        switch (ev) {
        case CONN_EV_CONNECTED:
                f->connected = true;
                if (conn_start_tls(c, f->s->conf.tls, f->host, NULL, 0) != 0) {
                        sts_fail(f, "%s: cannot start TLS", f->host);
                        return;
                }
                conn_read(c, true);
                break;
        case CONN_EV_TLS_DONE:
                if (!sts_check_cert(f))
                        return;
                /* HTTP/1.0: the server closes at the end, and never chunks. */
                n = snprintf(req, sizeof(req),
                             "GET " STS_PATH " HTTP/1.0\r\nHost: %s\r\n"
                             "User-Agent: mailward/" MAILWARD_VERSION "\r\n"
                             "Accept: text/plain\r\n\r\n",
                             f->host);
                conn_write(c, req, (size_t)n);
                break;
        case CONN_EV_TLS_FAILED:
                sts_fail(f, "%s: TLS handshake failed: %s", f->host, conn_tls_error(c));
                return;
        case CONN_EV_READ:
                if (buf_len(conn_input(c)) > STS_RESPONSE_MAX) {
                        sts_fail(f, "https://%s%s: response larger than %u bytes",
                                 f->host, STS_PATH, (unsigned)STS_RESPONSE_MAX);
                        return;
                }
                break;
        case CONN_EV_EOF:
                if (conn_tls_active(c) && tls_handshake_done(conn_tls(c)))
                        sts_take(f);
                else
                        sts_fail(f, "%s: connection closed during the handshake",
                                 f->host);
                return;
        case CONN_EV_ERROR:
                /* The next address would find no descriptor either. */
                if (!f->connected && conn_errno(c) == UV_EMFILE) {
                        f->local = true;
                        sts_fail(f, "%s: no descriptor to connect with: %s", f->host,
                                 conn_error(c));
                        return;
                }
                if (!f->connected && f->next < f->naddr) {
                        f->try_next = true;
                        conn_close(c, false);
                        return;
                }
                sts_fail(f, "%s: %s", f->host, conn_error(c));
                return;
        case CONN_EV_TIMEOUT:
                sts_fail(f, "%s: timed out after %u s", f->host,
                         (unsigned)(STS_FETCH_TIMEOUT_MS / 1000));
                return;
        case CONN_EV_CLOSED:
                f->c = NULL;
                conn_free(c);
                if (f->try_next && !f->s->closing) {
                        f->try_next = false;
                        sts_connect_next(f);
                } else {
                        sts_fetch_end(f);
                }
                return;
        default:
                break;
        }
        conn_flush(c);
}

static void sts_connect_next(struct sts_fetch *f)
{
        uint64_t now = sts_now_ms();

        if (now >= f->deadline_ms) {
                sts_fail(f, "%s: timed out after %u s", f->host,
                         (unsigned)(STS_FETCH_TIMEOUT_MS / 1000));
                return;
        }
        f->connected = false;
        f->c =
            conn_connect(f->s->conf.cloop, (const struct sockaddr *)&f->addr[f->next++],
                         NULL, sts_conn_cb, f);
        conn_timeout(f->c, f->deadline_ms - now);
}

static void sts_addr_cb(void *arg, int status, const struct sockaddr_storage *addrs,
                        size_t n)
{
        struct sts_fetch *f = arg;

        UTIL_CHECK_MAGIC(f, STS_FETCH_MAGIC);
        f->dns = NULL;
        if (status != 0 || n == 0) {
                sts_fail(f, "%s: %s", f->host, dns_strerror(status ? status : -ENOENT));
                return;
        }
        f->naddr = n < DNS_ADDR_MAX ? n : DNS_ADDR_MAX;
        memcpy(f->addr, addrs, f->naddr * sizeof(f->addr[0]));
        f->next = 0;
        sts_connect_next(f);
}

static void sts_txt_cb(void *arg, int status, const struct dns_txt *txt)
{
        struct sts_fetch *f = arg;
        struct sts_entry *e = f->e;
        char err[200];
        int r;

        UTIL_CHECK_MAGIC(f, STS_FETCH_MAGIC);
        f->dns = NULL;
        if (status == -ENOENT) {
                f->no_record = true;
                sts_fetch_end(f);
                return;
        }
        if (status != 0) {
                sts_fail(f, "_mta-sts.%s TXT: %s", e->domain, dns_strerror(status));
                return;
        }
        r = mtasts_txt_parse(txt->recs, txt->lens, txt->n, f->id, err, sizeof(err));
        if (r == 0) {
                f->no_record = true;
                sts_fetch_end(f);
                return;
        }
        if (r < 0) {
                sts_fail(f, "_mta-sts.%s TXT: %s", e->domain, err);
                return;
        }
        if (sts_valid(e, (int64_t)time(NULL)) && strcmp(f->id, e->id) == 0 &&
            !sts_refresh_due(e, (int64_t)time(NULL))) {
                sts_fetch_end(f); /* unchanged: the cached policy stays */
                return;
        }
        /* A policy is announced: failing to get it is now reported (RFC 8460). */
        f->kind = STS_FAILURE_FETCH;
        f->dns = dns_addr(f->s->conf.loop, f->host, 443, sts_addr_cb, f);
        if (f->dns == NULL)
                sts_fail(f, "%s: name too long", f->host);
}

/* Start looking e's domain up. */
static void sts_fetch_start(struct sts *s, struct sts_entry *e)
{
        struct sts_fetch *f = xcalloc(1, sizeof(*f));
        char name[STS_DOMAIN_MAX + 16];

        f->magic = STS_FETCH_MAGIC;
        f->s = s;
        f->e = e;
        f->deadline_ms = sts_now_ms() + STS_FETCH_TIMEOUT_MS;
        snprintf(f->host, sizeof(f->host), "mta-sts.%s", e->domain);
        snprintf(name, sizeof(name), "_mta-sts.%s", e->domain);
        e->fetch = f;
        s->fetches++;
        f->dns = dns_txt(s->conf.loop, name, sts_txt_cb, f);
        if (f->dns == NULL) {
                /* Too long a name for a record: the domain cannot have one. */
                f->no_record = true;
                sts_fetch_end(f);
        }
}

enum sts_answer sts_get(struct sts *s, const char *domain, int64_t now,
                        const struct mtasts_policy **policy, pending_cb cb, void *arg,
                        struct pending_wait **w)
{
        struct sts_entry *e;
        int64_t mono = sts_mono(s);

        *policy = NULL;
        *w = NULL;
        /* An address literal ("[192.0.2.1]") is no domain: it has no policy. */
        if (s->closing || domain[0] == '\0' || domain[0] == '[' ||
            strlen(domain) > STS_DOMAIN_MAX)
                return STS_NONE;
        e = sts_find(s, domain);
        if (e == NULL) {
                e = sts_insert(s, domain, now);
                sts_store_load(s, e, now, false);
        } else {
                sts_touch(s, e);
        }
        if (sts_valid(e, now)) {
                /* Look for a new id now and then, and refresh the policy when
                 * due; the cached policy serves meanwhile. */
                int64_t every = sts_refresh_every(e);

                if (every > STS_RECHECK_SECS)
                        every = STS_RECHECK_SECS;
                if (e->fetch == NULL && mono - e->checked >= every)
                        sts_fetch_start(s, e);
                *policy = &e->policy;
                return STS_POLICY;
        }
        if (e->fetch == NULL && mono < e->local_until)
                return STS_TEMPFAIL;
        if (e->fetch == NULL && mono < e->none_until)
                return STS_NONE;
        if (e->fetch == NULL) {
                sts_fetch_start(s, e);
                if (e->fetch == NULL)
                        return STS_NONE;
        }
        *w = pending_add(&e->waits, cb, arg);
        return STS_PENDING;
}

const char *sts_failure_str(enum sts_failure f)
{
        switch (f) {
        case STS_FAILURE_FETCH:
                return "sts-policy-fetch-error";
        case STS_FAILURE_INVALID:
                return "sts-policy-invalid";
        case STS_FAILURE_WEBPKI:
                return "sts-webpki-invalid";
        case STS_FAILURE_NONE:
                break;
        }
        return NULL;
}

enum sts_failure sts_failure(struct sts *s, const char *domain, const char **why)
{
        const struct sts_entry *e = sts_find(s, domain);

        *why = "";
        if (e == NULL || e->have_policy || e->failure == STS_FAILURE_NONE)
                return STS_FAILURE_NONE;
        *why = e->failure_why;
        return e->failure;
}

/*
 * When the sweep refreshes e next (INT64_MAX: not before it expires; the
 * next use fetches it then): once due (sts_refresh_due()), and after a
 * failed try not again for STS_RETRY_SECS, or half the refresh period if
 * that is shorter.
 */
static int64_t sts_sweep_next(const struct sts_entry *e, int64_t now, int64_t mono)
{
        int64_t every = sts_refresh_every(e);
        int64_t gap = every / 2 < STS_RETRY_SECS ? every / 2 : STS_RETRY_SECS;
        int64_t t = e->expires - sts_life(e) + every;
        int64_t wait = e->checked + gap - mono; /* since the last try */

        if (wait > 0 && now + wait > t)
                t = now + wait;
        return t < e->expires ? t : INT64_MAX;
}

static void sts_sweep_run(struct sts *s, int64_t now)
{
        int64_t mono = sts_mono(s);

        for (unsigned i = 0; i < STS_BUCKETS && s->fetches < STS_SWEEP_FETCHES; i++) {
                for (struct sts_entry *e = s->buckets[i];
                     e != NULL && s->fetches < STS_SWEEP_FETCHES; e = e->next) {
                        if (e->fetch == NULL && sts_valid(e, now) &&
                            sts_sweep_next(e, now, mono) <= now)
                                sts_fetch_start(s, e);
                }
        }
        sts_sweep_arm(s, now);
}

static void sts_sweep_timer_cb(uv_timer_t *t)
{
        struct sts *s = t->data;

        if (!s->closing)
                sts_sweep_run(s, (int64_t)time(NULL));
}

/* Set the timer for the earliest refresh due; none while the fetches
 * already under way are at the limit (the end of one sets it again). */
static void sts_sweep_arm(struct sts *s, int64_t now)
{
        int64_t next = INT64_MAX, mono = sts_mono(s);

        if (!s->sweeping || s->closing)
                return;
        if (s->fetches < STS_SWEEP_FETCHES) {
                for (unsigned i = 0; i < STS_BUCKETS; i++) {
                        for (struct sts_entry *e = s->buckets[i]; e != NULL;
                             e = e->next) {
                                if (e->fetch == NULL && sts_valid(e, now) &&
                                    sts_sweep_next(e, now, mono) < next)
                                        next = sts_sweep_next(e, now, mono);
                        }
                }
        }
        if (next == INT64_MAX) {
                uv_timer_stop(&s->timer);
                return;
        }
        next = next > now ? next - now : 0;
        uv_timer_start(
            &s->timer, sts_sweep_timer_cb,
            (uint64_t)(next < STS_REFRESH_SECS ? next : STS_REFRESH_SECS) * 1000 + 1, 0);
}

/*
 * Whether the stored policy of a domain that this process does not hold
 * is due for its refresh (tmp: scratch, left without a policy).
 */
static bool sts_sweep_due(struct sts *s, struct sts_entry *tmp, const char *domain,
                          int64_t now, int64_t mono)
{
        bool due;

        snprintf(tmp->domain, sizeof(tmp->domain), "%s", domain);
        tmp->checked = STS_NEVER;
        if (!sts_store_load(s, tmp, now, true))
                return false;
        due = sts_sweep_next(tmp, now, mono) <= now;
        mtasts_policy_cleanup(&tmp->policy);
        tmp->have_policy = false;
        return due;
}

/*
 * The stored policies this process does not hold yet, read in (quietly),
 * the whole store a page at a time: for a domain it has no entry for, and
 * for one whose entry has no valid policy (no record or a failure when
 * this process last looked, or expired) while another process stored one
 * since: passed over, that policy would be refreshed by nobody. Once the
 * cache is full, a domain it has no entry for is read in only when its
 * refresh is due (then the least recently used make room, sts_evict()),
 * at most half a cache of them at a time: the store may hold more domains
 * than the cache, and each is looked at again at the next call.
 */
static unsigned sts_sweep_load(struct sts *s, int64_t now)
{
        char(*names)[LEARNED_NAME_SIZE] = xmalloc(STS_SWEEP_PAGE * sizeof(*names));
        struct sts_entry *tmp = xcalloc(1, sizeof(*tmp));
        char after[LEARNED_NAME_SIZE] = "";
        unsigned loaded = 0, due = 0;
        int64_t mono = sts_mono(s);
        int n;

        do {
                n = learned_keys_after(s->conf.store, after, names, STS_SWEEP_PAGE);
                if (n < 0) {
                        log_emit(s->conf.log, LOG_LVL_WARN, NULL,
                                 "event=mta_sts_store_failed listener=%s error=%d",
                                 s->conf.listener, n);
                        break;
                }
                for (int i = 0; i < n; i++) {
                        struct sts_entry *e = sts_find(s, names[i]);

                        if (e == NULL) {
                                if (s->count >= s->max &&
                                    (due >= s->max / 2 + 1 ||
                                     !sts_sweep_due(s, tmp, names[i], now, mono)))
                                        continue;
                                if (s->count >= s->max)
                                        due++;
                                e = sts_insert(s, names[i], now);
                        } else if (e->fetch != NULL || sts_valid(e, now) ||
                                   !pending_empty(&e->waits)) {
                                continue;
                        } else if (e->have_policy) {
                                mtasts_policy_cleanup(&e->policy);
                                e->have_policy = false;
                                e->stored = false;
                        }
                        if (sts_store_load(s, e, now, true)) {
                                e->none_until =
                                    0; /* once it expires, the next use fetches */
                                loaded++;
                        }
                }
                if (n > 0)
                        memcpy(after, names[n - 1], sizeof(after));
        } while (n == STS_SWEEP_PAGE);
        free(tmp);
        free(names);
        return loaded;
}

unsigned sts_sweep(struct sts *s, bool sweeper)
{
        int64_t now = (int64_t)time(NULL);
        unsigned loaded = 0;

        if (s->closing || (!sweeper && s->conf.store != NULL))
                return 0;
        s->sweeping = true;
        if (s->conf.store != NULL)
                loaded = sts_sweep_load(s, now);
        if (loaded > 0)
                log_emit(s->conf.log, LOG_LVL_INFO, NULL,
                         "event=mta_sts_store_loaded listener=%s domains=%u "
                         "note=\"kept and refreshed before they expire\"",
                         s->conf.listener, loaded);
        sts_sweep_run(s, now);
        return loaded;
}

unsigned sts_recheck(struct sts *s)
{
        for (unsigned i = 0; i < STS_BUCKETS; i++) {
                for (struct sts_entry *e = s->buckets[i]; e != NULL; e = e->next) {
                        e->checked = STS_NEVER;
                        e->none_until = 0;
                }
        }
        return s->count;
}

void sts_shutdown(struct sts *s)
{
        s->closing = true;
        if (!uv_is_closing((uv_handle_t *)&s->timer))
                uv_close((uv_handle_t *)&s->timer, NULL);
        for (unsigned i = 0; i < STS_BUCKETS; i++) {
                for (struct sts_entry *e = s->buckets[i]; e != NULL; e = e->next) {
                        struct sts_fetch *f = e->fetch;

                        pending_clear(&e->waits);
                        if (f == NULL)
                                continue;
                        dns_cancel(f->dns);
                        f->dns = NULL;
                        sts_fail(f, "shutting down");
                }
        }
}
