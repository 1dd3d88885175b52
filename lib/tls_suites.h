/*
 * tls_suites.h: the TLS that mailward offers and accepts (invariant 7), as
 * wolfSSL names and IDs. Shared by lib/tls.c and the benchmark's crypto floor
 * (test/bench/crypto.c), which must negotiate what mailward negotiates.
 * Include <wolfssl/options.h> and <wolfssl/ssl.h> before it.
 */
#ifndef MAILWARD_TLS_SUITES_H
#define MAILWARD_TLS_SUITES_H

/*
 * Cipher suites in server preference order: TLS 1.3 AEADs first, then TLS 1.2
 * ECDHE with AEADs, ECDSA before RSA, AES-128 before AES-256 (as fast and as
 * strong in practice). Where ChaCha20-Poly1305 goes depends on the wolfSSL
 * build, because the server's order decides and the server's cost is the one
 * that matters here: with AES-NI (WOLFSSL_AESNI) AES-GCM is the fastest by far
 * and ChaCha20 goes last (for peers without AES in hardware); without it
 * (Debian's libwolfssl, C code only) ChaCha20-Poly1305 goes first, because in
 * C it is ~2.3 times as fast as AES-128-GCM (293 against 127 MB/s for 16 KB
 * records on the benchmark machine; test/bench/README). Both are AEADs with
 * the same forward-secret key exchanges: only the speed differs.
 */
#define TLS_SUITES_AES13    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384"
#define TLS_SUITES_CHACHA13 "TLS13-CHACHA20-POLY1305-SHA256"
#define TLS_SUITES_AES12                                                                 \
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                     \
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
#define TLS_SUITES_CHACHA12 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#ifdef WOLFSSL_AESNI
#define TLS_SUITES_CIPHERS                                                               \
        TLS_SUITES_AES13 ":" TLS_SUITES_CHACHA13 ":" TLS_SUITES_AES12                    \
                         ":" TLS_SUITES_CHACHA12
#else
#define TLS_SUITES_CIPHERS                                                               \
        TLS_SUITES_CHACHA13 ":" TLS_SUITES_AES13 ":" TLS_SUITES_CHACHA12                 \
                            ":" TLS_SUITES_AES12
#endif

/* The ECC curves a TLS 1.2 peer may use (the rest are disabled). */
#define TLS_SUITES_CURVES "X25519:P-256:P-384"

/* Key exchange groups, in preference order (TLS 1.3 key shares, supported_groups). */
#define TLS_SUITES_GROUPS                                                                \
        WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1,                \
            WOLFSSL_FFDHE_2048, WOLFSSL_FFDHE_3072

#endif
