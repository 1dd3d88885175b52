/*
 * proxyproto: read the PROXY protocol header (HAProxy's, versions 1 and 2)
 * that a load balancer sends before the client's own bytes, naming the
 * client it accepted. Pure: no I/O, no allocation; any bytes are safe.
 *
 * Version 1 is a text line, "PROXY TCP4|TCP6 src dst sport dport\r\n" or
 * "PROXY UNKNOWN...\r\n", 107 bytes at most. Version 2 is binary: a
 * 12-byte signature, version and command, family, a length, then the
 * addresses and TLVs (skipped here). Addresses must be well formed (v1:
 * inet_pton()'s forms, ports 0-65535 without leading zeros); anything
 * else is an error, never a guess.
 *
 * A LOCAL command (version 2: the balancer's own health check), an UNKNOWN
 * line (version 1) or a family other than TCP over IPv4 or IPv6 carries no
 * client: the connection stands for itself (proxyproto_hdr.has_addrs false).
 */
#ifndef MAILWARD_PROXYPROTO_H
#define MAILWARD_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Longest header taken: v1's 107 bytes, or v2's 16 and a body of up to 1 KB
 * (addresses and the balancer's TLVs). */
#define PROXYPROTO_V1_MAX 107
#define PROXYPROTO_V2_MAX (16 + 1024)

struct proxyproto_hdr {
        int version;    /* 1 or 2 */
        bool has_addrs; /* PROXY with TCP over IPv4 or IPv6: src and dst are set */
        struct sockaddr_storage src, dst; /* the client, and where it connected */
};

/*
 * p, n: the bytes read so far, from the connection's first. The header's
 * length (> 0) with *out filled in; 0 when the bytes so far are the start of
 * a header and more are needed; -1 when they are not a header, with a
 * reason in why (whylen bytes, always NUL-terminated), safe to log as it
 * is: of the peer's bytes it quotes only letters and digits.
 */
long proxyproto_parse(const unsigned char *p, size_t n, struct proxyproto_hdr *out,
                      char *why, size_t whylen);

#endif
