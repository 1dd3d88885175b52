/*
 * proxyproto: the PROXY protocol header, versions 1 and 2, as HAProxy's
 * specification (proxy-protocol.txt, "The PROXY protocol", versions 1 and
 * 2) lays them out. See proxyproto.h.
 */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const unsigned char proxyproto_sig2[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                                  0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char proxyproto_sig1[] = "PROXY ";

#define PROXYPROTO_V2_HEAD 16

static long proxyproto_bad(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static long proxyproto_bad(char *why, size_t whylen, const char *fmt, ...)
{
        va_list ap;

        if (whylen > 0) {
                va_start(ap, fmt);
                vsnprintf(why, whylen, fmt, ap);
                va_end(ap);
        }
        return -1;
}

/* A port as v1 writes it: 0-65535 in decimal, no sign, no leading zero. */
static bool proxyproto_port(const char *s, unsigned *port)
{
        unsigned long v = 0;
        size_t n = strlen(s);

        if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned long)(s[i] - '0');
        }
        if (v > 65535)
                return false;
        *port = (unsigned)v;
        return true;
}

/* Fill in a sockaddr of family af from an address (4 or 16 bytes) and port. */
static void proxyproto_addr(struct sockaddr_storage *ss, int af, const void *addr,
                            unsigned port)
{
        memset(ss, 0, sizeof(*ss));
        if (af == AF_INET) {
                struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

                s4->sin_family = AF_INET;
                memcpy(&s4->sin_addr, addr, 4);
                s4->sin_port = htons((unsigned short)port);
        } else {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

                s6->sin6_family = AF_INET6;
                memcpy(&s6->sin6_addr, addr, 16);
                s6->sin6_port = htons((unsigned short)port);
        }
}

static long proxyproto_v1(const unsigned char *p, size_t n, struct proxyproto_hdr *out,
                          char *why, size_t whylen)
{
        char line[PROXYPROTO_V1_MAX + 1], *f[7], *save = NULL, *tok;
        unsigned char a[16], b[16];
        unsigned sport, dport, nf = 0;
        const unsigned char *lf;
        size_t len;
        int af;

        lf = memchr(p, '\n', n < PROXYPROTO_V1_MAX ? n : PROXYPROTO_V1_MAX);
        if (lf == NULL)
                return n < PROXYPROTO_V1_MAX
                           ? 0
                           : proxyproto_bad(why, whylen, "v1: no CRLF within %d bytes",
                                            PROXYPROTO_V1_MAX);
        len = (size_t)(lf - p) + 1;
        if (len < 2 || p[len - 2] != '\r')
                return proxyproto_bad(why, whylen, "v1: line not ended by CRLF");
        memcpy(line, p, len - 2);
        line[len - 2] = '\0';
        if (strlen(line) != len - 2)
                return proxyproto_bad(why, whylen, "v1: NUL in the line");
        out->version = 1;
        out->has_addrs = false;
        /* UNKNOWN: whatever follows is ignored, as specified. */
        if (strncmp(line, "PROXY UNKNOWN", 13) == 0 &&
            (line[13] == ' ' || line[13] == '\0'))
                return (long)len;
        /* Single spaces between fields, as the specification writes them. */
        if (strstr(line, "  ") != NULL || line[len - 3] == ' ')
                return proxyproto_bad(why, whylen, "v1: bad spacing");
        for (tok = strtok_r(line, " ", &save); tok != NULL && nf < 7;
             tok = strtok_r(NULL, " ", &save))
                f[nf++] = tok;
        if (nf != 6)
                return proxyproto_bad(why, whylen, "v1: expected 6 fields");
        if (strcmp(f[1], "TCP4") == 0)
                af = AF_INET;
        else if (strcmp(f[1], "TCP6") == 0)
                af = AF_INET6;
        else {
                /* Quoted for the log: letters and digits only, the rest '?'. */
                char proto[9];
                size_t i;

                for (i = 0; i < 8 && f[1][i] != '\0'; i++)
                        proto[i] = isalnum((unsigned char)f[1][i]) ? f[1][i] : '?';
                proto[i] = '\0';
                return proxyproto_bad(why, whylen, "v1: unknown protocol '%s'", proto);
        }
        if (inet_pton(af, f[2], a) != 1 || inet_pton(af, f[3], b) != 1)
                return proxyproto_bad(why, whylen, "v1: bad %s address",
                                      af == AF_INET ? "IPv4" : "IPv6");
        if (!proxyproto_port(f[4], &sport) || !proxyproto_port(f[5], &dport))
                return proxyproto_bad(why, whylen, "v1: bad port");
        proxyproto_addr(&out->src, af, a, sport);
        proxyproto_addr(&out->dst, af, b, dport);
        out->has_addrs = true;
        return (long)len;
}

/* TLV types (the specification's PP2_TYPE_*, and the clouds' own). */
enum {
        PP2_TYPE_CRC32C = 0x03,
        PP2_TYPE_UNIQUE_ID = 0x05,
        PP2_TYPE_SSL = 0x20,
        PP2_SUBTYPE_SSL_VERSION = 0x21,
        PP2_TYPE_GCP = 0xe0,   /* Private Service Connect id, 8 bytes, big-endian */
        PP2_TYPE_AWS = 0xea,   /* subtype 0x01: the VPC endpoint id, text */
        PP2_TYPE_AZURE = 0xee, /* subtype 0x01: the Private Link id, 4 bytes, LE */
};

#define PP2_CLIENT_SSL 0x01

/* CRC-32C (Castagnoli, reflected), over p, n with the 4 bytes at skip as 0. */
static uint32_t proxyproto_crc32c(const unsigned char *p, size_t n, size_t skip)
{
        uint32_t crc = 0xffffffffu;

        for (size_t i = 0; i < n; i++) {
                crc ^= i >= skip && i < skip + 4 ? 0 : p[i];
                for (int k = 0; k < 8; k++)
                        crc = crc >> 1 ^ (0x82f63b78u & (0u - (crc & 1)));
        }
        return ~crc;
}

/* A byte a TLV's text keeps as it is (proxyproto.h). */
static bool proxyproto_plain(unsigned char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || (c != '\0' && strchr("-._:/+=@", c) != NULL);
}

/* A TLV's value as text after prefix (proxyproto.h): itself, or "0x" and
 * hex, cut and ended with ".." where outlen (at least prefix + 6) is short;
 * "" for no bytes. */
static void proxyproto_text(char *out, size_t outlen, const char *prefix,
                            const unsigned char *p, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        size_t o = strlen(prefix), i, take;
        bool plain = true;

        if (n == 0) {
                out[0] = '\0';
                return;
        }
        memcpy(out, prefix, o);
        for (i = 0; i < n && plain; i++)
                plain = proxyproto_plain(p[i]);
        if (plain && o + n < outlen) {
                memcpy(out + o, p, n);
                out[o + n] = '\0';
                return;
        }
        out[o++] = '0';
        out[o++] = 'x';
        take = o + 2 * n < outlen ? n : (outlen - o - 3) / 2;
        for (i = 0; i < take; i++) {
                out[o++] = hex[p[i] >> 4];
                out[o++] = hex[p[i] & 15];
        }
        if (take < n) {
                out[o++] = '.';
                out[o++] = '.';
        }
        out[o] = '\0';
}

/* The SSL TLV's value: client flags, verify result, then sub-TLVs. */
static long proxyproto_ssl(const unsigned char *v, size_t len, struct proxyproto_hdr *out,
                           char *why, size_t whylen)
{
        size_t i = 5;

        if (len < 5)
                return proxyproto_bad(why, whylen, "v2: SSL TLV of %zu bytes", len);
        out->balancer_tls = (v[0] & PP2_CLIENT_SSL) != 0;
        while (i < len) {
                size_t sub;

                if (len - i < 3 || (sub = (size_t)v[i + 1] << 8 | v[i + 2]) > len - i - 3)
                        return proxyproto_bad(why, whylen,
                                              "v2: SSL sub-TLV overruns its TLV");
                if (v[i] == PP2_SUBTYPE_SSL_VERSION)
                        proxyproto_text(out->tls_version, sizeof(out->tls_version), "",
                                        v + i + 3, sub);
                i += 3 + sub;
        }
        return 0;
}

/* One TLV that proxyproto.h says is read; seen: the types met so far. */
static long proxyproto_tlv(const unsigned char *hdr, size_t need, size_t at,
                           struct proxyproto_hdr *out, unsigned char *seen, char *why,
                           size_t whylen)
{
        unsigned type = hdr[at];
        size_t len = (size_t)hdr[at + 1] << 8 | hdr[at + 2];
        const unsigned char *v = hdr + at + 3;

        if (type != PP2_TYPE_CRC32C && type != PP2_TYPE_UNIQUE_ID &&
            type != PP2_TYPE_SSL && type != PP2_TYPE_GCP && type != PP2_TYPE_AWS &&
            type != PP2_TYPE_AZURE)
                return 0;
        /* The ones the specification defines come once; an endpoint TLV
         * given again replaces the last. */
        if (seen[type / 8] & 1u << (type % 8) && type < PP2_TYPE_GCP)
                return proxyproto_bad(why, whylen, "v2: two TLVs of type 0x%02x", type);
        seen[type / 8] |= (unsigned char)(1u << (type % 8));
        switch (type) {
        case PP2_TYPE_CRC32C:
                if (len != 4)
                        return proxyproto_bad(why, whylen, "v2: CRC32C TLV of %zu bytes",
                                              len);
                if (proxyproto_crc32c(hdr, need, at + 3) !=
                    ((uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 |
                     v[3]))
                        return proxyproto_bad(why, whylen, "v2: CRC32C does not match");
                out->crc32c = true;
                return 0;
        case PP2_TYPE_UNIQUE_ID:
                if (len > PROXYPROTO_ID_MAX)
                        return proxyproto_bad(why, whylen,
                                              "v2: UNIQUE_ID of %zu bytes, more than %d",
                                              len, PROXYPROTO_ID_MAX);
                proxyproto_text(out->unique_id, sizeof(out->unique_id), "", v, len);
                return 0;
        case PP2_TYPE_SSL:
                return proxyproto_ssl(v, len, out, why, whylen);
        case PP2_TYPE_GCP: {
                unsigned long long id = 0;

                if (len != 8) /* not the form known: skipped, as unknown ones are */
                        return 0;
                for (int i = 0; i < 8; i++)
                        id = id << 8 | v[i];
                snprintf(out->endpoint, sizeof(out->endpoint), "gcp:%llu", id);
                return 0;
        }
        case PP2_TYPE_AWS:
                if (len > 0 && v[0] == 0x01)
                        proxyproto_text(out->endpoint, sizeof(out->endpoint),
                                        "aws:", v + 1, len - 1);
                return 0;
        default: /* PP2_TYPE_AZURE */
                if (len == 5 && v[0] == 0x01)
                        snprintf(out->endpoint, sizeof(out->endpoint), "azure:%lu",
                                 (unsigned long)v[1] | (unsigned long)v[2] << 8 |
                                     (unsigned long)v[3] << 16 |
                                     (unsigned long)v[4] << 24);
                return 0;
        }
}

/* The TLVs of a version 2 header: from at to need, exactly. */
static long proxyproto_tlvs(const unsigned char *hdr, size_t need, size_t at,
                            struct proxyproto_hdr *out, char *why, size_t whylen)
{
        unsigned char seen[32] = {0};

        while (at < need) {
                size_t len;

                if (need - at < 3)
                        return proxyproto_bad(
                            why, whylen, "v2: %zu bytes after the last TLV", need - at);
                len = (size_t)hdr[at + 1] << 8 | hdr[at + 2];
                if (len > need - at - 3)
                        return proxyproto_bad(
                            why, whylen, "v2: TLV of type 0x%02x overruns the header",
                            (unsigned)hdr[at]);
                if (proxyproto_tlv(hdr, need, at, out, seen, why, whylen) < 0)
                        return -1;
                at += 3 + len;
        }
        return 0;
}

static long proxyproto_v2(const unsigned char *p, size_t n, struct proxyproto_hdr *out,
                          char *why, size_t whylen)
{
        size_t body, need, alen;
        unsigned cmd, fam;

        if (n < PROXYPROTO_V2_HEAD)
                return 0;
        if ((p[12] >> 4) != 2)
                return proxyproto_bad(why, whylen, "v2: version %u",
                                      (unsigned)p[12] >> 4);
        cmd = p[12] & 0x0f;
        if (cmd > 1)
                return proxyproto_bad(why, whylen, "v2: unknown command %u", cmd);
        fam = p[13];
        body = (size_t)p[14] << 8 | p[15];
        need = PROXYPROTO_V2_HEAD + body;
        if (need > PROXYPROTO_V2_MAX)
                return proxyproto_bad(why, whylen, "v2: %zu bytes, more than %d", need,
                                      PROXYPROTO_V2_MAX);
        if (n < need)
                return 0;
        out->version = 2;
        out->has_addrs = false;
        if (cmd == 0) /* LOCAL: the balancer's own connection; the rest ignored */
                return (long)need;
        /* UNSPEC, or TCP or UDP over IPv4, IPv6 or a Unix socket. */
        switch (fam) {
        case 0x00:
                alen = 0;
                break;
        case 0x11:
        case 0x12:
                alen = 12;
                break;
        case 0x21:
        case 0x22:
                alen = 36;
                break;
        case 0x31:
        case 0x32:
                alen = 216;
                break;
        default:
                return proxyproto_bad(why, whylen, "v2: unknown family 0x%02x", fam);
        }
        if (body < alen)
                return proxyproto_bad(
                    why, whylen, "v2: %zu bytes for a 0x%02x address block", body, fam);
        if (fam == 0x11 || fam == 0x21) { /* TCP over IPv4, TCP over IPv6 */
                size_t a = alen / 2 - 2;
                const unsigned char *q = p + PROXYPROTO_V2_HEAD;
                int af = fam == 0x11 ? AF_INET : AF_INET6;

                proxyproto_addr(&out->src, af, q, (unsigned)q[2 * a] << 8 | q[2 * a + 1]);
                proxyproto_addr(&out->dst, af, q + a,
                                (unsigned)q[2 * a + 2] << 8 | q[2 * a + 3]);
                out->has_addrs = true;
        }
        /* UNSPEC, UDP and Unix sockets: the connection stands for itself. */
        if (proxyproto_tlvs(p, need, PROXYPROTO_V2_HEAD + alen, out, why, whylen) < 0)
                return -1;
        return (long)need;
}

long proxyproto_parse(const unsigned char *p, size_t n, struct proxyproto_hdr *out,
                      char *why, size_t whylen)
{
        size_t m;

        if (whylen > 0)
                why[0] = '\0';
        memset(out, 0, sizeof(*out));
        m = n < sizeof(proxyproto_sig2) ? n : sizeof(proxyproto_sig2);
        if (m > 0 && memcmp(p, proxyproto_sig2, m) == 0)
                return m < sizeof(proxyproto_sig2)
                           ? 0
                           : proxyproto_v2(p, n, out, why, whylen);
        m = n < sizeof(proxyproto_sig1) - 1 ? n : sizeof(proxyproto_sig1) - 1;
        if (m > 0 && memcmp(p, proxyproto_sig1, m) == 0)
                return m < sizeof(proxyproto_sig1) - 1
                           ? 0
                           : proxyproto_v1(p, n, out, why, whylen);
        if (n == 0)
                return 0;
        return proxyproto_bad(why, whylen, "no PROXY protocol header");
}
