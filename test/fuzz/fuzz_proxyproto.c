/* Build: `make fuzz` (clang, libFuzzer); `make units` links it with replay.c. */

/*
 * libFuzzer harness for lib/proxyproto.c, which reads the first bytes of a
 * connection to an accept_proxy listener (a load balancer's, but anyone in
 * proxy_from can send anything). Besides looking for crashes and reads
 * outside the input it checks:
 * - a header is never longer than the input, nor than the longest taken;
 * - a header that names a client names an IPv4 or IPv6 address, the same
 *   family for both ends;
 * - what the TLVs gave is safe to log: NUL-terminated strings of letters,
 *   digits and "-._:/+=@" (the "0x" and hex of other values among them),
 *   and only version 2 gives anything;
 * - once a prefix is decided (a header, or not one), the whole input is
 *   decided the same way; a prefix of an input that asks for more asks too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_safe(const char *s, size_t size)
{
        size_t n = strnlen(s, size);

        return n < size &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789-._:/+=@") == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct proxyproto_hdr whole, half;
        char why[128], why2[128];
        long r = proxyproto_parse(data, size, &whole, why, sizeof(why));
        long h = proxyproto_parse(data, size / 2, &half, why2, sizeof(why2));

        FUZZ_CHECK(r >= -1 && (size_t)(r > 0 ? r : 0) <= size);
        FUZZ_CHECK(r <= PROXYPROTO_V2_MAX);
        FUZZ_CHECK(strnlen(why, sizeof(why)) < sizeof(why));
        FUZZ_CHECK((r == -1) == (why[0] != '\0'));
        if (r > 0) {
                FUZZ_CHECK(whole.version == 1 || whole.version == 2);
                if (whole.version == 1)
                        FUZZ_CHECK(r <= PROXYPROTO_V1_MAX);
        }
        if (r > 0) {
                FUZZ_CHECK(fuzz_safe(whole.unique_id, sizeof(whole.unique_id)));
                FUZZ_CHECK(fuzz_safe(whole.tls_version, sizeof(whole.tls_version)));
                FUZZ_CHECK(fuzz_safe(whole.endpoint, sizeof(whole.endpoint)));
                if (whole.version == 1)
                        FUZZ_CHECK(!whole.crc32c && !whole.balancer_tls &&
                                   whole.unique_id[0] == '\0' &&
                                   whole.tls_version[0] == '\0' &&
                                   whole.endpoint[0] == '\0');
        }
        if (r > 0 && whole.has_addrs) {
                FUZZ_CHECK(whole.src.ss_family == AF_INET ||
                           whole.src.ss_family == AF_INET6);
                FUZZ_CHECK(whole.src.ss_family == whole.dst.ss_family);
        }
        if (r == 0)
                FUZZ_CHECK(h == 0);
        if (h != 0) {
                FUZZ_CHECK(h == r);
                if (h > 0)
                        FUZZ_CHECK(memcmp(&half, &whole, sizeof(half)) == 0);
        }
        return 0;
}
