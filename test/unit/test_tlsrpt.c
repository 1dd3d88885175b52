/*
 * Unit tests for lib/tlsrpt: the JSON line of each policy type (the member
 * names and forms scripts/tlsrpt-report reads, RFC 8460 section 4.3), peer
 * text escaped, the measuring of a line too long for the buffer, and the
 * day files: one per UTC day, lines appended whole, the directory made.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dane.h"
#include "mtasts.h"
#include "tlsrpt.h"

#define TEST_T0 1796601600 /* 2026-12-07T00:00:00Z */

static void test_no_policy(void **state)
{
        struct tlsrpt_result r = {.time = TEST_T0 + 3723,
                                  .domain = "example.test",
                                  .result = "starttls-not-supported",
                                  .sending_ip = "192.0.2.1",
                                  .receiving_ip = "198.51.100.2",
                                  .info = "no \"STARTTLS\"\n"};
        char out[1024];
        size_t n;

        (void)state;
        n = tlsrpt_format(&r, out, sizeof(out));
        assert_int_equal(n, strlen(out));
        assert_string_equal(out, "{\"time\":\"2026-12-07T01:02:03Z\","
                                 "\"policy-type\":\"no-policy-found\","
                                 "\"policy-domain\":\"example.test\","
                                 "\"policy-string\":[],\"mx-host\":[],"
                                 "\"result\":\"starttls-not-supported\","
                                 "\"sending-mta-ip\":\"192.0.2.1\","
                                 "\"receiving-ip\":\"198.51.100.2\","
                                 "\"failure-reason-code\":"
                                 "\"no \\\"STARTTLS\\\"\\u000a\"}\n");
}

static void test_sts(void **state)
{
        char *mx[] = {"mx1.example.test", "*.backup.test"};
        struct mtasts_policy p = {
            .mode = MTASTS_MODE_TESTING, .max_age = 86400, .nmx = 2, .mx = mx};
        struct tlsrpt_result r = {.time = TEST_T0,
                                  .domain = "example.test",
                                  .sts = &p,
                                  .result = "success",
                                  .sending_ip = "2001:db8::1",
                                  .receiving_ip = "2001:db8::2",
                                  .receiving_mx = "mx1.example.test"};
        char out[1024];

        (void)state;
        tlsrpt_format(&r, out, sizeof(out));
        assert_string_equal(out, "{\"time\":\"2026-12-07T00:00:00Z\","
                                 "\"policy-type\":\"sts\","
                                 "\"policy-domain\":\"example.test\","
                                 "\"policy-string\":[\"version: STSv1\","
                                 "\"mode: testing\",\"mx: mx1.example.test\","
                                 "\"mx: *.backup.test\",\"max_age: 86400\"],"
                                 "\"mx-host\":[\"mx1.example.test\",\"*.backup.test\"],"
                                 "\"result\":\"success\","
                                 "\"sending-mta-ip\":\"2001:db8::1\","
                                 "\"receiving-ip\":\"2001:db8::2\","
                                 "\"receiving-mx-hostname\":\"mx1.example.test\"}\n");
}

static void test_tlsa(void **state)
{
        static struct dane_result d; /* large: not on the stack */
        unsigned char k1[] = {0x00, 0xab, 0xff}, k2[] = {0x12};
        struct tlsrpt_result r = {.time = TEST_T0,
                                  .domain = "example.test",
                                  .dane = &d,
                                  .result = "tlsa-invalid",
                                  .sending_ip = "192.0.2.1",
                                  .receiving_ip = "198.51.100.2",
                                  .receiving_mx = "mx.example.net",
                                  .info = "no record matches"};
        char out[1024];

        (void)state;
        d.state = DANE_TLSA;
        snprintf(d.mx_host, sizeof(d.mx_host), "mx.example.net");
        d.ntlsa = 2;
        d.tlsa[0] = (struct dane_tlsa){3, 1, 1, k1, sizeof(k1)};
        d.tlsa[1] = (struct dane_tlsa){2, 0, 2, k2, sizeof(k2)};
        tlsrpt_format(&r, out, sizeof(out));
        assert_non_null(strstr(out, "\"policy-type\":\"tlsa\","
                                    "\"policy-domain\":\"example.test\","
                                    "\"policy-string\":[\"3 1 1 00abff\",\"2 0 2 12\"],"
                                    "\"mx-host\":[\"mx.example.net\"],"
                                    "\"result\":\"tlsa-invalid\","));
}

/* An announced MTA-STS policy that could not be had: type sts, nothing known of it. */
static void test_sts_failed(void **state)
{
        struct tlsrpt_result r = {.time = TEST_T0,
                                  .domain = "example.test",
                                  .sts_failed = true,
                                  .result = "sts-policy-fetch-error",
                                  .sending_ip = "192.0.2.1",
                                  .receiving_ip = "198.51.100.2",
                                  .info = "mta-sts.example.test: 404"};
        char out[1024];

        (void)state;
        tlsrpt_format(&r, out, sizeof(out));
        assert_non_null(strstr(out, "\"policy-type\":\"sts\","
                                    "\"policy-domain\":\"example.test\","
                                    "\"policy-string\":[],\"mx-host\":[],"
                                    "\"result\":\"sts-policy-fetch-error\","));
}

/* Like snprintf: the length is measured past a short buffer, which is left empty. */
static void test_measure(void **state)
{
        struct tlsrpt_result r = {.time = TEST_T0,
                                  .domain = "example.test",
                                  .result = "success",
                                  .sending_ip = "192.0.2.1",
                                  .receiving_ip = "198.51.100.2"};
        char full[512], small[16] = "junk";
        size_t n = tlsrpt_format(&r, full, sizeof(full));

        (void)state;
        assert_true(n > sizeof(small));
        assert_int_equal(tlsrpt_format(&r, small, sizeof(small)), n);
        assert_string_equal(small, "");
        assert_int_equal(full[n - 1], '\n');
}

static char *test_slurp(const char *path)
{
        FILE *f = fopen(path, "r");
        static char text[8192];
        size_t n;

        if (f == NULL)
                return NULL;
        n = fread(text, 1, sizeof(text) - 1, f);
        text[n] = '\0';
        fclose(f);
        return text;
}

static void test_files(void **state)
{
        char dir[] = "/tmp/test_tlsrpt.XXXXXX", path[256], err[256], cmd[300];
        struct tlsrpt_result r = {.domain = "a.test",
                                  .result = "success",
                                  .sending_ip = "192.0.2.1",
                                  .receiving_ip = "198.51.100.2"};
        struct tlsrpt *t;
        struct stat st;
        char *text;

        (void)state;
        assert_non_null(mkdtemp(dir));
        t = tlsrpt_open(dir, err, sizeof(err));
        assert_non_null(t);
        snprintf(path, sizeof(path), "%s/tlsrpt", dir);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISDIR(st.st_mode));

        /* Two lines on one day, the third on the next (23:59:59, then 00:00:00). */
        r.time = TEST_T0 + 86399;
        assert_int_equal(tlsrpt_record(t, &r), 0);
        r.domain = "b.test";
        assert_int_equal(tlsrpt_record(t, &r), 0);
        r.time = TEST_T0 + 86400;
        r.domain = "c.test";
        assert_int_equal(tlsrpt_record(t, &r), 0);
        tlsrpt_close(t);

        snprintf(path, sizeof(path), "%s/tlsrpt/2026-12-07.jsonl", dir);
        text = test_slurp(path);
        assert_non_null(text);
        assert_non_null(strstr(text, "\"policy-domain\":\"a.test\""));
        assert_non_null(strstr(text, "}\n{\"time\":\"2026-12-07T23:59:59Z\","));
        assert_non_null(strstr(text, "\"policy-domain\":\"b.test\""));
        assert_null(strstr(text, "c.test"));
        snprintf(path, sizeof(path), "%s/tlsrpt/2026-12-08.jsonl", dir);
        text = test_slurp(path);
        assert_non_null(text);
        assert_non_null(strstr(text, "{\"time\":\"2026-12-08T00:00:00Z\","));
        assert_non_null(strstr(text, "\"policy-domain\":\"c.test\""));

        /* Opened again: appended, not truncated. */
        t = tlsrpt_open(dir, err, sizeof(err));
        assert_non_null(t);
        r.domain = "d.test";
        assert_int_equal(tlsrpt_record(t, &r), 0);
        tlsrpt_close(t);
        text = test_slurp(path);
        assert_non_null(strstr(text, "c.test"));
        assert_non_null(strstr(text, "d.test"));

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

static void test_open_errors(void **state)
{
        char err[256];

        (void)state;
        assert_null(tlsrpt_open("/nonexistent/state", err, sizeof(err)));
        assert_string_equal(err, "/nonexistent/state/tlsrpt: No such file or directory");
        assert_null(tlsrpt_open(NULL, err, sizeof(err)));
        assert_string_equal(err, "no state_dir");
        tlsrpt_close(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_no_policy),   cmocka_unit_test(test_sts),
            cmocka_unit_test(test_tlsa),        cmocka_unit_test(test_sts_failed),
            cmocka_unit_test(test_measure),     cmocka_unit_test(test_files),
            cmocka_unit_test(test_open_errors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
