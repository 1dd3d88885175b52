#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *xmalloc(size_t n)
{
        void *p = malloc(n ? n : 1);

        if (p == NULL)
                fatalx("out of memory (%zu bytes)", n);
        return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
        void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

        if (p == NULL)
                fatalx("out of memory (%zu x %zu bytes)", nmemb, size);
        return p;
}

void *xrealloc(void *old, size_t n)
{
        void *p = realloc(old, n ? n : 1);

        if (p == NULL)
                fatalx("out of memory (%zu bytes)", n);
        return p;
}

char *xstrdup(const char *s)
{
        return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
        char *p = xmalloc(n + 1);

        memcpy(p, s, n);
        p[n] = '\0';
        return p;
}

void fatalx(const char *fmt, ...)
{
        va_list ap;

        fputs("mailward: fatal: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        abort();
}

bool util_prefix_ci(const char *s, size_t n, const char *p)
{
        size_t i;

        for (i = 0; p[i] != '\0'; i++) {
                if (i >= n ||
                    tolower((unsigned char)s[i]) != tolower((unsigned char)p[i]))
                        return false;
        }
        return true;
}

int64_t util_mono_secs(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (int64_t)ts.tv_sec;
}

void util_rfc3339(char out[32], const struct timespec *t)
{
        struct tm tm;
        size_t n;

        gmtime_r(&t->tv_sec, &tm);
        n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(out + n, 32 - n, ".%03dZ", (int)(t->tv_nsec / 1000000) % 1000);
}

int util_list_next(const char **p, char *out, size_t outlen)
{
        const char *s = *p;
        size_t n;

        while (*s == ' ' || *s == '\t' || *s == ',')
                s++;
        n = strcspn(s, " \t,");
        *p = s + n;
        if (n == 0)
                return 0;
        if (n >= outlen)
                return -1;
        memcpy(out, s, n);
        out[n] = '\0';
        return 1;
}

int util_list_nth(const char *list, unsigned i, char *out, size_t outlen)
{
        int r;

        while ((r = util_list_next(&list, out, outlen)) == 1 && i > 0)
                i--;
        return r;
}

int util_net_parse(const char *s, struct util_net *out)
{
        char host[64];
        const char *slash = strchr(s, '/');
        size_t hl = slash != NULL ? (size_t)(slash - s) : strlen(s);
        unsigned long bits;
        char *end;

        memset(out, 0, sizeof(*out));
        if (hl == 0 || hl >= sizeof(host))
                return -1;
        memcpy(host, s, hl);
        host[hl] = '\0';
        if (inet_pton(AF_INET, host, out->addr) == 1)
                out->family = AF_INET;
        else if (inet_pton(AF_INET6, host, out->addr) == 1)
                out->family = AF_INET6;
        else
                return -1;
        out->bits = out->family == AF_INET ? 32 : 128;
        if (slash != NULL) {
                if (!isdigit((unsigned char)slash[1]))
                        return -1;
                bits = strtoul(slash + 1, &end, 10);
                if (*end != '\0' || bits > out->bits ||
                    (slash[1] == '0' && slash[2] != '\0'))
                        return -1;
                out->bits = (unsigned)bits;
        }
        /* An IPv4-mapped network is the IPv4 one: peers are compared as IPv4
         * (conn makes a mapped peer IPv4, as Postfix does). */
        if (out->family == AF_INET6 && out->bits >= 96 &&
            memcmp(out->addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
                memmove(out->addr, out->addr + 12, 4);
                memset(out->addr + 4, 0, 12);
                out->family = AF_INET;
                out->bits -= 96;
        }
        /* No bit set after the prefix: "192.0.2.1/24" is a mistake, not a net. */
        for (unsigned i = out->bits; i < (out->family == AF_INET ? 32u : 128u); i++)
                if (out->addr[i / 8] & (0x80 >> (i % 8)))
                        return -1;
        return 0;
}

bool util_net_match(const struct util_net *n, const struct sockaddr *sa)
{
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                                 0, 0, 0, 0, 0xff, 0xff};
        const unsigned char *a;

        if (sa->sa_family == AF_INET) {
                if (n->family != AF_INET)
                        return false;
                a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        } else if (sa->sa_family == AF_INET6) {
                a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
                if (n->family == AF_INET) {
                        if (memcmp(a, mapped, sizeof(mapped)) != 0)
                                return false;
                        a += sizeof(mapped);
                }
        } else {
                return false;
        }
        for (unsigned i = 0; i < n->bits; i++)
                if ((a[i / 8] ^ n->addr[i / 8]) & (0x80 >> (i % 8)))
                        return false;
        return true;
}

bool util_is_address(const char *s)
{
        struct in6_addr a;

        return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

int util_split_hostport(const char *s, char *host, size_t hostlen, unsigned *port)
{
        const char *colon, *h = s, *hend;
        char *end;
        unsigned long p;

        if (*s == '[') {
                hend = strchr(s, ']');
                if (hend == NULL || hend[1] != ':')
                        return -1;
                h = s + 1;
                colon = hend + 1;
        } else {
                colon = strrchr(s, ':');
                if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
                        return -1;
                hend = colon;
        }
        if ((size_t)(hend - h) >= hostlen)
                return -1;
        memcpy(host, h, (size_t)(hend - h));
        host[hend - h] = '\0';
        p = strtoul(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end != '\0' || p == 0 || p > 65535)
                return -1;
        *port = (unsigned)p;
        return 0;
}
