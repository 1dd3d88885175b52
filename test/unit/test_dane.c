/*
 * Unit tests for lib/dane: the in-memory cache's bound, and its lifetimes
 * counted on the clock the caller gives (relay.c gives util_mono_secs(), so
 * a change of the date neither stretches nor cuts them).
 *
 * No lookup leaves the process: every domain here is 254 bytes, longer
 * than a DNS name may be, so dns_query() refuses it before any query and
 * the lookup ends at once with "none" ("domain name too long"), cached as
 * any result is.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "dane.h"
#include "log.h"
#include "pending.h"

#define TEST_MAX 8

struct test_dane {
        uv_loop_t loop;
        struct dane *d;
        struct log log;
};

static void test_never_called(void *arg)
{
        (void)arg;
        fail_msg("no wait was expected");
}

/* dane_get() for key i (a domain and 192.0.2.x:25) at now. */
static void test_get(struct test_dane *t, unsigned i, int64_t now)
{
        struct sockaddr_storage ss;
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        const struct dane_result *r;
        struct pending_wait *w;
        char domain[256], label[64];

        memset(label, 'a', 63);
        label[63] = '\0';
        snprintf(domain, sizeof(domain), "%s.%s.%s.k%05u%.48s.example", label, label,
                 label, i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        assert_int_equal(strlen(domain), 254);
        memset(&ss, 0, sizeof(ss));
        sin->sin_family = AF_INET;
        sin->sin_port = htons(25);
        sin->sin_addr.s_addr = htonl(0xc0000200U | (i % 256));
        assert_int_equal(
            dane_get(t->d, domain, &ss, now, &r, test_never_called, NULL, &w),
            DANE_READY);
        assert_null(w);
        assert_int_equal(r->state, DANE_NONE);
        assert_string_equal(r->why, "domain name too long");
}

static int test_setup(void **state)
{
        struct test_dane *t = calloc(1, sizeof(*t));

        assert_non_null(t);
        assert_int_equal(uv_loop_init(&t->loop), 0);
        t->log.level = LOG_LVL_ERR;
        struct dane_conf dc = {
            .loop = &t->loop, .log = &t->log, .listener = "test", .cache_max = TEST_MAX};
        t->d = dane_new(&dc);
        *state = t;
        return 0;
}

static int test_teardown(void **state)
{
        struct test_dane *t = *state;

        dane_shutdown(t->d);
        assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
        dane_free(t->d);
        assert_int_equal(uv_loop_close(&t->loop), 0);
        free(t);
        return 0;
}

/* More keys with valid results than the cache holds: it stays within its size. */
static void test_bound(void **state)
{
        struct test_dane *t = *state;

        for (unsigned i = 0; i < 100; i++) {
                test_get(t, i, 1000);
                assert_true(dane_count(t->d) <= TEST_MAX);
        }
        assert_true(dane_count(t->d) >= TEST_MAX - 1);
}

/*
 * Results live DANE_CACHE_SECS on the caller's clock, from the lookup: at
 * 1000 + DANE_CACHE_SECS - 1 nothing has run out (a full cache drops the
 * least recently used one); from 1000 + DANE_CACHE_SECS on, what was
 * looked up at 1000 has, and a full cache drops all of it first.
 */
static void test_clock(void **state)
{
        struct test_dane *t = *state;

        for (unsigned i = 0; i < TEST_MAX; i++)
                test_get(t, i, 1000);
        assert_int_equal(dane_count(t->d), TEST_MAX);
        test_get(t, TEST_MAX, 1000 + DANE_CACHE_SECS - 1);
        assert_int_equal(dane_count(t->d), TEST_MAX);
        test_get(t, TEST_MAX + 1, 1000 + DANE_CACHE_SECS);
        /* left: TEST_MAX (looked up at 1000 + DANE_CACHE_SECS - 1) and TEST_MAX + 1 */
        assert_int_equal(dane_count(t->d), 2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_bound, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_clock, test_setup, test_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
