/*
 * Unit tests for lib/proxyproto.c: version 1 lines and version 2 headers as
 * HAProxy's specification writes them (its own examples among them), each
 * of their prefixes asking for more, and what is not a header, or a bad
 * one, refused with a reason. t_proxy_in.py puts HAProxy itself in front
 * of mailward.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conn.h"
#include "proxyproto.h"

/* Parse all n bytes: every prefix asks for more, the whole gives want. */
static long test_parse(const void *p, size_t n, struct proxyproto_hdr *h, char *why)
{
        long r = proxyproto_parse(p, n, h, why, 128);

        for (size_t i = 0; r > 0 && i < (size_t)r; i++) {
                struct proxyproto_hdr x;
                char w[128];

                assert_int_equal(proxyproto_parse(p, i, &x, w, sizeof(w)), 0);
        }
        return r;
}

/* "ip:port" of a sockaddr the parser filled in (lib/conn.c writes it). */
static const char *test_str(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
        conn_addr_str((const struct sockaddr *)ss, out, outlen);
        return out;
}

static void test_expect(const char *in, long want, const char *src, const char *dst)
{
        struct proxyproto_hdr h;
        char why[128], a[64], b[64];
        long r = test_parse(in, strlen(in), &h, why);

        assert_int_equal(r, want);
        assert_string_equal(why, "");
        assert_int_equal(h.version, 1);
        assert_int_equal(h.has_addrs, src != NULL);
        if (src != NULL) {
                assert_string_equal(test_str(&h.src, a, sizeof(a)), src);
                assert_string_equal(test_str(&h.dst, b, sizeof(b)), dst);
        }
}

static void test_refused(const void *in, size_t n, const char *reason)
{
        struct proxyproto_hdr h;
        char why[128];

        assert_int_equal(proxyproto_parse(in, n, &h, why, sizeof(why)), -1);
        if (strstr(why, reason) == NULL)
                fail_msg("refused for \"%s\", not \"%s\"", why, reason);
}

static void test_v1(void **state)
{
        static const char tcp4[] = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\n";
        static const char tcp6[] =
            "PROXY TCP6 2001:db8::7 2001:db8::25 65535 465\r\nEHLO x\r\n";
        static const char *const longest =
            "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

        (void)state;
        test_expect(tcp4, (long)strlen(tcp4), "192.0.2.7:56324", "198.51.100.1:25");
        /* What follows the header is the client's, and not looked at. */
        test_expect(tcp6, (long)strlen(tcp6) - 8, "[2001:db8::7]:65535",
                    "[2001:db8::25]:465");
        test_expect(longest, 104, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
        /* The specification's worst case: UNKNOWN with both addresses, 107. */
        test_expect("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
                    PROXYPROTO_V1_MAX, NULL, NULL);
        test_expect("PROXY UNKNOWN\r\n", 15, NULL, NULL);
        test_expect("PROXY UNKNOWN ffff::1 ffff::2  1 2\r\n", 36, NULL, NULL);
        test_expect("PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n", 40, "0.0.0.0:0",
                    "255.255.255.255:0");
}

static void test_v1_bad(void **state)
{
        char big[200];

        (void)state;
        test_refused("EHLO client.example\r\n", 21, "no PROXY protocol header");
        test_refused("\x16\x03\x01\x02\x00", 5, "no PROXY protocol header");
        test_refused("PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\n", 43, "CRLF");
        test_refused("PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n", 41, "6 fields");
        test_refused("PROXY TCP4 192.0.2.7 198.51.100.1 1 2 3\r\n", 41, "6 fields");
        test_refused("PROXY TCP4  192.0.2.7 198.51.100.1 1 2\r\n", 40, "spacing");
        test_refused("PROXY TCP4 192.0.2.7 198.51.100.1 1 2 \r\n", 40, "spacing");
        test_refused("PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n", 39, "protocol 'UDP4'");
        /* The peer's bytes in a reason: letters and digits only. */
        test_refused("PROXY T\"x=1\x1b[7 192.0.2.7 198.51.100.1 1 2\r\n", 44,
                     "unknown protocol 'T?x?1??7'");
        test_refused("PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n", 41, "IPv4 address");
        test_refused("PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n", 38, "IPv6 address");
        test_refused("PROXY TCP4 192.0.2.07 198.51.100.1 1 2\r\n", 40, "address");
        test_refused("PROXY TCP4 192.0.2.7 198.51.100.1 65536 2\r\n", 43, "port");
        test_refused("PROXY TCP4 192.0.2.7 198.51.100.1 025 2\r\n", 41, "port");
        test_refused("PROXY TCP4 192.0.2.7 198.51.100.1 -1 2\r\n", 40, "port");
        test_refused("PROXY TCP4 192.0.2.7\0 198.51.100.1 1 2\r\n", 40, "NUL");
        /* No line end within 107 bytes. */
        memset(big, 'A', sizeof(big));
        memcpy(big, "PROXY TCP4 ", 11);
        test_refused(big, PROXYPROTO_V1_MAX, "no CRLF");
        {
                struct proxyproto_hdr h;
                char why[128];

                assert_int_equal(proxyproto_parse((const unsigned char *)big,
                                                  PROXYPROTO_V1_MAX - 1, &h, why,
                                                  sizeof(why)),
                                 0);
                /* "PROX" then something else. */
                assert_int_equal(proxyproto_parse((const unsigned char *)"PROXZ", 5, &h,
                                                  why, sizeof(why)),
                                 -1);
                assert_int_equal(proxyproto_parse((const unsigned char *)"PROX", 4, &h,
                                                  why, sizeof(why)),
                                 0);
                assert_int_equal(proxyproto_parse(NULL, 0, &h, why, sizeof(why)), 0);
        }
}

/* A version 2 header: command, family, address block, and extra body bytes
 * (0 or at least 3): one NOOP TLV that fills them. */
static size_t test_v2_make(unsigned char *out, unsigned cmd, unsigned fam,
                           const unsigned char *addrs, size_t alen, size_t extra)
{
        static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                              0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
        size_t body = alen + extra;

        memcpy(out, sig, 12);
        out[12] = (unsigned char)(0x20 | cmd);
        out[13] = (unsigned char)fam;
        out[14] = (unsigned char)(body >> 8);
        out[15] = (unsigned char)body;
        memcpy(out + 16, addrs, alen);
        memset(out + 16 + alen, 0xee, extra);
        if (extra >= 3) {
                out[16 + alen] = 0x04; /* PP2_TYPE_NOOP */
                out[16 + alen + 1] = (unsigned char)((extra - 3) >> 8);
                out[16 + alen + 2] = (unsigned char)(extra - 3);
        }
        return 16 + body;
}

static void test_v2(void **state)
{
        static const unsigned char a4[12] = {192, 0, 2,    7,    198, 51,
                                             100, 1, 0xdc, 0x04, 0,   25};
        unsigned char a6[36] = {0x20, 0x01, 0x0d, 0xb8};
        unsigned char h2[PROXYPROTO_V2_MAX + 8];
        struct proxyproto_hdr h;
        char why[128], a[64], b[64];
        size_t n;

        (void)state;
        a6[15] = 7;
        a6[16] = 0x20;
        a6[17] = 0x01;
        a6[18] = 0x0d;
        a6[19] = 0xb8;
        a6[31] = 0x25;
        a6[32] = 0xff;
        a6[33] = 0xff;
        a6[34] = 0x01;
        a6[35] = 0xd1;
        n = test_v2_make(h2, 1, 0x11, a4, sizeof(a4), 0);
        assert_int_equal(test_parse(h2, n, &h, why), (long)n);
        assert_int_equal(h.version, 2);
        assert_true(h.has_addrs);
        assert_string_equal(test_str(&h.src, a, sizeof(a)), "192.0.2.7:56324");
        assert_string_equal(test_str(&h.dst, b, sizeof(b)), "198.51.100.1:25");
        /* TLVs after the addresses (a balancer's), skipped; more bytes after. */
        n = test_v2_make(h2, 1, 0x21, a6, sizeof(a6), 40);
        memcpy(h2 + n, "EHLO", 4);
        assert_int_equal(test_parse(h2, n + 4, &h, why), (long)n);
        assert_true(h.has_addrs);
        assert_string_equal(test_str(&h.src, a, sizeof(a)), "[2001:db8::7]:65535");
        assert_string_equal(test_str(&h.dst, b, sizeof(b)), "[2001:db8::25]:465");
        /* LOCAL (a health check), UNSPEC, a Unix socket: no client named. */
        n = test_v2_make(h2, 0, 0x00, a4, 0, 0);
        assert_int_equal(test_parse(h2, n, &h, why), 16);
        assert_false(h.has_addrs);
        n = test_v2_make(h2, 0, 0x11, a4, sizeof(a4), 0);
        assert_int_equal(test_parse(h2, n, &h, why), (long)n);
        assert_false(h.has_addrs);
        n = test_v2_make(h2, 1, 0x31, a6, 0, 216);
        assert_int_equal(test_parse(h2, n, &h, why), (long)n);
        assert_false(h.has_addrs);
        /* The longest body taken, and one byte more. */
        n = test_v2_make(h2, 1, 0x11, a4, sizeof(a4),
                         PROXYPROTO_V2_MAX - 16 - sizeof(a4));
        assert_int_equal(proxyproto_parse(h2, n, &h, why, sizeof(why)),
                         PROXYPROTO_V2_MAX);
        n = test_v2_make(h2, 1, 0x11, a4, sizeof(a4),
                         PROXYPROTO_V2_MAX - 15 - sizeof(a4));
        test_refused(h2, 16, "more than");
        /* Families and transports the specification does not define: refused
         * for PROXY, ignored for LOCAL. */
        n = test_v2_make(h2, 1, 0x41, a4, sizeof(a4), 0);
        test_refused(h2, n, "unknown family 0x41");
        n = test_v2_make(h2, 1, 0x13, a4, sizeof(a4), 0);
        test_refused(h2, n, "unknown family 0x13");
        n = test_v2_make(h2, 0, 0xff, a4, sizeof(a4), 0);
        assert_int_equal(test_parse(h2, n, &h, why), (long)n);
        assert_false(h.has_addrs);
        /* Version 1 in a v2 signature, command 2, an address block too short. */
        n = test_v2_make(h2, 1, 0x11, a4, sizeof(a4), 0);
        h2[12] = 0x11;
        test_refused(h2, n, "version 1");
        h2[12] = 0x22;
        test_refused(h2, n, "command 2");
        n = test_v2_make(h2, 1, 0x21, a4, sizeof(a4), 0);
        test_refused(h2, n, "address block");
        /* The signature broken in its middle. */
        n = test_v2_make(h2, 1, 0x11, a4, sizeof(a4), 0);
        h2[6] = 'X';
        test_refused(h2, 7, "no PROXY protocol header");
}

/* CRC-32C, table-driven: not the parser's way of computing it. */
static uint32_t test_crc32c(const unsigned char *p, size_t n)
{
        static uint32_t table[256];
        uint32_t crc = 0xffffffffu;

        if (table[1] == 0)
                for (uint32_t i = 0; i < 256; i++) {
                        uint32_t c = i;

                        for (int k = 0; k < 8; k++)
                                c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
                        table[i] = c;
                }
        for (size_t i = 0; i < n; i++)
                crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
        return ~crc;
}

/* A PROXY TCP4 header with the TLVs tlv, n; its length set. */
static size_t test_v2_tlvs(unsigned char *out, const void *tlv, size_t n)
{
        static const unsigned char a4[12] = {192, 0, 2,    7,    198, 51,
                                             100, 1, 0xdc, 0x04, 0,   25};
        size_t len = test_v2_make(out, 1, 0x11, a4, sizeof(a4), 0);

        memcpy(out + len, tlv, n);
        len += n;
        out[14] = (unsigned char)((len - 16) >> 8);
        out[15] = (unsigned char)(len - 16);
        return len;
}

/* As test_v2_tlvs(), then a CRC32C TLV (last) over the whole header. */
static size_t test_v2_crc(unsigned char *out, const void *tlv, size_t n)
{
        unsigned char t[600];
        size_t len;
        uint32_t crc;

        memcpy(t, tlv, n);
        memcpy(t + n, "\x03\x00\x04\x00\x00\x00\x00", 7);
        len = test_v2_tlvs(out, t, n + 7);
        crc = test_crc32c(out, len);
        out[len - 4] = (unsigned char)(crc >> 24);
        out[len - 3] = (unsigned char)(crc >> 16);
        out[len - 2] = (unsigned char)(crc >> 8);
        out[len - 1] = (unsigned char)crc;
        return len;
}

/* A TCP4 header with the TLVs tlv, n is taken, and names endpoint want. */
static void test_endpoint(const void *tlv, size_t n, const char *want)
{
        unsigned char h2[PROXYPROTO_V2_MAX];
        struct proxyproto_hdr h;
        char why[128];
        size_t len = test_v2_tlvs(h2, tlv, n);

        assert_int_equal(test_parse(h2, len, &h, why), (long)len);
        assert_string_equal(h.endpoint, want);
}

static void test_v2_tlv(void **state)
{
        /* HAProxy's SSL TLV: client 0x07 (SSL, cert in connection and
         * session), verify 0, VERSION "TLSv1.3", CN, CIPHER. */
        static const unsigned char ssl[] = "\x20\x00\x2c\x07\x00\x00\x00\x00"
                                           "\x21\x00\x07TLSv1.3"
                                           "\x22\x00\x08"
                                           "a.b.test"
                                           "\x23\x00\x0fTLS_AES_128_GCM";
        static const unsigned char aws[] = "\xea\x00\x17\x01vpce-08d2bf15fac5001c9";
        unsigned char h2[PROXYPROTO_V2_MAX], t[400];
        struct proxyproto_hdr h;
        char why[128];
        size_t n;

        (void)state;
        assert_int_equal(test_crc32c((const unsigned char *)"123456789", 9), 0xe3069283u);
        /* A CRC32C that matches, with a unique id and the balancer's TLS. */
        memcpy(t,
               "\x05\x00\x0a"
               "ab12:CD_9z",
               13);
        memcpy(t + 13, ssl, sizeof(ssl) - 1);
        n = test_v2_crc(h2, t, 13 + sizeof(ssl) - 1);
        assert_int_equal(test_parse(h2, n, &h, why), (long)n);
        assert_true(h.has_addrs);
        assert_true(h.crc32c);
        assert_string_equal(h.unique_id, "ab12:CD_9z");
        assert_true(h.balancer_tls);
        assert_string_equal(h.tls_version, "TLSv1.3");
        assert_string_equal(h.endpoint, "");
        /* Any byte of the body changed (but the CRC32C TLV's type, which
         * turns it into another TLV): refused. */
        for (size_t i = 16; i < n; i++) {
                if (i == n - 7)
                        continue;
                h2[i] ^= 0x20;
                if (proxyproto_parse(h2, n, &h, why, sizeof(why)) != -1)
                        fail_msg("byte %zu changed, taken", i);
                h2[i] ^= 0x20;
        }
        h2[n - 1] ^= 1;
        test_refused(h2, n, "CRC32C does not match");
        /* The client's connection to the balancer was not TLS. */
        memcpy(t, ssl, sizeof(ssl) - 1);
        t[3] = 0x00;
        n = test_v2_tlvs(h2, t, sizeof(ssl) - 1);
        assert_int_equal(test_parse(h2, n, &h, why), (long)n);
        assert_false(h.balancer_tls);
        assert_false(h.crc32c);
        /* Endpoints: AWS, Azure (little-endian), Google Cloud (big-endian);
         * those of a form not known are skipped; given again, the last one
         * stands. */
        test_endpoint(aws, sizeof(aws) - 1, "aws:vpce-08d2bf15fac5001c9");
        test_endpoint("\xee\x00\x05\x01\x01\x02\x00\x80", 8, "azure:2147484161");
        test_endpoint("\xe0\x00\x08\x00\x00\x00\x00\x00\x01\x00\x02", 11, "gcp:65538");
        test_endpoint("\xe0\x00\x02\x00\x01\xee\x00\x01\x01", 9, "");
        test_endpoint("\xee\x00\x05\x01\x01\x00\x00\x00\xea\x00\x02\x01Z", 13, "aws:Z");
        n = test_v2_tlvs(h2, "\x21\x00\x00\x20\x00\x08\x01\x00\x00\x00\x00\x21\x00\x00",
                         14);
        assert_int_equal(test_parse(h2, n, &h, why), (long)n);
        assert_true(h.balancer_tls);
        assert_string_equal(h.tls_version, "");
        /* Unknown TLVs (ALPN, NETNS, AWS's other subtypes) are skipped. */
        n = test_v2_tlvs(h2, "\x01\x00\x02h2\x30\x00\x00\xea\x00\x02\x02x", 13);
        assert_int_equal(test_parse(h2, n, &h, why), (long)n);
        assert_string_equal(h.endpoint, "");
        /* Bytes that are not letters, digits or "-._:/+=@" are given in hex;
         * 128 bytes is the longest id, hex and all; a long endpoint is cut. */
        n = test_v2_tlvs(h2,
                         "\x05\x00\x04"
                         "a b\n",
                         7);
        assert_int_equal(test_parse(h2, n, &h, why), (long)n);
        assert_string_equal(h.unique_id, "0x6120620a");
        t[0] = 0x05;
        t[1] = 0;
        t[2] = PROXYPROTO_ID_MAX;
        memset(t + 3, 0xff, PROXYPROTO_ID_MAX);
        n = test_v2_tlvs(h2, t, 3 + PROXYPROTO_ID_MAX);
        assert_int_equal(test_parse(h2, n, &h, why), (long)n);
        assert_int_equal(strlen(h.unique_id), 2 + 2 * PROXYPROTO_ID_MAX);
        assert_int_equal(strspn(h.unique_id + 2, "f"), 2 * PROXYPROTO_ID_MAX);
        t[2] = PROXYPROTO_ID_MAX + 1;
        n = test_v2_tlvs(h2, t, 4 + PROXYPROTO_ID_MAX);
        test_refused(h2, n, "UNIQUE_ID of 129 bytes");
        memcpy(t, "\xea\x00\xc9\x01", 4);
        memset(t + 4, '\0', 200);
        n = test_v2_tlvs(h2, t, 204);
        assert_int_equal(test_parse(h2, n, &h, why), (long)n);
        n = strlen(h.endpoint);
        assert_in_range(n, sizeof(h.endpoint) - 3, sizeof(h.endpoint) - 1);
        assert_memory_equal(h.endpoint, "aws:0x0000", 10);
        assert_int_equal(strspn(h.endpoint + 6, "0"), n - 8);
        assert_string_equal(h.endpoint + n - 2, "..");
        /* Malformed: a TLV past the end, bytes left over, a short SSL TLV or
         * sub-TLV, a CRC32C of 3 bytes, a second id or SSL TLV. */
        n = test_v2_tlvs(h2,
                         "\x05\x00\x05"
                         "abcd",
                         7);
        test_refused(h2, n, "TLV of type 0x05 overruns the header");
        n = test_v2_tlvs(h2, "\x04\x00\x00\x04\x00", 5);
        test_refused(h2, n, "2 bytes after the last TLV");
        n = test_v2_tlvs(h2, "\x20\x00\x04\x01\x00\x00\x00", 7);
        test_refused(h2, n, "SSL TLV of 4 bytes");
        n = test_v2_tlvs(h2, "\x20\x00\x08\x01\x00\x00\x00\x00\x21\x00\x01", 11);
        test_refused(h2, n, "SSL sub-TLV overruns");
        n = test_v2_tlvs(h2,
                         "\x03\x00\x03"
                         "abc",
                         6);
        test_refused(h2, n, "CRC32C TLV of 3 bytes");
        n = test_v2_tlvs(h2,
                         "\x05\x00\x01"
                         "a\x05\x00\x01"
                         "b",
                         8);
        test_refused(h2, n, "two TLVs of type 0x05");
        n = test_v2_tlvs(
            h2, "\x20\x00\x05\x01\x00\x00\x00\x00\x20\x00\x05\x00\x00\x00\x00\x00", 16);
        test_refused(h2, n, "two TLVs of type 0x20");
        /* UNSPEC carries TLVs straight after the header; LOCAL's body is not
         * read at all. */
        n = test_v2_make(h2, 1, 0x00, h2, 0, 0);
        memcpy(h2 + n, "\x05\x00\x02id", 5);
        h2[15] = 5;
        assert_int_equal(test_parse(h2, n + 5, &h, why), (long)n + 5);
        assert_false(h.has_addrs);
        assert_string_equal(h.unique_id, "id");
        h2[12] = 0x20;
        h2[17] = 0xff;
        assert_int_equal(test_parse(h2, n + 5, &h, why), (long)n + 5);
        assert_string_equal(h.unique_id, "");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_v1),
            cmocka_unit_test(test_v1_bad),
            cmocka_unit_test(test_v2),
            cmocka_unit_test(test_v2_tlv),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
