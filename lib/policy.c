/*
 * policy: Postfix-style TLS policy tables, lookups, and judging. The
 * contract is in policy.h; the semantics (level order, lookup order, match
 * patterns and their defaults, attribute handling) follow Postfix's
 * src/tls/tls.h, src/smtp/smtp_tls_policy.c and src/tls/tls_client.c, read
 * for their behaviour and written anew here.
 */
#include "policy.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mtasts.h"
#include "util.h"

#define POLICY_NAME_MAX 253 /* a DNS name in text form, without the trailing dot */

struct policy_entry {
        char *key; /* lower case, no trailing dot; ".parent" for subdomain entries */
        enum policy_level level, written;
        char **match;
        size_t nmatch;
        enum policy_proto min_proto, max_proto;
        unsigned line;
};

struct policy {
        char *path; /* NULL for policy_new() */
        struct policy_entry *entries;
        size_t n, cap;
        size_t *slots; /* open addressing over entries: index + 1, 0 when empty */
        size_t nslots; /* a power of two, at least twice n */
        enum policy_level default_level;
};

static const char *const policy_match_verify[] = {"hostname"};
static const char *const policy_match_secure[] = {"nexthop", "dot-nexthop"};

static const char *const policy_level_names[] = {
    [POLICY_LEVEL_NONE] = "none",           [POLICY_LEVEL_MAY] = "may",
    [POLICY_LEVEL_ENCRYPT] = "encrypt",     [POLICY_LEVEL_DANE] = "dane",
    [POLICY_LEVEL_DANE_ONLY] = "dane-only", [POLICY_LEVEL_VERIFY] = "verify",
    [POLICY_LEVEL_SECURE] = "secure",
};

static const char *const policy_proto_names[] = {
    [POLICY_PROTO_UNKNOWN] = "unknown", [POLICY_PROTO_SSLV2] = "SSLv2",
    [POLICY_PROTO_SSLV3] = "SSLv3",     [POLICY_PROTO_TLSV1] = "TLSv1",
    [POLICY_PROTO_TLSV1_1] = "TLSv1.1", [POLICY_PROTO_TLSV1_2] = "TLSv1.2",
    [POLICY_PROTO_TLSV1_3] = "TLSv1.3",
};

/* The only versions the TLS module negotiates (DESIGN.md, invariant 7). */
#define POLICY_PROTO_FLOOR   POLICY_PROTO_TLSV1_2
#define POLICY_PROTO_CEILING POLICY_PROTO_TLSV1_3

const char *policy_level_str(enum policy_level level)
{
        if ((size_t)level < UTIL_ARRAY_LEN(policy_level_names))
                return policy_level_names[level];
        return "invalid";
}

int policy_level_parse(const char *s, enum policy_level *out)
{
        for (size_t i = 0; i < UTIL_ARRAY_LEN(policy_level_names); i++) {
                if (strcasecmp(s, policy_level_names[i]) == 0) {
                        *out = (enum policy_level)i;
                        return 0;
                }
        }
        return -1;
}

const char *policy_source_str(enum policy_source source)
{
        switch (source) {
        case POLICY_SOURCE_DEFAULT:
                return "default";
        case POLICY_SOURCE_FILE:
                return "policy";
        case POLICY_SOURCE_LEARNED:
                return "learned";
        case POLICY_SOURCE_MTA_STS:
                return "mta-sts";
        }
        return "invalid";
}

const char *policy_dane_str(enum policy_dane dane)
{
        switch (dane) {
        case POLICY_DANE_NONE:
                return "none";
        case POLICY_DANE_UNUSABLE:
                return "unusable";
        case POLICY_DANE_FAILED:
                return "failed";
        case POLICY_DANE_NO_MATCH:
                return "no-match";
        case POLICY_DANE_MATCH_EE:
                return "match-ee";
        case POLICY_DANE_MATCH_TA:
                return "match-ta";
        }
        return "invalid";
}

const char *policy_proto_str(enum policy_proto proto)
{
        if ((size_t)proto < UTIL_ARRAY_LEN(policy_proto_names))
                return policy_proto_names[proto];
        return "invalid";
}

int policy_proto_parse(const char *s, enum policy_proto *out)
{
        for (size_t i = POLICY_PROTO_SSLV2; i < UTIL_ARRAY_LEN(policy_proto_names); i++) {
                if (strcasecmp(s, policy_proto_names[i]) == 0) {
                        *out = (enum policy_proto)i;
                        return 0;
                }
        }
        return -1;
}

const char *policy_result_str(enum policy_result result)
{
        switch (result) {
        case POLICY_RESULT_OK:
                return "ok";
        case POLICY_RESULT_STARTTLS_NOT_SUPPORTED:
                return "starttls-not-supported";
        case POLICY_RESULT_CERT_HOST_MISMATCH:
                return "certificate-host-mismatch";
        case POLICY_RESULT_CERT_EXPIRED:
                return "certificate-expired";
        case POLICY_RESULT_CERT_NOT_TRUSTED:
                return "certificate-not-trusted";
        case POLICY_RESULT_VALIDATION_FAILURE:
                return "validation-failure";
        case POLICY_RESULT_TLSA_INVALID:
                return "tlsa-invalid";
        case POLICY_RESULT_DNSSEC_INVALID:
                return "dnssec-invalid";
        case POLICY_RESULT_DANE_REQUIRED:
                return "dane-required";
        }
        return "invalid";
}

static const char *const *policy_default_match(enum policy_level level, size_t *n)
{
        if (level == POLICY_LEVEL_VERIFY) {
                *n = UTIL_ARRAY_LEN(policy_match_verify);
                return policy_match_verify;
        }
        if (level == POLICY_LEVEL_SECURE) {
                *n = UTIL_ARRAY_LEN(policy_match_secure);
                return policy_match_secure;
        }
        *n = 0;
        return NULL;
}

/* ---- the table ---- */

static uint64_t policy_hash(const char *s, size_t n)
{
        uint64_t h = 14695981039346656037u; /* FNV-1a */

        for (size_t i = 0; i < n; i++) {
                h ^= (unsigned char)s[i];
                h *= 1099511628211u;
        }
        return h;
}

/* key: lower case, n bytes (not necessarily NUL-terminated there). */
static const struct policy_entry *policy_find(const struct policy *p, const char *key,
                                              size_t n)
{
        if (p == NULL || p->nslots == 0)
                return NULL;
        for (size_t i = policy_hash(key, n) & (p->nslots - 1);;
             i = (i + 1) & (p->nslots - 1)) {
                size_t slot = p->slots[i];
                const struct policy_entry *e;

                if (slot == 0)
                        return NULL;
                e = &p->entries[slot - 1];
                if (strlen(e->key) == n && memcmp(e->key, key, n) == 0)
                        return e;
        }
}

static void policy_index_put(struct policy *p, size_t idx)
{
        const char *key = p->entries[idx].key;
        size_t i = policy_hash(key, strlen(key)) & (p->nslots - 1);

        while (p->slots[i] != 0)
                i = (i + 1) & (p->nslots - 1);
        p->slots[i] = idx + 1;
}

/* Takes over the entry's storage. */
static void policy_add(struct policy *p, const struct policy_entry *e)
{
        if (p->n == p->cap) {
                p->cap = p->cap ? 2 * p->cap : 64;
                p->entries = xrealloc(p->entries, p->cap * sizeof(*p->entries));
        }
        p->entries[p->n++] = *e;
        if (2 * p->n > p->nslots) {
                free(p->slots);
                p->nslots = p->nslots ? 2 * p->nslots : 128;
                p->slots = xcalloc(p->nslots, sizeof(*p->slots));
                for (size_t i = 0; i < p->n; i++)
                        policy_index_put(p, i);
        } else {
                policy_index_put(p, p->n - 1);
        }
}

static void policy_entry_cleanup(struct policy_entry *e)
{
        free(e->key);
        for (size_t i = 0; i < e->nmatch; i++)
                free(e->match[i]);
        free(e->match);
}

struct policy *policy_new(void)
{
        struct policy *p = xcalloc(1, sizeof(*p));

        p->default_level = POLICY_LEVEL_ENCRYPT;
        return p;
}

void policy_free(struct policy *p)
{
        if (p == NULL)
                return;
        for (size_t i = 0; i < p->n; i++)
                policy_entry_cleanup(&p->entries[i]);
        free(p->entries);
        free(p->slots);
        free(p->path);
        free(p);
}

void policy_set_default(struct policy *p, enum policy_level level)
{
        p->default_level = level;
}

size_t policy_count(const struct policy *p)
{
        return p ? p->n : 0;
}

/* ---- parsing ---- */

struct policy_token {
        char *s;
        unsigned line;
};

struct policy_parser {
        struct policy *p;
        const char *path;
        FILE *errs;
        unsigned nerrors;
        struct policy_token *tok; /* the logical line being read */
        size_t ntok, cap;
};

static void policy_report(struct policy_parser *ps, unsigned line, bool warning,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void policy_report(struct policy_parser *ps, unsigned line, bool warning,
                          const char *fmt, ...)
{
        va_list ap;

        if (!warning)
                ps->nerrors++;
        if (ps->errs == NULL)
                return;
        fprintf(ps->errs, "%s:%u: %s", ps->path, line, warning ? "warning: " : "");
        va_start(ap, fmt);
        vfprintf(ps->errs, fmt, ap);
        va_end(ap);
        fputc('\n', ps->errs);
}

/* File text quoted in a message: printable, cut when long. */
static const char *policy_quote(char *buf, size_t len, const char *s)
{
        return log_escape(buf, len, s, strlen(s));
}

static bool policy_is_space(int c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void policy_lower(char *s)
{
        for (; *s; s++)
                *s = (char)tolower((unsigned char)*s);
}

/* A host name: labels of letters, digits, '-' and '_', 1..63 long, not
 * starting or ending with '-'; at most POLICY_NAME_MAX in all. */
static bool policy_valid_name(const char *s)
{
        size_t len = strlen(s), label = 0;

        if (len == 0 || len > POLICY_NAME_MAX)
                return false;
        for (size_t i = 0; i <= len; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c == '.' || c == '\0') {
                        if (label == 0 || label > 63 || s[i - 1] == '-')
                                return false;
                        label = 0;
                } else if (isalnum(c) || c == '_' || c == '-') {
                        if (label == 0 && c == '-')
                                return false;
                        label++;
                } else {
                        return false;
                }
        }
        return true;
}

static void policy_push_token(struct policy_parser *ps, const char *s, size_t n,
                              unsigned line)
{
        if (ps->ntok == ps->cap) {
                ps->cap = ps->cap ? 2 * ps->cap : 8;
                ps->tok = xrealloc(ps->tok, ps->cap * sizeof(*ps->tok));
        }
        ps->tok[ps->ntok].s = xstrndup(s, n);
        ps->tok[ps->ntok].line = line;
        ps->ntok++;
}

static void policy_clear_tokens(struct policy_parser *ps)
{
        for (size_t i = 0; i < ps->ntok; i++)
                free(ps->tok[i].s);
        ps->ntok = 0;
}

/*
 * Split one physical line. The key (first word of an entry) ends at
 * whitespace; after it, as in Postfix, commas separate too. A word that
 * starts with '#' is kept (so that the entry reports it) and ends the line.
 */
static void policy_tokenize(struct policy_parser *ps, const char *s, unsigned line,
                            bool first)
{
        if (first) {
                size_t n = 0;

                while (s[n] && !policy_is_space(s[n]))
                        n++;
                policy_push_token(ps, s, n, line);
                s += n;
        }
        for (;;) {
                size_t n = 0;

                while (*s && (policy_is_space(*s) || *s == ','))
                        s++;
                if (*s == '\0')
                        return;
                if (*s == '#') {
                        policy_push_token(ps, s, strlen(s), line);
                        return;
                }
                while (s[n] && !policy_is_space(s[n]) && s[n] != ',')
                        n++;
                policy_push_token(ps, s, n, line);
                s += n;
        }
}

/*
 * protocols=: Postfix's list of names to include, "!name" to exclude,
 * ">=name" and "<=name" bounds, joined by ':'. Narrowed to the versions
 * mailward speaks; 0, or -1 with why filled in.
 */
static int policy_parse_protocols(const char *value, enum policy_proto *min,
                                  enum policy_proto *max, char *why, size_t whylen)
{
        unsigned include = 0, exclude = 0, allowed;
        enum policy_proto floor = POLICY_PROTO_SSLV2, ceiling = POLICY_PROTO_TLSV1_3;
        char *copy = xstrdup(value), *rest = copy, *t;
        char q[64];
        int rc = 0;

        while ((t = strsep(&rest, ":")) != NULL) {
                const char *name = t;
                enum policy_proto proto;

                if (*t == '\0')
                        continue;
                if (*t == '!' || strncmp(t, ">=", 2) == 0 || strncmp(t, "<=", 2) == 0)
                        name = t + (*t == '!' ? 1 : 2);
                if (policy_proto_parse(name, &proto) < 0) {
                        snprintf(why, whylen, "unknown protocol \"%s\"",
                                 policy_quote(q, sizeof(q), t));
                        rc = -1;
                        break;
                }
                if (*t == '!')
                        exclude |= 1u << proto;
                else if (*t == '>')
                        floor = proto > floor ? proto : floor;
                else if (*t == '<')
                        ceiling = proto < ceiling ? proto : ceiling;
                else
                        include |= 1u << proto;
        }
        free(copy);
        if (rc < 0)
                return rc;

        allowed = include ? include : ~0u;
        allowed &= ~exclude;
        *min = POLICY_PROTO_UNKNOWN;
        *max = POLICY_PROTO_UNKNOWN;
        for (unsigned p = POLICY_PROTO_FLOOR; p <= POLICY_PROTO_CEILING; p++) {
                if ((allowed & (1u << p)) == 0 || p < floor || p > ceiling)
                        continue;
                if (*min == POLICY_PROTO_UNKNOWN)
                        *min = (enum policy_proto)p;
                *max = (enum policy_proto)p;
        }
        if (*min == POLICY_PROTO_UNKNOWN) {
                snprintf(why, whylen,
                         "allows neither TLSv1.2 nor TLSv1.3, the only versions "
                         "mailward speaks");
                return -1;
        }
        return 0;
}

static void policy_parse_match(struct policy_parser *ps, struct policy_entry *e,
                               const char *value, unsigned line)
{
        char *copy = xstrdup(value), *rest = copy, *t;
        char q[160];
        size_t before = e->nmatch;

        while ((t = strsep(&rest, ":")) != NULL) {
                if (*t == '\0')
                        continue;
                policy_lower(t);
                if (strcmp(t, "nexthop") != 0 && strcmp(t, "dot-nexthop") != 0 &&
                    strcmp(t, "hostname") != 0 && !policy_valid_name(t + (*t == '.'))) {
                        policy_report(ps, line, false, "bad match= pattern \"%s\"",
                                      policy_quote(q, sizeof(q), t));
                        continue;
                }
                e->match = xrealloc(e->match, (e->nmatch + 1) * sizeof(*e->match));
                e->match[e->nmatch++] = xstrdup(t);
        }
        if (e->nmatch == before && strspn(value, ":") == strlen(value))
                policy_report(ps, line, false, "match= has no pattern");
        free(copy);
}

/* One attribute of an entry whose level is already known. */
static void policy_parse_attr(struct policy_parser *ps, struct policy_entry *e,
                              const struct policy_token *t, bool *seen_protocols)
{
        char q[160], why[160];
        char *eq = strchr(t->s, '=');
        const char *name, *value;

        if (t->s[0] == '#') {
                policy_report(ps, t->line, false,
                              "'#' starts a comment only at the start of a line");
                return;
        }
        if (eq == NULL || eq == t->s) {
                policy_report(ps, t->line, false,
                              "bad attribute \"%s\" (expected name=value)",
                              policy_quote(q, sizeof(q), t->s));
                return;
        }
        *eq = '\0';
        name = t->s;
        value = eq + 1;
        if (e->written == POLICY_LEVEL_NONE) {
                /* Postfix ignores attributes when TLS is off, and says so. */
                policy_report(ps, t->line, true, "attribute %s= ignored with level none",
                              policy_quote(q, sizeof(q), name));
                return;
        }
        if (strcasecmp(name, "match") == 0) {
                if (e->written != POLICY_LEVEL_VERIFY &&
                    e->written != POLICY_LEVEL_SECURE) {
                        policy_report(
                            ps, t->line, false,
                            "match= is not valid with level %s (only verify and "
                            "secure take it)",
                            policy_level_str(e->written));
                        return;
                }
                policy_parse_match(ps, e, value, t->line);
        } else if (strcasecmp(name, "protocols") == 0) {
                if (*seen_protocols) {
                        policy_report(ps, t->line, false, "protocols= given twice");
                        return;
                }
                *seen_protocols = true;
                if (policy_parse_protocols(value, &e->min_proto, &e->max_proto, why,
                                           sizeof(why)) < 0)
                        policy_report(ps, t->line, false, "bad protocols=%s: %s",
                                      policy_quote(q, sizeof(q), value), why);
        } else if (strcasecmp(name, "ciphers") == 0 || strcasecmp(name, "exclude") == 0) {
                policy_report(ps, t->line, true,
                              "%s= ignored: mailward's cipher suites are fixed",
                              policy_quote(q, sizeof(q), name));
        } else if (strcasecmp(name, "servername") == 0 ||
                   strcasecmp(name, "connection_reuse") == 0) {
                policy_report(ps, t->line, true, "%s= ignored",
                              policy_quote(q, sizeof(q), name));
        } else if (strcasecmp(name, "tafile") == 0) {
                policy_report(
                    ps, t->line, false,
                    "tafile= is not supported (certificates are checked against "
                    "the system's trust anchors)");
        } else {
                policy_report(ps, t->line, false, "unknown attribute \"%s\"",
                              policy_quote(q, sizeof(q), name));
        }
}

/* The logical line in ps->tok: check it all, add it if the key is usable. */
static void policy_parse_entry(struct policy_parser *ps)
{
        struct policy_entry e = {
            .min_proto = POLICY_PROTO_FLOOR,
            .max_proto = POLICY_PROTO_CEILING,
        };
        const struct policy_entry *dup;
        const struct policy_token *key = &ps->tok[0];
        char q[160];
        size_t len;
        bool keep = true, seen_protocols = false;

        if (key->s[0] == '[' || strchr(key->s, ':') != NULL) {
                policy_report(
                    ps, key->line, true,
                    "\"%s\" names a relay host, not a recipient domain: ignored",
                    policy_quote(q, sizeof(q), key->s));
                return;
        }
        e.key = xstrdup(key->s);
        e.line = key->line;
        policy_lower(e.key);
        len = strlen(e.key);
        if (len > 1 && e.key[len - 1] == '.')
                e.key[--len] = '\0';
        if (!policy_valid_name(e.key + (e.key[0] == '.'))) {
                policy_report(ps, key->line, false, "bad domain \"%s\"",
                              policy_quote(q, sizeof(q), key->s));
                keep = false;
        } else if ((dup = policy_find(ps->p, e.key, len)) != NULL) {
                policy_report(ps, key->line, false,
                              "duplicate entry for %s (first at line %u)", e.key,
                              dup->line);
                keep = false;
        }

        if (ps->ntok < 2 || ps->tok[1].s[0] == '#') {
                policy_report(ps, key->line, false, "missing TLS level for %s",
                              policy_quote(q, sizeof(q), key->s));
                if (ps->ntok >= 2)
                        policy_parse_attr(ps, &e, &ps->tok[1], &seen_protocols);
        } else if (policy_level_parse(ps->tok[1].s, &e.written) < 0) {
                if (strcasecmp(ps->tok[1].s, "fingerprint") == 0)
                        policy_report(ps, ps->tok[1].line, false,
                                      "level fingerprint is not supported");
                else
                        policy_report(ps, ps->tok[1].line, false,
                                      "unknown TLS level \"%s\"",
                                      policy_quote(q, sizeof(q), ps->tok[1].s));
        } else {
                e.level = e.written;
                for (size_t i = 2; i < ps->ntok; i++)
                        policy_parse_attr(ps, &e, &ps->tok[i], &seen_protocols);
        }

        if (keep)
                policy_add(ps->p, &e);
        else
                policy_entry_cleanup(&e);
}

static int policy_parse_file(struct policy_parser *ps, FILE *f)
{
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        unsigned lineno = 0;
        int rc = 0;

        while ((n = getline(&line, &cap, f)) >= 0) {
                const char *s = line;

                lineno++;
                while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                        line[--n] = '\0';
                if (strlen(line) != (size_t)n) {
                        policy_report(ps, lineno, false, "NUL byte in line");
                        continue;
                }
                while (policy_is_space(*s))
                        s++;
                if (*s == '\0' || *s == '#')
                        continue; /* blank and comment lines do not end an entry */
                if (s != line) {
                        if (ps->ntok == 0)
                                policy_report(
                                    ps, lineno, false,
                                    "continuation line without an entry before it");
                        else
                                policy_tokenize(ps, s, lineno, false);
                        continue;
                }
                if (ps->ntok > 0)
                        policy_parse_entry(ps);
                policy_clear_tokens(ps);
                policy_tokenize(ps, s, lineno, true);
        }
        if (ferror(f)) {
                rc = -errno;
                if (rc == 0)
                        rc = -EIO;
                if (ps->errs)
                        fprintf(ps->errs, "%s: read error: %s\n", ps->path,
                                strerror(-rc));
        } else if (ps->ntok > 0) {
                policy_parse_entry(ps);
        }
        policy_clear_tokens(ps);
        free(ps->tok);
        free(line);
        return rc;
}

int policy_load(const char *path, FILE *errs, struct policy **out)
{
        struct policy_parser ps = {.path = path, .errs = errs};
        FILE *f;
        int rc;

        *out = NULL;
        if ((f = fopen(path, "r")) == NULL) {
                rc = -errno;
                if (errs)
                        fprintf(errs, "%s: cannot open: %s\n", path, strerror(errno));
                return rc;
        }
        ps.p = policy_new();
        ps.p->path = xstrdup(path);
        rc = policy_parse_file(&ps, f);
        fclose(f);
        if (rc == 0 && ps.nerrors > 0)
                rc = -EINVAL;
        if (rc < 0) {
                policy_free(ps.p);
                return rc;
        }
        *out = ps.p;
        return 0;
}

/* ---- lookups ---- */

static struct policy_expectation policy_default(enum policy_level written)
{
        struct policy_expectation x = {
            .level = written,
            .written = written,
            .source = POLICY_SOURCE_DEFAULT,
            .min_proto = POLICY_PROTO_FLOOR,
            .max_proto = POLICY_PROTO_CEILING,
        };

        x.match = policy_default_match(x.level, &x.nmatch);
        return x;
}

struct policy_expectation policy_mta_sts(const struct policy_expectation *base,
                                         const char *const *mx, size_t nmx)
{
        struct policy_expectation x = policy_default(POLICY_LEVEL_SECURE);

        if (base->source == POLICY_SOURCE_FILE || nmx == 0)
                return *base;
        x.source = POLICY_SOURCE_MTA_STS;
        x.match = mx;
        x.nmatch = nmx;
        return x;
}

struct policy_expectation policy_lookup(const struct policy *p, const char *domain)
{
        char name[POLICY_NAME_MAX + 1];
        size_t len = domain ? strlen(domain) : 0;
        const struct policy_entry *e = NULL;
        struct policy_expectation x;

        x = policy_default(p ? p->default_level : POLICY_LEVEL_ENCRYPT);
        if (len > 0 && domain[len - 1] == '.')
                len--;
        if (len == 0 || len > POLICY_NAME_MAX)
                return x;
        for (size_t i = 0; i < len; i++)
                name[i] = (char)tolower((unsigned char)domain[i]);
        name[len] = '\0';

        /* The domain itself, then ".parent" from the most specific. */
        e = policy_find(p, name, len);
        for (size_t i = 0; e == NULL && i < len; i++) {
                if (name[i] == '.')
                        e = policy_find(p, name + i, len - i);
        }
        if (e == NULL)
                return x;

        x.level = e->level;
        x.written = e->written;
        x.source = POLICY_SOURCE_FILE;
        x.key = e->key;
        x.file = p->path;
        x.line = e->line;
        if (e->nmatch > 0) {
                x.match = (const char *const *)e->match;
                x.nmatch = e->nmatch;
        } else {
                x.match = policy_default_match(e->level, &x.nmatch);
        }
        x.min_proto = e->min_proto;
        x.max_proto = e->max_proto;
        return x;
}

/* ---- judging ---- */

static void policy_say(struct policy_verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append to the reason; cut when full. */
static void policy_say(struct policy_verdict *v, const char *fmt, ...)
{
        size_t used = strlen(v->reason);
        va_list ap;

        if (used + 1 >= sizeof(v->reason))
                return;
        va_start(ap, fmt);
        vsnprintf(v->reason + used, sizeof(v->reason) - used, fmt, ap);
        va_end(ap);
}

/* Peer data (or NULL) for a reason. */
static const char *policy_peer(char *buf, size_t len, const char *s)
{
        if (s == NULL)
                return "(unknown)";
        return log_escape(buf, len, s, strlen(s));
}

/* Local text for a reason: printable ASCII, spaces kept. */
static const char *policy_local(char *buf, size_t len, const char *s)
{
        size_t i;

        for (i = 0; s[i] && i + 1 < len; i++)
                buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
        buf[i] = '\0';
        return buf;
}

/* Where the expectation came from, ending every failing reason. */
static void policy_say_level(struct policy_verdict *v, const struct policy_expectation *e)
{
        char q[160];

        policy_say(v, "; level %s", policy_level_str(e->written));
        if (e->level != e->written)
                policy_say(v, " (acting as %s)", policy_level_str(e->level));
        if (e->source == POLICY_SOURCE_FILE && e->key != NULL)
                policy_say(v, " from policy %s", policy_peer(q, sizeof(q), e->key));
        else
                policy_say(v, " (%s)", policy_source_str(e->source));
}

static size_t policy_trimlen(const char *s)
{
        size_t n = strlen(s);

        return (n > 0 && s[n - 1] == '.') ? n - 1 : n;
}

/*
 * Does the certificate name certid match domain? With subdomain, any name
 * strictly below domain. Otherwise the name itself, or a "*.parent"
 * certificate name when domain is one label below parent. Case-insensitive,
 * trailing dots ignored.
 */
static bool policy_name_matches(const char *certid, const char *domain, bool subdomain)
{
        size_t idlen = policy_trimlen(certid), dlen = policy_trimlen(domain);
        const char *dot;

        if (idlen == 0 || dlen == 0)
                return false;
        if (subdomain)
                return idlen > dlen + 1 && certid[idlen - dlen - 1] == '.' &&
                       strncasecmp(certid + idlen - dlen, domain, dlen) == 0;
        if (idlen == dlen && strncasecmp(certid, domain, dlen) == 0)
                return true;
        if (idlen > 2 && certid[0] == '*' && certid[1] == '.' &&
            (dot = memchr(domain, '.', dlen)) != NULL && dot != domain &&
            dlen - (size_t)(dot - domain) == idlen - 1 &&
            strncasecmp(dot, certid + 1, idlen - 1) == 0)
                return true;
        return false;
}

/* The domain a pattern stands for in this session, or NULL. */
static const char *policy_pattern_domain(const char *pattern,
                                         const struct policy_observation *o,
                                         bool *subdomain)
{
        *subdomain = false;
        if (strcasecmp(pattern, "nexthop") == 0)
                return o->nexthop;
        if (strcasecmp(pattern, "dot-nexthop") == 0) {
                *subdomain = true;
                return o->nexthop;
        }
        if (strcasecmp(pattern, "hostname") == 0)
                return o->mx_host;
        if (pattern[0] == '.' && pattern[1] != '\0') {
                *subdomain = true;
                return pattern + 1;
        }
        return pattern;
}

static bool policy_fail(struct policy_verdict *v, enum policy_result result)
{
        v->pass = false;
        v->result = result;
        return false;
}

/* TLS was not reached: why, in TLS-RPT terms. */
static enum policy_result policy_why_no_tls(const struct policy_observation *o,
                                            struct policy_verdict *v)
{
        char q[160];

        if (!o->starttls_offered && o->starttls_masked != NULL) {
                policy_say(
                    v,
                    "STARTTLS not offered; EHLO keyword \"%s\" looks like STARTTLS "
                    "masked on the path",
                    policy_peer(q, sizeof(q), o->starttls_masked));
                return POLICY_RESULT_STARTTLS_NOT_SUPPORTED;
        }
        if (!o->starttls_offered) {
                policy_say(v, "STARTTLS not offered");
                return POLICY_RESULT_STARTTLS_NOT_SUPPORTED;
        }
        if (o->starttls_reply != 0 && o->starttls_reply != 220) {
                policy_say(v, "STARTTLS refused with %d", o->starttls_reply);
                return POLICY_RESULT_STARTTLS_NOT_SUPPORTED;
        }
        if (o->starttls_reply == 0)
                policy_say(v, "STARTTLS offered but TLS not started");
        else if (o->tls_error != NULL)
                policy_say(v, "TLS handshake failed: %s",
                           policy_local(q, sizeof(q), o->tls_error));
        else
                policy_say(v, "TLS handshake failed");
        return POLICY_RESULT_VALIDATION_FAILURE;
}

static bool policy_judge_names(const struct policy_expectation *e,
                               const struct policy_observation *o,
                               struct policy_verdict *v)
{
        char q[160], q2[160];
        size_t nmatch = e->nmatch;
        const char *const *match = e->match;
        /* MTA-STS's mx patterns are host names, never Postfix's keywords
         * ("mx: nexthop" is the host nexthop, not the recipient domain). */
        bool sts = e->source == POLICY_SOURCE_MTA_STS;

        if (nmatch == 0)
                match = policy_default_match(e->level, &nmatch);
        for (size_t i = 0; i < nmatch; i++) {
                bool sub, one = sts || (match[i][0] == '*' && match[i][1] == '.');
                const char *domain =
                    one ? match[i] : policy_pattern_domain(match[i], o, &sub);

                if (domain == NULL)
                        continue;
                for (size_t j = 0; j < o->ncert_names; j++) {
                        if (o->cert_names[j] == NULL ||
                            !(one ? mtasts_name_allowed(o->cert_names[j], domain)
                                  : policy_name_matches(o->cert_names[j], domain, sub)))
                                continue;
                        policy_peer(v->matched_name, sizeof(v->matched_name),
                                    o->cert_names[j]);
                        policy_peer(v->matched_pattern, sizeof(v->matched_pattern),
                                    match[i]);
                        policy_say(v, "%s, certificate trusted, name %s matches %s",
                                   policy_proto_str(o->proto), v->matched_name,
                                   v->matched_pattern);
                        if (domain != match[i] && domain != match[i] + 1)
                                policy_say(v, " (%s)", policy_peer(q, sizeof(q), domain));
                        v->pass = true;
                        v->result = POLICY_RESULT_OK;
                        return true;
                }
        }

        if (o->ncert_names == 0) {
                policy_say(v, "certificate has no host names");
        } else {
                policy_say(v, "no certificate name matches match=");
                for (size_t i = 0; i < nmatch; i++)
                        policy_say(v, "%s%s", i ? ":" : "",
                                   policy_peer(q, sizeof(q), match[i]));
                policy_say(v, " (nexthop %s, hostname %s); names:",
                           policy_peer(q, sizeof(q), o->nexthop),
                           policy_peer(q2, sizeof(q2), o->mx_host));
                for (size_t j = 0; j < o->ncert_names && j < 3; j++)
                        policy_say(v, " %s", policy_peer(q, 64, o->cert_names[j]));
                if (o->ncert_names > 3)
                        policy_say(v, " +%zu more", o->ncert_names - 3);
        }
        policy_say_level(v, e);
        return policy_fail(v, POLICY_RESULT_CERT_HOST_MISMATCH);
}

/*
 * dane and dane-only, TLS reached: what the TLSA records say (RFC 7672).
 * Without usable records dane is encrypt, dane-only fails.
 */
static bool policy_judge_dane(const struct policy_expectation *e,
                              const struct policy_observation *o,
                              struct policy_verdict *v)
{
        static const char *const ta_names[] = {"hostname", "nexthop"};
        struct policy_expectation x;
        char q[160];
        const char *why = policy_local(q, sizeof(q), o->dane_why ? o->dane_why : "");

        switch (o->dane) {
        case POLICY_DANE_MATCH_EE:
                policy_say(v, "%s, certificate matches a DANE-EE TLSA record (%s)",
                           policy_proto_str(o->proto), why);
                return true;
        case POLICY_DANE_MATCH_TA:
                /* DANE-TA: the MX host name or the domain must be the leaf's. */
                x = *e;
                x.match = ta_names;
                x.nmatch = UTIL_ARRAY_LEN(ta_names);
                if (!policy_judge_names(&x, o, v))
                        return false;
                policy_say(v, "; DANE-TA (%s)", why);
                return true;
        case POLICY_DANE_NO_MATCH:
                policy_say(v, "certificate matches no TLSA record (%s)", why);
                policy_say_level(v, e);
                return policy_fail(v, POLICY_RESULT_TLSA_INVALID);
        case POLICY_DANE_FAILED:
                policy_say(v, "DNSSEC lookup failed (%s)", why);
                policy_say_level(v, e);
                return policy_fail(v, POLICY_RESULT_DNSSEC_INVALID);
        case POLICY_DANE_UNUSABLE:
        case POLICY_DANE_NONE:
                break;
        }
        if (e->level == POLICY_LEVEL_DANE_ONLY) {
                policy_say(v, "no usable TLSA records (%s)", why);
                policy_say_level(v, e);
                return policy_fail(v, POLICY_RESULT_DANE_REQUIRED);
        }
        policy_say(v, "%s reached; no usable TLSA records (%s): certificate not checked",
                   policy_proto_str(o->proto), why);
        return true;
}

bool policy_judge(const struct policy_expectation *e, const struct policy_observation *o,
                  struct policy_verdict *v)
{
        enum policy_level level = e->level;
        bool proto_narrowed;

        memset(v, 0, sizeof(*v));
        v->pass = true;
        v->result = POLICY_RESULT_OK;

        if (level == POLICY_LEVEL_NONE) {
                policy_say(v, "TLS not required");
                policy_say_level(v, e);
                return true;
        }

        if (!o->tls_reached) {
                v->result = policy_why_no_tls(o, v);
                if (level == POLICY_LEVEL_MAY) {
                        policy_say(v, "; level may: reported, not enforced");
                        return true;
                }
                policy_say_level(v, e);
                return policy_fail(v, v->result);
        }

        if (level == POLICY_LEVEL_MAY) {
                policy_say(v, "%s reached; level may checks nothing more",
                           policy_proto_str(o->proto));
                return true;
        }

        proto_narrowed = e->min_proto > POLICY_PROTO_FLOOR ||
                         (e->max_proto != 0 && e->max_proto < POLICY_PROTO_CEILING);
        if (o->proto == POLICY_PROTO_UNKNOWN
                ? proto_narrowed
                : (o->proto < e->min_proto ||
                   (e->max_proto != 0 && o->proto > e->max_proto))) {
                policy_say(v, "%s negotiated, protocols= allows %s to %s",
                           policy_proto_str(o->proto), policy_proto_str(e->min_proto),
                           policy_proto_str(e->max_proto));
                policy_say_level(v, e);
                return policy_fail(v, POLICY_RESULT_VALIDATION_FAILURE);
        }

        if (level == POLICY_LEVEL_DANE || level == POLICY_LEVEL_DANE_ONLY)
                return policy_judge_dane(e, o, v);
        if (level < POLICY_LEVEL_VERIFY) {
                policy_say(v, "%s reached; certificate not checked at level %s",
                           policy_proto_str(o->proto), policy_level_str(level));
                return true;
        }

        /* An expired certificate also breaks the chain: name the cause. */
        if (o->cert_expired) {
                policy_say(v, "certificate expired");
                policy_say_level(v, e);
                return policy_fail(v, POLICY_RESULT_CERT_EXPIRED);
        }
        if (!o->cert_trusted) {
                policy_say(v, "certificate not trusted");
                policy_say_level(v, e);
                return policy_fail(v, POLICY_RESULT_CERT_NOT_TRUSTED);
        }
        return policy_judge_names(e, o, v);
}
