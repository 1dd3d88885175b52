/*
 * Unit tests for lib/tlshello.c: ClientHellos built here field by field (as
 * RFC 8446 4.1.2 lays them out), each decided as tlshello.h says; every
 * prefix of a ClientHello asks for more; one spread over several records or
 * one byte per record is read the same; bytes that are no ClientHello, or a
 * ClientHello cut short inside, are BAD; OpenSSL's own ClientHellos. test_tls.c
 * hands real wolfSSL clients to a server with two certificates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tlshello.h"

#define TEST_END 0 /* ends a list of two-byte values (0 is never one used here) */

/* Suites, signature schemes, groups and versions, as TLS numbers them. */
#define TEST_TLS13_AES128    0x1301
#define TEST_ECDHE_ECDSA_AES 0xc02b
#define TEST_ECDHE_RSA_AES   0xc02f
#define TEST_ECDHE_ECDSA_CHA 0xcca9
#define TEST_ECDHE_ECDSA_CBC 0xc009 /* not a suite mailward allows */
#define TEST_ECDSA_P256      0x0403
#define TEST_ECDSA_P384      0x0503
#define TEST_ECDSA_SHA1      0x0203
#define TEST_RSA_PSS         0x0804
#define TEST_RSA_PKCS1       0x0401
#define TEST_X25519          29
#define TEST_P256            23
#define TEST_P384            24
#define TEST_TLS12           0x0303
#define TEST_TLS13           0x0304

/* What a ClientHello says; NULL lists leave the extension out. */
struct test_hello {
        const unsigned *suites;
        const unsigned *versions; /* supported_versions */
        const unsigned *sigalgs;  /* signature_algorithms */
        const unsigned *groups;   /* supported_groups */
        bool no_extensions;       /* not even the extensions' length */
        const char *sni;          /* server_name's one name; NULL: "mx" */
        unsigned sni_type;        /* and its name_type (0: host_name) */
        bool no_sni;              /* no server_name */
};

struct test_bytes {
        unsigned char b[4096];
        size_t n;
};

static void test_put8(struct test_bytes *o, unsigned v)
{
        assert_true(o->n < sizeof(o->b));
        o->b[o->n++] = (unsigned char)v;
}

static void test_put16(struct test_bytes *o, unsigned v)
{
        test_put8(o, v >> 8);
        test_put8(o, v & 0xff);
}

static size_t test_count(const unsigned *list)
{
        size_t n = 0;

        while (list[n] != TEST_END)
                n++;
        return n;
}

/* A two-byte-length vector of two-byte values (the length byte first). */
static void test_put_list16(struct test_bytes *o, const unsigned *list, bool len8)
{
        size_t n = test_count(list);

        if (len8)
                test_put8(o, (unsigned)(2 * n));
        else
                test_put16(o, (unsigned)(2 * n));
        for (size_t i = 0; i < n; i++)
                test_put16(o, list[i]);
}

static void test_put_ext(struct test_bytes *o, unsigned type, const unsigned *list,
                         bool len8)
{
        test_put16(o, type);
        test_put16(o, (unsigned)(2 * test_count(list) + (len8 ? 1 : 2)));
        test_put_list16(o, list, len8);
}

/* The handshake message (type, length, body) of h. */
static void test_handshake(const struct test_hello *h, struct test_bytes *o)
{
        struct test_bytes body = {.n = 0}, ext = {.n = 0};
        const char *sni = h->sni != NULL ? h->sni : "mx";
        size_t sni_len = strlen(sni);

        test_put16(&body, TEST_TLS12); /* legacy_version */
        for (int i = 0; i < 32; i++)
                test_put8(&body, (unsigned)i); /* random */
        test_put8(&body, 32);                  /* a legacy_session_id */
        for (int i = 0; i < 32; i++)
                test_put8(&body, 0xaa);
        test_put_list16(&body, h->suites, false);
        test_put8(&body, 1); /* legacy_compression_methods: null */
        test_put8(&body, 0);
        /* server_name first (RFC 6066 3: a list of one name). */
        if (!h->no_sni) {
                test_put16(&ext, 0);
                test_put16(&ext, (unsigned)(sni_len + 5));
                test_put16(&ext, (unsigned)(sni_len + 3));
                test_put8(&ext, h->sni_type);
                test_put16(&ext, (unsigned)sni_len);
                assert_true(ext.n + sni_len <= sizeof(ext.b));
                memcpy(ext.b + ext.n, sni, sni_len);
                ext.n += sni_len;
        }
        if (h->versions != NULL)
                test_put_ext(&ext, 43, h->versions, true);
        if (h->sigalgs != NULL)
                test_put_ext(&ext, 13, h->sigalgs, false);
        if (h->groups != NULL)
                test_put_ext(&ext, 10, h->groups, false);
        if (!h->no_extensions) {
                test_put16(&body, (unsigned)ext.n);
                memcpy(body.b + body.n, ext.b, ext.n);
                body.n += ext.n;
        }
        o->n = 0;
        test_put8(o, 1); /* client_hello */
        test_put8(o, (unsigned)(body.n >> 16));
        test_put16(o, (unsigned)(body.n & 0xffff));
        memcpy(o->b + o->n, body.b, body.n);
        o->n += body.n;
}

/* The handshake message in records of at most per bytes each. */
static void test_records(const struct test_bytes *hs, size_t per, struct test_bytes *o)
{
        o->n = 0;
        for (size_t off = 0; off < hs->n; off += per) {
                size_t len = hs->n - off < per ? hs->n - off : per;

                test_put8(o, 22);
                test_put16(o, 0x0301);
                test_put16(o, (unsigned)len);
                assert_true(o->n + len <= sizeof(o->b));
                memcpy(o->b + o->n, hs->b + off, len);
                o->n += len;
        }
}

/*
 * Decide h for an ECDSA certificate on group: in one record, in records of
 * 7 bytes and of 1 byte, all the same; every prefix asks for more.
 */
static enum tlshello_pick test_pick(const struct test_hello *h, unsigned group)
{
        struct test_bytes hs, rec;
        enum tlshello_pick want;
        static const size_t per[] = {7, 1};

        test_handshake(h, &hs);
        test_records(&hs, sizeof(hs.b), &rec);
        want = tlshello_pick(rec.b, rec.n, group);
        for (size_t i = 0; i < rec.n; i++)
                assert_int_equal(tlshello_pick(rec.b, i, group), TLSHELLO_MORE);
        for (size_t k = 0; k < 2; k++) {
                test_records(&hs, per[k], &rec);
                assert_int_equal(tlshello_pick(rec.b, rec.n, group), want);
        }
        /* What follows the ClientHello (here: junk) is not looked at. */
        test_records(&hs, sizeof(hs.b), &rec);
        memset(rec.b + rec.n, 0xff, 16);
        assert_int_equal(tlshello_pick(rec.b, rec.n + 16, group), want);
        return want;
}

static const unsigned test_suites13[] = {TEST_TLS13_AES128, TEST_ECDHE_ECDSA_AES,
                                         TEST_ECDHE_RSA_AES, TEST_END};
static const unsigned test_v13[] = {0x7a7a, TEST_TLS13, TEST_TLS12, TEST_END};
static const unsigned test_v12[] = {TEST_TLS12, TEST_END};
static const unsigned test_sig_both[] = {TEST_ECDSA_P256, TEST_RSA_PSS, TEST_ECDSA_P384,
                                         TEST_RSA_PKCS1, TEST_END};
static const unsigned test_sig_rsa[] = {TEST_RSA_PSS, TEST_RSA_PKCS1, TEST_END};
static const unsigned test_sig_p384[] = {TEST_ECDSA_P384, TEST_RSA_PSS, TEST_END};
static const unsigned test_groups_all[] = {TEST_X25519, TEST_P256, TEST_P384, TEST_END};

/* TLS 1.3: the signature scheme of the certificate's curve decides. */
static void test_tls13(void **state)
{
        struct test_hello h = {.suites = test_suites13,
                               .versions = test_v13,
                               .sigalgs = test_sig_both,
                               .groups = test_groups_all};

        (void)state;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_ECDSA);
        assert_int_equal(test_pick(&h, TLSHELLO_P384), TLSHELLO_ECDSA);
        assert_int_equal(test_pick(&h, TLSHELLO_P521), TLSHELLO_RSA);
        h.sigalgs = test_sig_rsa;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_RSA);
        /* ecdsa_secp384r1_sha384 is no good for a P-256 key in TLS 1.3. */
        h.sigalgs = test_sig_p384;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_RSA);
        assert_int_equal(test_pick(&h, TLSHELLO_P384), TLSHELLO_ECDSA);
        /* The groups do not matter in TLS 1.3, nor do the TLS 1.2 suites. */
        h.sigalgs = test_sig_both;
        {
                static const unsigned x25519[] = {TEST_X25519, TEST_END};
                static const unsigned only13[] = {TEST_TLS13_AES128, TEST_END};

                h.groups = x25519;
                h.suites = only13;
                assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_ECDSA);
        }
        /* No signature_algorithms at all (a broken TLS 1.3 client). */
        h.sigalgs = NULL;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_RSA);
}

/* TLS 1.2: an ECDHE-ECDSA AEAD suite, ECDSA with SHA-2, the curve. */
static void test_tls12(void **state)
{
        static const unsigned ecdsa_rsa[] = {TEST_ECDHE_ECDSA_AES, TEST_ECDHE_RSA_AES,
                                             TEST_END};
        static const unsigned rsa_only[] = {TEST_ECDHE_RSA_AES, TEST_END};
        static const unsigned cbc_only[] = {TEST_ECDHE_ECDSA_CBC, TEST_ECDHE_RSA_AES,
                                            TEST_END};
        static const unsigned chacha[] = {TEST_ECDHE_RSA_AES, TEST_ECDHE_ECDSA_CHA,
                                          TEST_END};
        static const unsigned sha1[] = {TEST_ECDSA_SHA1, TEST_RSA_PKCS1, TEST_END};
        static const unsigned x25519_p384[] = {TEST_X25519, TEST_P384, TEST_END};
        struct test_hello h = {.suites = ecdsa_rsa,
                               .versions = test_v12,
                               .sigalgs = test_sig_both,
                               .groups = test_groups_all};

        (void)state;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_ECDSA);
        /* Without supported_versions: TLS 1.2 too. */
        h.versions = NULL;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_ECDSA);
        h.suites = rsa_only;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_RSA);
        h.suites = cbc_only;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_RSA);
        h.suites = chacha;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_ECDSA);
        /* In TLS 1.2 any SHA-2 hash goes with any curve. */
        h.sigalgs = test_sig_p384;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_ECDSA);
        h.sigalgs = test_sig_rsa;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_RSA);
        h.sigalgs = sha1;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_RSA);
        /* No signature_algorithms: RFC 5246 7.4.1.4.1's defaults, SHA-1 too. */
        h.sigalgs = NULL;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_ECDSA);
        /* The certificate's curve must be among the client's groups. */
        h.groups = x25519_p384;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_RSA);
        assert_int_equal(test_pick(&h, TLSHELLO_P384), TLSHELLO_ECDSA);
        h.groups = NULL;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_ECDSA);
        /* No extensions at all. */
        h.no_extensions = true;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_ECDSA);
        h.suites = rsa_only;
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_RSA);
        /* supported_versions without TLS 1.3: TLS 1.2's rules, although the
         * signature schemes would do for TLS 1.3. */
        h = (struct test_hello){
            .suites = rsa_only, .versions = test_v12, .sigalgs = test_sig_both};
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_RSA);
}

/* What is not a ClientHello that can be read. */
static void test_bad(void **state)
{
        struct test_hello h = {.suites = test_suites13,
                               .versions = test_v13,
                               .sigalgs = test_sig_both,
                               .groups = test_groups_all};
        struct test_bytes hs, rec;
        static const unsigned char plain[] = "EHLO client.example\r\n";
        unsigned char big[5] = {22, 3, 1, 0x40, 0x01}; /* a 16385-byte record */

        (void)state;
        assert_int_equal(tlshello_pick(NULL, 0, TLSHELLO_P256), TLSHELLO_MORE);
        assert_int_equal(tlshello_pick(plain, sizeof(plain) - 1, TLSHELLO_P256),
                         TLSHELLO_BAD);
        assert_int_equal(tlshello_pick(big, sizeof(big), TLSHELLO_P256), TLSHELLO_BAD);
        big[3] = 0;
        big[4] = 0; /* an empty record */
        assert_int_equal(tlshello_pick(big, sizeof(big), TLSHELLO_P256), TLSHELLO_BAD);
        /* An SSL 2 style hello, an alert record. */
        {
                static const unsigned char ssl2[] = {0x80, 0x2e, 0x01, 0x03, 0x01};
                static const unsigned char alert[] = {21, 3, 3, 0, 2, 2, 40};

                assert_int_equal(tlshello_pick(ssl2, sizeof(ssl2), TLSHELLO_P256),
                                 TLSHELLO_BAD);
                assert_int_equal(tlshello_pick(alert, sizeof(alert), TLSHELLO_P256),
                                 TLSHELLO_BAD);
        }
        test_handshake(&h, &hs);
        /* Another handshake message first. */
        hs.b[0] = 2;
        test_records(&hs, sizeof(hs.b), &rec);
        assert_int_equal(tlshello_pick(rec.b, rec.n, TLSHELLO_P256), TLSHELLO_BAD);
        hs.b[0] = 1;
        /* Longer than TLSHELLO_MAX: decided at once, from its header. */
        hs.b[1] = 0;
        hs.b[2] = (TLSHELLO_MAX + 1) >> 8;
        hs.b[3] = (TLSHELLO_MAX + 1) & 0xff;
        test_records(&hs, 4, &rec);
        assert_int_equal(tlshello_pick(rec.b, 9, TLSHELLO_P256), TLSHELLO_BAD);
        /* A body shorter than its fields say: a vector runs past its end. */
        test_handshake(&h, &hs);
        hs.b[3] = 2 + 32 + 1 + 32 + 1; /* cut inside the cipher suites' length */
        hs.b[1] = hs.b[2] = 0;
        hs.n = 4 + hs.b[3];
        test_records(&hs, sizeof(hs.b), &rec);
        assert_int_equal(tlshello_pick(rec.b, rec.n, TLSHELLO_P256), TLSHELLO_BAD);
        /* An extension's length past the extensions' end. */
        test_handshake(&h, &hs);
        hs.b[hs.n - 2 * test_count(test_groups_all) - 3] = 0xff;
        test_records(&hs, sizeof(hs.b), &rec);
        assert_int_equal(tlshello_pick(rec.b, rec.n, TLSHELLO_P256), TLSHELLO_BAD);
        /* No curve tlshello knows: nothing to decide by. */
        test_handshake(&h, &hs);
        test_records(&hs, sizeof(hs.b), &rec);
        assert_int_equal(tlshello_pick(rec.b, rec.n, 29), TLSHELLO_BAD);
        assert_string_equal(tlshello_pick_str(TLSHELLO_BAD), "bad");
        assert_string_equal(tlshello_pick_str(TLSHELLO_RSA), "rsa");
}

/*
 * A ClientHello in one-byte records: six bytes of input for each byte of
 * it. Not whole within TLSHELLO_INPUT_MAX bytes of input: BAD, not more.
 */
static void test_input_max(void **state)
{
        static unsigned char in[TLSHELLO_INPUT_MAX + 600];
        const unsigned char head[4] = {1, 0, 0x17, 0x70}; /* a 6000-byte body */
        size_t n = 0;

        (void)state;
        for (size_t i = 0; n + 6 <= sizeof(in); i++) {
                in[n++] = 22;
                in[n++] = 3;
                in[n++] = 1;
                in[n++] = 0;
                in[n++] = 1;
                in[n++] = i < 4 ? head[i] : 0;
        }
        assert_int_equal(tlshello_pick(in, TLSHELLO_INPUT_MAX - 1, TLSHELLO_P256),
                         TLSHELLO_MORE);
        assert_int_equal(tlshello_pick(in, TLSHELLO_INPUT_MAX, TLSHELLO_P256),
                         TLSHELLO_BAD);
        assert_int_equal(tlshello_pick(in, n, TLSHELLO_P256), TLSHELLO_BAD);
}

/* The host name h asks for, as tlshello_read() reads it ("BAD" if it cannot). */
static const char *test_sni_of(const struct test_hello *h)
{
        static struct tlshello got;
        struct test_bytes hs, rec;

        test_handshake(h, &hs);
        test_records(&hs, sizeof(hs.b), &rec);
        if (tlshello_read(rec.b, rec.n, &got) != TLSHELLO_READ_OK)
                return "BAD";
        return got.sni;
}

/* SNI: a host name, in lower case, without its trailing dot; anything else is none. */
static void test_sni(void **state)
{
        struct test_hello h = {.suites = test_suites13,
                               .versions = test_v13,
                               .sigalgs = test_sig_both,
                               .groups = test_groups_all};
        char name[300];

        (void)state;
        assert_string_equal(test_sni_of(&h), "mx");
        h.sni = "MX1.Example.NET.";
        assert_string_equal(test_sni_of(&h), "mx1.example.net");
        h.sni = "_smtp-relay.example-1.test";
        assert_string_equal(test_sni_of(&h), "_smtp-relay.example-1.test");
        /* Not host names: a blank, a wildcard, an empty one, "." alone. */
        h.sni = "mx example.net";
        assert_string_equal(test_sni_of(&h), "");
        h.sni = "*.example.net";
        assert_string_equal(test_sni_of(&h), "");
        h.sni = "";
        assert_string_equal(test_sni_of(&h), "");
        h.sni = ".";
        assert_string_equal(test_sni_of(&h), "");
        /* Empty labels; one trailing dot goes, not two. */
        h.sni = "a.test..";
        assert_string_equal(test_sni_of(&h), "");
        h.sni = "a..test";
        assert_string_equal(test_sni_of(&h), "");
        h.sni = ".a.test";
        assert_string_equal(test_sni_of(&h), "");
        /* No letter: no name ("-" would read as sni=- in the log). */
        h.sni = "-";
        assert_string_equal(test_sni_of(&h), "");
        h.sni = "1-2.3";
        assert_string_equal(test_sni_of(&h), "");
        /* An IPv4 address (RFC 6066 allows none; some clients send one). */
        h.sni = "127.0.0.1";
        assert_string_equal(test_sni_of(&h), "");
        h.sni = "192.0.2.25.";
        assert_string_equal(test_sni_of(&h), "");
        h.sni = "25.192.0.2.in-addr.test";
        assert_string_equal(test_sni_of(&h), "25.192.0.2.in-addr.test");
        /* 253 bytes are a name (254 with its trailing dot); 254 are not. */
        memset(name, 'a', sizeof(name));
        name[253] = '\0';
        h.sni = name;
        assert_int_equal(strlen(test_sni_of(&h)), 253);
        name[253] = '.';
        name[254] = '\0';
        assert_int_equal(strlen(test_sni_of(&h)), 253);
        name[253] = 'a';
        assert_string_equal(test_sni_of(&h), "");
        /* A name_type other than host_name; no server_name at all. */
        h.sni = "mx.example.net";
        h.sni_type = 1;
        assert_string_equal(test_sni_of(&h), "");
        h.sni_type = 0;
        h.no_sni = true;
        assert_string_equal(test_sni_of(&h), "");
        /* The decision on the key stays what it was. */
        assert_int_equal(test_pick(&h, TLSHELLO_P256), TLSHELLO_ECDSA);
}

/*
 * ClientHellos of a real client, OpenSSL's (through Python's ssl, written by
 * test/fuzz/make-corpus into the fuzz corpus): decided as the rules say.
 */
static enum tlshello_pick test_corpus(const char *name)
{
        char path[256];
        unsigned char data[8192];
        size_t n;
        FILE *f;

        snprintf(path, sizeof(path), "test/fuzz/corpus/fuzz_tlshello/%s", name);
        f = fopen(path, "rb");
        if (f == NULL)
                fail_msg("%s: cannot open (run from the repository root)", path);
        n = fread(data, 1, sizeof(data), f);
        fclose(f);
        assert_true(n > 1 && n < sizeof(data));
        assert_int_equal(data[0], 0); /* the harness's byte for P-256 */
        return tlshello_pick(data + 1, n - 1, TLSHELLO_P256);
}

static void test_openssl(void **state)
{
        (void)state;
        assert_int_equal(test_corpus("openssl-default"), TLSHELLO_ECDSA);
        assert_int_equal(test_corpus("openssl-tls12-rsa"), TLSHELLO_RSA);
        assert_int_equal(test_corpus("openssl-tls12-ecdsa"), TLSHELLO_ECDSA);
        assert_int_equal(test_corpus("two-records"), TLSHELLO_ECDSA);
        assert_int_equal(test_corpus("cut-short"), TLSHELLO_MORE);
        assert_int_equal(test_corpus("plaintext"), TLSHELLO_BAD);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_tls13),   cmocka_unit_test(test_tls12),
            cmocka_unit_test(test_bad),     cmocka_unit_test(test_input_max),
            cmocka_unit_test(test_openssl), cmocka_unit_test(test_sni),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
