/*
 * tlshello: which of two server certificates, ECDSA or RSA, a TLS client can
 * take, read from its ClientHello before the TLS library sees it. Pure: no
 * I/O, no allocation; any bytes are safe.
 *
 * wolfSSL holds one certificate per context and chooses nothing; lib/tls.c
 * reads the ClientHello with tlshello_pick() and only then makes the
 * session, from the context with the certificate the client can take. The
 * choice is the one OpenSSL makes with two certificates (nginx, Postfix):
 *
 * - A client that offers TLS 1.3 (supported_versions lists 0x0304) takes the
 *   ECDSA certificate when its signature_algorithms list the ECDSA scheme of
 *   the certificate's curve (ecdsa_secp256r1_sha256 for P-256,
 *   ecdsa_secp384r1_sha384 for P-384, ecdsa_secp521r1_sha512 for P-521).
 * - A TLS 1.2 client takes it when it offers an ECDHE-ECDSA suite that
 *   mailward allows (AES-GCM or ChaCha20-Poly1305), its signature_algorithms,
 *   if it sends them, name some hash with ECDSA, and its supported_groups, if
 *   it sends them, name the certificate's curve (RFC 8422 section 5.1).
 * - Otherwise the RSA certificate.
 *
 * The ClientHello may span several records (up to TLSHELLO_MAX bytes of
 * handshake message); bytes after it are not looked at. One that is not
 * whole within the first TLSHELLO_INPUT_MAX bytes (many small records) is
 * BAD: the caller buffers the bytes until the decision, and a peer must
 * not make it hold more than a ClientHello's worth.
 */
#ifndef MAILWARD_TLSHELLO_H
#define MAILWARD_TLSHELLO_H

#include <stddef.h>

/* Longest ClientHello read (its handshake body); a longer one is BAD. */
#define TLSHELLO_MAX 16384
/* Most input read for it, record headers included. */
#define TLSHELLO_INPUT_MAX (2 * TLSHELLO_MAX)

/* The ECDSA certificate's curve, as TLS names groups (RFC 8446 4.2.7). */
#define TLSHELLO_P256 23
#define TLSHELLO_P384 24
#define TLSHELLO_P521 25

enum tlshello_pick {
        TLSHELLO_MORE,  /* a ClientHello so far, not all of it: feed more */
        TLSHELLO_ECDSA, /* the client can take the ECDSA certificate */
        TLSHELLO_RSA,   /* it cannot */
        /*
         * Not a ClientHello that can be read (another record type, a bad
         * length, too long): nothing to choose by. The TLS library sees the
         * same bytes and refuses them, or not, on its own.
         */
        TLSHELLO_BAD,
};

/* p, n: the bytes the client sent so far, from the first. */
enum tlshello_pick tlshello_pick(const unsigned char *p, size_t n, unsigned ecdsa_group);

const char *tlshello_pick_str(enum tlshello_pick pick);

#endif
