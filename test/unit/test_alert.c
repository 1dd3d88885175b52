/*
 * alert: the JSON line byte for byte, its escaping, the file sink (appended,
 * one line per alert), the hook (the same line, with and without a file),
 * the log line and the counters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alert.h"

#define TEST_ALERT_TIME "2026-11-23T19:40:00.123Z"

/*
 * A strict check of what alert_format_json() promises: one flat JSON object
 * of string members, then "\n" and nothing else; only printable ASCII inside
 * strings, escapes limited to \" \\ and \u00XX. Returns the member count or -1.
 */
static int test_alert_hex(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int test_alert_json_string(const char **pp)
{
        const char *p = *pp;

        if (*p++ != '"')
                return -1;
        for (;;) {
                unsigned char c = (unsigned char)*p++;

                if (c == '"')
                        break;
                if (c < 0x20 || c >= 0x7f)
                        return -1;
                if (c != '\\')
                        continue;
                c = (unsigned char)*p++;
                if (c == '"' || c == '\\')
                        continue;
                if (c != 'u' || p[0] != '0' || p[1] != '0' || !test_alert_hex(p[2]) ||
                    !test_alert_hex(p[3]))
                        return -1;
                p += 4;
        }
        *pp = p;
        return 0;
}

static int test_alert_json_valid(const char *line)
{
        const char *p = line;
        int n = 0;

        if (*p++ != '{')
                return -1;
        for (;;) {
                if (test_alert_json_string(&p) != 0 || *p++ != ':' ||
                    test_alert_json_string(&p) != 0)
                        return -1;
                n++;
                if (*p == ',') {
                        p++;
                        continue;
                }
                break;
        }
        if (strcmp(p, "}\n") != 0)
                return -1;
        return n;
}

static void test_alert_names(void **state)
{
        static const char *const names[] = {
            "plaintext_refused",    "plaintext_relayed",   "starttls_injection",
            "tls_handshake_failed", "starttls_stripped",   "starttls_refused",
            "tls_version_too_low",  "certificate_invalid", "tls_absent",
            "dnssec_invalid",       "dane_required",
        };
        int i;

        (void)state;
        assert_int_equal(ALERT_EVENT_COUNT, 11);
        for (i = 0; i < ALERT_EVENT_COUNT; i++)
                assert_string_equal(alert_event_str((enum alert_event)i), names[i]);
        assert_string_equal(alert_severity_str(ALERT_SEV_INFO), "info");
        assert_string_equal(alert_severity_str(ALERT_SEV_WARNING), "warning");
        assert_string_equal(alert_severity_str(ALERT_SEV_CRITICAL), "critical");
}

static void test_alert_json_all_fields(void **state)
{
        const struct alert a = {
            .event = ALERT_CERTIFICATE_INVALID,
            .severity = ALERT_SEV_CRITICAL,
            .session = "0a1b2c",
            .listener = "out",
            .client = "127.0.0.1:5555",
            .server = "[2001:db8::1]:25",
            .action = "deferred",
            .domain = "example.org",
            .expected = "verify",
            .observed = "self-signed",
            .reason = "certificate verify failed",
        };
        const char *want =
            "{\"time\":\"" TEST_ALERT_TIME "\",\"event\":\"certificate_invalid\","
            "\"severity\":\"critical\",\"session\":\"0a1b2c\","
            "\"listener\":\"out\",\"client\":\"127.0.0.1:5555\","
            "\"server\":\"[2001:db8::1]:25\",\"action\":\"deferred\","
            "\"domain\":\"example.org\",\"expected\":\"verify\","
            "\"observed\":\"self-signed\","
            "\"reason\":\"certificate verify failed\"}\n";
        char out[1024];

        (void)state;
        assert_int_equal(alert_format_json(&a, TEST_ALERT_TIME, out, sizeof(out)),
                         (int)strlen(want));
        assert_string_equal(out, want);
        assert_int_equal(test_alert_json_valid(out), 12);
}

/* NULL fields are left out; the spec's example line. */
static void test_alert_json_spec_example(void **state)
{
        const struct alert a = {
            .event = ALERT_PLAINTEXT_REFUSED,
            .severity = ALERT_SEV_WARNING,
            .session = "s1",
            .listener = "smtp",
            .client = "127.0.0.1:5555",
            .action = "rejected",
            .domain = "example.org",
            .observed = "MAIL before STARTTLS",
        };
        const char *want =
            "{\"time\":\"2026-11-23T19:40:00.123Z\",\"event\":\"plaintext_"
            "refused\",\"severity\":\"warning\",\"session\":\"s1\",\"listener\":"
            "\"smtp\",\"client\":\"127.0.0.1:5555\",\"action\":\"rejected\","
            "\"domain\":\"example.org\",\"observed\":\"MAIL before STARTTLS\"}\n";
        const struct alert bare = {.event = ALERT_TLS_ABSENT, .severity = ALERT_SEV_INFO};
        char out[512];
        int n;

        (void)state;
        assert_int_equal(alert_format_json(&a, TEST_ALERT_TIME, out, sizeof(out)),
                         (int)strlen(want));
        assert_string_equal(out, want);
        n = alert_format_json(&bare, TEST_ALERT_TIME, out, sizeof(out));
        assert_int_equal(n, (int)strlen(out));
        assert_string_equal(out, "{\"time\":\"" TEST_ALERT_TIME
                                 "\",\"event\":\"tls_absent\",\"severity\":\"info\"}\n");
        assert_int_equal(test_alert_json_valid(out), 3);
}

static void test_alert_json_escaping(void **state)
{
        const struct alert a = {
            .event = ALERT_STARTTLS_INJECTION,
            .severity = ALERT_SEV_CRITICAL,
            .domain = "a\"b\\c",
            .observed = "MAIL\r\n\t\x01\x1f\x7f end",
            .reason = "caf\xc3\xa9 \xff",
        };
        const char *want =
            "{\"time\":\"" TEST_ALERT_TIME "\",\"event\":\"starttls_injection\","
            "\"severity\":\"critical\",\"domain\":\"a\\\"b\\\\c\","
            "\"observed\":\"MAIL\\u000d\\u000a\\u0009\\u0001\\u001f\\u007f end\","
            "\"reason\":\"caf\\u00c3\\u00a9 \\u00ff\"}\n";
        char out[512];

        (void)state;
        assert_int_equal(alert_format_json(&a, TEST_ALERT_TIME, out, sizeof(out)),
                         (int)strlen(want));
        assert_string_equal(out, want);
        assert_int_equal(test_alert_json_valid(out), 6);
}

/* Every byte value in every field still gives one valid line. */
static void test_alert_json_all_bytes(void **state)
{
        char field[256], out[16384];
        struct alert a = {.event = ALERT_STARTTLS_STRIPPED,
                          .severity = ALERT_SEV_WARNING};
        int i;

        (void)state;
        for (i = 1; i < 256; i++)
                field[i - 1] = (char)i;
        field[255] = '\0';
        a.session = a.listener = a.client = a.server = a.action = field;
        a.domain = a.expected = a.observed = a.reason = field;
        assert_true(alert_format_json(&a, TEST_ALERT_TIME, out, sizeof(out)) > 0);
        assert_int_equal(test_alert_json_valid(out), 12);
        assert_int_equal(strchr(out, '\n') - out, (int)strlen(out) - 1);
}

static void test_alert_json_too_small(void **state)
{
        const struct alert a = {.event = ALERT_TLS_ABSENT, .severity = ALERT_SEV_INFO};
        char out[128];
        int n;

        (void)state;
        n = alert_format_json(&a, TEST_ALERT_TIME, out, sizeof(out));
        assert_true(n > 0);
        /* Exactly the length plus the NUL fits; one byte less does not. */
        assert_int_equal(alert_format_json(&a, TEST_ALERT_TIME, out, (size_t)n + 1), n);
        assert_int_equal(alert_format_json(&a, TEST_ALERT_TIME, out, (size_t)n), -1);
        assert_string_equal(out, "");
        assert_int_equal(alert_format_json(&a, TEST_ALERT_TIME, out, 0), -1);
}

static char *test_alert_slurp(const char *path)
{
        FILE *f = fopen(path, "r");
        char *buf;
        long n;

        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        rewind(f);
        buf = malloc((size_t)n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

/* The part of a line after its time, which the sink takes from the clock. */
static const char *test_alert_after_time(const char *line)
{
        const char *prefix = "{\"time\":\"";
        size_t i;

        assert_memory_equal(line, prefix, strlen(prefix));
        line += strlen(prefix);
        /* 2026-11-23T19:40:00.123Z */
        for (i = 0; i < 24; i++) {
                if (i == 4 || i == 7)
                        assert_int_equal(line[i], '-');
                else if (i == 10)
                        assert_int_equal(line[i], 'T');
                else if (i == 13 || i == 16)
                        assert_int_equal(line[i], ':');
                else if (i == 19)
                        assert_int_equal(line[i], '.');
                else if (i == 23)
                        assert_int_equal(line[i], 'Z');
                else
                        assert_true(line[i] >= '0' && line[i] <= '9');
        }
        return line + 24;
}

/* path (a mkstemp() template) made, holding the line "old". */
static void test_alert_old_file(char *path)
{
        int fd = mkstemp(path);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, "old\n", 4), 4);
        close(fd);
}

static void test_alert_file_sink(void **state)
{
        char path[] = "/tmp/test_alert_XXXXXX";
        char big[5000];
        const struct log lg = {.level = LOG_LVL_ERR,
                               .syslog = false}; /* alerts not logged */
        struct alert_sink s;
        struct alert a = {
            .event = ALERT_PLAINTEXT_REFUSED,
            .severity = ALERT_SEV_WARNING,
            .session = "s1",
            .action = "rejected",
        };
        const char *want3 =
            "\",\"event\":\"tls_handshake_failed\",\"severity\":\"warning\","
            "\"session\":\"s1\",\"action\":\"closed\",\"reason\":\"";
        const char *rest;
        char *text, *line2, *line3;

        (void)state;
        test_alert_old_file(path);

        assert_int_equal(alert_sink_init(&s, &lg, path), 0);
        assert_true(s.fd >= 0);
        alert_emit(&s, &a);
        a.event = ALERT_STARTTLS_INJECTION;
        a.severity = ALERT_SEV_CRITICAL;
        a.action = "closed";
        alert_emit(&s, &a);
        /* Longer than any stack buffer: still one whole line. */
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        a.event = ALERT_TLS_HANDSHAKE_FAILED;
        a.severity = ALERT_SEV_WARNING;
        a.reason = big;
        alert_emit(&s, &a);
        alert_sink_cleanup(&s);
        assert_int_equal(s.fd, -1);

        text = test_alert_slurp(path);
        assert_memory_equal(text, "old\n", 4);
        line2 = strchr(text + 4, '\n') + 1;
        line3 = strchr(line2, '\n') + 1;
        rest = test_alert_after_time(text + 4);
        assert_memory_equal(rest,
                            "\",\"event\":\"plaintext_refused\",\"severity\":\"warning\","
                            "\"session\":\"s1\",\"action\":\"rejected\"}\n",
                            (size_t)(line2 - rest));
        rest = test_alert_after_time(line2);
        assert_memory_equal(
            rest,
            "\",\"event\":\"starttls_injection\",\"severity\":\"critical\","
            "\"session\":\"s1\",\"action\":\"closed\"}\n",
            (size_t)(line3 - rest));
        rest = test_alert_after_time(line3);
        assert_memory_equal(rest, want3, strlen(want3));
        assert_memory_equal(rest + strlen(want3), big, sizeof(big) - 1);
        assert_string_equal(rest + strlen(want3) + sizeof(big) - 1, "\"}\n");
        assert_int_equal(test_alert_json_valid(line3), 6);
        unlink(path);
        free(text);
}

static void test_alert_sink_errors(void **state)
{
        const struct log lg = {.level = LOG_LVL_ERR};
        struct alert_sink s;

        (void)state;
        assert_int_equal(alert_sink_init(&s, &lg, "/nonexistent-dir/alerts.json"),
                         -ENOENT);
        assert_int_equal(s.fd, -1);
        alert_sink_cleanup(&s);
        assert_int_equal(alert_sink_init(&s, &lg, NULL), 0);
        assert_int_equal(s.fd, -1);
        alert_sink_cleanup(&s);
        alert_emit(NULL, &(struct alert){.event = ALERT_TLS_ABSENT}); /* no sink: no-op */
}

/* Never through a symbolic link (opened as root): neither the target made
 * nor an existing one appended to, at start or at a reopen. */
static void test_alert_sink_symlink(void **state)
{
        const struct log lg = {.level = LOG_LVL_ERR};
        char dir[] = "/tmp/test_alert_link_XXXXXX", link[64], target[64], plain[64];
        struct alert_sink s;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(link, sizeof(link), "%s/alerts.json", dir);
        snprintf(target, sizeof(target), "%s/target", dir);
        snprintf(plain, sizeof(plain), "%s/plain.json", dir);
        assert_int_equal(symlink(target, link), 0);
        assert_int_equal(alert_sink_init(&s, &lg, link), -ELOOP);
        assert_int_equal(s.fd, -1);
        assert_int_equal(access(target, F_OK), -1);

        assert_int_equal(alert_sink_init(&s, &lg, plain), 0);
        assert_true(s.fd >= 0);
        assert_int_equal(alert_sink_reopen(&s, link), -ELOOP);
        assert_int_equal(access(target, F_OK), -1);
        alert_sink_cleanup(&s);
        unlink(link);
        unlink(plain);
        rmdir(dir);
}

/*
 * A line cut short (the file may grow no further: RLIMIT_FSIZE stands in
 * for a full disk) does not swallow the next one: once there is room
 * again, the next line starts on a line of its own.
 */
static void test_alert_sink_cut_line(void **state)
{
        const struct log lg = {.level = LOG_LVL_ERR};
        char path[] = "/tmp/test_alert_cut_XXXXXX";
        struct alert a = {.event = ALERT_PLAINTEXT_REFUSED,
                          .severity = ALERT_SEV_WARNING,
                          .session = "s1",
                          .action = "rejected"};
        struct rlimit old, small;
        struct alert_sink s;
        char *text, *nl;

        (void)state;
        test_alert_old_file(path);
        assert_int_equal(alert_sink_init(&s, &lg, path), 0);
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        signal(SIGXFSZ, SIG_IGN);
        small = old;
        small.rlim_cur = 4 + 40;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
        alert_emit(&s, &a); /* 40 bytes of it fit */
        assert_true(s.cut);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        signal(SIGXFSZ, SIG_DFL);
        a.session = "s2";
        alert_emit(&s, &a);
        assert_false(s.cut);
        alert_sink_cleanup(&s);

        text = test_alert_slurp(path);
        nl = strchr(text + 4, '\n');
        assert_non_null(nl);
        assert_int_equal(nl - (text + 4), 40); /* the cut line, then its newline */
        assert_int_equal(test_alert_json_valid(nl + 1), 5);
        assert_non_null(strstr(nl + 1, "\"session\":\"s2\""));
        assert_string_equal(strchr(nl + 1, '\n'), "\n");
        unlink(path);
        free(text);
}

static void test_alert_counters(void **state)
{
        const struct log lg = {.level = LOG_LVL_ERR};
        struct alert_sink s;
        struct alert a = {.severity = ALERT_SEV_WARNING};
        int i;

        (void)state;
        assert_int_equal(alert_sink_init(&s, &lg, NULL), 0);
        for (i = 0; i < ALERT_EVENT_COUNT; i++)
                assert_int_equal(s.count[i], 0);
        a.event = ALERT_PLAINTEXT_RELAYED;
        alert_emit(&s, &a);
        alert_emit(&s, &a);
        a.event = ALERT_TLS_ABSENT;
        alert_emit(&s, &a);
        for (i = 0; i < ALERT_EVENT_COUNT; i++) {
                unsigned long want =
                    i == ALERT_PLAINTEXT_RELAYED ? 2 : i == ALERT_TLS_ABSENT;

                assert_int_equal(s.count[i], want);
        }
        alert_sink_cleanup(&s);
}

/* The log line goes to stderr in the foreground: catch it in a file. */
static void test_alert_log_line(void **state)
{
        char path[] = "/tmp/test_alert_log_XXXXXX";
        const struct log lg = {.level = LOG_LVL_WARN, .syslog = false};
        const struct alert a = {
            .event = ALERT_PLAINTEXT_REFUSED,
            .severity = ALERT_SEV_WARNING,
            .session = "s7",
            .listener = "smtp",
            .client = "127.0.0.1:5555",
            .action = "rejected",
            .domain = "ex\"ample.org",
            .observed = "MAIL before STARTTLS",
        };
        struct alert_sink s;
        int fd, saved;
        char *text;

        (void)state;
        fd = mkstemp(path);
        assert_true(fd >= 0);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        assert_true(saved >= 0);
        assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
        assert_int_equal(alert_sink_init(&s, &lg, NULL), 0);
        alert_emit(&s, &a);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(fd);
        alert_sink_cleanup(&s);

        text = test_alert_slurp(path);
        unlink(path);
        assert_non_null(strstr(text, " mailward["));
        assert_non_null(strstr(text,
                               "]: warning: s7 event=alert type=plaintext_refused "
                               "severity=warning listener=smtp client=127.0.0.1:5555 "
                               "action=rejected domain=ex\\x22ample.org "
                               "observed=MAIL\\x20before\\x20STARTTLS\n"));
        assert_int_equal(strchr(text, '\n') - text, (int)strlen(text) - 1);
        free(text);
}

/* What the hook saw: each call's event and line, copied. */
struct test_alert_hook_seen {
        int calls;
        enum alert_event event[4];
        char line[4][6000];
        size_t len[4];
};

static void test_alert_hook_cb(void *arg, const struct alert *a, const char *json,
                               size_t len)
{
        struct test_alert_hook_seen *seen = arg;

        assert_true(seen->calls < 4);
        assert_true(len > 0 && len < sizeof(seen->line[0]));
        assert_int_equal(json[len - 1], '\n');
        assert_int_equal(json[len], '\0');
        seen->event[seen->calls] = a->event;
        memcpy(seen->line[seen->calls], json, len + 1);
        seen->len[seen->calls] = len;
        seen->calls++;
}

/* The hook gets exactly the line the file gets, also past the stack buffer. */
static void test_alert_hook(void **state)
{
        char path[] = "/tmp/test_alert_hook_XXXXXX";
        const struct log lg = {.level = LOG_LVL_ERR};
        struct test_alert_hook_seen seen;
        struct alert a = {
            .event = ALERT_STARTTLS_INJECTION,
            .severity = ALERT_SEV_CRITICAL,
            .session = "s9",
            .action = "closed",
        };
        char big[5000];
        struct alert_sink s;
        char *text;
        int fd;

        (void)state;
        memset(&seen, 0, sizeof(seen));
        /* Without a file. */
        assert_int_equal(alert_sink_init(&s, &lg, NULL), 0);
        assert_null(s.hook);
        s.hook = test_alert_hook_cb;
        s.hook_arg = &seen;
        alert_emit(&s, &a);
        assert_int_equal(seen.calls, 1);
        assert_int_equal(seen.event[0], ALERT_STARTTLS_INJECTION);
        assert_string_equal(test_alert_after_time(seen.line[0]),
                            "\",\"event\":\"starttls_injection\",\"severity\":"
                            "\"critical\",\"session\":\"s9\",\"action\":\"closed\"}\n");
        assert_int_equal(test_alert_json_valid(seen.line[0]), 5);
        assert_int_equal(s.count[ALERT_STARTTLS_INJECTION], 1);
        alert_sink_cleanup(&s);

        /* With a file: the same bytes in both, for a short and a long line. */
        memset(&seen, 0, sizeof(seen));
        fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(alert_sink_init(&s, &lg, path), 0);
        s.hook = test_alert_hook_cb;
        s.hook_arg = &seen;
        a.event = ALERT_PLAINTEXT_REFUSED;
        a.severity = ALERT_SEV_WARNING;
        a.action = "rejected";
        alert_emit(&s, &a);
        memset(big, 'y', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        a.reason = big;
        alert_emit(&s, &a);
        alert_sink_cleanup(&s);
        assert_int_equal(seen.calls, 2);
        assert_int_equal(seen.event[1], ALERT_PLAINTEXT_REFUSED);
        assert_true(seen.len[1] > sizeof(big));
        assert_int_equal(test_alert_json_valid(seen.line[1]), 6);
        text = test_alert_slurp(path);
        unlink(path);
        assert_int_equal(strlen(text), seen.len[0] + seen.len[1]);
        assert_memory_equal(text, seen.line[0], seen.len[0]);
        assert_memory_equal(text + seen.len[0], seen.line[1], seen.len[1]);
        free(text);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_alert_names),
            cmocka_unit_test(test_alert_json_all_fields),
            cmocka_unit_test(test_alert_json_spec_example),
            cmocka_unit_test(test_alert_json_escaping),
            cmocka_unit_test(test_alert_json_all_bytes),
            cmocka_unit_test(test_alert_json_too_small),
            cmocka_unit_test(test_alert_file_sink),
            cmocka_unit_test(test_alert_sink_errors),
            cmocka_unit_test(test_alert_sink_symlink),
            cmocka_unit_test(test_alert_sink_cut_line),
            cmocka_unit_test(test_alert_counters),
            cmocka_unit_test(test_alert_log_line),
            cmocka_unit_test(test_alert_hook),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
