/*
 * dns: lookups in libuv's thread pool. See dns.h.
 *
 * The worker thread only fills in the request (status, the answer); the
 * loop thread alone reads it and calls back, so the request needs no lock.
 */
#include "dns.h"

#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "util.h"

#define DNS_REQ_MAGIC  0x646e7372U
#define DNS_NAME_MAX   253
#define DNS_ANSWER_MAX 65536 /* a TCP answer's largest size */
#define DNS_TXT_MAX    64    /* TXT records kept from one answer */

enum dns_kind {
        DNS_KIND_TXT,
        DNS_KIND_ADDR,
        DNS_KIND_RR,
};

struct dns_req {
        unsigned magic;
        uv_work_t work;
        enum dns_kind kind;
        bool cancelled;
        char name[DNS_NAME_MAX + 2];
        unsigned port;
        void *arg;
        dns_txt_cb txt_cb;
        dns_addr_cb addr_cb;
        dns_rr_cb rr_cb;
        enum dns_type rtype;
        int status; /* set by the worker */
        /* TXT answer */
        size_t ntxt;
        char *txt[DNS_TXT_MAX];
        size_t txt_len[DNS_TXT_MAX];
        /* addresses */
        size_t naddr;
        struct sockaddr_storage addr[DNS_ADDR_MAX];
        /* dns_query() */
        bool secure;
        bool ad_ignored;
        char owner[256];
        size_t nrr;
        struct dns_rr *rr; /* DNS_RR_MAX of them */
};

const char *dns_strerror(int status)
{
        switch (status) {
        case 0:
                return "ok";
        case -ENOENT:
                return "no such name or no record";
        case -EAGAIN:
                return "temporary resolver failure";
        case -EINVAL:
                return "bad name or malformed answer";
        default:
                return strerror(-status);
        }
}

static struct dns_req *dns_req_new(const char *name, enum dns_kind kind, void *arg)
{
        struct dns_req *r;
        size_t n = strlen(name);

        if (n == 0 || n > DNS_NAME_MAX)
                return NULL;
        r = xcalloc(1, sizeof(*r));
        r->magic = DNS_REQ_MAGIC;
        r->kind = kind;
        memcpy(r->name, name, n + 1);
        r->arg = arg;
        r->work.data = r;
        return r;
}

static void dns_req_free(struct dns_req *r)
{
        for (size_t i = 0; i < r->ntxt; i++)
                free(r->txt[i]);
        for (size_t i = 0; r->rr != NULL && i < r->nrr; i++)
                free((void *)r->rr[i].data);
        free(r->rr);
        r->magic = 0;
        free(r);
}

/* One TXT RR's rdata: <len><bytes>... concatenated. -1 if malformed. */
static int dns_txt_rdata(struct dns_req *r, const unsigned char *p, size_t n)
{
        char *out = xmalloc(n + 1);
        size_t o = 0, i = 0;

        while (i < n) {
                size_t len = p[i++];

                if (len > n - i) {
                        free(out);
                        return -1;
                }
                memcpy(out + o, p + i, len);
                o += len;
                i += len;
        }
        out[o] = '\0';
        r->txt[r->ntxt] = out;
        r->txt_len[r->ntxt] = o;
        r->ntxt++;
        return 0;
}

static int dns_h_errno(int h)
{
        switch (h) {
        case HOST_NOT_FOUND:
        case NO_DATA:
                return -ENOENT;
        case TRY_AGAIN:
                return -EAGAIN;
        default:
                return -EAGAIN; /* NO_RECOVERY, NETDB_INTERNAL: no usable answer now */
        }
}

/*
 * A TXT answer (len bytes, what the resolver returned) into r->txt: 0, or
 * -EINVAL when it does not parse. The parsing of dns_txt(), apart from the
 * query so that test/fuzz/fuzz_dns.c can feed it any bytes.
 */
static int dns_txt_parse(struct dns_req *r, const unsigned char *ans, int len)
{
        ns_msg msg;
        ns_rr rr;
        int count;

        if (len > DNS_ANSWER_MAX || ns_initparse(ans, len, &msg) != 0)
                return -EINVAL;
        count = ns_msg_count(msg, ns_s_an);
        for (int i = 0; i < count && r->ntxt < DNS_TXT_MAX; i++) {
                if (ns_parserr(&msg, ns_s_an, i, &rr) != 0)
                        return -EINVAL;
                /* A CNAME on the way is followed by the resolver: take the TXT only. */
                if (ns_rr_type(rr) != ns_t_txt || ns_rr_class(rr) != ns_c_in)
                        continue;
                if (dns_txt_rdata(r, ns_rr_rdata(rr), ns_rr_rdlen(rr)) != 0)
                        return -EINVAL;
        }
        return 0;
}

static void dns_txt_work(struct dns_req *r)
{
        struct __res_state rs;
        unsigned char *ans = xmalloc(DNS_ANSWER_MAX);
        int len;

        memset(&rs, 0, sizeof(rs));
        if (res_ninit(&rs) != 0) {
                r->status = -EAGAIN;
                free(ans);
                return;
        }
        len = res_nquery(&rs, r->name, ns_c_in, ns_t_txt, ans, DNS_ANSWER_MAX);
        if (len < 0)
                r->status = dns_h_errno(rs.res_h_errno);
        else
                r->status = dns_txt_parse(r, ans, len);
        res_nclose(&rs);
        free(ans);
}

static void dns_addr_work(struct dns_req *r)
{
        struct addrinfo hints, *res = NULL, *ai;
        char port[8];
        int e;

        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG;
        snprintf(port, sizeof(port), "%u", r->port);
        e = getaddrinfo(r->name, port, &hints, &res);
        switch (e) {
        case 0:
                break;
        case EAI_NONAME:
#ifdef EAI_NODATA
        case EAI_NODATA:
#endif
                r->status = -ENOENT;
                return;
        case EAI_MEMORY:
                fatalx("getaddrinfo: out of memory");
        default:
                r->status = -EAGAIN;
                return;
        }
        for (ai = res; ai != NULL && r->naddr < DNS_ADDR_MAX; ai = ai->ai_next) {
                if (ai->ai_addrlen > sizeof(r->addr[0]))
                        continue;
                memcpy(&r->addr[r->naddr++], ai->ai_addr, ai->ai_addrlen);
        }
        freeaddrinfo(res);
        r->status = r->naddr > 0 ? 0 : -ENOENT;
}

/* One record of a dns_query() answer into r->rr; 0, or -1 if it is malformed. */
static int dns_rr_take(struct dns_req *r, const ns_msg *msg, const ns_rr *rr)
{
        struct dns_rr *out = &r->rr[r->nrr];
        const unsigned char *p = ns_rr_rdata(*rr);
        size_t n = ns_rr_rdlen(*rr);

        memset(out, 0, sizeof(*out));
        switch (ns_rr_type(*rr)) {
        case ns_t_mx:
                if (n < 3 || ns_name_uncompress(ns_msg_base(*msg), ns_msg_end(*msg),
                                                p + 2, out->name, sizeof(out->name)) < 0)
                        return -1;
                out->pref = ns_get16(p);
                for (char *c = out->name; *c != '\0'; c++)
                        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
                if (strcmp(out->name, ".") == 0 || out->name[0] == '\0')
                        return 0; /* a null MX (RFC 7505): no host, skipped */
                break;
        case ns_t_a: {
                struct sockaddr_in *in = (struct sockaddr_in *)&out->addr;

                if (n != 4)
                        return -1;
                in->sin_family = AF_INET;
                memcpy(&in->sin_addr, p, 4);
                break;
        }
        case ns_t_aaaa: {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->addr;

                if (n != 16)
                        return -1;
                in6->sin6_family = AF_INET6;
                memcpy(&in6->sin6_addr, p, 16);
                break;
        }
        case ns_t_tlsa: {
                unsigned char *data;

                if (n < 3)
                        return -1;
                out->usage = p[0];
                out->selector = p[1];
                out->mtype = p[2];
                out->len = n - 3;
                data = xmalloc(out->len + 1);
                memcpy(data, p + 3, out->len);
                out->data = data;
                break;
        }
        default:
                return 0;
        }
        r->nrr++;
        return 0;
}

/*
 * Whether name[0..n) ends in the dot that ends a name, not in an escaped
 * dot ("\\.", a dot inside a label, as ns_name_ntop() writes it).
 */
static bool dns_ends_in_dot(const char *name, size_t n)
{
        size_t backslashes = 0;

        if (n == 0 || name[n - 1] != '.')
                return false;
        while (backslashes < n - 1 && name[n - 2 - backslashes] == '\\')
                backslashes++;
        return backslashes % 2 == 0;
}

/* A record's owner name: lower case, no trailing dot. */
static void dns_owner(char *out, size_t outlen, const char *name)
{
        size_t n = 0;

        for (; name[n] != '\0' && n + 1 < outlen; n++)
                out[n] =
                    (char)(name[n] >= 'A' && name[n] <= 'Z' ? name[n] + 32 : name[n]);
        if (dns_ends_in_dot(out, n))
                n--;
        out[n] = '\0';
}

/*
 * One DNSSEC-aware query of type qtype (res is set up): its records of that
 * type into r->rr, *secure from the AD bit. 0, -ENOENT (NXDOMAIN, NODATA, or
 * only other types, such as a CNAME the resolver could not follow), -EAGAIN
 * or -EINVAL.
 */
/*
 * The records of type qtype in an answer (len bytes) into r->rr, their
 * owner into r->owner: 0, -ENOENT (none of that type) or -EINVAL (it does
 * not parse). Apart from the query, as dns_txt_parse().
 */
static int dns_rr_parse(struct dns_req *r, const unsigned char *ans, int len, int qtype)
{
        size_t before = r->nrr;
        ns_msg msg;
        ns_rr rr;
        int count;

        if (len > DNS_ANSWER_MAX || ns_initparse(ans, len, &msg) != 0)
                return -EINVAL;
        count = ns_msg_count(msg, ns_s_an);
        for (int i = 0; i < count && r->nrr < DNS_RR_MAX; i++) {
                if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_class(rr) != ns_c_in)
                        return -EINVAL;
                if ((int)ns_rr_type(rr) != qtype)
                        continue;
                if (dns_rr_take(r, &msg, &rr) != 0)
                        return -EINVAL;
                if (r->owner[0] == '\0')
                        dns_owner(r->owner, sizeof(r->owner), ns_rr_name(rr));
        }
        return r->nrr == before ? -ENOENT : 0;
}

/*
 * Whether the AD bit of res's nameservers may be believed (dns.h): all of
 * them on this host, or "options trust-ad" in resolv.conf.
 */
static bool dns_trust_ad(const struct __res_state *res)
{
        if (res->options & RES_TRUSTAD)
                return true;
        for (int i = 0; i < res->nscount && i < MAXNS; i++) {
                const struct sockaddr_in *in = &res->nsaddr_list[i];
                const struct sockaddr_in6 *in6 = res->_u._ext.nsaddrs[i];

                if (in->sin_family == AF_INET) {
                        if ((ntohl(in->sin_addr.s_addr) >> 24) != 127)
                                return false;
                } else if (in6 == NULL || in6->sin6_family != AF_INET6 ||
                           !IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
                        return false;
                }
        }
        return true;
}

static int dns_rr_query(struct dns_req *r, res_state res, int qtype, bool *secure)
{
        unsigned char *ans = xcalloc(1, DNS_ANSWER_MAX);
        int len, st;

        len = res_nquery(res, r->name, ns_c_in, qtype, ans, DNS_ANSWER_MAX);
        /* The header is there for a negative answer too: is the denial validated? */
        *secure = (ans[3] & 0x20) != 0;
        if (len < 0) {
                st = dns_h_errno(res->res_h_errno);
                if (st != -ENOENT)
                        *secure = false;
        } else {
                st = dns_rr_parse(r, ans, len, qtype);
        }
        free(ans);
        return st;
}

static int dns_mx_order(const void *a, const void *b)
{
        const struct dns_rr *x = a, *y = b;

        return (x->pref > y->pref) - (x->pref < y->pref);
}

static void dns_rr_work(struct dns_req *r)
{
        struct __res_state rs;
        bool sec4, sec6, trust;
        int st4, st6;

        r->rr = xcalloc(DNS_RR_MAX, sizeof(*r->rr));
        memset(&rs, 0, sizeof(rs));
        if (res_ninit(&rs) != 0) {
                r->status = -EAGAIN;
                return;
        }
        trust = dns_trust_ad(&rs);
        rs.options |= RES_USE_EDNS0 | RES_USE_DNSSEC | RES_TRUSTAD;
        switch (r->rtype) {
        case DNS_T_MX:
                r->status = dns_rr_query(r, &rs, ns_t_mx, &r->secure);
                /* Equal preferences keep the resolver's order (qsort is not stable). */
                for (size_t i = 0; i < r->nrr; i++)
                        r->rr[i].pref = r->rr[i].pref * DNS_RR_MAX + (unsigned)i;
                qsort(r->rr, r->nrr, sizeof(*r->rr), dns_mx_order);
                for (size_t i = 0; i < r->nrr; i++)
                        r->rr[i].pref /= DNS_RR_MAX;
                break;
        case DNS_T_TLSA:
                r->status = dns_rr_query(r, &rs, ns_t_tlsa, &r->secure);
                break;
        case DNS_T_ADDR:
                st4 = dns_rr_query(r, &rs, ns_t_a, &sec4);
                st6 = dns_rr_query(r, &rs, ns_t_aaaa, &sec6);
                if (st4 == 0 || st6 == 0) {
                        r->status = 0;
                        r->secure = (st4 != 0 || sec4) && (st6 != 0 || sec6);
                } else {
                        r->status = st4 != -ENOENT ? st4 : st6;
                        r->secure = sec4 && sec6;
                }
                break;
        }
        if (!trust) {
                r->ad_ignored = r->secure;
                r->secure = false;
        }
        res_nclose(&rs);
}

static void dns_work_cb(uv_work_t *w)
{
        struct dns_req *r = w->data;

        if (r->kind == DNS_KIND_TXT)
                dns_txt_work(r);
        else if (r->kind == DNS_KIND_RR)
                dns_rr_work(r);
        else
                dns_addr_work(r);
}

static void dns_after_cb(uv_work_t *w, int status)
{
        struct dns_req *r = w->data;

        UTIL_CHECK_MAGIC(r, DNS_REQ_MAGIC);
        if (status == UV_ECANCELED)
                r->status = -ECANCELED;
        if (!r->cancelled) {
                if (r->kind == DNS_KIND_TXT) {
                        struct dns_txt t = {.n = r->ntxt,
                                            .recs = (const char *const *)r->txt,
                                            .lens = r->txt_len};

                        r->txt_cb(r->arg, r->status, &t);
                } else if (r->kind == DNS_KIND_RR) {
                        struct dns_rrset set = {.secure = r->secure,
                                                .ad_ignored = r->ad_ignored,
                                                .name = r->owner,
                                                .n = r->nrr,
                                                .rr = r->rr};

                        r->rr_cb(r->arg, r->status, &set);
                } else {
                        r->addr_cb(r->arg, r->status, r->addr, r->naddr);
                }
        }
        dns_req_free(r);
}

static struct dns_req *dns_start(struct uv_loop_s *loop, struct dns_req *r)
{
        int e = uv_queue_work(loop, &r->work, dns_work_cb, dns_after_cb);

        if (e != 0)
                fatalx("uv_queue_work: %s", uv_strerror(e));
        return r;
}

struct dns_req *dns_txt(struct uv_loop_s *loop, const char *name, dns_txt_cb cb,
                        void *arg)
{
        struct dns_req *r = dns_req_new(name, DNS_KIND_TXT, arg);

        if (r == NULL)
                return NULL;
        r->txt_cb = cb;
        return dns_start(loop, r);
}

struct dns_req *dns_addr(struct uv_loop_s *loop, const char *name, unsigned port,
                         dns_addr_cb cb, void *arg)
{
        struct dns_req *r = dns_req_new(name, DNS_KIND_ADDR, arg);

        if (r == NULL)
                return NULL;
        r->port = port;
        r->addr_cb = cb;
        return dns_start(loop, r);
}

struct dns_req *dns_query(struct uv_loop_s *loop, const char *name, enum dns_type type,
                          dns_rr_cb cb, void *arg)
{
        struct dns_req *r = dns_req_new(name, DNS_KIND_RR, arg);

        if (r == NULL)
                return NULL;
        r->rtype = type;
        r->rr_cb = cb;
        return dns_start(loop, r);
}

void dns_cancel(struct dns_req *r)
{
        if (r == NULL)
                return;
        UTIL_CHECK_MAGIC(r, DNS_REQ_MAGIC);
        r->cancelled = true;
        /* Not started yet: it never will be (dns_after_cb sees UV_ECANCELED). */
        uv_cancel((uv_req_t *)&r->work);
}
