/* Build: clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Ilib
 *        test/fuzz/fuzz_smtp.c lib/smtp.c lib/buf.c lib/util.c -o /tmp/fuzz_smtp
 * Run:   /tmp/fuzz_smtp -max_total_time=60 [corpus-dir]   (from the repository root) */

/*
 * libFuzzer harness for the SMTP codec (lib/smtp.c). The first two bytes pick
 * the line limit and the chunking; the rest is peer input. Besides looking for
 * crashes it checks what the relay relies on:
 * - the line splitter gives the same lines however the input is cut into
 *   reads, never keeps more than max - 1 bytes buffered, and an OK line never
 *   holds a CR or LF;
 * - commands, paths, domains and BDAT arguments point inside their input, and
 *   a domain has only domain characters;
 * - an EHLO capability list printed and parsed again is the same list.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp.h"

#include "fuzz_check.h"

static bool fuzz_smtp_inside(const char *p, size_t n, const char *base, size_t len)
{
        return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

/* FNV-1a over the events the splitter reports, to compare two runs. */
static uint64_t fuzz_smtp_hash(uint64_t h, const void *p, size_t n)
{
        const unsigned char *b = p;
        size_t i;

        for (i = 0; i < n; i++) {
                h ^= b[i];
                h *= 1099511628211ULL;
        }
        return h;
}

static uint64_t fuzz_smtp_event(uint64_t h, enum smtp_line_result r,
                                const struct smtp_line *ln)
{
        unsigned char rb = (unsigned char)r;

        h = fuzz_smtp_hash(h, &rb, 1);
        if (r != SMTP_LINE_TOO_LONG) {
                h = fuzz_smtp_hash(h, &ln->len, sizeof(ln->len));
                h = fuzz_smtp_hash(h, ln->p, ln->len);
        }
        return h;
}

/* Parse one command line and everything that hangs off it. */
static void fuzz_smtp_command(const char *line, size_t len)
{
        struct smtp_cmd cmd;
        const char *path, *params, *dom;
        size_t plen, prlen, dlen, i;
        uint64_t size;
        bool last;
        static const char *const prefixes[] = {"FROM:", "TO:"};

        smtp_cmd_parse(line, len, &cmd);
        FUZZ_CHECK(fuzz_smtp_inside(cmd.args, cmd.args_len, line, len));
        FUZZ_CHECK(cmd.args_len == 0 || cmd.args[cmd.args_len - 1] != ' ');
        FUZZ_CHECK(smtp_verb_str(cmd.verb) != NULL);
        if (cmd.verb != SMTP_VERB_UNKNOWN && cmd.verb != SMTP_VERB_BAD)
                FUZZ_CHECK(cmd.args_len == 0 || cmd.args[0] != ' ');
        /* Anything but BAD is a word of letters, digits and '-' and then a
         * space or the end: nothing a server could split elsewhere. */
        if (cmd.verb != SMTP_VERB_BAD) {
                for (i = 0; i < len && line[i] != ' '; i++)
                        FUZZ_CHECK((line[i] >= 'a' && line[i] <= 'z') ||
                                   (line[i] >= 'A' && line[i] <= 'Z') ||
                                   (line[i] >= '0' && line[i] <= '9') || line[i] == '-');
                FUZZ_CHECK(i > 0);
        }

        for (i = 0; i < 2; i++) {
                if (smtp_path_parse(cmd.args, cmd.args_len, prefixes[i], &path, &plen,
                                    &params, &prlen) != 0)
                        continue;
                FUZZ_CHECK(fuzz_smtp_inside(path, plen, cmd.args, cmd.args_len));
                FUZZ_CHECK(fuzz_smtp_inside(params, prlen, cmd.args, cmd.args_len));
                FUZZ_CHECK(path[-1] == '<' && path[plen] == '>');
                {
                        /* As lookups name it: ASCII, lower case, a name with no
                         * empty label. */
                        char ascii[256];
                        int a = smtp_addr_domain_ascii(path, plen, ascii, sizeof(ascii));

                        FUZZ_CHECK(a >= -1 && a <= 1);
                        if (a == 1) {
                                size_t k, alen = strnlen(ascii, sizeof(ascii));

                                FUZZ_CHECK(alen > 0 && alen < sizeof(ascii));
                                /* A name (an address literal is passed as is). */
                                if (ascii[0] != '[')
                                        FUZZ_CHECK(ascii[alen - 1] != '.' &&
                                                   ascii[0] != '.' &&
                                                   strstr(ascii, "..") == NULL);
                                for (k = 0; k < alen; k++)
                                        FUZZ_CHECK((unsigned char)ascii[k] < 0x80 &&
                                                   !(ascii[k] >= 'A' && ascii[k] <= 'Z'));
                        }
                }
                if (smtp_addr_domain(path, plen, &dom, &dlen) != 0)
                        continue;
                FUZZ_CHECK(dlen > 0 && fuzz_smtp_inside(dom, dlen, path, plen));
                FUZZ_CHECK(dom[-1] == '@');
                FUZZ_CHECK(memchr(dom, '@', dlen) == NULL);
                FUZZ_CHECK(memchr(dom, ' ', dlen) == NULL);
                FUZZ_CHECK(memchr(dom, '>', dlen) == NULL);
        }
        /* Paths and domains also straight on the raw line. */
        if (smtp_addr_domain(line, len, &dom, &dlen) == 0)
                FUZZ_CHECK(dlen > 0 && fuzz_smtp_inside(dom, dlen, line, len));

        if (smtp_bdat_parse(cmd.args, cmd.args_len, &size, &last) == 0)
                FUZZ_CHECK(size <= ((uint64_t)1 << 53) && cmd.args_len > 0);
}

/* Whole input at once; returns the hash of the events. */
static uint64_t fuzz_smtp_lines_whole(const char *p, size_t n, size_t max)
{
        struct smtp_lines s = {.max = max};
        struct smtp_line ln;
        struct smtp_reply rep = {0};
        enum smtp_line_result r;
        enum smtp_reply_result rr;
        uint64_t h = 14695981039346656037ULL;
        size_t off = 0;

        for (;;) {
                r = smtp_lines_next(&s, p + off, n - off, &ln);
                FUZZ_CHECK(ln.consumed <= n - off);
                if (r == SMTP_LINE_NEED_MORE) {
                        off += ln.consumed;
                        if (ln.consumed == 0)
                                break;
                        continue;
                }
                FUZZ_CHECK(ln.consumed > 0 && p[off + ln.consumed - 1] == '\n');
                switch (r) {
                case SMTP_LINE_OK:
                        FUZZ_CHECK(ln.p == p + off && ln.len + 2 == ln.consumed);
                        FUZZ_CHECK(ln.consumed <= max);
                        FUZZ_CHECK(memchr(ln.p, '\r', ln.len) == NULL);
                        FUZZ_CHECK(memchr(ln.p, '\n', ln.len) == NULL);
                        fuzz_smtp_command(ln.p, ln.len);
                        rr = smtp_reply_feed(&rep, ln.p, ln.len);
                        if (rr != SMTP_REPLY_BAD)
                                FUZZ_CHECK(rep.code >= 100 && rep.code <= 599);
                        if (rr != SMTP_REPLY_MORE)
                                memset(&rep, 0, sizeof(rep));
                        break;
                case SMTP_LINE_BARE_LF:
                        FUZZ_CHECK(ln.p == p + off && ln.len + 1 == ln.consumed);
                        FUZZ_CHECK(ln.consumed <= max);
                        break;
                case SMTP_LINE_BARE_CR:
                        FUZZ_CHECK(ln.p == p + off && ln.len + 2 == ln.consumed);
                        FUZZ_CHECK(ln.consumed <= max);
                        FUZZ_CHECK(memchr(ln.p, '\r', ln.len) != NULL);
                        break;
                case SMTP_LINE_TOO_LONG:
                        /* Only an overflowing line's own end; nothing inside it. */
                        FUZZ_CHECK(memchr(p + off, '\n', ln.consumed - 1) == NULL);
                        break;
                default:
                        FUZZ_CHECK(0);
                }
                h = fuzz_smtp_event(h, r, &ln);
                off += ln.consumed;
        }
        FUZZ_CHECK(n - off < max || max == 0);
        return h;
}

/* The same input read in chunks through a buffer, as the relay does. */
static uint64_t fuzz_smtp_lines_chunked(const char *p, size_t n, size_t max,
                                        unsigned seed)
{
        struct smtp_lines s = {.max = max};
        struct smtp_line ln;
        enum smtp_line_result r;
        struct buf b;
        uint64_t h = 14695981039346656037ULL;
        size_t off = 0, k;

        buf_init(&b);
        while (off < n) {
                seed = seed * 1103515245u + 12345u;
                k = 1 + (seed >> 16) % 700;
                if (k > n - off)
                        k = n - off;
                buf_append(&b, p + off, k);
                off += k;
                for (;;) {
                        r = smtp_lines_next(&s, buf_data(&b), buf_len(&b), &ln);
                        FUZZ_CHECK(ln.consumed <= buf_len(&b));
                        if (r != SMTP_LINE_NEED_MORE)
                                h = fuzz_smtp_event(h, r, &ln);
                        buf_consume(&b, ln.consumed);
                        if (r == SMTP_LINE_NEED_MORE && ln.consumed == 0)
                                break;
                }
                /* Bounded memory: never a whole max buffered without an LF. */
                FUZZ_CHECK(buf_len(&b) < max || max == 0);
        }
        buf_cleanup(&b);
        return h;
}

static void fuzz_smtp_caps_same(const struct smtp_caps *a, const struct smtp_caps *b)
{
        unsigned i;

        FUZZ_CHECK(a->n == b->n);
        for (i = 0; i < a->n; i++)
                FUZZ_CHECK(strcmp(a->line[i], b->line[i]) == 0);
}

static void fuzz_smtp_caps_roundtrip(const struct smtp_caps *c)
{
        struct smtp_caps d;
        struct buf b;

        buf_init(&b);
        smtp_caps_print(c, "mx.example.org", &b);
        FUZZ_CHECK(buf_len(&b) >= 6 && buf_data(&b)[buf_len(&b) - 1] == '\n');
        FUZZ_CHECK(smtp_caps_parse(&d, buf_data(&b), buf_len(&b)) == 0);
        fuzz_smtp_caps_same(c, &d);
        buf_cleanup(&b);
}

static void fuzz_smtp_caps(const char *p, size_t n)
{
        static const char *const allowed[] = {
            "SIZE",     "8BITMIME",   "SMTPUTF8", "PIPELINING",
            "CHUNKING", "BINARYMIME", "DSN",      "ENHANCEDSTATUSCODES",
            "AUTH",     NULL};
        struct smtp_caps c;
        unsigned i;
        size_t j;

        if (smtp_caps_parse(&c, p, n) != 0) {
                FUZZ_CHECK(c.n == 0);
                return;
        }
        FUZZ_CHECK(c.n <= SMTP_CAPS_MAX);
        for (i = 0; i < c.n; i++) {
                size_t len = strlen(c.line[i]);

                FUZZ_CHECK(len > 0 && len < SMTP_CAP_LEN);
                for (j = 0; j < len; j++)
                        FUZZ_CHECK((unsigned char)c.line[i][j] >= 0x20 &&
                                   c.line[i][j] != 0x7f);
                /* Each line is found by its own keyword. */
                {
                        char kw[SMTP_CAP_LEN];
                        size_t k = strcspn(c.line[i], " ");

                        memcpy(kw, c.line[i], k);
                        kw[k] = '\0';
                        FUZZ_CHECK(smtp_caps_has(&c, kw));
                        FUZZ_CHECK(smtp_caps_get(&c, kw) != NULL);
                }
        }
        fuzz_smtp_caps_roundtrip(&c);

        /* Edit as the relay does, then round-trip again. */
        smtp_caps_filter(&c, allowed);
        for (i = 0; i < c.n; i++) {
                bool ok = false;

                for (j = 0; allowed[j] != NULL; j++)
                        ok = ok || smtp_caps_has(&c, allowed[j]);
                FUZZ_CHECK(ok);
        }
        smtp_caps_remove(&c, "AUTH");
        FUZZ_CHECK(!smtp_caps_has(&c, "auth"));
        smtp_caps_add(&c, "STARTTLS");
        FUZZ_CHECK(smtp_caps_has(&c, "STARTTLS"));
        smtp_caps_add(&c, "PIPELINING");
        fuzz_smtp_caps_roundtrip(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        size_t max, n;
        const char *p;
        unsigned seed;

        if (size < 2)
                return 0;
        /* max from 1 to 1100: small values make overflow paths easy to reach. */
        max = 1 + ((size_t)data[0] * 7 + (data[1] & 0x0f)) % 1100;
        seed = data[1];
        p = (const char *)data + 2;
        n = size - 2;

        FUZZ_CHECK(fuzz_smtp_lines_whole(p, n, max) ==
                   fuzz_smtp_lines_chunked(p, n, max, seed));
        /* The whole input as one command line and as one EHLO reply. */
        fuzz_smtp_command(p, n);
        fuzz_smtp_caps(p, n);
        return 0;
}
