/* Build: `make fuzz` (clang, libFuzzer); `make units` links it with replay.c. */

/*
 * libFuzzer harness for the parsing of DNS answers (lib/dns.c): what the
 * resolver hands back is a remote peer's bytes, checked only for DNSSEC by
 * the resolver. The first byte picks the query type (TXT, MX, A, AAAA,
 * TLSA); the rest is the answer. lib/dns.c is included, so its static
 * parsers are reached without the query around them. Besides looking for
 * crashes it checks what lib/dane.c and lib/sts.c rely on:
 * - never more records than the arrays hold, and a status of 0, -ENOENT or
 *   -EINVAL, with records only when it is 0 (TXT: 0 or -EINVAL);
 * - MX exchanges and owner names are lower case, without the dot that ends
 *   a name (an escaped dot, "\\.", is part of a label and stays), printable
 *   (ns_name_ntop()'s presentation form), and NUL-terminated in place;
 * - an A record is AF_INET, an AAAA AF_INET6; TLSA data is all there;
 * - MX sorted by preference as dns_rr_work() sorts them keeps every record.
 */
#include "../../lib/dns.c" /* IWYU pragma: keep */

#include "fuzz_check.h"

#include <stdint.h>

static void fuzz_dns_name(const char *name, size_t size)
{
        size_t n = strnlen(name, size);

        FUZZ_CHECK(n < size);
        FUZZ_CHECK(n == 1 || !dns_ends_in_dot(name, n));
        for (size_t i = 0; i < n; i++) {
                FUZZ_CHECK(name[i] > ' ' && name[i] < 0x7f);
                FUZZ_CHECK(!(name[i] >= 'A' && name[i] <= 'Z'));
        }
}

static void fuzz_dns_rr(const unsigned char *ans, int len, int qtype)
{
        struct dns_req r;
        int st;

        memset(&r, 0, sizeof(r));
        r.rr = xcalloc(DNS_RR_MAX, sizeof(*r.rr));
        st = dns_rr_parse(&r, ans, len, qtype);
        FUZZ_CHECK(st == 0 || st == -ENOENT || st == -EINVAL);
        FUZZ_CHECK(r.nrr <= DNS_RR_MAX);
        FUZZ_CHECK(st != -ENOENT || r.nrr == 0);
        if (r.nrr > 0)
                fuzz_dns_name(r.owner, sizeof(r.owner));
        for (size_t i = 0; i < r.nrr; i++) {
                const struct dns_rr *rr = &r.rr[i];

                switch (qtype) {
                case ns_t_mx:
                        fuzz_dns_name(rr->name, sizeof(rr->name));
                        FUZZ_CHECK(rr->name[0] != '\0' && strcmp(rr->name, ".") != 0);
                        FUZZ_CHECK(rr->pref <= 65535);
                        break;
                case ns_t_a:
                        FUZZ_CHECK(rr->addr.ss_family == AF_INET);
                        break;
                case ns_t_aaaa:
                        FUZZ_CHECK(rr->addr.ss_family == AF_INET6);
                        break;
                case ns_t_tlsa:
                        FUZZ_CHECK(rr->data != NULL && rr->len + 3 <= (size_t)len);
                        break;
                }
        }
        if (qtype == ns_t_mx && r.nrr > 1) {
                size_t n = r.nrr;

                for (size_t i = 0; i < n; i++)
                        r.rr[i].pref = r.rr[i].pref * DNS_RR_MAX + (unsigned)i;
                qsort(r.rr, n, sizeof(*r.rr), dns_mx_order);
                for (size_t i = 1; i < n; i++)
                        FUZZ_CHECK(r.rr[i - 1].pref < r.rr[i].pref);
        }
        for (size_t i = 0; i < r.nrr; i++)
                free((void *)r.rr[i].data);
        free(r.rr);
}

static void fuzz_dns_txt(const unsigned char *ans, int len)
{
        struct dns_req r;
        int st;

        memset(&r, 0, sizeof(r));
        st = dns_txt_parse(&r, ans, len);
        FUZZ_CHECK(st == 0 || st == -EINVAL);
        FUZZ_CHECK(r.ntxt <= DNS_TXT_MAX);
        for (size_t i = 0; i < r.ntxt; i++) {
                FUZZ_CHECK(r.txt[i][r.txt_len[i]] == '\0');
                FUZZ_CHECK(r.txt_len[i] < (size_t)len);
                free(r.txt[i]);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const int types[] = {ns_t_txt, ns_t_mx, ns_t_a, ns_t_aaaa, ns_t_tlsa};
        unsigned char *ans;
        int type;

        if (size < 1 || size - 1 > DNS_ANSWER_MAX)
                return 0;
        type = types[data[0] % UTIL_ARRAY_LEN(types)];
        /* A copy of exactly the answer's size, so that ASan sees any overread. */
        ans = xmalloc(size - 1 + 1);
        memcpy(ans, data + 1, size - 1);
        if (type == ns_t_txt)
                fuzz_dns_txt(ans, (int)(size - 1));
        else
                fuzz_dns_rr(ans, (int)(size - 1), type);
        free(ans);
        return 0;
}
