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

static long proxyproto_v2(const unsigned char *p, size_t n, struct proxyproto_hdr *out,
                          char *why, size_t whylen)
{
        size_t body, need;
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
        if (cmd == 0) /* LOCAL: the balancer's own connection; family ignored */
                return (long)need;
        if ((fam >> 4) > 3 || (fam & 0x0f) > 2)
                return proxyproto_bad(why, whylen, "v2: unknown family 0x%02x", fam);
        if (fam == 0x11 || fam == 0x21) { /* TCP over IPv4, TCP over IPv6 */
                size_t alen = fam == 0x11 ? 4 : 16;
                const unsigned char *q = p + PROXYPROTO_V2_HEAD;
                int af = fam == 0x11 ? AF_INET : AF_INET6;

                if (body < 2 * alen + 4)
                        return proxyproto_bad(why, whylen,
                                              "v2: %zu bytes for a %s address block",
                                              body, fam == 0x11 ? "TCP4" : "TCP6");
                proxyproto_addr(&out->src, af, q,
                                (unsigned)q[2 * alen] << 8 | q[2 * alen + 1]);
                proxyproto_addr(&out->dst, af, q + alen,
                                (unsigned)q[2 * alen + 2] << 8 | q[2 * alen + 3]);
                out->has_addrs = true;
        }
        /* UNSPEC, UDP and Unix sockets: the connection stands for itself. */
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
