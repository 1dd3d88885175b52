/*
 * mtasts: MTA-STS records, policies, name matching and the policy's HTTP
 * response, as pure functions. The contract and the RFC 8461 readings are in
 * mtasts.h; the grammar comments below quote RFC 8461's ABNF.
 */
#include "mtasts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"

#define MTASTS_NAME_MAX    253 /* a host name in text form, no trailing dot */
#define MTASTS_LABEL_MAX   63
#define MTASTS_PATTERN_MAX (2 + MTASTS_NAME_MAX) /* "*." and a host name */
#define MTASTS_FIELD_NAME_MAX                                                            \
        32 /* (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
#define MTASTS_MAX_AGE_DIGITS 10 /* 1*10(DIGIT) */
#define MTASTS_QUOTE          80 /* an escaped piece of peer data in a reason */
#define MTASTS_TXT_PREFIX     "v=STSv1;"
#define MTASTS_TXT_PREFIX_LEN (sizeof(MTASTS_TXT_PREFIX) - 1)

static const char *const mtasts_mode_names[] = {
    [MTASTS_MODE_NONE] = "none",
    [MTASTS_MODE_TESTING] = "testing",
    [MTASTS_MODE_ENFORCE] = "enforce",
};

const char *mtasts_mode_str(enum mtasts_mode m)
{
        if ((size_t)m < UTIL_ARRAY_LEN(mtasts_mode_names))
                return mtasts_mode_names[m];
        return "invalid";
}

static void mtasts_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void mtasts_err(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;

        if (err == NULL || errlen == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

static const char *mtasts_quote(char q[MTASTS_QUOTE], const char *s, size_t n)
{
        return log_escape(q, MTASTS_QUOTE, s, n);
}

/* ---- characters (ASCII only, whatever the locale) ---- */

static bool mtasts_is_alpha(unsigned char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool mtasts_is_digit(unsigned char c)
{
        return c >= '0' && c <= '9';
}

static bool mtasts_is_alnum(unsigned char c)
{
        return mtasts_is_alpha(c) || mtasts_is_digit(c);
}

static bool mtasts_is_wsp(unsigned char c)
{
        return c == ' ' || c == '\t';
}

static char mtasts_lower(char c)
{
        return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* The field names of records and policies; the length of the run at s. */
static size_t mtasts_field_name_len(const char *s, size_t n)
{
        size_t i;

        if (n == 0 || !mtasts_is_alnum((unsigned char)s[0]))
                return 0;
        for (i = 1; i < n; i++) {
                unsigned char c = (unsigned char)s[i];

                if (!mtasts_is_alnum(c) && c != '_' && c != '-' && c != '.')
                        break;
        }
        return i;
}

/* ---- names ---- */

/*
 * s (n bytes) as a host name in out: lower case, one trailing dot removed,
 * RFC 5321 labels (let-dig [*(let-dig / "-") let-dig]), 1..63 each, at most
 * 253 in all. Returns the length, or -1 when s is not a host name.
 */
static int mtasts_norm_host(const char *s, size_t n, char out[MTASTS_NAME_MAX + 1])
{
        size_t label = 0;

        if (n > 0 && s[n - 1] == '.')
                n--;
        if (n == 0 || n > MTASTS_NAME_MAX)
                return -1;
        for (size_t i = 0; i <= n; i++) {
                unsigned char c = i < n ? (unsigned char)s[i] : '.';

                if (c == '.') {
                        if (label == 0 || label > MTASTS_LABEL_MAX || out[i - 1] == '-')
                                return -1;
                        label = 0;
                } else if (mtasts_is_alnum(c) || (c == '-' && label > 0)) {
                        label++;
                } else {
                        return -1;
                }
                if (i < n)
                        out[i] = mtasts_lower((char)c);
        }
        out[n] = '\0';
        return (int)n;
}

/* A host name, or "*." and a host name, normalised as above; length or -1. */
static int mtasts_norm_pattern(const char *s, size_t n, char out[MTASTS_PATTERN_MAX + 1])
{
        int len;

        if (n >= 2 && s[0] == '*' && s[1] == '.') {
                out[0] = '*';
                out[1] = '.';
                len = mtasts_norm_host(s + 2, n - 2, out + 2);
                return len < 0 ? -1 : len + 2;
        }
        return mtasts_norm_host(s, n, out);
}

/* Does the normalised pattern cover the normalised host name? */
static bool mtasts_pattern_covers(const char *pattern, const char *host)
{
        const char *dot;

        if (pattern[0] != '*')
                return strcmp(pattern, host) == 0;
        dot = strchr(host, '.');
        return dot != NULL && strcmp(dot + 1, pattern + 2) == 0;
}

bool mtasts_name_allowed(const char *certname, const char *pattern)
{
        char c[MTASTS_PATTERN_MAX + 1], p[MTASTS_PATTERN_MAX + 1];
        bool cwild, pwild;

        if (certname == NULL || pattern == NULL ||
            mtasts_norm_pattern(certname, strlen(certname), c) < 0 ||
            mtasts_norm_pattern(pattern, strlen(pattern), p) < 0)
                return false;
        cwild = c[0] == '*';
        pwild = p[0] == '*';
        /* A certificate wildcard over a single label ("*.net") names no one. */
        if (cwild && strchr(c + 2, '.') == NULL)
                return false;
        if (cwild && pwild) /* both are "one label, then the same name" */
                return strcmp(c + 2, p + 2) == 0;
        if (cwild)
                return mtasts_pattern_covers(c, p);
        return mtasts_pattern_covers(p, c);
}

/* ---- the TXT record (3.1) ---- */

/*
 * sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
 * sts-field-delim = *WSP ";" *WSP
 * sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
 * sts-extension   = sts-ext-name "=" sts-ext-value
 * sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
 *
 * s begins with MTASTS_TXT_PREFIX, which is sts-version and a delimiter.
 */
static int mtasts_txt_record(const char *s, size_t n, char id[MTASTS_ID_MAX + 1],
                             char *err, size_t errlen)
{
        char found[MTASTS_ID_MAX + 1] = "";
        char q[MTASTS_QUOTE];
        size_t i = MTASTS_TXT_PREFIX_LEN;

        while (i < n && mtasts_is_wsp((unsigned char)s[i]))
                i++;
        while (i < n) {
                size_t name = i, nlen = mtasts_field_name_len(s + i, n - i), val,
                       vlen = 0;

                if (s[i] == ';') {
                        mtasts_err(err, errlen, "empty field");
                        return -EINVAL;
                }
                if (nlen == 0 || i + nlen >= n || s[i + nlen] != '=') {
                        const char *semi = memchr(s + i, ';', n - i);

                        mtasts_err(err, errlen, "bad field \"%s\" (expected name=value)",
                                   mtasts_quote(q, s + i,
                                                semi ? (size_t)(semi - (s + i)) : n - i));
                        return -EINVAL;
                }
                if (nlen > MTASTS_FIELD_NAME_MAX) {
                        mtasts_err(err, errlen,
                                   "field name \"%s\" longer than %d characters",
                                   mtasts_quote(q, s + i, nlen), MTASTS_FIELD_NAME_MAX);
                        return -EINVAL;
                }
                val = i + nlen + 1;
                while (val + vlen < n && s[val + vlen] != ';' &&
                       !mtasts_is_wsp((unsigned char)s[val + vlen]))
                        vlen++;
                if (nlen == 2 && memcmp(s + name, "id", 2) == 0 && found[0] == '\0') {
                        bool ok = vlen >= 1 && vlen <= MTASTS_ID_MAX;

                        for (size_t k = 0; ok && k < vlen; k++)
                                ok = mtasts_is_alnum((unsigned char)s[val + k]);
                        if (!ok) {
                                mtasts_err(err, errlen,
                                           "bad id \"%s\" (1 to %d letters and digits)",
                                           mtasts_quote(q, s + val, vlen), MTASTS_ID_MAX);
                                return -EINVAL;
                        }
                        memcpy(found, s + val, vlen);
                        found[vlen] = '\0';
                } else {
                        bool ok = vlen >= 1;

                        for (size_t k = 0; ok && k < vlen; k++) {
                                unsigned char c = (unsigned char)s[val + k];

                                ok = c >= 0x21 && c <= 0x7e && c != '=';
                        }
                        if (!ok) {
                                char qn[MTASTS_QUOTE];

                                mtasts_err(err, errlen, "bad value \"%s\" for field %s",
                                           mtasts_quote(q, s + val, vlen),
                                           mtasts_quote(qn, s + name, nlen));
                                return -EINVAL;
                        }
                }
                /* the end, or a delimiter and then the end or another field */
                i = val + vlen;
                if (i == n)
                        break;
                while (i < n && mtasts_is_wsp((unsigned char)s[i]))
                        i++;
                if (i == n)
                        break; /* trailing whitespace: tolerated (see mtasts.h) */
                if (s[i] != ';') {
                        mtasts_err(err, errlen, "expected ';' after field %s",
                                   mtasts_quote(q, s + name, nlen));
                        return -EINVAL;
                }
                i++;
                while (i < n && mtasts_is_wsp((unsigned char)s[i]))
                        i++;
        }
        if (found[0] == '\0') {
                mtasts_err(err, errlen, "no id field");
                return -EINVAL;
        }
        memcpy(id, found, sizeof(found));
        return 0;
}

int mtasts_txt_parse(const char *const *recs, const size_t *lens, size_t n,
                     char id[MTASTS_ID_MAX + 1], char *err, size_t errlen)
{
        size_t found = 0, which = 0;
        int rc;

        id[0] = '\0';
        mtasts_err(err, errlen, "%s", "");
        for (size_t i = 0; i < n; i++) {
                if (lens[i] >= MTASTS_TXT_PREFIX_LEN &&
                    memcmp(recs[i], MTASTS_TXT_PREFIX, MTASTS_TXT_PREFIX_LEN) == 0) {
                        if (found++ == 0)
                                which = i;
                }
        }
        if (found == 0) {
                mtasts_err(err, errlen, "no TXT record begins with \"%s\"",
                           MTASTS_TXT_PREFIX);
                return 0;
        }
        if (found > 1) {
                mtasts_err(err, errlen,
                           "%zu TXT records begin with \"%s\" (exactly one is needed)",
                           found, MTASTS_TXT_PREFIX);
                return -EINVAL;
        }
        rc = mtasts_txt_record(recs[which], lens[which], id, err, errlen);
        return rc < 0 ? rc : 1;
}

/* ---- the policy (3.2) ---- */

enum mtasts_key {
        MTASTS_KEY_VERSION,
        MTASTS_KEY_MODE,
        MTASTS_KEY_MAX_AGE,
        MTASTS_KEY_MX,
        MTASTS_KEY_OTHER,
};

static const char *const mtasts_key_names[] = {
    [MTASTS_KEY_VERSION] = "version",
    [MTASTS_KEY_MODE] = "mode",
    [MTASTS_KEY_MAX_AGE] = "max_age",
    [MTASTS_KEY_MX] = "mx",
};

struct mtasts_parser {
        struct mtasts_policy *out;
        unsigned seen[MTASTS_KEY_OTHER]; /* line of the first occurrence, 0: none */
        unsigned
            other_case[MTASTS_KEY_OTHER]; /* first line with the name in another case */
        char *err;
        size_t errlen;
};

/*
 * The length of the well-formed UTF-8 sequence (RFC 3629 UTF8-2, -3, -4) at
 * s, of at most n bytes, whose first byte is 0x80 or more; 0 if there is none.
 */
static size_t mtasts_utf8_len(const unsigned char *s, size_t n)
{
        unsigned char lo = 0x80, hi = 0xbf;
        size_t tail;

        if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                tail = 1;
        } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                tail = 2;
                lo = s[0] == 0xe0 ? 0xa0 : 0x80;
                hi = s[0] == 0xed ? 0x9f : 0xbf;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                tail = 3;
                lo = s[0] == 0xf0 ? 0x90 : 0x80;
                hi = s[0] == 0xf4 ? 0x8f : 0xbf;
        } else {
                return 0;
        }
        if (n < tail + 1 || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t k = 2; k <= tail; k++) {
                if (s[k] < 0x80 || s[k] > 0xbf)
                        return 0;
        }
        return tail + 1;
}

/*
 * sts-policy-ext-value = sts-policy-vchar [*(%x20 / sts-policy-vchar)
 *                        sts-policy-vchar]
 * sts-policy-vchar     = VCHAR / UTF8-2 / UTF8-3 / UTF8-4
 * v has no leading or trailing whitespace (the caller took it off).
 */
static bool mtasts_policy_value_ok(const char *v, size_t n)
{
        size_t i = 0;

        if (n == 0)
                return false;
        while (i < n) {
                unsigned char c = (unsigned char)v[i];
                size_t step = 1;

                if (c >= 0x80)
                        step = mtasts_utf8_len((const unsigned char *)v + i, n - i);
                else if (c < 0x20 || c == 0x7f)
                        step = 0;
                if (step == 0)
                        return false;
                i += step;
        }
        return true;
}

static int mtasts_policy_max_age(struct mtasts_parser *ps, unsigned line, const char *v,
                                 size_t n)
{
        uint64_t age = 0;
        char q[MTASTS_QUOTE];
        bool ok = n >= 1 && n <= MTASTS_MAX_AGE_DIGITS;

        for (size_t i = 0; ok && i < n; i++) {
                ok = mtasts_is_digit((unsigned char)v[i]);
                age = age * 10 + (uint64_t)(v[i] - '0');
        }
        if (!ok) {
                mtasts_err(ps->err, ps->errlen,
                           "line %u: bad max_age \"%s\" (1 to %d digits)", line,
                           mtasts_quote(q, v, n), MTASTS_MAX_AGE_DIGITS);
                return -EINVAL;
        }
        ps->out->max_age = age > MTASTS_MAX_AGE_MAX ? MTASTS_MAX_AGE_MAX : (uint32_t)age;
        return 0;
}

static int mtasts_policy_mx(struct mtasts_parser *ps, unsigned line, const char *v,
                            size_t n)
{
        struct mtasts_policy *p = ps->out;
        char pattern[MTASTS_PATTERN_MAX + 1];
        char q[MTASTS_QUOTE];

        if (mtasts_norm_pattern(v, n, pattern) < 0) {
                mtasts_err(
                    ps->err, ps->errlen,
                    "line %u: bad mx \"%s\" (a host name or \"*.\" and a host name)",
                    line, mtasts_quote(q, v, n));
                return -EINVAL;
        }
        if (p->nmx == MTASTS_MX_MAX) {
                mtasts_err(ps->err, ps->errlen, "line %u: more than %d mx lines", line,
                           MTASTS_MX_MAX);
                return -EINVAL;
        }
        p->mx = xrealloc(p->mx, (p->nmx + 1) * sizeof(*p->mx));
        p->mx[p->nmx++] = xstrdup(pattern);
        return 0;
}

/* The first occurrence of a known field; later ones are ignored (3.2). */
static int mtasts_policy_field(struct mtasts_parser *ps, enum mtasts_key key,
                               unsigned line, const char *v, size_t n)
{
        char q[MTASTS_QUOTE];

        switch (key) {
        case MTASTS_KEY_VERSION:
                if (n != 5 || memcmp(v, "STSv1", 5) != 0) {
                        mtasts_err(ps->err, ps->errlen,
                                   "line %u: version \"%s\" is not STSv1", line,
                                   mtasts_quote(q, v, n));
                        return -EINVAL;
                }
                return 0;
        case MTASTS_KEY_MODE:
                for (size_t m = 0; m < UTIL_ARRAY_LEN(mtasts_mode_names); m++) {
                        if (strlen(mtasts_mode_names[m]) == n &&
                            memcmp(v, mtasts_mode_names[m], n) == 0) {
                                ps->out->mode = (enum mtasts_mode)m;
                                return 0;
                        }
                }
                mtasts_err(ps->err, ps->errlen,
                           "line %u: bad mode \"%s\" (enforce, testing or none)", line,
                           mtasts_quote(q, v, n));
                return -EINVAL;
        case MTASTS_KEY_MAX_AGE:
                return mtasts_policy_max_age(ps, line, v, n);
        case MTASTS_KEY_MX:
        case MTASTS_KEY_OTHER:
                break;
        }
        return 0;
}

/* The value of a "name:" line: from `from` on, without the whitespace around it. */
static void mtasts_value_span(const char *s, size_t n, size_t from, size_t *v,
                              size_t *vend)
{
        *v = from;
        while (*v < n && mtasts_is_wsp((unsigned char)s[*v]))
                (*v)++;
        *vend = n;
        while (*vend > *v && mtasts_is_wsp((unsigned char)s[*vend - 1]))
                (*vend)--;
}

static bool mtasts_blank(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (!mtasts_is_wsp((unsigned char)s[i]))
                        return false;
        }
        return true;
}

/*
 * One line, without its LF or CRLF:
 * sts-policy-field *WSP, a field being name ":" *WSP value.
 */
static int mtasts_policy_line(struct mtasts_parser *ps, unsigned line, const char *s,
                              size_t n)
{
        size_t nlen = mtasts_field_name_len(s, n), v, vend;
        enum mtasts_key key = MTASTS_KEY_OTHER;
        char q[MTASTS_QUOTE];

        /* A blank line: tolerated and skipped (see mtasts.h). */
        if (mtasts_blank(s, n))
                return 0;
        if (nlen == 0 || nlen == n || s[nlen] != ':') {
                mtasts_err(ps->err, ps->errlen,
                           "line %u: expected \"name: value\", got \"%s\"", line,
                           mtasts_quote(q, s, n));
                return -EINVAL;
        }
        if (nlen > MTASTS_FIELD_NAME_MAX) {
                mtasts_err(ps->err, ps->errlen,
                           "line %u: field name \"%s\" longer than %d characters", line,
                           mtasts_quote(q, s, nlen), MTASTS_FIELD_NAME_MAX);
                return -EINVAL;
        }
        mtasts_value_span(s, n, nlen + 1, &v, &vend);
        if (vend == v) {
                mtasts_err(ps->err, ps->errlen, "line %u: %.*s has no value", line,
                           (int)nlen, s); /* field name characters are printable */
                return -EINVAL;
        }
        if (!mtasts_policy_value_ok(s + v, vend - v)) {
                mtasts_err(ps->err, ps->errlen, "line %u: bad value for %.*s: \"%s\"",
                           line, (int)nlen, s, mtasts_quote(q, s + v, vend - v));
                return -EINVAL;
        }

        for (size_t k = 0; k < UTIL_ARRAY_LEN(mtasts_key_names); k++) {
                if (strlen(mtasts_key_names[k]) != nlen)
                        continue;
                if (memcmp(s, mtasts_key_names[k], nlen) == 0) {
                        key = (enum mtasts_key)k;
                        break;
                }
                if (strncasecmp(s, mtasts_key_names[k], nlen) == 0 &&
                    ps->other_case[k] == 0)
                        ps->other_case[k] = line;
        }
        if (key == MTASTS_KEY_OTHER)
                return 0; /* an extension: ignored */
        if (key == MTASTS_KEY_MX)
                return mtasts_policy_mx(ps, line, s + v, vend - v);
        if (ps->seen[key] != 0)
                return 0; /* a repeated field: only the first counts */
        ps->seen[key] = line;
        return mtasts_policy_field(ps, key, line, s + v, vend - v);
}

/* After the last line: the required fields are all there. */
static int mtasts_policy_required(struct mtasts_parser *ps)
{
        static const enum mtasts_key required[] = {MTASTS_KEY_VERSION, MTASTS_KEY_MODE,
                                                   MTASTS_KEY_MAX_AGE, MTASTS_KEY_MX};

        for (size_t i = 0; i < UTIL_ARRAY_LEN(required); i++) {
                enum mtasts_key k = required[i];
                const char *why = "";

                if (k == MTASTS_KEY_MX) {
                        if (ps->out->nmx > 0 || ps->out->mode == MTASTS_MODE_NONE)
                                continue;
                        why = " (required unless mode is none)";
                } else if (ps->seen[k] != 0) {
                        continue;
                }
                if (ps->other_case[k] != 0)
                        mtasts_err(ps->err, ps->errlen,
                                   "no %s field%s (line %u has it in another case; field "
                                   "names are case-sensitive)",
                                   mtasts_key_names[k], why, ps->other_case[k]);
                else
                        mtasts_err(ps->err, ps->errlen, "no %s field%s",
                                   mtasts_key_names[k], why);
                return -EINVAL;
        }
        return 0;
}

int mtasts_policy_parse(const char *text, size_t len, struct mtasts_policy *out,
                        char *err, size_t errlen)
{
        struct mtasts_parser ps = {.out = out, .err = err, .errlen = errlen};
        const char *nul;
        unsigned line = 0;
        size_t pos = 0;
        int rc = 0;

        memset(out, 0, sizeof(*out));
        mtasts_err(err, errlen, "%s", "");
        if (len > MTASTS_BODY_MAX) {
                mtasts_err(err, errlen, "policy of %zu bytes (at most %d are taken)", len,
                           MTASTS_BODY_MAX);
                return -EINVAL;
        }
        if (len == 0) {
                mtasts_err(err, errlen, "empty policy");
                return -EINVAL;
        }
        if ((nul = memchr(text, '\0', len)) != NULL) {
                for (const char *s = text; s < nul; s++)
                        line += *s == '\n';
                mtasts_err(err, errlen, "line %u: NUL byte", line + 1);
                return -EINVAL;
        }
        /* sts-policy-term = LF / CRLF; the last one is optional */
        while (rc == 0 && pos < len) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;

                if (nl != NULL && n > 0 && text[end - 1] == '\r')
                        n--;
                rc = mtasts_policy_line(&ps, ++line, text + pos, n);
                pos = nl ? end + 1 : len;
        }
        if (rc == 0)
                rc = mtasts_policy_required(&ps);
        if (rc < 0)
                mtasts_policy_cleanup(out);
        return rc;
}

void mtasts_policy_cleanup(struct mtasts_policy *p)
{
        if (p == NULL)
                return;
        for (size_t i = 0; i < p->nmx; i++)
                free(p->mx[i]);
        free(p->mx);
        memset(p, 0, sizeof(*p));
}

/* ---- the HTTP response (3.3) ---- */

/* tchar of RFC 9110 5.6.2 */
static bool mtasts_is_tchar(unsigned char c)
{
        return mtasts_is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

struct mtasts_http {
        const char *ctype; /* Content-Type value, NULL: none */
        size_t ctype_len;
        bool have_clen;
        size_t clen;
};

/* Content-Length: 1*DIGIT, no larger than fits; 0 or -1. */
static int mtasts_http_clen(const char *v, size_t n, size_t *out)
{
        size_t x = 0;

        if (n == 0)
                return -1;
        for (size_t i = 0; i < n; i++) {
                if (!mtasts_is_digit((unsigned char)v[i]) || x > (SIZE_MAX - 9) / 10)
                        return -1;
                x = x * 10 + (size_t)(v[i] - '0');
        }
        *out = x;
        return 0;
}

/* One header field line (without its line end): name ":" OWS value OWS. */
static int mtasts_http_header(struct mtasts_http *h, const char *s, size_t n, char *err,
                              size_t errlen)
{
        size_t nlen = 0, v, vend;
        char q[MTASTS_QUOTE];

        while (nlen < n && mtasts_is_tchar((unsigned char)s[nlen]))
                nlen++;
        if (n > 0 && mtasts_is_wsp((unsigned char)s[0])) {
                mtasts_err(err, errlen, "folded header line \"%s\"",
                           mtasts_quote(q, s, n));
                return -EINVAL;
        }
        if (nlen == 0 || nlen == n || s[nlen] != ':') {
                mtasts_err(err, errlen, "bad header line \"%s\"", mtasts_quote(q, s, n));
                return -EINVAL;
        }
        mtasts_value_span(s, n, nlen + 1, &v, &vend);
        for (size_t i = v; i < vend; i++) {
                unsigned char c = (unsigned char)s[i];

                if ((c < 0x20 && c != '\t') || c == 0x7f) {
                        mtasts_err(err, errlen, "bad header line \"%s\"",
                                   mtasts_quote(q, s, n));
                        return -EINVAL;
                }
        }

        if (nlen == 12 && strncasecmp(s, "Content-Type", nlen) == 0) {
                if (h->ctype != NULL) {
                        mtasts_err(err, errlen, "more than one Content-Type");
                        return -EINVAL;
                }
                h->ctype = s + v;
                h->ctype_len = vend - v;
        } else if (nlen == 17 && strncasecmp(s, "Transfer-Encoding", nlen) == 0) {
                if (vend - v != 8 || strncasecmp(s + v, "identity", 8) != 0) {
                        mtasts_err(err, errlen, "Transfer-Encoding %s is not supported",
                                   mtasts_quote(q, s + v, vend - v));
                        return -EINVAL;
                }
        } else if (nlen == 14 && strncasecmp(s, "Content-Length", nlen) == 0) {
                size_t clen;

                if (mtasts_http_clen(s + v, vend - v, &clen) < 0) {
                        mtasts_err(err, errlen, "bad Content-Length \"%s\"",
                                   mtasts_quote(q, s + v, vend - v));
                        return -EINVAL;
                }
                if (h->have_clen && clen != h->clen) {
                        mtasts_err(err, errlen, "conflicting Content-Length %zu and %zu",
                                   h->clen, clen);
                        return -EINVAL;
                }
                h->have_clen = true;
                h->clen = clen;
        }
        return 0;
}

/* The media type is text/plain, whatever the parameters after a ';'. */
static int mtasts_http_ctype(const struct mtasts_http *h, char *err, size_t errlen)
{
        const char *semi;
        size_t n;
        char q[MTASTS_QUOTE];

        if (h->ctype == NULL) {
                mtasts_err(err, errlen, "no Content-Type (text/plain is required)");
                return -EINVAL;
        }
        semi = memchr(h->ctype, ';', h->ctype_len);
        n = semi ? (size_t)(semi - h->ctype) : h->ctype_len;
        while (n > 0 && mtasts_is_wsp((unsigned char)h->ctype[n - 1]))
                n--;
        if (n == 0) {
                mtasts_err(err, errlen, "empty Content-Type (text/plain is required)");
                return -EINVAL;
        }
        if (n != 10 || strncasecmp(h->ctype, "text/plain", 10) != 0) {
                mtasts_err(err, errlen, "Content-Type %s (text/plain is required)",
                           mtasts_quote(q, h->ctype, n));
                return -EINVAL;
        }
        return 0;
}

/* "HTTP/1.x 200 reason": 0 with *status set, or -1. */
static int mtasts_http_status(const char *s, size_t n, int *status)
{
        if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') ||
            s[8] != ' ')
                return -1;
        for (size_t i = 9; i < 12; i++) {
                if (!mtasts_is_digit((unsigned char)s[i]))
                        return -1;
        }
        if (n > 12 && s[12] != ' ')
                return -1;
        *status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
        return 0;
}

int mtasts_http_parse(const char *buf, size_t len, bool close_notify, const char **body,
                      size_t *body_len, char *err, size_t errlen)
{
        struct mtasts_http h = {0};
        const char *status_line = NULL;
        size_t status_len = 0, pos = 0, fields = 0, head_end = 0, avail;
        bool ended = false;
        char q[MTASTS_QUOTE];
        int status;

        *body = NULL;
        *body_len = 0;
        mtasts_err(err, errlen, "%s", "");

        /* Find the empty line that ends the headers; then the status, then the fields. */
        while (pos < len && pos <= MTASTS_HEADER_MAX) {
                const char *nl = memchr(buf + pos, '\n', len - pos);
                size_t end, n;

                if (nl == NULL)
                        break;
                end = (size_t)(nl - buf);
                n = end - pos;
                if (n > 0 && buf[end - 1] == '\r')
                        n--;
                if (status_line == NULL) {
                        status_line = buf + pos;
                        status_len = n;
                        fields = end + 1;
                } else if (n == 0) {
                        ended = true;
                        head_end = end + 1;
                        break;
                }
                pos = end + 1;
        }
        if (!ended || head_end > MTASTS_HEADER_MAX) {
                if (len > MTASTS_HEADER_MAX)
                        mtasts_err(err, errlen, "HTTP headers over %d bytes",
                                   MTASTS_HEADER_MAX);
                else
                        mtasts_err(err, errlen, "no header end");
                return -EINVAL;
        }
        if (mtasts_http_status(status_line, status_len, &status) < 0) {
                mtasts_err(err, errlen, "bad HTTP status line \"%s\"",
                           mtasts_quote(q, status_line, status_len));
                return -EINVAL;
        }
        if (status >= 300 && status <= 399) {
                mtasts_err(err, errlen, "HTTP status %d: redirects are not followed",
                           status);
                return -EINVAL;
        }
        if (status != 200) {
                mtasts_err(err, errlen, "HTTP status %d", status);
                return -EINVAL;
        }

        /* the field lines, up to the empty line that ends them */
        for (pos = fields; pos < head_end;) {
                const char *nl = memchr(buf + pos, '\n', head_end - pos);
                size_t end = (size_t)(nl - buf), n = end - pos;

                if (n > 0 && buf[end - 1] == '\r')
                        n--;
                if (n == 0)
                        break;
                if (mtasts_http_header(&h, buf + pos, n, err, errlen) < 0)
                        return -EINVAL;
                pos = end + 1;
        }
        if (mtasts_http_ctype(&h, err, errlen) < 0)
                return -EINVAL;

        avail = len - head_end;
        if ((h.have_clen ? h.clen : avail) > MTASTS_BODY_MAX) {
                mtasts_err(err, errlen, "body over %d bytes", MTASTS_BODY_MAX);
                return -EINVAL;
        }
        if (h.have_clen && avail < h.clen) {
                mtasts_err(err, errlen, "truncated body (%zu of %zu bytes)", avail,
                           h.clen);
                return -EINVAL;
        }
        if (h.have_clen && avail > h.clen) {
                mtasts_err(err, errlen, "%zu bytes after the body (Content-Length %zu)",
                           avail - h.clen, h.clen);
                return -EINVAL;
        }
        if (!h.have_clen && !close_notify) {
                mtasts_err(err, errlen,
                           "no Content-Length and no TLS close_notify: the body (%zu "
                           "bytes) may have been cut short",
                           avail);
                return -EINVAL;
        }
        *body = buf + head_end;
        *body_len = avail;
        return 0;
}
