/*
 * Unit tests for lib/policy: the table parser (good tables, every error
 * message with its line), lookups, the dane levels, judging over a
 * table of (expectation, observation) -> verdict cases, and the tables
 * shipped in policies/ (the tests run from the repository root).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"
#include "util.h"

struct test_table {
        char path[64];
        char *errs; /* everything policy_load() reported */
        size_t errslen;
        struct policy *p;
        int rc;
};

/* Write text to a temporary file and load it. */
static void test_load(struct test_table *t, const char *text)
{
        FILE *f, *errs;
        int fd;

        snprintf(t->path, sizeof(t->path), "/tmp/mailward-test-policy-XXXXXX");
        fd = mkstemp(t->path);
        assert_true(fd >= 0);
        f = fdopen(fd, "w");
        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);

        errs = open_memstream(&t->errs, &t->errslen);
        assert_non_null(errs);
        t->rc = policy_load(t->path, errs, &t->p);
        fclose(errs);
}

static void test_unload(struct test_table *t)
{
        unlink(t->path);
        free(t->errs);
        policy_free(t->p);
}

/* The expected report, with FILE standing for the table's path. */
static void test_expect_errs(const struct test_table *t, const char *expected)
{
        char want[4096];
        size_t o = 0;

        for (const char *s = expected; *s && o + 64 < sizeof(want); s++) {
                if (strncmp(s, "FILE", 4) == 0) {
                        o += (size_t)snprintf(want + o, sizeof(want) - o, "%s", t->path);
                        s += 3;
                } else {
                        want[o++] = *s;
                }
        }
        want[o] = '\0';
        assert_string_equal(t->errs, want);
}

static void test_load_fails(const char *text, const char *expected)
{
        struct test_table t;

        test_load(&t, text);
        assert_int_equal(t.rc, -EINVAL);
        assert_null(t.p);
        test_expect_errs(&t, expected);
        test_unload(&t);
}

/* ---- parser ---- */

static void test_parse_good(void **state)
{
        struct test_table t;
        struct policy_expectation x;

        (void)state;
        test_load(
            &t,
            "# a comment\n"
            "\n"
            "   # an indented comment\n"
            "Bank.Example.   SECURE  match=nexthop:.BANK.example protocols=>=TLSv1.3\n"
            ".bank.example   secure\n"
            "partner.example verify\n"
            "\tmatch=mx1.host.example\n"
            "# a comment inside an entry does not end it\n"
            "   match=mx2.host.example,protocols=!SSLv2:!SSLv3:!TLSv1:!TLSv1.1\n"
            "plain.example   none\n"
            "tls12.example   encrypt protocols=TLSv1.2\n"
            "any.example     may\r\n"
            "last.example    encrypt"); /* no final newline */
        assert_int_equal(t.rc, 0);
        assert_string_equal(t.errs, "");
        assert_non_null(t.p);
        assert_int_equal(policy_count(t.p), 7);

        x = policy_lookup(t.p, "bank.example");
        assert_int_equal(x.level, POLICY_LEVEL_SECURE);
        assert_int_equal(x.source, POLICY_SOURCE_FILE);
        assert_string_equal(x.key, "bank.example");
        assert_string_equal(x.file, t.path);
        assert_int_equal(x.line, 4);
        assert_int_equal(x.nmatch, 2);
        assert_string_equal(x.match[0], "nexthop");
        assert_string_equal(x.match[1], ".bank.example");
        assert_int_equal(x.min_proto, POLICY_PROTO_TLSV1_3);
        assert_int_equal(x.max_proto, POLICY_PROTO_TLSV1_3);

        /* match= given twice adds up, as in Postfix; continuation lines */
        x = policy_lookup(t.p, "partner.example");
        assert_int_equal(x.level, POLICY_LEVEL_VERIFY);
        assert_int_equal(x.line, 6);
        assert_int_equal(x.nmatch, 2);
        assert_string_equal(x.match[0], "mx1.host.example");
        assert_string_equal(x.match[1], "mx2.host.example");
        assert_int_equal(x.min_proto, POLICY_PROTO_TLSV1_2);
        assert_int_equal(x.max_proto, POLICY_PROTO_TLSV1_3);

        x = policy_lookup(t.p, "plain.example");
        assert_int_equal(x.level, POLICY_LEVEL_NONE);
        assert_int_equal(x.nmatch, 0);
        x = policy_lookup(t.p, "tls12.example");
        assert_int_equal(x.level, POLICY_LEVEL_ENCRYPT);
        assert_int_equal(x.min_proto, POLICY_PROTO_TLSV1_2);
        assert_int_equal(x.max_proto, POLICY_PROTO_TLSV1_2);
        x = policy_lookup(t.p, "any.example");
        assert_int_equal(x.level, POLICY_LEVEL_MAY);
        x = policy_lookup(t.p, "last.example");
        assert_int_equal(x.level, POLICY_LEVEL_ENCRYPT);
        assert_int_equal(x.line, 13);
        test_unload(&t);
}

static void test_parse_default_match(void **state)
{
        struct test_table t;
        struct policy_expectation x;

        (void)state;
        test_load(&t, "v.example verify\ns.example secure\n");
        assert_int_equal(t.rc, 0);
        x = policy_lookup(t.p, "v.example");
        assert_int_equal(x.nmatch, 1);
        assert_string_equal(x.match[0], "hostname");
        x = policy_lookup(t.p, "s.example");
        assert_int_equal(x.nmatch, 2);
        assert_string_equal(x.match[0], "nexthop");
        assert_string_equal(x.match[1], "dot-nexthop");
        test_unload(&t);
}

static void test_parse_errors_each(void **state)
{
        (void)state;
        test_load_fails("a.example bogus\n", "FILE:1: unknown TLS level \"bogus\"\n");
        test_load_fails("a.example fingerprint match=AA:BB\n",
                        "FILE:1: level fingerprint is not supported\n");
        test_load_fails("a.example\n", "FILE:1: missing TLS level for a.example\n");
        test_load_fails("a.example secure nomatch\n",
                        "FILE:1: bad attribute \"nomatch\" (expected name=value)\n");
        test_load_fails("a.example secure =x\n",
                        "FILE:1: bad attribute \"=x\" (expected name=value)\n");
        test_load_fails("a.example secure colour=blue\n",
                        "FILE:1: unknown attribute \"colour\"\n");
        test_load_fails("a.example encrypt match=nexthop\n",
                        "FILE:1: match= is not valid with level encrypt (only verify and "
                        "secure take it)\n");
        test_load_fails("a.example may match=a.example\n",
                        "FILE:1: match= is not valid with level may (only verify and "
                        "secure take it)\n");
        test_load_fails("a.example dane match=a.example\n",
                        "FILE:1: match= is not valid with level dane (only verify and "
                        "secure take it)\n");
        test_load_fails("a.example secure match=\n", "FILE:1: match= has no pattern\n");
        test_load_fails("a.example secure match=mx_1.example:bad!name:-x.example\n",
                        "FILE:1: bad match= pattern \"bad!name\"\n"
                        "FILE:1: bad match= pattern \"-x.example\"\n");
        test_load_fails("a.example secure\nb.example may\nA.Example. verify\n",
                        "FILE:3: duplicate entry for a.example (first at line 1)\n");
        test_load_fails(
            "a.example secure protocols=TLSv1.2:TLSv9\n",
            "FILE:1: bad protocols=TLSv1.2:TLSv9: unknown protocol \"TLSv9\"\n");
        test_load_fails(
            "a.example secure protocols=>TLSv1.2\n",
            "FILE:1: bad protocols=>TLSv1.2: unknown protocol \">TLSv1.2\"\n");
        test_load_fails(
            "a.example secure protocols=!>=TLSv1.2\n",
            "FILE:1: bad protocols=!>=TLSv1.2: unknown protocol \"!>=TLSv1.2\"\n");
        test_load_fails("a.example secure protocols=<=TLSv1.1\n",
                        "FILE:1: bad protocols=<=TLSv1.1: allows neither TLSv1.2 nor "
                        "TLSv1.3, the only versions mailward speaks\n");
        test_load_fails("a.example secure protocols=!TLSv1.2:!TLSv1.3\n",
                        "FILE:1: bad protocols=!TLSv1.2:!TLSv1.3: allows neither TLSv1.2 "
                        "nor TLSv1.3, the only versions mailward speaks\n");
        test_load_fails("a.example secure protocols=>=TLSv1.2 protocols=>=TLSv1.3\n",
                        "FILE:1: protocols= given twice\n");
        test_load_fails("a.example verify tafile=/etc/ta.pem\n",
                        "FILE:1: tafile= is not supported (certificates are checked "
                        "against the system's trust anchors)\n");
        test_load_fails("   a.example secure\n",
                        "FILE:1: continuation line without an entry before it\n");
        test_load_fails("a.example secure # our bank\n",
                        "FILE:1: '#' starts a comment only at the start of a line\n");
        test_load_fails("a.example # secure\n",
                        "FILE:1: missing TLS level for a.example\n"
                        "FILE:1: '#' starts a comment only at the "
                        "start of a line\n");
        test_load_fails("a_b..example secure\n", "FILE:1: bad domain \"a_b..example\"\n");
        test_load_fails("*.example secure\n", "FILE:1: bad domain \"*.example\"\n");
        test_load_fails(". secure\n", "FILE:1: bad domain \".\"\n");
}

static void test_parse_errors_many(void **state)
{
        (void)state;
        /* Every error is reported, with the physical line of what is wrong. */
        test_load_fails("# header\n"
                        "good.example     secure\n"
                        "bad.example      secrue\n"
                        "\n"
                        "partner.example  verify\n"
                        "    match=mx.partner.example\n"
                        "    protocols=TLSv1.4\n"
                        "good.example     may\n"
                        "plain.example    encrypt match=nexthop\n"
                        "x.example        verify frob=1\n",
                        "FILE:3: unknown TLS level \"secrue\"\n"
                        "FILE:7: bad protocols=TLSv1.4: unknown protocol \"TLSv1.4\"\n"
                        "FILE:8: duplicate entry for good.example (first at line 2)\n"
                        "FILE:9: match= is not valid with level encrypt (only verify and "
                        "secure take it)\n"
                        "FILE:10: unknown attribute \"frob\"\n");
}

static void test_parse_warnings(void **state)
{
        struct test_table t;
        struct policy_expectation x;

        (void)state;
        test_load(&t, "[mx.example]:25 secure\n"
                      "relay.example:587 secure\n"
                      "a.example encrypt ciphers=high exclude=3DES\n"
                      "b.example none match=x.example\n"
                      "c.example may servername=c.example connection_reuse=yes\n"
                      "d.example secure protocols=\n");
        assert_int_equal(t.rc, 0);
        test_expect_errs(
            &t, "FILE:1: warning: \"[mx.example]:25\" names a relay host, not "
                "a recipient domain: ignored\n"
                "FILE:2: warning: \"relay.example:587\" names a relay host, not "
                "a recipient domain: ignored\n"
                "FILE:3: warning: ciphers= ignored: mailward's cipher suites are "
                "fixed\n"
                "FILE:3: warning: exclude= ignored: mailward's cipher suites are "
                "fixed\n"
                "FILE:4: warning: attribute match= ignored with level none\n"
                "FILE:5: warning: servername= ignored\n"
                "FILE:5: warning: connection_reuse= ignored\n");
        assert_int_equal(policy_count(t.p), 4);
        /* an empty protocols= means no restriction, as in Postfix */
        x = policy_lookup(t.p, "d.example");
        assert_int_equal(x.min_proto, POLICY_PROTO_TLSV1_2);
        assert_int_equal(x.max_proto, POLICY_PROTO_TLSV1_3);
        test_unload(&t);
}

static void test_parse_protocols(void **state)
{
        static const struct {
                const char *value;
                enum policy_proto min, max;
        } cases[] = {
            {"!SSLv2:!SSLv3", POLICY_PROTO_TLSV1_2, POLICY_PROTO_TLSV1_3},
            {"!SSLv2:!SSLv3:!TLSv1:!TLSv1.1:!TLSv1.2", POLICY_PROTO_TLSV1_3,
             POLICY_PROTO_TLSV1_3},
            {">=TLSv1.2", POLICY_PROTO_TLSV1_2, POLICY_PROTO_TLSV1_3},
            {">=tlsv1.3", POLICY_PROTO_TLSV1_3, POLICY_PROTO_TLSV1_3},
            {"<=TLSv1.2", POLICY_PROTO_TLSV1_2, POLICY_PROTO_TLSV1_2},
            {">=TLSv1:<=TLSv1.3", POLICY_PROTO_TLSV1_2, POLICY_PROTO_TLSV1_3},
            {"TLSv1.3", POLICY_PROTO_TLSV1_3, POLICY_PROTO_TLSV1_3},
            {"TLSv1.2:TLSv1.3:!TLSv1.3", POLICY_PROTO_TLSV1_2, POLICY_PROTO_TLSV1_2},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct test_table t;
                struct policy_expectation x;
                char text[128];

                snprintf(text, sizeof(text), "a.example encrypt protocols=%s\n",
                         cases[i].value);
                test_load(&t, text);
                assert_int_equal(t.rc, 0);
                x = policy_lookup(t.p, "a.example");
                assert_int_equal(x.min_proto, cases[i].min);
                assert_int_equal(x.max_proto, cases[i].max);
                test_unload(&t);
        }
}

static void test_parse_missing_file(void **state)
{
        struct policy *p = (struct policy *)1;
        char *text = NULL;
        size_t len = 0;
        FILE *errs = open_memstream(&text, &len);

        (void)state;
        assert_int_equal(policy_load("/nonexistent/mailward.policy", errs, &p), -ENOENT);
        fclose(errs);
        assert_null(p);
        assert_string_equal(text,
                            "/nonexistent/mailward.policy: cannot open: No such file or "
                            "directory\n");
        free(text);
}

/* ---- lookups ---- */

static void test_lookup(void **state)
{
        struct test_table t;
        struct policy_expectation x;

        (void)state;
        test_load(&t, "example.com       secure\n"
                      ".example.com      encrypt\n"
                      ".dept.example.com verify\n"
                      "one.dept.example.com may\n"
                      ".org              may\n");
        assert_int_equal(t.rc, 0);

        /* exact */
        x = policy_lookup(t.p, "example.com");
        assert_int_equal(x.level, POLICY_LEVEL_SECURE);
        assert_string_equal(x.key, "example.com");
        /* subdomain via .suffix; .example.com does not cover example.com */
        x = policy_lookup(t.p, "mail.example.com");
        assert_int_equal(x.level, POLICY_LEVEL_ENCRYPT);
        assert_string_equal(x.key, ".example.com");
        assert_int_equal(x.line, 2);
        x = policy_lookup(t.p, "a.b.c.example.com");
        assert_string_equal(x.key, ".example.com");
        /* most specific wins */
        x = policy_lookup(t.p, "x.dept.example.com");
        assert_int_equal(x.level, POLICY_LEVEL_VERIFY);
        assert_string_equal(x.key, ".dept.example.com");
        x = policy_lookup(t.p, "dept.example.com");
        assert_string_equal(x.key, ".example.com");
        x = policy_lookup(t.p, "one.dept.example.com");
        assert_int_equal(x.level, POLICY_LEVEL_MAY);
        assert_string_equal(x.key, "one.dept.example.com");
        x = policy_lookup(t.p, "two.one.dept.example.com");
        assert_string_equal(x.key, ".dept.example.com");
        /* case and a trailing dot do not matter */
        x = policy_lookup(t.p, "EXAMPLE.Com.");
        assert_string_equal(x.key, "example.com");
        x = policy_lookup(t.p, "Mail.EXAMPLE.com.");
        assert_string_equal(x.key, ".example.com");
        /* a TLD suffix */
        x = policy_lookup(t.p, "eff.org");
        assert_int_equal(x.level, POLICY_LEVEL_MAY);
        assert_string_equal(x.key, ".org");
        /* no entry: the default, encrypt unless set */
        x = policy_lookup(t.p, "example.net");
        assert_int_equal(x.level, POLICY_LEVEL_ENCRYPT);
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        assert_null(x.key);
        assert_null(x.file);
        x = policy_lookup(t.p, "com");
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        x = policy_lookup(t.p, "");
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        x = policy_lookup(t.p, "xexample.com");
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        policy_set_default(t.p, POLICY_LEVEL_MAY);
        x = policy_lookup(t.p, "example.net");
        assert_int_equal(x.level, POLICY_LEVEL_MAY);
        policy_set_default(t.p, POLICY_LEVEL_SECURE);
        x = policy_lookup(t.p, "example.net");
        assert_int_equal(x.level, POLICY_LEVEL_SECURE);
        assert_int_equal(x.nmatch, 2);
        assert_string_equal(x.match[1], "dot-nexthop");
        test_unload(&t);
}

static void test_lookup_edges(void **state)
{
        struct policy *p = policy_new();
        struct policy_expectation x;
        char longname[300];

        (void)state;
        x = policy_lookup(NULL, "example.com");
        assert_int_equal(x.level, POLICY_LEVEL_ENCRYPT);
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        assert_int_equal(x.min_proto, POLICY_PROTO_TLSV1_2);
        x = policy_lookup(p, NULL);
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        memset(longname, 'a', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        x = policy_lookup(p, longname);
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        assert_int_equal(policy_count(p), 0);
        policy_free(p);
        policy_free(NULL);
}

static void test_lookup_many(void **state)
{
        /* Enough entries to grow the index several times. */
        char *text = malloc(5000 * 32);
        size_t o = 0;
        struct test_table t;

        (void)state;
        assert_non_null(text);
        for (int i = 0; i < 5000; i++)
                o += (size_t)sprintf(text + o, "%sd%d.example %s\n", i % 2 ? "." : "", i,
                                     i % 3 ? "secure" : "may");
        test_load(&t, text);
        free(text);
        assert_int_equal(t.rc, 0);
        assert_int_equal(policy_count(t.p), 5000);
        for (int i = 0; i < 5000; i++) {
                char name[32];
                struct policy_expectation x;

                snprintf(name, sizeof(name), "%sd%d.example", i % 2 ? "mx." : "", i);
                x = policy_lookup(t.p, name);
                assert_int_equal(x.source, POLICY_SOURCE_FILE);
                assert_int_equal(x.level, i % 3 ? POLICY_LEVEL_SECURE : POLICY_LEVEL_MAY);
                assert_int_equal(x.line, i + 1);
        }
        test_unload(&t);
}

static void test_dane_levels(void **state)
{
        struct test_table t;
        struct policy_expectation x;

        (void)state;
        test_load(&t, "a.example dane\n"
                      "b.example dane-only protocols=>=TLSv1.3\n");
        assert_int_equal(t.rc, 0);
        test_expect_errs(&t, "");
        x = policy_lookup(t.p, "a.example");
        assert_int_equal(x.level, POLICY_LEVEL_DANE);
        assert_int_equal(x.written, POLICY_LEVEL_DANE);
        x = policy_lookup(t.p, "b.example");
        assert_int_equal(x.level, POLICY_LEVEL_DANE_ONLY);
        assert_int_equal(x.min_proto, POLICY_PROTO_TLSV1_3);
        policy_set_default(t.p, POLICY_LEVEL_DANE);
        x = policy_lookup(t.p, "z.example");
        assert_int_equal(x.level, POLICY_LEVEL_DANE);
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        test_unload(&t);
}

static void test_strings(void **state)
{
        enum policy_level level;
        enum policy_proto proto;

        (void)state;
        /* The order of Postfix's tls.h, without fingerprint. */
        assert_true(POLICY_LEVEL_NONE < POLICY_LEVEL_MAY);
        assert_true(POLICY_LEVEL_MAY < POLICY_LEVEL_ENCRYPT);
        assert_true(POLICY_LEVEL_ENCRYPT < POLICY_LEVEL_DANE);
        assert_true(POLICY_LEVEL_DANE < POLICY_LEVEL_DANE_ONLY);
        assert_true(POLICY_LEVEL_DANE_ONLY < POLICY_LEVEL_VERIFY);
        assert_true(POLICY_LEVEL_VERIFY < POLICY_LEVEL_SECURE);
        for (int l = POLICY_LEVEL_NONE; l <= POLICY_LEVEL_SECURE; l++) {
                assert_int_equal(policy_level_parse(policy_level_str(l), &level), 0);
                assert_int_equal(level, l);
        }
        assert_int_equal(policy_level_parse("Dane-Only", &level), 0);
        assert_int_equal(level, POLICY_LEVEL_DANE_ONLY);
        assert_int_equal(policy_level_parse("must", &level), -1);
        assert_int_equal(policy_proto_parse("TLSv1.3", &proto), 0);
        assert_int_equal(proto, POLICY_PROTO_TLSV1_3);
        assert_int_equal(policy_proto_parse("unknown", &proto), -1);
        assert_string_equal(policy_proto_str(POLICY_PROTO_TLSV1_2), "TLSv1.2");
        assert_string_equal(policy_source_str(POLICY_SOURCE_FILE), "policy");
        assert_string_equal(policy_source_str(POLICY_SOURCE_LEARNED), "learned");
        assert_string_equal(policy_source_str(POLICY_SOURCE_DEFAULT), "default");
        assert_string_equal(policy_result_str(POLICY_RESULT_OK), "ok");
        assert_string_equal(policy_result_str(POLICY_RESULT_STARTTLS_NOT_SUPPORTED),
                            "starttls-not-supported");
        assert_string_equal(policy_result_str(POLICY_RESULT_CERT_HOST_MISMATCH),
                            "certificate-host-mismatch");
        assert_string_equal(policy_result_str(POLICY_RESULT_CERT_EXPIRED),
                            "certificate-expired");
        assert_string_equal(policy_result_str(POLICY_RESULT_CERT_NOT_TRUSTED),
                            "certificate-not-trusted");
        assert_string_equal(policy_result_str(POLICY_RESULT_VALIDATION_FAILURE),
                            "validation-failure");
}

/* ---- judging ---- */

/* A hand-built expectation without patterns (judging applies the defaults). */
static struct policy_expectation test_expect(enum policy_level level)
{
        struct policy_expectation x = policy_lookup(NULL, "x");

        x.level = level;
        x.written = level;
        x.source = POLICY_SOURCE_FILE;
        x.key = "example.com";
        x.match = NULL;
        x.nmatch = 0;
        return x;
}

enum test_obs {
        OBS_GOOD,          /* STARTTLS, TLSv1.3, trusted, names mx1.example.com */
        OBS_NO_STARTTLS,   /* EHLO without STARTTLS */
        OBS_MASKED,        /* STARTTLS overwritten with XXXXXXXA */
        OBS_REFUSED,       /* 454 to STARTTLS */
        OBS_HANDSHAKE,     /* 220, then the handshake failed */
        OBS_NOT_STARTED,   /* offered, never sent */
        OBS_EXPIRED,       /* expired (and so untrusted) */
        OBS_UNTRUSTED,     /* self-signed */
        OBS_WILDCARD,      /* *.example.com */
        OBS_OTHER_NAME,    /* names mx.evil.example only */
        OBS_NO_NAMES,      /* no DNS names at all */
        OBS_TLS12,         /* as GOOD but TLSv1.2 */
        OBS_DEEP,          /* names a.b.example.com */
        OBS_UNKNOWN_PROTO, /* as GOOD, version unknown */
        OBS_NEXTHOP_NAME,  /* the certificate names example.com itself */
        OBS_CONTROL_CHARS, /* names with CR LF in them */
        OBS_MANY_NAMES,    /* five names, none matching */
};

static const char *const test_names_good[] = {"mx1.example.com", "www.example.org"};
static const char *const test_names_wild[] = {"*.example.com"};
static const char *const test_names_other[] = {"mx.evil.example"};
static const char *const test_names_deep[] = {"a.b.example.com"};
static const char *const test_names_nexthop[] = {"EXAMPLE.COM."};
static const char *const test_names_ctl[] = {"evil\r\n250 OK"};
static const char *const test_names_many[] = {"a.invalid", "b.invalid", "c.invalid",
                                              "d.invalid", "e.invalid"};

static struct policy_observation test_observe(enum test_obs which)
{
        struct policy_observation o = {
            .nexthop = "example.com",
            .mx_host = "mx1.example.com",
            .starttls_offered = true,
            .starttls_reply = 220,
            .tls_reached = true,
            .proto = POLICY_PROTO_TLSV1_3,
            .cert_trusted = true,
            .cert_names = test_names_good,
            .ncert_names = 2,
        };

        switch (which) {
        case OBS_GOOD:
                break;
        case OBS_NO_STARTTLS:
                o.starttls_offered = false;
                o.starttls_reply = 0;
                o.tls_reached = false;
                break;
        case OBS_MASKED:
                o.starttls_offered = false;
                o.starttls_masked = "XXXXXXXA";
                o.starttls_reply = 0;
                o.tls_reached = false;
                break;
        case OBS_REFUSED:
                o.starttls_reply = 454;
                o.tls_reached = false;
                break;
        case OBS_HANDSHAKE:
                o.tls_reached = false;
                o.tls_error = "no shared cipher\n";
                break;
        case OBS_NOT_STARTED:
                o.starttls_reply = 0;
                o.tls_reached = false;
                break;
        case OBS_EXPIRED:
                o.cert_expired = true;
                o.cert_trusted = false;
                break;
        case OBS_UNTRUSTED:
                o.cert_trusted = false;
                break;
        case OBS_WILDCARD:
                o.cert_names = test_names_wild;
                o.ncert_names = 1;
                break;
        case OBS_OTHER_NAME:
                o.cert_names = test_names_other;
                o.ncert_names = 1;
                break;
        case OBS_NO_NAMES:
                o.cert_names = NULL;
                o.ncert_names = 0;
                break;
        case OBS_TLS12:
                o.proto = POLICY_PROTO_TLSV1_2;
                break;
        case OBS_DEEP:
                o.cert_names = test_names_deep;
                o.ncert_names = 1;
                break;
        case OBS_UNKNOWN_PROTO:
                o.proto = POLICY_PROTO_UNKNOWN;
                break;
        case OBS_NEXTHOP_NAME:
                o.cert_names = test_names_nexthop;
                o.ncert_names = 1;
                break;
        case OBS_CONTROL_CHARS:
                o.cert_names = test_names_ctl;
                o.ncert_names = 1;
                break;
        case OBS_MANY_NAMES:
                o.cert_names = test_names_many;
                o.ncert_names = 5;
                break;
        }
        return o;
}

struct test_judge_case {
        enum policy_level level;
        const char *match;     /* ':'-joined patterns; NULL: the level's default */
        const char *protocols; /* ">=TLSv1.3" etc.; NULL: default */
        enum test_obs obs;
        bool pass;
        enum policy_result result;
        const char *reason; /* exact */
};

static const struct test_judge_case test_judge_cases[] = {
    /* none: nothing required, whatever happened */
    {POLICY_LEVEL_NONE, NULL, NULL, OBS_NO_STARTTLS, true, POLICY_RESULT_OK,
     "TLS not required; level none from policy example.com"},
    {POLICY_LEVEL_NONE, NULL, NULL, OBS_EXPIRED, true, POLICY_RESULT_OK,
     "TLS not required; level none from policy example.com"},
    /* may: passes, and reports what was missing */
    {POLICY_LEVEL_MAY, NULL, NULL, OBS_NO_STARTTLS, true,
     POLICY_RESULT_STARTTLS_NOT_SUPPORTED,
     "STARTTLS not offered; level may: reported, not enforced"},
    {POLICY_LEVEL_MAY, NULL, NULL, OBS_HANDSHAKE, true, POLICY_RESULT_VALIDATION_FAILURE,
     "TLS handshake failed: no shared cipher?; level may: reported, not enforced"},
    {POLICY_LEVEL_MAY, NULL, NULL, OBS_UNTRUSTED, true, POLICY_RESULT_OK,
     "TLSv1.3 reached; level may checks nothing more"},
    /* encrypt: TLS or nothing */
    {POLICY_LEVEL_ENCRYPT, NULL, NULL, OBS_GOOD, true, POLICY_RESULT_OK,
     "TLSv1.3 reached; certificate not checked at level encrypt"},
    {POLICY_LEVEL_ENCRYPT, NULL, NULL, OBS_UNTRUSTED, true, POLICY_RESULT_OK,
     "TLSv1.3 reached; certificate not checked at level encrypt"},
    {POLICY_LEVEL_ENCRYPT, NULL, NULL, OBS_NO_STARTTLS, false,
     POLICY_RESULT_STARTTLS_NOT_SUPPORTED,
     "STARTTLS not offered; level encrypt from policy example.com"},
    {POLICY_LEVEL_ENCRYPT, NULL, NULL, OBS_MASKED, false,
     POLICY_RESULT_STARTTLS_NOT_SUPPORTED,
     "STARTTLS not offered; EHLO keyword \"XXXXXXXA\" looks like STARTTLS masked on the "
     "path; level encrypt from policy example.com"},
    {POLICY_LEVEL_ENCRYPT, NULL, NULL, OBS_REFUSED, false,
     POLICY_RESULT_STARTTLS_NOT_SUPPORTED,
     "STARTTLS refused with 454; level encrypt from policy example.com"},
    {POLICY_LEVEL_ENCRYPT, NULL, NULL, OBS_HANDSHAKE, false,
     POLICY_RESULT_VALIDATION_FAILURE,
     "TLS handshake failed: no shared cipher?; level encrypt from policy example.com"},
    {POLICY_LEVEL_ENCRYPT, NULL, NULL, OBS_NOT_STARTED, false,
     POLICY_RESULT_VALIDATION_FAILURE,
     "STARTTLS offered but TLS not started; level encrypt from policy example.com"},
    {POLICY_LEVEL_ENCRYPT, NULL, ">=TLSv1.3", OBS_TLS12, false,
     POLICY_RESULT_VALIDATION_FAILURE,
     "TLSv1.2 negotiated, protocols= allows TLSv1.3 to TLSv1.3; level encrypt from "
     "policy "
     "example.com"},
    {POLICY_LEVEL_ENCRYPT, NULL, ">=TLSv1.3", OBS_UNKNOWN_PROTO, false,
     POLICY_RESULT_VALIDATION_FAILURE,
     "unknown negotiated, protocols= allows TLSv1.3 to TLSv1.3; level encrypt from "
     "policy "
     "example.com"},
    {POLICY_LEVEL_ENCRYPT, NULL, NULL, OBS_UNKNOWN_PROTO, true, POLICY_RESULT_OK,
     "unknown reached; certificate not checked at level encrypt"},
    {POLICY_LEVEL_ENCRYPT, NULL, "<=TLSv1.2", OBS_GOOD, false,
     POLICY_RESULT_VALIDATION_FAILURE,
     "TLSv1.3 negotiated, protocols= allows TLSv1.2 to TLSv1.2; level encrypt from "
     "policy "
     "example.com"},
    /* dane without TLSA records (not looked up here): as encrypt */
    {POLICY_LEVEL_DANE, NULL, NULL, OBS_UNTRUSTED, true, POLICY_RESULT_OK,
     "TLSv1.3 reached; no usable TLSA records (): certificate not checked"},
    {POLICY_LEVEL_DANE_ONLY, NULL, NULL, OBS_REFUSED, false,
     POLICY_RESULT_STARTTLS_NOT_SUPPORTED,
     "STARTTLS refused with 454; level dane-only from policy example.com"},
    /* verify: default match is the MX host name */
    {POLICY_LEVEL_VERIFY, NULL, NULL, OBS_GOOD, true, POLICY_RESULT_OK,
     "TLSv1.3, certificate trusted, name mx1.example.com matches hostname "
     "(mx1.example.com)"},
    {POLICY_LEVEL_VERIFY, NULL, NULL, OBS_WILDCARD, true, POLICY_RESULT_OK,
     "TLSv1.3, certificate trusted, name *.example.com matches hostname "
     "(mx1.example.com)"},
    {POLICY_LEVEL_VERIFY, NULL, NULL, OBS_DEEP, false, POLICY_RESULT_CERT_HOST_MISMATCH,
     "no certificate name matches match=hostname (nexthop example.com, hostname "
     "mx1.example.com); names: a.b.example.com; level verify from policy example.com"},
    {POLICY_LEVEL_VERIFY, NULL, NULL, OBS_EXPIRED, false, POLICY_RESULT_CERT_EXPIRED,
     "certificate expired; level verify from policy example.com"},
    {POLICY_LEVEL_VERIFY, NULL, NULL, OBS_UNTRUSTED, false,
     POLICY_RESULT_CERT_NOT_TRUSTED,
     "certificate not trusted; level verify from policy example.com"},
    {POLICY_LEVEL_VERIFY, NULL, NULL, OBS_NO_STARTTLS, false,
     POLICY_RESULT_STARTTLS_NOT_SUPPORTED,
     "STARTTLS not offered; level verify from policy example.com"},
    {POLICY_LEVEL_VERIFY, "mx1.example.com:mx2.example.com", NULL, OBS_GOOD, true,
     POLICY_RESULT_OK,
     "TLSv1.3, certificate trusted, name mx1.example.com matches "
     "mx1.example.com"},
    {POLICY_LEVEL_VERIFY, "mx2.example.com", NULL, OBS_GOOD, false,
     POLICY_RESULT_CERT_HOST_MISMATCH,
     "no certificate name matches match=mx2.example.com (nexthop example.com, hostname "
     "mx1.example.com); names: mx1.example.com www.example.org; level verify from policy "
     "example.com"},
    /* secure: default match nexthop:dot-nexthop */
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_GOOD, true, POLICY_RESULT_OK,
     "TLSv1.3, certificate trusted, name mx1.example.com matches dot-nexthop "
     "(example.com)"},
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_DEEP, true, POLICY_RESULT_OK,
     "TLSv1.3, certificate trusted, name a.b.example.com matches dot-nexthop "
     "(example.com)"},
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_NEXTHOP_NAME, true, POLICY_RESULT_OK,
     "TLSv1.3, certificate trusted, name EXAMPLE.COM. matches nexthop (example.com)"},
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_WILDCARD, true, POLICY_RESULT_OK,
     "TLSv1.3, certificate trusted, name *.example.com matches dot-nexthop "
     "(example.com)"},
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_OTHER_NAME, false,
     POLICY_RESULT_CERT_HOST_MISMATCH,
     "no certificate name matches match=nexthop:dot-nexthop (nexthop example.com, "
     "hostname "
     "mx1.example.com); names: mx.evil.example; level secure from policy example.com"},
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_NO_NAMES, false,
     POLICY_RESULT_CERT_HOST_MISMATCH,
     "certificate has no host names; level secure from policy example.com"},
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_EXPIRED, false, POLICY_RESULT_CERT_EXPIRED,
     "certificate expired; level secure from policy example.com"},
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_UNTRUSTED, false,
     POLICY_RESULT_CERT_NOT_TRUSTED,
     "certificate not trusted; level secure from policy example.com"},
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_MASKED, false,
     POLICY_RESULT_STARTTLS_NOT_SUPPORTED,
     "STARTTLS not offered; EHLO keyword \"XXXXXXXA\" looks like STARTTLS masked on the "
     "path; level secure from policy example.com"},
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_HANDSHAKE, false,
     POLICY_RESULT_VALIDATION_FAILURE,
     "TLS handshake failed: no shared cipher?; level secure from policy example.com"},
    {POLICY_LEVEL_SECURE, NULL, ">=TLSv1.3", OBS_TLS12, false,
     POLICY_RESULT_VALIDATION_FAILURE,
     "TLSv1.2 negotiated, protocols= allows TLSv1.3 to TLSv1.3; level secure from policy "
     "example.com"},
    /* .suffix patterns match any depth below (Postfix), not the name itself */
    {POLICY_LEVEL_SECURE, ".example.com", NULL, OBS_DEEP, true, POLICY_RESULT_OK,
     "TLSv1.3, certificate trusted, name a.b.example.com matches .example.com"},
    {POLICY_LEVEL_SECURE, ".example.com", NULL, OBS_NEXTHOP_NAME, false,
     POLICY_RESULT_CERT_HOST_MISMATCH,
     "no certificate name matches match=.example.com (nexthop example.com, hostname "
     "mx1.example.com); names: EXAMPLE.COM.; level secure from policy example.com"},
    {POLICY_LEVEL_SECURE, ".b.example.com", NULL, OBS_WILDCARD, false,
     POLICY_RESULT_CERT_HOST_MISMATCH,
     "no certificate name matches match=.b.example.com (nexthop example.com, hostname "
     "mx1.example.com); names: *.example.com; level secure from policy example.com"},
    /* a wildcard covers one label only */
    {POLICY_LEVEL_SECURE, "a.b.example.com", NULL, OBS_WILDCARD, false,
     POLICY_RESULT_CERT_HOST_MISMATCH,
     "no certificate name matches match=a.b.example.com (nexthop example.com, hostname "
     "mx1.example.com); names: *.example.com; level secure from policy example.com"},
    {POLICY_LEVEL_SECURE, "hostname", NULL, OBS_WILDCARD, true, POLICY_RESULT_OK,
     "TLSv1.3, certificate trusted, name *.example.com matches hostname "
     "(mx1.example.com)"},
    {POLICY_LEVEL_SECURE, "example.com", NULL, OBS_WILDCARD, false,
     POLICY_RESULT_CERT_HOST_MISMATCH,
     "no certificate name matches match=example.com (nexthop example.com, hostname "
     "mx1.example.com); names: *.example.com; level secure from policy example.com"},
    /* peer data is escaped: no CR LF can reach an SMTP reply */
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_CONTROL_CHARS, false,
     POLICY_RESULT_CERT_HOST_MISMATCH,
     "no certificate name matches match=nexthop:dot-nexthop (nexthop example.com, "
     "hostname "
     "mx1.example.com); names: evil\\x0d\\x0a250\\x20OK; level secure from policy "
     "example.com"},
    {POLICY_LEVEL_SECURE, NULL, NULL, OBS_MANY_NAMES, false,
     POLICY_RESULT_CERT_HOST_MISMATCH,
     "no certificate name matches match=nexthop:dot-nexthop (nexthop example.com, "
     "hostname "
     "mx1.example.com); names: a.invalid b.invalid c.invalid +2 more; level secure from "
     "policy example.com"},
};

static void test_judge_table(void **state)
{
        (void)state;
        for (size_t i = 0; i < sizeof(test_judge_cases) / sizeof(test_judge_cases[0]);
             i++) {
                const struct test_judge_case *c = &test_judge_cases[i];
                struct policy_expectation x;
                struct policy_observation o = test_observe(c->obs);
                struct policy_verdict v;
                struct test_table t;
                char text[256];
                bool pass;

                /* Through a real table, so the expectation is what lookups give. */
                snprintf(text, sizeof(text), "example.com %s%s%s%s%s\n",
                         policy_level_str(c->level), c->match ? " match=" : "",
                         c->match ? c->match : "", c->protocols ? " protocols=" : "",
                         c->protocols ? c->protocols : "");
                test_load(&t, text);
                test_expect_errs(&t, "");
                x = policy_lookup(t.p, "example.com");
                pass = policy_judge(&x, &o, &v);
                if (pass != c->pass || v.result != c->result ||
                    strcmp(v.reason, c->reason) != 0)
                        print_error("case %zu: pass=%d result=%s reason=\"%s\"\n", i,
                                    pass, policy_result_str(v.result), v.reason);
                assert_int_equal(pass, c->pass);
                assert_int_equal(v.pass, c->pass);
                assert_int_equal(v.result, c->result);
                assert_string_equal(v.reason, c->reason);
                assert_null(strpbrk(v.reason, "\r\n"));
                test_unload(&t);
        }
}

static void test_judge_matched(void **state)
{
        struct policy_expectation x = test_expect(POLICY_LEVEL_SECURE);
        struct policy_observation o = test_observe(OBS_GOOD);
        struct policy_verdict v;

        (void)state;
        assert_true(policy_judge(&x, &o, &v));
        assert_string_equal(v.matched_name, "mx1.example.com");
        assert_string_equal(v.matched_pattern, "dot-nexthop");

        /* a hand-built expectation without patterns gets the level's defaults */
        x = test_expect(POLICY_LEVEL_VERIFY);
        assert_true(policy_judge(&x, &o, &v));
        assert_string_equal(v.matched_pattern, "hostname");

        /* without an MX host name, "hostname" matches nothing */
        o.mx_host = NULL;
        assert_false(policy_judge(&x, &o, &v));
        assert_int_equal(v.result, POLICY_RESULT_CERT_HOST_MISMATCH);
        assert_string_equal(v.matched_name, "");

        /* the default source is named */
        x = policy_lookup(NULL, "example.com");
        o = test_observe(OBS_NO_STARTTLS);
        assert_false(policy_judge(&x, &o, &v));
        assert_string_equal(v.reason, "STARTTLS not offered; level encrypt (default)");
}

/*
 * MTA-STS enforce: secure with the policy's mx patterns, source mta-sts,
 * unless a table entry decides; "*.domain" patterns match one label.
 */
static void test_mta_sts(void **state)
{
        static const char *const mx[] = {"mx9.example.net", "*.example.com"};
        static const char *const wild_names[] = {"*.example.com"};
        static const char *const two_deep[] = {"a.mx.example.com"};
        static const char *const bare[] = {"example.com"};
        static const char *const other[] = {"*.example.org", "mx.example.org"};
        struct policy_expectation base = policy_lookup(NULL, "example.com"), x, file;
        struct policy_observation o = test_observe(OBS_GOOD);
        struct policy_verdict v;
        struct test_table t;

        (void)state;
        x = policy_mta_sts(&base, mx, 2);
        assert_int_equal(x.level, POLICY_LEVEL_SECURE);
        assert_int_equal(x.source, POLICY_SOURCE_MTA_STS);
        assert_int_equal(x.nmatch, 2);
        assert_int_equal(x.min_proto, POLICY_PROTO_TLSV1_2);
        assert_string_equal(policy_source_str(x.source), "mta-sts");

        /* mx1.example.com is one label below example.com */
        assert_true(policy_judge(&x, &o, &v));
        assert_string_equal(v.matched_name, "mx1.example.com");
        assert_string_equal(v.matched_pattern, "*.example.com");
        assert_null(strstr(v.reason, "(example.com)"));
        /* a wildcard certificate can name such a host too */
        o.cert_names = wild_names;
        o.ncert_names = 1;
        assert_true(policy_judge(&x, &o, &v));
        /* two labels below, or the domain itself, cannot */
        o.cert_names = two_deep;
        assert_false(policy_judge(&x, &o, &v));
        assert_int_equal(v.result, POLICY_RESULT_CERT_HOST_MISMATCH);
        assert_non_null(strstr(v.reason, "(mta-sts)"));
        o.cert_names = bare;
        assert_false(policy_judge(&x, &o, &v));
        o.cert_names = other;
        o.ncert_names = 2;
        assert_false(policy_judge(&x, &o, &v));
        /* secure still needs a trusted certificate and TLS */
        o = test_observe(OBS_UNTRUSTED);
        assert_false(policy_judge(&x, &o, &v));
        assert_int_equal(v.result, POLICY_RESULT_CERT_NOT_TRUSTED);
        o = test_observe(OBS_NO_STARTTLS);
        assert_false(policy_judge(&x, &o, &v));
        assert_int_equal(v.result, POLICY_RESULT_STARTTLS_NOT_SUPPORTED);

        /* no patterns: nothing changes */
        x = policy_mta_sts(&base, mx, 0);
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        assert_int_equal(x.level, POLICY_LEVEL_ENCRYPT);
        /* a table entry wins, even a weaker one */
        test_load(&t, "example.com may\n");
        file = policy_lookup(t.p, "example.com");
        x = policy_mta_sts(&file, mx, 2);
        assert_int_equal(x.source, POLICY_SOURCE_FILE);
        assert_int_equal(x.level, POLICY_LEVEL_MAY);
        test_unload(&t);
        /* a table never takes "*." patterns: they are MTA-STS's alone */
        test_load_fails("example.com secure match=*.example.com\n",
                        "FILE:1: bad match= pattern \"*.example.com\"\n");
}

/*
 * An MTA-STS mx pattern is a host name and nothing else (RFC 8461 section
 * 4.1): "mx: nexthop", "mx: dot-nexthop" or "mx: hostname" name single-label
 * hosts, not Postfix's match= keywords, which would allow the recipient
 * domain, any name below it, or whatever MX host DNS names.
 */
static void test_mta_sts_keywords(void **state)
{
        static const char *const dot_nexthop[] = {"dot-nexthop"};
        static const char *const nexthop[] = {"nexthop"};
        static const char *const hostname[] = {"hostname"};
        static const char *const bare[] = {"example.com"};
        static const char *const literal[] = {"nexthop"};
        struct policy_expectation base = policy_lookup(NULL, "example.com"), x;
        struct policy_observation o = test_observe(OBS_GOOD);
        struct policy_verdict v;

        (void)state;
        /* mx1.example.com is below the recipient domain, not the host "dot-nexthop" */
        x = policy_mta_sts(&base, dot_nexthop, 1);
        assert_false(policy_judge(&x, &o, &v));
        assert_int_equal(v.result, POLICY_RESULT_CERT_HOST_MISMATCH);
        /* the MX host DNS gave is not what the policy allows */
        o.mx_host = "mx1.example.com";
        x = policy_mta_sts(&base, hostname, 1);
        assert_false(policy_judge(&x, &o, &v));
        assert_int_equal(v.result, POLICY_RESULT_CERT_HOST_MISMATCH);
        /* a certificate for the recipient domain is not one for host "nexthop" */
        o.cert_names = bare;
        o.ncert_names = 1;
        x = policy_mta_sts(&base, nexthop, 1);
        assert_false(policy_judge(&x, &o, &v));
        assert_int_equal(v.result, POLICY_RESULT_CERT_HOST_MISMATCH);
        /* ... while a certificate that names it does match */
        o.cert_names = literal;
        assert_true(policy_judge(&x, &o, &v));
        assert_string_equal(v.matched_pattern, "nexthop");
}

/* dane and dane-only against every DANE outcome (RFC 7672). */
static void test_dane_judge(void **state)
{
        static const struct {
                enum policy_level level;
                enum policy_dane dane;
                const char *mx_host;
                bool pass;
                enum policy_result result;
                const char *reason;
        } cases[] = {
            {POLICY_LEVEL_DANE, POLICY_DANE_NONE, NULL, true, POLICY_RESULT_OK,
             "TLSv1.3 reached; no usable TLSA records (why): certificate not checked"},
            {POLICY_LEVEL_DANE, POLICY_DANE_UNUSABLE, NULL, true, POLICY_RESULT_OK,
             "TLSv1.3 reached; no usable TLSA records (why): certificate not checked"},
            {POLICY_LEVEL_DANE_ONLY, POLICY_DANE_NONE, NULL, false,
             POLICY_RESULT_DANE_REQUIRED,
             "no usable TLSA records (why); level dane-only (default)"},
            {POLICY_LEVEL_DANE_ONLY, POLICY_DANE_UNUSABLE, NULL, false,
             POLICY_RESULT_DANE_REQUIRED,
             "no usable TLSA records (why); level dane-only (default)"},
            {POLICY_LEVEL_DANE, POLICY_DANE_FAILED, NULL, false,
             POLICY_RESULT_DNSSEC_INVALID,
             "DNSSEC lookup failed (why); level dane (default)"},
            {POLICY_LEVEL_DANE, POLICY_DANE_NO_MATCH, NULL, false,
             POLICY_RESULT_TLSA_INVALID,
             "certificate matches no TLSA record (why); level dane (default)"},
            /* DANE-EE: no name, trust or date check */
            {POLICY_LEVEL_DANE_ONLY, POLICY_DANE_MATCH_EE, NULL, true, POLICY_RESULT_OK,
             "TLSv1.3, certificate matches a DANE-EE TLSA record (why)"},
            /* DANE-TA: the leaf names the MX host, or the domain */
            {POLICY_LEVEL_DANE, POLICY_DANE_MATCH_TA, "mx1.example.com", true,
             POLICY_RESULT_OK,
             "TLSv1.3, certificate trusted, name mx1.example.com matches hostname "
             "(mx1.example.com); DANE-TA (why)"},
            {POLICY_LEVEL_DANE, POLICY_DANE_MATCH_TA, "mx9.example.com", false,
             POLICY_RESULT_CERT_HOST_MISMATCH, NULL},
        };
        const char *const nexthop_names[] = {"example.com"};

        (void)state;
        for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
                struct policy_expectation x = policy_lookup(NULL, "example.com");
                struct policy_observation o = test_observe(OBS_UNTRUSTED);
                struct policy_verdict v;

                x.level = x.written = cases[i].level;
                o.dane = cases[i].dane;
                o.dane_why = "why";
                o.mx_host = cases[i].mx_host;
                assert_int_equal(policy_judge(&x, &o, &v), cases[i].pass);
                assert_int_equal(v.result, cases[i].result);
                if (cases[i].reason != NULL)
                        assert_string_equal(v.reason, cases[i].reason);
        }
        /* DANE-TA with a leaf for the domain itself, the MX host unknown */
        {
                struct policy_expectation x = policy_lookup(NULL, "example.com");
                struct policy_observation o = test_observe(OBS_GOOD);
                struct policy_verdict v;

                x.level = x.written = POLICY_LEVEL_DANE_ONLY;
                o.dane = POLICY_DANE_MATCH_TA;
                o.mx_host = NULL;
                o.cert_names = nexthop_names;
                o.ncert_names = 1;
                assert_true(policy_judge(&x, &o, &v));
                assert_string_equal(v.matched_pattern, "nexthop");
                /* and no TLS at all fails before DANE is asked */
                o = test_observe(OBS_NO_STARTTLS);
                o.dane = POLICY_DANE_MATCH_EE;
                assert_false(policy_judge(&x, &o, &v));
                assert_int_equal(v.result, POLICY_RESULT_STARTTLS_NOT_SUPPORTED);
        }
        assert_string_equal(policy_result_str(POLICY_RESULT_TLSA_INVALID),
                            "tlsa-invalid");
        assert_string_equal(policy_result_str(POLICY_RESULT_DNSSEC_INVALID),
                            "dnssec-invalid");
        assert_string_equal(policy_result_str(POLICY_RESULT_DANE_REQUIRED),
                            "dane-required");
        assert_string_equal(policy_dane_str(POLICY_DANE_MATCH_TA), "match-ta");
}

/* Every TLS-RPT result type is reachable, each as a failure. */
static void test_judge_covers_tls_rpt(void **state)
{
        bool seen[POLICY_RESULT_VALIDATION_FAILURE + 1] = {false};

        (void)state;
        for (size_t i = 0; i < sizeof(test_judge_cases) / sizeof(test_judge_cases[0]);
             i++) {
                if (!test_judge_cases[i].pass)
                        seen[test_judge_cases[i].result] = true;
        }
        for (int r = POLICY_RESULT_STARTTLS_NOT_SUPPORTED;
             r <= POLICY_RESULT_VALIDATION_FAILURE; r++)
                assert_true(seen[r]);
}

/* ---- shipped tables ---- */

static void test_shipped_eff_table(void **state)
{
        struct policy *p = NULL;
        char *text = NULL;
        size_t len = 0;
        FILE *errs = open_memstream(&text, &len);
        struct policy_expectation x;

        (void)state;
        assert_int_equal(policy_load("policies/eff-starttls-everywhere.policy", errs, &p),
                         0);
        fclose(errs);
        assert_string_equal(text, "");
        free(text);
        assert_int_equal(policy_count(p), 361); /* enforce; testing is a comment */

        x = policy_lookup(p, "gmail.com");
        assert_int_equal(x.level, POLICY_LEVEL_SECURE);
        assert_int_equal(x.nmatch, 2);
        assert_string_equal(x.match[0], "gmail-smtp-in.l.google.com");
        assert_string_equal(x.match[1], ".gmail-smtp-in.l.google.com");
        x = policy_lookup(p, "comcast.net");
        assert_int_equal(x.level, POLICY_LEVEL_SECURE);
        /* testing in the EFF list: no entry, the default level decides */
        x = policy_lookup(p, "eff.org");
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        x = policy_lookup(p, "hotmail.com"); /* through policy-alias outlook */
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        x = policy_lookup(p, "mail.gmail.com"); /* exact entries only */
        assert_int_equal(x.source, POLICY_SOURCE_DEFAULT);
        policy_free(p);
}

static void test_shipped_example_table(void **state)
{
        struct policy *p = NULL;
        char *text = NULL;
        size_t len = 0;
        FILE *errs = open_memstream(&text, &len);
        struct policy_expectation x;

        (void)state;
        assert_int_equal(policy_load("policies/example.policy", errs, &p), 0);
        fclose(errs);
        assert_string_equal(text, "");
        free(text);

        x = policy_lookup(p, "bank.example");
        assert_int_equal(x.level, POLICY_LEVEL_SECURE);
        assert_int_equal(x.min_proto, POLICY_PROTO_TLSV1_3);
        x = policy_lookup(p, "loans.bank.example");
        assert_string_equal(x.key, ".bank.example");
        x = policy_lookup(p, "partner.example");
        assert_int_equal(x.level, POLICY_LEVEL_VERIFY);
        assert_int_equal(x.nmatch, 3);
        x = policy_lookup(p, "legacy.example");
        assert_int_equal(x.max_proto, POLICY_PROTO_TLSV1_3);
        policy_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_good),
            cmocka_unit_test(test_parse_default_match),
            cmocka_unit_test(test_parse_errors_each),
            cmocka_unit_test(test_parse_errors_many),
            cmocka_unit_test(test_parse_warnings),
            cmocka_unit_test(test_parse_protocols),
            cmocka_unit_test(test_parse_missing_file),
            cmocka_unit_test(test_lookup),
            cmocka_unit_test(test_lookup_edges),
            cmocka_unit_test(test_lookup_many),
            cmocka_unit_test(test_dane_levels),
            cmocka_unit_test(test_dane_judge),
            cmocka_unit_test(test_strings),
            cmocka_unit_test(test_judge_table),
            cmocka_unit_test(test_judge_matched),
            cmocka_unit_test(test_judge_covers_tls_rpt),
            cmocka_unit_test(test_mta_sts),
            cmocka_unit_test(test_mta_sts_keywords),
            cmocka_unit_test(test_shipped_eff_table),
            cmocka_unit_test(test_shipped_example_table),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
