/*
 * tlshello: which server certificates a TLS client can take, ECDSA or RSA,
 * and the host name it asks for (SNI), read from its ClientHello before the
 * TLS library sees it. Pure: no I/O, no allocation; any bytes are safe.
 *
 * wolfSSL holds one certificate per context and chooses nothing; lib/tls.c
 * reads the ClientHello with tlshello_read() and only then makes the
 * session, from the context with the certificate the client can take and
 * that names the host it asks for. Whether it can take an ECDSA one is
 * decided as OpenSSL decides between two certificates (nginx, Postfix):
 *
 * - A client that offers TLS 1.3 (supported_versions lists 0x0304) takes the
 *   ECDSA certificate when its signature_algorithms list the ECDSA scheme of
 *   the certificate's curve (ecdsa_secp256r1_sha256 for P-256,
 *   ecdsa_secp384r1_sha384 for P-384, ecdsa_secp521r1_sha512 for P-521).
 * - A TLS 1.2 client takes it when it offers an ECDHE-ECDSA suite that
 *   mailward allows (AES-GCM or ChaCha20-Poly1305), its signature_algorithms,
 *   if it sends them, name some hash with ECDSA, and its supported_groups, if
 *   it sends them, name the certificate's curve (RFC 8422 section 5.1).
 * - Otherwise it takes only an RSA certificate.
 *
 * The host name is the first host_name of its server_name extension (RFC
 * 6066 section 3) when tlshello_host_name() takes it. Anything else is no
 * name: an IP address (RFC 6066 allows none, but some clients send one), a
 * wildcard, blanks or other bytes.
 *
 * The ClientHello may span several records (up to TLSHELLO_MAX bytes of
 * handshake message); bytes after it are not looked at. One that is not
 * whole within the first TLSHELLO_INPUT_MAX bytes (many small records) is
 * BAD: the caller buffers the bytes until the decision, and a peer must
 * not make it hold more than a ClientHello's worth.
 */
#ifndef MAILWARD_TLSHELLO_H
#define MAILWARD_TLSHELLO_H

#include <stdbool.h>
#include <stddef.h>

/* Longest ClientHello read (its handshake body); a longer one is BAD. */
#define TLSHELLO_MAX 16384
/* Most input read for it, record headers included. */
#define TLSHELLO_INPUT_MAX (2 * TLSHELLO_MAX)

/* The ECDSA certificate's curve, as TLS names groups (RFC 8446 4.2.7). */
#define TLSHELLO_P256 23
#define TLSHELLO_P384 24
#define TLSHELLO_P521 25

/* The longest host name read (RFC 1035's 253 in text). */
#define TLSHELLO_NAME_MAX 253

/* What a whole ClientHello says (tlshello_read()). */
struct tlshello {
        /* It can take an ECDSA certificate on P-256, P-384, P-521. */
        bool ecdsa[3];
        /* The host name asked for (SNI); "" if none. */
        char sni[TLSHELLO_NAME_MAX + 1];
};

enum tlshello_result {
        TLSHELLO_READ_MORE, /* a ClientHello so far, not all of it: feed more */
        TLSHELLO_READ_OK,   /* read: *h is filled */
        TLSHELLO_READ_BAD,  /* as TLSHELLO_BAD below */
};

/* p, n: the bytes the client sent so far, from the first. */
enum tlshello_result tlshello_read(const unsigned char *p, size_t n, struct tlshello *h);

/*
 * A host name as a ClientHello can ask for one, into out (room for
 * TLSHELLO_NAME_MAX + 1 bytes): p, n less one trailing dot, in lower case
 * (ASCII), when that is dot-separated labels of letters, digits, '-' and '_',
 * none empty, up to TLSHELLO_NAME_MAX bytes, with a letter somewhere (so
 * not an IPv4 address, which RFC 6066 allows no client to send). False
 * otherwise, with out undefined. Also for a certificate's own names
 * (lib/tls.c).
 */
bool tlshello_host_name(const char *p, size_t n, char *out);

/* Can the client take an ECDSA certificate on the curve group (TLSHELLO_P256...)? */
bool tlshello_takes_ecdsa(const struct tlshello *h, unsigned group);

/*
 * The same for one ECDSA certificate on ecdsa_group against an RSA one, in
 * one word: the unit tests' and the fuzzer's question.
 */
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

enum tlshello_pick tlshello_pick(const unsigned char *p, size_t n, unsigned ecdsa_group);

const char *tlshello_pick_str(enum tlshello_pick pick);

#endif
