/*
 * Unit tests for lib/smtp.c, the pure SMTP codec: line splitting (the SMTP
 * smuggling defence), commands, paths and domains, BDAT, replies and EHLO
 * capability lists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "smtp.h"

/* ---- line splitting ---- */

/* One call on a string; the result, with the line and consumed count checked. */
static void test_smtp_expect_line(struct smtp_lines *s, const char *in, size_t n,
                                  enum smtp_line_result want, const char *line,
                                  size_t consumed)
{
        struct smtp_line out;
        enum smtp_line_result r;

        memset(&out, 0xa5, sizeof(out));
        r = smtp_lines_next(s, in, n, &out);
        assert_string_equal(smtp_line_result_str(r), smtp_line_result_str(want));
        assert_int_equal(out.consumed, consumed);
        if (line != NULL) {
                assert_int_equal(out.len, strlen(line));
                assert_memory_equal(out.p, line, out.len);
                assert_ptr_equal(out.p, in);
        }
}

#define EXPECT_LINE(s, in, want, line, consumed)                                         \
        test_smtp_expect_line((s), (in), strlen(in), (want), (line), (consumed))

static void test_smtp_lines_crlf(void **state)
{
        struct smtp_lines s = {.max = 512};

        (void)state;
        EXPECT_LINE(&s, "EHLO x\r\n", SMTP_LINE_OK, "EHLO x", 8);
        EXPECT_LINE(&s, "\r\n", SMTP_LINE_OK, "", 2);
        /* Only the first line is returned. */
        EXPECT_LINE(&s, "A\r\nB\r\n", SMTP_LINE_OK, "A", 3);
        EXPECT_LINE(&s, ".\r\n", SMTP_LINE_OK, ".", 3);
}

static void test_smtp_lines_need_more(void **state)
{
        struct smtp_lines s = {.max = 512};

        (void)state;
        EXPECT_LINE(&s, "", SMTP_LINE_NEED_MORE, NULL, 0);
        EXPECT_LINE(&s, "EHLO", SMTP_LINE_NEED_MORE, NULL, 0);
        /* A CR at the end may be the start of CRLF: wait. */
        EXPECT_LINE(&s, "EHLO\r", SMTP_LINE_NEED_MORE, NULL, 0);
        EXPECT_LINE(&s, "\r", SMTP_LINE_NEED_MORE, NULL, 0);
        assert_false(s.overflow);
}

static void test_smtp_lines_bare_lf(void **state)
{
        struct smtp_lines s = {.max = 512};
        const char *in = "\n.\n";

        (void)state;
        /* "\n.\n": two bare-LF lines, "" then ".": never an end of data. */
        EXPECT_LINE(&s, in, SMTP_LINE_BARE_LF, "", 1);
        EXPECT_LINE(&s, in + 1, SMTP_LINE_BARE_LF, ".", 2);
        /* "\n.\r\n": a bare LF, then a clean ".". */
        in = "\n.\r\n";
        EXPECT_LINE(&s, in, SMTP_LINE_BARE_LF, "", 1);
        EXPECT_LINE(&s, in + 1, SMTP_LINE_OK, ".", 3);
        EXPECT_LINE(&s, "abc\n", SMTP_LINE_BARE_LF, "abc", 4);
        /* A CR inside a bare-LF line: the bare LF is what is reported. */
        EXPECT_LINE(&s, "a\rb\n", SMTP_LINE_BARE_LF, "a\rb", 4);
        /* "\r\r\n" is CR + CRLF: a CRLF line holding a bare CR. */
        EXPECT_LINE(&s, "\r\r\n", SMTP_LINE_BARE_CR, "\r", 3);
}

static void test_smtp_lines_bare_cr(void **state)
{
        struct smtp_lines s = {.max = 512};
        const char *in = "\r.\r\n";

        (void)state;
        /* "\r.\r\n" is one line holding a bare CR, not an empty line and ".". */
        EXPECT_LINE(&s, in, SMTP_LINE_BARE_CR, "\r.", 4);
        EXPECT_LINE(&s, "a\rb\r\n", SMTP_LINE_BARE_CR, "a\rb", 5);
        EXPECT_LINE(&s, "ab\r\r\n", SMTP_LINE_BARE_CR, "ab\r", 5);
        EXPECT_LINE(&s, "\r\r\r\n", SMTP_LINE_BARE_CR, "\r\r", 4);
        /* The next line after a BARE_CR is unaffected. */
        in = "a\rb\r\nQUIT\r\n";
        EXPECT_LINE(&s, in, SMTP_LINE_BARE_CR, "a\rb", 5);
        EXPECT_LINE(&s, in + 5, SMTP_LINE_OK, "QUIT", 6);
        assert_false(s.overflow);
}

/* A line of `len` bytes including CRLF: 'x' * (len - 2) + CRLF. */
static char *test_smtp_mkline(size_t len, const char *end)
{
        size_t elen = strlen(end);
        char *p = malloc(len + 1);

        assert_non_null(p);
        memset(p, 'x', len - elen);
        memcpy(p + len - elen, end, elen);
        p[len] = '\0';
        return p;
}

static void test_smtp_lines_exact_max(void **state)
{
        struct smtp_lines s = {.max = 512};
        char *l512 = test_smtp_mkline(512, "\r\n");
        char *l513 = test_smtp_mkline(513, "\r\n");

        (void)state;
        test_smtp_expect_line(&s, l512, 512, SMTP_LINE_OK, NULL, 512);
        /* 511 bytes and no LF yet: could still be a 512-byte line. */
        test_smtp_expect_line(&s, l512, 511, SMTP_LINE_NEED_MORE, NULL, 0);
        assert_false(s.overflow);
        test_smtp_expect_line(&s, l513, 513, SMTP_LINE_TOO_LONG, NULL, 513);
        assert_false(s.overflow);
        /* A 512-byte bare-LF line is within the limit and reported as BARE_LF. */
        free(l512);
        l512 = test_smtp_mkline(512, "\n");
        test_smtp_expect_line(&s, l512, 512, SMTP_LINE_BARE_LF, NULL, 512);
        free(l512);
        free(l513);
}

static void test_smtp_lines_too_long_pieces(void **state)
{
        struct smtp_lines s = {.max = 512};
        char *l600 = test_smtp_mkline(600, "\r\n");
        struct smtp_line out;
        char tail[] = "QUIT\r\n";

        (void)state;
        /* 200 bytes, then 400, then 600: kept by the caller until the LF. */
        test_smtp_expect_line(&s, l600, 200, SMTP_LINE_NEED_MORE, NULL, 0);
        test_smtp_expect_line(&s, l600, 400, SMTP_LINE_NEED_MORE, NULL, 0);
        test_smtp_expect_line(&s, l600, 600, SMTP_LINE_TOO_LONG, NULL, 600);
        assert_false(s.overflow);

        /* 520 bytes: too long already; dropped, and the rest is dropped too. */
        test_smtp_expect_line(&s, l600, 520, SMTP_LINE_NEED_MORE, NULL, 520);
        assert_true(s.overflow);
        test_smtp_expect_line(&s, l600 + 520, 40, SMTP_LINE_NEED_MORE, NULL, 40);
        assert_true(s.overflow);
        /* Even a lone CR or nothing at all is consumed while overflowing. */
        test_smtp_expect_line(&s, l600 + 560, 0, SMTP_LINE_NEED_MORE, NULL, 0);
        test_smtp_expect_line(&s, l600 + 560, 38, SMTP_LINE_NEED_MORE, NULL, 38);
        /* The last two bytes, CRLF: reported once, as TOO_LONG. */
        test_smtp_expect_line(&s, l600 + 598, 2, SMTP_LINE_TOO_LONG, NULL, 2);
        assert_false(s.overflow);
        /* And the next line is normal again. */
        assert_int_equal(smtp_lines_next(&s, tail, strlen(tail), &out), SMTP_LINE_OK);
        assert_int_equal(out.len, 4);
        free(l600);
}

static void test_smtp_lines_too_long_wins(void **state)
{
        struct smtp_lines s = {.max = 512};
        char *bare_lf = test_smtp_mkline(600, "\n");
        char *bare_cr = test_smtp_mkline(600, "\r\n");

        (void)state;
        bare_cr[10] = '\r';
        test_smtp_expect_line(&s, bare_lf, 600, SMTP_LINE_TOO_LONG, NULL, 600);
        test_smtp_expect_line(&s, bare_cr, 600, SMTP_LINE_TOO_LONG, NULL, 600);
        /* Overflowing, then a bare LF ends the line: still TOO_LONG. */
        test_smtp_expect_line(&s, bare_lf, 550, SMTP_LINE_NEED_MORE, NULL, 550);
        test_smtp_expect_line(&s, bare_lf + 550, 50, SMTP_LINE_TOO_LONG, NULL, 50);
        free(bare_lf);
        free(bare_cr);
}

/* The same input split anywhere gives the same lines: feed it byte by byte. */
/*
 * An over-long line ends in CRLF or in LF alone, and says which whatever
 * way reads split it, also when its CR came in a chunk already dropped:
 * where a message ends must not depend on it.
 */
static void test_smtp_lines_too_long_crlf(void **state)
{
        static const char *const ins[] = {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n.\r\n",
                                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n.\r\n"};

        (void)state;
        for (size_t k = 0; k < 2; k++) {
                size_t n = strlen(ins[k]);

                for (size_t cut = 1; cut < n; cut++) {
                        struct smtp_lines s = {.max = 16};
                        struct smtp_line out;
                        struct buf b;
                        enum smtp_line_result r;
                        int seen = 0;

                        buf_init(&b);
                        for (int part = 0; part < 2; part++) {
                                buf_append(&b, ins[k] + (part ? cut : 0),
                                           part ? n - cut : cut);
                                for (;;) {
                                        r = smtp_lines_next(&s, buf_data(&b), buf_len(&b),
                                                            &out);
                                        buf_consume(&b, out.consumed);
                                        if (r == SMTP_LINE_NEED_MORE && out.consumed == 0)
                                                break;
                                        if (r == SMTP_LINE_TOO_LONG) {
                                                assert_int_equal(out.crlf, k == 0);
                                                seen++;
                                        } else if (r == SMTP_LINE_OK) {
                                                assert_true(out.crlf);
                                                seen++;
                                        }
                                }
                        }
                        assert_int_equal(seen, 2);
                        buf_cleanup(&b);
                }
        }
}

static void test_smtp_lines_stream(void **state)
{
        const char in[] = "EHLO a\r\nMAIL FROM:<a@b>\r\n\n.\r\nx\ry\r\n.\r\n";
        /* The MAIL line is too long for max 16: it gives TOO_LONG, not a line. */
        const enum smtp_line_result want[] = {SMTP_LINE_OK, SMTP_LINE_BARE_LF,
                                              SMTP_LINE_OK, SMTP_LINE_BARE_CR,
                                              SMTP_LINE_OK};
        struct smtp_lines s = {.max = 16};
        struct buf b;
        struct smtp_line out;
        enum smtp_line_result r;
        size_t i, k = 0, too_long = 0;

        (void)state;
        buf_init(&b);
        for (i = 0; i < sizeof(in) - 1; i++) {
                buf_append(&b, in + i, 1);
                for (;;) {
                        r = smtp_lines_next(&s, buf_data(&b), buf_len(&b), &out);
                        buf_consume(&b, out.consumed);
                        if (r == SMTP_LINE_NEED_MORE) {
                                if (out.consumed == 0)
                                        break;
                                continue;
                        }
                        if (r == SMTP_LINE_TOO_LONG) {
                                too_long++;
                                continue;
                        }
                        assert_true(k < sizeof(want) / sizeof(want[0]));
                        assert_int_equal(r, want[k]);
                        k++;
                }
                assert_true(buf_len(&b) < s.max);
        }
        /* "MAIL FROM:<a@b>\r\n" is 17 bytes, over 16. */
        assert_int_equal(too_long, 1);
        assert_int_equal(k, 5);
        buf_cleanup(&b);
}

static void test_smtp_lines_str(void **state)
{
        (void)state;
        assert_string_equal(smtp_line_result_str(SMTP_LINE_OK), "ok");
        assert_string_equal(smtp_line_result_str(SMTP_LINE_TOO_LONG), "line_too_long");
        assert_string_equal(smtp_line_result_str(SMTP_LINE_BARE_LF), "bare_lf");
        assert_string_equal(smtp_line_result_str(SMTP_LINE_BARE_CR), "bare_cr");
        assert_string_equal(smtp_line_result_str(SMTP_LINE_NEED_MORE), "need_more");
}

/* ---- commands ---- */

static void test_smtp_expect_cmd(const char *line, enum smtp_verb verb, const char *args)
{
        struct smtp_cmd c;

        smtp_cmd_parse(line, strlen(line), &c);
        assert_string_equal(smtp_verb_str(c.verb), smtp_verb_str(verb));
        assert_int_equal(c.verb, verb);
        assert_int_equal(c.args_len, strlen(args));
        assert_memory_equal(c.args, args, c.args_len);
}

static void test_smtp_cmd(void **state)
{
        (void)state;
        test_smtp_expect_cmd("mail from:<a@b>", SMTP_VERB_MAIL, "from:<a@b>");
        test_smtp_expect_cmd("MAIL FROM:<a@b> SIZE=10", SMTP_VERB_MAIL,
                             "FROM:<a@b> SIZE=10");
        test_smtp_expect_cmd("RCPT   TO:<a@b>   ", SMTP_VERB_RCPT, "TO:<a@b>");
        test_smtp_expect_cmd("QUIT", SMTP_VERB_QUIT, "");
        test_smtp_expect_cmd("QUIT   ", SMTP_VERB_QUIT, "");
        test_smtp_expect_cmd("EHLO client.example", SMTP_VERB_EHLO, "client.example");
        test_smtp_expect_cmd("eHlO x", SMTP_VERB_EHLO, "x");
        test_smtp_expect_cmd("HELO x", SMTP_VERB_HELO, "x");
        test_smtp_expect_cmd("StartTLS", SMTP_VERB_STARTTLS, "");
        test_smtp_expect_cmd("STARTTLS x", SMTP_VERB_STARTTLS, "x");
        test_smtp_expect_cmd("DATA", SMTP_VERB_DATA, "");
        test_smtp_expect_cmd("BDAT 100 LAST", SMTP_VERB_BDAT, "100 LAST");
        test_smtp_expect_cmd("RSET", SMTP_VERB_RSET, "");
        test_smtp_expect_cmd("NOOP", SMTP_VERB_NOOP, "");
        test_smtp_expect_cmd("VRFY u", SMTP_VERB_VRFY, "u");
        test_smtp_expect_cmd("EXPN l", SMTP_VERB_EXPN, "l");
        test_smtp_expect_cmd("HELP", SMTP_VERB_HELP, "");
        test_smtp_expect_cmd("AUTH PLAIN AGEAYg==", SMTP_VERB_AUTH, "PLAIN AGEAYg==");
        test_smtp_expect_cmd("ETRN example.org", SMTP_VERB_ETRN, "example.org");
        test_smtp_expect_cmd("XCLIENT ADDR=1.2.3.4", SMTP_VERB_XCLIENT, "ADDR=1.2.3.4");
        test_smtp_expect_cmd("XFORWARD NAME=x", SMTP_VERB_XFORWARD, "NAME=x");
        /* Another word: unknown, args from the start. */
        test_smtp_expect_cmd("EHLOX", SMTP_VERB_UNKNOWN, "EHLOX");
        test_smtp_expect_cmd("EHL", SMTP_VERB_UNKNOWN, "EHL");
        test_smtp_expect_cmd("FOO bar  ", SMTP_VERB_UNKNOWN, "FOO bar");
        test_smtp_expect_cmd("X-FOO2 bar", SMTP_VERB_UNKNOWN, "X-FOO2 bar");
        test_smtp_expect_cmd("UNKNOWN", SMTP_VERB_UNKNOWN, "UNKNOWN");
        test_smtp_expect_cmd("BAD", SMTP_VERB_UNKNOWN, "BAD");
        /* Not a command line: a blank or tab first, or anything but a space
         * after the verb; a server that splits at tabs would read a command
         * in it (XCLIENT to Postfix), so it is never forwarded. */
        test_smtp_expect_cmd("MAIL\tFROM:<a@b>", SMTP_VERB_BAD, "MAIL\tFROM:<a@b>");
        test_smtp_expect_cmd("MAIL:FROM", SMTP_VERB_BAD, "MAIL:FROM");
        test_smtp_expect_cmd(" QUIT", SMTP_VERB_BAD, " QUIT");
        test_smtp_expect_cmd("\tEHLO x", SMTP_VERB_BAD, "\tEHLO x");
        test_smtp_expect_cmd("XCLIENT\tADDR=127.0.0.1", SMTP_VERB_BAD,
                             "XCLIENT\tADDR=127.0.0.1");
        test_smtp_expect_cmd("xclient\vADDR=127.0.0.1", SMTP_VERB_BAD,
                             "xclient\vADDR=127.0.0.1");
        test_smtp_expect_cmd("DATA\t", SMTP_VERB_BAD, "DATA\t");
        test_smtp_expect_cmd("QUIT\r", SMTP_VERB_BAD, "QUIT\r");
        test_smtp_expect_cmd("", SMTP_VERB_BAD, "");
        test_smtp_expect_cmd("   ", SMTP_VERB_BAD, "");
}

static void test_smtp_cmd_not_nul_terminated(void **state)
{
        struct smtp_cmd c;
        /* "QUIT" followed by bytes that are not part of the line. */
        const char line[] = {'Q', 'U', 'I', 'T', 'X', 'X'};
        const char nul[] = {'N', 'O', 'O', 'P', ' ', 'a', '\0', 'b'};

        (void)state;
        smtp_cmd_parse(line, 4, &c);
        assert_int_equal(c.verb, SMTP_VERB_QUIT);
        assert_int_equal(c.args_len, 0);
        /* A NUL is just a byte: the codec never stops at it. */
        smtp_cmd_parse(nul, sizeof(nul), &c);
        assert_int_equal(c.verb, SMTP_VERB_NOOP);
        assert_int_equal(c.args_len, 3);
}

static void test_smtp_verb_str(void **state)
{
        (void)state;
        assert_string_equal(smtp_verb_str(SMTP_VERB_UNKNOWN), "UNKNOWN");
        assert_string_equal(smtp_verb_str(SMTP_VERB_MAIL), "MAIL");
        assert_string_equal(smtp_verb_str(SMTP_VERB_STARTTLS), "STARTTLS");
        assert_string_equal(smtp_verb_str(SMTP_VERB_XFORWARD), "XFORWARD");
        assert_string_equal(smtp_verb_str(SMTP_VERB_BAD), "BAD");
        assert_string_equal(smtp_verb_str((enum smtp_verb)999), "UNKNOWN");
}

/* ---- paths ---- */

static void test_smtp_expect_path(const char *args, const char *prefix, const char *path,
                                  const char *params)
{
        const char *p = NULL, *pr = NULL;
        size_t plen = 0, prlen = 0;

        assert_int_equal(
            smtp_path_parse(args, strlen(args), prefix, &p, &plen, &pr, &prlen), 0);
        assert_int_equal(plen, strlen(path));
        assert_memory_equal(p, path, plen);
        assert_int_equal(prlen, strlen(params));
        assert_memory_equal(pr, params, prlen);
}

static void test_smtp_expect_path_bad(const char *args, const char *prefix)
{
        const char *p, *pr;
        size_t plen, prlen;

        assert_int_equal(
            smtp_path_parse(args, strlen(args), prefix, &p, &plen, &pr, &prlen), -1);
}

static void test_smtp_path(void **state)
{
        (void)state;
        test_smtp_expect_path("FROM:<a@b.example> SIZE=10", "FROM:", "a@b.example",
                              "SIZE=10");
        test_smtp_expect_path("FROM:<a@b.example>", "FROM:", "a@b.example", "");
        test_smtp_expect_path("FROM: <a@b>", "FROM:", "a@b", "");
        test_smtp_expect_path("from:   <a@b>", "FROM:", "a@b", "");
        test_smtp_expect_path("FROM:<>", "FROM:", "", "");
        test_smtp_expect_path("FROM:<> BODY=8BITMIME SMTPUTF8", "FROM:", "",
                              "BODY=8BITMIME SMTPUTF8");
        test_smtp_expect_path("FROM:<a@b>   SIZE=1", "FROM:", "a@b", "SIZE=1");
        test_smtp_expect_path("TO:<u@d>", "TO:", "u@d", "");
        test_smtp_expect_path("to:<u@d> NOTIFY=NEVER", "TO:", "u@d", "NOTIFY=NEVER");
        test_smtp_expect_path("TO:<@r1,@r2:u@d>", "TO:", "@r1,@r2:u@d", "");
        test_smtp_expect_path("TO:<\"a b\"@d>", "TO:", "\"a b\"@d", "");
        /* A '>' or '<' inside a quoted local part does not end the path. */
        test_smtp_expect_path("TO:<\"a>b<\"@d> X=1", "TO:", "\"a>b<\"@d", "X=1");
        test_smtp_expect_path("TO:<\"a\\\"b\"@d>", "TO:", "\"a\\\"b\"@d", "");
        test_smtp_expect_path("TO:<postmaster>", "TO:", "postmaster", "");
        test_smtp_expect_path("TO:<u@\xc3\xa9xample.org>", "TO:", "u@\xc3\xa9xample.org",
                              "");
}

static void test_smtp_path_bad(void **state)
{
        (void)state;
        /* Angle brackets are required (RFC 5321 4.1.2), unlike Postfix. */
        test_smtp_expect_path_bad("FROM:a@b", "FROM:");
        test_smtp_expect_path_bad("FROM: a@b", "FROM:");
        test_smtp_expect_path_bad("FROM:<a@b", "FROM:");
        test_smtp_expect_path_bad("FROM:a@b>", "FROM:");
        test_smtp_expect_path_bad("FROM:", "FROM:");
        test_smtp_expect_path_bad("", "FROM:");
        test_smtp_expect_path_bad("FROM:<", "FROM:");
        /* Wrong or missing prefix. */
        test_smtp_expect_path_bad("TO:<a@b>", "FROM:");
        test_smtp_expect_path_bad("FROM:<a@b>", "TO:");
        test_smtp_expect_path_bad("FROM <a@b>", "FROM:");
        test_smtp_expect_path_bad("FROM :<a@b>", "FROM:");
        test_smtp_expect_path_bad("<a@b>", "FROM:");
        /* Junk after '>' that is not separated by a space. */
        test_smtp_expect_path_bad("FROM:<a@b>x", "FROM:");
        test_smtp_expect_path_bad("FROM:<a@b>>", "FROM:");
        /* Nested brackets, spaces and control characters inside the path. */
        test_smtp_expect_path_bad("FROM:<<a@b>>", "FROM:");
        test_smtp_expect_path_bad("FROM:<a <b@c>", "FROM:");
        test_smtp_expect_path_bad("FROM:<a b@c>", "FROM:");
        test_smtp_expect_path_bad("FROM:<a\tb@c>", "FROM:");
        test_smtp_expect_path_bad("FROM:<a\rb@c>", "FROM:");
        test_smtp_expect_path_bad("FROM:<\"a\rb\"@c>", "FROM:");
        /* An unterminated quote swallows the '>'. */
        test_smtp_expect_path_bad("FROM:<\"a@b>", "FROM:");
        test_smtp_expect_path_bad("FROM:<\"a\\", "FROM:");
}

static void test_smtp_path_nul(void **state)
{
        const char args[] = "FROM:<a\0b@c>";
        const char *p, *pr;
        size_t plen, prlen;

        (void)state;
        assert_int_equal(
            smtp_path_parse(args, sizeof(args) - 1, "FROM:", &p, &plen, &pr, &prlen), -1);
        /* Only len bytes are looked at: "FROM:<a@b>" then more. */
        assert_int_equal(
            smtp_path_parse("FROM:<a@b>XYZ", 10, "FROM:", &p, &plen, &pr, &prlen), 0);
        assert_int_equal(plen, 3);
        assert_int_equal(prlen, 0);
}

/* ---- domains ---- */

static void test_smtp_expect_domain(const char *path, const char *dom)
{
        const char *d = NULL;
        size_t dlen = 0;

        if (dom == NULL) {
                assert_int_equal(smtp_addr_domain(path, strlen(path), &d, &dlen), -1);
                return;
        }
        assert_int_equal(smtp_addr_domain(path, strlen(path), &d, &dlen), 0);
        assert_int_equal(dlen, strlen(dom));
        assert_memory_equal(d, dom, dlen);
}

static void test_smtp_domain(void **state)
{
        (void)state;
        test_smtp_expect_domain("u@Example.ORG", "Example.ORG");
        test_smtp_expect_domain("u@d", "d");
        test_smtp_expect_domain("first.last+tag@mail.example.co.uk",
                                "mail.example.co.uk");
        test_smtp_expect_domain("u@[192.0.2.1]", "[192.0.2.1]");
        test_smtp_expect_domain("u@[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]");
        test_smtp_expect_domain("@r1,@r2:u@d.example", "d.example");
        test_smtp_expect_domain("@r1:u@d.example", "d.example");
        test_smtp_expect_domain("\"a b\"@d.example", "d.example");
        test_smtp_expect_domain("\"a@b\"@d.example", "d.example");
        test_smtp_expect_domain("\"a\\\"@b\"@d.example", "d.example");
        test_smtp_expect_domain("u@xn--bcher-kva.example", "xn--bcher-kva.example");
        test_smtp_expect_domain("u@b\xc3\xbc"
                                "cher.example",
                                "b\xc3\xbc"
                                "cher.example");
}

static void test_smtp_domain_bad(void **state)
{
        (void)state;
        test_smtp_expect_domain("", NULL);
        test_smtp_expect_domain("postmaster", NULL);
        test_smtp_expect_domain("Postmaster", NULL);
        test_smtp_expect_domain("u@", NULL);
        test_smtp_expect_domain("@", NULL);
        test_smtp_expect_domain("@r1", NULL);
        test_smtp_expect_domain("@r1:", NULL);
        test_smtp_expect_domain("@r1:postmaster", NULL);
        test_smtp_expect_domain("\"a@b\"", NULL);
        test_smtp_expect_domain("\"a@b", NULL);
        test_smtp_expect_domain("\"a\"b@d", NULL);
        test_smtp_expect_domain("u@a@b", NULL);
        test_smtp_expect_domain("u@d example", NULL);
        test_smtp_expect_domain("u@d>", NULL);
        test_smtp_expect_domain("u@d,e", NULL);
        /* An empty label would dodge a policy entry for "example.org". */
        test_smtp_expect_domain("u@example.org.", NULL);
        test_smtp_expect_domain("u@.example.org", NULL);
        test_smtp_expect_domain("u@example..org", NULL);
        test_smtp_expect_domain("u@.", NULL);
        test_smtp_expect_domain("u@[]", NULL);
        test_smtp_expect_domain("u@[1.2.3.4", NULL);
        test_smtp_expect_domain("u@[1.2 3.4]", NULL);
        test_smtp_expect_domain("u@[1.2]3.4]", NULL);
        /* Found by the fuzzer: an '@' inside an address literal. */
        test_smtp_expect_domain("u@[19@r21]", NULL);
        test_smtp_expect_domain("u@[a\\b]", NULL);
        test_smtp_expect_domain("u@[a_b]", NULL);
}

/* ---- BDAT ---- */

/* The domain as lookups name it: ASCII, lower case, A-labels. */
static void test_smtp_domain_ascii_expect(const char *path, int want, const char *domain)
{
        char out[256];

        memset(out, 'x', sizeof(out));
        assert_int_equal(smtp_addr_domain_ascii(path, strlen(path), out, sizeof(out)),
                         want);
        if (want == 1)
                assert_string_equal(out, domain);
}

static void test_smtp_domain_ascii(void **state)
{
        char big[300];

        (void)state;
        test_smtp_domain_ascii_expect("bob@Secure.TEST", 1, "secure.test");
        test_smtp_domain_ascii_expect("bob@secure.test.", 1, "secure.test");
        test_smtp_domain_ascii_expect("bob@mail_x.secure.test", 1, "mail_x.secure.test");
        test_smtp_domain_ascii_expect("bob@b\xc3\xbc"
                                      "cher.test",
                                      1, "xn--bcher-kva.test");
        test_smtp_domain_ascii_expect("bob@B\xc3\x9c"
                                      "CHER.test",
                                      1, "xn--bcher-kva.test");
        test_smtp_domain_ascii_expect("bob@xn--bcher-kva.test", 1, "xn--bcher-kva.test");
        /* Other full stops are dots once mapped, at the end too; a soft
         * hyphen that leaves an empty label is refused. */
        test_smtp_domain_ascii_expect("bob@secure.test\xe3\x80\x82", 1, "secure.test");
        test_smtp_domain_ascii_expect("bob@secure\xef\xbc\x8etest", 1, "secure.test");
        test_smtp_domain_ascii_expect("bob@\xc2\xad.secure.test", -1, NULL);
        test_smtp_domain_ascii_expect("bob@secure.test.\xe3\x80\x82", -1, NULL);
        test_smtp_domain_ascii_expect("\"a@b\"@quoted.test", 1, "quoted.test");
        test_smtp_domain_ascii_expect("@relay.test:bob@routed.test", 1, "routed.test");
        test_smtp_domain_ascii_expect("bob@[192.0.2.1]", 1, "[192.0.2.1]");
        /* No domain at all. */
        test_smtp_domain_ascii_expect("postmaster", 0, NULL);
        test_smtp_domain_ascii_expect("", 0, NULL);
        /* A domain that cannot be read as lookups must name it. */
        test_smtp_domain_ascii_expect("bob@", -1, NULL);
        test_smtp_domain_ascii_expect("bob@.", -1, NULL);
        test_smtp_domain_ascii_expect("bob@secure.test..", -1, NULL);
        test_smtp_domain_ascii_expect("bob@a..secure.test", -1, NULL);
        test_smtp_domain_ascii_expect("bob@secure test", -1, NULL);
        test_smtp_domain_ascii_expect("bob@\xff\xfe.test", -1, NULL);
        test_smtp_domain_ascii_expect("bob@\xe2\x98\x83.test", -1, NULL); /* a symbol */
        memset(big, 'a', sizeof(big));
        memcpy(big, "bob@", 4);
        big[sizeof(big) - 1] = '\0';
        test_smtp_domain_ascii_expect(big, -1, NULL);
}

static void test_smtp_bdat(void **state)
{
        uint64_t size = 1;
        bool last = true;

        (void)state;
        assert_int_equal(smtp_bdat_parse("100", 3, &size, &last), 0);
        assert_int_equal(size, 100);
        assert_false(last);
        assert_int_equal(smtp_bdat_parse("100 LAST", 8, &size, &last), 0);
        assert_int_equal(size, 100);
        assert_true(last);
        last = false;
        assert_int_equal(smtp_bdat_parse("100 last", 8, &size, &last), 0);
        assert_true(last);
        assert_int_equal(smtp_bdat_parse("0 LAST", 6, &size, &last), 0);
        assert_int_equal(size, 0);
        assert_true(last);
        assert_int_equal(smtp_bdat_parse("007", 3, &size, &last), 0);
        assert_int_equal(size, 7);
        assert_int_equal(smtp_bdat_parse("9007199254740992", 16, &size, &last), 0);
        assert_int_equal(size, (uint64_t)1 << 53);
        /* Only len bytes count. */
        assert_int_equal(smtp_bdat_parse("12 LASTX", 7, &size, &last), 0);
        assert_int_equal(size, 12);
        assert_true(last);
}

static void test_smtp_bdat_bad(void **state)
{
        static const char *const bad[] = {
            "",
            "x",
            "-1",
            "+1",
            "1x",
            " 1",
            "1 LAS",
            "1 LASTX",
            "1 LAST x",
            "1 FIRST",
            "1 ",
            "1\tLAST",
            "1 2",
            "0x10",
            "1.5",
            "9007199254740993",
            "99999999999999999999",
            "18446744073709551616",
            "184467440737095516150",
        };
        uint64_t size = 42;
        bool last = false;
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (smtp_bdat_parse(bad[i], strlen(bad[i]), &size, &last) != -1)
                        fail_msg("BDAT \"%s\" accepted", bad[i]);
        }
}

/* ---- replies ---- */

static enum smtp_reply_result test_smtp_feed(struct smtp_reply *r, const char *line)
{
        return smtp_reply_feed(r, line, strlen(line));
}

static void test_smtp_reply(void **state)
{
        struct smtp_reply r = {0};

        (void)state;
        assert_int_equal(test_smtp_feed(&r, "250-a"), SMTP_REPLY_MORE);
        assert_int_equal(r.code, 250);
        assert_int_equal(test_smtp_feed(&r, "250 b"), SMTP_REPLY_DONE);
        assert_int_equal(r.code, 250);
        assert_int_equal(r.nlines, 2);

        memset(&r, 0, sizeof(r));
        assert_int_equal(test_smtp_feed(&r, "250"), SMTP_REPLY_DONE);
        assert_int_equal(r.nlines, 1);

        memset(&r, 0, sizeof(r));
        assert_int_equal(test_smtp_feed(&r, "220 mx.example.org ESMTP"), SMTP_REPLY_DONE);
        assert_int_equal(r.code, 220);

        memset(&r, 0, sizeof(r));
        assert_int_equal(test_smtp_feed(&r, "100 x"), SMTP_REPLY_DONE);
        memset(&r, 0, sizeof(r));
        assert_int_equal(test_smtp_feed(&r, "599 x"), SMTP_REPLY_DONE);

        memset(&r, 0, sizeof(r));
        assert_int_equal(test_smtp_feed(&r, "250-"), SMTP_REPLY_MORE);
        assert_int_equal(test_smtp_feed(&r, "250-x"), SMTP_REPLY_MORE);
        assert_int_equal(test_smtp_feed(&r, "250"), SMTP_REPLY_DONE);
        assert_int_equal(r.nlines, 3);
}

static void test_smtp_reply_bad(void **state)
{
        static const char *const bad[] = {
            "",      "2",     "25",   "25x",   "abc",    "x250 ok", "099 x",  "000 x",
            "600 x", "999 x", "250x", "250_x", "250\tx", " 250 x",  "-250 x", "2 50 x",
        };
        struct smtp_reply r;
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                memset(&r, 0, sizeof(r));
                if (test_smtp_feed(&r, bad[i]) != SMTP_REPLY_BAD)
                        fail_msg("reply line \"%s\" accepted", bad[i]);
                assert_int_equal(r.nlines, 0);
        }
        /* The code changes in mid-reply. */
        memset(&r, 0, sizeof(r));
        assert_int_equal(test_smtp_feed(&r, "250-a"), SMTP_REPLY_MORE);
        assert_int_equal(test_smtp_feed(&r, "550 b"), SMTP_REPLY_BAD);
        memset(&r, 0, sizeof(r));
        assert_int_equal(test_smtp_feed(&r, "250-a"), SMTP_REPLY_MORE);
        assert_int_equal(test_smtp_feed(&r, "251-a"), SMTP_REPLY_BAD);
        assert_int_equal(r.code, 250);
        assert_int_equal(r.nlines, 1);
}

/* ---- EHLO capabilities ---- */

static const char test_smtp_postfix_ehlo[] = "250-mx.example.org\r\n"
                                             "250-PIPELINING\r\n"
                                             "250-SIZE 10240000\r\n"
                                             "250-VRFY\r\n"
                                             "250-ETRN\r\n"
                                             "250-STARTTLS\r\n"
                                             "250-AUTH PLAIN LOGIN\r\n"
                                             "250-ENHANCEDSTATUSCODES\r\n"
                                             "250-8BITMIME\r\n"
                                             "250-DSN\r\n"
                                             "250-SMTPUTF8\r\n"
                                             "250 CHUNKING\r\n";

static void test_smtp_caps_parse_postfix(void **state)
{
        static const char *const want[] = {
            "PIPELINING",       "SIZE 10240000",       "VRFY",     "ETRN", "STARTTLS",
            "AUTH PLAIN LOGIN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",  "SMTPUTF8",
            "CHUNKING",
        };
        struct smtp_caps c;
        unsigned i;

        (void)state;
        assert_int_equal(smtp_caps_parse(&c, test_smtp_postfix_ehlo,
                                         sizeof(test_smtp_postfix_ehlo) - 1),
                         0);
        assert_int_equal(c.n, sizeof(want) / sizeof(want[0]));
        for (i = 0; i < c.n; i++)
                assert_string_equal(c.line[i], want[i]);
        assert_true(smtp_caps_has(&c, "STARTTLS"));
        assert_true(smtp_caps_has(&c, "starttls"));
        assert_true(smtp_caps_has(&c, "SIZE"));
        assert_true(smtp_caps_has(&c, "auth"));
        assert_false(smtp_caps_has(&c, "AUTH PLAIN"));
        assert_false(smtp_caps_has(&c, "SIZ"));
        assert_false(smtp_caps_has(&c, "XCLIENT"));
        assert_false(smtp_caps_has(&c, "mx.example.org"));
        assert_false(smtp_caps_has(&c, ""));
        assert_string_equal(smtp_caps_get(&c, "size"), "SIZE 10240000");
        assert_string_equal(smtp_caps_get(&c, "AUTH"), "AUTH PLAIN LOGIN");
        assert_null(smtp_caps_get(&c, "BINARYMIME"));
}

static void test_smtp_caps_parse_edge(void **state)
{
        struct smtp_caps c;
        const char *r;

        (void)state;
        r = "250 mx.example.org\r\n";
        assert_int_equal(smtp_caps_parse(&c, r, strlen(r)), 0);
        assert_int_equal(c.n, 0);
        r = "250\r\n";
        assert_int_equal(smtp_caps_parse(&c, r, strlen(r)), 0);
        assert_int_equal(c.n, 0);
        /* Empty keyword lines are skipped. */
        r = "250-mx\r\n250-\r\n250-A\r\n250\r\n";
        assert_int_equal(smtp_caps_parse(&c, r, strlen(r)), 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.line[0], "A");
        /* Bare LF line ends are tolerated from a server. */
        r = "250-mx\n250 A\n";
        assert_int_equal(smtp_caps_parse(&c, r, strlen(r)), 0);
        assert_int_equal(c.n, 1);
        /* A line with a control character is dropped, not stored. */
        r = "250-mx\r\n250-A\tB\r\n250-C\rD\r\n250 E\r\n";
        assert_int_equal(smtp_caps_parse(&c, r, strlen(r)), 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.line[0], "E");
        /* A keyword seen before is dropped, whatever its parameters. */
        r = "250-mx\r\n250-SIZE 1\r\n250-size 2\r\n250-SIZE\r\n250 SIZES\r\n";
        assert_int_equal(smtp_caps_parse(&c, r, strlen(r)), 0);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.line[0], "SIZE 1");
        assert_string_equal(c.line[1], "SIZES");
}

/* Found by the fuzzer: repeated lines filled the list, so STARTTLS found no room. */
static void test_smtp_caps_parse_repeats(void **state)
{
        struct smtp_caps c;
        struct buf b;
        unsigned i;

        (void)state;
        buf_init(&b);
        buf_appendf(&b, "250-mx\r\n");
        for (i = 0; i < 2 * SMTP_CAPS_MAX; i++)
                buf_appendf(&b, "250-%s\r\n", i % 2 ? "PIPELINING" : "SIZE 1");
        buf_appendf(&b, "250 8BITMIME\r\n");
        assert_int_equal(smtp_caps_parse(&c, buf_data(&b), buf_len(&b)), 0);
        assert_int_equal(c.n, 3);
        smtp_caps_add(&c, "STARTTLS");
        assert_true(smtp_caps_has(&c, "STARTTLS"));
        buf_cleanup(&b);
}

/* Found in the outbound review: STARTTLS after SMTP_CAPS_MAX other keywords
 * was dropped, and mail to a `may` domain went in clear text. */
static void test_smtp_caps_parse_many(void **state)
{
        struct smtp_caps c;
        struct buf b;
        unsigned i;

        (void)state;
        buf_init(&b);
        buf_appendf(&b, "250-mx\r\n");
        for (i = 0; i < SMTP_CAPS_MAX + 8; i++)
                buf_appendf(&b, "250-X-KEYWORD-%u\r\n", i);
        buf_appendf(&b, "250 starttls\r\n");
        assert_int_equal(smtp_caps_parse(&c, buf_data(&b), buf_len(&b)), 0);
        assert_int_equal(c.n, SMTP_CAPS_MAX);
        assert_true(smtp_caps_has(&c, "STARTTLS"));
        assert_true(smtp_caps_has(&c, "X-KEYWORD-0"));
        assert_false(smtp_caps_has(&c, "X-KEYWORD-31"));
        buf_cleanup(&b);
}

static void test_smtp_caps_parse_bad(void **state)
{
        static const char *const bad[] = {
            "",
            "550 no\r\n",
            "220 hi\r\n",
            "250-mx\r\n",          /* incomplete */
            "250-mx\r\n250-A\r\n", /* incomplete */
            "250 mx",              /* no line end */
            "250-mx\r\n250 A",     /* no line end */
            "250-mx\r\n550 A\r\n", /* code changes */
            "250-mx\r\n251 A\r\n", /* code changes */
            "250 mx\r\n250 A\r\n", /* a second reply */
            "250 mx\r\nx",         /* bytes after the end */
            "250-mx\r\nPIPELINING\r\n250 A\r\n",
            "250_mx\r\n",
        };
        struct smtp_caps c;
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                c.n = 7;
                if (smtp_caps_parse(&c, bad[i], strlen(bad[i])) != -1)
                        fail_msg("EHLO reply %zu accepted", i);
                assert_int_equal(c.n, 0);
        }
}

static void test_smtp_caps_parse_limits(void **state)
{
        struct smtp_caps c;
        struct buf b;
        char longline[SMTP_CAP_LEN + 1];
        unsigned i;

        (void)state;
        buf_init(&b);
        buf_appendf(&b, "250-mx\r\n");
        /* 127 characters fit (with the NUL), 128 do not. */
        memset(longline, 'L', sizeof(longline) - 1);
        longline[SMTP_CAP_LEN - 1] = '\0';
        buf_appendf(&b, "250-%s\r\n", longline);
        memset(longline, 'M', sizeof(longline) - 1);
        longline[SMTP_CAP_LEN] = '\0';
        buf_appendf(&b, "250-%s\r\n", longline);
        for (i = 0; i < SMTP_CAPS_MAX + 5; i++)
                buf_appendf(&b, "250-K%u\r\n", i);
        buf_appendf(&b, "250 END\r\n");
        assert_int_equal(smtp_caps_parse(&c, buf_data(&b), buf_len(&b)), 0);
        /* The last place is kept for STARTTLS (test_smtp_caps_parse_many). */
        assert_int_equal(c.n, SMTP_CAPS_MAX - 1);
        assert_int_equal(strlen(c.line[0]), SMTP_CAP_LEN - 1);
        assert_int_equal(c.line[0][0], 'L');
        assert_string_equal(c.line[1], "K0");
        assert_string_equal(c.line[SMTP_CAPS_MAX - 2], "K29");
        assert_false(smtp_caps_has(&c, "END"));
        buf_cleanup(&b);
}

static void test_smtp_caps_edit(void **state)
{
        static const char *const allowed[] = {
            "SIZE",     "8BITMIME",   "SMTPUTF8", "PIPELINING",
            "CHUNKING", "BINARYMIME", "DSN",      "ENHANCEDSTATUSCODES",
            "auth",     NULL,
        };
        static const char *const want[] = {
            "PIPELINING", "SIZE 10240000", "ENHANCEDSTATUSCODES",
            "8BITMIME",   "DSN",           "SMTPUTF8",
            "CHUNKING",   "STARTTLS",
        };
        struct smtp_caps c;
        unsigned i;

        (void)state;
        assert_int_equal(smtp_caps_parse(&c, test_smtp_postfix_ehlo,
                                         sizeof(test_smtp_postfix_ehlo) - 1),
                         0);
        smtp_caps_filter(&c, allowed);
        assert_int_equal(c.n, 8);
        assert_false(smtp_caps_has(&c, "STARTTLS"));
        assert_false(smtp_caps_has(&c, "VRFY"));
        assert_false(smtp_caps_has(&c, "ETRN"));
        assert_true(smtp_caps_has(&c, "AUTH"));
        smtp_caps_remove(&c, "auth");
        assert_false(smtp_caps_has(&c, "AUTH"));
        smtp_caps_remove(&c, "NOT-THERE");
        assert_int_equal(c.n, 7);
        smtp_caps_add(&c, "STARTTLS");
        /* Already there (by keyword): not added twice. */
        smtp_caps_add(&c, "starttls");
        smtp_caps_add(&c, "SIZE 1");
        assert_int_equal(c.n, sizeof(want) / sizeof(want[0]));
        for (i = 0; i < c.n; i++)
                assert_string_equal(c.line[i], want[i]);
}

static void test_smtp_caps_add_limits(void **state)
{
        struct smtp_caps c;
        char line[SMTP_CAP_LEN + 1];
        unsigned i;

        (void)state;
        memset(&c, 0, sizeof(c));
        memset(line, 'x', SMTP_CAP_LEN);
        line[SMTP_CAP_LEN] = '\0';
        smtp_caps_add(&c, line);
        assert_int_equal(c.n, 0);
        smtp_caps_add(&c, "");
        assert_int_equal(c.n, 0);
        smtp_caps_add(&c, "A\r\nB");
        assert_int_equal(c.n, 0);
        for (i = 0; i < SMTP_CAPS_MAX + 3; i++) {
                snprintf(line, sizeof(line), "K%u", i);
                smtp_caps_add(&c, line);
        }
        assert_int_equal(c.n, SMTP_CAPS_MAX);
        /* Remove every other one, from the middle of the array. */
        for (i = 0; i < SMTP_CAPS_MAX; i += 2) {
                snprintf(line, sizeof(line), "K%u", i);
                smtp_caps_remove(&c, line);
        }
        assert_int_equal(c.n, SMTP_CAPS_MAX / 2);
        for (i = 0; i < c.n; i++) {
                snprintf(line, sizeof(line), "K%u", 2 * i + 1);
                assert_string_equal(c.line[i], line);
        }
        /* Filtering with an empty list leaves nothing. */
        {
                static const char *const none[] = {NULL};

                smtp_caps_filter(&c, none);
                assert_int_equal(c.n, 0);
        }
}

static void test_smtp_caps_print(void **state)
{
        struct smtp_caps c;
        struct buf b;
        const char *want = "250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 100\r\n";

        (void)state;
        memset(&c, 0, sizeof(c));
        buf_init(&b);
        smtp_caps_print(&c, "mx.example.org", &b);
        assert_int_equal(buf_len(&b), strlen("250 mx.example.org\r\n"));
        assert_memory_equal(buf_data(&b), "250 mx.example.org\r\n", buf_len(&b));
        buf_reset(&b);

        smtp_caps_add(&c, "PIPELINING");
        smtp_caps_add(&c, "SIZE 100");
        smtp_caps_print(&c, "mx.example.org", &b);
        assert_int_equal(buf_len(&b), strlen(want));
        assert_memory_equal(buf_data(&b), want, buf_len(&b));
        buf_reset(&b);

        /* A greeting with '%' is printed as is. */
        smtp_caps_remove(&c, "SIZE");
        smtp_caps_print(&c, "%s%n", &b);
        assert_int_equal(buf_len(&b), strlen("250-%s%n\r\n250 PIPELINING\r\n"));
        assert_memory_equal(buf_data(&b), "250-%s%n\r\n250 PIPELINING\r\n", buf_len(&b));
        buf_cleanup(&b);
}

static void test_smtp_caps_round_trip(void **state)
{
        struct smtp_caps c, d;
        struct buf b;
        unsigned i;

        (void)state;
        buf_init(&b);
        assert_int_equal(smtp_caps_parse(&c, test_smtp_postfix_ehlo,
                                         sizeof(test_smtp_postfix_ehlo) - 1),
                         0);
        smtp_caps_print(&c, "mx.example.org", &b);
        assert_int_equal(buf_len(&b), sizeof(test_smtp_postfix_ehlo) - 1);
        assert_memory_equal(buf_data(&b), test_smtp_postfix_ehlo, buf_len(&b));
        assert_int_equal(smtp_caps_parse(&d, buf_data(&b), buf_len(&b)), 0);
        assert_int_equal(d.n, c.n);
        for (i = 0; i < c.n; i++)
                assert_string_equal(d.line[i], c.line[i]);
        buf_cleanup(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_smtp_lines_crlf),
            cmocka_unit_test(test_smtp_lines_need_more),
            cmocka_unit_test(test_smtp_lines_bare_lf),
            cmocka_unit_test(test_smtp_lines_bare_cr),
            cmocka_unit_test(test_smtp_lines_exact_max),
            cmocka_unit_test(test_smtp_lines_too_long_pieces),
            cmocka_unit_test(test_smtp_lines_too_long_wins),
            cmocka_unit_test(test_smtp_lines_stream),
            cmocka_unit_test(test_smtp_lines_too_long_crlf),
            cmocka_unit_test(test_smtp_lines_str),
            cmocka_unit_test(test_smtp_cmd),
            cmocka_unit_test(test_smtp_cmd_not_nul_terminated),
            cmocka_unit_test(test_smtp_verb_str),
            cmocka_unit_test(test_smtp_path),
            cmocka_unit_test(test_smtp_path_bad),
            cmocka_unit_test(test_smtp_path_nul),
            cmocka_unit_test(test_smtp_domain),
            cmocka_unit_test(test_smtp_domain_bad),
            cmocka_unit_test(test_smtp_domain_ascii),
            cmocka_unit_test(test_smtp_bdat),
            cmocka_unit_test(test_smtp_bdat_bad),
            cmocka_unit_test(test_smtp_reply),
            cmocka_unit_test(test_smtp_reply_bad),
            cmocka_unit_test(test_smtp_caps_parse_postfix),
            cmocka_unit_test(test_smtp_caps_parse_edge),
            cmocka_unit_test(test_smtp_caps_parse_repeats),
            cmocka_unit_test(test_smtp_caps_parse_many),
            cmocka_unit_test(test_smtp_caps_parse_bad),
            cmocka_unit_test(test_smtp_caps_parse_limits),
            cmocka_unit_test(test_smtp_caps_edit),
            cmocka_unit_test(test_smtp_caps_add_limits),
            cmocka_unit_test(test_smtp_caps_print),
            cmocka_unit_test(test_smtp_caps_round_trip),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
