/*
 * config: a full file read back with every value and every default, and each
 * error message exactly as a user sees it, with its line number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "policy.h"

struct test_config_state {
        char path[64];
        struct config *cfg;
        char *errs; /* what config_load printed, with the path replaced by "F" */
};

static int test_config_setup(void **state)
{
        struct test_config_state *t = calloc(1, sizeof(*t));
        int fd;

        assert_non_null(t);
        strcpy(t->path, "/tmp/test_config_XXXXXX");
        fd = mkstemp(t->path);
        assert_true(fd >= 0);
        close(fd);
        *state = t;
        return 0;
}

static int test_config_teardown(void **state)
{
        struct test_config_state *t = *state;

        unlink(t->path);
        config_free(t->cfg);
        free(t->errs);
        free(t);
        return 0;
}

/* Every occurrence of the file name in s becomes "F". */
static char *test_config_unpath(const char *s, const char *path)
{
        size_t plen = strlen(path), o = 0;
        char *out = malloc(strlen(s) + 1);
        const char *hit;

        assert_non_null(out);
        while ((hit = strstr(s, path)) != NULL) {
                memcpy(out + o, s, (size_t)(hit - s));
                o += (size_t)(hit - s);
                out[o++] = 'F';
                s = hit + plen;
        }
        strcpy(out + o, s);
        return out;
}

/* Write text to the test file and load it; t->cfg and t->errs hold the result. */
static void test_config_load(struct test_config_state *t, const char *text)
{
        FILE *f = fopen(t->path, "w"), *errs;
        char *buf = NULL;
        size_t len = 0;

        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        config_free(t->cfg);
        free(t->errs);
        errs = open_memstream(&buf, &len);
        assert_non_null(errs);
        t->cfg = config_load(t->path, errs);
        fclose(errs);
        t->errs = test_config_unpath(buf, t->path);
        free(buf);
}

/* The file must be refused with exactly these messages. */
static void test_config_refused(struct test_config_state *t, const char *text,
                                const char *expected)
{
        test_config_load(t, text);
        assert_null(t->cfg);
        assert_string_equal(t->errs, expected);
}

/* An outbound listener's required keys, five lines. */
#define TEST_CONFIG_OUTBOUND                                                             \
        "listen = 127.0.0.1:10026\n"                                                     \
        "accept_tls = none\n"                                                            \
        "require_tls = no\n"                                                             \
        "forward = original-dst\n"                                                       \
        "forward_tls = policy\n"

#define TEST_CONFIG_GOOD_LISTENER                                                        \
        "listen = 127.0.0.1:2525\n"                                                      \
        "cert = /c.pem\n"                                                                \
        "key = /k.pem\n"                                                                 \
        "forward = 127.0.0.1:10025\n"

static void test_config_full(void **state)
{
        struct test_config_state *t = *state;
        const struct config_listener *l;

        test_config_load(t, "; mailward test\n"
                            "[mailward]\n"
                            "user = mw\n"
                            "allow_root = on\n"
                            "alert_log = /var/log/a.json\n"
                            "alert_command = /bin/true\n"
                            "metrics_file = /var/lib/prom/mailward.prom\n"
                            "state_dir = /st\n"
                            "log_level = Debug\n"
                            "log = syslog\n"
                            "drain_timeout = 0\n"
                            "workers = 64\n"
                            "\n"
                            "[smtp]\n"
                            "listen = [::1]:25\n"
                            "accept_tls = implicit\n"
                            "require_tls = false\n"
                            "cert = /etc/c.pem\n"
                            "key = /etc/k.pem\n"
                            "forward = backend.example:10025\n"
                            "forward_tls = starttls\n"
                            "forward_ca = /ca.pem\n"
                            "forward_verify = 0\n"
                            "client_identity = proxy\n"
                            "hostname = mx.example.org\n"
                            "max_sessions = 7\n"
                            "max_per_client = 3\n"
                            "max_line = 2048\n"
                            "max_text_line = 4096\n"
                            "timeout_greeting = 1\n"
                            "timeout_command = 2\n"
                            "timeout_handshake = 3\n"
                            "timeout_data = 4\n"
                            "timeout_idle = 5\n"
                            "timeout_final = 6\n"
                            "probe_interval = 7\n");
        assert_string_equal(t->errs, "");
        assert_non_null(t->cfg);
        assert_string_equal(t->cfg->path, t->path);
        assert_string_equal(t->cfg->user, "mw");
        assert_true(t->cfg->allow_root);
        assert_string_equal(t->cfg->alert_log, "/var/log/a.json");
        assert_string_equal(t->cfg->alert_command, "/bin/true");
        assert_string_equal(t->cfg->metrics_file, "/var/lib/prom/mailward.prom");
        assert_string_equal(t->cfg->state_dir, "/st");
        assert_int_equal(t->cfg->log_level, LOG_LVL_DEBUG);
        assert_true(t->cfg->syslog);
        assert_int_equal(t->cfg->drain_timeout, 0);
        assert_int_equal(t->cfg->workers, 64);
        assert_false(t->cfg->workers_auto);

        l = t->cfg->listeners;
        assert_non_null(l);
        assert_null(l->next);
        assert_string_equal(l->name, "smtp");
        assert_int_equal(l->line, 14);
        assert_string_equal(l->listen, "[::1]:25");
        assert_int_equal(l->accept_tls, CONFIG_TLS_IMPLICIT);
        assert_false(l->require_tls);
        assert_string_equal(l->cert, "/etc/c.pem");
        assert_string_equal(l->key, "/etc/k.pem");
        assert_string_equal(l->forward, "backend.example:10025");
        assert_int_equal(l->forward_tls, CONFIG_TLS_STARTTLS);
        assert_string_equal(l->forward_ca, "/ca.pem");
        assert_int_equal(l->forward_verify, CONFIG_VERIFY_NO);
        assert_int_equal(l->client_identity, CONFIG_IDENTITY_PROXY);
        assert_string_equal(l->hostname, "mx.example.org");
        assert_int_equal(l->max_sessions, 7);
        assert_int_equal(l->max_per_client, 3);
        assert_int_equal(l->max_line, 2048);
        assert_int_equal(l->max_text_line, 4096);
        assert_int_equal(l->timeout_greeting, 1);
        assert_int_equal(l->timeout_command, 2);
        assert_int_equal(l->timeout_handshake, 3);
        assert_int_equal(l->timeout_data, 4);
        assert_int_equal(l->timeout_idle, 5);
        assert_int_equal(l->timeout_final, 6);
        assert_int_equal(l->probe_interval, 7);
}

static void test_config_defaults(void **state)
{
        struct test_config_state *t = *state;
        const struct config_listener *l;
        char host[256] = "";

        test_config_load(t, "[smtp]\n" TEST_CONFIG_GOOD_LISTENER);
        assert_string_equal(t->errs, "");
        assert_non_null(t->cfg);
        assert_string_equal(t->cfg->user, "mailward");
        assert_false(t->cfg->allow_root);
        assert_null(t->cfg->alert_log);
        assert_null(t->cfg->alert_command);
        assert_null(t->cfg->metrics_file);
        assert_string_equal(t->cfg->state_dir, "/var/lib/mailward");
        assert_int_equal(t->cfg->log_level, LOG_LVL_INFO);
        assert_false(t->cfg->syslog);
        assert_int_equal(t->cfg->drain_timeout, 30);
        assert_int_equal(t->cfg->workers, 1);
        assert_false(t->cfg->workers_auto);

        l = t->cfg->listeners;
        assert_non_null(l);
        assert_null(l->next);
        assert_string_equal(l->name, "smtp");
        assert_int_equal(l->line, 1);
        assert_string_equal(l->listen, "127.0.0.1:2525");
        assert_int_equal(l->accept_tls, CONFIG_TLS_STARTTLS);
        assert_true(l->require_tls);
        assert_string_equal(l->forward, "127.0.0.1:10025");
        assert_int_equal(l->forward_tls, CONFIG_TLS_NONE);
        assert_string_equal(l->forward_ca, "/etc/ssl/certs/ca-certificates.crt");
        assert_int_equal(l->forward_verify, CONFIG_VERIFY_YES);
        assert_int_equal(l->client_identity, CONFIG_IDENTITY_NONE);
        assert_false(l->client_name_lookup);
        assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
        assert_string_equal(l->hostname, host);
        assert_int_equal(l->max_sessions, 1000);
        assert_int_equal(l->max_per_client, 20);
        assert_int_equal(l->max_line, 512);
        assert_int_equal(l->max_text_line, 1000);
        assert_int_equal(l->timeout_greeting, 60);
        assert_int_equal(l->timeout_command, 300);
        assert_int_equal(l->timeout_handshake, 30);
        assert_int_equal(l->timeout_data, 180);
        assert_int_equal(l->timeout_idle, 60);
        assert_int_equal(l->timeout_final, 600);
        assert_int_equal(l->probe_interval, 300);
}

/* Listeners in file order; every boolean spelling; indentation, comments, CRLF. */
static void test_config_syntax_accepted(void **state)
{
        struct test_config_state *t = *state;
        const struct config_listener *l;

        test_config_load(t,
                         "\xef\xbb\xbf# comment\r\n"
                         "[zeta]\r\n"
                         "  listen = :25 ; any address\r\n"
                         "  cert = /c.pem\r\n"
                         "  key = /k.pem\r\n"
                         "\tforward = 127.0.0.1:10025\r\n"
                         "  require_tls = ON\r\n"
                         "[alpha]\n"
                         "listen: 127.0.0.1:2526\n"
                         "accept_tls = none\n"
                         "require_tls = off\n"
                         "forward = original-dst\n"
                         "forward_tls = policy\n"
                         "client_identity = xclient\n"
                         "[mid]\n" TEST_CONFIG_GOOD_LISTENER "require_tls = 1\n"
                         "forward_verify = no\n"
                         "[last]\nlisten = 127.0.0.1:2527\ncert = /c.pem\nkey = /k.pem\n"
                         "forward = 127.0.0.1:10025\nrequire_tls = true\n"
                         "forward_verify = yes\n"
                         "accept_tls = STARTTLS\n");
        assert_string_equal(t->errs, "");
        assert_non_null(t->cfg);
        l = t->cfg->listeners;
        assert_string_equal(l->name, "zeta");
        assert_int_equal(l->line, 2);
        assert_string_equal(l->listen, ":25");
        assert_string_equal(l->forward, "127.0.0.1:10025");
        assert_true(l->require_tls);
        l = l->next;
        assert_string_equal(l->name, "alpha");
        assert_string_equal(l->listen, "127.0.0.1:2526");
        assert_int_equal(l->accept_tls, CONFIG_TLS_NONE);
        assert_false(l->require_tls);
        assert_null(l->cert);
        assert_string_equal(l->forward, "original-dst");
        assert_int_equal(l->forward_tls, CONFIG_TLS_POLICY);
        assert_int_equal(l->client_identity, CONFIG_IDENTITY_XCLIENT);
        l = l->next;
        assert_string_equal(l->name, "mid");
        assert_true(l->require_tls);
        assert_int_equal(l->forward_verify, CONFIG_VERIFY_NO);
        l = l->next;
        assert_string_equal(l->name, "last");
        assert_true(l->require_tls);
        assert_int_equal(l->forward_verify, CONFIG_VERIFY_YES);
        assert_int_equal(l->accept_tls, CONFIG_TLS_STARTTLS);
        assert_null(l->next);
}

static void test_config_missing_file(void **state)
{
        struct test_config_state *t = *state;
        FILE *errs;
        char *buf = NULL;
        size_t len = 0;

        unlink(t->path);
        errs = open_memstream(&buf, &len);
        assert_non_null(errs);
        t->cfg = config_load(t->path, errs);
        fclose(errs);
        t->errs = test_config_unpath(buf, t->path);
        free(buf);
        assert_null(t->cfg);
        assert_string_equal(t->errs, "F: cannot open: No such file or directory\n");
}

static void test_config_no_listener(void **state)
{
        test_config_refused(*state, "[mailward]\nuser = mw\n",
                            "F: no listener defined\n");
        test_config_refused(*state, "", "F: no listener defined\n");
}

static void test_config_unknown_key(void **state)
{
        struct test_config_state *t = *state;

        test_config_refused(t, "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "foo = 1\n",
                            "F:6: unknown key 'foo' in [smtp]\n");
        test_config_refused(
            t, "[mailward]\nlisten = :25\n[smtp]\n" TEST_CONFIG_GOOD_LISTENER,
            "F:2: unknown key 'listen' in [mailward]\n");
        test_config_refused(t, "user = x\n[smtp]\n" TEST_CONFIG_GOOD_LISTENER,
                            "F:1: key 'user' outside of any section\n");
}

static void test_config_bad_values(void **state)
{
        struct test_config_state *t = *state;
        static const struct {
                const char *line, *msg;
        } cases[] = {
            {"accept_tls = tls",
             "accept_tls: expected starttls, implicit or none, got 'tls'"},
            {"require_tls = maybe", "require_tls: expected yes or no, got 'maybe'"},
            {"forward_verify = 2",
             "forward_verify: expected yes, no, dane or dane-only, got '2'"},
            {"forward_tls = ssl",
             "forward_tls: expected none, starttls, implicit or policy, got 'ssl'"},
            {"client_identity = haproxy",
             "client_identity: expected none, xclient or proxy, got 'haproxy'"},
            {"max_line = 511", "max_line: must be from 512 to 65536, got '511'"},
            {"max_text_line = 999",
             "max_text_line: must be from 1000 to 1048576, got '999'"},
            {"max_sessions = 0", "max_sessions: must be from 1 to 1000000, got '0'"},
            {"max_sessions = -1", "max_sessions: expected a number, got '-1'"},
            {"max_sessions = 10k", "max_sessions: expected a number, got '10k'"},
            {"timeout_idle = 99999999999999999999999",
             "timeout_idle: expected a number, got '99999999999999999999999'"},
            {"timeout_final = 86401",
             "timeout_final: must be from 1 to 86400, got '86401'"},
            {"hostname = mx example", "hostname: 'mx example' is not a valid host name"},
            {"forward_ca =", "forward_ca: empty value"},
        };
        char text[512], expected[512];
        size_t i;

        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                snprintf(text, sizeof(text), "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "%s\n",
                         cases[i].line);
                snprintf(expected, sizeof(expected), "F:6: %s\n", cases[i].msg);
                test_config_refused(t, text, expected);
        }
}

static void test_config_bad_globals(void **state)
{
        struct test_config_state *t = *state;

        test_config_refused(
            t,
            "[mailward]\n"
            "log_level = loud\n"
            "log = file\n"
            "allow_root = sometimes\n"
            "drain_timeout = x\n"
            "alert_command = notify-admin\n"
            "metrics_file = ./mailward.prom\n"
            "workers = 0\n"
            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER,
            "F:2: log_level: expected err, warning, info or debug, got 'loud'\n"
            "F:3: log: expected stderr or syslog, got 'file'\n"
            "F:4: allow_root: expected yes or no, got 'sometimes'\n"
            "F:5: drain_timeout: expected a number, got 'x'\n"
            "F:6: alert_command: expected an absolute path, got 'notify-admin'\n"
            "F:7: metrics_file: expected an absolute path, got './mailward.prom'\n"
            "F:8: workers: expected auto or a number from 1 to 64, got '0'\n");
}

/* workers = auto is what sched_getaffinity() allows, capped at 64; bounds hold. */
static void test_config_workers(void **state)
{
        struct test_config_state *t = *state;
        cpu_set_t set;
        unsigned cpus;

        assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
        cpus = (unsigned)CPU_COUNT(&set);
        if (cpus > 64)
                cpus = 64;
        test_config_load(
            t, "[mailward]\nworkers = AUTO\n[smtp]\n" TEST_CONFIG_GOOD_LISTENER);
        assert_string_equal(t->errs, "");
        assert_non_null(t->cfg);
        assert_int_equal(t->cfg->workers, cpus);
        assert_true(t->cfg->workers_auto);
        test_config_load(t,
                         "[mailward]\nworkers = 1\n[smtp]\n" TEST_CONFIG_GOOD_LISTENER);
        assert_string_equal(t->errs, "");
        assert_int_equal(t->cfg->workers, 1);
        test_config_refused(
            t,
            "[mailward]\n"
            "workers = 65\n"
            "workers = all\n"
            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER,
            "F:2: workers: expected auto or a number from 1 to 64, got '65'\n"
            "F:3: duplicate key 'workers' in [mailward] (first on line 2)\n");
}

static void test_config_hostport(void **state)
{
        struct test_config_state *t = *state;

        test_config_refused(
            t,
            "[smtp]\n"
            "listen = 127.0.0.1\n"
            "cert = /c.pem\n"
            "key = /k.pem\n"
            "forward = :10025\n",
            "F:2: listen: expected host:port (up to 8, separated by blanks or commas), "
            "got '127.0.0.1'\n"
            "F:5: forward: expected host:port or original-dst, got ':10025'\n");
        /* Several addresses: blanks or commas; at most 8. */
        test_config_load(t, "[out]\n"
                            "listen = 127.0.0.1:10026, [::1]:10026\n"
                            "accept_tls = none\n"
                            "require_tls = no\n"
                            "forward = original-dst\n"
                            "forward_tls = policy\n");
        assert_non_null(t->cfg);
        assert_string_equal(t->cfg->listeners->listen, "127.0.0.1:10026, [::1]:10026");
        test_config_refused(
            t,
            "[smtp]\n"
            "listen = :1 :2 :3 :4 :5 :6 :7 :8 :9\n"
            "cert = /c.pem\n"
            "key = /k.pem\n"
            "forward = 127.0.0.1:10025\n",
            "F:2: listen: expected host:port (up to 8, separated by blanks or "
            "commas), got ':1 :2 :3 :4 :5 :6 :7 :8 :9'\n");
        test_config_refused(
            t,
            "[smtp]\n"
            "listen = ::1:25\n"
            "cert = /c.pem\n"
            "key = /k.pem\n"
            "forward = localhost:99999\n",
            "F:2: listen: expected host:port (up to 8, separated by blanks or "
            "commas), got '::1:25'\n"
            "F:5: forward: expected host:port or original-dst, got "
            "'localhost:99999'\n");
}

static void test_config_missing_keys(void **state)
{
        struct test_config_state *t = *state;

        test_config_refused(t,
                            "[mailward]\n"
                            "\n"
                            "\n"
                            "\n"
                            "[smtp]\n"
                            "listen = :25\n"
                            "cert = /c.pem\n"
                            "key = /k.pem\n",
                            "F:5: [smtp]: missing 'forward'\n");
        test_config_refused(
            t,
            "[smtp]\n"
            "forward = 127.0.0.1:10025\n",
            "F:1: [smtp]: missing 'listen'\n"
            "F:1: [smtp]: missing 'cert' (required unless accept_tls = none)\n"
            "F:1: [smtp]: missing 'key' (required unless accept_tls = none)\n");
        /* A bad value is reported once, not again as missing. */
        test_config_refused(
            t,
            "[smtp]\n"
            "listen = nowhere\n"
            "cert = /c.pem\n"
            "key = /k.pem\n"
            "forward = 127.0.0.1:10025\n",
            "F:2: listen: expected host:port (up to 8, separated by blanks or "
            "commas), got 'nowhere'\n");
}

/* cert and key: one file each, or two each (ECDSA and RSA, lib/tls.h). */
static void test_config_two_certs(void **state)
{
        struct test_config_state *t = *state;

        test_config_load(t, "[smtp]\n"
                            "listen = 127.0.0.1:2525\n"
                            "cert = /e.pem, /r.pem\n"
                            "key = /e.key /r.key\n"
                            "forward = 127.0.0.1:10025\n");
        assert_non_null(t->cfg);
        assert_string_equal(t->errs, "");
        assert_string_equal(t->cfg->listeners[0].cert, "/e.pem, /r.pem");
        assert_string_equal(t->cfg->listeners[0].key, "/e.key /r.key");
        /* Again and again: one line cannot hold many paths (inih: 200 characters). */
        test_config_load(t, "[smtp]\n"
                            "listen = 127.0.0.1:2525\n"
                            "cert = /a.ecdsa.pem /a.rsa.pem\n"
                            "key = /a.ecdsa.key /a.rsa.key\n"
                            "cert = /b.pem\n"
                            "key = /b.key\n"
                            "forward = 127.0.0.1:10025\n");
        assert_non_null(t->cfg);
        assert_string_equal(t->errs, "");
        assert_string_equal(t->cfg->listeners[0].cert, "/a.ecdsa.pem /a.rsa.pem /b.pem");
        assert_string_equal(t->cfg->listeners[0].key, "/a.ecdsa.key /a.rsa.key /b.key");
        test_config_refused(t,
                            "[smtp]\n"
                            "listen = 127.0.0.1:2525\n"
                            "cert = /1 /2 /3 /4 /5 /6 /7 /8 /9 /10 /11 /12 /13 /14 /15\n"
                            "cert = /16 /17\n"
                            "key = /1 /2 /3 /4 /5 /6 /7 /8 /9 /10 /11 /12 /13 /14 /15\n"
                            "key = /16\n"
                            "forward = 127.0.0.1:10025\n",
                            "F:4: cert: more than 16 files in all, with this line's\n"
                            "F:5: [smtp]: cert names 15 files and key 16: a key for each "
                            "certificate, in the same order\n");
        test_config_refused(t,
                            "[smtp]\n"
                            "listen = 127.0.0.1:2525\n"
                            "cert = /e.pem /r.pem\n"
                            "key = /e.key\n"
                            "forward = 127.0.0.1:10025\n",
                            "F:4: [smtp]: cert names 2 files and key 1: a key for each "
                            "certificate, in the same order\n");
        test_config_refused(
            t,
            "[smtp]\n"
            "listen = 127.0.0.1:2525\n"
            "cert = /1 /2 /3 /4 /5 /6 /7 /8 /9 /10 /11 /12 /13 /14 /15 /16 "
            "/17\n"
            "key = ,\n"
            "forward = 127.0.0.1:10025\n",
            "F:3: cert: expected 1 to 16 files, separated by blanks or "
            "commas, got '/1 /2 /3 /4 /5 /6 /7 /8 /9 /10 /11 /12 /13 /14 "
            "/15 /16 /17'\n"
            "F:4: key: expected 1 to 16 files, separated by blanks or "
            "commas, got ','\n");
}

/* accept_proxy: only with proxy_from, never outbound; proxy_from's networks. */
static void test_config_proxy(void **state)
{
        struct test_config_state *t = *state;

        test_config_load(t, "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "accept_proxy = yes\n"
                            "proxy_from = 10.0.0.0/8, 192.0.2.7 2001:db8::/32 ::1\n");
        assert_non_null(t->cfg);
        assert_string_equal(t->errs, "");
        assert_true(t->cfg->listeners[0].accept_proxy);
        assert_string_equal(t->cfg->listeners[0].proxy_from,
                            "10.0.0.0/8, 192.0.2.7 2001:db8::/32 ::1");
        test_config_refused(t,
                            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "accept_proxy = yes\n",
                            "F:6: accept_proxy = yes needs proxy_from (the load "
                            "balancers' addresses: anyone else could name any client)\n");
        test_config_refused(t, "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "proxy_from = ::1\n",
                            "F:6: proxy_from is used only with accept_proxy = yes\n");
        test_config_refused(t,
                            "[out]\n" TEST_CONFIG_OUTBOUND "accept_proxy = yes\n"
                            "proxy_from = 127.0.0.1\n",
                            "F:7: accept_proxy is for listeners that clients reach "
                            "through a load balancer, not for outbound ones "
                            "(forward_tls = policy)\n");
        /* Host bits after the prefix, a prefix too long, a name: no network. */
        static const char *const bad[] = {"10.0.0.1/8", "::1/129",     "lb.example",
                                          "10.0.0.0/",  "10.0.0.0/08", "10.0.0.0/8x"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char text[256], want[256];

                snprintf(text, sizeof(text),
                         "[smtp]\n" TEST_CONFIG_GOOD_LISTENER
                         "accept_proxy = yes\nproxy_from = 127.0.0.1 %s\n",
                         bad[i]);
                snprintf(want, sizeof(want),
                         "F:7: proxy_from: expected addresses or networks "
                         "(192.0.2.0/24, 2001:db8::/32; up to 32, separated by blanks "
                         "or commas), got '127.0.0.1 %s'\n",
                         bad[i]);
                test_config_refused(t, text, want);
        }
}

/* forward_cert and forward_key: together, and only where TLS goes forward. */
static void test_config_forward_cert(void **state)
{
        struct test_config_state *t = *state;

        test_config_load(t, "[wrap]\n"
                            "listen = 127.0.0.1:2525\n"
                            "accept_tls = none\n"
                            "require_tls = no\n"
                            "forward = smarthost.test:465\n"
                            "forward_tls = implicit\n"
                            "forward_cert = /c.pem\n"
                            "forward_key = /k.pem\n");
        assert_non_null(t->cfg);
        assert_string_equal(t->cfg->listeners[0].forward_cert, "/c.pem");
        assert_string_equal(t->cfg->listeners[0].forward_key, "/k.pem");
        test_config_refused(t,
                            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "forward_key = /k.pem\n",
                            "F:6: forward_cert and forward_key go together\n");
        test_config_refused(t,
                            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "forward_cert = /c.pem\n"
                            "forward_key = /k.pem\n",
                            "F:6: forward_cert is used only with forward_tls starttls or "
                            "implicit (a smarthost)\n");
        test_config_refused(t,
                            "[out]\n" TEST_CONFIG_OUTBOUND "forward_cert = /c.pem\n"
                            "forward_key = /k.pem\n",
                            "F:7: forward_cert is used only with forward_tls starttls or "
                            "implicit (a smarthost)\n");
}

static void test_config_rules(void **state)
{
        struct test_config_state *t = *state;

        /* require_tls defaults to yes: reported at accept_tls. */
        test_config_refused(
            t,
            "[out]\n"
            "listen = :25\n"
            "accept_tls = none\n"
            "forward = 127.0.0.1:10025\n",
            "F:3: require_tls = yes needs accept_tls starttls or implicit\n");
        /* Said explicitly: reported at require_tls. */
        test_config_refused(
            t,
            "[out]\n"
            "listen = :25\n"
            "require_tls = yes\n"
            "accept_tls = none\n"
            "forward = 127.0.0.1:10025\n",
            "F:3: require_tls = yes needs accept_tls starttls or implicit\n");
        test_config_refused(
            t, "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "forward_tls = policy\n",
            "F:6: forward_tls = policy needs forward = original-dst\n"
            "F:6: forward_tls = policy needs accept_tls = none (an outbound "
            "listener takes the local MTA's plaintext)\n");
        /* Outbound: original-dst only with policy, policy only with forward_tls policy.
         */
        test_config_refused(t,
                            "[out]\n"
                            "listen = 127.0.0.1:10026\n"
                            "accept_tls = none\n"
                            "require_tls = no\n"
                            "forward = original-dst\n"
                            "policy = /etc/mailward/tls.policy\n",
                            "F:5: forward = original-dst needs forward_tls = policy\n"
                            "F:6: policy is used only with forward_tls = policy\n");
        test_config_refused(t,
                            "[in]\n"
                            "listen = 127.0.0.1:10026\n"
                            "accept_tls = none\n"
                            "require_tls = no\n"
                            "forward = 127.0.0.1:25\n"
                            "mta_sts = yes\n"
                            "tlsrpt = yes\n"
                            "tlsrpt_from = r@x.test\n"
                            "relayhost = relay.x.test\n",
                            "F:6: mta_sts is used only with forward_tls = policy\n"
                            "F:7: tlsrpt is used only with forward_tls = policy\n"
                            "F:8: tlsrpt_from is used only with forward_tls = policy\n"
                            "F:9: relayhost is used only with forward_tls = policy\n");
        /* relayhost: a name, as Postfix writes it without [] and port. */
        test_config_refused(
            t, "[out]\n" TEST_CONFIG_OUTBOUND "relayhost = [relay.x.test]:587\n",
            "F:7: relayhost: '[relay.x.test]:587' is not a valid host name\n");
        test_config_refused(
            t, "[out]\n" TEST_CONFIG_OUTBOUND "relayhost = 192.0.2.1\n",
            "F:7: relayhost: a host name, not an address (DANE and verify "
            "need the name), got '192.0.2.1'\n");
        /* forward_verify = dane: a TLS backend, named. */
        test_config_refused(
            t, "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "forward_verify = dane\n",
            "F:6: forward_verify = dane needs forward_tls starttls or "
            "implicit\n");
        test_config_refused(
            t,
            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "forward_tls = implicit\n"
            "forward_verify = dane-only\n",
            "F:7: forward_verify = dane-only needs forward to name a host "
            "(its TLSA records are looked up by name), got "
            "'127.0.0.1:10025'\n");
        test_config_load(t, "[smtp]\n"
                            "listen = 127.0.0.1:2525\n"
                            "accept_tls = none\n"
                            "require_tls = no\n"
                            "forward = smtp.example.net:465\n"
                            "forward_tls = implicit\n"
                            "forward_verify = DANE-only\n");
        assert_non_null(t->cfg);
        assert_int_equal(t->cfg->listeners->forward_verify, CONFIG_VERIFY_DANE_ONLY);
        test_config_refused(
            t, "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "forward_source = 127.0.0.2:25\n",
            "F:6: forward_source: expected an IPv4 or IPv6 address, got "
            "'127.0.0.2:25'\n");
        test_config_refused(t,
                            "[out]\n" TEST_CONFIG_OUTBOUND "default_level = must\n"
                            "learned_max_age = 9999\n"
                            "tlsrpt_from = <r@x.test>\n",
                            "F:7: default_level: expected none, may, encrypt, dane, "
                            "dane-only, verify or secure, got 'must'\n"
                            "F:8: learned_max_age: must be from 0 to 3650, got '9999'\n"
                            "F:9: tlsrpt_from: expected an address (local@domain), got "
                            "'<r@x.test>'\n");
        test_config_load(t, "[out]\n" TEST_CONFIG_OUTBOUND "ca_file = /ca.pem\n");
        assert_non_null(t->cfg);
        assert_int_equal(t->cfg->listeners->default_level, POLICY_LEVEL_ENCRYPT);
        assert_int_equal(t->cfg->listeners->learned_max_age, 30);
        assert_false(t->cfg->listeners->mta_sts);
        assert_false(t->cfg->listeners->tlsrpt);
        assert_null(t->cfg->listeners->policy);
        assert_null(t->cfg->listeners->relayhost);
        assert_string_equal(t->cfg->listeners->forward_ca, "/ca.pem");
}

/* '#' after a blank starts an inline comment, as ';' does; not inside a word. */
static void test_config_inline_comments(void **state)
{
        struct test_config_state *t = *state;
        const struct config_listener *l;

        test_config_load(t,
                         "[mailward]  # the globals\n"
                         "user = mailward\t# the unprivileged user\n"
                         "state_dir = /var/lib/mailward       # the learned history\n"
                         "alert_log = /var/log/x#1.json ; kept: no blank before #\n"
                         "[smtp] ; a listener\n"
                         "listen = 127.0.0.1:2525\n"
                         "accept_tls = starttls           # starttls | implicit | none\n"
                         "require_tls = yes # no: monitor mode\n"
                         "cert = /c.pem #\n"
                         "key = /k.pem\n"
                         "forward = 127.0.0.1:10025       # your MTA\n"
                         "client_identity = xclient       # none | xclient | proxy\n");
        assert_string_equal(t->errs, "");
        assert_non_null(t->cfg);
        assert_string_equal(t->cfg->user, "mailward");
        assert_string_equal(t->cfg->state_dir, "/var/lib/mailward");
        assert_string_equal(t->cfg->alert_log, "/var/log/x#1.json");
        l = t->cfg->listeners;
        assert_string_equal(l->name, "smtp");
        assert_int_equal(l->accept_tls, CONFIG_TLS_STARTTLS);
        assert_true(l->require_tls);
        assert_string_equal(l->cert, "/c.pem");
        assert_string_equal(l->forward, "127.0.0.1:10025");
        assert_int_equal(l->client_identity, CONFIG_IDENTITY_XCLIENT);
        /* Nothing but a comment after the '=': an empty value. */
        test_config_refused(t, "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "hostname = # none\n",
                            "F:6: hostname: empty value\n");
}

static void test_config_duplicates(void **state)
{
        struct test_config_state *t = *state;

        test_config_refused(t,
                            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "\n"
                            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER,
                            "F:7: duplicate listener [smtp] (first on line 1)\n");
        test_config_refused(t,
                            "[mailward]\n"
                            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "[mailward]\n",
                            "F:7: duplicate section [mailward] (first on line 1)\n");
        test_config_refused(t, "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "listen = :26\n",
                            "F:6: duplicate key 'listen' in [smtp] (first on line 2)\n");
        /* ca_file is forward_ca's other name: not both. */
        test_config_refused(t,
                            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER
                            "forward_tls = starttls\n"
                            "forward_ca = /a.pem\n"
                            "ca_file = /b.pem\n",
                            "F:8: duplicate key 'ca_file' in [smtp] (first on line 7, as "
                            "'forward_ca')\n");
}

/* Two listeners, [a] and [b], on the listen addresses a and b. */
static const char *test_config_two(char *text, size_t len, const char *a, const char *b)
{
        snprintf(
            text, len,
            "[a]\nlisten = %s\ncert = /c.pem\nkey = /k.pem\nforward = 127.0.0.1:10025\n"
            "[b]\nlisten = %s\ncert = /c.pem\nkey = /k.pem\nforward = 127.0.0.1:10025\n",
            a, b);
        return text;
}

/* Listen addresses that cannot all be bound are refused by the check, not
 * found at start ("Address already in use"). */
static void test_config_listen_clash(void **state)
{
        struct test_config_state *t = *state;
        /* As Linux binds them (checked with sockets): "::" takes IPv4 too. */
        static const char *const clash[][2] = {
            {"127.0.0.1:2525", "127.0.0.1:2525"},
            {"0.0.0.0:2525", "127.0.0.1:2525"},
            {"127.0.0.1:2525", "0.0.0.0:2525"},
            {"[::]:2525", "[::1]:2525"},
            {":2525", "127.0.0.1:2525"},
            {"localhost:2525", "LOCALHOST:2525"},
            {"[::]:2525", "127.0.0.1:2525"},
            {"0.0.0.0:2525", "[::]:2525"},
            {":2525", "[::]:2525"},
        };
        static const char *const fine[][2] = {
            {"127.0.0.1:2525", "127.0.0.2:2525"}, {"127.0.0.1:2525", "127.0.0.1:2526"},
            {"[::1]:2525", "0.0.0.0:2525"},       {":2525", "[::1]:2525"},
            {"[::1]:2525", "127.0.0.1:2525"},     {"localhost:2525", "127.0.0.1:2525"},
        };
        char text[512], want[256];

        for (size_t i = 0; i < sizeof(clash) / sizeof(clash[0]); i++) {
                snprintf(want, sizeof(want),
                         "F:7: [b] listen %s: [a] listens on %s already\n", clash[i][1],
                         clash[i][0]);
                test_config_refused(
                    t, test_config_two(text, sizeof(text), clash[i][0], clash[i][1]),
                    want);
        }
        for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
                test_config_load(
                    t, test_config_two(text, sizeof(text), fine[i][0], fine[i][1]));
                assert_non_null(t->cfg);
        }
        /* Twice in one listener's list. */
        test_config_refused(
            t,
            "[a]\nlisten = 127.0.0.1:2525, [::1]:2525 127.0.0.1:2525\n"
            "cert = /c.pem\nkey = /k.pem\nforward = 127.0.0.1:10025\n",
            "F:2: [a] listen 127.0.0.1:2525: [a] listens on 127.0.0.1:2525 "
            "already\n");
}

static void test_config_syntax_errors(void **state)
{
        struct test_config_state *t = *state;
        char text[1024];

        test_config_refused(t,
                            "[smtp\n"
                            "[smtp] trailing\n"
                            "[bad name]\n"
                            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "just words\n",
                            "F:1: syntax error: section header without ']'\n"
                            "F:2: syntax error: text after section header\n"
                            "F:3: listener name 'bad name': use 1 to 49 letters, digits, "
                            "'-', '.' or '_'\n"
                            "F:9: syntax error: expected 'key = value'\n");
        /* Over inih's 200-byte line buffer: refused, and the rest of the line
         * is not read as a line of its own. */
        snprintf(text, sizeof(text),
                 "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "hostname = %0300d\n", 0);
        test_config_refused(t, text,
                            "F:6: line too long (the limit is 199 characters)\n");
        /* The limit itself: 199 characters pass whole, and the line after
         * them is a line of its own; 200 do not. */
        snprintf(text, sizeof(text),
                 "[smtp]\n" TEST_CONFIG_GOOD_LISTENER
                 "hostname = %0188d\nmax_line = 600\n",
                 0);
        test_config_load(t, text);
        assert_string_equal(t->errs, "");
        assert_non_null(t->cfg);
        assert_int_equal(strlen(t->cfg->listeners->hostname), 188);
        assert_int_equal(t->cfg->listeners->max_line, 600);
        snprintf(text, sizeof(text),
                 "[smtp]\n" TEST_CONFIG_GOOD_LISTENER
                 "hostname = %0188d\r\nmax_line = 600\n",
                 0);
        test_config_load(t, text);
        assert_string_equal(t->errs, "");
        assert_non_null(t->cfg);
        assert_int_equal(t->cfg->listeners->max_line, 600);
        snprintf(text, sizeof(text),
                 "[smtp]\n" TEST_CONFIG_GOOD_LISTENER
                 "hostname = %0189d\nmax_line = 600\n",
                 0);
        test_config_refused(t, text,
                            "F:6: line too long (the limit is 199 characters)\n");
}

/* Every error in the file, in file order, then the per-section rules. */
static void test_config_many_errors(void **state)
{
        struct test_config_state *t = *state;

        test_config_refused(
            t,
            "[mailward]\n"                /* 1 */
            "log_level = chatty\n"        /* 2 */
            "[smtp]\n"                    /* 3 */
            "listen = 127.0.0.1:25\n"     /* 4 */
            "accept_tls = tls\n"          /* 5 */
            "color = blue\n"              /* 6 */
            "max_line = 100\n"            /* 7 */
            "garbage\n"                   /* 8 */
            "[submission]\n"              /* 9 */
            "listen = 127.0.0.1:587\n"    /* 10 */
            "accept_tls = none\n"         /* 11 */
            "forward_tls = policy\n"      /* 12 */
            "forward = 127.0.0.1:10025\n" /* 13 */
            "[smtp]\n"                    /* 14 */
            "max_text_line = 10\n",       /* 15 */
            "F:2: log_level: expected err, warning, info or debug, got "
            "'chatty'\n"
            "F:5: accept_tls: expected starttls, implicit or none, got 'tls'\n"
            "F:6: unknown key 'color' in [smtp]\n"
            "F:7: max_line: must be from 512 to 65536, got '100'\n"
            "F:8: syntax error: expected 'key = value'\n"
            "F:14: duplicate listener [smtp] (first on line 3)\n"
            "F:15: max_text_line: must be from 1000 to 1048576, got '10'\n"
            "F:3: [smtp]: missing 'forward'\n"
            "F:3: [smtp]: missing 'cert' (required unless accept_tls = none)\n"
            "F:3: [smtp]: missing 'key' (required unless accept_tls = none)\n"
            "F:11: require_tls = yes needs accept_tls starttls or implicit\n"
            "F:12: forward_tls = policy needs forward = original-dst\n");
}

static void test_config_strings(void **state)
{
        (void)state;
        assert_string_equal(config_tls_str(CONFIG_TLS_NONE), "none");
        assert_string_equal(config_tls_str(CONFIG_TLS_STARTTLS), "starttls");
        assert_string_equal(config_tls_str(CONFIG_TLS_IMPLICIT), "implicit");
        assert_string_equal(config_tls_str(CONFIG_TLS_POLICY), "policy");
        assert_string_equal(config_identity_str(CONFIG_IDENTITY_NONE), "none");
        assert_string_equal(config_identity_str(CONFIG_IDENTITY_XCLIENT), "xclient");
        assert_string_equal(config_identity_str(CONFIG_IDENTITY_PROXY), "proxy");
        config_free(NULL);
}

/* SIGHUP: the running settings copied, the others named for a restart. */
static void test_config_apply_hot(void **state)
{
        struct test_config_state *t = *state;
        struct config *running;
        char applied[512], restart[512];

        test_config_load(t, "[mailward]\n"
                            "log_level = info\n"
                            "[smtp]\n" TEST_CONFIG_GOOD_LISTENER "max_per_client = 5\n"
                            "[out]\n" TEST_CONFIG_OUTBOUND "ca_file = /a.pem\n"
                            "[wrap]\n"
                            "listen = 127.0.0.1:4650\n"
                            "cert = /c.pem\n"
                            "key = /k.pem\n"
                            "forward = 127.0.0.1:10025\n"
                            "forward_tls = implicit\n");
        assert_non_null(t->cfg);
        running = t->cfg;
        t->cfg = NULL;
        test_config_load(t, "[mailward]\n"
                            "log_level = debug\n"
                            "drain_timeout = 5\n"
                            "[smtp]\n"
                            "listen = 127.0.0.1:2526\n"
                            "cert = /c.pem\n"
                            "key = /k.pem\n"
                            "forward = 127.0.0.1:10027\n"
                            "forward_source = 127.0.0.2\n"
                            "max_per_client = 1\n"
                            "hostname = mx.example.org\n"
                            "[out]\n" TEST_CONFIG_OUTBOUND "ca_file = /b.pem\n"
                            "default_level = dane\n"
                            "tlsrpt_from = r@x.test\n"
                            "[wrap]\n"
                            "listen = 127.0.0.1:4650\n"
                            "cert = /c.pem\n"
                            "key = /k.pem\n"
                            "forward = 127.0.0.1:10027\n"
                            "forward_tls = implicit\n"
                            "[new]\n" TEST_CONFIG_GOOD_LISTENER);
        assert_non_null(t->cfg);
        config_apply_hot(running, t->cfg, applied, sizeof(applied), restart,
                         sizeof(restart));
        /* A plaintext backend moves; a TLS one's name is its sessions' too. */
        assert_string_equal(
            applied, "log_level [smtp] forward [smtp] forward_source [smtp] hostname "
                     "[smtp] max_per_client [out] forward_ca [out] default_level "
                     "[out] tlsrpt_from");
        assert_string_equal(restart,
                            "drain_timeout [smtp] listen [wrap] forward [new] (added)");
        assert_string_equal(running->listeners->forward, "127.0.0.1:10027");
        assert_string_equal(running->listeners->forward_source, "127.0.0.2");
        assert_string_equal(running->listeners->next->next->forward, "127.0.0.1:10025");
        assert_int_equal(running->log_level, LOG_LVL_DEBUG);
        assert_int_equal(running->drain_timeout, 30);
        assert_int_equal(running->listeners->max_per_client, 1);
        assert_string_equal(running->listeners->hostname, "mx.example.org");
        assert_string_equal(running->listeners->listen, "127.0.0.1:2525");
        assert_int_equal(running->listeners->next->default_level, POLICY_LEVEL_DANE);
        assert_string_equal(running->listeners->next->tlsrpt_from, "r@x.test");
        assert_string_equal(running->listeners->next->forward_ca, "/b.pem");
        /* Read again unchanged: nothing either way. */
        config_apply_hot(running, running, applied, sizeof(applied), restart,
                         sizeof(restart));
        assert_string_equal(applied, "");
        assert_string_equal(restart, "");
        config_free(running);
}

int main(void)
{
#define TEST_CONFIG(f)                                                                   \
        cmocka_unit_test_setup_teardown(f, test_config_setup, test_config_teardown)
        const struct CMUnitTest tests[] = {
            TEST_CONFIG(test_config_full),
            TEST_CONFIG(test_config_defaults),
            TEST_CONFIG(test_config_syntax_accepted),
            TEST_CONFIG(test_config_missing_file),
            TEST_CONFIG(test_config_no_listener),
            TEST_CONFIG(test_config_unknown_key),
            TEST_CONFIG(test_config_bad_values),
            TEST_CONFIG(test_config_bad_globals),
            TEST_CONFIG(test_config_workers),
            TEST_CONFIG(test_config_hostport),
            TEST_CONFIG(test_config_missing_keys),
            TEST_CONFIG(test_config_two_certs),
            TEST_CONFIG(test_config_proxy),
            TEST_CONFIG(test_config_forward_cert),
            TEST_CONFIG(test_config_rules),
            TEST_CONFIG(test_config_inline_comments),
            TEST_CONFIG(test_config_duplicates),
            TEST_CONFIG(test_config_listen_clash),
            TEST_CONFIG(test_config_syntax_errors),
            TEST_CONFIG(test_config_many_errors),
            TEST_CONFIG(test_config_strings),
            TEST_CONFIG(test_config_apply_hot),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
