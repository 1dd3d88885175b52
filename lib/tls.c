/*
 * tls: wolfSSL over two memory buffers. See tls.h for the contract.
 *
 * wolfSSL never sees a socket: its receive callback takes bytes from t->in
 * (filled by tls_feed) and says WANT_READ when that is empty; its send
 * callback appends to t->out, which the caller drains. Every wolfSSL call is
 * therefore non-blocking and every outcome is one of TLS_OK, TLS_WANT,
 * TLS_CLOSED or TLS_ERROR.
 */
#include "tls.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include <arpa/inet.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls_suites.h"
#include "tlshello.h"
#include "util.h"

/*
 * What this file needs of wolfSSL's build; Debian's has it all, and so does
 * scripts/build-wolfssl's lean build. The peer's chain (tls_peer_info()); the
 * verify callback for every certificate, bad or good (verify_record decides
 * on what it saw); the certificate parser's API (tls_cert_parse()).
 */
#if !defined(SESSION_CERTS) || !defined(WOLFSSL_ALWAYS_VERIFY_CB) ||                     \
    !defined(WOLFSSL_VERIFY_CB_ALL_CERTS)
#error                                                                                   \
    "wolfSSL needs SESSION_CERTS, WOLFSSL_ALWAYS_VERIFY_CB and WOLFSSL_VERIFY_CB_ALL_CERTS"
#endif
#if !defined(OPENSSL_EXTRA) && !defined(OPENSSL_EXTRA_X509_SMALL) &&                     \
    !defined(WOLFSSL_PUBLIC_ASN)
#error "wolfSSL needs OPENSSL_EXTRA or WOLFSSL_PUBLIC_ASN (its certificate parser's API)"
#endif
/* DANE's matching type 2 (tls_dane_match_chain()). */
#if !defined(WOLFSSL_SHA512) || defined(NO_SHA256)
#error "wolfSSL needs SHA-256 and SHA-512 (DANE matching types 1 and 2)"
#endif

#define TLS_CTX_MAGIC 0x746c7363u /* "tlsc" */
#define TLS_MAGIC     0x746c7373u /* "tlss" */

/* Largest key file read for the key/certificate check, and largest public key. */
#define TLS_KEY_FILE_MAX  (64 * 1024)
#define TLS_CERT_FILE_MAX (1024 * 1024) /* a chain, read for its first certificate */
#define TLS_SPKI_MAX      4096
/* Most certificates of a peer's chain looked at (wolfSSL takes 9 at most). */
#define TLS_CHAIN_MAX 16

/* Invariant 7: lib/tls_suites.h. */
static const char tls_cipher_list[] = TLS_SUITES_CIPHERS;
#if defined(OPENSSL_EXTRA)
static const char tls_curve_list[] = TLS_SUITES_CURVES;
#endif
static const int tls_groups[] = {TLS_SUITES_GROUPS};

/* One of our own certificates (tls_cert_pem_info()). */
struct tls_cert_info {
        int64_t not_after;    /* when it expires; 0: unknown */
        const char *key_type; /* "ecdsa", "rsa" or "other" */
        unsigned group;       /* ECDSA: its curve (TLSHELLO_P256...); 0 otherwise */
        char *file;           /* the PEM file, as configured */
        /* SHA-256 of its DER: what its session tickets are sealed for. */
        unsigned char ticket_label[WC_SHA256_DIGEST_SIZE];
        bool have_label;
        /*
         * The host names it is for (tls_dc_names()), lower case, no trailing
         * dot; only those a ClientHello can ask for (tls_own_name()).
         */
        char **names;
        size_t nnames;
        /*
         * Server role: it is the first certificate, or has a name the first
         * has (the same host's certificate with another key): the ones a
         * client that asks for no name, or for none of theirs, gets.
         */
        bool first_host;
        WOLFSSL_CTX *wctx; /* server role: the context that serves it */
};

struct tls_ctx {
        unsigned magic;
        enum tls_role role;
        bool verify_peer;
        bool verify_record; /* and not verify_peer */
        unsigned refs;      /* the owner's, and one per struct tls made from it */
        /*
         * The certificates, in the order the configuration gives them. Server
         * role: each with its own wolfSSL context; with more than one, each
         * session is made from the context of the one its ClientHello asks
         * for (tls_hello_ssl()). Client role: the one shown, if any.
         */
        struct tls_cert_info cert[TLS_MAX_CERTS];
        unsigned ncert;
        WOLFSSL_CTX *wctx; /* client role */
};

/*
 * The chain a peer sent, leaf first, when wolfSSL's own copy of it is not
 * that chain (tls_keep_chain()): one block, der[i] pointing into data.
 */
struct tls_chain {
        size_t n;
        const unsigned char *der[TLS_CHAIN_MAX];
        size_t len[TLS_CHAIN_MAX];
        unsigned char data[];
};

struct tls {
        unsigned magic;
        struct tls_ctx *ctx;
        WOLFSSL *ssl;  /* NULL until the ClientHello is read, with several certificates */
        struct buf in; /* ciphertext fed, not yet taken by wolfSSL */
        const char *lent; /* ciphertext lent (tls_lend), after `in` */
        size_t lent_len;
        struct buf out; /* ciphertext wolfSSL produced, for the caller to send */
        bool done;      /* handshake complete */
        /* Server role: the certificate served; NULL until chosen. */
        const struct tls_cert_info *served;
        char *sni; /* the host name its ClientHello asked for, when read; or NULL */
        /* What tls_verify_cb() saw (client role, verify_peer or verify_record). */
        bool verify_ran;     /* it was called */
        bool verify_expired; /* some certificate was outside its validity */
        int verify_error;    /* the first error, 0 if none */
        int verify_depth;    /* and where in the chain (0: the leaf) */
        /* Client role: the verify callback saw the peer's leaf (tls_keep_chain()). */
        bool chain_seen;
        struct tls_chain *sent; /* the chain as sent; NULL: wolfSSL's copy is it */
        char err[160];
};

/*
 * Session ticket keys, one set for every process: tls_global_init() maps
 * the page they live in, shared, before the workers are forked. (wolfSSL's
 * own keys are made in each process at its first ticket, so a client that
 * came back to another worker got a full handshake.) A key seals tickets
 * for TLS_TICKET_KEY_LIFETIME, in [0], then opens them for as long again,
 * in [1]; then it is wiped. Whichever process seals first when [0] has
 * served its time makes the next key; tls_ticket_expire(), every minute,
 * wipes what has served its time even when nothing happens. The clock is
 * CLOCK_BOOTTIME, read with the lock held: no jumps, no going back. Each
 * certificate seals with its own key, derived from these and its label
 * (tls_ticket_cb()).
 */
#define TLS_TICKET_KEY_LIFETIME (60 * 60)
#define TLS_TICKET_NONCE_SZ     12 /* of WOLFSSL_TICKET_IV_SZ */
#define TLS_TICKET_TAG_SZ       16 /* of WOLFSSL_TICKET_MAC_SZ */

struct tls_ticket_key {
        int64_t born; /* when it was made (tls_ticket_now()); 0: none */
        unsigned char name[WOLFSSL_TICKET_NAME_SZ];
        unsigned char key[32];
};

struct tls_tickets {
        pthread_mutex_t lock; /* process-shared, robust */
        /*
         * The length of what wolfSSL hands over to seal (its own ticket
         * structure, always the same): a ticket to open must say it, as
         * wolfSSL 5.5.4 does not check the length a client's ticket gives
         * against the bytes it sent. 0 until the first ticket.
         */
        int sealed_len;
        struct tls_ticket_key key[2];
};

static struct tls_tickets *tls_tickets; /* NULL: wolfSSL's keys, per process */

static bool tls_random(void *p, size_t n)
{
        return getrandom(p, n, 0) == (ssize_t)n;
}

static int64_t tls_ticket_skew; /* tls_ticket_advance() */

/* Seconds since boot, from 1 (0 is "no key"). */
static int64_t tls_ticket_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (int64_t)ts.tv_sec + 1 + tls_ticket_skew;
}

void tls_ticket_advance(int64_t seconds)
{
        tls_ticket_skew += seconds;
}

static bool tls_ticket_lock(void)
{
        int r = pthread_mutex_lock(&tls_tickets->lock);

        /*
         * A process died holding it. Even a key it left half written seals
         * and opens alike in every process: go on. If the mutex cannot be
         * made whole (it never happens in practice), every call fails from
         * now on, and with it every handshake that seals a ticket: wolfSSL
         * 5.5.4 ends a handshake whose ticket cannot be sealed.
         */
        if (r == EOWNERDEAD && pthread_mutex_consistent(&tls_tickets->lock) != 0) {
                pthread_mutex_unlock(&tls_tickets->lock);
                return false;
        }
        return r == 0 || r == EOWNERDEAD;
}

/*
 * Wipe the keys that have served their time, two lifetimes after each was
 * made (sealing stops after one: tls_ticket_keys()); with the lock held.
 */
static void tls_ticket_age(int64_t now)
{
        for (int i = 0; i < 2; i++) {
                struct tls_ticket_key *k = &tls_tickets->key[i];

                if (k->born != 0 && now - k->born >= 2 * TLS_TICKET_KEY_LIFETIME)
                        explicit_bzero(k, sizeof(*k));
        }
}

/*
 * The keys (*out, 2 of them, born 0 where none), after wiping those that
 * served their time and, to seal, making a new one when [0] has served its
 * (or rotate). len (0: none): the length of the ticket to seal, kept, or to
 * open, which must be that one. False, with *out wiped, if that failed.
 */
static bool tls_ticket_keys(struct tls_ticket_key *out, int len, bool seal, bool rotate)
{
        struct tls_ticket_key *k;
        bool ok = true;
        int64_t now;

        if (!tls_ticket_lock())
                return false;
        if (len != 0 && seal)
                tls_tickets->sealed_len = len;
        if (len != 0 && len != tls_tickets->sealed_len) {
                pthread_mutex_unlock(&tls_tickets->lock);
                return false;
        }
        k = tls_tickets->key;
        now = tls_ticket_now();
        tls_ticket_age(now);
        if ((seal && (k[0].born == 0 || now - k[0].born >= TLS_TICKET_KEY_LIFETIME)) ||
            rotate) {
                struct tls_ticket_key fresh = {.born = now};

                ok = tls_random(fresh.name, sizeof(fresh.name)) &&
                     tls_random(fresh.key, sizeof(fresh.key));
                if (ok) {
                        k[1] = k[0];
                        k[0] = fresh;
                }
                explicit_bzero(&fresh, sizeof(fresh));
        }
        memcpy(out, k, sizeof(tls_tickets->key));
        pthread_mutex_unlock(&tls_tickets->lock);
        if (!ok)
                explicit_bzero(out, sizeof(tls_tickets->key));
        return ok;
}

void tls_ticket_rotate(void)
{
        struct tls_ticket_key k[2];

        if (tls_tickets != NULL)
                (void)tls_ticket_keys(k, 0, false, true);
        explicit_bzero(k, sizeof(k));
}

void tls_ticket_expire(void)
{
        if (tls_tickets == NULL || !tls_ticket_lock())
                return;
        tls_ticket_age(tls_ticket_now());
        pthread_mutex_unlock(&tls_tickets->lock);
}

/* The shared page, mapped before any fork. Without it, wolfSSL's own keys. */
static void tls_tickets_init(void)
{
        pthread_mutexattr_t attr;
        struct tls_tickets *t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        if (t == MAP_FAILED)
                return;
        /* Keys have no place in a core dump, nor in swap (where it can be). */
        (void)madvise(t, sizeof(*t), MADV_DONTDUMP);
        (void)mlock(t, sizeof(*t));
        memset(t, 0, sizeof(*t));
        if (pthread_mutexattr_init(&attr) != 0) {
                munmap(t, sizeof(*t));
                return;
        }
        if (pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) != 0 ||
            pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) != 0 ||
            pthread_mutex_init(&t->lock, &attr) != 0) {
                pthread_mutexattr_destroy(&attr);
                munmap(t, sizeof(*t));
                return;
        }
        pthread_mutexattr_destroy(&attr);
        tls_tickets = t;
}

bool tls_tickets_shared(void)
{
        return tls_tickets != NULL;
}

/*
 * wolfSSL's ticket callback for our server contexts (arg: the certificate's
 * tls_cert_info): AES-256-GCM under HMAC-SHA-256(key, the certificate's
 * label), so that a ticket opens only for the certificate it was sealed
 * for, in any process. The nonce is the first TLS_TICKET_NONCE_SZ bytes of
 * iv, the tag the first TLS_TICKET_TAG_SZ of mac; the rest of both is zero,
 * and the key's name, iv and length are authenticated. A ticket sealed
 * with the key before opens with RET_CREATE (wolfSSL 5.5.4 seals a new one
 * for TLS 1.3 only); one of another length (checked before anything past
 * it is read), with another key's name, or that does not open, is refused:
 * a full handshake.
 */
static int tls_ticket_cb(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                         unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                         unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc,
                         unsigned char *ticket, int len, int *outlen, void *arg)
{
        static const unsigned char zero[WOLFSSL_TICKET_MAC_SZ];
        const struct tls_cert_info *c = arg;
        unsigned char aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ + 2];
        unsigned char key[WC_SHA256_DIGEST_SIZE];
        struct tls_ticket_key k[2];
        int i = 0, ret = WOLFSSL_TICKET_RET_REJECT;
        Hmac hmac;
        Aes aes;

        (void)ssl;
        if (len <= 0 || len > 0xffff || !tls_ticket_keys(k, len, enc, false))
                return WOLFSSL_TICKET_RET_REJECT;
        if (enc) {
                memcpy(name, k[0].name, WOLFSSL_TICKET_NAME_SZ);
                memset(iv, 0, WOLFSSL_TICKET_IV_SZ);
                memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
                if (!tls_random(iv, TLS_TICKET_NONCE_SZ))
                        goto out;
        } else {
                while (i < 2 && (k[i].born == 0 ||
                                 memcmp(name, k[i].name, WOLFSSL_TICKET_NAME_SZ) != 0))
                        i++;
                if (i == 2 ||
                    memcmp(iv + TLS_TICKET_NONCE_SZ, zero,
                           WOLFSSL_TICKET_IV_SZ - TLS_TICKET_NONCE_SZ) != 0 ||
                    memcmp(mac + TLS_TICKET_TAG_SZ, zero,
                           WOLFSSL_TICKET_MAC_SZ - TLS_TICKET_TAG_SZ) != 0)
                        goto out;
        }
        if (wc_HmacInit(&hmac, NULL, INVALID_DEVID) != 0)
                goto out;
        if (wc_HmacSetKey(&hmac, WC_SHA256, k[i].key, sizeof(k[i].key)) != 0 ||
            wc_HmacUpdate(&hmac, c->ticket_label, sizeof(c->ticket_label)) != 0 ||
            wc_HmacFinal(&hmac, key) != 0) {
                wc_HmacFree(&hmac);
                explicit_bzero(&hmac, sizeof(hmac));
                goto out;
        }
        wc_HmacFree(&hmac);
        explicit_bzero(&hmac, sizeof(hmac)); /* its pads hold the key */
        memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
        memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
        aad[sizeof(aad) - 2] = (unsigned char)(len >> 8);
        aad[sizeof(aad) - 1] = (unsigned char)len;
        if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
                goto out;
        if (wc_AesGcmSetKey(&aes, key, sizeof(key)) == 0) {
                if (enc)
                        ret = wc_AesGcmEncrypt(&aes, ticket, ticket, (word32)len, iv,
                                               TLS_TICKET_NONCE_SZ, mac,
                                               TLS_TICKET_TAG_SZ, aad, sizeof(aad)) == 0
                                  ? WOLFSSL_TICKET_RET_OK
                                  : WOLFSSL_TICKET_RET_FATAL;
                else if (wc_AesGcmDecrypt(&aes, ticket, ticket, (word32)len, iv,
                                          TLS_TICKET_NONCE_SZ, mac, TLS_TICKET_TAG_SZ,
                                          aad, sizeof(aad)) == 0)
                        ret = i == 0 ? WOLFSSL_TICKET_RET_OK : WOLFSSL_TICKET_RET_CREATE;
        }
        wc_AesFree(&aes);
        explicit_bzero(&aes, sizeof(aes)); /* its key schedule */
        *outlen = len;
out:
        explicit_bzero(key, sizeof(key));
        explicit_bzero(k, sizeof(k));
        return ret;
}

int tls_global_init(void)
{
        if (wolfSSL_Init() != WOLFSSL_SUCCESS)
                return -1;
        tls_tickets_init();
        return 0;
}

void tls_global_cleanup(void)
{
        /* Not pthread_mutex_destroy(): the other processes still use it. */
        if (tls_tickets != NULL) {
                munmap(tls_tickets, sizeof(*tls_tickets));
                tls_tickets = NULL;
        }
        wolfSSL_Cleanup();
}

/* wolfSSL's receive callback: hand over what tls_feed() queued, then what
 * tls_lend() lent. */
static int tls_io_recv(WOLFSSL *ssl, char *p, int sz, void *arg)
{
        struct tls *t = arg;
        size_t want, n, done = 0;

        (void)ssl;
        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        if (sz < 0)
                return WOLFSSL_CBIO_ERR_GENERAL;
        want = (size_t)sz;
        if (buf_len(&t->in) > 0) {
                n = buf_len(&t->in) < want ? buf_len(&t->in) : want;
                memcpy(p, buf_data(&t->in), n);
                buf_consume(&t->in, n);
                buf_shrink(&t->in);
                done = n;
        }
        if (done < want && t->lent_len > 0) {
                n = t->lent_len < want - done ? t->lent_len : want - done;
                memcpy(p + done, t->lent, n);
                t->lent += n;
                t->lent_len -= n;
                done += n;
        }
        if (done == 0)
                return WOLFSSL_CBIO_ERR_WANT_READ;
        return (int)done;
}

/* wolfSSL's send callback: everything goes to the output buffer at once. */
static int tls_io_send(WOLFSSL *ssl, char *p, int sz, void *arg)
{
        struct tls *t = arg;

        (void)ssl;
        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        if (sz < 0)
                return WOLFSSL_CBIO_ERR_GENERAL;
        buf_append(&t->out, p, (size_t)sz);
        return sz;
}

/* Empty wolfSSL's error queue, which only some builds keep. */
static void tls_clear_errors(void)
{
#if defined(OPENSSL_EXTRA) || defined(DEBUG_WOLFSSL_VERBOSE)
        wolfSSL_ERR_clear_error();
#endif
}

/* "what: reason" for a wolfSSL error code. */
static void tls_errstr(char *out, size_t outlen, const char *what, int code)
{
        char reason[WOLFSSL_MAX_ERROR_SZ];

        wolfSSL_ERR_error_string_n((unsigned long)code, reason, sizeof(reason));
        snprintf(out, outlen, "%s: %s (%d)", what, reason, code);
}

/* Fail early with errno's words when a file cannot be read at all. */
static bool tls_file_readable(const char *kind, const char *path, char *err,
                              size_t errlen)
{
        FILE *f;

        if (path == NULL || *path == '\0') {
                snprintf(err, errlen, "no %s given", kind);
                return false;
        }
        f = fopen(path, "r");
        if (f == NULL) {
                snprintf(err, errlen, "%s %s: %s", kind, path, strerror(errno));
                return false;
        }
        fclose(f);
        return true;
}

static bool tls_ctx_policy(WOLFSSL_CTX *wctx, char *err, size_t errlen)
{
        int ret;

        if ((ret = wolfSSL_CTX_SetMinVersion(wctx, WOLFSSL_TLSV1_2)) != WOLFSSL_SUCCESS) {
                tls_errstr(err, errlen, "cannot set minimum TLS version", ret);
                return false;
        }
        if (wolfSSL_CTX_set_cipher_list(wctx, tls_cipher_list) != WOLFSSL_SUCCESS) {
                snprintf(err, errlen, "cannot set cipher list");
                return false;
        }
#if defined(OPENSSL_EXTRA)
        /* Debian's build has every curve: name ours, for TLS 1.2's ECDHE too. */
        if (wolfSSL_CTX_set1_curves_list(wctx, tls_curve_list) != WOLFSSL_SUCCESS) {
                snprintf(err, errlen, "cannot set ECC curves");
                return false;
        }
#elif !defined(ECC_USER_CURVES) || defined(HAVE_ECC192) || defined(HAVE_ECC224) ||       \
    defined(HAVE_ECC521) || defined(HAVE_ECC_BRAINPOOL) || defined(HAVE_ECC_KOBLITZ)
#error                                                                                   \
    "without OPENSSL_EXTRA, wolfSSL must be built with only the curves of TLS_SUITES_CURVES"
#endif
        ret = wolfSSL_CTX_set_groups(wctx, (int *)tls_groups,
                                     (int)UTIL_ARRAY_LEN(tls_groups));
        if (ret != WOLFSSL_SUCCESS) {
                tls_errstr(err, errlen, "cannot set key exchange groups", ret);
                return false;
        }
        if ((ret = wolfSSL_CTX_SetMinDhKey_Sz(wctx, 2048)) != WOLFSSL_SUCCESS ||
            (ret = wolfSSL_CTX_SetMinRsaKey_Sz(wctx, 2048)) != WOLFSSL_SUCCESS ||
            (ret = wolfSSL_CTX_SetMinEccKey_Sz(wctx, 256)) != WOLFSSL_SUCCESS) {
                tls_errstr(err, errlen, "cannot set minimum key sizes", ret);
                return false;
        }
#if defined(OPENSSL_EXTRA)
        /* wolfSSL's own default already; OpenSSL's defaults may say otherwise. */
        wolfSSL_CTX_set_options(wctx, WOLFSSL_OP_CIPHER_SERVER_PREFERENCE |
                                          WOLFSSL_OP_NO_COMPRESSION);
#endif
        return true;
}

/* Read a whole file of at most max bytes into b. */
static bool tls_read_file(const char *path, size_t max, struct buf *b)
{
        FILE *f = fopen(path, "rb");
        size_t n;
        bool ok;

        if (f == NULL)
                return false;
        do {
                n = fread(buf_reserve(b, 4096), 1, 4096, f);
                buf_unreserve(b, 4096 - n);
        } while (n == 4096 && buf_len(b) <= max);
        ok = !ferror(f) && buf_len(b) <= max;
        fclose(f);
        return ok;
}

/*
 * The key's public half as SubjectPublicKeyInfo DER, computed from the private
 * key (EC: the point is recomputed from the scalar). Length or -1.
 */
static int tls_key_spki(const char *key_file, int type, unsigned char *out, word32 outlen)
{
        struct buf pem;
        unsigned char *der;
        word32 idx = 0;
        int dersz, n = -1;
        ecc_key ecc;
        RsaKey rsa;

        buf_init(&pem);
        if (!tls_read_file(key_file, TLS_KEY_FILE_MAX, &pem) || buf_len(&pem) == 0) {
                buf_cleanup(&pem);
                return -1;
        }
        der = xmalloc(buf_len(&pem));
        dersz = wc_KeyPemToDer((const unsigned char *)buf_data(&pem), (int)buf_len(&pem),
                               der, (int)buf_len(&pem), NULL);
        if (dersz > 0 && wc_GetPkcs8TraditionalOffset(der, &idx, (word32)dersz) < 0)
                idx = 0;
        if (dersz > 0 && type == ECDSAk && wc_ecc_init(&ecc) == 0) {
                if (wc_EccPrivateKeyDecode(der, &idx, &ecc, (word32)dersz) == 0 &&
                    wc_ecc_make_pub(&ecc, NULL) == 0)
                        n = wc_EccPublicKeyToDer(&ecc, out, outlen, 1);
                wc_ecc_free(&ecc);
        } else if (dersz > 0 && type == RSAk && wc_InitRsaKey(&rsa, NULL) == 0) {
                if (wc_RsaPrivateKeyDecode(der, &idx, &rsa, (word32)dersz) == 0)
                        n = wc_RsaKeyToPublicDer(&rsa, out, outlen);
                wc_FreeRsaKey(&rsa);
        }
        /* Leave no copy of the private key behind. */
        explicit_bzero(der, buf_len(&pem));
        free(der);
        explicit_bzero((char *)buf_data(&pem), buf_len(&pem));
        buf_cleanup(&pem);
        return n > 0 ? n : -1;
}

/*
 * wolfSSL_CTX_check_private_key() in wolfSSL 5.5.4 passes any EC key on the
 * certificate's curve: it never checks that the private scalar gives the
 * certificate's public point. So for EC and RSA keys compare the public key
 * computed from the key file with the certificate's; other key types keep
 * wolfSSL's check alone. The certificate is the file's first, as wolfSSL
 * loaded it (wolfSSL_CTX_get0_certificate() needs OPENSSL_EXTRA).
 */
static bool tls_key_matches_cert(WOLFSSL_CTX *wctx, const struct buf *pem,
                                 const char *key_file)
{
        WOLFSSL_X509 *cert;
        unsigned char cspki[TLS_SPKI_MAX], kspki[TLS_SPKI_MAX];
        int clen = (int)sizeof(cspki), klen, type;
        bool ok;

        if (wolfSSL_CTX_check_private_key(wctx) != WOLFSSL_SUCCESS)
                return false;
        cert =
            wolfSSL_X509_load_certificate_buffer((const unsigned char *)buf_data(pem),
                                                 (int)buf_len(pem), WOLFSSL_FILETYPE_PEM);
        if (cert == NULL)
                return false;
        type = wolfSSL_X509_get_pubkey_type(cert);
        if (type != ECDSAk && type != RSAk)
                ok = true;
        else if (wolfSSL_X509_get_pubkey_buffer(cert, cspki, &clen) != WOLFSSL_SUCCESS)
                ok = false;
        else {
                klen = tls_key_spki(key_file, type, kspki, sizeof(kspki));
                ok = klen == clen && memcmp(cspki, kspki, (size_t)klen) == 0;
        }
        wolfSSL_X509_free(cert);
        return ok;
}

static void tls_cert_pem_info(const char *path, const struct buf *pem,
                              struct tls_cert_info *out);

/*
 * Our own certificate chain and key: a server's, or a client's to show; and
 * what *info says of it. The chain file is read once: what wolfSSL loads is
 * what the key is checked against and what info describes (its ticket
 * label above all), even if the file is replaced meanwhile.
 */
static bool tls_ctx_own_cert(WOLFSSL_CTX *wctx, const char *cert_file,
                             const char *key_file, struct tls_cert_info *info, char *err,
                             size_t errlen)
{
        struct buf pem;
        bool ok = false;
        int ret;

        if (!tls_file_readable("certificate", cert_file, err, errlen) ||
            !tls_file_readable("key", key_file, err, errlen))
                return false;
        buf_init(&pem);
        if (!tls_read_file(cert_file, TLS_CERT_FILE_MAX, &pem)) {
                snprintf(err, errlen,
                         "certificate %s: cannot read it, or it is over %d KB", cert_file,
                         TLS_CERT_FILE_MAX / 1024);
                goto out;
        }
        ret = wolfSSL_CTX_use_certificate_chain_buffer_format(
            wctx, (const unsigned char *)buf_data(&pem), (long)buf_len(&pem),
            WOLFSSL_FILETYPE_PEM);
        if (ret != WOLFSSL_SUCCESS) {
                snprintf(err, errlen, "certificate %s: ", cert_file);
                tls_errstr(err + strlen(err), errlen - strlen(err), "cannot load", ret);
                goto out;
        }
        ret = wolfSSL_CTX_use_PrivateKey_file(wctx, key_file, WOLFSSL_FILETYPE_PEM);
        if (ret != WOLFSSL_SUCCESS) {
                snprintf(err, errlen, "key %s: ", key_file);
                tls_errstr(err + strlen(err), errlen - strlen(err), "cannot load", ret);
                goto out;
        }
        if (!tls_key_matches_cert(wctx, &pem, key_file)) {
                snprintf(err, errlen, "key %s does not match certificate %s", key_file,
                         cert_file);
                goto out;
        }
        tls_cert_pem_info(cert_file, &pem, info);
        ok = true;
out:
        buf_cleanup(&pem);
        return ok;
}

/*
 * A certificate parsed by wolfSSL's own parser (its ASN API, public with
 * OPENSSL_EXTRA or WOLFSSL_PUBLIC_ASN), not verified; NULL if it does not
 * parse. Free with tls_cert_free().
 */
static DecodedCert *tls_cert_parse(const unsigned char *der, int len)
{
        DecodedCert *dc = xmalloc(sizeof(*dc));

        InitDecodedCert(dc, der, (word32)len, NULL);
        if (ParseCert(dc, CERT_TYPE, NO_VERIFY, NULL) == 0)
                return dc;
        FreeDecodedCert(dc);
        free(dc);
        return NULL;
}

static void tls_cert_free(DecodedCert *dc)
{
        if (dc == NULL)
                return;
        FreeDecodedCert(dc);
        free(dc);
}

/*
 * wolfSSL keeps a certificate's subjectAltNames in the certificate's order
 * only with OPENSSL_EXTRA; otherwise its list runs backwards.
 */
#if defined(OPENSSL_EXTRA) && !defined(WOLFSSL_ALT_NAMES_NO_REV)
#define TLS_ALT_NAMES_REVERSED false
#else
#define TLS_ALT_NAMES_REVERSED true
#endif

/*
 * fn(name, len, arg) for each of a certificate's names: its subjectAltName
 * dNSNames or, if it has none, its last CN, in the certificate's order, as
 * wolfSSL's parser has them (with their lengths: a name with a NUL inside
 * is the caller's to refuse).
 */
static void tls_dc_names(const DecodedCert *dc, void (*fn)(const char *, int, void *),
                         void *arg)
{
        const DNS_entry **dns = NULL, *e;
        size_t i, n = 0;

        for (e = dc->altNames; e != NULL; e = e->next)
                n += e->type == ASN_DNS_TYPE;
        dns = n > 0 ? xcalloc(n, sizeof(*dns)) : NULL;
        i = 0;
        for (e = dc->altNames; e != NULL; e = e->next)
                if (e->type == ASN_DNS_TYPE)
                        dns[i++] = e;
        for (i = 0; i < n; i++) {
                e = dns[TLS_ALT_NAMES_REVERSED ? n - 1 - i : i];
                fn(e->name, e->len, arg);
        }
        if (n == 0 && dc->subjectCN != NULL)
                fn(dc->subjectCN, dc->subjectCNLen, arg);
        free(dns);
}

/*
 * One of our own certificate's names, kept if a ClientHello can ask for it
 * (tlshello_host_name(): lower case, no trailing dot) or for the names
 * under it: "*." and a host name of two labels at least ("*.example.net",
 * not "*.net").
 */
static void tls_own_name(const char *name, int len, void *arg)
{
        struct tls_cert_info *c = arg;
        char host[TLSHELLO_NAME_MAX + 1];
        size_t n = len > 0 ? (size_t)len : 0, skip = 0;

        if (n > 2 && name[0] == '*' && name[1] == '.')
                skip = 2;
        if (!tlshello_host_name(name + skip, n - skip, host) ||
            (skip > 0 && strchr(host, '.') == NULL) ||
            strlen(host) + skip > TLSHELLO_NAME_MAX)
                return;
        c->names = xrealloc(c->names, (c->nnames + 1) * sizeof(*c->names));
        c->names[c->nnames] = xmalloc(skip + strlen(host) + 1);
        snprintf(c->names[c->nnames++], skip + strlen(host) + 1, "%s%s", skip ? "*." : "",
                 host);
}

/*
 * The first certificate of a PEM chain (path's, as wolfSSL loaded it): when
 * it expires, in seconds since the epoch (0 if that cannot be read), its
 * key type, for ECDSA its curve, the names it is for and its ticket label.
 */
static void tls_cert_pem_info(const char *path, const struct buf *pem,
                              struct tls_cert_info *out)
{
        const unsigned char *date;
        unsigned char *der;
        DecodedCert *dc = NULL;
        struct tm tm;
        byte format;
        int dersz, len;

        *out = (struct tls_cert_info){.key_type = "other", .file = xstrdup(path)};
        if (buf_len(pem) == 0)
                return;
        der = xmalloc(buf_len(pem));
        dersz = wc_CertPemToDer((const unsigned char *)buf_data(pem), (int)buf_len(pem),
                                der, (int)buf_len(pem), CERT_TYPE);
        if (dersz > 0) {
                dc = tls_cert_parse(der, dersz);
                out->have_label =
                    wc_Sha256Hash(der, (word32)dersz, out->ticket_label) == 0;
        }
        memset(&tm, 0, sizeof(tm));
        if (dc != NULL &&
            wc_GetDateInfo(dc->afterDate, dc->afterDateLen, &date, &format, &len) == 0 &&
            wc_GetDateAsCalendarTime(date, len, format, &tm) == 0)
                out->not_after = (int64_t)timegm(&tm);
        if (dc != NULL && dc->keyOID == RSAk)
                out->key_type = "rsa";
        if (dc != NULL && dc->keyOID == ECDSAk) {
                out->key_type = "ecdsa";
                out->group = dc->pkCurveOID == ECC_SECP256R1_OID   ? TLSHELLO_P256
                             : dc->pkCurveOID == ECC_SECP384R1_OID ? TLSHELLO_P384
                             : dc->pkCurveOID == ECC_SECP521R1_OID ? TLSHELLO_P521
                                                                   : 0;
        }
        if (dc != NULL)
                tls_dc_names(dc, tls_own_name, out);
        tls_cert_free(dc);
        free(der);
}

/*
 * True if the certificate the verify callback is at names itself as its
 * issuer. wolfSSL says so (ASN_SELF_SIGNED_E) only with OPENSSL_ALL; other
 * builds say ASN_NO_SIGNER_E, which is true but tells an administrator less.
 */
static bool tls_store_self_signed(const WOLFSSL_X509_STORE_CTX *store)
{
        const WOLFSSL_BUFFER_INFO *b;
        DecodedCert *dc;
        bool self;

        if (store->certs == NULL || store->error_depth < 0 ||
            store->error_depth >= store->totalCerts)
                return false;
        b = &store->certs[store->error_depth];
        dc = tls_cert_parse(b->buffer, (int)b->length);
        self = dc != NULL && dc->selfSigned;
        tls_cert_free(dc);
        return self;
}

/*
 * With OPENSSL_EXTRA, wolfSSL 5.5.4 hands the verify callback OpenSSL's
 * X509_V_ERR_* code for the certificate errors it can translate (seen: 18
 * for ASN_SELF_SIGNED_E, 14 for ASN_AFTER_DATE_E, 20 for ASN_NO_SIGNER_E) and
 * its own negative code for the rest (DOMAIN_NAME_MISMATCH, -322). Map back
 * to wolfSSL's codes, as tls_error() shows them; the signature errors all
 * become ASN_SIG_CONFIRM_E. An unknown X509_V_ERR_* value is kept as it is.
 * Without OPENSSL_EXTRA the codes are wolfSSL's already.
 */
static int tls_verify_code(int code)
{
        switch (code) {
#if defined(OPENSSL_EXTRA)
        case X509_V_ERR_CERT_NOT_YET_VALID:
        case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
                return ASN_BEFORE_DATE_E;
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
                return ASN_AFTER_DATE_E;
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
                return ASN_SELF_SIGNED_E;
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
                return ASN_NO_SIGNER_E;
        case X509_V_ERR_CERT_SIGNATURE_FAILURE:
                return ASN_SIG_CONFIRM_E;
        case X509_V_ERR_PATH_LENGTH_EXCEEDED:
                return ASN_PATHLEN_INV_E;
        case X509_V_ERR_CERT_REVOKED:
                return CRL_CERT_REVOKED;
#endif
        case 0: /* a failure without a code: never record it as "no error" */
                return VERIFY_CERT_ERROR;
        default:
                return code;
        }
}

/*
 * Make sure the peer's chain as tls_peer_certs() gives it is the chain it sent.
 * wolfSSL 5.5.4 keeps a copy for wolfSSL_get_peer_chain() in fixed slots
 * (SESSION_CERTS): a certificate of 2048 bytes or more (MAX_X509_SIZE), or
 * past the 9th, is left out without a word and the next one moves up. Its
 * first certificate is then not the one whose key the peer proved it holds:
 * a server with a trusted certificate of its own over 2 KB, followed by a copy
 * of another server's certificate, would be taken for that server (its names,
 * its fingerprint, its DANE-EE records). So at the leaf the verify callback
 * compares that copy with the chain as sent (store->certs, all of it) and
 * keeps a copy of its own when they differ: rarely, and never for a chain of
 * small certificates.
 */
static void tls_keep_chain(struct tls *t, const WOLFSSL_X509_STORE_CTX *store)
{
        WOLFSSL_X509_CHAIN *chain = wolfSSL_get_peer_chain(t->ssl);
        const unsigned char *kept;
        struct tls_chain *c;
        size_t i, n, total = 0;
        bool same;

        free(t->sent);
        t->sent = NULL;
        t->chain_seen = false;
        if (store->certs == NULL || store->totalCerts <= 0)
                return;
        t->chain_seen = true;
        n = (size_t)store->totalCerts;
        same = chain != NULL && n <= TLS_CHAIN_MAX &&
               wolfSSL_get_chain_count(chain) == store->totalCerts;
        for (i = 0; same && i < n; i++) {
                kept = wolfSSL_get_chain_cert(chain, (int)i);
                same = kept != NULL && store->certs[i].buffer != NULL &&
                       wolfSSL_get_chain_length(chain, (int)i) ==
                           (int)store->certs[i].length &&
                       memcmp(kept, store->certs[i].buffer, store->certs[i].length) == 0;
        }
        if (same)
                return;
        if (n > TLS_CHAIN_MAX)
                n = TLS_CHAIN_MAX;
        for (i = 0; i < n; i++)
                total += store->certs[i].buffer != NULL ? store->certs[i].length : 0;
        c = xmalloc(sizeof(*c) + total);
        c->n = 0;
        total = 0;
        for (i = 0; i < n && store->certs[i].buffer != NULL; i++) {
                memcpy(c->data + total, store->certs[i].buffer, store->certs[i].length);
                c->der[i] = c->data + total;
                c->len[i] = store->certs[i].length;
                total += store->certs[i].length;
                c->n++;
        }
        t->sent = c;
}

/*
 * Called by wolfSSL for every certificate of the peer's chain (this build has
 * WOLFSSL_ALWAYS_VERIFY_CB and WOLFSSL_VERIFY_CB_ALL_CERTS), with preverify 0
 * and store->error set when wolfSSL found it bad. At the leaf, keeps the chain
 * (tls_keep_chain()). Remembers the first error and any validity error;
 * verify_peer keeps wolfSSL's verdict, verify_record overrides it, and a
 * client context with neither only keeps the chain.
 */
static int tls_verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
        struct tls *t = store != NULL ? store->userCtx : NULL;
        int code;

        if (t == NULL) /* not ours: cannot happen; fail closed */
                return 0;
        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        if (store->error_depth == 0)
                tls_keep_chain(t, store);
        if (!t->ctx->verify_peer && !t->ctx->verify_record)
                return 1; /* WOLFSSL_VERIFY_NONE: accept, as wolfSSL would */
        t->verify_ran = true;
        if (!preverify) {
                code = tls_verify_code(store->error);
                if (code == ASN_NO_SIGNER_E && tls_store_self_signed(store))
                        code = ASN_SELF_SIGNED_E;
                if (t->verify_error == 0) {
                        t->verify_error = code;
                        t->verify_depth = store->error_depth;
                }
                if (code == ASN_AFTER_DATE_E || code == ASN_BEFORE_DATE_E)
                        t->verify_expired = true;
        }
        return t->ctx->verify_record ? 1 : preverify;
}

static bool tls_ctx_client(WOLFSSL_CTX *wctx, const struct tls_ctx_conf *conf,
                           struct tls_cert_info *info, char *err, size_t errlen)
{
        int ret;

        if (conf->ca_file != NULL) {
                if (!tls_file_readable("CA file", conf->ca_file, err, errlen))
                        return false;
                ret = wolfSSL_CTX_load_verify_locations(wctx, conf->ca_file, NULL);
                if (ret != WOLFSSL_SUCCESS) {
                        snprintf(err, errlen, "CA file %s: ", conf->ca_file);
                        tls_errstr(err + strlen(err), errlen - strlen(err), "cannot load",
                                   ret);
                        return false;
                }
        } else if (conf->verify_peer) {
                snprintf(err, errlen, "verify_peer needs a CA file");
                return false;
        }
        /* A certificate to show a server that asks for one. */
        if (conf->cert_file[0] != NULL &&
            !tls_ctx_own_cert(wctx, conf->cert_file[0], conf->key_file[0], info, err,
                              errlen))
                return false;
        /* With no verification too: the callback keeps the chain (tls_keep_chain()). */
        if (conf->verify_peer || conf->verify_record)
                wolfSSL_CTX_set_verify(wctx, WOLFSSL_VERIFY_PEER, tls_verify_cb);
        else
                wolfSSL_CTX_set_verify(wctx, WOLFSSL_VERIFY_NONE, tls_verify_cb);
        return true;
}

/*
 * A wolfSSL context with the policy and, for the server role, one
 * certificate and its key (cert_file, key_file), described in *info (so is
 * a client's, if it has one); NULL with the reason in err.
 */
static WOLFSSL_CTX *tls_wctx_new(enum tls_role role, const struct tls_ctx_conf *conf,
                                 const char *cert_file, const char *key_file,
                                 struct tls_cert_info *info, char *err, size_t errlen)
{
        WOLFSSL_CTX *wctx;
        bool ok;

        wctx = wolfSSL_CTX_new(role == TLS_ROLE_SERVER ? wolfSSLv23_server_method()
                                                       : wolfSSLv23_client_method());
        if (wctx == NULL) {
                snprintf(err, errlen, "cannot create a wolfSSL context");
                return NULL;
        }
        /* Key size limits come first: they also apply to our own certificate. */
        ok = tls_ctx_policy(wctx, err, errlen);
        if (ok)
                ok = role == TLS_ROLE_SERVER
                         ? tls_ctx_own_cert(wctx, cert_file, key_file, info, err, errlen)
                         : tls_ctx_client(wctx, conf, info, err, errlen);
        if (!ok) {
                tls_clear_errors();
                wolfSSL_CTX_free(wctx);
                return NULL;
        }
        /*
         * No session cache on our servers: it is one per process, for every
         * context alike, so a TLS 1.2 client would resume by session ID a
         * session made with another certificate (another name's, another
         * listener's) and never get the one it asks for (RFC 6066 3). Sessions
         * resume by ticket, which each context seals with keys of its own.
         */
        if (role == TLS_ROLE_SERVER)
                (void)wolfSSL_CTX_set_session_cache_mode(wctx, WOLFSSL_SESS_CACHE_OFF);
        wolfSSL_CTX_SetIORecv(wctx, tls_io_recv);
        wolfSSL_CTX_SetIOSend(wctx, tls_io_send);
        return wctx;
}

/* Does c have the name? */
static bool tls_has_name(const struct tls_cert_info *c, const char *name)
{
        for (size_t i = 0; i < c->nnames; i++)
                if (strcmp(c->names[i], name) == 0)
                        return true;
        return false;
}

/* Can tls_pick_cert() tell c and d apart only by their names? */
static bool tls_same_key(const struct tls_cert_info *c, const struct tls_cert_info *d)
{
        return strcmp(c->key_type, d->key_type) == 0 && c->group == d->group;
}

/*
 * Is the j-th certificate one that tls_pick_cert() never chooses? So it is
 * when certificates before it with the same key (and curve) have each of
 * its names, and there is one: for every name, and for none, one of them
 * fits as well and comes first. One without names (not the first) serves
 * only clients that ask for no name of any certificate's and can take no
 * certificate of the first host's; so it is hidden too where the first
 * host has an RSA one (every client takes it) or an ECDSA one on its curve.
 * *by: the certificate that hides it, to name.
 */
static bool tls_cert_hidden(const struct tls_ctx *ctx, unsigned j,
                            const struct tls_cert_info **by)
{
        const struct tls_cert_info *d = &ctx->cert[j];

        *by = NULL;
        for (unsigned i = 0; i < j && *by == NULL; i++)
                if (tls_same_key(&ctx->cert[i], d))
                        *by = &ctx->cert[i];
        for (unsigned i = 0; i < ctx->ncert && *by == NULL && d->nnames == 0 && j > 0;
             i++) {
                const struct tls_cert_info *c = &ctx->cert[i];

                if (c->first_host &&
                    (strcmp(c->key_type, "rsa") == 0 || tls_same_key(c, d)))
                        *by = c;
        }
        for (size_t k = 0; k < d->nnames && *by != NULL; k++) {
                unsigned i = 0;

                while (i < j && !(tls_same_key(&ctx->cert[i], d) &&
                                  tls_has_name(&ctx->cert[i], d->names[k])))
                        i++;
                if (i == j)
                        return false;
        }
        return *by != NULL;
}

/*
 * With several certificates: each must have an ECDSA key on a curve that
 * TLS names or an RSA key, and each must be served to some client
 * (tls_cert_hidden()).
 */
static bool tls_ctx_check_certs(const struct tls_ctx *ctx, char *err, size_t errlen)
{
        for (unsigned j = 0; j < ctx->ncert; j++) {
                const struct tls_cert_info *d = &ctx->cert[j], *c;

                if (strcmp(d->key_type, "rsa") != 0 &&
                    (strcmp(d->key_type, "ecdsa") != 0 || d->group == 0)) {
                        snprintf(err, errlen,
                                 "certificate %s: with several certificates each needs "
                                 "an RSA key or an ECDSA key on P-256, P-384 or P-521",
                                 d->file);
                        return false;
                }
                if (tls_cert_hidden(ctx, j, &c)) {
                        bool one = true;

                        for (size_t k = 0; k < d->nnames && one; k++)
                                one = tls_has_name(c, d->names[k]);
                        snprintf(
                            err, errlen,
                            d->nnames == 0
                                ? "certificate %s would never be served: it names no "
                                  "host, and a client that can take it gets %s"
                            : one ? "certificate %s would never be served: %s, before "
                                    "it, has the same key type and every name it has"
                                  : "certificate %s would never be served: %s and "
                                    "others before it with the same key type have "
                                    "every name it has",
                            d->file, c->file);
                        return false;
                }
        }
        return true;
}

struct tls_ctx *tls_ctx_new(enum tls_role role, const struct tls_ctx_conf *conf,
                            char *err, size_t errlen)
{
        struct tls_ctx *ctx;

        if (errlen > 0)
                err[0] = '\0';
        if (role == TLS_ROLE_SERVER && conf->cert_file[0] == NULL) {
                snprintf(err, errlen, "a server needs a certificate");
                return NULL;
        }
        ctx = xcalloc(1, sizeof(*ctx));
        ctx->magic = TLS_CTX_MAGIC;
        ctx->role = role;
        ctx->verify_peer = role == TLS_ROLE_CLIENT && conf->verify_peer;
        ctx->verify_record =
            role == TLS_ROLE_CLIENT && conf->verify_record && !conf->verify_peer;
        ctx->refs = 1;
        if (role == TLS_ROLE_CLIENT) {
                ctx->wctx = tls_wctx_new(role, conf, conf->cert_file[0],
                                         conf->key_file[0], &ctx->cert[0], err, errlen);
                if (ctx->wctx == NULL)
                        goto fail;
                /* A client's certificate to show, too, for its expiry. */
                if (conf->cert_file[0] != NULL)
                        ctx->ncert = 1;
                return ctx;
        }
        for (unsigned i = 0; i < TLS_MAX_CERTS && conf->cert_file[i] != NULL; i++) {
                struct tls_cert_info *c = &ctx->cert[ctx->ncert];
                WOLFSSL_CTX *w = tls_wctx_new(role, conf, conf->cert_file[i],
                                              conf->key_file[i], c, err, errlen);

                if (w == NULL)
                        goto fail;
                c->wctx = w;
                ctx->ncert++;
                /* Without a label (no DER: cannot be), wolfSSL's own keys. */
                if (tls_tickets != NULL && c->have_label &&
                    (wolfSSL_CTX_set_TicketEncCb(w, tls_ticket_cb) != WOLFSSL_SUCCESS ||
                     wolfSSL_CTX_set_TicketEncCtx(w, c) != WOLFSSL_SUCCESS)) {
                        snprintf(err, errlen, "cannot set the session ticket callback");
                        goto fail;
                }
        }
        for (unsigned i = 0; i < ctx->ncert; i++) {
                struct tls_cert_info *c = &ctx->cert[i];

                c->first_host = i == 0;
                for (size_t k = 0; k < c->nnames && !c->first_host; k++)
                        c->first_host = tls_has_name(&ctx->cert[0], c->names[k]);
        }
        if (ctx->ncert > 1 && !tls_ctx_check_certs(ctx, err, errlen))
                goto fail;
        return ctx;
fail:
        tls_ctx_free(ctx);
        return NULL;
}

bool tls_ctx_cert(const struct tls_ctx *ctx, unsigned i, struct tls_cert_desc *out)
{
        const struct tls_cert_info *c;

        if (ctx == NULL || i >= ctx->ncert)
                return false;
        c = &ctx->cert[i];
        *out = (struct tls_cert_desc){.not_after = c->not_after,
                                      .key_type = c->key_type,
                                      .file = c->file,
                                      .names = (const char *const *)c->names,
                                      .nnames = c->nnames};
        return true;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
        if (ctx == NULL)
                return;
        UTIL_CHECK_MAGIC(ctx, TLS_CTX_MAGIC);
        if (--ctx->refs > 0)
                return;
        wolfSSL_CTX_free(ctx->wctx);
        for (unsigned i = 0; i < ctx->ncert; i++) {
                struct tls_cert_info *c = &ctx->cert[i];

                wolfSSL_CTX_free(c->wctx);
                free(c->file);
                for (size_t j = 0; j < c->nnames; j++)
                        free(c->names[j]);
                free(c->names);
        }
        ctx->magic = 0;
        free(ctx);
}

/* True if name is an IP address literal: those never go into SNI (RFC 6066). */
static bool tls_is_ip_literal(const char *name)
{
        unsigned char addr[16];

        return inet_pton(AF_INET, name, addr) == 1 ||
               inet_pton(AF_INET6, name, addr) == 1;
}

static void tls_ssl_new(struct tls *t, WOLFSSL_CTX *wctx)
{
        t->ssl = wolfSSL_new(wctx);
        if (t->ssl == NULL)
                fatalx("tls_new: wolfSSL_new failed");
        wolfSSL_SetIOReadCtx(t->ssl, t);
        wolfSSL_SetIOWriteCtx(t->ssl, t);
        wolfSSL_SetCertCbCtx(t->ssl, t); /* store->userCtx in tls_verify_cb() */
}

struct tls *tls_new(struct tls_ctx *ctx, const char *servername)
{
        struct tls *t;

        UTIL_CHECK_MAGIC(ctx, TLS_CTX_MAGIC);
        t = xcalloc(1, sizeof(*t));
        t->magic = TLS_MAGIC;
        t->ctx = ctx;
        ctx->refs++;
        buf_init(&t->in);
        buf_init(&t->out);
        if (ctx->role == TLS_ROLE_SERVER) {
                /* Several certificates: the ClientHello decides (tls_hello_ssl()). */
                if (ctx->ncert > 1)
                        return t;
                t->served = &ctx->cert[0];
                tls_ssl_new(t, ctx->cert[0].wctx);
                return t;
        }
        tls_ssl_new(t, ctx->wctx);
        if (servername != NULL && *servername != '\0') {
                if (!tls_is_ip_literal(servername) &&
                    wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, servername,
                                   (unsigned short)strlen(servername)) != WOLFSSL_SUCCESS)
                        fatalx("tls_new: wolfSSL_UseSNI failed");
                if (ctx->verify_peer &&
                    wolfSSL_check_domain_name(t->ssl, servername) != WOLFSSL_SUCCESS)
                        fatalx("tls_new: wolfSSL_check_domain_name failed");
        }
        return t;
}

void tls_free(struct tls *t)
{
        if (t == NULL)
                return;
        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        wolfSSL_free(t->ssl);
        tls_ctx_free(t->ctx);
        buf_cleanup(&t->in);
        buf_cleanup(&t->out);
        free(t->sent);
        free(t->sni);
        t->magic = 0;
        free(t);
}

void tls_feed(struct tls *t, const void *p, size_t n)
{
        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        buf_append(&t->in, p, n);
}

void tls_lend(struct tls *t, const void *p, size_t n)
{
        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        if (t->lent_len > 0)
                fatalx("tls_lend: %zu bytes still lent", t->lent_len);
        t->lent = p;
        t->lent_len = n;
}

void tls_lend_end(struct tls *t)
{
        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        buf_append(&t->in, t->lent, t->lent_len);
        t->lent = NULL;
        t->lent_len = 0;
}

size_t tls_input_pending(const struct tls *t)
{
        return buf_len(&t->in) + t->lent_len;
}

struct buf *tls_output(struct tls *t)
{
        return &t->out;
}

/*
 * Classify the result ret of a wolfSSL call: TLS_WANT for more input,
 * TLS_CLOSED for close_notify, otherwise TLS_ERROR with the reason kept.
 */
static enum tls_result tls_fail(struct tls *t, int ret, const char *what)
{
        int code = wolfSSL_get_error(t->ssl, ret);

        switch (code) {
        case WOLFSSL_ERROR_WANT_READ:
        case WOLFSSL_ERROR_WANT_WRITE:
                return TLS_WANT;
        case WOLFSSL_ERROR_ZERO_RETURN:
                return TLS_CLOSED;
        default:
                /*
                 * A certificate that verify_peer refused ended the handshake:
                 * name what was wrong with it, as the verify callback saw it
                 * (tls_store_self_signed()).
                 */
                if (t->ctx->verify_peer && t->verify_error < 0)
                        code = t->verify_error;
                tls_errstr(t->err, sizeof(t->err), what, code);
                tls_clear_errors();
                return TLS_ERROR;
        }
}

/*
 * Give the kernel back the pages of a heap block that hold nothing but zeros.
 * MADV_DONTNEED on private anonymous memory (glibc's heap and its mmap'd
 * chunks, ASan's too) makes a page read as zeros until it is written again,
 * so for a page that is all zeros nothing changes but the RSS. Only pages
 * wholly inside the block are touched, never malloc's own headers.
 */
static void tls_release_zero_pages(void *block, size_t size)
{
        const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t p, end, run = 0;

        if (block == NULL || page == 0 || (page & (page - 1)) != 0)
                return;
        p = ((uintptr_t)block + page - 1) & ~(page - 1);
        end = ((uintptr_t)block + size) & ~(page - 1);
        for (; p < end; p += page) {
                const unsigned char *b = (const unsigned char *)p;
                bool zero = b[0] == 0 && memcmp(b, b + 1, page - 1) == 0;

                if (zero && run == 0)
                        run = p;
                if (!zero && run != 0) {
                        (void)madvise((void *)run, p - run, MADV_DONTNEED);
                        run = 0;
                }
        }
        if (run != 0)
                (void)madvise((void *)run, end - run, MADV_DONTNEED);
}

/*
 * What an established session no longer needs, measured on wolfSSL 5.5.4 as
 * Debian builds it (see test/bench/README, "Idle session memory"):
 *
 * - its handshake "arrays" (3.4 KB: randoms, pre-master and master secrets),
 *   which it keeps after a TLS 1.3 handshake because the build has
 *   post-handshake authentication (we never ask for it nor allow it);
 *   wolfSSL reads a post-handshake message (ticket, key update) without them.
 *   Freed by tls_handshake() when it completes: free() costs no system call.
 * - the zero pages of its WOLFSSL_SESSION (tls_release_idle(), which the
 *   caller schedules for a session that lasts): SESSION_CERTS and
 *   WOLFSSL_ALT_CERT_CHAINS give every connection two static peer chains of
 *   9 x 2 KB inside it (37.5 KB in all), which wolfSSL_NewSession() zeroes;
 *   a server that asks for no client certificate never fills them, a client
 *   fills a few slots of one. ~36 KB of the 37.5 go back.
 *
 * wolfSSL_get_session() is the connection's own heap block (ssl->session,
 * from malloc via XMALLOC) only when the build has NO_SESSION_CACHE_REF and
 * no static memory pool; otherwise tls_release_idle() does nothing.
 */
void tls_release_idle(struct tls *t)
{
        if (t == NULL || !t->done)
                return;
#if defined(NO_SESSION_CACHE_REF) && !defined(WOLFSSL_STATIC_MEMORY) &&                  \
    !defined(XMALLOC_USER) && !defined(XMALLOC_OVERRIDE) && defined(__GLIBC__)
        {
                WOLFSSL_SESSION *sess = wolfSSL_get_session(t->ssl);

                if (sess != NULL)
                        tls_release_zero_pages(sess, malloc_usable_size(sess));
        }
#endif
}

/*
 * How well a certificate's names fit the host name a client asks for: 2
 * one of them is that name, 1 a wildcard covers it ("*.example.net" covers
 * "mx.example.net", not "example.net" nor "a.mx.example.net"), 0 neither.
 */
static int tls_name_fit(const struct tls_cert_info *c, const char *sni)
{
        const char *parent = strchr(sni, '.');
        int fit = 0;

        for (size_t i = 0; i < c->nnames && sni[0] != '\0'; i++) {
                const char *name = c->names[i];

                if (strcmp(name, sni) == 0)
                        return 2;
                if (name[0] == '*' && parent != NULL && parent != sni &&
                    strcmp(name + 1, parent) == 0)
                        fit = 1;
        }
        return fit;
}

/*
 * The certificate for a ClientHello: one the client can take before one it
 * cannot (tlshello.h; RSA: every client); then one for the host name it
 * asks for (SNI) over one that a wildcard covers it with, over the rest;
 * then, where none of them is for that name, the first host's (first_host)
 * over the others; then ECDSA over RSA (a smaller, faster handshake); then
 * the configuration's order. With no name asked for, or one that no
 * certificate has: the first host's ECDSA certificate if the client can
 * take it, else its RSA one; another host's only if it can take neither.
 */
static const struct tls_cert_info *tls_pick_cert(const struct tls_ctx *ctx,
                                                 const struct tlshello *h)
{
        const struct tls_cert_info *best = &ctx->cert[0];
        int best_score = -1;

        for (unsigned i = 0; i < ctx->ncert; i++) {
                const struct tls_cert_info *c = &ctx->cert[i];
                bool ecdsa = strcmp(c->key_type, "ecdsa") == 0;
                bool takes = !ecdsa || tlshello_takes_ecdsa(h, c->group);
                int fit = tls_name_fit(c, h->sni);
                int score = (takes ? 16 : 0) + 4 * fit +
                            (fit == 0 && c->first_host ? 2 : 0) + (ecdsa ? 1 : 0);

                if (score > best_score) {
                        best = c;
                        best_score = score;
                }
        }
        return best;
}

/*
 * A server with several certificates makes its session once the whole
 * ClientHello is in, from the context of the certificate tls_pick_cert()
 * chooses: false until then. Bytes that are no ClientHello go to the first
 * certificate's session, whose handshake refuses them.
 */
static bool tls_hello_ssl(struct tls *t)
{
        struct tlshello h;

        if (t->lent_len > 0)
                tls_lend_end(t); /* one run of bytes to read */
        switch (
            tlshello_read((const unsigned char *)buf_data(&t->in), buf_len(&t->in), &h)) {
        case TLSHELLO_READ_MORE:
                return false;
        case TLSHELLO_READ_OK:
                t->served = tls_pick_cert(t->ctx, &h);
                if (h.sni[0] != '\0')
                        t->sni = xstrdup(h.sni);
                break;
        case TLSHELLO_READ_BAD:
                t->served = &t->ctx->cert[0];
                break;
        }
        tls_ssl_new(t, t->served->wctx);
        return true;
}

enum tls_result tls_handshake(struct tls *t)
{
        int ret;

        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        if (t->done)
                return TLS_OK;
        t->err[0] = '\0';
        if (t->ssl == NULL && !tls_hello_ssl(t))
                return TLS_WANT;
        ret = t->ctx->role == TLS_ROLE_SERVER ? wolfSSL_accept(t->ssl)
                                              : wolfSSL_connect(t->ssl);
        if (ret == WOLFSSL_SUCCESS) {
                t->done = true;
                /* verify_record overrode an error that wolfSSL had queued. */
                if (t->verify_error != 0)
                        tls_clear_errors();
                wolfSSL_FreeArrays(t->ssl);
                return TLS_OK;
        }
        return tls_fail(t, ret, "handshake");
}

bool tls_handshake_done(const struct tls *t)
{
        return t->done;
}

enum tls_result tls_read(struct tls *t, void *p, size_t n, size_t *got)
{
        int ret;

        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        *got = 0;
        t->err[0] = '\0';
        if (n == 0)
                return TLS_OK;
        if (n > INT_MAX)
                n = INT_MAX;
        ret = wolfSSL_read(t->ssl, p, (int)n);
        if (ret > 0) {
                *got = (size_t)ret;
                t->done = true;
                return TLS_OK;
        }
        return tls_fail(t, ret, "read");
}

enum tls_result tls_write(struct tls *t, const void *p, size_t n)
{
        const char *s = p;
        int chunk, ret;

        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        t->err[0] = '\0';
        while (n > 0) {
                chunk = n > INT_MAX ? INT_MAX : (int)n;
                ret = wolfSSL_write(t->ssl, s, chunk);
                if (ret <= 0) {
                        /* Our send callback never blocks: this is fatal. */
                        if (tls_fail(t, ret, "write") != TLS_ERROR)
                                snprintf(t->err, sizeof(t->err),
                                         "write: not possible now");
                        return TLS_ERROR;
                }
                s += ret;
                n -= (size_t)ret;
        }
        return TLS_OK;
}

void tls_shutdown(struct tls *t)
{
        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        /* Not waiting for the peer's close_notify: 2 (not done) is expected. */
        if (t->ssl != NULL)
                (void)wolfSSL_shutdown(t->ssl);
}

const char *tls_served_key(const struct tls *t, bool *chosen)
{
        if (chosen != NULL)
                *chosen = t->ctx->ncert > 1;
        return t->served != NULL ? t->served->key_type : NULL;
}

bool tls_resumed(const struct tls *t)
{
        return t->done && wolfSSL_session_reused(t->ssl) == 1;
}

const char *tls_served_cert(const struct tls *t)
{
        return t->served != NULL ? t->served->file : NULL;
}

const char *tls_sni(const struct tls *t)
{
        return t->sni;
}

const char *tls_version(const struct tls *t)
{
        return t->done ? wolfSSL_get_version(t->ssl) : "";
}

const char *tls_cipher(const struct tls *t)
{
        const char *name = NULL;
        int suite;

        if (!t->done)
                return "";
        /*
         * OpenSSL's names, as MTA logs show them: wolfSSL's own for TLS 1.2
         * ("ECDHE-RSA-AES128-GCM-SHA256") are the same, but for TLS 1.3 it says
         * "TLS13-AES128-GCM-SHA256" where everyone else says the IANA name.
         */
        if (wolfSSL_GetVersion(t->ssl) == WOLFSSL_TLSV1_3) {
                suite = wolfSSL_get_current_cipher_suite(t->ssl);
                name = wolfSSL_get_cipher_name_iana_from_suite(
                    (unsigned char)(suite >> 8), (unsigned char)suite);
        }
        if (name == NULL)
                name = wolfSSL_get_cipher_name(t->ssl);
        return name != NULL ? name : "";
}

/*
 * The bulk cipher's key length, read from the suite's name
 * (wolfSSL_CIPHER_get_bits() needs OPENSSL_EXTRA): invariant 7 allows only
 * AES-GCM and ChaCha20-Poly1305, and every name says which.
 */
int tls_cipher_bits(const struct tls *t)
{
        const char *name = tls_cipher(t);

        if (strstr(name, "AES128") != NULL || strstr(name, "AES_128") != NULL)
                return 128;
        if (strstr(name, "AES256") != NULL || strstr(name, "AES_256") != NULL ||
            strstr(name, "CHACHA20") != NULL)
                return 256;
        return 0;
}

/*
 * Copy a name from the certificate into out (256 bytes) if it is a plausible
 * host name: 1..255 bytes of printable ASCII, no space, no NUL.
 */
static bool tls_copy_name(const char *p, int n, char out[256])
{
        int i;

        if (p == NULL || n <= 0 || n > 255)
                return false;
        for (i = 0; i < n; i++)
                if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
                        return false;
        memcpy(out, p, (size_t)n);
        out[n] = '\0';
        return true;
}

/* A peer's names for tls_dc_names(): copied while there is room. */
static void tls_peer_add_name(const char *name, int len, void *arg)
{
        struct tls_peer *out = arg;
        size_t used = out->nnames > 0
                          ? out->name_at[out->nnames - 1] +
                                strlen(tls_peer_name(out, out->nnames - 1)) + 1
                          : 0;
        char one[256];

        if (out->nnames < TLS_PEER_NAMES && tls_copy_name(name, len, one) &&
            (size_t)len + 1 <= sizeof(out->name_text) - used) {
                memcpy(out->name_text + used, one, (size_t)len + 1);
                out->name_at[out->nnames++] = (uint16_t)used;
        }
}

const char *tls_peer_name(const struct tls_peer *p, unsigned i)
{
        return i < p->nnames ? p->name_text + p->name_at[i] : "";
}

/* The leaf's names (tls_dc_names()). */
static void tls_peer_names(const unsigned char *der, int len, struct tls_peer *out)
{
        DecodedCert *dc = tls_cert_parse(der, len);

        if (dc != NULL)
                tls_dc_names(dc, tls_peer_add_name, out);
        tls_cert_free(dc);
}

/*
 * The peer's certificates, leaf first, up to max of them into der[] and
 * len[]; returns how many. The chain as sent when the verify callback saw it
 * (tls_keep_chain()); otherwise (a server's peer, a session that has not seen
 * one) wolfSSL's copy.
 */
static size_t tls_peer_certs(const struct tls *t, const unsigned char **der, size_t *len,
                             size_t max)
{
        WOLFSSL_X509_CHAIN *chain;
        const unsigned char *p;
        size_t n = 0;
        int i, count, l;

        if (t->sent != NULL) {
                for (n = 0; n < t->sent->n && n < max; n++) {
                        der[n] = t->sent->der[n];
                        len[n] = t->sent->len[n];
                }
                return n;
        }
        chain = t->ssl != NULL ? wolfSSL_get_peer_chain(t->ssl) : NULL;
        count = chain != NULL ? wolfSSL_get_chain_count(chain) : 0;
        for (i = 0; i < count && n < max; i++) {
                p = wolfSSL_get_chain_cert(chain, i);
                l = wolfSSL_get_chain_length(chain, i);
                if (p == NULL || l <= 0)
                        break;
                der[n] = p;
                len[n++] = (size_t)l;
        }
        return n;
}

int tls_peer_info(const struct tls *t, struct tls_peer *out)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *der;
        unsigned char md[WC_SHA256_DIGEST_SIZE];
        char reason[WOLFSSL_MAX_ERROR_SZ];
        size_t i, len;

        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        memset(out, 0, sizeof(*out));
        out->verify_error = t->verify_error;
        out->expired = t->verify_expired;
        if (t->verify_error != 0) {
#if defined(OPENSSL_EXTRA)
                if (t->verify_error > 0)
                        snprintf(reason, sizeof(reason), "%s",
                                 wolfSSL_X509_verify_cert_error_string(t->verify_error));
                else
#endif
                        wolfSSL_ERR_error_string_n((unsigned long)t->verify_error, reason,
                                                   sizeof(reason));
                snprintf(out->verify_reason, sizeof(out->verify_reason),
                         "%s (%d) at depth %d", reason, t->verify_error, t->verify_depth);
        }
        if (t->ctx->verify_peer)
                out->chain_trusted = t->done;
        else if (t->ctx->verify_record)
                out->chain_trusted = t->done && t->verify_ran && t->verify_error == 0;

        if (tls_peer_certs(t, &der, &len, 1) == 1 && len <= INT_MAX) {
                out->has_cert = true;
                if (wc_Sha256Hash(der, (word32)len, md) == 0) {
                        for (i = 0; i < sizeof(md); i++) {
                                out->sha256[2 * i] = hex[md[i] >> 4];
                                out->sha256[2 * i + 1] = hex[md[i] & 15];
                        }
                        out->sha256[2 * sizeof(md)] = '\0';
                }
                tls_peer_names(der, (int)len, out);
        }
        if (!out->has_cert)
                out->chain_trusted = false;
        return t->done ? 0 : -1;
}

/*
 * DANE (tls.h has the rules). Every certificate is read as untrusted bytes:
 * wolfSSL's parser is bounded by the length given, and a certificate that
 * does not parse simply matches nothing.
 */

/* Append to why (whylen bytes; may be NULL), "; " between parts, cut short if need be. */
static void tls_dane_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tls_dane_why(char *why, size_t whylen, const char *fmt, ...)
{
        size_t used;
        va_list ap;

        if (why == NULL || whylen == 0)
                return;
        used = strnlen(why, whylen - 1);
        if (used > 0) {
                if (used + 3 >= whylen) /* no room for "; " and a character */
                        return;
                memcpy(why + used, "; ", 3);
                used += 2;
        }
        va_start(ap, fmt);
        vsnprintf(why + used, whylen - used, fmt, ap);
        va_end(ap);
}

/* Whether record r can be used for SMTP; if not, why in reason. */
static bool tls_dane_usable(const struct tls_tlsa *r, char *reason, size_t reasonlen)
{
        static const size_t digest_len[] = {0, WC_SHA256_DIGEST_SIZE,
                                            WC_SHA512_DIGEST_SIZE};

        if (r->usage == 0 || r->usage == 1)
                snprintf(reason, reasonlen, "%s, not for SMTP",
                         r->usage == 0 ? "PKIX-TA(0)" : "PKIX-EE(1)");
        else if (r->usage > 3)
                snprintf(reason, reasonlen, "unknown usage %u", r->usage);
        else if (r->selector > 1)
                snprintf(reason, reasonlen, "unknown selector %u", r->selector);
        else if (r->mtype > 2)
                snprintf(reason, reasonlen, "unknown matching type %u", r->mtype);
        else if (r->data == NULL || r->len == 0)
                snprintf(reason, reasonlen, "no data");
        else if (r->mtype != 0 && r->len != digest_len[r->mtype])
                snprintf(reason, reasonlen, "%s data of %zu bytes, not %zu",
                         r->mtype == 1 ? "SHA-256" : "SHA-512", r->len,
                         digest_len[r->mtype]);
        else
                return true;
        return false;
}

bool tls_dane_record_usable(const struct tls_tlsa *r)
{
        char reason[64];

        return tls_dane_usable(r, reason, sizeof(reason));
}

/*
 * A certificate's SubjectPublicKeyInfo, its DER bytes as the certificate has
 * them, into out: length, or -1 if the certificate does not parse.
 */
static int tls_dane_spki(const unsigned char *der, size_t len, unsigned char *out,
                         int outlen)
{
        WOLFSSL_X509 *x = wolfSSL_X509_d2i(NULL, der, (int)len);
        int n = outlen;

        if (x == NULL)
                return -1;
        if (wolfSSL_X509_get_pubkey_buffer(x, out, &n) != WOLFSSL_SUCCESS || n <= 0)
                n = -1;
        wolfSSL_X509_free(x);
        return n;
}

/* Whether the certificate der (len bytes) matches usable record r. */
static bool tls_dane_cert_matches(const unsigned char *der, size_t len,
                                  const struct tls_tlsa *r)
{
        unsigned char spki[TLS_SPKI_MAX], md[WC_SHA512_DIGEST_SIZE];
        const unsigned char *p = der;
        size_t n = len;
        int sz;

        if (der == NULL || len == 0 || len > INT_MAX)
                return false;
        if (r->selector == 1) {
                if ((sz = tls_dane_spki(der, len, spki, (int)sizeof(spki))) < 0)
                        return false;
                p = spki;
                n = (size_t)sz;
        }
        switch (r->mtype) {
        case 0:
                return n == r->len && memcmp(p, r->data, n) == 0;
        case 1:
                return wc_Sha256Hash(p, (word32)n, md) == 0 &&
                       memcmp(md, r->data, WC_SHA256_DIGEST_SIZE) == 0;
        case 2:
                return wc_Sha512Hash(p, (word32)n, md) == 0 &&
                       memcmp(md, r->data, WC_SHA512_DIGEST_SIZE) == 0;
        default:
                return false;
        }
}

/*
 * The certificate at depth (>= 1) issues the one below it: may it? Within its
 * validity dates, a CA (basicConstraints cA), with keyCertSign if it has
 * keyUsage, and no more CAs below it than its path length constraint allows.
 * wolfSSL_CertManagerLoadCABuffer() checks none of this (it loads even an
 * expired leaf as a CA): without it, any certificate a DANE-TA issued (a web
 * server's, from a public CA that a domain names in a 2 x x record) could
 * issue a certificate for any name. cm holds no CA here.
 */
static bool tls_dane_may_issue(WOLFSSL_CERT_MANAGER *cm, const unsigned char *der,
                               size_t len, size_t depth, char *reason, size_t reasonlen)
{
        DecodedCert *dc = xmalloc(sizeof(*dc));
        char what[64];
        bool ok = false;
        int ret;

        InitDecodedCert(dc, der, (word32)len, NULL);
        ret = ParseCert(dc, CA_TYPE, VERIFY, cm); /* VERIFY: the dates too */
        snprintf(what, sizeof(what), "certificate at depth %zu", depth);
        if (ret != 0)
                tls_errstr(reason, reasonlen, what, ret);
        else if (!dc->isCA)
                snprintf(reason, reasonlen, "certificate at depth %zu is not a CA",
                         depth);
        else if (dc->extKeyUsageSet && (dc->extKeyUsage & KEYUSE_KEY_CERT_SIGN) == 0)
                snprintf(reason, reasonlen,
                         "certificate at depth %zu may not sign certificates (keyUsage)",
                         depth);
        else if (dc->pathLengthSet && depth - 1 > dc->pathLength)
                snprintf(reason, reasonlen,
                         "certificate at depth %zu allows %u CAs below it, not %zu",
                         depth, (unsigned)dc->pathLength, depth - 1);
        else
                ok = true;
        FreeDecodedCert(dc);
        free(dc);
        return ok;
}

/*
 * Whether the chain below depth top (>= 1) verifies up to the certificate at
 * top, taken as the only trust anchor: from top down, check that the
 * certificate may issue (tls_dane_may_issue(), its dates included), load it
 * as the only CA of a WOLFSSL_CERT_MANAGER, then verify the next one down
 * with it (signature, dates, name constraints). The first failure goes into
 * reason.
 */
static bool tls_dane_chain_verifies(const unsigned char *const *der, const size_t *len,
                                    size_t top, char *reason, size_t reasonlen)
{
        WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
        char what[64];
        size_t d;
        int ret;
        bool ok = true;

        if (cm == NULL)
                fatalx("tls_dane_chain_verifies: wolfSSL_CertManagerNew failed");
        for (d = top; ok && d > 0; d--) {
                if (der[d - 1] == NULL || len[d - 1] == 0 || len[d - 1] > INT_MAX) {
                        snprintf(reason, reasonlen, "no certificate at depth %zu", d - 1);
                        ok = false;
                } else if (wolfSSL_CertManagerUnloadCAs(cm) != WOLFSSL_SUCCESS) {
                        fatalx("tls_dane_chain_verifies: wolfSSL_CertManagerUnloadCAs "
                               "failed");
                } else if (!tls_dane_may_issue(cm, der[d], len[d], d, reason,
                                               reasonlen)) {
                        ok = false;
                } else if ((ret = wolfSSL_CertManagerLoadCABuffer(
                                cm, der[d], (long)len[d], WOLFSSL_FILETYPE_ASN1)) !=
                           WOLFSSL_SUCCESS) {
                        snprintf(what, sizeof(what), "certificate at depth %zu", d);
                        tls_errstr(reason, reasonlen, what, ret);
                        ok = false;
                } else if ((ret = wolfSSL_CertManagerVerifyBuffer(
                                cm, der[d - 1], (long)len[d - 1],
                                WOLFSSL_FILETYPE_ASN1)) != WOLFSSL_SUCCESS) {
                        snprintf(what, sizeof(what), "certificate at depth %zu", d - 1);
                        tls_errstr(reason, reasonlen, what, ret);
                        ok = false;
                }
        }
        wolfSSL_CertManagerFree(cm);
        return ok;
}

/* "2 1 1": a record's three numbers, for why. */
#define TLS_DANE_RR_FMT     "%u %u %u"
#define TLS_DANE_RR_ARGS(r) (r)->usage, (r)->selector, (r)->mtype

enum tls_dane_result tls_dane_match_chain(const unsigned char *const *der,
                                          const size_t *derlen, size_t nder,
                                          const struct tls_tlsa *recs, size_t nrecs,
                                          char *why, size_t whylen)
{
        char reason[256];
        const struct tls_tlsa *r;
        size_t i, d, nusable = 0;
        bool matched;

        if (why != NULL && whylen > 0)
                why[0] = '\0';
        if (recs == NULL)
                nrecs = 0;
        if (der == NULL || derlen == NULL)
                nder = 0;
        for (i = 0; i < nrecs; i++) {
                if (tls_dane_usable(&recs[i], reason, sizeof(reason)))
                        nusable++;
                else
                        tls_dane_why(why, whylen, TLS_DANE_RR_FMT ": unusable: %s",
                                     TLS_DANE_RR_ARGS(&recs[i]), reason);
        }
        if (nrecs == 0)
                tls_dane_why(why, whylen, "no TLSA record");
        if (nusable == 0)
                return TLS_DANE_UNUSABLE;
        if (nder == 0) {
                tls_dane_why(why, whylen, "no certificate");
                return TLS_DANE_NO_MATCH;
        }

        /* DANE-EE first: it wins, and needs nothing else. */
        for (i = 0; i < nrecs; i++) {
                r = &recs[i];
                if (r->usage == 3 && tls_dane_usable(r, reason, sizeof(reason)) &&
                    tls_dane_cert_matches(der[0], derlen[0], r)) {
                        if (why != NULL && whylen > 0)
                                why[0] = '\0';
                        tls_dane_why(why, whylen,
                                     TLS_DANE_RR_FMT
                                     " matched the certificate at depth 0",
                                     TLS_DANE_RR_ARGS(r));
                        tls_clear_errors();
                        return TLS_DANE_MATCH_EE;
                }
        }
        if (why != NULL && whylen > 0)
                why[0] = '\0';
        for (i = 0; i < nrecs; i++) {
                r = &recs[i];
                if (!tls_dane_usable(r, reason, sizeof(reason))) {
                        tls_dane_why(why, whylen, TLS_DANE_RR_FMT ": unusable: %s",
                                     TLS_DANE_RR_ARGS(r), reason);
                        continue;
                }
                if (r->usage == 3) {
                        tls_dane_why(why, whylen, TLS_DANE_RR_FMT ": no match",
                                     TLS_DANE_RR_ARGS(r));
                        continue;
                }
                matched = false;
                for (d = 1; d < nder; d++) {
                        if (!tls_dane_cert_matches(der[d], derlen[d], r))
                                continue;
                        matched = true;
                        if (tls_dane_chain_verifies(der, derlen, d, reason,
                                                    sizeof(reason))) {
                                if (why != NULL && whylen > 0)
                                        why[0] = '\0';
                                tls_dane_why(why, whylen,
                                             TLS_DANE_RR_FMT
                                             " matched the certificate at "
                                             "depth %zu; chain verified",
                                             TLS_DANE_RR_ARGS(r), d);
                                tls_clear_errors();
                                return TLS_DANE_MATCH_TA;
                        }
                        tls_dane_why(why, whylen,
                                     TLS_DANE_RR_FMT
                                     ": chain below depth %zu does not verify: %s",
                                     TLS_DANE_RR_ARGS(r), d, reason);
                }
                if (!matched && tls_dane_cert_matches(der[0], derlen[0], r))
                        tls_dane_why(why, whylen,
                                     TLS_DANE_RR_FMT
                                     ": matches only the leaf, which a "
                                     "DANE-TA record cannot (3 %u %u would)",
                                     TLS_DANE_RR_ARGS(r), r->selector, r->mtype);
                else if (!matched)
                        tls_dane_why(why, whylen, TLS_DANE_RR_FMT ": no match",
                                     TLS_DANE_RR_ARGS(r));
        }
        tls_clear_errors();
        return TLS_DANE_NO_MATCH;
}

enum tls_dane_result tls_dane_match(const struct tls *t, const struct tls_tlsa *recs,
                                    size_t nrecs, char *why, size_t whylen)
{
        const unsigned char *der[TLS_CHAIN_MAX];
        size_t len[TLS_CHAIN_MAX], n;
        enum tls_dane_result r;

        UTIL_CHECK_MAGIC(t, TLS_MAGIC);
        if (t->done && t->chain_seen) {
                n = tls_peer_certs(t, der, len, TLS_CHAIN_MAX);
                return tls_dane_match_chain(der, len, n, recs, nrecs, why, whylen);
        }
        r = tls_dane_match_chain(NULL, NULL, 0, recs, nrecs, why, whylen);
        if (r == TLS_DANE_NO_MATCH && why != NULL && whylen > 0)
                snprintf(why, whylen, "%s",
                         !t->done ? "handshake not done"
                                  : "no certificate seen in this handshake");
        return r;
}

const char *tls_error(const struct tls *t)
{
        return t->err;
}

const char *tls_library_version(void)
{
        return wolfSSL_lib_version();
}

const char *tls_library_build(void)
{
        /*
         * What matters for speed: the assembly paths; for memory: the OpenSSL
         * layer (see README, "Which wolfSSL").
         */
        return "built for " LIBWOLFSSL_VERSION_STRING
#if defined(WOLFSSL_AESNI)
               ", aesni"
#endif
#if defined(USE_INTEL_SPEEDUP)
               ", intelasm"
#endif
#if defined(WOLFSSL_SP_X86_64_ASM) || defined(WOLFSSL_SP_ASM)
               ", sp-asm"
#endif
#if !defined(WOLFSSL_AESNI) && !defined(USE_INTEL_SPEEDUP) &&                            \
    !defined(WOLFSSL_SP_X86_64_ASM) && !defined(WOLFSSL_SP_ASM)
               ", no assembly (C code paths only)"
#endif
#if !defined(OPENSSL_EXTRA)
               ", without the OpenSSL compatibility layer"
#endif
            ;
}
