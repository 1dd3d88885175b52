/*
 * Unit tests for lib/tls: two TLS endpoints cross-wired in memory, no sockets.
 *
 * The group setup runs scripts/mkcert into a temporary directory (the tests
 * run from the repository root). Peers that mailward must refuse (TLS 1.1,
 * CBC or finite-field DHE suites in TLS 1.2, unsupported groups) are plain
 * wolfSSL clients configured here, wired to a struct tls the same way.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "tls.h"

/* The server's first choice depends on the wolfSSL build (lib/tls.c): AES-GCM
 * with AES-NI, ChaCha20-Poly1305 in C code only. The "other" is the first
 * suite of the other kind, to show that the server's order wins. */
#ifdef WOLFSSL_AESNI
#define TEST_TLS13_FIRST   "TLS_AES_128_GCM_SHA256"
#define TEST_TLS13_BITS    128
#define TEST_TLS12_RSA     "ECDHE-RSA-AES128-GCM-SHA256"
#define TEST_TLS12_RSA_OTH "ECDHE-RSA-CHACHA20-POLY1305"
#else
#define TEST_TLS13_FIRST   "TLS_CHACHA20_POLY1305_SHA256"
#define TEST_TLS13_BITS    256
#define TEST_TLS12_RSA     "ECDHE-RSA-CHACHA20-POLY1305"
#define TEST_TLS12_RSA_OTH "ECDHE-RSA-AES128-GCM-SHA256"
#endif

struct test_env {
        char dir[64];
        char path[128];
};

/*
 * wolfSSL's error queue is empty. Only builds with OPENSSL_EXTRA (Debian's,
 * the asm build) or DEBUG_WOLFSSL_VERBOSE keep one; the lean build has none.
 */
static void test_error_queue_empty(void)
{
#if defined(OPENSSL_EXTRA) || defined(DEBUG_WOLFSSL_VERBOSE)
        assert_int_equal(wolfSSL_ERR_peek_error(), 0);
#endif
}

static const char *test_path(void **state, const char *name)
{
        struct test_env *env = *state;

        snprintf(env->path, sizeof(env->path), "%s/%s", env->dir, name);
        return env->path;
}

static int test_group_setup(void **state)
{
        struct test_env *env = calloc(1, sizeof(*env));
        char cmd[256];

        if (env == NULL)
                return -1;
        snprintf(env->dir, sizeof(env->dir), "/tmp/mailward-test-tls-XXXXXX");
        if (mkdtemp(env->dir) == NULL) {
                free(env);
                return -1;
        }
        snprintf(cmd, sizeof(cmd), "scripts/mkcert '%s'", env->dir);
        if (system(cmd) != 0 || tls_global_init() != 0) {
                fprintf(stderr, "test_tls: %s failed (run from the repository root)\n",
                        cmd);
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env->dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "cannot remove %s\n", env->dir);
                free(env);
                return -1;
        }
        *state = env;
        return 0;
}

static int test_group_teardown(void **state)
{
        struct test_env *env = *state;
        char cmd[256];

        if (env == NULL) /* the setup failed */
                return 0;
        tls_global_cleanup();
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env->dir);
        if (system(cmd) != 0)
                return -1;
        free(env);
        return 0;
}

static struct tls_ctx *test_server_ctx(void **state, const char *cert, const char *key)
{
        struct tls_ctx_conf conf = {0};
        char certpath[128], err[256];
        struct tls_ctx *ctx;

        snprintf(certpath, sizeof(certpath), "%s", test_path(state, cert));
        conf.cert_file = certpath;
        conf.key_file = test_path(state, key);
        ctx = tls_ctx_new(TLS_ROLE_SERVER, &conf, err, sizeof(err));
        if (ctx == NULL)
                fail_msg("server ctx: %s", err);
        return ctx;
}

static struct tls_ctx *test_client_ctx(void **state, bool verify)
{
        struct tls_ctx_conf conf = {0};
        char err[256];
        struct tls_ctx *ctx;

        conf.ca_file = verify ? test_path(state, "ca.pem") : NULL;
        conf.verify_peer = verify;
        ctx = tls_ctx_new(TLS_ROLE_CLIENT, &conf, err, sizeof(err));
        if (ctx == NULL)
                fail_msg("client ctx: %s", err);
        return ctx;
}

/* Move everything a produced into b's input. */
static void test_pump(struct tls *a, struct tls *b)
{
        struct buf *out = tls_output(a);

        tls_feed(b, buf_data(out), buf_len(out));
        buf_consume(out, buf_len(out));
}

struct test_outcome {
        enum tls_result client;
        enum tls_result server;
};

/*
 * Run both handshakes until both are done or one fails; after a failure the
 * other side gets one more turn, to read the alert.
 */
static struct test_outcome test_handshake(struct tls *c, struct tls *s)
{
        struct test_outcome o = {TLS_WANT, TLS_WANT};
        int round, failed_rounds = 0;

        for (round = 0; round < 20 && failed_rounds < 2; round++) {
                if (o.client != TLS_ERROR)
                        o.client = tls_handshake(c);
                test_pump(c, s);
                if (o.server != TLS_ERROR)
                        o.server = tls_handshake(s);
                test_pump(s, c);
                if (o.client == TLS_OK && o.server == TLS_OK)
                        break;
                if (o.client == TLS_ERROR || o.server == TLS_ERROR)
                        failed_rounds++;
        }
        return o;
}

/* A client with verify_peer against a server with cert/key; returns the outcome. */
static struct test_outcome test_verify(void **state, const char *cert, const char *key,
                                       const char *servername, char *cerr, size_t cerrlen)
{
        struct tls_ctx *sctx = test_server_ctx(state, cert, key);
        struct tls_ctx *cctx = test_client_ctx(state, true);
        struct tls *s = tls_new(sctx, NULL), *c = tls_new(cctx, servername);
        struct test_outcome o = test_handshake(c, s);

        snprintf(cerr, cerrlen, "%s", tls_error(c));
        tls_free(c);
        tls_free(s);
        tls_ctx_free(cctx);
        tls_ctx_free(sctx);
        return o;
}

/* Read from t until TLS_WANT, in pieces of at most chunk bytes, into out. */
static enum tls_result test_read_all(struct tls *t, struct buf *out, size_t chunk)
{
        char tmp[4096];
        enum tls_result r;
        size_t got;

        assert_true(chunk <= sizeof(tmp));
        while ((r = tls_read(t, tmp, chunk, &got)) == TLS_OK) {
                assert_true(got > 0 && got <= chunk);
                buf_append(out, tmp, got);
        }
        return r;
}

static void test_full_session(void **state)
{
        struct tls_ctx *sctx = test_server_ctx(state, "server.pem", "server.key");
        struct tls_ctx *cctx = test_client_ctx(state, true);
        struct tls *s = tls_new(sctx, NULL), *c = tls_new(cctx, "localhost");
        struct test_outcome o;
        struct buf got, *out;
        char big[100 * 1024];
        size_t i, n;

        assert_false(tls_handshake_done(c));
        assert_string_equal(tls_version(c), "");
        tls_release_idle(c); /* before the handshake: nothing to give back */
        o = test_handshake(c, s);
        assert_int_equal(o.client, TLS_OK);
        assert_int_equal(o.server, TLS_OK);
        assert_true(tls_handshake_done(c));
        assert_true(tls_handshake_done(s));
        assert_int_equal(tls_handshake(c), TLS_OK);
        assert_string_equal(tls_error(c), "");
        /* What follows shows both still work once their zero pages are gone
         * (conn does this a second into a session that stays open). */
        tls_release_idle(c);
        tls_release_idle(s);

        /* TLS 1.3 by default, the server's first choice of suite. */
        assert_string_equal(tls_version(c), "TLSv1.3");
        assert_string_equal(tls_version(s), "TLSv1.3");
        assert_string_equal(tls_cipher(c), TEST_TLS13_FIRST);
        assert_string_equal(tls_cipher(s), TEST_TLS13_FIRST);
        assert_int_equal(tls_cipher_bits(s), TEST_TLS13_BITS);

        /* Nothing to read yet: TLS_WANT, not an error. */
        buf_init(&got);
        assert_int_equal(test_read_all(s, &got, 100), TLS_WANT);
        assert_int_equal(buf_len(&got), 0);

        /* Client to server, fed a few bytes at a time. */
        assert_int_equal(tls_write(c, "EHLO client.test\r\n", 18), TLS_OK);
        out = tls_output(c);
        assert_true(buf_len(out) > 18);
        while (buf_len(out) > 0) {
                n = buf_len(out) < 7 ? buf_len(out) : 7;
                tls_feed(s, buf_data(out), n);
                buf_consume(out, n);
                assert_int_equal(test_read_all(s, &got, 100), TLS_WANT);
                assert_int_equal(tls_input_pending(s), 0);
        }
        assert_int_equal(buf_len(&got), 18);
        assert_memory_equal(buf_data(&got), "EHLO client.test\r\n", 18);
        buf_reset(&got);

        /* Server to client: 100 KB in one write, read back in small pieces. */
        for (i = 0; i < sizeof(big); i++)
                big[i] = (char)(i * 7 + i / 251);
        assert_int_equal(tls_write(s, big, sizeof(big)), TLS_OK);
        test_pump(s, c);
        assert_int_equal(test_read_all(c, &got, 1000), TLS_WANT);
        assert_int_equal(buf_len(&got), sizeof(big));
        assert_memory_equal(buf_data(&got), big, sizeof(big));
        buf_reset(&got);

        /* close_notify: the server reads TLS_CLOSED. */
        tls_shutdown(c);
        assert_true(buf_len(tls_output(c)) > 0);
        test_pump(c, s);
        assert_int_equal(test_read_all(s, &got, 100), TLS_CLOSED);
        assert_int_equal(buf_len(&got), 0);

        buf_cleanup(&got);
        tls_free(c);
        tls_free(s);
        tls_ctx_free(cctx);
        tls_ctx_free(sctx);
}

static void test_verify_names(void **state)
{
        char err[256];
        struct test_outcome o;

        o = test_verify(state, "server.pem", "server.key", "localhost", err, sizeof(err));
        assert_int_equal(o.client, TLS_OK);
        assert_int_equal(o.server, TLS_OK);
        o = test_verify(state, "server-rsa.pem", "server-rsa.key", "mx.test", err,
                        sizeof(err));
        assert_int_equal(o.client, TLS_OK);
        assert_int_equal(o.server, TLS_OK);

        o = test_verify(state, "server.pem", "server.key", "127.0.0.1", err, sizeof(err));
        assert_int_equal(o.client, TLS_OK);
        o = test_verify(state, "server.pem", "server.key", "127.0.0.2", err, sizeof(err));
        assert_int_equal(o.client, TLS_ERROR);
        assert_non_null(strstr(err, "(-322)"));

        o = test_verify(state, "server.pem", "server.key", "other.test", err,
                        sizeof(err));
        assert_int_equal(o.client, TLS_ERROR);
        assert_int_equal(o.server, TLS_ERROR);
        assert_non_null(strstr(err, "handshake: "));
        assert_non_null(strstr(err, "(-322)")); /* DOMAIN_NAME_MISMATCH */

        o = test_verify(state, "wrongname.pem", "wrongname.key", "localhost", err,
                        sizeof(err));
        assert_int_equal(o.client, TLS_ERROR);
        assert_non_null(strstr(err, "(-322)"));

        /* Failures leave nothing behind in wolfSSL's (process-wide) error queue. */
        test_error_queue_empty();
}

/* The name goes out as SNI in the ClientHello, unless it is an IP address. */
static void test_sni(void **state)
{
        static const char *const names[] = {"mx.test", "127.0.0.1"};
        struct tls_ctx *cctx = test_client_ctx(state, true);
        struct buf *out;
        struct tls *c;
        size_t i;

        for (i = 0; i < 2; i++) {
                c = tls_new(cctx, names[i]);
                assert_int_equal(tls_handshake(c), TLS_WANT);
                out = tls_output(c);
                assert_true(buf_len(out) > 0);
                if (i == 0)
                        assert_non_null(memmem(buf_data(out), buf_len(out), names[i],
                                               strlen(names[i])));
                else
                        assert_null(memmem(buf_data(out), buf_len(out), names[i],
                                           strlen(names[i])));
                tls_free(c);
        }
        tls_ctx_free(cctx);
}

static void test_verify_chain(void **state)
{
        char err[256];
        struct test_outcome o;

        o = test_verify(state, "selfsigned.pem", "selfsigned.key", "localhost", err,
                        sizeof(err));
        assert_int_equal(o.client, TLS_ERROR);
        assert_int_equal(o.server, TLS_ERROR);
        assert_non_null(strstr(err, "(-275)")); /* ASN_SELF_SIGNED_E */

        o = test_verify(state, "expired.pem", "expired.key", "localhost", err,
                        sizeof(err));
        assert_int_equal(o.client, TLS_ERROR);
        assert_int_equal(o.server, TLS_ERROR);
        assert_non_null(strstr(err, "(-151)")); /* ASN_AFTER_DATE_E */
}

/* Without verify_peer any certificate is accepted (opportunistic TLS). */
static void test_no_verify(void **state)
{
        struct tls_ctx *sctx = test_server_ctx(state, "selfsigned.pem", "selfsigned.key");
        struct tls_ctx *cctx = test_client_ctx(state, false);
        struct tls *s = tls_new(sctx, NULL), *c = tls_new(cctx, "other.test");
        struct test_outcome o = test_handshake(c, s);

        assert_int_equal(o.client, TLS_OK);
        assert_int_equal(o.server, TLS_OK);
        tls_free(c);
        tls_free(s);
        tls_ctx_free(cctx);
        tls_ctx_free(sctx);
}

/*
 * A verify_record client (trust anchors ca.pem, or none if !with_ca) against
 * a server with cert/key: the handshake must complete; *peer is filled in.
 */
static void test_record(void **state, const char *cert, const char *key, bool with_ca,
                        struct tls_peer *peer)
{
        struct tls_ctx *sctx = test_server_ctx(state, cert, key);
        struct tls_ctx_conf conf = {0};
        struct tls_ctx *cctx;
        struct test_outcome o;
        struct tls *s, *c;
        char err[256];

        conf.ca_file = with_ca ? test_path(state, "ca.pem") : NULL;
        conf.verify_record = true;
        cctx = tls_ctx_new(TLS_ROLE_CLIENT, &conf, err, sizeof(err));
        if (cctx == NULL)
                fail_msg("client ctx: %s", err);
        s = tls_new(sctx, NULL);
        c = tls_new(cctx, "localhost");
        assert_int_equal(tls_peer_info(c, peer), -1); /* not yet */
        assert_false(peer->has_cert);
        assert_false(peer->chain_trusted);
        o = test_handshake(c, s);
        if (o.client != TLS_OK)
                fail_msg("%s: client handshake: %s", cert, tls_error(c));
        assert_int_equal(o.server, TLS_OK);
        assert_int_equal(tls_peer_info(c, peer), 0);
        /* Nothing left behind in wolfSSL's error queue by the override. */
        test_error_queue_empty();
        tls_free(c);
        tls_free(s);
        tls_ctx_free(cctx);
        tls_ctx_free(sctx);
}

/* The hex SHA-256 of file's certificate in DER, as openssl and sha256sum say it. */
static void test_cert_sha256(void **state, const char *file, char out[65])
{
        char cmd[512];
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "openssl x509 -in '%s' -outform DER | sha256sum | cut -c1-64",
                 test_path(state, file));
        p = popen(cmd, "r");
        assert_non_null(p);
        assert_non_null(fgets(out, 65, p));
        assert_int_equal(pclose(p), 0);
        assert_int_equal(strlen(out), 64);
}

static bool test_has_name(const struct tls_peer *peer, const char *name)
{
        unsigned i;

        for (i = 0; i < peer->nnames; i++)
                if (strcmp(peer->names[i], name) == 0)
                        return true;
        return false;
}

static void test_record_trusted(void **state)
{
        struct tls_peer peer;
        char sha[65];

        test_record(state, "server.pem", "server.key", true, &peer);
        assert_true(peer.has_cert);
        assert_true(peer.chain_trusted);
        assert_false(peer.expired);
        assert_int_equal(peer.verify_error, 0);
        assert_string_equal(peer.verify_reason, "");
        /* dNSNames only: the IP addresses of the subjectAltName are left out. */
        assert_int_equal(peer.nnames, 2);
        assert_true(test_has_name(&peer, "localhost"));
        assert_true(test_has_name(&peer, "mx.test"));
        test_cert_sha256(state, "server.pem", sha);
        assert_string_equal(peer.sha256, sha);

        /* RSA, TLS 1.3 as well. */
        test_record(state, "server-rsa.pem", "server-rsa.key", true, &peer);
        assert_true(peer.chain_trusted);
        test_cert_sha256(state, "server-rsa.pem", sha);
        assert_string_equal(peer.sha256, sha);
}

static void test_record_selfsigned(void **state)
{
        struct tls_peer peer;
        char sha[65];

        test_record(state, "selfsigned.pem", "selfsigned.key", true, &peer);
        assert_true(peer.has_cert);
        assert_false(peer.chain_trusted);
        assert_false(peer.expired);
        assert_int_equal(peer.verify_error, -275); /* ASN_SELF_SIGNED_E */
        assert_non_null(strstr(peer.verify_reason, "(-275) at depth 0"));
        assert_true(test_has_name(&peer, "localhost"));
        test_cert_sha256(state, "selfsigned.pem", sha);
        assert_string_equal(peer.sha256, sha);
}

static void test_record_expired(void **state)
{
        struct tls_peer peer;

        test_record(state, "expired.pem", "expired.key", true, &peer);
        assert_true(peer.has_cert);
        assert_true(peer.expired);
        assert_false(peer.chain_trusted);          /* expired implies not trusted */
        assert_int_equal(peer.verify_error, -151); /* ASN_AFTER_DATE_E */
        assert_non_null(strstr(peer.verify_reason, "(-151)"));
        assert_true(test_has_name(&peer, "localhost"));
}

/* No name check in the TLS layer: a wrong name is still a trusted chain. */
static void test_record_wrongname(void **state)
{
        struct tls_peer peer;

        test_record(state, "wrongname.pem", "wrongname.key", true, &peer);
        assert_true(peer.has_cert);
        assert_true(peer.chain_trusted);
        assert_false(peer.expired);
        assert_int_equal(peer.verify_error, 0);
        assert_int_equal(peer.nnames, 1);
        assert_string_equal(peer.names[0], "wrong.test");
}

static void test_record_no_ca(void **state)
{
        struct tls_peer peer;
        char sha[65];

        test_record(state, "server.pem", "server.key", false, &peer);
        assert_true(peer.has_cert);
        assert_false(peer.chain_trusted);
        assert_false(peer.expired);
        assert_int_equal(peer.verify_error, -188); /* ASN_NO_SIGNER_E */
        assert_int_equal(peer.nnames, 2);
        test_cert_sha256(state, "server.pem", sha);
        assert_string_equal(peer.sha256, sha);
}

/* tls_peer_info() with verify_peer: trusted once the handshake succeeded. */
static void test_peer_info_verify_peer(void **state)
{
        struct tls_ctx *sctx = test_server_ctx(state, "server.pem", "server.key");
        struct tls_ctx *cctx = test_client_ctx(state, true);
        struct tls *s = tls_new(sctx, NULL), *c = tls_new(cctx, "mx.test");
        struct test_outcome o = test_handshake(c, s);
        struct tls_peer peer;

        assert_int_equal(o.client, TLS_OK);
        assert_int_equal(tls_peer_info(c, &peer), 0);
        assert_true(peer.has_cert);
        assert_true(peer.chain_trusted);
        assert_false(peer.expired);
        assert_int_equal(peer.verify_error, 0);
        /* Its dNSNames in the certificate's order (scripts/mkcert), not its IPs. */
        assert_int_equal(peer.nnames, 2);
        assert_string_equal(peer.names[0], "localhost");
        assert_string_equal(peer.names[1], "mx.test");
        assert_int_equal(strlen(peer.sha256), 64);
        /* The server asked for no client certificate. */
        assert_int_equal(tls_peer_info(s, &peer), 0);
        assert_false(peer.has_cert);
        assert_false(peer.chain_trusted);
        assert_string_equal(peer.sha256, "");
        tls_free(c);
        tls_free(s);
        tls_ctx_free(cctx);

        /* A failed verify_peer handshake: -1, not trusted, the reason kept. */
        cctx = test_client_ctx(state, true);
        tls_ctx_free(sctx);
        sctx = test_server_ctx(state, "expired.pem", "expired.key");
        s = tls_new(sctx, NULL);
        c = tls_new(cctx, "localhost");
        o = test_handshake(c, s);
        assert_int_equal(o.client, TLS_ERROR);
        assert_int_equal(tls_peer_info(c, &peer), -1);
        assert_false(peer.chain_trusted);
        assert_true(peer.expired);
        assert_int_equal(peer.verify_error, -151);
        tls_free(c);
        tls_free(s);
        tls_ctx_free(cctx);
        tls_ctx_free(sctx);
}

/* Without any verification chain_trusted is never claimed. */
static void test_peer_info_no_verify(void **state)
{
        struct tls_ctx *sctx = test_server_ctx(state, "server.pem", "server.key");
        struct tls_ctx *cctx = test_client_ctx(state, false);
        struct tls *s = tls_new(sctx, NULL), *c = tls_new(cctx, "localhost");
        struct test_outcome o = test_handshake(c, s);
        struct tls_peer peer;

        assert_int_equal(o.client, TLS_OK);
        assert_int_equal(tls_peer_info(c, &peer), 0);
        assert_true(peer.has_cert);
        assert_false(peer.chain_trusted);
        assert_int_equal(peer.nnames, 2);
        assert_int_equal(strlen(peer.sha256), 64);
        tls_free(c);
        tls_free(s);
        tls_ctx_free(cctx);
        tls_ctx_free(sctx);
}

/* A wolfSSL client configured by hand, for peers that struct tls never makes. */
struct test_raw {
        WOLFSSL_CTX *ctx;
        WOLFSSL *ssl;
        struct buf in, out;
};

static int test_raw_recv(WOLFSSL *ssl, char *p, int sz, void *arg)
{
        struct test_raw *r = arg;
        size_t n = buf_len(&r->in);

        (void)ssl;
        if (n == 0)
                return WOLFSSL_CBIO_ERR_WANT_READ;
        if (n > (size_t)sz)
                n = (size_t)sz;
        memcpy(p, buf_data(&r->in), n);
        buf_consume(&r->in, n);
        return (int)n;
}

static int test_raw_send(WOLFSSL *ssl, char *p, int sz, void *arg)
{
        struct test_raw *r = arg;

        (void)ssl;
        buf_append(&r->out, p, (size_t)sz);
        return sz;
}

/*
 * Whether this wolfSSL can make a client offering ciphers (NULL: any) and
 * group (0: any). A wolfSSL built without a suite or group (the lean build
 * has no RC4 and no curve outside mailward's list) cannot offer it, so there
 * is nothing to refuse; the tests say so and go on.
 */
static bool test_client_can_offer(const char *ciphers, int group)
{
        WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
        WOLFSSL *ssl;
        bool ok;

        assert_non_null(ctx);
        ok = ciphers == NULL ||
             wolfSSL_CTX_set_cipher_list(ctx, ciphers) == WOLFSSL_SUCCESS;
        ssl = ok ? wolfSSL_new(ctx) : NULL;
        if (ok && group != 0)
                ok = ssl != NULL &&
                     wolfSSL_UseSupportedCurve(ssl, (word16)group) == WOLFSSL_SUCCESS;
        wolfSSL_free(ssl);
        wolfSSL_CTX_free(ctx);
        if (!ok)
                print_message(
                    "not in this wolfSSL build, no client can offer it: %s %d\n",
                    ciphers != NULL ? ciphers : "", group);
        return ok;
}

/*
 * A raw client with method, cipher list and groups (groups may be NULL: the
 * defaults), no certificate checks. Fails the test if wolfSSL refuses them.
 */
static void test_raw_init(struct test_raw *r, WOLFSSL_METHOD *method, const char *ciphers,
                          int *groups, int ngroups)
{
        int i;

        buf_init(&r->in);
        buf_init(&r->out);
        r->ctx = wolfSSL_CTX_new(method);
        assert_non_null(r->ctx);
        wolfSSL_CTX_set_verify(r->ctx, WOLFSSL_VERIFY_NONE, NULL);
        if (ciphers != NULL)
                assert_int_equal(wolfSSL_CTX_set_cipher_list(r->ctx, ciphers),
                                 WOLFSSL_SUCCESS);
        wolfSSL_CTX_SetIORecv(r->ctx, test_raw_recv);
        wolfSSL_CTX_SetIOSend(r->ctx, test_raw_send);
        r->ssl = wolfSSL_new(r->ctx);
        assert_non_null(r->ssl);
        wolfSSL_SetIOReadCtx(r->ssl, r);
        wolfSSL_SetIOWriteCtx(r->ssl, r);
        if (groups != NULL) {
                for (i = 0; i < ngroups; i++)
                        assert_int_equal(
                            wolfSSL_UseSupportedCurve(r->ssl, (word16)groups[i]),
                            WOLFSSL_SUCCESS);
                if (wolfSSL_GetVersion(r->ssl) == WOLFSSL_TLSV1_3)
                        assert_int_equal(wolfSSL_set_groups(r->ssl, groups, ngroups),
                                         WOLFSSL_SUCCESS);
        }
}

static void test_raw_cleanup(struct test_raw *r)
{
        wolfSSL_free(r->ssl);
        wolfSSL_CTX_free(r->ctx);
        buf_cleanup(&r->in);
        buf_cleanup(&r->out);
}

/* What a raw client against our server came to. */
struct test_raw_result {
        enum tls_result server; /* the server's last tls_handshake() */
        int client_err;         /* the client's wolfSSL_get_error(), 0 if it finished */
        char server_err[256];   /* tls_error() */
        char got[128];          /* "version cipher" as the server saw them */
        int bits;               /* tls_cipher_bits() */
};

/* Handshake a raw client against a server struct tls until both end. */
static void test_raw_handshake(struct test_raw *r, struct tls *s,
                               struct test_raw_result *res)
{
        struct buf *out;
        int round, ret;
        bool rdone = false, rfailed = false;

        res->server = TLS_WANT;
        for (round = 0; round < 20; round++) {
                if (!rdone && !rfailed) {
                        ret = wolfSSL_connect(r->ssl);
                        rdone = ret == WOLFSSL_SUCCESS;
                        res->client_err = rdone ? 0 : wolfSSL_get_error(r->ssl, ret);
                        rfailed = !rdone && res->client_err != WOLFSSL_ERROR_WANT_READ;
                }
                tls_feed(s, buf_data(&r->out), buf_len(&r->out));
                buf_reset(&r->out);
                if (res->server != TLS_ERROR)
                        res->server = tls_handshake(s);
                out = tls_output(s);
                buf_append(&r->in, buf_data(out), buf_len(out));
                buf_consume(out, buf_len(out));
                if ((rdone || rfailed) && res->server != TLS_WANT)
                        break;
                if (rfailed && tls_input_pending(s) == 0)
                        break;
        }
        /* Both agree: they finish together or fail together. */
        assert_int_equal(rdone, res->server == TLS_OK);
}

/* Run a raw client against our server with cert and key. */
static void test_raw_against(void **state, const char *cert, const char *key,
                             WOLFSSL_METHOD *method, const char *ciphers, int *groups,
                             int ngroups, struct test_raw_result *res)
{
        struct tls_ctx *sctx = test_server_ctx(state, cert, key);
        struct tls *s = tls_new(sctx, NULL);
        struct test_raw r;

        memset(res, 0, sizeof(*res));
        test_raw_init(&r, method, ciphers, groups, ngroups);
        test_raw_handshake(&r, s, res);
        snprintf(res->server_err, sizeof(res->server_err), "%s", tls_error(s));
        snprintf(res->got, sizeof(res->got), "%s %s", tls_version(s), tls_cipher(s));
        res->bits = tls_cipher_bits(s);
        test_raw_cleanup(&r);
        tls_free(s);
        tls_ctx_free(sctx);
}

static void test_tls12_allowed(void **state)
{
        struct test_raw_result res;

        /* The server's order wins: its first choice although the client lists it last. */
        test_raw_against(
            state, "server-rsa.pem", "server-rsa.key", wolfTLSv1_2_client_method(),
            TEST_TLS12_RSA_OTH ":ECDHE-RSA-AES256-GCM-SHA384:" TEST_TLS12_RSA, NULL, 0,
            &res);
        assert_int_equal(res.server, TLS_OK);
        assert_string_equal(res.got, "TLSv1.2 " TEST_TLS12_RSA);

        test_raw_against(state, "server.pem", "server.key", wolfTLSv1_2_client_method(),
                         "ECDHE-ECDSA-CHACHA20-POLY1305", NULL, 0, &res);
        assert_int_equal(res.server, TLS_OK);
        assert_string_equal(res.got, "TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305");
        assert_int_equal(res.bits, 256);
}

/*
 * tls_cipher_bits() reads the key length from the suite's name: OpenSSL's
 * names for TLS 1.2, IANA's for TLS 1.3, AES-128, AES-256 and ChaCha20.
 */
static void test_cipher_bits(void **state)
{
        static const struct {
                bool tls13;
                const char *offer, *got;
                int bits;
        } cases[] = {
            {false, "ECDHE-ECDSA-AES128-GCM-SHA256",
             "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256", 128},
            {false, "ECDHE-ECDSA-AES256-GCM-SHA384",
             "TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384", 256},
            {true, "TLS13-AES128-GCM-SHA256", "TLSv1.3 TLS_AES_128_GCM_SHA256", 128},
            {true, "TLS13-AES256-GCM-SHA384", "TLSv1.3 TLS_AES_256_GCM_SHA384", 256},
            {true, "TLS13-CHACHA20-POLY1305-SHA256",
             "TLSv1.3 TLS_CHACHA20_POLY1305_SHA256", 256},
        };
        struct test_raw_result res;
        size_t i;

        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                test_raw_against(state, "server.pem", "server.key",
                                 cases[i].tls13 ? wolfTLSv1_3_client_method()
                                                : wolfTLSv1_2_client_method(),
                                 cases[i].offer, NULL, 0, &res);
                assert_int_equal(res.server, TLS_OK);
                assert_string_equal(res.got, cases[i].got);
                assert_int_equal(res.bits, cases[i].bits);
        }
}

/* TLS 1.1 is refused, and the client hears why: the server's alert was flushed. */
static void test_tls11_refused(void **state)
{
        struct test_raw_result res;

        test_raw_against(state, "server-rsa.pem", "server-rsa.key",
                         wolfTLSv1_1_client_method(), NULL, NULL, 0, &res);
        assert_int_equal(res.server, TLS_ERROR);
        assert_non_null(strstr(res.server_err, "handshake: "));
        assert_non_null(strstr(res.server_err, "(-326)")); /* VERSION_ERROR */
        assert_int_equal(res.client_err, FATAL_ERROR);     /* received a fatal alert */
}

static void test_weak_suites_refused(void **state)
{
        static const char *const weak[] = {
            "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384", /* CBC */
            "ECDHE-RSA-AES128-SHA",                            /* CBC, SHA-1 */
            "DHE-RSA-AES128-GCM-SHA256",                       /* finite-field DHE */
            "ECDHE-RSA-RC4-SHA",                               /* RC4 */
        };
        struct test_raw_result res;
        size_t i;

        /* (This wolfSSL has no static RSA suites at all, so no client can offer them.) */
        for (i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
                if (!test_client_can_offer(weak[i], 0))
                        continue;
                test_raw_against(state, "server-rsa.pem", "server-rsa.key",
                                 wolfTLSv1_2_client_method(), weak[i], NULL, 0, &res);
                assert_int_equal(res.server, TLS_ERROR);
                assert_non_null(strstr(res.server_err, "(-501)")); /* MATCH_SUITE_ERROR */
        }
}

/*
 * TLS 1.3: a client whose only group is outside the list is refused; each group
 * in the list works on its own. (In TLS 1.2 the server picks the curve from its
 * own list, so there is nothing a client can force there.)
 */
static void test_groups(void **state)
{
        static int refused[] = {WOLFSSL_ECC_SECP224R1, WOLFSSL_ECC_SECP521R1,
                                WOLFSSL_ECC_BRAINPOOLP256R1, WOLFSSL_ECC_X448};
        static int allowed[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1,
                                WOLFSSL_ECC_SECP384R1, WOLFSSL_FFDHE_2048,
                                WOLFSSL_FFDHE_3072};
        struct test_raw_result res;
        size_t i;

        for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                if (!test_client_can_offer(NULL, refused[i]))
                        continue;
                test_raw_against(state, "server.pem", "server.key",
                                 wolfTLSv1_3_client_method(), NULL, &refused[i], 1, &res);
                assert_int_equal(res.server, TLS_ERROR);
        }
        for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
                test_raw_against(state, "server.pem", "server.key",
                                 wolfTLSv1_3_client_method(), NULL, &allowed[i], 1, &res);
                assert_int_equal(res.server, TLS_OK);
                assert_string_equal(res.got, "TLSv1.3 " TEST_TLS13_FIRST);
        }
}

static void test_garbage(void **state)
{
        struct tls_ctx *sctx = test_server_ctx(state, "server.pem", "server.key");
        struct tls *s = tls_new(sctx, NULL);

        tls_feed(s, "EHLO x\r\n", 8);
        assert_int_equal(tls_handshake(s), TLS_ERROR);
        assert_string_not_equal(tls_error(s), "");
        assert_false(tls_handshake_done(s));
        tls_free(s);
        tls_ctx_free(sctx);
}

static void test_ctx_errors(void **state)
{
        struct tls_ctx_conf conf = {0};
        char cert[128], err[256];

        snprintf(cert, sizeof(cert), "%s", test_path(state, "server.pem"));
        conf.cert_file = cert;
        conf.key_file = test_path(state, "missing.key");
        assert_null(tls_ctx_new(TLS_ROLE_SERVER, &conf, err, sizeof(err)));
        assert_non_null(strstr(err, conf.key_file));
        assert_non_null(strstr(err, "No such file"));

        conf.key_file = test_path(state, "wrongname.key");
        assert_null(tls_ctx_new(TLS_ROLE_SERVER, &conf, err, sizeof(err)));
        assert_non_null(strstr(err, conf.key_file));
        assert_non_null(strstr(err, "does not match"));

        conf.key_file = test_path(state, "ca.pem"); /* not a key */
        assert_null(tls_ctx_new(TLS_ROLE_SERVER, &conf, err, sizeof(err)));
        assert_non_null(strstr(err, conf.key_file));

        memset(&conf, 0, sizeof(conf));
        conf.verify_peer = true;
        assert_null(tls_ctx_new(TLS_ROLE_CLIENT, &conf, err, sizeof(err)));
        assert_string_not_equal(err, "");
}

static void test_free_null(void **state)
{
        (void)state;
        tls_free(NULL);
        tls_ctx_free(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_full_session),
            cmocka_unit_test(test_verify_names),
            cmocka_unit_test(test_verify_chain),
            cmocka_unit_test(test_sni),
            cmocka_unit_test(test_no_verify),
            cmocka_unit_test(test_record_trusted),
            cmocka_unit_test(test_record_selfsigned),
            cmocka_unit_test(test_record_expired),
            cmocka_unit_test(test_record_wrongname),
            cmocka_unit_test(test_record_no_ca),
            cmocka_unit_test(test_peer_info_verify_peer),
            cmocka_unit_test(test_peer_info_no_verify),
            cmocka_unit_test(test_tls12_allowed),
            cmocka_unit_test(test_cipher_bits),
            cmocka_unit_test(test_tls11_refused),
            cmocka_unit_test(test_weak_suites_refused),
            cmocka_unit_test(test_groups),
            cmocka_unit_test(test_garbage),
            cmocka_unit_test(test_ctx_errors),
            cmocka_unit_test(test_free_null),
        };

        return cmocka_run_group_tests(tests, test_group_setup, test_group_teardown);
}
