/*
 * log: escaping of peer data (what is kept, what becomes \xHH, how it is cut)
 * and the level names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "log.h"

static void test_log_escape_printable(void **state)
{
        const char *in = "MAIL FROM:<a@b.example> SIZE=10";
        char out[128];

        (void)state;
        /* Space is escaped, so a value never breaks key=value parsing. */
        assert_ptr_equal(log_escape(out, sizeof(out), in, strlen(in)), out);
        assert_string_equal(out, "MAIL\\x20FROM:<a@b.example>\\x20SIZE=10");
        assert_string_equal(log_escape(out, sizeof(out), "!~azAZ09", 8), "!~azAZ09");
}

static void test_log_escape_special(void **state)
{
        char out[128];

        (void)state;
        assert_string_equal(log_escape(out, sizeof(out), "a\"b\\c", 5), "a\\x22b\\x5cc");
        assert_string_equal(log_escape(out, sizeof(out), "\r\n\t\x01\x7f", 5),
                            "\\x0d\\x0a\\x09\\x01\\x7f");
        assert_string_equal(log_escape(out, sizeof(out), "\x80\xff\xc3\xa9", 4),
                            "\\x80\\xff\\xc3\\xa9");
        /* srclen counts: an embedded NUL is data, not the end. */
        assert_string_equal(log_escape(out, sizeof(out), "a\0b", 3), "a\\x00b");
        assert_string_equal(log_escape(out, sizeof(out), "", 0), "");
}

static void test_log_escape_truncation(void **state)
{
        char out[16];

        (void)state;
        /* 15 characters fit a 16-byte buffer exactly: no "...". */
        assert_string_equal(log_escape(out, sizeof(out), "abcdefghijklmno", 15),
                            "abcdefghijklmno");
        /* One more: cut, with "..." and the NUL inside the buffer. */
        assert_string_equal(log_escape(out, sizeof(out), "abcdefghijklmnop", 16),
                            "abcdefghijkl...");
        /* An escape is never cut in half. */
        assert_string_equal(log_escape(out, sizeof(out), "abcdefghij\r\nxyz", 15),
                            "abcdefghij...");
        assert_string_equal(log_escape(out, sizeof(out), "\r\r\r\r", 4),
                            "\\x0d\\x0d\\x0d...");
}

static void test_log_escape_tiny(void **state)
{
        char out[8];

        (void)state;
        memset(out, 'Z', sizeof(out));
        log_escape(out, 1, "abc", 3);
        assert_int_equal(out[0], '\0');
        assert_int_equal(out[1], 'Z');

        memset(out, 'Z', sizeof(out));
        log_escape(out, 3, "abc", 3);
        assert_string_equal(out, ""); /* no room for "x..." */
        assert_int_equal(out[3], 'Z');

        memset(out, 'Z', sizeof(out));
        log_escape(out, 4, "abc", 3);
        assert_string_equal(out, "abc");
        assert_int_equal(out[4], 'Z');

        memset(out, 'Z', sizeof(out));
        log_escape(out, 4, "abcd", 4);
        assert_string_equal(out, "...");

        memset(out, 'Z', sizeof(out));
        log_escape(out, 5, "abcdef", 6);
        assert_string_equal(out, "a...");
        assert_int_equal(out[5], 'Z');

        /* dstlen 0: nothing is written at all. */
        memset(out, 'Z', sizeof(out));
        assert_ptr_equal(log_escape(out, 0, "abc", 3), out);
        assert_int_equal(out[0], 'Z');
}

static void test_log_level(void **state)
{
        static const char *const names[] = {"err", "warning", "info", "debug"};
        enum log_level lvl;
        int i;

        (void)state;
        for (i = 0; i < 4; i++) {
                lvl = (enum log_level) - 1;
                assert_int_equal(log_level_parse(names[i], &lvl), 0);
                assert_int_equal(lvl, i);
                assert_string_equal(log_level_str(lvl), names[i]);
        }
        assert_int_equal(log_level_parse("error", &lvl), 0);
        assert_int_equal(lvl, LOG_LVL_ERR);
        assert_int_equal(log_level_parse("warn", &lvl), 0);
        assert_int_equal(lvl, LOG_LVL_WARN);
        lvl = LOG_LVL_INFO;
        assert_int_equal(log_level_parse("loud", &lvl), -1);
        assert_int_equal(log_level_parse("", &lvl), -1);
        assert_int_equal(log_level_parse("Debug", &lvl), -1);
        assert_int_equal(lvl, LOG_LVL_INFO); /* untouched on error */
        assert_string_equal(log_level_str((enum log_level)42), "?");
}

static void test_log_enabled(void **state)
{
        const struct log lg = {.level = LOG_LVL_INFO};

        (void)state;
        assert_true(log_enabled(&lg, LOG_LVL_ERR));
        assert_true(log_enabled(&lg, LOG_LVL_INFO));
        assert_false(log_enabled(&lg, LOG_LVL_DEBUG));
        assert_false(log_enabled(NULL, LOG_LVL_ERR));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_log_escape_printable),
            cmocka_unit_test(test_log_escape_special),
            cmocka_unit_test(test_log_escape_truncation),
            cmocka_unit_test(test_log_escape_tiny),
            cmocka_unit_test(test_log_level),
            cmocka_unit_test(test_log_enabled),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
