/*
 * tlshello: read a ClientHello far enough to choose a certificate. See
 * tlshello.h. The formats are RFC 8446's (4.1.2 ClientHello, 4.2
 * extensions, 5.1 records), which TLS 1.2's (RFC 5246, RFC 8422) agree with
 * in everything read here.
 */
#include "tlshello.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define TLSHELLO_RECORD_HEADER 5
#define TLSHELLO_RECORD_MAX    16384 /* a plaintext record's payload (2^14) */
#define TLSHELLO_HANDSHAKE     22    /* record type */
#define TLSHELLO_CLIENT_HELLO  1     /* handshake type */

/* Extensions read. */
#define TLSHELLO_EXT_SERVER_NAME 0
#define TLSHELLO_EXT_GROUPS      10
#define TLSHELLO_EXT_SIGALGS     13
#define TLSHELLO_EXT_VERSIONS    43

#define TLSHELLO_TLS13 0x0304

/* A bounded reader: every step checks what is left, and fails for good. */
struct tlshello_rd {
        const unsigned char *p;
        size_t n;
        bool bad;
};

static unsigned tlshello_u8(struct tlshello_rd *r)
{
        if (r->bad || r->n < 1) {
                r->bad = true;
                return 0;
        }
        r->n--;
        return *r->p++;
}

static unsigned tlshello_u16(struct tlshello_rd *r)
{
        unsigned hi = tlshello_u8(r);

        return (hi << 8) | tlshello_u8(r);
}

/* The next len bytes as a reader of their own (and skip them). */
static struct tlshello_rd tlshello_sub(struct tlshello_rd *r, size_t len)
{
        struct tlshello_rd s = {.p = r->p, .n = len, .bad = r->bad};

        if (r->bad || r->n < len) {
                r->bad = s.bad = true;
                s.n = 0;
                return s;
        }
        r->p += len;
        r->n -= len;
        return s;
}

/* A vector with a one- or two-byte length (RFC 8446 3.4). */
static struct tlshello_rd tlshello_vec8(struct tlshello_rd *r)
{
        return tlshello_sub(r, tlshello_u8(r));
}

static struct tlshello_rd tlshello_vec16(struct tlshello_rd *r)
{
        return tlshello_sub(r, tlshello_u16(r));
}

/* Does a list of two-byte values hold any of want (nwant of them)? */
static bool tlshello_has16(struct tlshello_rd list, const unsigned *want, size_t nwant)
{
        while (list.n >= 2) {
                unsigned v = tlshello_u16(&list);

                for (size_t i = 0; i < nwant; i++)
                        if (v == want[i])
                                return true;
        }
        return false;
}

/*
 * Gather the ClientHello's handshake message (header and body) from the
 * records in p into hs (room for TLSHELLO_MAX + 4 bytes): its length, 0 for
 * MORE, or -1 for BAD.
 */
static long tlshello_gather(const unsigned char *p, size_t n, unsigned char *hs)
{
        size_t off = 0, have = 0, need = 0;

        while (off < n) {
                size_t len, take;

                if (n - off < TLSHELLO_RECORD_HEADER)
                        return 0;
                if (p[off] != TLSHELLO_HANDSHAKE || p[off + 1] != 3)
                        return -1;
                len = (size_t)p[off + 3] << 8 | p[off + 4];
                if (len == 0 || len > TLSHELLO_RECORD_MAX)
                        return -1;
                off += TLSHELLO_RECORD_HEADER;
                take = len < n - off ? len : n - off;
                /* Up to the message's end once it is known, and the room. */
                if (need != 0 && take > need - have)
                        take = need - have;
                if (have + take > TLSHELLO_MAX + 4)
                        take = TLSHELLO_MAX + 4 - have;
                memcpy(hs + have, p + off, take);
                have += take;
                if (need == 0 && have >= 4) {
                        size_t body = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3];

                        if (hs[0] != TLSHELLO_CLIENT_HELLO || body > TLSHELLO_MAX)
                                return -1;
                        need = 4 + body;
                        if (have > need)
                                have = need;
                }
                if (need != 0 && have >= need)
                        return (long)need;
                if (take < len)
                        return 0; /* the record is not all here yet */
                off += len;
        }
        return 0;
}

bool tlshello_host_name(const char *p, size_t n, char *out)
{
        bool label = false, letter = false;

        if (n > 0 && p[n - 1] == '.')
                n--;
        if (n == 0 || n > TLSHELLO_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = p[i];

                if (c >= 'A' && c <= 'Z')
                        c = (char)(c - 'A' + 'a');
                if (c == '.') {
                        if (!label)
                                return false; /* an empty label */
                        label = false;
                } else if (c >= 'a' && c <= 'z') {
                        label = letter = true;
                } else if ((c >= '0' && c <= '9') || c == '-' || c == '_') {
                        label = true;
                } else {
                        return false;
                }
                out[i] = c;
        }
        out[n] = '\0';
        /* No letter: an IPv4 address (RFC 6066 allows none), or no name. */
        return label && letter;
}

/*
 * The host name of a server_name extension's data (RFC 6066 3): the first
 * host_name entry (tlshello_host_name()); "" when it is none.
 */
static void tlshello_sni(struct tlshello_rd data, char *out)
{
        struct tlshello_rd list = tlshello_vec16(&data);

        out[0] = '\0';
        while (!list.bad && list.n > 0) {
                unsigned type = tlshello_u8(&list);
                struct tlshello_rd name = tlshello_vec16(&list);

                if (list.bad || type != 0)
                        continue;
                if (!tlshello_host_name((const char *)name.p, name.n, out))
                        out[0] = '\0';
                return;
        }
}

enum tlshello_result tlshello_read(const unsigned char *p, size_t n, struct tlshello *h)
{
        /* 1.2: ECDSA with SHA-2, in a suite mailward allows. */
        static const unsigned ecdsa12_suites[] = {0xc02b, 0xc02c, 0xcca9};
        static const unsigned ecdsa12_sigalgs[] = {0x0403, 0x0503, 0x0603};
        unsigned char hs[TLSHELLO_MAX + 4];
        struct tlshello_rd r, suites, sigalgs = {0}, groups = {0};
        bool tls13 = false, have_sigalgs = false, have_groups = false;
        long len;

        memset(h, 0, sizeof(*h));
        len = tlshello_gather(p, n < TLSHELLO_INPUT_MAX ? n : TLSHELLO_INPUT_MAX, hs);
        if (len == 0 && n >= TLSHELLO_INPUT_MAX)
                return TLSHELLO_READ_BAD;
        if (len <= 0)
                return len == 0 ? TLSHELLO_READ_MORE : TLSHELLO_READ_BAD;
        r = (struct tlshello_rd){.p = hs + 4, .n = (size_t)len - 4};
        (void)tlshello_sub(&r, 2 + 32); /* legacy_version, random */
        (void)tlshello_vec8(&r);        /* legacy_session_id */
        suites = tlshello_vec16(&r);
        (void)tlshello_vec8(&r); /* legacy_compression_methods */
        if (r.bad)
                return TLSHELLO_READ_BAD;
        if (r.n > 0) {
                struct tlshello_rd exts = tlshello_vec16(&r);

                while (!exts.bad && exts.n > 0) {
                        unsigned type = tlshello_u16(&exts);
                        struct tlshello_rd data = tlshello_vec16(&exts);

                        if (type == TLSHELLO_EXT_VERSIONS) {
                                struct tlshello_rd v = tlshello_vec8(&data);
                                static const unsigned tls13v[] = {TLSHELLO_TLS13};

                                tls13 = !v.bad && tlshello_has16(v, tls13v, 1);
                        } else if (type == TLSHELLO_EXT_SIGALGS) {
                                sigalgs = tlshello_vec16(&data);
                                have_sigalgs = !sigalgs.bad;
                        } else if (type == TLSHELLO_EXT_GROUPS) {
                                groups = tlshello_vec16(&data);
                                have_groups = !groups.bad;
                        } else if (type == TLSHELLO_EXT_SERVER_NAME && !exts.bad) {
                                tlshello_sni(data, h->sni);
                        }
                }
                if (exts.bad) {
                        h->sni[0] = '\0';
                        return TLSHELLO_READ_BAD;
                }
        }
        for (unsigned g = TLSHELLO_P256; g <= TLSHELLO_P521; g++) {
                bool *ok = &h->ecdsa[g - TLSHELLO_P256];

                if (tls13) {
                        /* The scheme of the certificate's curve. */
                        unsigned scheme13 = 0x0403 + 0x0100 * (g - TLSHELLO_P256);

                        *ok = have_sigalgs && tlshello_has16(sigalgs, &scheme13, 1);
                        continue;
                }
                *ok = tlshello_has16(suites, ecdsa12_suites, 3) &&
                      (!have_sigalgs || tlshello_has16(sigalgs, ecdsa12_sigalgs, 3)) &&
                      (!have_groups || tlshello_has16(groups, &g, 1));
        }
        return TLSHELLO_READ_OK;
}

bool tlshello_takes_ecdsa(const struct tlshello *h, unsigned group)
{
        return group >= TLSHELLO_P256 && group <= TLSHELLO_P521 &&
               h->ecdsa[group - TLSHELLO_P256];
}

enum tlshello_pick tlshello_pick(const unsigned char *p, size_t n, unsigned ecdsa_group)
{
        struct tlshello h;

        if (ecdsa_group < TLSHELLO_P256 || ecdsa_group > TLSHELLO_P521)
                return TLSHELLO_BAD;
        switch (tlshello_read(p, n, &h)) {
        case TLSHELLO_READ_MORE:
                return TLSHELLO_MORE;
        case TLSHELLO_READ_OK:
                return tlshello_takes_ecdsa(&h, ecdsa_group) ? TLSHELLO_ECDSA
                                                             : TLSHELLO_RSA;
        case TLSHELLO_READ_BAD:
                break;
        }
        return TLSHELLO_BAD;
}

const char *tlshello_pick_str(enum tlshello_pick pick)
{
        switch (pick) {
        case TLSHELLO_MORE:
                return "more";
        case TLSHELLO_ECDSA:
                return "ecdsa";
        case TLSHELLO_RSA:
                return "rsa";
        case TLSHELLO_BAD:
                break;
        }
        return "bad";
}
