/*
 * Unit tests for lib/util.c's address networks (util_net_parse(),
 * util_net_match(), for accept_proxy's proxy_from) and word lists
 * (util_list_nth()).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "util.h"

/* Does address ip (IPv4 or IPv6 text) fall inside network net? */
static bool test_in(const char *net, const char *ip)
{
        struct util_net n;
        struct sockaddr_in s4 = {.sin_family = AF_INET};
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};

        assert_int_equal(util_net_parse(net, &n), 0);
        if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1)
                return util_net_match(&n, (const struct sockaddr *)&s4);
        assert_int_equal(inet_pton(AF_INET6, ip, &s6.sin6_addr), 1);
        return util_net_match(&n, (const struct sockaddr *)&s6);
}

static void test_net(void **state)
{
        struct util_net n;

        (void)state;
        assert_true(test_in("10.0.0.0/8", "10.255.1.2"));
        assert_false(test_in("10.0.0.0/8", "11.0.0.1"));
        assert_true(test_in("192.0.2.7", "192.0.2.7"));
        assert_false(test_in("192.0.2.7", "192.0.2.8"));
        assert_true(test_in("192.0.2.0/25", "192.0.2.127"));
        assert_false(test_in("192.0.2.0/25", "192.0.2.128"));
        assert_true(test_in("0.0.0.0/0", "203.0.113.9"));
        assert_true(test_in("2001:db8::/32", "2001:db8:ffff::1"));
        assert_false(test_in("2001:db8::/32", "2001:db9::1"));
        assert_true(test_in("::1", "::1"));
        assert_false(test_in("::1", "127.0.0.1"));
        /* An IPv4-mapped IPv6 address is the IPv4 address (a dual-stack socket). */
        assert_true(test_in("127.0.0.1", "::ffff:127.0.0.1"));
        assert_false(test_in("127.0.0.1", "::ffff:127.0.0.2"));
        assert_false(test_in("10.0.0.0/8", "::10.0.0.1"));
        assert_true(test_in("::ffff:0:0/96", "::ffff:10.0.0.1"));
        /* A mapped network is the IPv4 one: an IPv4 peer matches it. */
        assert_true(test_in("::ffff:127.0.0.1", "127.0.0.1"));
        assert_true(test_in("::ffff:10.0.0.0/104", "10.1.2.3"));
        assert_false(test_in("::ffff:10.0.0.0/104", "11.1.2.3"));
        assert_true(test_in("::ffff:0:0/96", "192.0.2.1"));
        assert_false(test_in("::/0", "10.0.0.1"));
        /* Not networks. */
        assert_int_equal(util_net_parse("10.0.0.1/8", &n), -1);
        assert_int_equal(util_net_parse("10.0.0.0/33", &n), -1);
        assert_int_equal(util_net_parse("::/129", &n), -1);
        assert_int_equal(util_net_parse("::ffff:10.0.0.1/104", &n), -1);
        assert_int_equal(util_net_parse("10.0.0.0/-1", &n), -1);
        assert_int_equal(util_net_parse("10.0.0.0/ 8", &n), -1);
        assert_int_equal(util_net_parse("/8", &n), -1);
        assert_int_equal(util_net_parse("lb.example", &n), -1);
        assert_int_equal(util_net_parse("", &n), -1);
        {
                struct sockaddr un = {.sa_family = AF_UNIX};

                assert_int_equal(util_net_parse("0.0.0.0/0", &n), 0);
                assert_false(util_net_match(&n, &un));
        }
}

static void test_list_nth(void **state)
{
        char out[8];

        (void)state;
        assert_int_equal(util_list_nth("a.pem, b.pem", 0, out, sizeof(out)), 1);
        assert_string_equal(out, "a.pem");
        assert_int_equal(util_list_nth("a.pem, b.pem", 1, out, sizeof(out)), 1);
        assert_string_equal(out, "b.pem");
        assert_int_equal(util_list_nth("a.pem, b.pem", 2, out, sizeof(out)), 0);
        assert_int_equal(util_list_nth(" ,\t", 0, out, sizeof(out)), 0);
        assert_int_equal(util_list_nth("a.pem toolong.pem", 1, out, sizeof(out)), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_net),
            cmocka_unit_test(test_list_nth),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
