/*
 * Unit tests for lib/mtasts: the TXT record (RFC 8461 3.1) with its discard
 * rule and case rules, the policy body (3.2) with the RFC's example, line
 * ends, every error and its line, max_age bounds and repeated fields, mx
 * matching (4.1) and certificate names against patterns, and the HTTP
 * response that carries a policy.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mtasts.h"

#define TEST_ERRLEN 256

/* Reasons are printable ASCII: no peer byte reaches a log or a reply raw. */
static void test_printable(const char *err)
{
        for (const char *s = err; *s; s++)
                assert_true(*s >= 0x20 && *s <= 0x7e);
}

/* ---- TXT record ---- */

static void test_txt_n(const char *const *recs, const size_t *lens, size_t n, int want_rc,
                       const char *want_id, const char *want_err)
{
        char id[MTASTS_ID_MAX + 1] = "junk";
        char err[TEST_ERRLEN];
        int rc = mtasts_txt_parse(recs, lens, n, id, err, sizeof(err));

        if (rc != want_rc || strcmp(id, want_id) != 0 || strcmp(err, want_err) != 0)
                print_error("%zu records, first \"%.*s\": rc=%d id=\"%s\" err=\"%s\"\n",
                            n, n ? (int)lens[0] : 0, n ? recs[0] : "", rc, id, err);
        assert_int_equal(rc, want_rc);
        assert_string_equal(id, want_id);
        assert_string_equal(err, want_err);
        test_printable(err);
}

static void test_txt(const char *rec, int want_rc, const char *want_id,
                     const char *want_err)
{
        const char *recs[1] = {rec};
        size_t lens[1] = {strlen(rec)};

        test_txt_n(recs, lens, 1, want_rc, want_id, want_err);
}

static void test_txt_ok(const char *rec, const char *want_id)
{
        test_txt(rec, 1, want_id, "");
}

static void test_txt_bad(const char *rec, const char *want_err)
{
        test_txt(rec, -EINVAL, "", want_err);
}

#define TEST_NO_RECORD "no TXT record begins with \"v=STSv1;\""

static void test_txt_rfc_example(void **state)
{
        (void)state;
        /* RFC 8461 3.1 */
        test_txt_ok("v=STSv1; id=20160831085700Z;", "20160831085700Z");
        test_txt_ok("v=STSv1; id=20160831085700Z", "20160831085700Z");
}

static void test_txt_whitespace(void **state)
{
        (void)state;
        test_txt_ok("v=STSv1;id=abc", "abc");
        test_txt_ok("v=STSv1;\t id=abc ;\t", "abc");
        test_txt_ok("v=STSv1; id=abc\t; ext=val ;x.y-z_1=!:<>~", "abc");
        test_txt_ok("v=STSv1; ext=1; id=XyZ09", "XyZ09");
        /* trailing whitespace without ';' is tolerated (not in the grammar) */
        test_txt_ok("v=STSv1; id=abc \t", "abc");
        test_txt_bad("v=STSv1; id=abc def", "expected ';' after field id");
        test_txt_bad("v=STSv1; ; id=abc", "empty field");
        test_txt_bad("v=STSv1; id=abc;;", "empty field");
        /* v=STSv1 and its delimiter, then no field at all */
        test_txt_bad("v=STSv1;", "no id field");
        test_txt_bad("v=STSv1;  ", "no id field");
}

/* Case-sensitive (RFC 7405 %s), and the discard rule wants "v=STSv1;" exactly. */
static void test_txt_discarded(void **state)
{
        (void)state;
        test_txt("v=stsv1; id=abc", 0, "", TEST_NO_RECORD);
        test_txt("V=STSv1; id=abc", 0, "", TEST_NO_RECORD);
        test_txt("v=STSv10; id=abc", 0, "", TEST_NO_RECORD);
        test_txt("v=STSv1 ; id=abc", 0, "", TEST_NO_RECORD);
        test_txt(" v=STSv1; id=abc", 0, "", TEST_NO_RECORD);
        test_txt("v=STSv1", 0, "", TEST_NO_RECORD);
        test_txt("", 0, "", TEST_NO_RECORD);
        /* a field named "ID" is an extension, so the id is missing */
        test_txt_bad("v=STSv1; ID=abc", "no id field");
        test_txt_bad("v=STSv1; Id=abc; ext=1", "no id field");
}

static void test_txt_bad_ids(void **state)
{
        char rec[128];

        (void)state;
        snprintf(rec, sizeof(rec), "v=STSv1; id=%s", "0123456789abcdef0123456789ABCDEF");
        test_txt_ok(rec, "0123456789abcdef0123456789ABCDEF");
        snprintf(rec, sizeof(rec), "v=STSv1; id=%s;",
                 "0123456789abcdef0123456789ABCDEFx");
        test_txt_bad(rec, "bad id \"0123456789abcdef0123456789ABCDEFx\" (1 to 32 letters "
                          "and digits)");
        test_txt_bad("v=STSv1; id=2016-08-31", "bad id \"2016-08-31\" (1 to 32 letters "
                                               "and digits)");
        test_txt_bad("v=STSv1; id=abc_def", "bad id \"abc_def\" (1 to 32 letters and "
                                            "digits)");
        test_txt_bad("v=STSv1; id=abc!", "bad id \"abc!\" (1 to 32 letters and digits)");
        test_txt_bad("v=STSv1; id=", "bad id \"\" (1 to 32 letters and digits)");
        test_txt_bad("v=STSv1; id=;", "bad id \"\" (1 to 32 letters and digits)");
        test_txt_bad("v=STSv1; id=a=b", "bad id \"a=b\" (1 to 32 letters and digits)");
        test_txt_bad("v=STSv1; id=caf\xc3\xa9",
                     "bad id \"caf\\xc3\\xa9\" (1 to 32 letters and digits)");
        test_txt_bad("v=STSv1; id=\"abc\"",
                     "bad id \"\\x22abc\\x22\" (1 to 32 letters and digits)");
}

static void test_txt_extensions(void **state)
{
        char rec[128];

        (void)state;
        test_txt_bad("v=STSv1; id=abc; =x", "bad field \"=x\" (expected name=value)");
        test_txt_bad("v=STSv1; id=abc; _x=1", "bad field \"_x=1\" (expected name=value)");
        test_txt_bad("v=STSv1; id=abc; novalue; x=1",
                     "bad field \"novalue\" (expected name=value)");
        test_txt_bad("v=STSv1; id=abc; ext=", "bad value \"\" for field ext");
        test_txt_bad("v=STSv1; id=abc; ext=a=b", "bad value \"a=b\" for field ext");
        test_txt_bad("v=STSv1; id=abc; ext=\x7f", "bad value \"\\x7f\" for field ext");
        /* sts-ext-name: at most 32 characters */
        snprintf(rec, sizeof(rec), "v=STSv1; id=abc; %s=1",
                 "e0123456789012345678901234567890");
        test_txt_ok(rec, "abc");
        snprintf(rec, sizeof(rec), "v=STSv1; id=abc; %s=1",
                 "e01234567890123456789012345678901");
        test_txt_bad(rec,
                     "field name \"e01234567890123456789012345678901\" longer than 32 "
                     "characters");
}

/* Only the first id counts (RFC 8461 3.2 on repeated fields); later ones are extensions.
 */
static void test_txt_repeated_id(void **state)
{
        (void)state;
        test_txt_ok("v=STSv1; id=first; id=second", "first");
        test_txt_ok("v=STSv1; id=first; id=not-an-id", "first");
        test_txt_bad("v=STSv1; id=bad!; id=good", "bad id \"bad!\" (1 to 32 letters and "
                                                  "digits)");
        test_txt_bad("v=STSv1; id=first; id=a=b", "bad value \"a=b\" for field id");
}

static void test_txt_several(void **state)
{
        const char *spf_sts[] = {"v=spf1 -all", "v=STSv1; id=abc"};
        const char *sts_sts[] = {"v=STSv1; id=a", "v=STSv1; id=b"};
        const char *same[] = {"v=STSv1; id=a", "v=STSv1; id=a"};
        const char *sts_sts10[] = {"v=STSv10; id=b", "v=STSv1; id=a", "hello"};
        const char *bad_other[] = {"v=STSv1; id=ok", "v=STSv1 ; id=bad!"};
        const char *none[] = {"hello", "v=STSv2; id=a"};
        size_t lens[3];

        (void)state;
        for (size_t i = 0; i < 2; i++)
                lens[i] = strlen(spf_sts[i]);
        test_txt_n(spf_sts, lens, 2, 1, "abc", "");
        for (size_t i = 0; i < 2; i++)
                lens[i] = strlen(sts_sts[i]);
        test_txt_n(sts_sts, lens, 2, -EINVAL, "",
                   "2 TXT records begin with \"v=STSv1;\" (exactly one is needed)");
        /* the same record twice is still two records */
        test_txt_n(same, lens, 2, -EINVAL, "",
                   "2 TXT records begin with \"v=STSv1;\" (exactly one is needed)");
        for (size_t i = 0; i < 3; i++)
                lens[i] = strlen(sts_sts10[i]);
        test_txt_n(sts_sts10, lens, 3, 1, "a", "");
        /* the second is discarded before it could be found invalid */
        for (size_t i = 0; i < 2; i++)
                lens[i] = strlen(bad_other[i]);
        test_txt_n(bad_other, lens, 2, 1, "ok", "");
        for (size_t i = 0; i < 2; i++)
                lens[i] = strlen(none[i]);
        test_txt_n(none, lens, 2, 0, "", TEST_NO_RECORD);
        /* no records at all */
        test_txt_n(NULL, NULL, 0, 0, "", TEST_NO_RECORD);
}

/* Records are bytes: NUL, CR and LF are data, escaped in the reason. */
static void test_txt_bytes(void **state)
{
        static const char nul[] = "v=STSv1; id=ab\0cd";
        static const char crlf[] = "v=STSv1; id=abc\r\n";
        const char *recs[2] = {nul, NULL};
        size_t lens[2] = {sizeof(nul) - 1, 0};
        char id[MTASTS_ID_MAX + 1];

        (void)state;
        test_txt_n(recs, lens, 2, -EINVAL, "",
                   "bad id \"ab\\x00cd\" (1 to 32 letters and digits)");
        recs[0] = crlf;
        lens[0] = sizeof(crlf) - 1;
        test_txt_n(recs, lens, 1, -EINVAL, "",
                   "bad id \"abc\\x0d\\x0a\" (1 to 32 letters and digits)");
        /* the length is what counts, not a NUL: the id stops where lens[] says */
        recs[0] = "v=STSv1; id=abcdef";
        lens[0] = strlen("v=STSv1; id=abc");
        test_txt_n(recs, lens, 1, 1, "abc", "");
        /* no room for a reason: the result is the same */
        assert_int_equal(mtasts_txt_parse(recs, lens, 1, id, NULL, 0), 1);
        assert_string_equal(id, "abc");
}

/* ---- policy ---- */

/* Does one of p's mx patterns allow the host name host? */
static bool test_covered(const struct mtasts_policy *p, const char *host)
{
        for (size_t i = 0; i < p->nmx; i++) {
                if (mtasts_name_allowed(host, p->mx[i]))
                        return true;
        }
        return false;
}

static void test_policy_ok_n(const char *text, size_t len, struct mtasts_policy *p)
{
        char err[TEST_ERRLEN];
        int rc = mtasts_policy_parse(text, len, p, err, sizeof(err));

        if (rc != 0)
                print_error("policy \"%.*s\": rc=%d err=\"%s\"\n", (int)len, text, rc,
                            err);
        assert_int_equal(rc, 0);
        assert_string_equal(err, "");
}

static void test_policy_ok(const char *text, struct mtasts_policy *p)
{
        test_policy_ok_n(text, strlen(text), p);
}

/* text parses, with this mode */
static void test_policy_ok_mode(const char *text, enum mtasts_mode mode)
{
        struct mtasts_policy p;

        test_policy_ok(text, &p);
        assert_int_equal(p.mode, mode);
        mtasts_policy_cleanup(&p);
}

static void test_policy_fails_n(const char *text, size_t len, const char *want)
{
        struct mtasts_policy p;
        char err[TEST_ERRLEN];
        int rc;

        /* *out is overwritten, not cleaned up: garbage in it is fine */
        memset(&p, 0xa5, sizeof(p));
        rc = mtasts_policy_parse(text, len, &p, err, sizeof(err));
        if (rc != -EINVAL || strcmp(err, want) != 0)
                print_error("policy \"%.*s\": rc=%d err=\"%s\"\n",
                            len > 200 ? 200 : (int)len, text, rc, err);
        assert_int_equal(rc, -EINVAL);
        assert_string_equal(err, want);
        test_printable(err);
        /* zeroed on error */
        assert_int_equal(p.mode, 0);
        assert_int_equal(p.max_age, 0);
        assert_int_equal(p.nmx, 0);
        assert_null(p.mx);
}

static void test_policy_fails(const char *text, const char *want)
{
        test_policy_fails_n(text, strlen(text), want);
}

#define TEST_RFC_POLICY                                                                  \
        "version: STSv1\r\n"                                                             \
        "mode: enforce\r\n"                                                              \
        "mx: mail.example.com\r\n"                                                       \
        "mx: *.example.net\r\n"                                                          \
        "mx: backupmx.example.com\r\n"                                                   \
        "max_age: 604800\r\n"

static void test_policy_check_rfc(const struct mtasts_policy *p)
{
        assert_int_equal(p->mode, MTASTS_MODE_ENFORCE);
        assert_int_equal(p->max_age, 604800);
        assert_int_equal(p->nmx, 3);
        assert_string_equal(p->mx[0], "mail.example.com");
        assert_string_equal(p->mx[1], "*.example.net");
        assert_string_equal(p->mx[2], "backupmx.example.com");
}

/* RFC 8461 3.2's example, with CRLF, LF, and no final line end. */
static void test_policy_rfc_example(void **state)
{
        static const char lf[] = "version: STSv1\n"
                                 "mode: enforce\n"
                                 "mx: mail.example.com\n"
                                 "mx: *.example.net\n"
                                 "mx: backupmx.example.com\n"
                                 "max_age: 604800";
        struct mtasts_policy p;

        (void)state;
        test_policy_ok(TEST_RFC_POLICY, &p);
        test_policy_check_rfc(&p);
        mtasts_policy_cleanup(&p);

        test_policy_ok(lf, &p);
        test_policy_check_rfc(&p);
        mtasts_policy_cleanup(&p);

        /* without the final CRLF */
        test_policy_ok_n(TEST_RFC_POLICY, sizeof(TEST_RFC_POLICY) - 3, &p);
        test_policy_check_rfc(&p);
        mtasts_policy_cleanup(&p);

        /* 3.2's other example: testing mode */
        test_policy_ok(
            "version: STSv1\nmode: testing\nmx: mx1.example.com\n"
            "mx: mx2.example.com\nmx: mx.backup-example.com\nmax_age: 1296000\n",
            &p);
        assert_int_equal(p.mode, MTASTS_MODE_TESTING);
        assert_int_equal(p.max_age, 1296000);
        assert_int_equal(p.nmx, 3);
        assert_string_equal(p.mx[2], "mx.backup-example.com");
        mtasts_policy_cleanup(&p);
        assert_int_equal(p.nmx, 0);
        assert_null(p.mx);
}

static void test_policy_whitespace(void **state)
{
        struct mtasts_policy p;

        (void)state;
        /* *WSP after ':' and at the end of a line; LF and CRLF mixed; any field order */
        test_policy_ok("max_age:86400 \t\r\n"
                       "mx:  MX1.Example.COM. \n"
                       "mode:\t enforce\t\n"
                       "mx: *.EXAMPLE.net.\r\n"
                       "version:STSv1",
                       &p);
        assert_int_equal(p.mode, MTASTS_MODE_ENFORCE);
        assert_int_equal(p.max_age, 86400);
        assert_int_equal(p.nmx, 2);
        assert_string_equal(p.mx[0], "mx1.example.com");
        assert_string_equal(p.mx[1], "*.example.net");
        mtasts_policy_cleanup(&p);

        /* unknown fields are ignored, whatever their (valid) value */
        test_policy_ok("version: STSv1\nmode: none\nmax_age: 1\nx-comment: a=b; c: d\n"
                       "note: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7 ok\n",
                       &p);
        assert_int_equal(p.mode, MTASTS_MODE_NONE);
        mtasts_policy_cleanup(&p);
}

#define TEST_HEAD "version: STSv1\nmode: enforce\nmax_age: 86400\n"

static void test_policy_errors(void **state)
{
        (void)state;
        test_policy_fails("", "empty policy");
        test_policy_fails("version: STSv2\nmode: none\nmax_age: 1\n",
                          "line 1: version \"STSv2\" is not STSv1");
        test_policy_fails("mode: none\nversion: stsv1\nmax_age: 1\n",
                          "line 2: version \"stsv1\" is not STSv1");
        test_policy_fails("mode: none\nmax_age: 1\n", "no version field");
        test_policy_fails("version: STSv1\nmax_age: 1\n", "no mode field");
        test_policy_fails("version: STSv1\nmode: none\n", "no max_age field");
        test_policy_fails("version: STSv1\nmode: enforce\nmax_age: 1\n",
                          "no mx field (required unless mode is none)");
        test_policy_fails("version: STSv1\nmode: testing\nmax_age: 1\n",
                          "no mx field (required unless mode is none)");
        /* names and values are case-sensitive */
        test_policy_fails("version: STSv1\nmode: Enforce\nmax_age: 1\nmx: a.example\n",
                          "line 2: bad mode \"Enforce\" (enforce, testing or none)");
        test_policy_fails("version: STSv1\nMode: enforce\nmax_age: 1\nmx: a.example\n",
                          "no mode field (line 2 has it in another case; field names are "
                          "case-sensitive)");
        test_policy_fails("VERSION: STSv1\nmode: none\nmax_age: 1\n",
                          "no version field (line 1 has it in another case; field names "
                          "are case-sensitive)");
        test_policy_fails("version: STSv1\nmode: enforce\nmax_age: 1\nMX: a.example\n",
                          "no mx field (required unless mode is none) (line 4 has it in "
                          "another case; field names are case-sensitive)");
        test_policy_fails(
            "version: STSv1\nmode: enforce now\nmax_age: 1\n",
            "line 2: bad mode \"enforce\\x20now\" (enforce, testing or none)");
        /* line structure */
        /* blank lines are skipped (not in the grammar; tolerated) */
        test_policy_ok_mode("version: STSv1\n\nmode: none\nmax_age: 1\n",
                            MTASTS_MODE_NONE);
        test_policy_ok_mode("version: STSv1\r\n \t\r\nmode: none\r\nmax_age: 1\r\n",
                            MTASTS_MODE_NONE);
        test_policy_ok_mode("version: STSv1\nmode: none\nmax_age: 1\n\n",
                            MTASTS_MODE_NONE);
        test_policy_fails("\n", "no version field");
        test_policy_fails(
            " version: STSv1\n",
            "line 1: expected \"name: value\", got \"\\x20version:\\x20STSv1\"");
        test_policy_fails(
            "version : STSv1\n",
            "line 1: expected \"name: value\", got \"version\\x20:\\x20STSv1\"");
        test_policy_fails("version STSv1\n",
                          "line 1: expected \"name: value\", got \"version\\x20STSv1\"");
        test_policy_fails("version\n",
                          "line 1: expected \"name: value\", got \"version\"");
        test_policy_fails("version: STSv1\nmode: none\nmax_age: 1\n_x: 1\n",
                          "line 4: expected \"name: value\", got \"_x:\\x201\"");
        test_policy_fails("version: STSv1\nmode:\nmax_age: 1\n",
                          "line 2: mode has no value");
        test_policy_fails("version: STSv1\nmode: \t \nmax_age: 1\n",
                          "line 2: mode has no value");
        test_policy_fails(
            TEST_HEAD "e0123456789012345678901234567890x: 1\n",
            "line 4: field name \"e0123456789012345678901234567890x\" longer "
            "than 32 characters");
        /* a lone CR does not end a line, so it is in the value */
        test_policy_fails("version: STSv1\rmode: none\nmax_age: 1\n",
                          "line 1: bad value for version: \"STSv1\\x0dmode:\\x20none\"");
        test_policy_fails("version: STSv1\r\r\nmode: none\nmax_age: 1\n",
                          "line 1: bad value for version: \"STSv1\\x0d\"");
        /* nor does one at the very end, with no LF after it */
        test_policy_fails("version: STSv1\nmode: none\nmax_age: 1\r",
                          "line 3: bad value for max_age: \"1\\x0d\"");
        /* values: no control characters, UTF-8 only */
        test_policy_fails(TEST_HEAD "note: a\tb\n",
                          "line 4: bad value for note: \"a\\x09b\"");
        test_policy_fails(TEST_HEAD "note: \xff\n",
                          "line 4: bad value for note: \"\\xff\"");
        test_policy_fails(TEST_HEAD "note: \xc0\xaf\n",
                          "line 4: bad value for note: \"\\xc0\\xaf\"");
        test_policy_fails(TEST_HEAD "note: \xed\xa0\x80\n",
                          "line 4: bad value for note: \"\\xed\\xa0\\x80\"");
        test_policy_fails(TEST_HEAD "note: \xe2\x82\n",
                          "line 4: bad value for note: \"\\xe2\\x82\"");
        test_policy_fails(TEST_HEAD "note: \xf4\x90\x80\x80\n",
                          "line 4: bad value for note: \"\\xf4\\x90\\x80\\x80\"");
}

static void test_policy_bad_mx(void **state)
{
        static const char *const bad[] = {
            "-bad.example.net",
            "bad-.example.net",
            "mx_1.example.net",
            "a..example.net",
            "*.*.example.net",
            "mx.*.example.net",
            "m*.example.net",
            "*.",
            "*",
            ".",
            ".example.net",
            "example.net..",
            "mx.example.net:25",
            "[192.0.2.1]",
            "caf\xc3\xa9.example",
        };
        char text[1024], want[512], q[128], label[70], name[300], err[TEST_ERRLEN];
        struct mtasts_policy p;

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                size_t o = 0;

                for (const char *s = bad[i]; *s; s++) {
                        unsigned char c = (unsigned char)*s;

                        if (c > 0x20 && c < 0x7f && c != '"' && c != '\\')
                                q[o++] = (char)c;
                        else
                                o += (size_t)snprintf(q + o, sizeof(q) - o, "\\x%02x", c);
                }
                q[o] = '\0';
                snprintf(text, sizeof(text), TEST_HEAD "mx: ok.example.net\nmx: %s\n",
                         bad[i]);
                snprintf(want, sizeof(want),
                         "line 5: bad mx \"%s\" (a host name or \"*.\" and a host name)",
                         q);
                test_policy_fails(text, want);
        }

        /* labels of 63, names of 253 (and a trailing dot) are fine; one more is not */
        memset(label, 'a', 63);
        label[63] = '\0';
        snprintf(text, sizeof(text), TEST_HEAD "mx: %s.example.net\n", label);
        test_policy_ok(text, &p);
        assert_int_equal(strlen(p.mx[0]), 63 + 12);
        mtasts_policy_cleanup(&p);
        snprintf(text, sizeof(text), TEST_HEAD "mx: a%s.example.net\n", label);
        snprintf(
            want, sizeof(want),
            "line 4: bad mx \"a%s.example.net\" (a host name or \"*.\" and a host name)",
            label);
        test_policy_fails(text, want);

        snprintf(name, sizeof(name), "%s.%s.%s.%.61s", label, label, label, label);
        assert_int_equal(strlen(name), 253);
        snprintf(text, sizeof(text), TEST_HEAD "mx: %s.\nmx: *.%s\n", name, name);
        test_policy_ok(text, &p);
        assert_int_equal(strlen(p.mx[0]), 253);
        assert_int_equal(strlen(p.mx[1]), 255);
        assert_true(test_covered(&p, name));
        mtasts_policy_cleanup(&p);
        /* 254: every label fits, the whole does not (the reason is cut with "...") */
        snprintf(name, sizeof(name), "%s.%s.%s.%.62s", label, label, label, label);
        assert_int_equal(strlen(name), 254);
        snprintf(text, sizeof(text), TEST_HEAD "mx: %s\n", name);
        assert_int_equal(mtasts_policy_parse(text, strlen(text), &p, err, sizeof(err)),
                         -EINVAL);
        assert_true(strncmp(err, "line 4: bad mx \"aaaa", 19) == 0);
        assert_non_null(strstr(err, "...\" (a host name or \"*.\" and a host name)"));
        assert_null(p.mx);
}

static void test_policy_nul(void **state)
{
        static const char text[] = "version: STSv1\nmode: no\0ne\nmax_age: 1\n";
        static const char first[] = "\0version: STSv1\nmode: none\nmax_age: 1\n";

        (void)state;
        test_policy_fails_n(text, sizeof(text) - 1, "line 2: NUL byte");
        test_policy_fails_n(first, sizeof(first) - 1, "line 1: NUL byte");
        /* never read past len: the same bytes cut before the NUL are a good policy */
        {
                static const char cut[] =
                    "version: STSv1\nmode: none\nmax_age: 1\0garbage";
                struct mtasts_policy p;

                test_policy_ok_n(cut, strlen(cut), &p);
                assert_int_equal(p.max_age, 1);
                mtasts_policy_cleanup(&p);
        }
}

static void test_policy_mode_none(void **state)
{
        struct mtasts_policy p;

        (void)state;
        test_policy_ok("version: STSv1\nmode: none\nmax_age: 86400\n", &p);
        assert_int_equal(p.mode, MTASTS_MODE_NONE);
        assert_int_equal(p.nmx, 0);
        assert_null(p.mx);
        assert_false(test_covered(&p, "mx.example.net"));
        mtasts_policy_cleanup(&p);

        /* mx lines with mode none are kept, and still checked */
        test_policy_ok("version: STSv1\nmode: none\nmax_age: 86400\nmx: mx.example.net\n",
                       &p);
        assert_int_equal(p.nmx, 1);
        assert_true(test_covered(&p, "mx.example.net"));
        mtasts_policy_cleanup(&p);
        test_policy_fails(
            "version: STSv1\nmode: none\nmax_age: 86400\nmx: bad!\n",
            "line 4: bad mx \"bad!\" (a host name or \"*.\" and a host name)");
}

static void test_policy_too_many_mx(void **state)
{
        char text[4096];
        size_t o;
        struct mtasts_policy p;

        (void)state;
        o = (size_t)snprintf(text, sizeof(text), "%s", TEST_HEAD);
        for (int i = 0; i < MTASTS_MX_MAX; i++)
                o += (size_t)snprintf(text + o, sizeof(text) - o,
                                      "mx: mx%d.example.net\n", i);
        test_policy_ok(text, &p);
        assert_int_equal(p.nmx, MTASTS_MX_MAX);
        assert_string_equal(p.mx[MTASTS_MX_MAX - 1], "mx63.example.net");
        assert_true(test_covered(&p, "mx63.example.net"));
        mtasts_policy_cleanup(&p);

        snprintf(text + o, sizeof(text) - o, "mx: one-more.example.net\n");
        test_policy_fails(text, "line 68: more than 64 mx lines");
}

static void test_policy_max_age(void **state)
{
        static const struct {
                const char *value;
                uint32_t want;
        } good[] = {
            {"0", 0},
            {"1", 1},
            {"0000000001", 1},
            {"86400", 86400},
            {"31557600", 31557600},
            /* above the RFC's maximum: clamped, not refused */
            {"31557601", MTASTS_MAX_AGE_MAX},
            {"4294967296", MTASTS_MAX_AGE_MAX},
            {"9999999999", MTASTS_MAX_AGE_MAX},
        };
        static const char *const bad[] = {"99999999999", "-1",   "+1",  "12x",
                                          "1 2",         "0x10", "1e6", "\xef\xbc\x91"};
        char text[256], want[256], q[64];

        (void)state;
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                struct mtasts_policy p;

                snprintf(text, sizeof(text), "version: STSv1\nmode: none\nmax_age: %s\n",
                         good[i].value);
                test_policy_ok(text, &p);
                if (p.max_age != good[i].want)
                        print_error("max_age: %s: got %u\n", good[i].value, p.max_age);
                assert_int_equal(p.max_age, good[i].want);
                mtasts_policy_cleanup(&p);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                size_t o = 0;

                for (const char *s = bad[i]; *s; s++) {
                        unsigned char c = (unsigned char)*s;

                        if (c > 0x20 && c < 0x7f)
                                q[o++] = (char)c;
                        else
                                o += (size_t)snprintf(q + o, sizeof(q) - o, "\\x%02x", c);
                }
                q[o] = '\0';
                snprintf(text, sizeof(text), "version: STSv1\nmode: none\nmax_age: %s\n",
                         bad[i]);
                snprintf(want, sizeof(want),
                         "line 3: bad max_age \"%s\" (1 to 10 digits)", q);
                test_policy_fails(text, want);
        }
}

/* RFC 8461 3.2: a repeated field other than mx counts the first time only. */
static void test_policy_repeated(void **state)
{
        struct mtasts_policy p;

        (void)state;
        test_policy_ok("version: STSv1\nmode: testing\nmode: enforce\nmax_age: 100\n"
                       "max_age: 200\nmx: a.example\n",
                       &p);
        assert_int_equal(p.mode, MTASTS_MODE_TESTING);
        assert_int_equal(p.max_age, 100);
        mtasts_policy_cleanup(&p);

        /* later ones are ignored whatever they say */
        test_policy_ok("version: STSv1\nversion: STSv2\nmode: none\nmode: bogus\n"
                       "max_age: 5\nmax_age: x\n",
                       &p);
        assert_int_equal(p.mode, MTASTS_MODE_NONE);
        assert_int_equal(p.max_age, 5);
        mtasts_policy_cleanup(&p);

        /* but the first one must be right */
        test_policy_fails("version: STSv1\nmode: bogus\nmode: none\nmax_age: 5\n",
                          "line 2: bad mode \"bogus\" (enforce, testing or none)");
}

static void test_policy_size(void **state)
{
        static const char head[] = "version: STSv1\nmode: none\nmax_age: 1\npad: ";
        char *text = malloc(MTASTS_BODY_MAX + 2);
        struct mtasts_policy p;

        (void)state;
        assert_non_null(text);
        memcpy(text, head, sizeof(head) - 1);
        memset(text + sizeof(head) - 1, 'x', MTASTS_BODY_MAX - (sizeof(head) - 1));
        text[MTASTS_BODY_MAX - 1] = '\n';
        test_policy_ok_n(text, MTASTS_BODY_MAX, &p);
        assert_int_equal(p.max_age, 1);
        mtasts_policy_cleanup(&p);

        text[MTASTS_BODY_MAX - 1] = 'x';
        text[MTASTS_BODY_MAX] = '\n';
        test_policy_fails_n(text, MTASTS_BODY_MAX + 1,
                            "policy of 65537 bytes (at most 65536 are taken)");
        free(text);
}

static void test_mode_str(void **state)
{
        (void)state;
        assert_string_equal(mtasts_mode_str(MTASTS_MODE_NONE), "none");
        assert_string_equal(mtasts_mode_str(MTASTS_MODE_TESTING), "testing");
        assert_string_equal(mtasts_mode_str(MTASTS_MODE_ENFORCE), "enforce");
        assert_string_equal(mtasts_mode_str((enum mtasts_mode)7), "invalid");
}

/* ---- matching ---- */

static void test_patterns_cover(void **state)
{
        static const struct {
                const char *host;
                bool want;
        } cases[] = {
            {"mail.example.com", true},
            {"MAIL.Example.COM.", true},
            {"mail.example.com..", false},
            {"a.mail.example.com", false},
            {"example.com", false},
            {"mail.example.co", false},
            {"mx1.example.net", true},
            {"MX1.EXAMPLE.NET.", true},
            {"example.net", false},
            {"a.b.example.net", false},
            {".example.net", false},
            {"*.example.net", true}, /* a certificate wildcard names such hosts */
            {"xexample.net", false},
            {"mx1.example.net.evil", false},
            {"", false},
            {".", false},
            {"mx1.example.net\n", false},
            {"bad_host.example.net", false},
        };
        struct mtasts_policy p;

        (void)state;
        test_policy_ok(TEST_RFC_POLICY, &p);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                bool got = test_covered(&p, cases[i].host);

                if (got != cases[i].want)
                        print_error("host \"%s\": got %d\n", cases[i].host, got);
                assert_int_equal(got, cases[i].want);
        }
        mtasts_policy_cleanup(&p);
        mtasts_policy_cleanup(&p); /* zeroed: a second cleanup is harmless */
        mtasts_policy_cleanup(NULL);
}

static void test_name_allowed(void **state)
{
        static const struct {
                const char *cert, *pattern;
                bool want;
        } cases[] = {
            /* the contract's examples */
            {"mx1.example.net", "*.example.net", true},
            {"*.example.net", "mx1.example.net", true},
            {"*.example.net", "*.example.net", true},
            {"a.b.example.net", "*.example.net", false},
            {"example.net", "*.example.net", false},
            {"*.other.net", "*.example.net", false},
            /* case and trailing dots */
            {"MX1.Example.Net.", "*.example.net", true},
            {"*.EXAMPLE.net", "mx1.example.NET.", true},
            {"*.example.net.", "*.EXAMPLE.NET", true},
            {"Example.Net", "example.net.", true},
            /* literal against literal */
            {"example.net", "other.net", false},
            {"mx1.example.net", "mx2.example.net", false},
            /* a wildcard covers one whole label, no more, no less */
            {"*.example.net", "example.net", false},
            {"*.example.net", "a.b.example.net", false},
            {"*.b.example.net", "*.example.net", false},
            {"*.example.net", "*.b.example.net", false},
            {"*.b.example.net", "a.b.example.net", true},
            {"*.example.net", "*.net", false},
            /* wildcards of other shapes, or over a single label, name nothing */
            {"m*.example.net", "*.example.net", false},
            {"m*.example.net", "m*.example.net", false},
            {"a.*.example.net", "a.b.example.net", false},
            {"*", "*.example.net", false},
            {"*.net", "*.net", false},
            {"*.net", "example.net", false},
            {"**.example.net", "a.example.net", false},
            /* not host names */
            {"", "example.net", false},
            {"example.net", "", false},
            {"mx1.example.net", "*", false},
            {"mx1.example.net\r\n", "*.example.net", false},
            {"mx1.example.net", "*.example.net\n", false},
            {"-mx.example.net", "*.example.net", false},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                bool got = mtasts_name_allowed(cases[i].cert, cases[i].pattern);

                if (got != cases[i].want)
                        print_error("cert \"%s\" pattern \"%s\": got %d\n", cases[i].cert,
                                    cases[i].pattern, got);
                assert_int_equal(got, cases[i].want);
        }
        assert_false(mtasts_name_allowed(NULL, "example.net"));
        assert_false(mtasts_name_allowed("example.net", NULL));
}

/* ---- HTTP ---- */

static void test_http_ok_n(const char *resp, size_t len, const char *want_body,
                           size_t want_len)
{
        const char *body = NULL;
        size_t body_len = 99;
        char err[TEST_ERRLEN];
        int rc = mtasts_http_parse(resp, len, true, &body, &body_len, err, sizeof(err));

        if (rc != 0)
                print_error("response \"%.*s\": rc=%d err=\"%s\"\n",
                            len > 200 ? 200 : (int)len, resp, rc, err);
        assert_int_equal(rc, 0);
        assert_string_equal(err, "");
        assert_true(body >= resp && body + body_len == resp + len);
        assert_int_equal(body_len, want_len);
        assert_memory_equal(body, want_body, want_len);
}

static void test_http_ok(const char *resp, const char *want_body)
{
        test_http_ok_n(resp, strlen(resp), want_body, strlen(want_body));
}

static void test_http_fails_n(const char *resp, size_t len, const char *want)
{
        const char *body = resp;
        size_t body_len = 99;
        char err[TEST_ERRLEN];
        int rc = mtasts_http_parse(resp, len, true, &body, &body_len, err, sizeof(err));

        if (rc != -EINVAL || strcmp(err, want) != 0)
                print_error("response \"%.*s\": rc=%d err=\"%s\"\n",
                            len > 200 ? 200 : (int)len, resp, rc, err);
        assert_int_equal(rc, -EINVAL);
        assert_string_equal(err, want);
        test_printable(err);
        assert_null(body);
        assert_int_equal(body_len, 0);
}

static void test_http_fails(const char *resp, const char *want)
{
        test_http_fails_n(resp, strlen(resp), want);
}

static void test_http_good(void **state)
{
        const char *body;
        size_t body_len;
        struct mtasts_policy p;
        char err[TEST_ERRLEN];
        static const char nul[] = "HTTP/1.1 200 OK\nContent-Type: text/plain\n\na\0b";
        char full[512];
        int n;

        (void)state;
        /* a whole fetch: the response, then the policy it carries */
        n = snprintf(full, sizeof(full),
                     "HTTP/1.1 200 OK\r\nServer: test\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     sizeof(TEST_RFC_POLICY) - 1, TEST_RFC_POLICY);
        assert_int_equal(
            mtasts_http_parse(full, (size_t)n, false, &body, &body_len, err, sizeof(err)),
            0);
        assert_int_equal(body_len, sizeof(TEST_RFC_POLICY) - 1);
        assert_int_equal(mtasts_policy_parse(body, body_len, &p, err, sizeof(err)), 0);
        test_policy_check_rfc(&p);
        mtasts_policy_cleanup(&p);

        test_http_ok("HTTP/1.0 200 OK\nContent-Type: text/plain; charset=utf-8\n\nbody",
                     "body");
        test_http_ok(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nx", "x");
        test_http_ok("HTTP/1.1 200 OK\r\nContent-Type: TEXT/PLAIN\r\n\r\nx", "x");
        test_http_ok(
            "HTTP/1.1 200 OK\r\ncontent-type:text/plain ;charset=\"utf-8\"\r\n\r\nx",
            "x");
        test_http_ok("HTTP/1.1 200 OK\r\nContent-Type: Text/Plain\t\r\n"
                     "Transfer-Encoding: Identity\r\n\r\nx",
                     "x");
        test_http_ok("HTTP/1.1 200\r\nContent-Type: text/plain\r\n\r\nno reason",
                     "no reason");
        test_http_ok(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
            "content-length: 3\r\n\r\nabc",
            "abc");
        test_http_ok(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
            "");
        /* the body may hold anything; the policy parser judges it */
        test_http_ok_n(nul, sizeof(nul) - 1, "a\0b", 3);
}

static void test_http_status(void **state)
{
        (void)state;
        test_http_fails("HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\n<html>",
                        "HTTP status 404");
        test_http_fails(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: https://evil/\r\n\r\n",
            "HTTP status 301: redirects are not followed");
        test_http_fails("HTTP/1.1 302 Found\r\nContent-Type: text/plain\r\n\r\n",
                        "HTTP status 302: redirects are not followed");
        test_http_fails("HTTP/1.0 308 Permanent Redirect\n\n",
                        "HTTP status 308: redirects are not followed");
        test_http_fails("HTTP/1.1 204 No Content\r\n\r\n", "HTTP status 204");
        test_http_fails("HTTP/1.1 100 Continue\r\n\r\n", "HTTP status 100");
        test_http_fails("HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\n\r\nx",
                        "HTTP status 500");
        test_http_fails("HTTP/2 200 OK\r\nContent-Type: text/plain\r\n\r\nx",
                        "bad HTTP status line \"HTTP/2\\x20200\\x20OK\"");
        test_http_fails("http/1.1 200 OK\r\n\r\n",
                        "bad HTTP status line \"http/1.1\\x20200\\x20OK\"");
        test_http_fails("HTTP/1.2 200 OK\r\n\r\n",
                        "bad HTTP status line \"HTTP/1.2\\x20200\\x20OK\"");
        test_http_fails("HTTP/1.1 20 OK\r\n\r\n",
                        "bad HTTP status line \"HTTP/1.1\\x2020\\x20OK\"");
        test_http_fails("HTTP/1.1 2000 OK\r\n\r\n",
                        "bad HTTP status line \"HTTP/1.1\\x202000\\x20OK\"");
        test_http_fails("HTTP/1.1  200 OK\r\n\r\n",
                        "bad HTTP status line \"HTTP/1.1\\x20\\x20200\\x20OK\"");
        test_http_fails("\r\n\r\n", "bad HTTP status line \"\"");
}

static void test_http_headers(void **state)
{
        static const char nul[] =
            "HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Type: text/plain\r\n\r\nx";

        (void)state;
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>",
                        "Content-Type text/html (text/plain is required)");
        test_http_fails(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\nx",
            "Content-Type text/html (text/plain is required)");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plainx\r\n\r\nx",
                        "Content-Type text/plainx (text/plain is required)");
        test_http_fails(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain, text/html\r\n\r\nx",
            "Content-Type text/plain,\\x20text/html (text/plain is required)");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type:\r\n\r\nx",
                        "empty Content-Type (text/plain is required)");
        test_http_fails("HTTP/1.1 200 OK\r\nServer: x\r\n\r\nx",
                        "no Content-Type (text/plain is required)");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Type: text/plain\r\n\r\nx",
                        "more than one Content-Type");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
                        "Transfer-Encoding chunked is not supported");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Transfer-Encoding: gzip, identity\r\n\r\nx",
                        "Transfer-Encoding gzip,\\x20identity is not supported");
        test_http_fails(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n charset=x\r\n\r\nx",
            "folded header line \"\\x20charset=x\"");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type : text/plain\r\n\r\nx",
                        "bad header line \"Content-Type\\x20:\\x20text/plain\"");
        test_http_fails("HTTP/1.1 200 OK\r\nNoColon\r\n\r\nx",
                        "bad header line \"NoColon\"");
        test_http_fails("HTTP/1.1 200 OK\r\n: x\r\n\r\nx", "bad header line \":\\x20x\"");
        test_http_fails_n(nul, sizeof(nul) - 1, "bad header line \"X:\\x20a\\x00b\"");
        test_http_fails("HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Type: text/plain\r\n\r\nx",
                        "bad header line \"X:\\x20a\\x0db\"");
}

static void test_http_length(void **state)
{
        (void)state;
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 100\r\n\r\n0123456789",
                        "truncated body (10 of 100 bytes)");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 5\r\n\r\n0123456789",
                        "5 bytes after the body (Content-Length 5)");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: abc\r\n\r\nx",
                        "bad Content-Length \"abc\"");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: -1\r\n\r\nx",
                        "bad Content-Length \"-1\"");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 1 1\r\n\r\nx",
                        "bad Content-Length \"1\\x201\"");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length:\r\n\r\nx",
                        "bad Content-Length \"\"");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 99999999999999999999999999\r\n\r\nx",
                        "bad Content-Length \"99999999999999999999999999\"");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 1\r\nContent-Length: 2\r\n\r\nx",
                        "conflicting Content-Length 1 and 2");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 70000\r\n\r\nx",
                        "body over 65536 bytes");
        /* the end of the headers */
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n",
                        "no header end");
        test_http_fails("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r",
                        "no header end");
        test_http_fails("HTTP/1.1 200 OK", "no header end");
        test_http_fails("", "no header end");
        test_http_fails_n(NULL, 0, "no header end");
}

/*
 * A body without Content-Length ends where the connection does: taken only
 * when a close_notify says so, for a bare TCP FIN may come from the path
 * (here after "max_age: 6" of "max_age: 604800").
 */
static void test_http_close_notify(void **state)
{
        static const char cut[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                                  "version: STSv1\nmode: enforce\nmx: mx.example.net\n"
                                  "max_age: 6";
        static const char sized[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                                    "Content-Length: 4\r\n\r\nbody";
        static const char empty[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n";
        const char *body = cut;
        size_t body_len = 99;
        char err[TEST_ERRLEN];

        (void)state;
        assert_int_equal(mtasts_http_parse(cut, sizeof(cut) - 1, false, &body, &body_len,
                                           err, sizeof(err)),
                         -EINVAL);
        assert_string_equal(err, "no Content-Length and no TLS close_notify: the body "
                                 "(58 bytes) may have been cut short");
        assert_null(body);
        assert_int_equal(body_len, 0);
        assert_int_equal(mtasts_http_parse(empty, sizeof(empty) - 1, false, &body,
                                           &body_len, err, sizeof(err)),
                         -EINVAL);
        /* the same with close_notify: all there */
        assert_int_equal(mtasts_http_parse(cut, sizeof(cut) - 1, true, &body, &body_len,
                                           err, sizeof(err)),
                         0);
        assert_int_equal(body_len, 58);
        /* Content-Length says where the body ends, close_notify or not */
        assert_int_equal(mtasts_http_parse(sized, sizeof(sized) - 1, false, &body,
                                           &body_len, err, sizeof(err)),
                         0);
        assert_int_equal(body_len, 4);
        assert_memory_equal(body, "body", 4);
        assert_int_equal(mtasts_http_parse(sized, sizeof(sized) - 3, false, &body,
                                           &body_len, err, sizeof(err)),
                         -EINVAL);
        assert_string_equal(err, "truncated body (2 of 4 bytes)");
}

/* Headers up to MTASTS_HEADER_MAX bytes, bodies up to MTASTS_BODY_MAX. */
static void test_http_sizes(void **state)
{
        static const char head[] =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Pad: ";
        size_t cap = MTASTS_HEADER_MAX + MTASTS_BODY_MAX + 256, n, pad;
        char *buf = malloc(cap);

        (void)state;
        assert_non_null(buf);

        /* headers of exactly MTASTS_HEADER_MAX bytes, the empty line included */
        pad = MTASTS_HEADER_MAX - (sizeof(head) - 1) - 4;
        memcpy(buf, head, sizeof(head) - 1);
        memset(buf + sizeof(head) - 1, 'p', pad);
        n = sizeof(head) - 1 + pad;
        memcpy(buf + n, "\r\n\r\nbody", 8);
        assert_int_equal(n + 4, MTASTS_HEADER_MAX);
        test_http_ok_n(buf, n + 8, "body", 4);

        /* one byte more */
        memset(buf + sizeof(head) - 1, 'p', pad + 1);
        n = sizeof(head) - 1 + pad + 1;
        memcpy(buf + n, "\r\n\r\nbody", 8);
        test_http_fails_n(buf, n + 8, "HTTP headers over 16384 bytes");
        /* and never an end at all */
        memset(buf + sizeof(head) - 1, 'p', 2 * MTASTS_HEADER_MAX);
        test_http_fails_n(buf, sizeof(head) - 1 + 2 * MTASTS_HEADER_MAX,
                          "HTTP headers over 16384 bytes");

        /* a body of MTASTS_BODY_MAX bytes, with and without Content-Length */
        n = (size_t)snprintf(buf, cap,
                             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
        memset(buf + n, 'b', MTASTS_BODY_MAX + 1);
        test_http_ok_n(buf, n + MTASTS_BODY_MAX, buf + n, MTASTS_BODY_MAX);
        test_http_fails_n(buf, n + MTASTS_BODY_MAX + 1, "body over 65536 bytes");
        n = (size_t)snprintf(buf, cap,
                             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: %d\r\n\r\n",
                             MTASTS_BODY_MAX + 1);
        memset(buf + n, 'b', MTASTS_BODY_MAX + 1);
        test_http_fails_n(buf, n + MTASTS_BODY_MAX + 1, "body over 65536 bytes");
        free(buf);
}

/* A reason is cut to errlen and still NUL-terminated. */
static void test_err_short(void **state)
{
        static const char resp[] = "HTTP/1.1 404 Not Found\r\n\r\n";
        const char *body;
        size_t body_len;
        char err[8];
        struct mtasts_policy p;

        (void)state;
        memset(err, 'z', sizeof(err));
        assert_int_equal(mtasts_http_parse(resp, sizeof(resp) - 1, true, &body, &body_len,
                                           err, sizeof(err)),
                         -EINVAL);
        assert_string_equal(err, "HTTP st");
        assert_int_equal(mtasts_policy_parse("x", 1, &p, NULL, 0), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_txt_rfc_example),
            cmocka_unit_test(test_txt_whitespace),
            cmocka_unit_test(test_txt_discarded),
            cmocka_unit_test(test_txt_bad_ids),
            cmocka_unit_test(test_txt_extensions),
            cmocka_unit_test(test_txt_repeated_id),
            cmocka_unit_test(test_txt_several),
            cmocka_unit_test(test_txt_bytes),
            cmocka_unit_test(test_policy_rfc_example),
            cmocka_unit_test(test_policy_whitespace),
            cmocka_unit_test(test_policy_errors),
            cmocka_unit_test(test_policy_bad_mx),
            cmocka_unit_test(test_policy_nul),
            cmocka_unit_test(test_policy_mode_none),
            cmocka_unit_test(test_policy_too_many_mx),
            cmocka_unit_test(test_policy_max_age),
            cmocka_unit_test(test_policy_repeated),
            cmocka_unit_test(test_policy_size),
            cmocka_unit_test(test_mode_str),
            cmocka_unit_test(test_patterns_cover),
            cmocka_unit_test(test_name_allowed),
            cmocka_unit_test(test_http_good),
            cmocka_unit_test(test_http_status),
            cmocka_unit_test(test_http_headers),
            cmocka_unit_test(test_http_length),
            cmocka_unit_test(test_http_close_notify),
            cmocka_unit_test(test_http_sizes),
            cmocka_unit_test(test_err_short),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
