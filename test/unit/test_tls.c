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
#include <wolfssl/wolfcrypt/hash.h>

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
        conf.cert_file[0] = certpath;
        conf.key_file[0] = test_path(state, key);
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

/* notAfter of a certificate file as openssl(1) reads it, in seconds since the epoch. */
static int64_t test_openssl_not_after(const char *path)
{
        char cmd[512], line[128];
        struct tm tm;
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "openssl x509 -in '%s' -noout -enddate -dateopt iso_8601", path);
        p = popen(cmd, "r");
        assert_non_null(p);
        assert_non_null(fgets(line, sizeof(line), p));
        assert_int_equal(pclose(p), 0);
        memset(&tm, 0, sizeof(tm));
        assert_non_null(strptime(line, "notAfter=%Y-%m-%d %H:%M:%S", &tm));
        return (int64_t)timegm(&tm);
}

/* The i-th certificate of ctx: its expiry, 0 if there is none. */
static int64_t test_not_after(const struct tls_ctx *ctx, unsigned i, const char *type)
{
        struct tls_cert_desc d = {.not_after = -1};

        if (!tls_ctx_cert(ctx, i, &d))
                return 0;
        assert_non_null(d.key_type);
        assert_string_equal(d.key_type, type);
        assert_non_null(d.file);
        return d.not_after;
}

/* The expiry of the certificate a server ctx serves (metrics, reload logs). */
static void test_ctx_not_after(void **state)
{
        struct tls_ctx *ecdsa = test_server_ctx(state, "server.pem", "server.key");
        struct tls_ctx *expired = test_server_ctx(state, "expired.pem", "expired.key");
        struct tls_ctx *client = test_client_ctx(state, true);
        int64_t want = test_openssl_not_after(test_path(state, "server.pem"));

        assert_true(want > 1700000000);
        assert_int_equal(test_not_after(ecdsa, 0, "ecdsa"), want);
        assert_int_equal(test_not_after(ecdsa, 1, ""), 0);
        assert_int_equal(test_not_after(expired, 0, "ecdsa"),
                         test_openssl_not_after(test_path(state, "expired.pem")));
        assert_true(test_not_after(expired, 0, "ecdsa") < 1609459200); /* 2021-01-01 */
        assert_int_equal(test_not_after(client, 0, ""), 0);
        assert_int_equal(test_not_after(NULL, 0, ""), 0);
        tls_ctx_free(ecdsa);
        tls_ctx_free(expired);
        tls_ctx_free(client);
}

/*
 * A server ctx with several certificates: "cert key" pairs in one string,
 * blank-separated ("server.pem server.key server-rsa.pem server-rsa.key").
 */
static struct tls_ctx *test_server_ctxn(void **state, const char *pairs, char *err,
                                        size_t errlen)
{
        struct tls_ctx_conf conf = {0};
        char p[2 * TLS_MAX_CERTS][128], words[512], *w, *save = NULL;
        unsigned n = 0;

        snprintf(words, sizeof(words), "%s", pairs);
        for (w = strtok_r(words, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
                assert_true(n < 2 * TLS_MAX_CERTS);
                snprintf(p[n], sizeof(p[n]), "%s", test_path(state, w));
                if (n % 2 == 0)
                        conf.cert_file[n / 2] = p[n];
                else
                        conf.key_file[n / 2] = p[n];
                n++;
        }
        assert_true(n % 2 == 0);
        return tls_ctx_new(TLS_ROLE_SERVER, &conf, err, errlen);
}

/*
 * Several certificates: each one's expiry, key type, file and names, in the
 * order given; none that another before it hides; keys that match.
 */
static void test_dual_ctx(void **state)
{
        char err[512];
        struct tls_ctx *ctx;
        struct tls_cert_desc d;
        int64_t ecdsa = test_openssl_not_after(test_path(state, "server.pem"));
        int64_t rsa = test_openssl_not_after(test_path(state, "server-rsa.pem"));

        ctx =
            test_server_ctxn(state, "server.pem server.key server-rsa.pem server-rsa.key",
                             err, sizeof(err));
        if (ctx == NULL)
                fail_msg("dual ctx: %s", err);
        assert_int_equal(test_not_after(ctx, 0, "ecdsa"), ecdsa);
        assert_int_equal(test_not_after(ctx, 1, "rsa"), rsa);
        assert_int_equal(test_not_after(ctx, 2, ""), 0);
        /* The SAN's DNS names, in order; not its IP addresses. */
        assert_true(tls_ctx_cert(ctx, 1, &d));
        assert_string_equal(d.file, test_path(state, "server-rsa.pem"));
        assert_int_equal(d.nnames, 2);
        assert_string_equal(d.names[0], "localhost");
        assert_string_equal(d.names[1], "mx.test");
        tls_ctx_free(ctx);
        ctx =
            test_server_ctxn(state, "server-rsa.pem server-rsa.key server.pem server.key",
                             err, sizeof(err));
        if (ctx == NULL)
                fail_msg("dual ctx, RSA first: %s", err);
        assert_int_equal(test_not_after(ctx, 0, "rsa"), rsa);
        assert_int_equal(test_not_after(ctx, 1, "ecdsa"), ecdsa);
        tls_ctx_free(ctx);
        /* Two ECDSA certificates for different names, and an RSA one. */
        ctx = test_server_ctxn(state,
                               "server.pem server.key wrongname.pem wrongname.key "
                               "server-rsa.pem server-rsa.key",
                               err, sizeof(err));
        if (ctx == NULL)
                fail_msg("three certificates: %s", err);
        assert_true(tls_ctx_cert(ctx, 1, &d));
        assert_int_equal(d.nnames, 1);
        assert_string_equal(d.names[0], "wrong.test");
        tls_ctx_free(ctx);

        /* One that an earlier one of the same key type names all of: never served. */
        assert_null(
            test_server_ctxn(state,
                             "server.pem server.key server-rsa.pem server-rsa.key "
                             "expired.pem expired.key",
                             err, sizeof(err)));
        assert_non_null(strstr(err, "expired.pem would never be served"));
        assert_non_null(strstr(err, "server.pem, before it"));
        assert_null(test_server_ctxn(state, "server.pem server.key server.pem server.key",
                                     err, sizeof(err)));
        assert_non_null(strstr(err, "would never be served"));
        /* The other way round, each has a name the other has not. */
        ctx = test_server_ctxn(state, "wrongname.pem wrongname.key server.pem server.key",
                               err, sizeof(err));
        if (ctx == NULL)
                fail_msg("wrongname first: %s", err);
        tls_ctx_free(ctx);
        assert_null(test_server_ctxn(
            state, "server.pem server.key server-rsa.pem server.key", err, sizeof(err)));
        assert_non_null(strstr(err, "does not match certificate"));
        assert_null(test_server_ctxn(
            state, "server.pem server.key server-rsa.pem missing.key", err, sizeof(err)));
        assert_non_null(strstr(err, "missing.key"));
        test_error_queue_empty();
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

/*
 * A reload replaces a listener's ctx while sessions made from it go on: the
 * owner frees the old ctx, a session made from it before still works (and
 * still shows the old certificate), a session made from the new one shows
 * the new certificate. AddressSanitizer sees any use of a freed ctx.
 */
static void test_ctx_replaced(void **state)
{
        struct tls_ctx *old = test_server_ctx(state, "server.pem", "server.key");
        struct tls_ctx *cctx = test_client_ctx(state, true);
        struct tls *s1 = tls_new(old, NULL), *c1 = tls_new(cctx, "localhost");
        struct tls_ctx *new;
        struct tls *s2, *c2;
        struct tls_peer peer;
        struct test_outcome o;
        struct buf got;
        char fp_old[sizeof(peer.sha256)];

        o = test_handshake(c1, s1);
        assert_int_equal(o.client, TLS_OK);
        assert_int_equal(o.server, TLS_OK);
        assert_int_equal(tls_peer_info(c1, &peer), 0);
        memcpy(fp_old, peer.sha256, sizeof(fp_old));

        /* The reload: a new ctx with another certificate, the old one let go. */
        new = test_server_ctx(state, "server-rsa.pem", "server-rsa.key");
        tls_ctx_free(old);

        /* The session made before goes on, both ways. */
        buf_init(&got);
        assert_int_equal(tls_write(c1, "NOOP\r\n", 6), TLS_OK);
        test_pump(c1, s1);
        assert_int_equal(test_read_all(s1, &got, 100), TLS_WANT);
        assert_int_equal(buf_len(&got), 6);
        buf_reset(&got);
        assert_int_equal(tls_write(s1, "250 OK\r\n", 8), TLS_OK);
        test_pump(s1, c1);
        assert_int_equal(test_read_all(c1, &got, 100), TLS_WANT);
        assert_int_equal(buf_len(&got), 8);

        /* A new session gets the new certificate. */
        s2 = tls_new(new, NULL);
        c2 = tls_new(cctx, "localhost");
        o = test_handshake(c2, s2);
        assert_int_equal(o.client, TLS_OK);
        assert_int_equal(o.server, TLS_OK);
        assert_int_equal(tls_peer_info(c2, &peer), 0);
        assert_true(peer.chain_trusted);
        assert_string_not_equal(peer.sha256, fp_old);

        /* The old ctx goes with its last session; the new one stays. */
        tls_free(s1);
        tls_free(c1);
        tls_free(s2);
        tls_free(c2);
        tls_ctx_free(new);
        tls_ctx_free(cctx);
        buf_cleanup(&got);
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
                if (strcmp(tls_peer_name(peer, i), name) == 0)
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
        assert_string_equal(tls_peer_name(&peer, 0), "wrong.test");
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
        assert_string_equal(tls_peer_name(&peer, 0), "localhost");
        assert_string_equal(tls_peer_name(&peer, 1), "mx.test");
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
        char key[8];            /* tls_served_key(), "" if NULL */
        bool chosen;            /* and whether there were several certificates */
        char cert[32];          /* tls_served_cert()'s last part, "" if NULL */
        char sni[64];           /* tls_sni(), "" if NULL */
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

/* Run a raw client asking for the host name sni (NULL: none) against sctx. */
static void test_raw_sni(struct tls_ctx *sctx, WOLFSSL_METHOD *method,
                         const char *ciphers, int *groups, int ngroups, const char *sni,
                         struct test_raw_result *res)
{
        struct tls *s = tls_new(sctx, NULL);
        struct test_raw r;
        const char *cert;

        memset(res, 0, sizeof(*res));
        test_raw_init(&r, method, ciphers, groups, ngroups);
        if (sni != NULL)
                assert_int_equal(wolfSSL_UseSNI(r.ssl, WOLFSSL_SNI_HOST_NAME, sni,
                                                (unsigned short)strlen(sni)),
                                 WOLFSSL_SUCCESS);
        test_raw_handshake(&r, s, res);
        cert = tls_served_cert(s);
        snprintf(res->cert, sizeof(res->cert), "%s",
                 cert == NULL         ? ""
                 : strrchr(cert, '/') ? strrchr(cert, '/') + 1
                                      : cert);
        snprintf(res->sni, sizeof(res->sni), "%s", tls_sni(s) ? tls_sni(s) : "");
        snprintf(res->server_err, sizeof(res->server_err), "%s", tls_error(s));
        snprintf(res->got, sizeof(res->got), "%s %s", tls_version(s), tls_cipher(s));
        res->bits = tls_cipher_bits(s);
        snprintf(res->key, sizeof(res->key), "%s",
                 tls_served_key(s, &res->chosen) != NULL ? tls_served_key(s, NULL) : "");
        test_raw_cleanup(&r);
        tls_free(s);
}

/* Run a raw client against a server made from sctx. */
static void test_raw_against_ctx(struct tls_ctx *sctx, WOLFSSL_METHOD *method,
                                 const char *ciphers, int *groups, int ngroups,
                                 struct test_raw_result *res)
{
        test_raw_sni(sctx, method, ciphers, groups, ngroups, NULL, res);
}

/* Run a raw client against our server with cert and key. */
static void test_raw_against(void **state, const char *cert, const char *key,
                             WOLFSSL_METHOD *method, const char *ciphers, int *groups,
                             int ngroups, struct test_raw_result *res)
{
        struct tls_ctx *sctx = test_server_ctx(state, cert, key);

        test_raw_against_ctx(sctx, method, ciphers, groups, ngroups, res);
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
 * Two certificates: each client gets the one it can take (lib/tlshello.h),
 * and the handshake completes with it. The ClientHello may come a byte at a
 * time; bytes that are no ClientHello fail the handshake.
 */
static void test_dual_handshake(void **state)
{
        char err[512];
        struct tls_ctx *sctx =
            test_server_ctxn(state, "server-rsa.pem server-rsa.key server.pem server.key",
                             err, sizeof(err));
        struct test_raw_result res;
        int x25519[] = {WOLFSSL_ECC_X25519};
        struct tls *s;
        struct test_raw r;

        if (sctx == NULL)
                fail_msg("dual ctx: %s", err);
        /* A single-certificate server chooses nothing: it serves its own. */
        test_raw_against(state, "server.pem", "server.key", wolfSSLv23_client_method(),
                         NULL, NULL, 0, &res);
        assert_int_equal(res.server, TLS_OK);
        assert_string_equal(res.key, "ecdsa");
        assert_false(res.chosen);
        test_raw_against(state, "server-rsa.pem", "server-rsa.key",
                         wolfSSLv23_client_method(), NULL, NULL, 0, &res);
        assert_int_equal(res.server, TLS_OK);
        assert_string_equal(res.key, "rsa");
        assert_false(res.chosen);

        test_raw_against_ctx(sctx, wolfSSLv23_client_method(), NULL, NULL, 0, &res);
        assert_int_equal(res.server, TLS_OK);
        assert_string_equal(res.key, "ecdsa");
        assert_true(res.chosen);
        assert_string_equal(res.got, "TLSv1.3 " TEST_TLS13_FIRST);

        test_raw_against_ctx(sctx, wolfTLSv1_2_client_method(),
                             "ECDHE-RSA-AES128-GCM-SHA256", NULL, 0, &res);
        assert_int_equal(res.server, TLS_OK);
        assert_string_equal(res.key, "rsa");
        assert_string_equal(res.got, "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256");

        test_raw_against_ctx(sctx, wolfTLSv1_2_client_method(),
                             "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256",
                             NULL, 0, &res);
        assert_int_equal(res.server, TLS_OK);
        assert_string_equal(res.key, "ecdsa");
        assert_string_equal(res.got, "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256");

        /* TLS 1.2 without P-256 among its groups: not the P-256 certificate. */
        test_raw_against_ctx(sctx, wolfTLSv1_2_client_method(),
                             "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256",
                             x25519, 1, &res);
        assert_int_equal(res.server, TLS_OK);
        assert_string_equal(res.key, "rsa");
        assert_string_equal(res.got, "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256");

        /* The ClientHello a byte at a time: nothing is decided before its end. */
        s = tls_new(sctx, NULL);
        test_raw_init(&r, wolfTLSv1_2_client_method(), "ECDHE-RSA-AES128-GCM-SHA256",
                      NULL, 0);
        assert_int_equal(wolfSSL_connect(r.ssl), WOLFSSL_FATAL_ERROR);
        assert_true(buf_len(&r.out) > 50);
        while (buf_len(&r.out) > 1) {
                tls_feed(s, buf_data(&r.out), 1);
                buf_consume(&r.out, 1);
                assert_int_equal(tls_handshake(s), TLS_WANT);
                assert_null(tls_served_key(s, NULL));
                assert_int_equal(buf_len(tls_output(s)), 0);
        }
        memset(&res, 0, sizeof(res));
        test_raw_handshake(&r, s, &res);
        assert_int_equal(res.server, TLS_OK);
        assert_string_equal(tls_served_key(s, NULL), "rsa");
        test_raw_cleanup(&r);
        tls_free(s);

        /* Plaintext where a ClientHello should be. */
        s = tls_new(sctx, NULL);
        tls_feed(s, "EHLO client.example\r\n", 21);
        assert_int_equal(tls_handshake(s), TLS_ERROR);
        assert_string_not_equal(tls_error(s), "");
        tls_free(s);
        tls_ctx_free(sctx);
        test_error_queue_empty();
}

/*
 * A TLS 1.2 client with the session (and ticket) of prev (NULL: none), its
 * ticket replaced by ticket/n if ticket is not NULL, against a server made
 * from sctx: whether the server resumed it. The new client is left in *r,
 * for the next one. A client whose ticket the server
 * refuses may fail the handshake: wolfSSL's client sends an alert where
 * OpenSSL's goes on with a full handshake (t_sni_cert), also against
 * wolfSSL's own ticket keys; so only a resumption must complete here.
 */
static bool test_ticket_resume_as(struct tls_ctx *sctx, struct test_raw *prev,
                                  const unsigned char *ticket, word32 n,
                                  struct test_raw *r)
{
        struct tls *s = tls_new(sctx, NULL);
        struct test_raw_result res;
        bool resumed;

        memset(&res, 0, sizeof(res));
        test_raw_init(r, wolfTLSv1_2_client_method(), NULL, NULL, 0);
        assert_int_equal(wolfSSL_UseSessionTicket(r->ssl), WOLFSSL_SUCCESS);
        if (prev != NULL)
                assert_int_equal(
                    wolfSSL_set_session(r->ssl, wolfSSL_get_session(prev->ssl)),
                    WOLFSSL_SUCCESS);
        if (ticket != NULL)
                assert_int_equal(wolfSSL_set_SessionTicket(r->ssl, ticket, n),
                                 WOLFSSL_SUCCESS);
        test_raw_handshake(r, s, &res);
        resumed = tls_resumed(s);
        if (resumed || prev == NULL) {
                assert_int_equal(res.server, TLS_OK);
                assert_int_equal(wolfSSL_session_reused(r->ssl), resumed);
        }
        tls_free(s);
        return resumed;
}

static bool test_ticket_resume(struct tls_ctx *sctx, struct test_raw *prev,
                               struct test_raw *r)
{
        return test_ticket_resume_as(sctx, prev, NULL, 0, r);
}

/*
 * Session tickets open in every context made for the same certificate (as
 * in every worker), not in another certificate's; after one new key, the
 * ticket still opens; after two, it does not. A ticket whose length field
 * says more than was sent (wolfSSL does not check: the callback must, before
 * reading past it), less, or with a byte changed, does not open.
 */
static void test_ticket_keys(void **state)
{
        struct tls_ctx *a = test_server_ctx(state, "server.pem", "server.key");
        struct tls_ctx *b = test_server_ctx(state, "server.pem", "server.key");
        struct tls_ctx *other = test_server_ctx(state, "wrongname.pem", "wrongname.key");
        struct test_raw r[7];

        assert_false(test_ticket_resume(a, NULL, &r[0]));
        assert_true(test_ticket_resume(b, &r[0], &r[1]));
        assert_true(test_ticket_resume(a, &r[1], &r[2]));
        assert_false(test_ticket_resume(other, &r[2], &r[3]));
        assert_true(test_ticket_resume(b, &r[2], &r[4]));
        tls_ticket_rotate();
        assert_true(test_ticket_resume(a, &r[4], &r[5]));
        tls_ticket_rotate();
        tls_ticket_rotate();
        assert_false(test_ticket_resume(b, &r[4], &r[6]));
        for (size_t i = 0; i < 7; i++)
                test_raw_cleanup(&r[i]);

        /* ExternalTicket: key name 16, iv 16, enc_len 2, enc_ticket, mac 32. */
        {
                unsigned char t[512], bad[512];
                word32 n = sizeof(t);
                struct test_raw q[6];
                unsigned len;

                assert_false(test_ticket_resume(a, NULL, &q[0]));
                assert_int_equal(wolfSSL_get_SessionTicket(q[0].ssl, t, &n),
                                 WOLFSSL_SUCCESS);
                assert_true(n > 66 && n <= sizeof(t));
                len = (unsigned)t[32] << 8 | t[33];
                assert_int_equal(n, 16 + 16 + 2 + len + 32);
                assert_true(test_ticket_resume_as(b, &q[0], t, n, &q[1])); /* as it is */
                memcpy(bad, t, n);
                bad[32] = (unsigned char)((len + 32) >> 8);
                bad[33] = (unsigned char)(len + 32);
                assert_false(test_ticket_resume_as(b, &q[0], bad, n, &q[2]));
                bad[32] = (unsigned char)((len - 16) >> 8);
                bad[33] = (unsigned char)(len - 16);
                assert_false(test_ticket_resume_as(b, &q[0], bad, n, &q[3]));
                memcpy(bad, t, n);
                bad[40] ^= 1;
                assert_false(test_ticket_resume_as(b, &q[0], bad, n, &q[4]));
                memcpy(bad, t, n);
                bad[n - 1] ^= 1; /* the zero half of mac */
                assert_false(test_ticket_resume_as(b, &q[0], bad, n, &q[5]));
                for (size_t i = 0; i < 6; i++)
                        test_raw_cleanup(&q[i]);
        }
        tls_ctx_free(a);
        tls_ctx_free(b);
        tls_ctx_free(other);
        test_error_queue_empty();
}

/*
 * How long a ticket opens (README: a key seals for an hour, opens for an
 * hour more, then is wiped), on the ticket keys' own clock: with sealing
 * all the time, and on a quiet host whose first seal after an hour of
 * nothing comes late, where the key before must still go two hours after
 * it was made, not two hours after the new one.
 */
static void test_ticket_lifetime(void **state)
{
        struct tls_ctx *a = test_server_ctx(state, "server.pem", "server.key");
        struct test_raw r0, r, q0, q;

        tls_ticket_rotate(); /* a key of this test's own, made now */
        assert_false(test_ticket_resume(a, NULL, &r0));
        tls_ticket_advance(59 * 60);
        assert_true(test_ticket_resume(a, &r0, &r)); /* it seals yet */
        test_raw_cleanup(&r);
        tls_ticket_advance(2 * 60);
        assert_false(test_ticket_resume(a, NULL, &q0)); /* a new key seals */
        assert_true(test_ticket_resume(a, &r0, &r));    /* the old one opens */
        test_raw_cleanup(&r);
        tls_ticket_advance(58 * 60);
        tls_ticket_expire();
        assert_true(test_ticket_resume(a, &r0, &r)); /* 119 min */
        test_raw_cleanup(&r);
        tls_ticket_advance(2 * 60);
        tls_ticket_expire();
        assert_false(test_ticket_resume(a, &r0, &r)); /* 121 min: wiped */
        test_raw_cleanup(&r);
        assert_true(test_ticket_resume(a, &q0, &q)); /* the new one still opens */
        test_raw_cleanup(&q);
        test_raw_cleanup(&q0);
        test_raw_cleanup(&r0);

        /* A quiet host: made at 0, nothing until a seal at 119 min. */
        tls_ticket_advance(3 * 60 * 60);
        tls_ticket_expire(); /* nothing left from above */
        assert_false(test_ticket_resume(a, NULL, &r0));
        tls_ticket_advance(119 * 60);
        assert_false(test_ticket_resume(a, NULL, &q0)); /* the new key */
        assert_true(test_ticket_resume(a, &r0, &r));
        test_raw_cleanup(&r);
        tls_ticket_advance(2 * 60);
        tls_ticket_expire();
        assert_false(test_ticket_resume(a, &r0, &r)); /* 121 min after it was made */
        test_raw_cleanup(&r);
        test_raw_cleanup(&q0);
        test_raw_cleanup(&r0);
        tls_ctx_free(a);
        test_error_queue_empty();
}

/*
 * Several certificates and the host name a client asks for (SNI): the one
 * for that name among those it can take; with none for it, or no name, the
 * first host's (the first certificate's names), ECDSA if it can take it.
 */
static void test_sni_handshake(void **state)
{
        char err[512];
        /* wrong.test: ECDSA only; localhost, mx.test: ECDSA and RSA. */
        struct tls_ctx *sctx =
            test_server_ctxn(state,
                             "server-rsa.pem server-rsa.key server.pem server.key "
                             "wrongname.pem wrongname.key",
                             err, sizeof(err));
        const char *rsa12 = "ECDHE-RSA-AES128-GCM-SHA256";
        const struct {
                const char *sni;
                bool rsa_only; /* TLS 1.2 and an ECDHE-RSA suite alone */
                const char *cert, *got_sni;
        } cases[] = {
            {NULL, false, "server.pem", ""},
            {"wrong.test", false, "wrongname.pem", "wrong.test"},
            {"WRONG.Test.", false, "wrongname.pem", "wrong.test"},
            {"mx.test", false, "server.pem", "mx.test"},
            {"other.test", false, "server.pem", "other.test"},
            /* Only RSA: the RSA one, whatever the name. */
            {"wrong.test", true, "server-rsa.pem", "wrong.test"},
            {"mx.test", true, "server-rsa.pem", "mx.test"},
            /* Not a host name: as if none. */
            {"mx test", false, "server.pem", ""},
        };
        struct test_raw_result res;

        if (sctx == NULL)
                fail_msg("three certificates: %s", err);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                bool r = cases[i].rsa_only;

                test_raw_sni(sctx,
                             r ? wolfTLSv1_2_client_method() : wolfSSLv23_client_method(),
                             r ? rsa12 : NULL, NULL, 0, cases[i].sni, &res);
                if (res.server != TLS_OK || strcmp(res.cert, cases[i].cert) != 0 ||
                    strcmp(res.sni, cases[i].got_sni) != 0)
                        fail_msg("case %zu (%s): %d, served %s, sni '%s' (%s)", i,
                                 cases[i].sni ? cases[i].sni : "no name", res.server,
                                 res.cert, res.sni, res.server_err);
                assert_true(res.chosen);
        }
        tls_ctx_free(sctx);

        /*
         * The first host has only an RSA certificate: a client that asks for
         * no name gets it, not another host's ECDSA one; wrong.test its own.
         */
        sctx = test_server_ctxn(
            state, "server-rsa.pem server-rsa.key wrongname.pem wrongname.key", err,
            sizeof(err));
        if (sctx == NULL)
                fail_msg("RSA first: %s", err);
        test_raw_sni(sctx, wolfSSLv23_client_method(), NULL, NULL, 0, NULL, &res);
        assert_int_equal(res.server, TLS_OK);
        assert_string_equal(res.cert, "server-rsa.pem");
        test_raw_sni(sctx, wolfSSLv23_client_method(), NULL, NULL, 0, "other.test", &res);
        assert_string_equal(res.cert, "server-rsa.pem");
        test_raw_sni(sctx, wolfSSLv23_client_method(), NULL, NULL, 0, "wrong.test", &res);
        assert_string_equal(res.cert, "wrongname.pem");
        tls_ctx_free(sctx);
        test_error_queue_empty();
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
        conf.cert_file[0] = cert;
        conf.key_file[0] = test_path(state, "missing.key");
        assert_null(tls_ctx_new(TLS_ROLE_SERVER, &conf, err, sizeof(err)));
        assert_non_null(strstr(err, conf.key_file[0]));
        assert_non_null(strstr(err, "No such file"));

        conf.key_file[0] = test_path(state, "wrongname.key");
        assert_null(tls_ctx_new(TLS_ROLE_SERVER, &conf, err, sizeof(err)));
        assert_non_null(strstr(err, conf.key_file[0]));
        assert_non_null(strstr(err, "does not match"));

        conf.key_file[0] = test_path(state, "ca.pem"); /* not a key */
        assert_null(tls_ctx_new(TLS_ROLE_SERVER, &conf, err, sizeof(err)));
        assert_non_null(strstr(err, conf.key_file[0]));

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

/*
 * DANE (tls_dane_match_chain(), tls_dane_match()). The TLSA data come from
 * openssl, run at test time: the certificate's DER (`openssl x509 -outform
 * DER`), its SubjectPublicKeyInfo (`openssl x509 -pubkey -noout | openssl
 * pkey -pubin -outform DER`) and their digests (`openssl dgst`).
 */

/*
 * More certificates, made once in the test directory by openssl: sub (issued
 * by server.pem, not a CA); big (issued by the CA, over 2048 bytes of DER:
 * wolfSSL's copy of a peer's chain leaves such a certificate out); root0 (a
 * CA with pathlen:0) > mid (a CA) > leaf2; nosign (a CA without keyCertSign)
 * > leaf3; oldca (a CA whose validity ended a day ago) > leaf4; and the
 * chain files chain.pem (server, CA) and attack.pem (big, then a copy of
 * server.pem).
 */
static const char test_dane_certs_sh[] =
    "set -e\n"
    "[ -f dane.done ] && exit 0\n"
    "# sign NAME ISSUER SERIAL EXTENSIONS (';' between them) [DAYS]\n"
    "sign() {\n"
    "        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \\\n"
    "                -out $1.key\n"
    "        printf '%s\\n' \"$4\" | tr ';' '\\n' >$1.ext\n"
    "        openssl req -new -key $1.key -subj /CN=$1.test -out $1.csr\n"
    "        if [ $2 = self ]; then\n"
    "                by=\"-signkey $1.key\"\n"
    "        else\n"
    "                by=\"-CA $2.pem -CAkey $2.key\"\n"
    "        fi\n"
    "        openssl x509 -req -in $1.csr $by -set_serial $3 -days ${5:-30} \\\n"
    "                -sha256 -extfile $1.ext -out $1.pem\n"
    "}\n"
    "leaf='basicConstraints=critical,CA:FALSE;subjectAltName=DNS:'\n"
    "ca='basicConstraints=critical,CA:TRUE;keyUsage=critical,keyCertSign'\n"
    "nosign='basicConstraints=critical,CA:TRUE;keyUsage=critical,digitalSignature'\n"
    "sign sub server 101 \"${leaf}sub.test\"\n"
    "sans=big.test; i=0\n"
    "while [ $i -lt 120 ]; do sans=\"$sans,DNS:h$i.big.test\"; i=$((i + 1)); done\n"
    "sign big ca 102 \"$leaf$sans\"\n"
    "sign root0 self 103 \"$ca;basicConstraints=critical,CA:TRUE,pathlen:0\"\n"
    "sign mid root0 104 \"$ca\"\n"
    "sign leaf2 mid 105 \"${leaf}leaf2.test\"\n"
    "sign nosign ca 106 \"$nosign\"\n"
    "sign leaf3 nosign 107 \"${leaf}leaf3.test\"\n"
    "sign oldca self 108 \"$ca\" -1\n"
    "sign leaf4 oldca 109 \"${leaf}leaf4.test\"\n"
    "cat server.pem ca.pem >chain.pem\n"
    "cat big.pem server.pem >attack.pem\n"
    ": >dane.done\n";

static void test_dane_certs(void **state)
{
        struct test_env *env = *state;
        char cmd[512];
        FILE *f;

        f = fopen(test_path(state, "dane-certs.sh"), "w");
        assert_non_null(f);
        assert_int_equal(fputs(test_dane_certs_sh, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        snprintf(cmd, sizeof(cmd),
                 "cd '%s' && sh dane-certs.sh >dane-certs.log 2>&1 || "
                 "{ cat dane-certs.log >&2; exit 1; }",
                 env->dir);
        assert_int_equal(system(cmd), 0);
}

/* Run cmd in the test directory; what it writes (binary) into out, at most max. */
static size_t test_popen(void **state, const char *cmd, unsigned char *out, size_t max)
{
        struct test_env *env = *state;
        char full[1024];
        size_t n;
        FILE *p;

        snprintf(full, sizeof(full), "cd '%s' && %s", env->dir, cmd);
        p = popen(full, "r");
        assert_non_null(p);
        n = fread(out, 1, max, p);
        assert_int_equal(pclose(p), 0);
        assert_true(n > 0 && n < max);
        return n;
}

/*
 * The TLSA record usage/selector/mtype for the certificate in file, its data
 * computed by openssl. Free the data with test_tlsa_free().
 */
static struct tls_tlsa test_tlsa(void **state, unsigned usage, unsigned selector,
                                 unsigned mtype, const char *file)
{
        const char *dgst = mtype == 1   ? " | openssl dgst -sha256 -binary"
                           : mtype == 2 ? " | openssl dgst -sha512 -binary"
                                        : "";
        unsigned char *data = malloc(8192);
        struct tls_tlsa r;
        char cmd[512];

        assert_non_null(data);
        if (selector == 0)
                snprintf(cmd, sizeof(cmd), "openssl x509 -in %s -outform DER%s", file,
                         dgst);
        else
                snprintf(cmd, sizeof(cmd),
                         "openssl x509 -in %s -pubkey -noout | "
                         "openssl pkey -pubin -outform DER%s",
                         file, dgst);
        r.usage = (unsigned char)usage;
        r.selector = (unsigned char)selector;
        r.mtype = (unsigned char)mtype;
        r.len = test_popen(state, cmd, data, 8192);
        r.data = data;
        return r;
}

static void test_tlsa_free(struct tls_tlsa *r)
{
        free((void *)r->data);
        r->data = NULL;
}

/* A chain of DER certificates, leaf first, from PEM files, as openssl reads them. */
struct test_chain {
        size_t n;
        const unsigned char *der[4];
        size_t len[4];
};

static void test_chain_load(void **state, struct test_chain *c, const char *const *files)
{
        unsigned char *der;
        char cmd[256];

        memset(c, 0, sizeof(*c));
        for (; *files != NULL; files++) {
                assert_true(c->n < 4);
                der = malloc(8192);
                assert_non_null(der);
                snprintf(cmd, sizeof(cmd), "openssl x509 -in %s -outform DER", *files);
                c->len[c->n] = test_popen(state, cmd, der, 8192);
                c->der[c->n++] = der;
        }
}

static void test_chain_free(struct test_chain *c)
{
        size_t i;

        for (i = 0; i < c->n; i++)
                free((void *)c->der[i]);
        memset(c, 0, sizeof(*c));
}

/* tls_dane_match_chain() of chain against one record; why into why[512]. */
static enum tls_dane_result test_dane_one(const struct test_chain *c,
                                          const struct tls_tlsa *r, char *why)
{
        enum tls_dane_result res =
            tls_dane_match_chain(c->der, c->len, c->n, r, 1, why, 512);

        test_error_queue_empty();
        return res;
}

/* DANE-EE(3): every selector and matching type, against the leaf only. */
static void test_dane_ee(void **state)
{
        static const char *const files[] = {"server.pem", "ca.pem", NULL};
        static const char *const rsa[] = {"server-rsa.pem", NULL};
        static const unsigned sm[][2] = {{1, 1}, {0, 1}, {1, 2}, {1, 0}, {0, 0}, {0, 2}};
        unsigned char md[WC_SHA512_DIGEST_SIZE];
        struct tls_tlsa r, der, spki;
        struct test_chain c;
        char why[512], want[128];
        size_t i;

        test_chain_load(state, &c, files);
        for (i = 0; i < sizeof(sm) / sizeof(sm[0]); i++) {
                r = test_tlsa(state, 3, sm[i][0], sm[i][1], "server.pem");
                assert_int_equal(r.len, sm[i][1] == 1 ? 32 : sm[i][1] == 2 ? 64 : r.len);
                if (test_dane_one(&c, &r, why) != TLS_DANE_MATCH_EE)
                        fail_msg("3 %u %u: %s", sm[i][0], sm[i][1], why);
                snprintf(want, sizeof(want), "3 %u %u matched the certificate at depth 0",
                         sm[i][0], sm[i][1]);
                assert_string_equal(why, want);
                test_tlsa_free(&r);
        }

        /* openssl's digests are wolfCrypt's of openssl's DER and SPKI. */
        der = test_tlsa(state, 3, 0, 0, "server.pem");
        spki = test_tlsa(state, 3, 1, 0, "server.pem");
        assert_int_equal(der.len, c.len[0]);
        assert_memory_equal(der.data, c.der[0], c.len[0]);
        r = test_tlsa(state, 3, 1, 1, "server.pem");
        assert_int_equal(wc_Sha256Hash(spki.data, (word32)spki.len, md), 0);
        assert_memory_equal(md, r.data, 32);
        test_tlsa_free(&r);
        r = test_tlsa(state, 3, 0, 2, "server.pem");
        assert_int_equal(wc_Sha512Hash(der.data, (word32)der.len, md), 0);
        assert_memory_equal(md, r.data, 64);
        test_tlsa_free(&r);
        test_tlsa_free(&der);
        test_tlsa_free(&spki);

        /* A wrong digest, and the CA's own (DANE-EE looks at the leaf only). */
        r = test_tlsa(state, 3, 1, 1, "server.pem");
        ((unsigned char *)r.data)[31] ^= 1;
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_NO_MATCH);
        assert_string_equal(why, "3 1 1: no match");
        test_tlsa_free(&r);
        r = test_tlsa(state, 3, 0, 1, "ca.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_NO_MATCH);
        test_tlsa_free(&r);
        test_chain_free(&c);

        /* An RSA leaf: its SPKI as openssl writes it. */
        test_chain_load(state, &c, rsa);
        r = test_tlsa(state, 3, 1, 0, "server-rsa.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_MATCH_EE);
        test_tlsa_free(&r);
        test_chain_free(&c);
}

/* DANE-TA(2): the CA the server sent at depth 1, and the chain below it. */
static void test_dane_ta(void **state)
{
        static const char *const full[] = {"server.pem", "ca.pem", NULL};
        static const char *const leaf[] = {"server.pem", NULL};
        static const char *const stranger[] = {"selfsigned.pem", "ca.pem", NULL};
        static const char *const self[] = {"selfsigned.pem", NULL};
        static const unsigned sm[][2] = {{1, 1}, {0, 1}, {0, 2}, {1, 0}};
        struct tls_tlsa r;
        struct test_chain c;
        char why[512], want[128];
        size_t i;

        test_chain_load(state, &c, full);
        for (i = 0; i < sizeof(sm) / sizeof(sm[0]); i++) {
                r = test_tlsa(state, 2, sm[i][0], sm[i][1], "ca.pem");
                if (test_dane_one(&c, &r, why) != TLS_DANE_MATCH_TA)
                        fail_msg("2 %u %u: %s", sm[i][0], sm[i][1], why);
                snprintf(want, sizeof(want),
                         "2 %u %u matched the certificate at depth 1; chain verified",
                         sm[i][0], sm[i][1]);
                assert_string_equal(why, want);
                test_tlsa_free(&r);
        }
        /* A DANE-TA record for the leaf: never (3 x x says that). */
        r = test_tlsa(state, 2, 0, 1, "server.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_NO_MATCH);
        assert_non_null(strstr(why, "2 0 1: matches only the leaf"));
        test_tlsa_free(&r);
        test_chain_free(&c);

        /* The TA must be in the chain the server sent. */
        test_chain_load(state, &c, leaf);
        r = test_tlsa(state, 2, 1, 1, "ca.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_NO_MATCH);
        assert_string_equal(why, "2 1 1: no match");
        test_chain_free(&c);

        /* The CA sent, but it did not issue the leaf. */
        test_chain_load(state, &c, stranger);
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_NO_MATCH);
        assert_non_null(strstr(why, "2 1 1: chain below depth 1 does not verify: "
                                    "certificate at depth 0: "));
        test_tlsa_free(&r);
        test_chain_free(&c);

        /* A self-signed leaf matched as a trust anchor: no, and 3 0 1 yes. */
        test_chain_load(state, &c, self);
        r = test_tlsa(state, 2, 0, 1, "selfsigned.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_NO_MATCH);
        assert_string_equal(why, "2 0 1: matches only the leaf, which a DANE-TA record "
                                 "cannot (3 0 1 would)");
        r.usage = 3;
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_MATCH_EE);
        test_tlsa_free(&r);
        test_chain_free(&c);
}

/*
 * What sits between the TA and the leaf must be allowed to issue: a CA, with
 * keyCertSign, within its path length. Otherwise anyone holding a certificate
 * from the TA (a public CA that some domain names in a 2 x x record) could
 * issue one for any name.
 */
static void test_dane_ta_issuers(void **state)
{
        static const char *const via_leaf[] = {"sub.pem", "server.pem", "ca.pem", NULL};
        static const char *const pathlen[] = {"leaf2.pem", "mid.pem", "root0.pem", NULL};
        static const char *const nosign[] = {"leaf3.pem", "nosign.pem", "ca.pem", NULL};
        struct tls_tlsa r;
        struct test_chain c;
        char why[512];

        test_dane_certs(state);
        test_chain_load(state, &c, via_leaf);
        r = test_tlsa(state, 2, 1, 1, "ca.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_NO_MATCH);
        assert_non_null(strstr(why, "certificate at depth 1 is not a CA"));
        test_tlsa_free(&r);
        test_chain_free(&c);

        test_chain_load(state, &c, pathlen);
        r = test_tlsa(state, 2, 0, 1, "root0.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_NO_MATCH);
        assert_non_null(
            strstr(why, "certificate at depth 2 allows 0 CAs below it, not 1"));
        test_tlsa_free(&r);
        r = test_tlsa(state, 2, 0, 1, "mid.pem"); /* mid has no such limit */
        if (test_dane_one(&c, &r, why) != TLS_DANE_MATCH_TA)
                fail_msg("mid: %s", why);
        test_tlsa_free(&r);
        test_chain_free(&c);

        test_chain_load(state, &c, nosign);
        r = test_tlsa(state, 2, 1, 1, "ca.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_NO_MATCH);
        assert_non_null(strstr(why, "certificate at depth 1 may not sign certificates"));
        test_tlsa_free(&r);
        test_chain_free(&c);
}

/* Dates count for DANE-TA (the leaf's, the TA's), not for DANE-EE. */
static void test_dane_expired(void **state)
{
        static const char *const files[] = {"expired.pem", "ca.pem", NULL};
        static const char *const old_ta[] = {"leaf4.pem", "oldca.pem", NULL};
        struct tls_tlsa r;
        struct test_chain c;
        char why[512];

        test_dane_certs(state);
        test_chain_load(state, &c, old_ta);
        r = test_tlsa(state, 2, 0, 1, "oldca.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_NO_MATCH);
        assert_non_null(strstr(why, "2 0 1: chain below depth 1 does not verify: "
                                    "certificate at depth 1: "));
        assert_non_null(strstr(why, "(-151)")); /* ASN_AFTER_DATE_E */
        test_tlsa_free(&r);
        r = test_tlsa(state, 3, 1, 1, "leaf4.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_MATCH_EE);
        test_tlsa_free(&r);
        test_chain_free(&c);

        test_chain_load(state, &c, files);
        r = test_tlsa(state, 2, 1, 1, "ca.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_NO_MATCH);
        assert_non_null(strstr(why, "2 1 1: chain below depth 1 does not verify: "
                                    "certificate at depth 0: "));
        assert_non_null(strstr(why, "(-151)")); /* ASN_AFTER_DATE_E */
        test_tlsa_free(&r);
        r = test_tlsa(state, 3, 1, 1, "expired.pem");
        assert_int_equal(test_dane_one(&c, &r, why), TLS_DANE_MATCH_EE);
        test_tlsa_free(&r);
        test_chain_free(&c);
}

/* Records SMTP cannot use; and several records at once. */
static void test_dane_unusable(void **state)
{
        static const char *const files[] = {"server.pem", "ca.pem", NULL};
        static const unsigned char sha1[20] = {1, 2, 3};
        struct tls_tlsa recs[3], ee, ta;
        struct test_chain c;
        char why[512];

        test_chain_load(state, &c, files);
        ee = test_tlsa(state, 3, 1, 1, "server.pem");
        ta = test_tlsa(state, 2, 0, 1, "ca.pem");

        /* PKIX-TA and PKIX-EE that would match: unusable all the same. */
        recs[0] = ta;
        recs[0].usage = 0;
        recs[1] = ee;
        recs[1].usage = 1;
        assert_int_equal(
            tls_dane_match_chain(c.der, c.len, c.n, recs, 2, why, sizeof(why)),
            TLS_DANE_UNUSABLE);
        assert_string_equal(why, "0 0 1: unusable: PKIX-TA(0), not for SMTP; "
                                 "1 1 1: unusable: PKIX-EE(1), not for SMTP");

        recs[0] = ee;
        recs[0].data = sha1;
        recs[0].len = sizeof(sha1);
        assert_int_equal(test_dane_one(&c, &recs[0], why), TLS_DANE_UNUSABLE);
        assert_string_equal(why, "3 1 1: unusable: SHA-256 data of 20 bytes, not 32");
        recs[0] = ee;
        recs[0].mtype = 2; /* 32 bytes for SHA-512 */
        assert_int_equal(test_dane_one(&c, &recs[0], why), TLS_DANE_UNUSABLE);
        recs[0] = ee;
        recs[0].selector = 2;
        assert_int_equal(test_dane_one(&c, &recs[0], why), TLS_DANE_UNUSABLE);
        assert_string_equal(why, "3 2 1: unusable: unknown selector 2");
        recs[0] = ee;
        recs[0].mtype = 3;
        assert_int_equal(test_dane_one(&c, &recs[0], why), TLS_DANE_UNUSABLE);
        recs[0] = ee;
        recs[0].usage = 4;
        assert_int_equal(test_dane_one(&c, &recs[0], why), TLS_DANE_UNUSABLE);
        recs[0] = ee;
        recs[0].mtype = 0;
        recs[0].len = 0;
        assert_int_equal(test_dane_one(&c, &recs[0], why), TLS_DANE_UNUSABLE);
        assert_string_equal(why, "3 1 0: unusable: no data");
        recs[0].data = NULL;
        recs[0].len = 10;
        assert_int_equal(test_dane_one(&c, &recs[0], why), TLS_DANE_UNUSABLE);

        /* No record at all, with or without a chain. */
        assert_int_equal(
            tls_dane_match_chain(c.der, c.len, c.n, NULL, 0, why, sizeof(why)),
            TLS_DANE_UNUSABLE);
        assert_string_equal(why, "no TLSA record");
        assert_int_equal(tls_dane_match_chain(NULL, NULL, 0, recs, 0, why, sizeof(why)),
                         TLS_DANE_UNUSABLE);

        /* Unusable records beside a usable one: they are skipped, and said. */
        recs[0] = ee;
        recs[0].usage = 1;
        recs[1] = ee;
        ((unsigned char *)ee.data)[0] ^= 1; /* recs[1] now matches nothing */
        recs[2] = ta;
        recs[2].mtype = 7;
        assert_int_equal(
            tls_dane_match_chain(c.der, c.len, c.n, recs, 3, why, sizeof(why)),
            TLS_DANE_NO_MATCH);
        assert_string_equal(why, "1 1 1: unusable: PKIX-EE(1), not for SMTP; "
                                 "3 1 1: no match; "
                                 "2 0 7: unusable: unknown matching type 7");
        /* ... and one good record among them is enough. */
        recs[2] = ta;
        assert_int_equal(
            tls_dane_match_chain(c.der, c.len, c.n, recs, 3, why, sizeof(why)),
            TLS_DANE_MATCH_TA);
        assert_string_equal(why,
                            "2 0 1 matched the certificate at depth 1; chain verified");
        /* DANE-EE wins over DANE-TA, whatever the order. */
        ((unsigned char *)ee.data)[0] ^= 1;
        assert_int_equal(
            tls_dane_match_chain(c.der, c.len, c.n, recs + 1, 2, why, sizeof(why)),
            TLS_DANE_MATCH_EE);
        recs[0] = ta;
        assert_int_equal(
            tls_dane_match_chain(c.der, c.len, c.n, recs, 2, why, sizeof(why)),
            TLS_DANE_MATCH_EE);
        assert_string_equal(why, "3 1 1 matched the certificate at depth 0");

        /* why may be NULL, or short: always terminated. */
        assert_int_equal(tls_dane_match_chain(c.der, c.len, c.n, recs, 2, NULL, 0),
                         TLS_DANE_MATCH_EE);
        memset(why, 'x', sizeof(why));
        assert_int_equal(tls_dane_match_chain(c.der, c.len, c.n, recs, 2, why, 8),
                         TLS_DANE_MATCH_EE);
        assert_string_equal(why, "3 1 1 m");
        recs[0] = ee;
        recs[1] = ee;
        ((unsigned char *)ee.data)[0] ^= 1; /* two records that match nothing */
        memset(why, 'x', sizeof(why));
        assert_int_equal(tls_dane_match_chain(c.der, c.len, c.n, recs, 2, why, 20),
                         TLS_DANE_NO_MATCH);
        assert_string_equal(why, "3 1 1: no match; 3 "); /* 19 bytes and the NUL */
        test_tlsa_free(&ee);
        test_tlsa_free(&ta);
        test_chain_free(&c);
}

/* No chain, and chains of bad bytes: no match, no crash (ASan checks the reads). */
static void test_dane_bad_chain(void **state)
{
        static const char *const files[] = {"server.pem", "ca.pem", NULL};
        struct tls_tlsa recs[4];
        struct test_chain c;
        const unsigned char *der[2];
        unsigned char *cut;
        size_t len[2], i, n, which;
        char why[512];

        test_chain_load(state, &c, files);
        recs[0] = test_tlsa(state, 3, 1, 1, "server.pem");
        recs[1] = test_tlsa(state, 3, 0, 1, "server.pem");
        recs[2] = test_tlsa(state, 2, 1, 1, "ca.pem");
        recs[3] = test_tlsa(state, 2, 0, 0, "ca.pem");

        assert_int_equal(tls_dane_match_chain(c.der, c.len, 0, recs, 4, why, sizeof(why)),
                         TLS_DANE_NO_MATCH);
        assert_string_equal(why, "no certificate");
        assert_int_equal(tls_dane_match_chain(NULL, NULL, 2, recs, 4, why, sizeof(why)),
                         TLS_DANE_NO_MATCH);

        /*
         * Every truncation of the leaf, then of the CA (against the DANE-TA
         * records only: the DANE-EE ones still match the whole leaf), each in
         * a buffer of its own size.
         */
        for (which = 0; which < 2; which++) {
                for (n = 0; n < c.len[which]; n++) {
                        cut = malloc(n > 0 ? n : 1);
                        assert_non_null(cut);
                        memcpy(cut, c.der[which], n);
                        for (i = 0; i < 2; i++) {
                                der[i] = i == which ? cut : c.der[i];
                                len[i] = i == which ? n : c.len[i];
                        }
                        assert_int_equal(
                            tls_dane_match_chain(der, len, 2, recs + 2 * which,
                                                 4 - 2 * which, why, sizeof(why)),
                            TLS_DANE_NO_MATCH);
                        free(cut);
                }
        }
        /* Garbage that looks like the start of a certificate; a NULL entry. */
        cut = malloc(64);
        assert_non_null(cut);
        memset(cut, 0x30, 64);
        der[0] = cut;
        len[0] = 64;
        der[1] = NULL;
        len[1] = 0;
        assert_int_equal(tls_dane_match_chain(der, len, 2, recs, 4, why, sizeof(why)),
                         TLS_DANE_NO_MATCH);
        der[0] = c.der[0];
        len[0] = c.len[0];
        der[1] = cut;
        len[1] = 64;
        assert_int_equal(tls_dane_match_chain(der, len, 2, recs + 2, 2, why, sizeof(why)),
                         TLS_DANE_NO_MATCH);
        free(cut);
        test_error_queue_empty();
        for (i = 0; i < 4; i++)
                test_tlsa_free(&recs[i]);
        test_chain_free(&c);
}

/* A handshake between client ctx cctx and a server with cert/key; both returned. */
static void test_dane_session(void **state, struct tls_ctx *cctx, const char *cert,
                              const char *key, struct tls_ctx **sctx, struct tls **c,
                              struct tls **s)
{
        struct test_outcome o;

        *sctx = test_server_ctx(state, cert, key);
        *s = tls_new(*sctx, NULL);
        *c = tls_new(cctx, "mx.test");
        o = test_handshake(*c, *s);
        if (o.client != TLS_OK)
                fail_msg("%s: client handshake: %s", cert, tls_error(*c));
        assert_int_equal(o.server, TLS_OK);
}

static void test_dane_session_end(struct tls_ctx *sctx, struct tls *c, struct tls *s)
{
        tls_free(c);
        tls_free(s);
        tls_ctx_free(sctx);
}

/*
 * tls_dane_match() on the chain a server really sent (server.pem, ca.pem), for
 * a verify_record client without trust anchors (as the outbound side makes
 * it) and for one with no verification at all.
 */
static void test_dane_handshake(void **state)
{
        struct tls_ctx_conf conf = {.verify_record = true};
        struct tls_ctx *cctx[2], *sctx;
        struct tls_tlsa ee, ta, ca_ee, unusable;
        struct tls *c, *s;
        char err[256], why[512];
        size_t i;

        test_dane_certs(state);
        cctx[0] = tls_ctx_new(TLS_ROLE_CLIENT, &conf, err, sizeof(err));
        if (cctx[0] == NULL)
                fail_msg("client ctx: %s", err);
        cctx[1] = test_client_ctx(state, false);
        ee = test_tlsa(state, 3, 1, 1, "server.pem");
        ta = test_tlsa(state, 2, 0, 1, "ca.pem");
        ca_ee = test_tlsa(state, 3, 1, 1, "ca.pem");
        unusable = ee;
        unusable.usage = 1;

        for (i = 0; i < 2; i++) {
                sctx = test_server_ctx(state, "chain.pem", "server.key");
                s = tls_new(sctx, NULL);
                c = tls_new(cctx[i], "mx.test");
                /* Not yet. */
                assert_int_equal(tls_dane_match(c, &ee, 1, why, sizeof(why)),
                                 TLS_DANE_NO_MATCH);
                assert_string_equal(why, "handshake not done");
                assert_int_equal(tls_dane_match(c, &unusable, 1, why, sizeof(why)),
                                 TLS_DANE_UNUSABLE);
                tls_free(c);
                tls_free(s);
                tls_ctx_free(sctx);

                test_dane_session(state, cctx[i], "chain.pem", "server.key", &sctx, &c,
                                  &s);
                assert_int_equal(tls_dane_match(c, &ee, 1, why, sizeof(why)),
                                 TLS_DANE_MATCH_EE);
                assert_string_equal(why, "3 1 1 matched the certificate at depth 0");
                if (tls_dane_match(c, &ta, 1, why, sizeof(why)) != TLS_DANE_MATCH_TA)
                        fail_msg("client %zu: 2 0 1: %s", i, why);
                assert_int_equal(tls_dane_match(c, &ca_ee, 1, why, sizeof(why)),
                                 TLS_DANE_NO_MATCH);
                assert_int_equal(tls_dane_match(c, &unusable, 1, why, sizeof(why)),
                                 TLS_DANE_UNUSABLE);
                /* The server saw no certificate from the client. */
                assert_int_equal(tls_dane_match(s, &ee, 1, why, sizeof(why)),
                                 TLS_DANE_NO_MATCH);
                assert_string_equal(why, "no certificate seen in this handshake");
                test_error_queue_empty();
                test_dane_session_end(sctx, c, s);

                /* A server that sends its certificate without the CA: no TA match. */
                test_dane_session(state, cctx[i], "server.pem", "server.key", &sctx, &c,
                                  &s);
                assert_int_equal(tls_dane_match(c, &ta, 1, why, sizeof(why)),
                                 TLS_DANE_NO_MATCH);
                assert_int_equal(tls_dane_match(c, &ee, 1, why, sizeof(why)),
                                 TLS_DANE_MATCH_EE);
                test_dane_session_end(sctx, c, s);
        }
        test_tlsa_free(&ee);
        test_tlsa_free(&ta);
        test_tlsa_free(&ca_ee);
        tls_ctx_free(cctx[0]);
        tls_ctx_free(cctx[1]);
}

/*
 * wolfSSL's own copy of a peer's chain leaves out a certificate of 2048 bytes
 * or more, and the next one moves up to depth 0. A server with a certificate
 * of its own that large (big.pem, trusted), followed by a copy of another
 * server's (server.pem), must be seen as itself: its names and fingerprint in
 * tls_peer_info(), its key for DANE-EE, not the copy's.
 */
static void test_dane_big_leaf(void **state)
{
        struct tls_ctx_conf conf = {.verify_record = true};
        struct tls_ctx *cctx[2], *sctx;
        struct tls_tlsa victim, own;
        struct tls_peer peer;
        struct tls *c, *s;
        char err[256], why[512], sha[65];
        size_t i;

        test_dane_certs(state);
        conf.ca_file = test_path(state, "ca.pem");
        cctx[0] = tls_ctx_new(TLS_ROLE_CLIENT, &conf, err, sizeof(err));
        if (cctx[0] == NULL)
                fail_msg("client ctx: %s", err);
        cctx[1] = test_client_ctx(state, false);
        victim = test_tlsa(state, 3, 1, 1, "server.pem");
        own = test_tlsa(state, 3, 1, 1, "big.pem");
        test_cert_sha256(state, "big.pem", sha);

        for (i = 0; i < 2; i++) {
                test_dane_session(state, cctx[i], "attack.pem", "big.key", &sctx, &c, &s);
                assert_int_equal(tls_peer_info(c, &peer), 0);
                assert_true(peer.has_cert);
                assert_string_equal(peer.sha256, sha);
                assert_true(peer.nnames > 0);
                assert_string_equal(tls_peer_name(&peer, 0), "big.test");
                /* every one of its 121 names, not the first 16 */
                assert_int_equal(peer.nnames, 121);
                assert_string_equal(tls_peer_name(&peer, 120), "h119.big.test");
                assert_true(test_has_name(&peer, "h16.big.test"));
                assert_string_equal(tls_peer_name(&peer, 121), "");
                assert_false(test_has_name(&peer, "localhost"));
                assert_false(test_has_name(&peer, "mx.test"));
                assert_int_equal(tls_dane_match(c, &victim, 1, why, sizeof(why)),
                                 TLS_DANE_NO_MATCH);
                assert_int_equal(tls_dane_match(c, &own, 1, why, sizeof(why)),
                                 TLS_DANE_MATCH_EE);
                test_dane_session_end(sctx, c, s);
        }
        test_tlsa_free(&victim);
        test_tlsa_free(&own);
        tls_ctx_free(cctx[0]);
        tls_ctx_free(cctx[1]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_full_session),
            cmocka_unit_test(test_ctx_replaced),
            cmocka_unit_test(test_ctx_not_after),
            cmocka_unit_test(test_dual_ctx),
            cmocka_unit_test(test_dual_handshake),
            cmocka_unit_test(test_sni_handshake),
            cmocka_unit_test(test_ticket_keys),
            cmocka_unit_test(test_ticket_lifetime),
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
            cmocka_unit_test(test_dane_ee),
            cmocka_unit_test(test_dane_ta),
            cmocka_unit_test(test_dane_ta_issuers),
            cmocka_unit_test(test_dane_expired),
            cmocka_unit_test(test_dane_unusable),
            cmocka_unit_test(test_dane_bad_chain),
            cmocka_unit_test(test_dane_handshake),
            cmocka_unit_test(test_dane_big_leaf),
        };

        return cmocka_run_group_tests(tests, test_group_setup, test_group_teardown);
}
