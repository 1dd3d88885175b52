/* Build: clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Ilib
 *        test/fuzz/fuzz_mtasts.c lib/mtasts.c lib/log.c lib/util.c -o /tmp/fuzz_mtasts
 * Run:   /tmp/fuzz_mtasts -max_total_time=60 [corpus-dir]   (from the repository root) */

/*
 * libFuzzer harness for the MTA-STS parsers (lib/mtasts.c), which read what
 * a remote domain publishes: its TXT records (the input cut at 0xfe bytes
 * into up to four), the HTTP response and the policy body. Besides looking
 * for crashes it checks what lib/sts.c relies on:
 * - a body found in a response lies inside the response;
 * - a policy that parses allows each of its own exact mx names as a
 *   certificate name, and a failed parse leaves nothing allocated;
 * - every reason is printable ASCII (it reaches log lines).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtasts.h"

#include "fuzz_check.h"

static void fuzz_mtasts_printable(const char *s)
{
        for (; *s != '\0'; s++)
                FUZZ_CHECK(*s >= 0x20 && *s <= 0x7e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *in = (const char *)data, *recs[4], *body;
        size_t lens[4], n = 0, start = 0, blen;
        char err[160], id[MTASTS_ID_MAX + 1];
        struct mtasts_policy p;

        for (size_t i = 0; i <= size && n < 4; i++) {
                if (i == size || data[i] == 0xfe) {
                        recs[n] = in + start;
                        lens[n++] = i - start;
                        start = i + 1;
                }
        }
        if (mtasts_txt_parse(recs, lens, n, id, err, sizeof(err)) == 1)
                FUZZ_CHECK(id[0] != '\0' && strlen(id) <= MTASTS_ID_MAX);
        fuzz_mtasts_printable(err);

        if (mtasts_http_parse(in, size, size % 2 == 0, &body, &blen, err, sizeof(err)) ==
            0)
                FUZZ_CHECK(body >= in && blen <= size &&
                           (size_t)(body - in) <= size - blen);
        fuzz_mtasts_printable(err);

        if (size <= MTASTS_BODY_MAX &&
            mtasts_policy_parse(in, size, &p, err, sizeof(err)) == 0) {
                for (size_t i = 0; i < p.nmx; i++) {
                        /* ("*.tld" patterns match no wildcard name: not checked) */
                        if (p.mx[i][0] != '*')
                                FUZZ_CHECK(mtasts_name_allowed(p.mx[i], p.mx[i]));
                }
                mtasts_policy_cleanup(&p);
        } else if (size <= MTASTS_BODY_MAX) {
                FUZZ_CHECK(p.nmx == 0 && p.mx == NULL);
                fuzz_mtasts_printable(err);
        }
        return 0;
}
