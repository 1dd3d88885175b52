/*
 * crypto: the crypto floor of mailward's benchmark, measured in-process with
 * the same wolfSSL build that mailward links (the Makefile builds it as
 * build/bench/crypto, or build-asm/bench/crypto with WOLFSSL=asm).
 *
 *   crypto -c CERT.pem -k KEY.pem [-s SECONDS] [-V 1.2]
 *
 * Handshakes: a wolfSSL client and a wolfSSL server talk over two memory
 * buffers, no sockets. The server is set up as mailward sets up its listeners
 * (the cipher list, curves and groups come from lib/tls_suites.h); the client
 * offers an X25519 key share, as OpenSSL's client (the load client) does, so
 * both negotiate what a real session negotiates: TLS 1.3, X25519, the suite
 * mailward's order puts first for this build (AES-128-GCM with AES-NI,
 * ChaCha20-Poly1305 without), and a signature with the certificate's key. Reported:
 * complete handshakes per second (client and server both on this thread), and the server
 * side alone (the CPU time spent in wolfSSL_accept and the server's set-up and free),
 * which is what a TLS-terminating proxy pays per session. -V 1.2: the client
 * offers TLS 1.2 only (X25519 first, as OpenSSL's client), so the handshake is
 * the one a TLS 1.2 session costs.
 *
 * Signature: the server key's own signing operation alone (RSA-PSS with
 * SHA-256 or ECDSA over a SHA-256 hash, as a TLS 1.3 CertificateVerify signs),
 * per second and in ms, to show how much of a server handshake it is; the
 * benchmark sets it against OpenSSL's (`openssl speed`), which nginx and
 * stunnel sign with.
 *
 * Bulk: AES-128-GCM and ChaCha20-Poly1305 encryption and decryption of 16 KB
 * records (the largest TLS record) with wolfCrypt, in MB/s (10^6 bytes), and
 * the cost of one small record (a 64-byte SMTP reply) with each.
 *
 * One JSON object on stdout, a summary on stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tls_suites.h"

/* What mailward offers (invariant 7, the order by the wolfSSL build). */
static const char cipher_list[] = TLS_SUITES_CIPHERS;
#if defined(OPENSSL_EXTRA)
static const char curve_list[] = TLS_SUITES_CURVES;
#endif
static int groups[] = {TLS_SUITES_GROUPS};

#define PIPE_SIZE (256 * 1024)

struct pipe {
        size_t len, off;
        unsigned char buf[PIPE_SIZE];
};

struct pair {
        struct pipe c2s, s2c;
};

static double now(clockid_t clk)
{
        struct timespec ts;

        clock_gettime(clk, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
        fprintf(stderr, "crypto: %s\n", what);
        exit(1);
}

static int pipe_recv(struct pipe *p, char *out, int sz)
{
        size_t n = p->len - p->off;

        if (n == 0)
                return WOLFSSL_CBIO_ERR_WANT_READ;
        if (n > (size_t)sz)
                n = (size_t)sz;
        memcpy(out, p->buf + p->off, n);
        p->off += n;
        if (p->off == p->len)
                p->off = p->len = 0;
        return (int)n;
}

static int pipe_send(struct pipe *p, const char *in, int sz)
{
        if (p->len + (size_t)sz > PIPE_SIZE)
                return WOLFSSL_CBIO_ERR_WANT_WRITE;
        memcpy(p->buf + p->len, in, (size_t)sz);
        p->len += (size_t)sz;
        return sz;
}

static int srv_recv(WOLFSSL *ssl, char *b, int sz, void *ctx)
{
        (void)ssl;
        return pipe_recv(&((struct pair *)ctx)->c2s, b, sz);
}

static int srv_send(WOLFSSL *ssl, char *b, int sz, void *ctx)
{
        (void)ssl;
        return pipe_send(&((struct pair *)ctx)->s2c, b, sz);
}

static int cli_recv(WOLFSSL *ssl, char *b, int sz, void *ctx)
{
        (void)ssl;
        return pipe_recv(&((struct pair *)ctx)->s2c, b, sz);
}

static int cli_send(WOLFSSL *ssl, char *b, int sz, void *ctx)
{
        (void)ssl;
        return pipe_send(&((struct pair *)ctx)->c2s, b, sz);
}

static WOLFSSL_CTX *server_ctx(const char *cert, const char *key)
{
        WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());

        if (ctx == NULL)
                die("wolfSSL_CTX_new (server) failed");
        if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_set_cipher_list(ctx, cipher_list) != WOLFSSL_SUCCESS ||
#if defined(OPENSSL_EXTRA) /* without it, the curves compiled in (lib/tls.c) */
            wolfSSL_CTX_set1_curves_list(ctx, curve_list) != WOLFSSL_SUCCESS ||
#endif
            wolfSSL_CTX_set_groups(ctx, groups,
                                   (int)(sizeof(groups) / sizeof(groups[0]))) !=
                WOLFSSL_SUCCESS)
                die("server TLS policy (as lib/tls.c) rejected");
        if (wolfSSL_CTX_use_certificate_chain_file(ctx, cert) != WOLFSSL_SUCCESS)
                die("cannot load the certificate");
        if (wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) !=
            WOLFSSL_SUCCESS)
                die("cannot load the key");
#if defined(OPENSSL_EXTRA)
        wolfSSL_CTX_set_options(ctx, WOLFSSL_OP_CIPHER_SERVER_PREFERENCE |
                                         WOLFSSL_OP_NO_COMPRESSION);
#endif
        wolfSSL_CTX_SetIORecv(ctx, srv_recv);
        wolfSSL_CTX_SetIOSend(ctx, srv_send);
        return ctx;
}

static bool tls12; /* -V 1.2 */

static WOLFSSL_CTX *client_ctx(void)
{
        WOLFSSL_CTX *ctx = wolfSSL_CTX_new(tls12 ? wolfTLSv1_2_client_method()
                                                 : wolfSSLv23_client_method());

        if (ctx == NULL)
                die("wolfSSL_CTX_new (client) failed");
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
        wolfSSL_CTX_SetIORecv(ctx, cli_recv);
        wolfSSL_CTX_SetIOSend(ctx, cli_send);
        return ctx;
}

/* One full handshake; adds the server's CPU seconds to *srv_cpu. */
static void handshake(WOLFSSL_CTX *sctx, WOLFSSL_CTX *cctx, struct pair *p,
                      double *srv_cpu, char *desc, size_t desclen)
{
        WOLFSSL *c, *s;
        double t;
        bool cdone = false, sdone = false;
        int rounds = 0;

        p->c2s.len = p->c2s.off = p->s2c.len = p->s2c.off = 0;
        c = wolfSSL_new(cctx);
        if (c == NULL ||
            (tls12 ? wolfSSL_UseSupportedCurve(c, WOLFSSL_ECC_X25519)
                   : wolfSSL_UseKeyShare(c, WOLFSSL_ECC_X25519)) != WOLFSSL_SUCCESS)
                die("client set-up failed");
        wolfSSL_SetIOReadCtx(c, p);
        wolfSSL_SetIOWriteCtx(c, p);
        t = now(CLOCK_THREAD_CPUTIME_ID);
        s = wolfSSL_new(sctx);
        if (s == NULL)
                die("server set-up failed");
        wolfSSL_SetIOReadCtx(s, p);
        wolfSSL_SetIOWriteCtx(s, p);
        *srv_cpu += now(CLOCK_THREAD_CPUTIME_ID) - t;

        while (!cdone || !sdone) {
                if (++rounds > 100)
                        die("handshake does not finish");
                if (!cdone) {
                        int r = wolfSSL_connect(c);

                        if (r == WOLFSSL_SUCCESS)
                                cdone = true;
                        else if (wolfSSL_get_error(c, r) != WOLFSSL_ERROR_WANT_READ)
                                die("client handshake failed");
                }
                if (!sdone) {
                        int r;

                        t = now(CLOCK_THREAD_CPUTIME_ID);
                        r = wolfSSL_accept(s);
                        *srv_cpu += now(CLOCK_THREAD_CPUTIME_ID) - t;
                        if (r == WOLFSSL_SUCCESS)
                                sdone = true;
                        else if (wolfSSL_get_error(s, r) != WOLFSSL_ERROR_WANT_READ) {
                                char e[WOLFSSL_MAX_ERROR_SZ];

                                wolfSSL_ERR_error_string_n(
                                    (unsigned long)wolfSSL_get_error(s, r), e, sizeof(e));
                                fprintf(stderr, "crypto: %s\n", e);
                                die("server handshake failed");
                        }
                }
        }
        if (desc[0] == '\0')
                snprintf(desc, desclen, "%s %s %s", wolfSSL_get_version(s),
                         wolfSSL_get_cipher_name(s), wolfSSL_get_curve_name(s));
        t = now(CLOCK_THREAD_CPUTIME_ID);
        wolfSSL_free(s);
        *srv_cpu += now(CLOCK_THREAD_CPUTIME_ID) - t;
        wolfSSL_free(c);
}

/* MB/s of AES-128-GCM (chacha false) or ChaCha20-Poly1305 over records of
 * `len` bytes for about `secs`; encrypt or decrypt (decrypting checks the tag,
 * as a TLS record layer does). */
static double aead(bool chacha, size_t len, bool decrypt, double secs,
                   double *us_per_record)
{
        static unsigned char in[16384], out[16384];
        unsigned char key[32] = {1, 2, 3}, iv[12] = {4, 5, 6}, tag[16], aad[13] = {0};
        Aes aes;
        long n = 0;
        double t0, t;
        int r;

        memset(in, 'm', sizeof(in));
        if (!chacha && (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0 ||
                        wc_AesGcmSetKey(&aes, key, 16) != 0))
                die("AES-GCM set-up failed");
        r = chacha ? wc_ChaCha20Poly1305_Encrypt(key, iv, aad, sizeof(aad), in,
                                                 (word32)len, out, tag)
                   : wc_AesGcmEncrypt(&aes, out, in, (word32)len, iv, sizeof(iv), tag,
                                      sizeof(tag), aad, sizeof(aad));
        if (r != 0)
                die("AEAD encrypt failed");
        t0 = now(CLOCK_THREAD_CPUTIME_ID);
        do {
                for (int i = 0; i < 64; i++, n++) {
                        if (chacha && decrypt)
                                r = wc_ChaCha20Poly1305_Decrypt(
                                    key, iv, aad, sizeof(aad), out, (word32)len, tag, in);
                        else if (chacha)
                                r = wc_ChaCha20Poly1305_Encrypt(
                                    key, iv, aad, sizeof(aad), in, (word32)len, out, tag);
                        else if (decrypt)
                                r = wc_AesGcmDecrypt(&aes, in, out, (word32)len, iv,
                                                     sizeof(iv), tag, sizeof(tag), aad,
                                                     sizeof(aad));
                        else
                                r = wc_AesGcmEncrypt(&aes, out, in, (word32)len, iv,
                                                     sizeof(iv), tag, sizeof(tag), aad,
                                                     sizeof(aad));
                        if (r != 0)
                                die("AEAD failed");
                }
                t = now(CLOCK_THREAD_CPUTIME_ID) - t0;
        } while (t < secs);
        if (!chacha)
                wc_AesFree(&aes);
        if (us_per_record != NULL)
                *us_per_record = t / (double)n * 1e6;
        return (double)n * (double)len / t / 1e6;
}

/* Milliseconds of CPU per signature with the private key in `path` (PEM,
 * PKCS#8 or traditional) over a SHA-256-sized hash, for about `secs`; *alg is
 * set to "rsa-pss" or "ecdsa". */
static double sign_ms(const char *path, double secs, const char **alg)
{
        static unsigned char pem[16384], der[8192];
        unsigned char hash[32] = {7, 8, 9}, sig[1024];
        FILE *f = fopen(path, "r");
        size_t pem_len;
        int der_len, r = 0;
        word32 idx = 0, rsa_idx;
        WC_RNG rng;
        RsaKey rsa;
        ecc_key ecc;
        bool is_rsa;
        long n = 0;
        double t0, t;

        if (f == NULL)
                die("cannot open the key");
        pem_len = fread(pem, 1, sizeof(pem), f);
        fclose(f);
        der_len = wc_KeyPemToDer(pem, (int)pem_len, der, sizeof(der), NULL);
        if (der_len <= 0)
                die("cannot read the key as PEM");
        if (wc_GetPkcs8TraditionalOffset(der, &idx, (word32)der_len) < 0)
                idx = 0;
        if (wc_InitRng(&rng) != 0 || wc_InitRsaKey(&rsa, NULL) != 0 ||
            wc_ecc_init(&ecc) != 0)
                die("wolfCrypt set-up failed");
        rsa_idx = idx;
        is_rsa = wc_RsaPrivateKeyDecode(der, &rsa_idx, &rsa, (word32)der_len) == 0;
        if (is_rsa) {
#ifdef WC_RSA_BLINDING
                wc_RsaSetRNG(&rsa, &rng);
#endif
        } else if (wc_EccPrivateKeyDecode(der, &idx, &ecc, (word32)der_len) != 0)
                die("the key is neither RSA nor ECC");
        *alg = is_rsa ? "rsa-pss" : "ecdsa";
        t0 = now(CLOCK_THREAD_CPUTIME_ID);
        do {
                for (int i = 0; i < 8; i++, n++) {
                        word32 len = sizeof(sig);

                        if (is_rsa)
                                r = wc_RsaPSS_Sign(hash, sizeof(hash), sig, len,
                                                   WC_HASH_TYPE_SHA256, WC_MGF1SHA256,
                                                   &rsa, &rng);
                        else
                                r = wc_ecc_sign_hash(hash, sizeof(hash), sig, &len, &rng,
                                                     &ecc);
                        if (r < 0)
                                die("signing failed");
                }
                t = now(CLOCK_THREAD_CPUTIME_ID) - t0;
        } while (t < secs);
        wc_FreeRsaKey(&rsa);
        wc_ecc_free(&ecc);
        wc_FreeRng(&rng);
        return t / (double)n * 1e3;
}

int main(int argc, char **argv)
{
        const char *cert = NULL, *key = NULL;
        double secs = 2, srv_cpu = 0, t0, wall, enc, dec, small_us, cenc, cdec, csmall_us,
               sig_ms;
        const char *sig_alg = "";
        WOLFSSL_CTX *sctx, *cctx;
        static struct pair p;
        char desc[96] = "";
        long n = 0;
        bool bad = false;
        int c;

        while ((c = getopt(argc, argv, "c:k:s:V:")) != -1) {
                switch (c) {
                case 'c':
                        cert = optarg;
                        break;
                case 'k':
                        key = optarg;
                        break;
                case 's':
                        secs = atof(optarg);
                        break;
                case 'V':
                        if (strcmp(optarg, "1.2") == 0)
                                tls12 = true;
                        else if (strcmp(optarg, "1.3") != 0)
                                bad = true;
                        break;
                default:
                        bad = true;
                }
        }
        if (bad || cert == NULL || key == NULL || secs <= 0) {
                fprintf(stderr, "usage: crypto -c CERT -k KEY [-s SECONDS] [-V 1.2]\n");
                return 2;
        }
        if (wolfSSL_Init() != WOLFSSL_SUCCESS)
                die("wolfSSL_Init failed");
        sctx = server_ctx(cert, key);
        cctx = client_ctx();

        handshake(sctx, cctx, &p, &srv_cpu, desc, sizeof(desc)); /* warm-up */
        srv_cpu = 0;
        t0 = now(CLOCK_MONOTONIC);
        do {
                handshake(sctx, cctx, &p, &srv_cpu, desc, sizeof(desc));
                n++;
                wall = now(CLOCK_MONOTONIC) - t0;
        } while (wall < secs);

        sig_ms = sign_ms(key, secs / 2, &sig_alg);
        enc = aead(false, 16384, false, secs / 2, NULL);
        dec = aead(false, 16384, true, secs / 2, NULL);
        aead(false, 64, false, secs / 4, &small_us);
        cenc = aead(true, 16384, false, secs / 2, NULL);
        cdec = aead(true, 16384, true, secs / 2, NULL);
        aead(true, 64, false, secs / 4, &csmall_us);

        printf(
            "{\"wolfssl\":\"%s\",\"tls\":\"%s\",\"handshakes\":%ld,"
            "\"pair_handshakes_per_sec\":%.1f,\"server_handshake_ms\":%.3f,"
            "\"server_handshakes_per_sec\":%.1f,\"sign\":\"%s\",\"sign_ms\":%.4f,"
            "\"aes128gcm_encrypt_MBps\":%.1f,"
            "\"aes128gcm_decrypt_MBps\":%.1f,\"small_record_us\":%.2f,"
            "\"chacha20poly1305_encrypt_MBps\":%.1f,"
            "\"chacha20poly1305_decrypt_MBps\":%.1f,\"chacha_small_record_us\":%.2f}\n",
            LIBWOLFSSL_VERSION_STRING, desc, n, (double)n / wall,
            srv_cpu / (double)n * 1e3, (double)n / srv_cpu, sig_alg, sig_ms, enc, dec,
            small_us, cenc, cdec, csmall_us);
        fprintf(
            stderr,
            "crypto: wolfSSL %s, %s: %.0f handshakes/s (client+server), server side "
            "%.2f ms each (%.0f/s), its %s signature %.3f ms; AES-128-GCM %.0f MB/s "
            "encrypt, %.0f MB/s decrypt; ChaCha20-Poly1305 %.0f MB/s encrypt, %.0f MB/s "
            "decrypt\n",
            LIBWOLFSSL_VERSION_STRING, desc, (double)n / wall, srv_cpu / (double)n * 1e3,
            (double)n / srv_cpu, sig_alg, sig_ms, enc, dec, cenc, cdec);
        wolfSSL_CTX_free(sctx);
        wolfSSL_CTX_free(cctx);
        wolfSSL_Cleanup();
        return 0;
}
