#include "smtp.h"

#include <ctype.h>
#include <idn2.h>
#include <string.h>

#include "util.h"

/* ---- small helpers ---- */

static int smtp_lower(int c)
{
        return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Case-insensitive ASCII equality of a[0..n) and b[0..n). */
static bool smtp_mem_ci(const char *a, const char *b, size_t n)
{
        size_t i;

        for (i = 0; i < n; i++) {
                if (smtp_lower((unsigned char)a[i]) != smtp_lower((unsigned char)b[i]))
                        return false;
        }
        return true;
}

/* Case-insensitive ASCII equality of s[0..n) and the C string w. */
static bool smtp_eq_ci(const char *s, size_t n, const char *w)
{
        return strlen(w) == n && smtp_mem_ci(s, w, n);
}

static bool smtp_is_alnum(char c);

static bool smtp_is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* Control characters and DEL; bytes >= 0x80 (SMTPUTF8) are not. */
static bool smtp_is_ctl(char c)
{
        unsigned char u = (unsigned char)c;

        return u < 0x20 || u == 0x7f;
}

/* ---- line splitting ---- */

enum smtp_line_result smtp_lines_next(struct smtp_lines *s, const char *p, size_t n,
                                      struct smtp_line *out)
{
        const char *lf = n > 0 ? memchr(p, '\n', n) : NULL;
        size_t linelen, end;

        out->p = p;
        out->len = 0;
        out->consumed = 0;
        out->crlf = false;

        if (lf == NULL) {
                /*
                 * No LF yet. The line will be at least n + 1 bytes long, so
                 * once n >= max it is too long whatever comes: drop what is
                 * here and remember that we are inside it.
                 */
                if (n > 0 && (s->overflow || n >= s->max)) {
                        s->overflow = true;
                        s->last_cr = p[n - 1] == '\r';
                        out->consumed = n;
                }
                return SMTP_LINE_NEED_MORE;
        }

        linelen = (size_t)(lf - p) + 1;
        out->consumed = linelen;
        /* Where the line's CR was dropped already, it is remembered: what
         * ends a message must not depend on where reads split the input. */
        out->crlf = linelen >= 2 ? p[linelen - 2] == '\r' : s->overflow && s->last_cr;
        if (s->overflow || linelen > s->max) {
                s->overflow = false;
                s->last_cr = false;
                return SMTP_LINE_TOO_LONG;
        }

        end = linelen - 1;
        if (end == 0 || p[end - 1] != '\r') {
                out->len = end;
                return SMTP_LINE_BARE_LF;
        }
        end--;
        out->len = end;
        if (memchr(p, '\r', end) != NULL)
                return SMTP_LINE_BARE_CR;
        return SMTP_LINE_OK;
}

const char *smtp_line_result_str(enum smtp_line_result r)
{
        switch (r) {
        case SMTP_LINE_OK:
                return "ok";
        case SMTP_LINE_NEED_MORE:
                return "need_more";
        case SMTP_LINE_TOO_LONG:
                return "line_too_long";
        case SMTP_LINE_BARE_LF:
                return "bare_lf";
        case SMTP_LINE_BARE_CR:
                return "bare_cr";
        }
        return "unknown";
}

/* ---- commands ---- */

static const struct smtp_verb_name {
        enum smtp_verb verb;
        const char *name;
} smtp_verb_names[] = {
    {SMTP_VERB_UNKNOWN, "UNKNOWN"}, {SMTP_VERB_HELO, "HELO"},
    {SMTP_VERB_EHLO, "EHLO"},       {SMTP_VERB_STARTTLS, "STARTTLS"},
    {SMTP_VERB_MAIL, "MAIL"},       {SMTP_VERB_RCPT, "RCPT"},
    {SMTP_VERB_DATA, "DATA"},       {SMTP_VERB_BDAT, "BDAT"},
    {SMTP_VERB_RSET, "RSET"},       {SMTP_VERB_NOOP, "NOOP"},
    {SMTP_VERB_QUIT, "QUIT"},       {SMTP_VERB_VRFY, "VRFY"},
    {SMTP_VERB_EXPN, "EXPN"},       {SMTP_VERB_HELP, "HELP"},
    {SMTP_VERB_AUTH, "AUTH"},       {SMTP_VERB_ETRN, "ETRN"},
    {SMTP_VERB_XCLIENT, "XCLIENT"}, {SMTP_VERB_XFORWARD, "XFORWARD"},
    {SMTP_VERB_BAD, "BAD"},
};

void smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out)
{
        size_t vlen = 0, i, a;

        while (vlen < len && (smtp_is_alnum(line[vlen]) || line[vlen] == '-'))
                vlen++;

        out->verb = vlen == 0 || (vlen < len && line[vlen] != ' ') ? SMTP_VERB_BAD
                                                                   : SMTP_VERB_UNKNOWN;
        a = 0;
        for (i = 1; out->verb == SMTP_VERB_UNKNOWN && i < UTIL_ARRAY_LEN(smtp_verb_names);
             i++) {
                if (smtp_verb_names[i].verb != SMTP_VERB_BAD &&
                    smtp_eq_ci(line, vlen, smtp_verb_names[i].name)) {
                        out->verb = smtp_verb_names[i].verb;
                        a = vlen;
                        while (a < len && line[a] == ' ')
                                a++;
                        break;
                }
        }
        while (len > a && line[len - 1] == ' ')
                len--;
        out->args = line + a;
        out->args_len = len - a;
}

const char *smtp_verb_str(enum smtp_verb v)
{
        size_t i;

        for (i = 0; i < UTIL_ARRAY_LEN(smtp_verb_names); i++) {
                if (smtp_verb_names[i].verb == v)
                        return smtp_verb_names[i].name;
        }
        return "UNKNOWN";
}

int smtp_path_parse(const char *args, size_t len, const char *prefix, const char **path,
                    size_t *path_len, const char **params, size_t *params_len)
{
        size_t i = strlen(prefix), start;
        bool quoted = false;

        if (!util_prefix_ci(args, len, prefix))
                return -1;
        while (i < len && args[i] == ' ')
                i++;
        if (i >= len || args[i] != '<')
                return -1;
        start = ++i;
        /* Up to the first '>' outside a quoted string. */
        for (; i < len; i++) {
                char c = args[i];

                if (smtp_is_ctl(c))
                        return -1;
                if (quoted) {
                        if (c == '\\') {
                                if (++i >= len || smtp_is_ctl(args[i]))
                                        return -1;
                        } else if (c == '"') {
                                quoted = false;
                        }
                        continue;
                }
                if (c == '>')
                        break;
                if (c == '"')
                        quoted = true;
                else if (c == '<' || c == ' ')
                        return -1;
        }
        if (i >= len)
                return -1;
        *path = args + start;
        *path_len = i - start;
        i++;
        if (i < len && args[i] != ' ')
                return -1;
        while (i < len && args[i] == ' ')
                i++;
        *params = args + i;
        *params_len = len - i;
        return 0;
}

static bool smtp_is_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || smtp_is_digit(c);
}

/*
 * A domain as it may appear in a mailbox: an address literal "[192.0.2.1]" or
 * "[IPv6:2001:db8::1]" (letters, digits, '.', ':' and '-' inside), or labels
 * of letters, digits, '-', '_' (which DNS allows, and a policy must see) and
 * UTF-8 bytes (SMTPUTF8) separated by single dots.
 * No empty label: "example.org." or "a..b" would let a sender name a domain
 * that a policy lookup for "example.org" does not find.
 */
static bool smtp_domain_ok(const char *d, size_t n)
{
        size_t i;

        if (n == 0)
                return false;
        if (d[0] == '[') {
                if (n < 3 || d[n - 1] != ']')
                        return false;
                for (i = 1; i < n - 1; i++) {
                        if (!smtp_is_alnum(d[i]) && d[i] != '.' && d[i] != ':' &&
                            d[i] != '-')
                                return false;
                }
                return true;
        }
        for (i = 0; i < n; i++) {
                if (d[i] == '.') {
                        if (i == 0 || i == n - 1 || d[i - 1] == '.')
                                return false;
                } else if (!smtp_is_alnum(d[i]) && d[i] != '-' && d[i] != '_' &&
                           (unsigned char)d[i] < 0x80) {
                        return false;
                }
        }
        return true;
}

int smtp_addr_domain(const char *path, size_t len, const char **dom, size_t *dom_len)
{
        size_t i = 0;

        if (len > 0 && path[0] == '@') {
                /* A source route "@a,@b:" (RFC 5321 4.1.2) is skipped. */
                const char *colon = memchr(path, ':', len);

                if (colon == NULL)
                        return -1;
                i = (size_t)(colon - path) + 1;
        }
        if (i < len && path[i] == '"') {
                for (i++; i < len && path[i] != '"'; i++) {
                        if (path[i] == '\\')
                                i++;
                }
                if (i >= len)
                        return -1;
                i++; /* the closing quote */
                if (i >= len || path[i] != '@')
                        return -1;
        } else {
                while (i < len && path[i] != '@')
                        i++;
                if (i >= len)
                        return -1;
        }
        i++; /* the '@' */
        if (!smtp_domain_ok(path + i, len - i))
                return -1;
        *dom = path + i;
        *dom_len = len - i;
        return 0;
}

int smtp_addr_domain_ascii(const char *path, size_t len, char *out, size_t outlen)
{
        const char *dom;
        size_t dlen, i;
        bool ascii = true;
        char utf8[256], *a = NULL;

        /* One trailing dot, as a fully qualified name has it. */
        if (len > 1 && path[len - 1] == '.' && path[len - 2] != '.' &&
            path[len - 2] != '@')
                len--;
        if (smtp_addr_domain(path, len, &dom, &dlen) != 0)
                return memchr(path, '@', len) == NULL ? 0 : -1;
        if (dlen >= sizeof(utf8) || dlen >= outlen)
                return -1;
        for (i = 0; i < dlen; i++)
                ascii = ascii && (unsigned char)dom[i] < 0x80;
        if (ascii) {
                for (i = 0; i < dlen; i++)
                        out[i] = (char)tolower((unsigned char)dom[i]);
                out[dlen] = '\0';
                return 1;
        }
        memcpy(utf8, dom, dlen);
        utf8[dlen] = '\0';
        if (idn2_to_ascii_8z(utf8, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) !=
                IDN2_OK ||
            strlen(a) >= outlen) {
                idn2_free(a);
                return -1;
        }
        for (i = 0; a[i] != '\0'; i++)
                out[i] = (char)tolower((unsigned char)a[i]);
        out[i] = '\0';
        idn2_free(a);
        /* UTS #46 maps other full stops (U+3002, U+FF0E, ...) to '.', and
         * drops some characters: the result is checked as a name again. */
        if (i > 0 && out[i - 1] == '.')
                out[--i] = '\0';
        if (i == 0 || out[0] == '.' || out[i - 1] == '.' || strstr(out, "..") != NULL)
                return -1;
        return 1;
}

#define SMTP_BDAT_MAX ((uint64_t)1 << 53)

int smtp_bdat_parse(const char *args, size_t len, uint64_t *size, bool *last)
{
        size_t i = 0;
        uint64_t v = 0;

        if (len == 0 || !smtp_is_digit(args[0]))
                return -1;
        for (; i < len && smtp_is_digit(args[i]); i++) {
                v = v * 10 + (uint64_t)(args[i] - '0');
                if (v > SMTP_BDAT_MAX)
                        return -1;
        }
        *last = false;
        if (i < len) {
                if (args[i] != ' ')
                        return -1;
                while (i < len && args[i] == ' ')
                        i++;
                if (len - i < 4 || !util_prefix_ci(args + i, len - i, "LAST"))
                        return -1;
                i += 4;
                while (i < len && args[i] == ' ')
                        i++;
                if (i != len)
                        return -1;
                *last = true;
        }
        *size = v;
        return 0;
}

/* ---- replies ---- */

enum smtp_reply_result smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
        int code;
        enum smtp_reply_result res;

        if (len < 3 || !smtp_is_digit(line[0]) || !smtp_is_digit(line[1]) ||
            !smtp_is_digit(line[2]))
                return SMTP_REPLY_BAD;
        code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (code < 100 || code > 599)
                return SMTP_REPLY_BAD;
        if (len == 3 || line[3] == ' ')
                res = SMTP_REPLY_DONE;
        else if (line[3] == '-')
                res = SMTP_REPLY_MORE;
        else
                return SMTP_REPLY_BAD;
        if (r->nlines > 0 && code != r->code)
                return SMTP_REPLY_BAD;
        r->code = code;
        r->nlines++;
        return res;
}

/* ---- EHLO capabilities ---- */

/* Length of the keyword: the first word of a capability line. */
static size_t smtp_caps_kwlen(const char *s)
{
        size_t n = 0;

        while (s[n] != '\0' && s[n] != ' ')
                n++;
        return n;
}

static int smtp_caps_find(const struct smtp_caps *c, const char *kw, size_t kwlen)
{
        unsigned i;

        for (i = 0; i < c->n; i++) {
                const char *l = c->line[i];

                if (smtp_caps_kwlen(l) == kwlen && smtp_mem_ci(l, kw, kwlen))
                        return (int)i;
        }
        return -1;
}

/* Store text[0..n) as the next line, unless it is unfit or there is no room. */
static void smtp_caps_store(struct smtp_caps *c, const char *text, size_t n)
{
        size_t i;

        if (n == 0 || n >= SMTP_CAP_LEN || c->n >= SMTP_CAPS_MAX)
                return;
        for (i = 0; i < n; i++) {
                if (smtp_is_ctl(text[i]))
                        return;
        }
        memcpy(c->line[c->n], text, n);
        c->line[c->n][n] = '\0';
        c->n++;
}

/*
 * A keyword seen before is dropped: repeated lines from a hostile server
 * could otherwise fill the list and leave no room for the ones we add. The
 * last place is STARTTLS's: a server that lists more keywords than fit must
 * not lose it (mail that may go in clear text would, though TLS was offered).
 */
static void smtp_caps_parse_line(struct smtp_caps *c, const char *text, size_t n)
{
        const char *sp = memchr(text, ' ', n);
        size_t kwlen = sp != NULL ? (size_t)(sp - text) : n;

        if (c->n == SMTP_CAPS_MAX - 1 &&
            !(kwlen == 8 && smtp_mem_ci(text, "STARTTLS", 8)))
                return;
        if (smtp_caps_find(c, text, kwlen) < 0)
                smtp_caps_store(c, text, n);
}

int smtp_caps_parse(struct smtp_caps *c, const char *reply, size_t len)
{
        struct smtp_reply r = {0};
        enum smtp_reply_result rr = SMTP_REPLY_MORE;
        size_t off = 0;

        c->n = 0;
        while (off < len) {
                const char *line = reply + off;
                const char *lf = memchr(line, '\n', len - off);
                size_t n;

                if (lf == NULL || rr != SMTP_REPLY_MORE)
                        goto bad;
                n = (size_t)(lf - line);
                off += n + 1;
                if (n > 0 && line[n - 1] == '\r')
                        n--;
                rr = smtp_reply_feed(&r, line, n);
                if (rr == SMTP_REPLY_BAD || r.code != 250)
                        goto bad;
                if (r.nlines > 1 && n > 4)
                        smtp_caps_parse_line(c, line + 4, n - 4);
        }
        if (rr != SMTP_REPLY_DONE)
                goto bad;
        return 0;
bad:
        c->n = 0;
        return -1;
}

bool smtp_caps_has(const struct smtp_caps *c, const char *keyword)
{
        return smtp_caps_find(c, keyword, strlen(keyword)) >= 0;
}

const char *smtp_caps_get(const struct smtp_caps *c, const char *keyword)
{
        int i = smtp_caps_find(c, keyword, strlen(keyword));

        return i < 0 ? NULL : c->line[i];
}

void smtp_caps_remove(struct smtp_caps *c, const char *keyword)
{
        size_t kwlen = strlen(keyword);
        int i;

        while ((i = smtp_caps_find(c, keyword, kwlen)) >= 0) {
                memmove(c->line[i], c->line[i + 1],
                        (size_t)(c->n - (unsigned)i - 1) * SMTP_CAP_LEN);
                c->n--;
        }
}

void smtp_caps_add(struct smtp_caps *c, const char *line)
{
        if (smtp_caps_find(c, line, smtp_caps_kwlen(line)) >= 0)
                return;
        smtp_caps_store(c, line, strlen(line));
}

void smtp_caps_filter(struct smtp_caps *c, const char *const *allowed)
{
        unsigned i, j, k = 0;

        for (i = 0; i < c->n; i++) {
                size_t kwlen = smtp_caps_kwlen(c->line[i]);
                bool keep = false;

                for (j = 0; allowed[j] != NULL && !keep; j++)
                        keep = smtp_eq_ci(c->line[i], kwlen, allowed[j]);
                if (!keep)
                        continue;
                if (k != i)
                        memcpy(c->line[k], c->line[i], SMTP_CAP_LEN);
                k++;
        }
        c->n = k;
}

void smtp_caps_print(const struct smtp_caps *c, const char *greeting, struct buf *out)
{
        unsigned i;

        buf_appendf(out, "250%c%s\r\n", c->n > 0 ? '-' : ' ', greeting);
        for (i = 0; i < c->n; i++)
                buf_appendf(out, "250%c%s\r\n", i + 1 < c->n ? '-' : ' ', c->line[i]);
}
