/*
 * Unit tests for lib/sts: the in-memory cache's bound. A full cache drops
 * domains least recently used first, and a valid policy it drops is read
 * again from the store at its next use: it is still enforced, never turned
 * into "no policy". And how long a domain stays "none" is counted on the
 * clock that does not jump (given here), not on the date.
 *
 * No lookup leaves the process: every domain here is longer than 244
 * bytes, so "_mta-sts.DOMAIN" is too long for a DNS name and dns_txt()
 * refuses it before any query (the domain then has no TXT record, and a
 * stored policy is kept). Policies reach the cache from the store, written
 * here as lib/sts.c writes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "learned.h"
#include "log.h"
#include "pending.h"
#include "sts.h"

#define TEST_MAX  16
#define TEST_MANY 100
#define TEST_POLICY                                                                      \
        "version: STSv1\r\nmode: enforce\r\nmx: mx.example.net\r\nmax_age: 604800\r\n"

static int64_t test_mono_now;

static int64_t test_mono(void)
{
        return test_mono_now;
}

struct test_sts {
        char dir[64];
        uv_loop_t loop;
        struct learned *store;
        struct sts *s;
        struct log log;
        int64_t now;
};

/* Domain i: 251 bytes, too long for "_mta-sts." in front (see the top). */
static void test_domain(unsigned i, char out[254])
{
        char label[64];

        memset(label, 'a', 63);
        label[63] = '\0';
        snprintf(out, 254, "%s.%s.%s.n%05u%.45s.example", label, label, label, i,
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        assert_int_equal(strlen(out), 251);
}

/* Store a valid policy for domain i as sts_store_save() does, fetched age
 * seconds ago (max_age 604800: its refresh is due from a day on). */
static void test_store_aged(struct test_sts *t, unsigned i, int64_t age)
{
        unsigned char rec[256];
        uint64_t exp = (uint64_t)(t->now + 604800 - age);
        size_t o = 0, blen = strlen(TEST_POLICY);
        char domain[254];

        test_domain(i, domain);
        rec[o++] = STS_STORE_FORMAT;
        for (int b = 7; b >= 0; b--)
                rec[o++] = (unsigned char)(exp >> (8 * b));
        rec[o++] = 2;
        memcpy(rec + o, "id", 2);
        o += 2;
        memcpy(rec + o, TEST_POLICY, blen);
        o += blen;
        assert_int_equal(learned_put(t->store, domain, rec, o), 0);
}

static void test_store_policy(struct test_sts *t, unsigned i)
{
        test_store_aged(t, i, 0);
}

static void test_never_called(void *arg)
{
        (void)arg;
        fail_msg("no wait was expected");
}

/* sts_get() for domain i: the policy, or NULL for none (never a wait). */
static const struct mtasts_policy *test_get(struct test_sts *t, unsigned i)
{
        const struct mtasts_policy *p;
        struct pending_wait *w;
        char domain[254];
        enum sts_answer a;

        test_domain(i, domain);
        a = sts_get(t->s, domain, t->now, &p, test_never_called, NULL, &w);
        assert_int_not_equal(a, STS_PENDING);
        assert_null(w);
        return a == STS_POLICY ? p : NULL;
}

static void test_assert_enforced(const struct mtasts_policy *p)
{
        assert_non_null(p);
        assert_int_equal(p->mode, MTASTS_MODE_ENFORCE);
        assert_int_equal(p->nmx, 1);
        assert_string_equal(p->mx[0], "mx.example.net");
}

static int test_setup(void **state)
{
        struct test_sts *t = calloc(1, sizeof(*t));
        char err[256] = "";

        assert_non_null(t);
        snprintf(t->dir, sizeof(t->dir), "/tmp/mailward-test-sts-XXXXXX");
        assert_non_null(mkdtemp(t->dir));
        t->store =
            learned_open_file(t->dir, STS_STORE_FILE, (size_t)4 << 20, err, sizeof(err));
        if (t->store == NULL)
                fail_msg("learned_open_file: %s", err);
        assert_int_equal(uv_loop_init(&t->loop), 0);
        t->log.level = LOG_LVL_ERR;
        t->now = (int64_t)time(NULL);
        test_mono_now = 1000000;
        struct sts_conf sc = {.loop = &t->loop,
                              .log = &t->log,
                              .listener = "test",
                              .store = t->store,
                              .cache_max = TEST_MAX,
                              .mono = test_mono};
        t->s = sts_new(&sc);
        *state = t;
        return 0;
}

static int test_teardown(void **state)
{
        struct test_sts *t = *state;
        char p[128];

        sts_shutdown(t->s);
        assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
        sts_free(t->s);
        assert_int_equal(uv_loop_close(&t->loop), 0);
        learned_close(t->store);
        snprintf(p, sizeof(p), "%s/%s", t->dir, STS_STORE_FILE);
        unlink(p);
        snprintf(p, sizeof(p), "%s/%s-lock", t->dir, STS_STORE_FILE);
        unlink(p);
        assert_int_equal(rmdir(t->dir), 0);
        free(t);
        return 0;
}

/*
 * More domains with valid policies than the cache holds: it stays within
 * its size, and the first domain, long dropped, still has its policy.
 */
static void test_bound_policies(void **state)
{
        struct test_sts *t = *state;

        for (unsigned i = 0; i < TEST_MANY; i++) {
                test_store_policy(t, i);
                test_assert_enforced(test_get(t, i));
                assert_true(sts_count(t->s) <= TEST_MAX);
        }
        assert_true(sts_count(t->s) >= TEST_MAX - TEST_MAX / 8);
        /* Dropped (the least recently used), read again from the store. */
        test_assert_enforced(test_get(t, 0));
        test_assert_enforced(test_get(t, 1));
        assert_true(sts_count(t->s) <= TEST_MAX);
}

/* Domains without a policy ("none") are bounded as well, mixed with policies. */
static void test_bound_mixed(void **state)
{
        struct test_sts *t = *state;

        for (unsigned i = 0; i < TEST_MANY; i++) {
                if (i % 2 == 0) {
                        test_store_policy(t, i);
                        test_assert_enforced(test_get(t, i));
                } else {
                        assert_null(test_get(t, i));
                }
                assert_true(sts_count(t->s) <= TEST_MAX);
        }
        for (unsigned i = 0; i < TEST_MANY; i += 2)
                test_assert_enforced(test_get(t, i));
        assert_true(sts_count(t->s) <= TEST_MAX);
}

/*
 * Least recently used goes first: a domain used again is kept. Its record
 * is removed from the store, so the policy can only come from memory.
 */
static void test_lru(void **state)
{
        struct test_sts *t = *state;
        char domain[254];

        for (unsigned i = 0; i < TEST_MAX; i++) {
                test_store_policy(t, i);
                test_assert_enforced(test_get(t, i));
        }
        assert_int_equal(sts_count(t->s), TEST_MAX);
        test_domain(0, domain);
        assert_int_equal(learned_forget(t->store, domain), 0);
        test_assert_enforced(test_get(t, 0)); /* used: now the newest */
        test_store_policy(t, TEST_MAX);
        test_assert_enforced(test_get(t, TEST_MAX)); /* drops domain 1, not 0 */
        assert_true(sts_count(t->s) <= TEST_MAX);
        test_assert_enforced(test_get(t, 0));
        test_assert_enforced(test_get(t, 1));
}

/*
 * A domain without a TXT record is "none" for STS_NEGATIVE_SECS, not
 * looked up meanwhile; then the date is set back a day. Once that time has
 * passed on the clock that does not jump, the domain is looked up again
 * (and takes the policy stored for it meanwhile, as after a failed fetch):
 * the date going back does not keep it at "none" for another day.
 */
static void test_none_clock(void **state)
{
        struct test_sts *t = *state;

        assert_null(test_get(t, 500));
        test_store_policy(t, 500);
        test_mono_now += 60;
        assert_null(test_get(t, 500)); /* "none" holds: no lookup */
        t->now -= 24 * 60 * 60;
        test_mono_now += STS_NEGATIVE_SECS;
        /* The lookup ends at once here (the name is too long for DNS), so
         * this sts_get() still answers from before it; the next one has
         * the policy. */
        test_get(t, 500);
        test_assert_enforced(test_get(t, 500));
}

/*
 * The background refresh reaches every stored policy, also when the store
 * holds more than the cache: past the cache's size, the ones due for a
 * refresh are read in (and fetched again; here the fetch ends at once,
 * and the policy is kept). The due ones come last in the store's order.
 * Their records are then removed, so only memory can answer for them.
 */
static void test_sweep_beyond(void **state)
{
        struct test_sts *t = *state;
        char domain[254];

        for (unsigned i = 0; i < 3 * TEST_MAX; i++)
                test_store_policy(t, i);
        for (unsigned i = 3 * TEST_MAX; i < 3 * TEST_MAX + 4; i++)
                test_store_aged(t, i, 24 * 60 * 60 + 10);
        assert_true(sts_sweep(t->s, true) >= TEST_MAX);
        assert_true(sts_count(t->s) <= TEST_MAX);
        for (unsigned i = 3 * TEST_MAX; i < 3 * TEST_MAX + 4; i++) {
                test_domain(i, domain);
                assert_int_equal(learned_forget(t->store, domain), 0);
        }
        for (unsigned i = 3 * TEST_MAX; i < 3 * TEST_MAX + 4; i++)
                test_assert_enforced(test_get(t, i));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_bound_policies, test_setup,
                                            test_teardown),
            cmocka_unit_test_setup_teardown(test_bound_mixed, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_lru, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_none_clock, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_sweep_beyond, test_setup, test_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
