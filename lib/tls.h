/*
 * tls: wolfSSL driven sans-I/O. The only module that includes wolfSSL headers.
 *
 * A struct tls never touches a socket: ciphertext from the network goes in with
 * tls_feed(), ciphertext to send comes out of tls_output() (a buf the caller
 * drains and consumes). After every call that can produce output (handshake,
 * read, write, shutdown) the caller must flush tls_output().
 *
 * Policy (invariant 7): TLS 1.2 and 1.3 only; TLS 1.2 suites are ECDHE with
 * AES-GCM or ChaCha20-Poly1305; TLS 1.3 suites are its AEADs; key exchange
 * groups are X25519, P-256, P-384 and, for TLS 1.3 peers that insist on them,
 * ffdhe2048/ffdhe3072; no static RSA, no CBC, no RC4, no DH group under 2048
 * bits, no renegotiation, no compression.
 *
 * Ownership: a tls_ctx holds certificates and policy and is shared read-only
 * by all struct tls made from it. Each struct tls holds a reference to its
 * ctx: the owner may free the ctx (to replace it, on a reload) while
 * sessions made from it go on, and it goes with the last of them. Errors: functions
 * return an enum tls_result; tls_error() says why in words for the log. Nothing here
 * logs.
 */
#ifndef MAILWARD_TLS_H
#define MAILWARD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct tls_ctx;
struct tls;

enum tls_role {
        TLS_ROLE_SERVER,
        TLS_ROLE_CLIENT,
};

enum tls_result {
        TLS_OK,     /* done (handshake complete, bytes read or written) */
        TLS_WANT,   /* needs more input from the peer: feed and call again */
        TLS_CLOSED, /* the peer sent close_notify */
        TLS_ERROR,  /* fatal; see tls_error() */
};

/* Most certificates a server context serves. */
#define TLS_MAX_CERTS 16

struct tls_ctx_conf {
        /*
         * PEM chains and their keys, pairwise, up to the first NULL. Server
         * role: one at least. With several, each must have an ECDSA key (on
         * P-256, P-384 or P-521) or an RSA key, and each session gets the one
         * its ClientHello asks for (tls_new()). Client role: none, or one to
         * show a server that asks for a certificate.
         */
        const char *cert_file[TLS_MAX_CERTS];
        const char *key_file[TLS_MAX_CERTS];
        const char *ca_file; /* client role: trust anchors (NULL: none loaded) */
        bool verify_peer;    /* client role: fail the handshake on a bad chain */
        /*
         * Client role: check the chain against ca_file (none loaded if NULL) but
         * never fail the handshake because of the certificate; record the outcome
         * for tls_peer_info() instead. verify_peer wins if both are set. No name
         * check either way here: the caller judges tls_peer_info()'s names.
         */
        bool verify_record;
};

/* The wolfSSL version running, and how it was built (for mailward -V). */
const char *tls_library_version(void);
const char *tls_library_build(void);

/*
 * Call once before anything else (wolfSSL_Init), and before forking the
 * processes that serve: the session ticket keys it maps are shared by every
 * process forked after it, so a ticket sealed by one opens in all. 0 or -1.
 */
int tls_global_init(void);
void tls_global_cleanup(void);
/*
 * Session ticket keys: whether they are shared by the processes forked
 * after tls_global_init() (false: it could not map their page, and each
 * process has wolfSSL's own). A key seals tickets for an hour, then opens
 * them for an hour more; then it is wiped. tls_ticket_expire(): wipe what
 * has served its time now (call it every minute, in every process that
 * serves). tls_ticket_rotate(): a new key now, the one before kept (tests).
 */
bool tls_tickets_shared(void);
void tls_ticket_expire(void);
void tls_ticket_rotate(void);
/* Tests: the clock of the ticket keys runs this many seconds further on. */
void tls_ticket_advance(int64_t seconds);

/*
 * Load certificates and set the policy above. NULL on error, with a message
 * naming the file and the reason in err.
 */
struct tls_ctx *tls_ctx_new(enum tls_role role, const struct tls_ctx_conf *conf,
                            char *err, size_t errlen);
/* One of a context's certificates (tls_ctx_cert()); valid while the context is. */
struct tls_cert_desc {
        int64_t not_after;    /* when it expires, seconds since the epoch; 0: unknown */
        const char *key_type; /* "ecdsa", "rsa" or "other" */
        const char *file;     /* its cert_file */
        /*
         * The host names a ClientHello can ask for that it names: its
         * subjectAltName dNSNames or, if none, its CN, lower case, no
         * trailing dot; wildcards ("*.example.net") as they are.
         */
        const char *const *names;
        size_t nnames;
};

/*
 * The i-th certificate the context serves (server role, in cert_file's
 * order) or shows (client role with a cert_file: 0): false if there is none
 * (or ctx is NULL).
 */
bool tls_ctx_cert(const struct tls_ctx *ctx, unsigned i, struct tls_cert_desc *out);

/* Drop the owner's reference: freed now, or when the last tls made from it is. */
void tls_ctx_free(struct tls_ctx *ctx);

/*
 * servername: client role, for SNI and name checks (may be NULL). A server
 * context with several certificates makes the session's wolfSSL object only
 * once the ClientHello is in: from the certificate the client can take
 * (tlshello.h), for the host name it asks for (its own name, then a wildcard
 * over it), ECDSA over RSA, the configuration's order last (tls_pick_cert()).
 */
struct tls *tls_new(struct tls_ctx *ctx, const char *servername);
void tls_free(struct tls *t);

/* Queue ciphertext received from the peer. */
void tls_feed(struct tls *t, const void *p, size_t n);
/*
 * Lend ciphertext instead of copying it in: the calls that follow read from
 * p until tls_lend_end(), which copies what wolfSSL has not taken (a partial
 * record) as tls_feed() would. p must stay valid and unchanged until then.
 */
void tls_lend(struct tls *t, const void *p, size_t n);
void tls_lend_end(struct tls *t);
/* Bytes fed (or lent) but not yet taken by wolfSSL. */
size_t tls_input_pending(const struct tls *t);
/* Ciphertext waiting to be sent; the caller writes it out and consumes it. */
struct buf *tls_output(struct tls *t);

enum tls_result tls_handshake(struct tls *t);
bool tls_handshake_done(const struct tls *t);
/*
 * Give the kernel back the memory that an established session holds only as
 * zeros (madvise; the pages of its WOLFSSL_SESSION that nothing filled). For
 * a session that stays open: conn calls it a second after the handshake.
 * Does nothing before the handshake is done.
 */
void tls_release_idle(struct tls *t);

/*
 * Decrypt into p (room for n bytes); *got is set on TLS_OK. TLS_WANT when
 * no whole record is buffered. Loop until TLS_WANT: wolfSSL may hold more
 * plaintext than one call returns.
 */
enum tls_result tls_read(struct tls *t, void *p, size_t n, size_t *got);
/* Encrypt all n bytes into tls_output(). TLS_OK or TLS_ERROR. */
enum tls_result tls_write(struct tls *t, const void *p, size_t n);
/* Queue close_notify into tls_output(). */
void tls_shutdown(struct tls *t);

/*
 * Server role: the key type of the certificate this session serves
 * ("ecdsa", "rsa" or "other"); with several certificates, NULL until its
 * ClientHello is read. NULL for the client role. *chosen (may be NULL):
 * whether there were several to choose from.
 */
const char *tls_served_key(const struct tls *t, bool *chosen);
/* After the handshake: whether it resumed an earlier session (a ticket). */
bool tls_resumed(const struct tls *t);
/* The same certificate's file (its cert_file); NULL where tls_served_key() is. */
const char *tls_served_cert(const struct tls *t);
/*
 * Server role with several certificates: the host name the ClientHello
 * asked for (tlshello.h), once read; NULL if it asked for none (or for
 * something that is no host name), or before.
 */
const char *tls_sni(const struct tls *t);

/* After the handshake: "TLSv1.3", "TLS_AES_128_GCM_SHA256", key bits. */
const char *tls_version(const struct tls *t);
const char *tls_cipher(const struct tls *t);
int tls_cipher_bits(const struct tls *t);
/*
 * The peer's certificate as the handshake saw it. Names and reason are
 * NUL-terminated; names hold only printable ASCII without spaces (a name with
 * any other byte, an embedded NUL included, or longer than 255 bytes is left
 * out). Every name is kept up to TLS_PEER_NAMES of them or TLS_PEER_NAME_BYTES
 * of text, whichever comes first: a provider's certificate may list dozens of
 * hosts, and the one a policy allows may be any of them. Read them with
 * tls_peer_name(). Client role: the leaf is the first certificate the server
 * sent in this handshake, whatever its size (wolfSSL's own copy of the chain
 * leaves out certificates of 2 KB or more).
 */
#define TLS_PEER_NAMES      256  /* certificate names kept at most */
#define TLS_PEER_NAME_BYTES 8192 /* their text at most, each with its NUL */

struct tls_peer {
        bool has_cert;           /* the server sent a certificate */
        bool chain_trusted;      /* chain verifies to a loaded trust anchor (and none
                                    of it is expired: expired implies !chain_trusted) */
        bool expired;            /* a certificate of the chain is outside its validity */
        int verify_error;        /* wolfSSL's first verification error, 0 if none */
        char verify_reason[128]; /* its words and the chain depth; "" if none */
        unsigned nnames; /* subjectAltName dNSNames, or the CN if there are none */
        uint16_t name_at[TLS_PEER_NAMES];    /* where each starts in name_text */
        char name_text[TLS_PEER_NAME_BYTES]; /* the names, NUL-terminated */
        char sha256[65]; /* hex SHA-256 of the leaf certificate's DER; "" if none */
};

/*
 * Fill in *out after the handshake: 0. -1 if the handshake has not completed
 * (out is still filled in with what is known, chain_trusted false). For a
 * verify_peer context chain_trusted is true once the handshake succeeded; for
 * a verify_record one it says what the check found; with neither (no
 * verification) it is false.
 */
int tls_peer_info(const struct tls *t, struct tls_peer *out);
/* The peer's name i (i < p->nnames), NUL-terminated; "" past the last. */
const char *tls_peer_name(const struct tls_peer *p, unsigned i);

/* Why the last call failed, for a log line ("" if it did not). */
const char *tls_error(const struct tls *t);

/*
 * DANE for SMTP (RFC 6698, RFC 7671, RFC 7672): does the chain a server sent
 * match its TLSA records? Only the match is decided here; which records to
 * trust (DNSSEC), the names to check and what to do on failure are the
 * caller's. Records and certificates are only read, never kept.
 *
 * - Only DANE-TA(2) and DANE-EE(3) records are usable (RFC 7672 section
 *   3.1.3); selectors 0 and 1, matching types 0, 1 and 2, with data of the
 *   right length (32 bytes for SHA-256, 64 for SHA-512, at least 1 for 0).
 * - DANE-EE(3) matches the leaf only (depth 0), and nothing else is checked:
 *   no name, no date, no chain (RFC 7672 section 3.1.1). It wins over DANE-TA.
 * - DANE-TA(2) matches a certificate the server sent at depth 1 or more, never
 *   the leaf, even a self-issued one: a trust anchor issues the certificates
 *   below it, and a server that pins its own certificate says so with 3 0 x
 *   (OpenSSL's DANE code, used by Postfix and Exim, decides the same). The TA
 *   must be in the chain sent (RFC 7672 section 3.1.2 requires servers to
 *   send it), not just its key in DNS. Then each certificate from the TA down
 *   must have issued the next one down as sent (signature checked), must be
 *   a CA (basicConstraints cA; keyCertSign if it has keyUsage; its path length
 *   constraint kept), and every certificate from the TA to the leaf, the TA
 *   included, must be within its validity dates (as OpenSSL checks a TA taken
 *   from the chain). Name constraints: wolfSSL checks a CA's over the
 *   certificate it issued directly. The leaf's names are the caller's to check
 *   (tls_peer_info()).
 */

/* One TLSA record (RFC 6698): certificate usage, selector, matching type, data. */
struct tls_tlsa {
        unsigned char usage;    /* 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE */
        unsigned char selector; /* 0 the whole certificate, 1 its SubjectPublicKeyInfo */
        unsigned char mtype;    /* 0 the data itself, 1 SHA-256, 2 SHA-512 */
        const unsigned char *data;
        size_t len;
};

enum tls_dane_result {
        /*
         * No record is usable: usages 0 and 1 (RFC 7672 section 3.1.3: SMTP
         * clients treat them as unusable), an unknown selector or matching
         * type, a digest of the wrong length, no data; also no record at all.
         * Decided before the chain is looked at.
         */
        TLS_DANE_UNUSABLE,
        /* Usable records, and none matches the chain; or no chain at all. */
        TLS_DANE_NO_MATCH,
        /* A DANE-EE(3) record matched the leaf: nothing else to check. */
        TLS_DANE_MATCH_EE,
        /*
         * A DANE-TA(2) record matched a certificate at depth 1 or more and the
         * chain below it verifies (see above). The caller still checks the
         * leaf's names against its reference identifiers.
         */
        TLS_DANE_MATCH_TA,
};

/* Whether record r can be used for SMTP at all (TLS_DANE_UNUSABLE's rules). */
bool tls_dane_record_usable(const struct tls_tlsa *r);

/*
 * Match a chain given as DER certificates, leaf first (der[0], derlen[0]), as
 * the server sent it, against nrecs records (recs may be NULL if nrecs is 0).
 * Pure apart from wolfCrypt and the clock; for tests and for tls_dane_match().
 * Any bytes are safe: a certificate that does not parse matches nothing
 * (except a selector 0 record for exactly those bytes).
 *
 * why (may be NULL; whylen bytes, always NUL-terminated, cut short if need
 * be) gets words for a log line: on a match which record matched which depth
 * ("2 1 1 matched the certificate at depth 1; chain verified", "3 1 1 matched
 * the certificate at depth 0"); otherwise what each record came to, in order,
 * separated by "; " ("3 1 1: no match; 2 0 1: chain below depth 1 does not
 * verify: certificate at depth 0: <wolfSSL's reason> (code); 1 1 1:
 * unusable: PKIX-EE(1), not for SMTP").
 */
enum tls_dane_result tls_dane_match_chain(const unsigned char *const *der,
                                          const size_t *derlen, size_t nder,
                                          const struct tls_tlsa *recs, size_t nrecs,
                                          char *why, size_t whylen);

/*
 * After the handshake (client role): tls_dane_match_chain() over the chain
 * the server sent in this handshake, exactly as sent (see tls_peer_info()).
 * Before the handshake is done, or for a session that saw no certificate, it
 * is matched as an empty chain (TLS_DANE_NO_MATCH, or TLS_DANE_UNUSABLE if no
 * record is usable) and why says so.
 */
enum tls_dane_result tls_dane_match(const struct tls *t, const struct tls_tlsa *recs,
                                    size_t nrecs, char *why, size_t whylen);

#endif
