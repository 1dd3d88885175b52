/*
 * Unit tests for lib/learned: the round trip, staleness and clock skew,
 * domain normalisation, newest-wins, forget, prune, iteration, persistence
 * across close and across a process that dies without closing (at exit and
 * killed mid-write), a full map, a second process reading and writing while
 * this one holds the store open, a record of another format version, and
 * how a learned record combines with the policy table.
 *
 * Every test gets its own temporary state directory. Children made with
 * fork() report through their exit status: cmocka's asserts belong to the
 * parent.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "learned.h"
#include "policy.h"

#define TEST_NOW  ((int64_t)1800000000) /* 2027-01-15 */
#define TEST_DAY  ((int64_t)24 * 60 * 60)
#define TEST_CERT "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct test_store {
        char dir[64];
        struct learned *l;
};

static void test_path(const struct test_store *s, const char *name, char *out, size_t n)
{
        snprintf(out, n, "%s/%s", s->dir, name);
}

static struct learned *test_open(struct test_store *s)
{
        char err[256] = "";
        struct learned *l = learned_open(s->dir, err, sizeof(err));

        if (l == NULL)
                fail_msg("learned_open: %s", err);
        return l;
}

static int test_setup(void **state)
{
        struct test_store *s = calloc(1, sizeof(*s));

        assert_non_null(s);
        snprintf(s->dir, sizeof(s->dir), "/tmp/mailward-test-learned-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        s->l = test_open(s);
        *state = s;
        return 0;
}

static int test_teardown(void **state)
{
        struct test_store *s = *state;
        char p[128];

        learned_close(s->l);
        test_path(s, LEARNED_FILE, p, sizeof(p));
        unlink(p);
        test_path(s, LEARNED_FILE "-lock", p, sizeof(p));
        unlink(p);
        assert_int_equal(rmdir(s->dir), 0); /* nothing else was left behind */
        free(s);
        return 0;
}

static struct learned_tls test_obs(int64_t t, const char *cert, const char *mx)
{
        struct learned_tls o;

        memset(&o, 0, sizeof(o));
        o.time = t;
        snprintf(o.version, sizeof(o.version), "TLSv1.3");
        snprintf(o.cipher, sizeof(o.cipher), "TLS_AES_256_GCM_SHA384");
        snprintf(o.cert_sha256, sizeof(o.cert_sha256), "%s", cert);
        snprintf(o.mx_host, sizeof(o.mx_host), "%s", mx);
        return o;
}

static void test_round_trip(void **state)
{
        struct test_store *s = *state;
        struct learned_tls o = test_obs(TEST_NOW, TEST_CERT, "mx1.example.org"), got;

        assert_int_equal(learned_lookup(s->l, "example.org", TEST_NOW, TEST_DAY, &got),
                         0);
        assert_int_equal(learned_record(s->l, "example.org", &o), 0);
        memset(&got, 0x5a, sizeof(got));
        assert_int_equal(learned_lookup(s->l, "example.org", TEST_NOW, TEST_DAY, &got),
                         1);
        assert_true(got.time == TEST_NOW);
        assert_string_equal(got.version, "TLSv1.3");
        assert_string_equal(got.cipher, "TLS_AES_256_GCM_SHA384");
        assert_string_equal(got.cert_sha256, TEST_CERT);
        assert_string_equal(got.mx_host, "mx1.example.org");
        /* out may be NULL; other domains, even a parent or a child, are not found */
        assert_int_equal(learned_lookup(s->l, "example.org", TEST_NOW, TEST_DAY, NULL),
                         1);
        assert_int_equal(learned_lookup(s->l, "org", TEST_NOW, TEST_DAY, NULL), 0);
        assert_int_equal(learned_lookup(s->l, "a.example.org", TEST_NOW, TEST_DAY, NULL),
                         0);

        /* Fields at their longest, empty fields, an upper-case fingerprint. */
        memset(&o, 0, sizeof(o));
        o.time = -5; /* negative times survive the encoding */
        memset(o.mx_host, 'm', sizeof(o.mx_host) - 1);
        memset(o.cipher, 'c', sizeof(o.cipher) - 1);
        snprintf(o.cert_sha256, sizeof(o.cert_sha256), "%s",
                 "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF");
        assert_int_equal(learned_record(s->l, "long.example", &o), 0);
        assert_int_equal(learned_lookup(s->l, "long.example", -5, 0, &got), 1);
        assert_true(got.time == -5);
        assert_string_equal(got.version, "");
        assert_string_equal(got.mx_host, o.mx_host);
        assert_string_equal(got.cipher, o.cipher);
        assert_string_equal(got.cert_sha256, TEST_CERT);
}

static void test_staleness(void **state)
{
        struct test_store *s = *state;
        struct learned_tls o = test_obs(TEST_NOW, "", "");
        const int64_t max = LEARNED_MAX_AGE_DEFAULT;

        assert_int_equal(learned_record(s->l, "example.net", &o), 0);
        assert_int_equal(learned_lookup(s->l, "example.net", TEST_NOW, max, NULL), 1);
        assert_int_equal(learned_lookup(s->l, "example.net", TEST_NOW + max, max, NULL),
                         1);
        assert_int_equal(
            learned_lookup(s->l, "example.net", TEST_NOW + max + 1, max, NULL), 0);
        assert_int_equal(learned_lookup(s->l, "example.net", TEST_NOW + 1, 0, NULL), 0);
        assert_int_equal(learned_lookup(s->l, "example.net", TEST_NOW, -1, NULL), 0);
        /* A record from a little in the future (clocks differ) is fresh, */
        assert_int_equal(
            learned_lookup(s->l, "example.net", TEST_NOW - LEARNED_CLOCK_SKEW, max, NULL),
            1);
        /* one from far in the future (a clock that was wrong) is not. */
        assert_int_equal(learned_lookup(s->l, "example.net",
                                        TEST_NOW - LEARNED_CLOCK_SKEW - 1, max, NULL),
                         0);
        /* Extreme values do not overflow (UBSan would stop here). */
        assert_int_equal(learned_lookup(s->l, "example.net", INT64_MAX, INT64_MAX, NULL),
                         1);
        assert_int_equal(learned_lookup(s->l, "example.net", INT64_MIN, INT64_MAX, NULL),
                         0);
        o.time = INT64_MIN;
        assert_int_equal(learned_record(s->l, "min.example", &o), 0);
        assert_int_equal(learned_lookup(s->l, "min.example", INT64_MAX, INT64_MAX, NULL),
                         0);
        assert_int_equal(learned_lookup(s->l, "min.example", INT64_MIN, 0, NULL), 1);
}

static int test_collect(const char *domain, const struct learned_tls *rec, void *arg)
{
        char *out = arg;
        size_t n = strlen(out);

        snprintf(out + n, 512 - n, "%s=%lld ", domain, (long long)rec->time);
        return 0;
}

static void test_domains(void **state)
{
        struct test_store *s = *state;
        struct learned_tls o = test_obs(TEST_NOW, "", ""), got;
        char list[512] = "";
        char longname[300];

        assert_int_equal(learned_record(s->l, "MiXeD.Example.COM.", &o), 0);
        assert_int_equal(learned_lookup(s->l, "mixed.example.com", TEST_NOW, 1, &got), 1);
        assert_int_equal(learned_lookup(s->l, "MIXED.EXAMPLE.COM", TEST_NOW, 1, &got), 1);
        assert_int_equal(learned_lookup(s->l, "mixed.example.com.", TEST_NOW, 1, &got),
                         1);
        o.time++;
        assert_int_equal(learned_record(s->l, "mixed.example.com", &o), 0);
        assert_int_equal(learned_iterate(s->l, test_collect, list), 0);
        assert_string_equal(list, "mixed.example.com=1800000001 "); /* one record */

        /* Names that cannot be recipient domains are refused, not stored. */
        memset(longname, 'a', sizeof(longname));
        longname[254] = '\0';
        const char *bad[] = {"",
                             ".",
                             "..",
                             ".example.com",
                             "example..",
                             "a b.example",
                             "tab\t.x",
                             "x\x7f.y",
                             "caf\xc3\xa9.example",
                             longname};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(learned_record(s->l, bad[i], &o), -EINVAL);
                assert_int_equal(learned_lookup(s->l, bad[i], TEST_NOW, 1, NULL),
                                 -EINVAL);
                assert_int_equal(learned_forget(s->l, bad[i]), -EINVAL);
        }
        assert_int_equal(learned_record(s->l, NULL, &o), -EINVAL);
        longname[253] = '\0'; /* 253 bytes is the longest domain, */
        assert_int_equal(learned_record(s->l, longname, &o), 0);
        longname[253] = '.'; /* also with its trailing dot */
        assert_int_equal(learned_lookup(s->l, longname, TEST_NOW, 1, NULL), 1);

        /* Observations that do not fit the format are refused. */
        o = test_obs(TEST_NOW, "0123", "");
        assert_int_equal(learned_record(s->l, "x.example", &o), -EINVAL);
        o = test_obs(TEST_NOW, TEST_CERT, "");
        o.cert_sha256[10] = 'g';
        assert_int_equal(learned_record(s->l, "x.example", &o), -EINVAL);
        o = test_obs(TEST_NOW, "", "");
        memset(o.version, 'v', sizeof(o.version)); /* no NUL */
        assert_int_equal(learned_record(s->l, "x.example", &o), -EINVAL);
        assert_int_equal(learned_record(s->l, "x.example", NULL), -EINVAL);
        assert_int_equal(learned_lookup(s->l, "x.example", TEST_NOW, 1, NULL), 0);
}

static void test_newest_wins(void **state)
{
        struct test_store *s = *state;
        struct learned_tls a = test_obs(TEST_NOW, "", "old.example.org");
        struct learned_tls b = test_obs(TEST_NOW + 100, TEST_CERT, "new.example.org");
        struct learned_tls got;

        assert_int_equal(learned_record(s->l, "example.org", &a), 0);
        assert_int_equal(learned_record(s->l, "example.org", &b), 0);
        assert_int_equal(learned_lookup(s->l, "example.org", TEST_NOW, TEST_DAY, &got),
                         1);
        assert_string_equal(got.mx_host, "new.example.org");
        assert_string_equal(got.cert_sha256, TEST_CERT);
        /* An older observation arriving late (another process) changes nothing. */
        assert_int_equal(learned_record(s->l, "example.org", &a), 0);
        assert_int_equal(learned_lookup(s->l, "example.org", TEST_NOW, TEST_DAY, &got),
                         1);
        assert_true(got.time == TEST_NOW + 100);
        assert_string_equal(got.mx_host, "new.example.org");
        /* The same time again replaces: the latest call wins a tie. */
        b = test_obs(TEST_NOW + 100, "", "tie.example.org");
        assert_int_equal(learned_record(s->l, "example.org", &b), 0);
        assert_int_equal(learned_lookup(s->l, "example.org", TEST_NOW, TEST_DAY, &got),
                         1);
        assert_string_equal(got.mx_host, "tie.example.org");

        /* A record from far in the future is a clock error: now replaces it. */
        a = test_obs(TEST_NOW + 10 * TEST_DAY, "", "future.example.org");
        assert_int_equal(learned_record(s->l, "clock.example", &a), 0);
        b = test_obs(TEST_NOW, "", "now.example.org");
        assert_int_equal(learned_record(s->l, "clock.example", &b), 0);
        assert_int_equal(learned_lookup(s->l, "clock.example", TEST_NOW, TEST_DAY, &got),
                         1);
        assert_string_equal(got.mx_host, "now.example.org");
}

static void test_forget(void **state)
{
        struct test_store *s = *state;
        struct learned_tls o = test_obs(TEST_NOW, "", "");

        assert_int_equal(learned_record(s->l, "a.example", &o), 0);
        assert_int_equal(learned_record(s->l, "b.example", &o), 0);
        assert_int_equal(learned_forget(s->l, "A.Example."), 0);
        assert_int_equal(learned_lookup(s->l, "a.example", TEST_NOW, TEST_DAY, NULL), 0);
        assert_int_equal(learned_lookup(s->l, "b.example", TEST_NOW, TEST_DAY, NULL), 1);
        assert_int_equal(learned_forget(s->l, "a.example"), 0); /* already gone */
        assert_int_equal(learned_forget(s->l, "never.example"), 0);
        /* A forgotten domain can be learned again. */
        assert_int_equal(learned_record(s->l, "a.example", &o), 0);
        assert_int_equal(learned_lookup(s->l, "a.example", TEST_NOW, TEST_DAY, NULL), 1);
}

static int test_stop_at_b(const char *domain, const struct learned_tls *rec, void *arg)
{
        (void)rec;
        test_collect(domain, rec, arg);
        return strcmp(domain, "b.example") == 0 ? 7 : 0;
}

static void test_iterate_prune(void **state)
{
        struct test_store *s = *state;
        char list[512] = "";
        struct learned_tls o;

        o = test_obs(TEST_NOW - 40 * TEST_DAY, "", "");
        assert_int_equal(learned_record(s->l, "c.example", &o), 0);
        o = test_obs(TEST_NOW - 2 * TEST_DAY, "", "");
        assert_int_equal(learned_record(s->l, "b.example", &o), 0);
        o = test_obs(TEST_NOW, "", "");
        assert_int_equal(learned_record(s->l, "a.example", &o), 0);
        assert_int_equal(learned_iterate(s->l, test_collect, list), 0);
        /* Domain order, stale records included. */
        assert_string_equal(
            list, "a.example=1800000000 b.example=1799827200 c.example=1796544000 ");
        list[0] = '\0';
        assert_int_equal(learned_iterate(s->l, test_stop_at_b, list), 7);
        assert_string_equal(list, "a.example=1800000000 b.example=1799827200 ");

        assert_int_equal(learned_prune(s->l, TEST_NOW, LEARNED_MAX_AGE_DEFAULT), 1);
        assert_int_equal(learned_prune(s->l, TEST_NOW, LEARNED_MAX_AGE_DEFAULT), 0);
        list[0] = '\0';
        assert_int_equal(learned_iterate(s->l, test_collect, list), 0);
        assert_string_equal(list, "a.example=1800000000 b.example=1799827200 ");
        assert_int_equal(learned_prune(s->l, TEST_NOW, TEST_DAY), 1);
        assert_int_equal(learned_prune(s->l, TEST_NOW + 2, 1), 1);
        list[0] = '\0';
        assert_int_equal(learned_iterate(s->l, test_collect, list), 0);
        assert_string_equal(list, "");

        /* Many records across many pages: prune every other one. */
        for (int i = 0; i < 2000; i++) {
                char d[32];

                snprintf(d, sizeof(d), "d%04d.example", i);
                o = test_obs(i % 2 ? TEST_NOW : TEST_NOW - 40 * TEST_DAY, TEST_CERT, d);
                assert_int_equal(learned_record(s->l, d, &o), 0);
        }
        assert_int_equal(learned_prune(s->l, TEST_NOW, LEARNED_MAX_AGE_DEFAULT), 1000);
        for (int i = 0; i < 2000; i++) {
                char d[32];

                snprintf(d, sizeof(d), "d%04d.example", i);
                assert_int_equal(learned_lookup(s->l, d, TEST_NOW, 40 * TEST_DAY, NULL),
                                 i % 2);
        }
}

static void test_reopen(void **state)
{
        struct test_store *s = *state;
        struct learned_tls o = test_obs(TEST_NOW, TEST_CERT, "mx.example.org"), got;
        char err[256];

        assert_int_equal(learned_record(s->l, "example.org", &o), 0);
        learned_close(s->l);
        s->l = test_open(s);
        assert_int_equal(learned_lookup(s->l, "example.org", TEST_NOW, TEST_DAY, &got),
                         1);
        assert_string_equal(got.mx_host, "mx.example.org");
        learned_close(NULL);

        /* A directory that is not there is an error with a message, not a crash. */
        err[0] = '\0';
        assert_null(learned_open("/nonexistent/mailward-state", err, sizeof(err)));
        assert_non_null(strstr(err, "/nonexistent/mailward-state/learned.mdb"));
        assert_null(learned_open_size(s->dir, 0, err, sizeof(err)));
}

/* In a child: open, record, and die without closing. */
static void test_child_record(const char *dir, const char *domain)
{
        struct learned_tls o = test_obs(TEST_NOW, TEST_CERT, "child.example.org");
        char err[256];
        struct learned *l = learned_open(dir, err, sizeof(err));

        if (l == NULL)
                _exit(10);
        if (learned_record(l, domain, &o) != 0)
                _exit(11);
        _exit(0); /* no learned_close(), no atexit handlers */
}

static int test_wait(pid_t pid)
{
        int status;

        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static void test_crash_after_commit(void **state)
{
        struct test_store *s = *state;
        struct learned_tls got;
        pid_t pid;
        int status;

        learned_close(s->l); /* the parent holds no handle at all */
        s->l = NULL;
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                test_child_record(s->dir, "crash.example");
        status = test_wait(pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        s->l = test_open(s);
        assert_int_equal(learned_lookup(s->l, "crash.example", TEST_NOW, TEST_DAY, &got),
                         1);
        assert_string_equal(got.mx_host, "child.example.org");
}

/*
 * A child records as fast as it can and reports each domain after its
 * commit returned; it is killed at some point in the middle. Every reported
 * record is there, the store is consistent, and it takes new records.
 */
static void test_killed_mid_write(void **state)
{
        struct test_store *s = *state;
        int fds[2], reported = 0, n = 0, i;
        char buf[4096];
        ssize_t r;
        pid_t pid;

        learned_close(s->l);
        s->l = NULL;
        assert_int_equal(pipe(fds), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char err[256], d[32];
                struct learned *l = learned_open(s->dir, err, sizeof(err));

                close(fds[0]);
                if (l == NULL)
                        _exit(10);
                for (i = 0;; i++) {
                        struct learned_tls o = test_obs(TEST_NOW, TEST_CERT, "");

                        snprintf(d, sizeof(d), "k%06d.example", i);
                        if (learned_record(l, d, &o) != 0)
                                _exit(11);
                        if (write(fds[1], "x", 1) != 1)
                                _exit(12);
                }
        }
        close(fds[1]);
        while (reported < 50 && (r = read(fds[0], buf, 1)) == 1)
                reported++;
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_true(WIFSIGNALED(test_wait(pid)));
        while ((r = read(fds[0], buf, sizeof(buf))) > 0)
                reported += (int)r;
        close(fds[0]);
        assert_true(reported >= 50);

        s->l = test_open(s);
        for (i = 0; i < reported; i++) {
                char d[32];

                snprintf(d, sizeof(d), "k%06d.example", i);
                assert_int_equal(learned_lookup(s->l, d, TEST_NOW, TEST_DAY, NULL), 1);
        }
        /* At most the one whose commit had not returned may be there too. */
        n = learned_prune(s->l, TEST_NOW + 2 * TEST_DAY, TEST_DAY);
        assert_true(n == reported || n == reported + 1);
        struct learned_tls o = test_obs(TEST_NOW, "", "");
        assert_int_equal(learned_record(s->l, "after.example", &o), 0);
}

/*
 * Another process opens the store while this one holds it open: it reads
 * what this one committed, and this one's next lookup sees what it wrote.
 */
static void test_two_processes(void **state)
{
        struct test_store *s = *state;
        struct learned_tls o = test_obs(TEST_NOW, "", "parent.example.org"), got;
        pid_t pid;
        int status;

        assert_int_equal(learned_record(s->l, "parent.example", &o), 0);
        assert_int_equal(learned_lookup(s->l, "child.example", TEST_NOW, TEST_DAY, NULL),
                         0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char err[256];
                struct learned *l = learned_open(s->dir, err, sizeof(err));
                struct learned_tls c;

                if (l == NULL)
                        _exit(10);
                if (learned_lookup(l, "parent.example", TEST_NOW, TEST_DAY, &c) != 1 ||
                    strcmp(c.mx_host, "parent.example.org") != 0)
                        _exit(11);
                c = test_obs(TEST_NOW, TEST_CERT, "child.example.org");
                if (learned_record(l, "child.example", &c) != 0)
                        _exit(12);
                learned_close(l);
                _exit(0);
        }
        status = test_wait(pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(learned_lookup(s->l, "child.example", TEST_NOW, TEST_DAY, &got),
                         1);
        assert_string_equal(got.mx_host, "child.example.org");
}

static void test_map_full(void **state)
{
        struct test_store *s = *state;
        struct learned_tls o = test_obs(TEST_NOW - 40 * TEST_DAY, TEST_CERT, "");
        char err[256], d[300];
        int i, rc = 0;

        learned_close(s->l);
        s->l = learned_open_size(s->dir, 64 * 1024, err, sizeof(err));
        assert_non_null(s->l);
        memset(o.mx_host, 'm', sizeof(o.mx_host) - 1); /* big records fill it sooner */
        for (i = 0; i < 10000; i++) {
                snprintf(d, sizeof(d), "full%05d.example", i);
                rc = learned_record(s->l, d, &o);
                if (rc != 0)
                        break;
        }
        assert_int_equal(rc, -ENOSPC);
        assert_true(i > 10); /* it did hold something first */
        /* Nothing of the failed record is there; everything before it is. */
        assert_int_equal(learned_lookup(s->l, d, TEST_NOW, 50 * TEST_DAY, NULL), 0);
        assert_int_equal(
            learned_lookup(s->l, "full00000.example", TEST_NOW, 50 * TEST_DAY, NULL), 1);
        snprintf(d, sizeof(d), "full%05d.example", i - 1);
        assert_int_equal(learned_lookup(s->l, d, TEST_NOW, 50 * TEST_DAY, NULL), 1);
        /* It stays full, and stays usable. */
        assert_int_equal(learned_record(s->l, "more.example", &o), -ENOSPC);
        /* Pruning the stale records makes room again. */
        assert_int_equal(learned_prune(s->l, TEST_NOW, LEARNED_MAX_AGE_DEFAULT), i);
        o.time = TEST_NOW;
        assert_int_equal(learned_record(s->l, "more.example", &o), 0);
        assert_int_equal(learned_lookup(s->l, "more.example", TEST_NOW, TEST_DAY, NULL),
                         1);
}

/*
 * A daemon that runs for months: once its domains have filled the store,
 * learned_record_room() prunes the stale ones and records the new one; a
 * store full of fresh records stays full, and nothing is pruned.
 */
static void test_record_room(void **state)
{
        struct test_store *s = *state;
        struct learned_tls o = test_obs(TEST_NOW - 40 * TEST_DAY, TEST_CERT, "");
        char err[256], d[300];
        int i, n, rc = 0, pruned = 0;

        learned_close(s->l);
        s->l = learned_open_size(s->dir, 64 * 1024, err, sizeof(err));
        assert_non_null(s->l);
        memset(o.mx_host, 'm', sizeof(o.mx_host) - 1);
        for (n = 0; rc == 0; n++) {
                assert_true(n < 10000);
                snprintf(d, sizeof(d), "old%05d.example", n);
                rc = learned_record(s->l, d, &o);
        }
        assert_int_equal(rc, -ENOSPC);
        n--; /* the old records stored */
        /* New records: once the store is full again, the stale ones make room,
         * and the new record is stored all the same. */
        o.time = TEST_NOW;
        for (i = 0; pruned == 0; i++) {
                assert_true(i < 10000);
                snprintf(d, sizeof(d), "new%05d.example", i);
                rc = learned_record_room(s->l, d, &o, LEARNED_MAX_AGE_DEFAULT, &pruned);
                assert_int_equal(rc, 0);
        }
        assert_int_equal(pruned, n);
        assert_int_equal(learned_lookup(s->l, d, TEST_NOW, TEST_DAY, NULL), 1);
        assert_int_equal(
            learned_lookup(s->l, "old00000.example", TEST_NOW, 50 * TEST_DAY, NULL), 0);
        /* Full of fresh records: -ENOSPC, nothing pruned, all of them kept. */
        for (i = 0, rc = 0; rc == 0; i++) {
                assert_true(i < 10000);
                snprintf(d, sizeof(d), "fresh%05d.example", i);
                rc = learned_record_room(s->l, d, &o, LEARNED_MAX_AGE_DEFAULT, &pruned);
        }
        assert_int_equal(rc, -ENOSPC);
        assert_int_equal(pruned, 0);
        assert_int_equal(
            learned_lookup(s->l, "new00000.example", TEST_NOW, TEST_DAY, NULL), 1);
        assert_int_equal(
            learned_lookup(s->l, "fresh00000.example", TEST_NOW, TEST_DAY, NULL), 1);
}

/* A value this version cannot read (a newer format) reads as absent. */
static void test_other_format(void **state)
{
        struct test_store *s = *state;
        /* a valid version 1 record of TEST_NOW but for its version byte */
        unsigned char v2[] = {2, 0, 0, 0, 0, 0x6b, 0x49, 0xd2, 0x00, 0, 0, 0, 0};
        unsigned char bad1[] = {1, 0, 0, 0, 0, 0x6b, 0x49, 0xd2, 0x00, 200, 'x'};
        struct {
                const char *key;
                void *val;
                size_t len;
        } raw[] = {
            {"v2.example", v2, sizeof(v2)},
            {"bad.example", bad1, sizeof(bad1)},
        };
        struct learned_tls o = test_obs(TEST_NOW, "", "mx.v2.example"), got;
        char p[128], list[512] = "";
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi dbi;

        /* Write the values with LMDB directly, with no learned handle open. */
        learned_close(s->l);
        s->l = NULL;
        test_path(s, LEARNED_FILE, p, sizeof(p));
        assert_int_equal(mdb_env_create(&env), 0);
        assert_int_equal(mdb_env_open(env, p, MDB_NOSUBDIR, 0600), 0);
        assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
        assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
        for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
                MDB_val k = {strlen(raw[i].key), (void *)raw[i].key};
                MDB_val v = {raw[i].len, raw[i].val};

                assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
        }
        assert_int_equal(mdb_txn_commit(txn), 0);
        mdb_env_close(env);

        s->l = test_open(s);
        assert_int_equal(learned_lookup(s->l, "v2.example", TEST_NOW, TEST_DAY, NULL), 0);
        assert_int_equal(learned_lookup(s->l, "bad.example", TEST_NOW, TEST_DAY, NULL),
                         0);
        assert_int_equal(learned_iterate(s->l, test_collect, list), 0);
        assert_string_equal(list, "");
        /* The next observation replaces it, whatever its time said. */
        assert_int_equal(learned_record(s->l, "v2.example", &o), 0);
        assert_int_equal(learned_lookup(s->l, "v2.example", TEST_NOW, TEST_DAY, &got), 1);
        assert_string_equal(got.mx_host, "mx.v2.example");
        /* Pruning removes what cannot be read. */
        assert_int_equal(learned_prune(s->l, TEST_NOW, TEST_DAY), 1);
        assert_int_equal(learned_lookup(s->l, "v2.example", TEST_NOW, TEST_DAY, NULL), 1);
}

static void test_expectation(void **state)
{
        struct learned_tls fresh = test_obs(TEST_NOW, "", "");
        struct policy *p = policy_new();
        struct policy_expectation base, e;
        const char *const match[] = {"nexthop"};

        (void)state;
        /* A default below encrypt is raised, with source learned. */
        policy_set_default(p, POLICY_LEVEL_MAY);
        base = policy_lookup(p, "example.org");
        assert_int_equal(base.source, POLICY_SOURCE_DEFAULT);
        e = learned_expectation(&base, &fresh);
        assert_int_equal(e.level, POLICY_LEVEL_ENCRYPT);
        assert_int_equal(e.written, POLICY_LEVEL_ENCRYPT);
        assert_int_equal(e.source, POLICY_SOURCE_LEARNED);
        assert_string_equal(policy_source_str(e.source), "learned");
        assert_int_equal(e.min_proto, base.min_proto);
        assert_int_equal(e.max_proto, base.max_proto);
        /* No fresh record: the table's answer. */
        e = learned_expectation(&base, NULL);
        assert_int_equal(e.level, POLICY_LEVEL_MAY);
        assert_int_equal(e.source, POLICY_SOURCE_DEFAULT);
        policy_set_default(p, POLICY_LEVEL_NONE);
        base = policy_lookup(p, "example.org");
        assert_int_equal(learned_expectation(&base, &fresh).level, POLICY_LEVEL_ENCRYPT);
        /* A default at encrypt or above is kept. */
        policy_set_default(p, POLICY_LEVEL_VERIFY);
        base = policy_lookup(p, "example.org");
        e = learned_expectation(&base, &fresh);
        assert_int_equal(e.level, POLICY_LEVEL_VERIFY);
        assert_int_equal(e.source, POLICY_SOURCE_DEFAULT);
        policy_free(p);

        /* A table entry is the administrator's word, even "none". */
        memset(&base, 0, sizeof(base));
        base.level = base.written = POLICY_LEVEL_NONE;
        base.source = POLICY_SOURCE_FILE;
        base.key = "broken.example";
        base.file = "/etc/mailward/policy";
        base.line = 3;
        e = learned_expectation(&base, &fresh);
        assert_int_equal(e.level, POLICY_LEVEL_NONE);
        assert_int_equal(e.source, POLICY_SOURCE_FILE);
        assert_int_equal(e.line, 3);
        base.level = base.written = POLICY_LEVEL_SECURE;
        base.match = match;
        base.nmatch = 1;
        e = learned_expectation(&base, &fresh);
        assert_int_equal(e.level, POLICY_LEVEL_SECURE);
        assert_ptr_equal(e.match, match);
}

/* A second file of raw values (MTA-STS policies): put, get, replace, forget, reopen. */
static void test_raw_file(void **state)
{
        struct test_store *s = *state;
        static const char big_fill = 'p';
        char err[256] = "", p[128];
        struct learned *r =
            learned_open_file(s->dir, "mta-sts.mdb", LEARNED_MAP_SIZE, err, sizeof(err));
        size_t n, biglen = 70000;
        char *big = malloc(biglen);
        void *v;

        assert_non_null(r);
        assert_non_null(big);
        memset(big, big_fill, biglen);
        assert_int_equal(learned_get(r, "example.com", &v, &n), 0);
        assert_null(v);
        assert_int_equal(learned_put(r, "Example.COM.", "one", 3), 0);
        assert_int_equal(learned_get(r, "example.com", &v, &n), 1);
        assert_int_equal(n, 3);
        assert_memory_equal(v, "one", 3);
        assert_int_equal(((char *)v)[3], '\0');
        free(v);
        /* replaced, and values larger than a page */
        assert_int_equal(learned_put(r, "example.com", big, biglen), 0);
        assert_int_equal(learned_get(r, "example.com", &v, &n), 1);
        assert_int_equal(n, biglen);
        assert_memory_equal(v, big, biglen);
        free(v);
        assert_int_equal(learned_put(r, "bad domain", "x", 1), -EINVAL);
        assert_int_equal(learned_get(r, "", &v, &n), -EINVAL);
        /* the TLS store in the same directory is another file */
        assert_int_equal(learned_lookup(s->l, "example.com", TEST_NOW, TEST_DAY, NULL),
                         0);
        /* durable across close */
        learned_close(r);
        r = learned_open_file(s->dir, "mta-sts.mdb", LEARNED_MAP_SIZE, err, sizeof(err));
        assert_non_null(r);
        assert_int_equal(learned_get(r, "example.com", &v, &n), 1);
        assert_int_equal(n, biglen);
        free(v);
        /* every key, whatever its value, in order; at most max of them */
        {
                char names[2][LEARNED_NAME_SIZE];

                assert_int_equal(learned_put(r, "a.example", "x", 1), 0);
                assert_int_equal(learned_put(r, "z.example", "", 0), 0);
                assert_int_equal(learned_keys(r, names, 2), 3);
                assert_string_equal(names[0], "a.example");
                assert_string_equal(names[1], "example.com");
                assert_int_equal(learned_keys(r, names, 0), 3);
                /* in pages: after a name, stored or not */
                assert_int_equal(learned_keys_after(r, "", names, 2), 2);
                assert_string_equal(names[0], "a.example");
                assert_string_equal(names[1], "example.com");
                assert_int_equal(learned_keys_after(r, names[1], names, 2), 1);
                assert_string_equal(names[0], "z.example");
                assert_int_equal(learned_keys_after(r, "z.example", names, 2), 0);
                assert_int_equal(learned_keys_after(r, "b.example", names, 2), 2);
                assert_string_equal(names[0], "example.com");
                assert_string_equal(names[1], "z.example");
                assert_int_equal(learned_keys_after(r, NULL, names, 1), 1);
                assert_string_equal(names[0], "a.example");
                assert_int_equal(learned_forget(r, "a.example"), 0);
                assert_int_equal(learned_forget(r, "z.example"), 0);
        }
        assert_int_equal(learned_forget(r, "example.com"), 0);
        assert_int_equal(learned_get(r, "example.com", &v, &n), 0);
        assert_int_equal(learned_keys(r, NULL, 0), 0);
        learned_close(r);
        free(big);
        test_path(s, "mta-sts.mdb", p, sizeof(p));
        assert_int_equal(unlink(p), 0);
        test_path(s, "mta-sts.mdb-lock", p, sizeof(p));
        assert_int_equal(unlink(p), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_round_trip, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_staleness, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_domains, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_newest_wins, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_forget, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_iterate_prune, test_setup,
                                            test_teardown),
            cmocka_unit_test_setup_teardown(test_reopen, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_crash_after_commit, test_setup,
                                            test_teardown),
            cmocka_unit_test_setup_teardown(test_killed_mid_write, test_setup,
                                            test_teardown),
            cmocka_unit_test_setup_teardown(test_two_processes, test_setup,
                                            test_teardown),
            cmocka_unit_test_setup_teardown(test_map_full, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_record_room, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_other_format, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_raw_file, test_setup, test_teardown),
            cmocka_unit_test(test_expectation),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
