/*
 * policy: which TLS each recipient domain must get on the server side
 * (outbound), and the verdict on what was observed when delivering to it.
 *
 * Tables. A policy table is a file in the source syntax of Postfix's
 * smtp_tls_policy_maps, so that an administrator can reuse the table they
 * already have:
 *
 *     # a comment: '#' first on a line (after optional whitespace)
 *     bank.example      secure match=.bank.example protocols=>=TLSv1.3
 *     .bank.example     secure
 *     partner.example   verify
 *         match=mx1.partner.example:mx2.partner.example
 *
 * One entry is a logical line: "domain level [name=value ...]"; a line that
 * starts with whitespace continues the previous one; blank and comment lines
 * are skipped and do not end an entry. Attributes are separated by
 * whitespace or commas. "example.com" is that domain only, ".example.com"
 * every domain below it (not example.com itself). Keys and levels are
 * case-insensitive; a trailing dot on a key is ignored. "[host]:port" and
 * "host:port" keys (relay hosts, not recipient domains) are skipped with a
 * warning.
 *
 * Levels, ordered as in Postfix's tls.h (fingerprint, which Postfix puts
 * between encrypt and dane, is not supported): none < may < encrypt < dane <
 * dane-only < verify < secure. match= (patterns joined by ':', repeatable)
 * is taken by verify and secure only; protocols= ("!SSLv2:!SSLv3",
 * "TLSv1.2:TLSv1.3", ">=TLSv1.2", "<=TLSv1.3") once; ciphers=, exclude=,
 * servername= and connection_reuse= are accepted and ignored with a warning
 * (mailward's cipher suites are fixed); tafile= is an error (ignoring it
 * would widen trust). With level none every attribute is ignored with a
 * warning, as in Postfix.
 *
 * policy_load() reads the whole file and reports every problem on errs as
 * "FILE:LINE: message" (warnings as "FILE:LINE: warning: message"); it
 * returns 0 with *out set, -EINVAL when the table had at least one error, or
 * -errno when the file cannot be read, with *out NULL on error (errs may be
 * NULL: nothing is printed). Bad input never aborts; out of memory does. A loaded
 * table is never modified apart from policy_set_default(): share it
 * read-only and policy_free() it when done.
 *
 * Lookups follow Postfix: the exact domain first, then ".parent" entries from
 * the most specific to the least; with no entry, the table's default level
 * (encrypt unless set) with source "default". An expectation points into the
 * table or into static data: it is valid until policy_free().
 *
 * Judging is a pure function of (expectation, observation) that fills in a
 * verdict: pass or fail, and for anything wrong the TLS-RPT (RFC 8460) result
 * type. Levels none and may always pass (may reports what was missing);
 * encrypt needs TLS; dane and dane-only need TLS and, when the server has
 * usable TLSA records (the observation's dane), a certificate that matches
 * one (DANE-EE; or DANE-TA with a leaf naming the MX host or the domain);
 * without usable records dane is encrypt and dane-only fails (dane-required),
 * and a failed DNSSEC lookup fails both (dnssec-invalid), as RFC 7672 and
 * Postfix do; verify and secure also need a trusted, unexpired
 * certificate with a name that matches a pattern. Patterns have Postfix's
 * meaning: "nexthop" the recipient domain, "dot-nexthop" any name below it,
 * "hostname" the MX host name, ".example.com" any name below example.com,
 * anything else that exact name. A certificate name "*.example.com" matches
 * one label only (RFC 6125). Defaults as in Postfix: verify matches
 * "hostname", secure "nexthop:dot-nexthop". One more kind of pattern, never
 * read from a table, serves MTA-STS's mx: lines (RFC 8461 section 4.1):
 * "*.example.com" stands for any name one label below example.com, and a
 * certificate name matches it when the two can name the same host
 * ("mx1.example.com", or "*.example.com" itself): mtasts_name_allowed().
 * With source mta-sts every pattern is read so, as a host name: "mx: nexthop"
 * names the host "nexthop", not the recipient domain.
 */
#ifndef MAILWARD_POLICY_H
#define MAILWARD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Ordered: a larger value is a stricter requirement. */
enum policy_level {
        POLICY_LEVEL_NONE,
        POLICY_LEVEL_MAY,
        POLICY_LEVEL_ENCRYPT,
        POLICY_LEVEL_DANE,
        POLICY_LEVEL_DANE_ONLY,
        POLICY_LEVEL_VERIFY,
        POLICY_LEVEL_SECURE,
};

enum policy_source {
        POLICY_SOURCE_DEFAULT, /* no entry: the configured default level */
        POLICY_SOURCE_FILE,    /* an entry of the policy table */
        POLICY_SOURCE_LEARNED, /* remembered from earlier sessions */
        POLICY_SOURCE_MTA_STS, /* the domain's MTA-STS policy (lib/sts.h), mode enforce */
};

/* Ordered by version; UNKNOWN sorts first. */
enum policy_proto {
        POLICY_PROTO_UNKNOWN,
        POLICY_PROTO_SSLV2,
        POLICY_PROTO_SSLV3,
        POLICY_PROTO_TLSV1,
        POLICY_PROTO_TLSV1_1,
        POLICY_PROTO_TLSV1_2,
        POLICY_PROTO_TLSV1_3,
};

/* What went wrong; every value but OK is a TLS-RPT result type. */
enum policy_result {
        POLICY_RESULT_OK,
        POLICY_RESULT_STARTTLS_NOT_SUPPORTED,
        POLICY_RESULT_CERT_HOST_MISMATCH,
        POLICY_RESULT_CERT_EXPIRED,
        POLICY_RESULT_CERT_NOT_TRUSTED,
        POLICY_RESULT_VALIDATION_FAILURE,
        POLICY_RESULT_TLSA_INVALID,   /* DANE: usable TLSA records, none matches */
        POLICY_RESULT_DNSSEC_INVALID, /* DANE: the DNSSEC lookups failed */
        POLICY_RESULT_DANE_REQUIRED,  /* dane-only: no usable TLSA records */
};

/* What DANE said about the server (lib/dane.h, tls_dane_match()). */
enum policy_dane {
        POLICY_DANE_NONE,     /* not looked up, or no validated TLSA records here */
        POLICY_DANE_UNUSABLE, /* validated TLSA records, none that SMTP can use */
        POLICY_DANE_FAILED,   /* a lookup failed (SERVFAIL, bogus, timeout) */
        POLICY_DANE_NO_MATCH, /* usable records; the certificate matches none */
        POLICY_DANE_MATCH_EE, /* a DANE-EE(3) record matches the leaf */
        POLICY_DANE_MATCH_TA, /* a DANE-TA(2) record matches, the chain verifies */
};

struct policy;

struct policy_expectation {
        enum policy_level level;   /* what judging applies */
        enum policy_level written; /* as written (the same as level) */
        enum policy_source source;
        const char *key;  /* table key that matched ("x.org", ".x.org"); NULL: default */
        const char *file; /* where the entry is; NULL: default */
        unsigned line;
        /* verify and secure: the patterns (the table's, or the level's default) */
        const char *const *match;
        size_t nmatch;
        enum policy_proto min_proto, max_proto; /* TLSv1.2 and TLSv1.3 unless narrowed */
};

/*
 * What the relay saw on the server side. Strings may be NULL; cert_names and
 * starttls_masked are peer data (they are escaped before they reach a reason).
 */
struct policy_observation {
        const char *nexthop; /* the recipient domain being delivered to */
        const char *mx_host; /* the server's host name (the MX), NULL if unknown */
        bool starttls_offered;
        /* an EHLO keyword that looks like STARTTLS overwritten on the path ("XXXXXXXA")
         */
        const char *starttls_masked;
        int starttls_reply; /* the code the server answered STARTTLS with; 0: not sent */
        bool tls_reached;   /* the handshake completed */
        const char *tls_error; /* local text on why the handshake failed, or NULL */
        enum policy_proto proto;
        bool cert_trusted; /* the chain verifies to a trust anchor */
        bool cert_expired; /* a certificate of the chain is outside its validity */
        /* subjectAltName dNSNames, or the CommonName when there are none */
        const char *const *cert_names;
        size_t ncert_names;
        enum policy_dane dane; /* for dane and dane-only */
        const char *dane_why;  /* local text: which record matched, or why none */
};

struct policy_verdict {
        bool pass; /* the message may go to this server */
        /* OK, or what went wrong; set also when a level may session passes */
        enum policy_result result;
        char reason[384];       /* printable ASCII, peer data escaped: fit for a reply */
        char matched_name[128]; /* verify/secure pass: the certificate name, */
        char matched_pattern[128]; /* and the pattern it matched */
};

/* An empty table: every lookup gives the default level (encrypt). */
struct policy *policy_new(void);
int policy_load(const char *path, FILE *errs, struct policy **out);
void policy_free(struct policy *p);
/* The level for domains without an entry. */
void policy_set_default(struct policy *p, enum policy_level level);
size_t policy_count(const struct policy *p);

/* p may be NULL: the built-in default (encrypt). */
struct policy_expectation policy_lookup(const struct policy *p, const char *domain);

/*
 * How a recipient domain's MTA-STS policy in mode enforce (lib/sts.h)
 * combines with the rest: an entry of the table (source file) always wins,
 * as it does over a learned record. Otherwise the expectation becomes
 * secure with source mta-sts: a trusted, unexpired certificate whose name
 * can be one of the policy's mx patterns (RFC 8461 section 4.1; the
 * "*.domain" form above), TLS 1.2 or later. mx is borrowed: it must outlive
 * the expectation. With nmx 0 the base is returned unchanged. Pure.
 */
struct policy_expectation policy_mta_sts(const struct policy_expectation *base,
                                         const char *const *mx, size_t nmx);

/* Fills in *v and returns v->pass. Pure: no I/O, no state. */
bool policy_judge(const struct policy_expectation *e, const struct policy_observation *o,
                  struct policy_verdict *v);

const char *policy_level_str(enum policy_level level);
/* Case-insensitive: "none" .. "secure", "dane-only". 0 or -1. */
int policy_level_parse(const char *s, enum policy_level *out);
const char *policy_source_str(enum policy_source source);
/* "none", "unusable", "failed", "no-match", "match-ee", "match-ta". */
const char *policy_dane_str(enum policy_dane dane);
const char *policy_proto_str(enum policy_proto proto);
/* Case-insensitive: "SSLv2" .. "TLSv1.3" (as tls_version() prints them). 0 or -1. */
int policy_proto_parse(const char *s, enum policy_proto *out);
/* The TLS-RPT result type ("starttls-not-supported", ...); "ok" for OK. */
const char *policy_result_str(enum policy_result result);

#endif
