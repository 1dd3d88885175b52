/* Build: `make fuzz` (clang, libFuzzer); `make units` links it with replay.c. */

/*
 * libFuzzer harness for lib/tlshello.c, which reads a client's first bytes
 * (anyone's, before any TLS) to choose among a listener's certificates. The first
 * byte picks the ECDSA certificate's curve (P-256, P-384, P-521, or a group
 * tlshello does not know); the rest is what the client sent. Besides looking
 * for crashes and reads outside the input it checks that a decision depends
 * only on the bytes it was made from:
 * - any prefix of an input that asks for more asks for more too;
 * - once a prefix is decided, the whole input is decided the same way, and
 *   so is the input with a byte more;
 * - the host name read is one (lower case, no trailing dot, at most
 *   TLSHELLO_NAME_MAX bytes), or none: it goes into log lines as it is.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlshello.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const unsigned groups[] = {TLSHELLO_P256, TLSHELLO_P384, TLSHELLO_P521,
                                          29};
        enum tlshello_pick whole, half, more;
        unsigned group;
        unsigned char *copy;
        struct tlshello h;

        if (size < 1)
                return 0;
        group = groups[data[0] % 4];
        data++;
        size--;
        if (tlshello_read(data, size, &h) == TLSHELLO_READ_OK) {
                size_t n = strlen(h.sni);

                FUZZ_CHECK(n <= TLSHELLO_NAME_MAX);
                FUZZ_CHECK(n == 0 || h.sni[n - 1] != '.');
                for (size_t i = 0; i < n; i++)
                        FUZZ_CHECK(strchr("abcdefghijklmnopqrstuvwxyz0123456789-_.",
                                          h.sni[i]) != NULL);
        } else
                FUZZ_CHECK(h.sni[0] == '\0');
        whole = tlshello_pick(data, size, group);
        FUZZ_CHECK(whole <= TLSHELLO_BAD);
        if (group == 29)
                FUZZ_CHECK(whole == TLSHELLO_BAD);
        half = tlshello_pick(data, size / 2, group);
        if (whole == TLSHELLO_MORE)
                FUZZ_CHECK(half == TLSHELLO_MORE);
        if (half != TLSHELLO_MORE)
                FUZZ_CHECK(whole == half);
        /* A byte more, in a copy of its own (ASan sees a read past the input). */
        copy = malloc(size + 1);
        FUZZ_CHECK(copy != NULL);
        if (size > 0)
                memcpy(copy, data, size);
        copy[size] = 0x16;
        more = tlshello_pick(copy, size + 1, group);
        if (whole != TLSHELLO_MORE)
                FUZZ_CHECK(more == whole);
        free(copy);
        return 0;
}
