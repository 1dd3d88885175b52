/*
 * Unit tests for lib/buf.c: appending, consuming, reserving, growth with the
 * read offset compacted, shrinking, and appending a buffer's own bytes.
 * White-box where it matters: cap and off are looked at to show that storage
 * is reused and given back.
 */
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

#include "buf.h"

static void test_buf_expect(const struct buf *b, const char *want)
{
        assert_int_equal(buf_len(b), strlen(want));
        assert_memory_equal(buf_data(b), want, buf_len(b));
}

static void test_buf_init(void **state)
{
        struct buf b;

        (void)state;
        memset(&b, 0x5a, sizeof(b));
        buf_init(&b);
        assert_int_equal(buf_len(&b), 0);
        assert_non_null(buf_data(&b));
        assert_null(b.data);
        /* Cleanup of an empty buffer, twice, is harmless. */
        buf_cleanup(&b);
        buf_cleanup(&b);
        assert_int_equal(buf_len(&b), 0);
}

static void test_buf_append_consume(void **state)
{
        struct buf b;

        (void)state;
        buf_init(&b);
        buf_append(&b, "hello", 5);
        buf_append(&b, "", 0);
        buf_append(&b, NULL, 0);
        test_buf_expect(&b, "hello");
        buf_append(&b, " world", 6);
        test_buf_expect(&b, "hello world");
        buf_consume(&b, 6);
        test_buf_expect(&b, "world");
        assert_int_equal(b.off, 6);
        buf_consume(&b, 0);
        test_buf_expect(&b, "world");
        /* Consuming everything rewinds the offset. */
        buf_consume(&b, 5);
        assert_int_equal(buf_len(&b), 0);
        assert_int_equal(b.off, 0);
        buf_append(&b, "x", 1);
        test_buf_expect(&b, "x");
        buf_cleanup(&b);
        assert_null(b.data);
}

static void test_buf_appendf(void **state)
{
        struct buf b;
        char big[1000];

        (void)state;
        buf_init(&b);
        buf_appendf(&b, "%d %s", 250, "ok");
        buf_appendf(&b, "%s", "");
        buf_appendf(&b, "\r\n");
        test_buf_expect(&b, "250 ok\r\n");
        /* Larger than the first allocation: grows, and no NUL is left behind. */
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        buf_appendf(&b, "%s|", big);
        assert_int_equal(buf_len(&b), 8 + 999 + 1);
        assert_int_equal(buf_data(&b)[8], 'a');
        assert_int_equal(buf_data(&b)[8 + 998], 'a');
        assert_int_equal(buf_data(&b)[8 + 999], '|');
        assert_null(memchr(buf_data(&b), '\0', buf_len(&b)));
        buf_cleanup(&b);
}

static void test_buf_reserve(void **state)
{
        struct buf b;
        char *p;

        (void)state;
        buf_init(&b);
        buf_append(&b, "ab", 2);
        p = buf_reserve(&b, 10);
        assert_int_equal(buf_len(&b), 12);
        assert_ptr_equal(p, buf_data(&b) + 2);
        memcpy(p, "cdef", 4);
        buf_unreserve(&b, 6);
        test_buf_expect(&b, "abcdef");
        buf_unreserve(&b, 0);
        test_buf_expect(&b, "abcdef");
        buf_cleanup(&b);

        /* A zero reservation on an empty buffer gives a usable pointer. */
        buf_init(&b);
        p = buf_reserve(&b, 0);
        assert_non_null(p);
        assert_int_equal(buf_len(&b), 0);
        buf_cleanup(&b);
}

/* After consuming, appending reuses the space in front before growing. */
static void test_buf_compact(void **state)
{
        struct buf b;
        char chunk[200];
        size_t cap;

        (void)state;
        buf_init(&b);
        memset(chunk, 'A', sizeof(chunk));
        buf_append(&b, chunk, sizeof(chunk));
        cap = b.cap;
        assert_int_equal(cap, 256);
        buf_consume(&b, 150);
        memset(chunk, 'B', sizeof(chunk));
        /* 50 readable + 200 = 250 <= 256: moved to the front, no realloc. */
        buf_append(&b, chunk, sizeof(chunk));
        assert_int_equal(b.cap, cap);
        assert_int_equal(b.off, 0);
        assert_int_equal(buf_len(&b), 250);
        assert_int_equal(buf_data(&b)[0], 'A');
        assert_int_equal(buf_data(&b)[49], 'A');
        assert_int_equal(buf_data(&b)[50], 'B');
        assert_int_equal(buf_data(&b)[249], 'B');
        /* More than fits: grows, keeps the bytes. */
        buf_consume(&b, 10);
        buf_append(&b, chunk, sizeof(chunk));
        assert_true(b.cap >= 440);
        assert_int_equal(buf_len(&b), 440);
        assert_int_equal(buf_data(&b)[0], 'A');
        assert_int_equal(buf_data(&b)[39], 'A');
        assert_int_equal(buf_data(&b)[40], 'B');
        assert_int_equal(buf_data(&b)[439], 'B');
        buf_cleanup(&b);
}

/* Many appends and consumes of odd sizes keep the byte stream intact. */
static void test_buf_stream(void **state)
{
        struct buf b;
        unsigned char chunk[997];
        size_t i, in = 0, out = 0, n;

        (void)state;
        buf_init(&b);
        for (i = 0; i < 2000; i++) {
                n = (i * 7919) % sizeof(chunk);
                for (size_t k = 0; k < n; k++)
                        chunk[k] = (unsigned char)(in + k);
                buf_append(&b, chunk, n);
                in += n;
                n = (i * 104729) % (buf_len(&b) + 1);
                for (size_t k = 0; k < n; k++) {
                        if ((unsigned char)buf_data(&b)[k] != (unsigned char)(out + k))
                                fail_msg("byte %zu wrong", out + k);
                }
                buf_consume(&b, n);
                out += n;
        }
        assert_int_equal(buf_len(&b), in - out);
        buf_cleanup(&b);
}

static void test_buf_reset_shrink(void **state)
{
        struct buf b;

        (void)state;
        buf_init(&b);
        buf_append(&b, "abc", 3);
        /* Not empty: shrink keeps the storage. */
        buf_shrink(&b);
        assert_non_null(b.data);
        test_buf_expect(&b, "abc");
        buf_consume(&b, 1);
        buf_reset(&b);
        assert_int_equal(buf_len(&b), 0);
        assert_int_equal(b.off, 0);
        assert_non_null(b.data);
        assert_int_equal(b.cap, 256);
        /* Empty: shrink frees it, and the buffer is usable again. */
        buf_shrink(&b);
        assert_null(b.data);
        assert_int_equal(b.cap, 0);
        buf_shrink(&b);
        buf_append(&b, "z", 1);
        test_buf_expect(&b, "z");
        buf_cleanup(&b);
}

/* Appending a buffer's own bytes, across a realloc and a compaction. */
static void test_buf_append_self(void **state)
{
        struct buf b;
        char want[600];
        size_t i;

        (void)state;
        buf_init(&b);
        buf_append(&b, "0123456789", 10);
        /* Doubling until it must realloc: the source moves. */
        for (i = 0; i < 6; i++)
                buf_append(&b, buf_data(&b), buf_len(&b));
        assert_int_equal(buf_len(&b), 640);
        for (i = 0; i < 640; i++)
                assert_int_equal(buf_data(&b)[i], '0' + (int)(i % 10));
        buf_cleanup(&b);

        /* With a read offset: the bytes are moved to the front. */
        buf_init(&b);
        memset(want, 'x', 246);
        buf_append(&b, want, 246);
        buf_append(&b, "abcdefghij", 10);
        assert_int_equal(b.cap, 256);
        buf_consume(&b, 246);
        buf_append(&b, buf_data(&b) + 2, 3);
        assert_int_equal(b.cap, 256);
        assert_int_equal(b.off, 0);
        test_buf_expect(&b, "abcdefghijcde");
        buf_cleanup(&b);
}

/* Run f in a child; it must abort (fatalx), not return. */
static void test_buf_expect_abort(void (*f)(void))
{
        pid_t pid;
        int status;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* Keep the child's fatal message out of the test output. */
                if (freopen("/dev/null", "w", stderr) == NULL)
                        _exit(3);
                f();
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void test_buf_over_consume(void)
{
        struct buf b;

        buf_init(&b);
        buf_append(&b, "abc", 3);
        buf_consume(&b, 4);
}

static void test_buf_over_unreserve(void)
{
        struct buf b;

        buf_init(&b);
        buf_append(&b, "abc", 3);
        buf_unreserve(&b, 4);
}

static void test_buf_huge_reserve(void)
{
        struct buf b;

        buf_init(&b);
        buf_append(&b, "abc", 3);
        buf_reserve(&b, SIZE_MAX - 1);
}

static void test_buf_invariants(void **state)
{
        (void)state;
        test_buf_expect_abort(test_buf_over_consume);
        test_buf_expect_abort(test_buf_over_unreserve);
        test_buf_expect_abort(test_buf_huge_reserve);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_buf_init),
            cmocka_unit_test(test_buf_append_consume),
            cmocka_unit_test(test_buf_appendf),
            cmocka_unit_test(test_buf_reserve),
            cmocka_unit_test(test_buf_compact),
            cmocka_unit_test(test_buf_stream),
            cmocka_unit_test(test_buf_reset_shrink),
            cmocka_unit_test(test_buf_append_self),
            cmocka_unit_test(test_buf_invariants),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
