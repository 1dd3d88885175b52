/*
 * proxyproto: read the PROXY protocol header (HAProxy's, versions 1 and 2)
 * that a load balancer sends before the client's own bytes, naming the
 * client it accepted. Pure: no I/O, no allocation; any bytes are safe.
 *
 * Version 1 is a text line, "PROXY TCP4|TCP6 src dst sport dport\r\n" or
 * "PROXY UNKNOWN...\r\n", 107 bytes at most. Version 2 is binary: a
 * 12-byte signature, version and command, family, a length, then the
 * addresses and TLVs (type, 16-bit length, value). Addresses must be well
 * formed (v1: inet_pton()'s forms, ports 0-65535 without leading zeros),
 * and the TLVs must fill the header exactly; anything else is an error,
 * never a guess.
 *
 * Of the TLVs, these are read (the others are skipped, as the specification
 * asks): CRC32C, checked against the header (a mismatch is an error); the
 * balancer's UNIQUE_ID; SSL, to learn whether the balancer ended the
 * client's TLS itself, and its VERSION; the cloud endpoint a client came
 * through (AWS's VPC endpoint id, Azure's Private Link id, Google Cloud's
 * Private Service Connect id). The first three at most once each.
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

/* The longest UNIQUE_ID the specification allows, and its text below. */
#define PROXYPROTO_ID_MAX 128

struct proxyproto_hdr {
        int version;    /* 1 or 2 */
        bool has_addrs; /* PROXY with TCP over IPv4 or IPv6: src and dst are set */
        struct sockaddr_storage src, dst; /* the client, and where it connected */
        /* Version 2 TLVs. The strings are "" when absent and safe to log as
         * they are: the value itself when every byte is a letter, a digit
         * or one of "-._:/+=@", else "0x" and its bytes in hex. */
        bool crc32c;          /* a CRC32C TLV was there, and matched */
        bool balancer_tls;    /* SSL with PP2_CLIENT_SSL: the balancer ended TLS */
        char tls_version[32]; /* its SSL_VERSION ("TLSv1.3"), cut to fit */
        char unique_id[2 * PROXYPROTO_ID_MAX + 3];
        char endpoint[2 * 64 + 16]; /* "aws:vpce-...", "azure:N", "gcp:N" */
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
