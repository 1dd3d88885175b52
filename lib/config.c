/*
 * config: the INI file through inih, with line numbers of our own.
 *
 * Debian's inih is built without INI_HANDLER_LINENO, so the handler cannot be
 * told the line. We parse with ini_parse_stream() and our own reader: it hands
 * inih one whole line at a time and knows which line that is, so the handler,
 * called while inih works on that very line, reads the number from the parser.
 * The reader also does what inih cannot report: it sees every section header
 * (inih calls no handler for them), so it checks names and duplicates and
 * tells the handler which occurrence of a section is current; it checks the
 * syntax of every line with inih's own rules (inih returns only the first bad
 * line, we want all of them); it refuses over-long lines instead of letting
 * inih cut them in two; and it strips leading blanks, so an indented line is
 * never taken as inih's multi-line continuation of the previous value (no key
 * here is multi-line, and indented keys are a common way to write a file);
 * and it cuts off inline comments, '#' as well as inih's ';'.
 *
 * Every problem is printed at once as "file:line: message" and counted; the
 * load fails if the count is not zero.
 */
#include "config.h"

#include "policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util.h"

#define CONFIG_GLOBAL_SECTION  "mailward"
#define CONFIG_ORIGINAL_DST    "original-dst"
#define CONFIG_DEFAULT_CA      "/etc/ssl/certs/ca-certificates.crt"
#define CONFIG_MAX_SECTION     49 /* inih keeps section names in 50 bytes */
#define CONFIG_MAX_HOST        256
#define CONFIG_MAX_KEYS        40
#define CONFIG_TIMEOUT_MAX     86400
#define CONFIG_MAX_WORKERS     64
#define CONFIG_INLINE_COMMENTS ";#"

enum config_type {
        CONFIG_T_STR,      /* any non-empty string */
        CONFIG_T_ABSPATH,  /* an absolute file name */
        CONFIG_T_HOSTNAME, /* a host name for our greeting */
        CONFIG_T_BOOL,
        CONFIG_T_UINT,        /* min..max */
        CONFIG_T_ACCEPT_TLS,  /* starttls | implicit | none */
        CONFIG_T_FORWARD_TLS, /* none | starttls | implicit | policy */
        CONFIG_T_IDENTITY,    /* none | xclient | proxy */
        CONFIG_T_LISTEN,      /* host:port, host may be empty */
        CONFIG_T_FORWARD,     /* host:port or original-dst */
        CONFIG_T_LOG_LEVEL,
        CONFIG_T_LOG_DEST, /* stderr | syslog, stored as bool syslog */
        CONFIG_T_LEVEL,    /* a policy level (lib/policy.h) */
        CONFIG_T_WORKERS,  /* 1..CONFIG_MAX_WORKERS or auto */
        CONFIG_T_ADDRESS,  /* an IPv4 or IPv6 address, no port */
        CONFIG_T_VERIFY,   /* a boolean, dane or dane-only */
        CONFIG_T_FILES,    /* up to CONFIG_MAX_CERTS paths (cert, key); may repeat */
        CONFIG_T_NETS,     /* addresses and networks (util_net_parse()) */
};

struct config_key {
        const char *name;
        enum config_type type;
        size_t offset;
        unsigned min, max; /* CONFIG_T_UINT */
};

#define CONFIG_G(name, type)                                                             \
        {                                                                                \
#name, type, offsetof(struct config, name), 0, 0                         \
        }
#define CONFIG_L(name, type)                                                             \
        {                                                                                \
#name, type, offsetof(struct config_listener, name), 0, 0                \
        }
#define CONFIG_N(name, min, max)                                                         \
        {                                                                                \
#name, CONFIG_T_UINT, offsetof(struct config_listener, name), min, max   \
        }

static const struct config_key config_global_keys[] = {
    CONFIG_G(user, CONFIG_T_STR),
    CONFIG_G(allow_root, CONFIG_T_BOOL),
    CONFIG_G(alert_log, CONFIG_T_STR),
    CONFIG_G(alert_command, CONFIG_T_ABSPATH),
    CONFIG_G(metrics_file, CONFIG_T_ABSPATH),
    CONFIG_G(state_dir, CONFIG_T_STR),
    CONFIG_G(log_level, CONFIG_T_LOG_LEVEL),
    {"log", CONFIG_T_LOG_DEST, offsetof(struct config, syslog), 0, 0},
    {"drain_timeout", CONFIG_T_UINT, offsetof(struct config, drain_timeout), 0,
     CONFIG_TIMEOUT_MAX},
    {"workers", CONFIG_T_WORKERS, offsetof(struct config, workers), 1,
     CONFIG_MAX_WORKERS},
};

static const struct config_key config_listener_keys[] = {
    CONFIG_L(listen, CONFIG_T_LISTEN),
    CONFIG_L(accept_tls, CONFIG_T_ACCEPT_TLS),
    CONFIG_L(require_tls, CONFIG_T_BOOL),
    CONFIG_L(cert, CONFIG_T_FILES),
    CONFIG_L(key, CONFIG_T_FILES),
    CONFIG_L(forward, CONFIG_T_FORWARD),
    CONFIG_L(forward_tls, CONFIG_T_FORWARD_TLS),
    CONFIG_L(forward_ca, CONFIG_T_STR),
    {"ca_file", CONFIG_T_STR, offsetof(struct config_listener, forward_ca), 0, 0},
    CONFIG_L(forward_cert, CONFIG_T_STR),
    CONFIG_L(forward_key, CONFIG_T_STR),
    CONFIG_L(policy, CONFIG_T_STR),
    CONFIG_L(default_level, CONFIG_T_LEVEL),
    CONFIG_N(learned_max_age, 0, 3650),
    CONFIG_L(mta_sts, CONFIG_T_BOOL),
    CONFIG_L(tlsrpt, CONFIG_T_BOOL),
    CONFIG_L(tlsrpt_from, CONFIG_T_STR),
    CONFIG_L(relayhost, CONFIG_T_HOSTNAME),
    CONFIG_L(forward_verify, CONFIG_T_VERIFY),
    CONFIG_L(forward_source, CONFIG_T_ADDRESS),
    CONFIG_L(accept_proxy, CONFIG_T_BOOL),
    CONFIG_L(proxy_from, CONFIG_T_NETS),
    CONFIG_L(client_identity, CONFIG_T_IDENTITY),
    CONFIG_L(client_name_lookup, CONFIG_T_BOOL),
    CONFIG_L(hostname, CONFIG_T_HOSTNAME),
    CONFIG_N(max_sessions, 1, 1000000),
    CONFIG_N(max_per_client, 1, 1000000),
    CONFIG_N(max_line, 512, 65536),
    CONFIG_N(max_text_line, 1000, 1048576),
    CONFIG_N(timeout_greeting, 1, CONFIG_TIMEOUT_MAX),
    CONFIG_N(timeout_command, 1, CONFIG_TIMEOUT_MAX),
    CONFIG_N(timeout_handshake, 1, CONFIG_TIMEOUT_MAX),
    CONFIG_N(timeout_data, 1, CONFIG_TIMEOUT_MAX),
    CONFIG_N(timeout_idle, 1, CONFIG_TIMEOUT_MAX),
    CONFIG_N(timeout_final, 1, CONFIG_TIMEOUT_MAX),
    CONFIG_N(probe_interval, 1, CONFIG_TIMEOUT_MAX),
};

_Static_assert(UTIL_ARRAY_LEN(config_listener_keys) <= CONFIG_MAX_KEYS,
               "CONFIG_MAX_KEYS");
_Static_assert(UTIL_ARRAY_LEN(config_global_keys) <= CONFIG_MAX_KEYS, "CONFIG_MAX_KEYS");

/* One occurrence of a section header in the file. */
struct config_section {
        struct config_section *next;
        bool global;
        bool keep; /* false: a duplicate or bad section, parsed only for its errors */
        int line;
        struct config *cfg;               /* global: where its values go */
        struct config_listener *listener; /* listener: where its values go */
        int seen[CONFIG_MAX_KEYS];        /* line of each key set, 0 if not */
};

struct config_parser {
        const char *path;
        FILE *errs;
        FILE *in;
        int line;      /* line inih is working on */
        int next_line; /* line the reader reads next */
        int errors;
        struct config *cfg;
        struct config_section *sections, **sections_tail;
        struct config_section *cur; /* NULL before the first section header */
        struct config_listener **listeners_tail;
        char hostname[256];
};

static const char *const config_tls_names[] = {"none", "starttls", "implicit", "policy"};
static const char *const config_identity_names[] = {"none", "xclient", "proxy"};
static const char *const config_verify_names[] = {"no", "yes", "dane", "dane-only"};

const char *config_tls_str(enum config_tls t)
{
        if ((size_t)t < UTIL_ARRAY_LEN(config_tls_names))
                return config_tls_names[t];
        return "?";
}

const char *config_verify_str(enum config_verify v)
{
        if ((size_t)v < UTIL_ARRAY_LEN(config_verify_names))
                return config_verify_names[v];
        return "?";
}

const char *config_identity_str(enum config_identity id)
{
        if ((size_t)id < UTIL_ARRAY_LEN(config_identity_names))
                return config_identity_names[id];
        return "?";
}

static void config_error(struct config_parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "file:line: message"; line 0 prints "file: message". */
static void config_error(struct config_parser *p, int line, const char *fmt, ...)
{
        va_list ap;

        p->errors++;
        if (p->errs == NULL)
                return;
        if (line > 0)
                fprintf(p->errs, "%s:%d: ", p->path, line);
        else
                fprintf(p->errs, "%s: ", p->path);
        va_start(ap, fmt);
        vfprintf(p->errs, fmt, ap);
        va_end(ap);
        fputc('\n', p->errs);
}

static void config_listener_free(struct config_listener *l)
{
        if (l == NULL)
                return;
        free(l->name);
        free(l->listen);
        free(l->cert);
        free(l->key);
        free(l->forward);
        free(l->hostname);
        free(l->forward_ca);
        free(l->forward_cert);
        free(l->forward_key);
        free(l->policy);
        free(l->tlsrpt_from);
        free(l->relayhost);
        free(l->forward_source);
        free(l->proxy_from);
        free(l);
}

void config_free(struct config *cfg)
{
        struct config_listener *l, *next;

        if (cfg == NULL)
                return;
        for (l = cfg->listeners; l != NULL; l = next) {
                next = l->next;
                config_listener_free(l);
        }
        free(cfg->path);
        free(cfg->user);
        free(cfg->alert_log);
        free(cfg->alert_command);
        free(cfg->metrics_file);
        free(cfg->state_dir);
        free(cfg);
}

static struct config *config_new_global(void)
{
        struct config *cfg = xcalloc(1, sizeof(*cfg));

        cfg->user = xstrdup("mailward");
        cfg->allow_root = false;
        cfg->state_dir = xstrdup("/var/lib/mailward");
        cfg->log_level = LOG_LVL_INFO;
        cfg->syslog = false;
        cfg->drain_timeout = 30;
        cfg->workers = 1;
        return cfg;
}

static struct config_listener *config_new_listener(const struct config_parser *p,
                                                   const char *name, int line)
{
        struct config_listener *l = xcalloc(1, sizeof(*l));

        l->name = xstrdup(name);
        l->line = line;
        l->accept_tls = CONFIG_TLS_STARTTLS;
        l->require_tls = true;
        l->forward_tls = CONFIG_TLS_NONE;
        l->client_identity = CONFIG_IDENTITY_NONE;
        l->client_name_lookup = false;
        l->hostname = xstrdup(p->hostname);
        l->forward_ca = xstrdup(CONFIG_DEFAULT_CA);
        l->forward_verify = CONFIG_VERIFY_YES;
        l->max_sessions = 1000;
        l->max_per_client = 20;
        l->max_line = 512;
        l->max_text_line = 1000;
        l->timeout_greeting = 60;
        l->timeout_command = 300;
        l->timeout_handshake = 30;
        l->timeout_data = 180;
        l->timeout_idle = 60;
        l->timeout_final = 600;
        l->probe_interval = 300;
        l->default_level = POLICY_LEVEL_ENCRYPT;
        l->learned_max_age = 30;
        return l;
}

/* ---- values ---- */

static int config_parse_bool(const char *v, bool *out)
{
        static const char *const yes[] = {"yes", "true", "1", "on"};
        static const char *const no[] = {"no", "false", "0", "off"};
        size_t i;

        for (i = 0; i < UTIL_ARRAY_LEN(yes); i++) {
                if (strcasecmp(v, yes[i]) == 0) {
                        *out = true;
                        return 0;
                }
                if (strcasecmp(v, no[i]) == 0) {
                        *out = false;
                        return 0;
                }
        }
        return -1;
}

static int config_parse_uint(const char *v, unsigned long *out)
{
        char *end;

        if (*v < '0' || *v > '9')
                return -1;
        errno = 0;
        *out = strtoul(v, &end, 10);
        if (errno != 0 || *end != '\0')
                return -1;
        return 0;
}

static int config_parse_enum(const char *v, const char *const *names, size_t n,
                             const unsigned *values, unsigned *out)
{
        size_t i;

        for (i = 0; i < n; i++) {
                if (strcasecmp(v, names[i]) == 0) {
                        *out = values[i];
                        return 0;
                }
        }
        return -1;
}

/* log_level_parse(), but like every other word here, in any case. */
static int config_parse_log_level(const char *v, enum log_level *out)
{
        char lower[16];
        size_t i;

        for (i = 0; v[i] != '\0' && i + 1 < sizeof(lower); i++)
                lower[i] = (char)tolower((unsigned char)v[i]);
        if (v[i] != '\0')
                return -1;
        lower[i] = '\0';
        return log_level_parse(lower, out);
}

/* workers = auto: the CPUs this process may run on (taskset, cpusets), 1..max. */
static unsigned config_cpus(void)
{
        cpu_set_t set;
        long n = 0;

        if (sched_getaffinity(0, sizeof(set), &set) == 0)
                n = CPU_COUNT(&set);
        if (n <= 0)
                n = sysconf(_SC_NPROCESSORS_ONLN);
        if (n <= 0)
                n = 1;
        return n > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (unsigned)n;
}

/* Letters, digits, '-', '.' and '_': something safe to print in a greeting. */
static bool config_valid_hostname(const char *v)
{
        size_t i, n = strlen(v);

        if (n == 0 || n > 253)
                return false;
        for (i = 0; i < n; i++) {
                char c = v[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
                        return false;
        }
        return true;
}

/* Listener names go to logs and alerts unescaped. */
static bool config_valid_name(const char *v)
{
        return config_valid_hostname(v) && strlen(v) <= CONFIG_MAX_SECTION;
}

static bool config_valid_hostport(const char *v, bool need_host)
{
        char host[CONFIG_MAX_HOST];
        unsigned port;

        if (util_split_hostport(v, host, sizeof(host), &port) != 0)
                return false;
        return !need_host || host[0] != '\0';
}

static void config_set_str(char **field, const char *v)
{
        free(*field);
        *field = xstrdup(v);
}

/* One word of a list value is good (listen, proxy_from, cert and key). */
static bool config_word_hostport(const char *w)
{
        return config_valid_hostport(w, false);
}

static bool config_word_net(const char *w)
{
        struct util_net net;

        return util_net_parse(w, &net) == 0;
}

static bool config_word_path(const char *w)
{
        (void)w;
        return true;
}

/*
 * How many words a list value has (blanks or commas between, util_list_next()):
 * -1 if one is too long (PATH_MAX) or not good.
 */
static int config_count_words(const char *v, bool (*good)(const char *))
{
        char one[PATH_MAX];
        int n = 0, r;

        while ((r = util_list_next(&v, one, sizeof(one))) == 1 && good(one))
                n++;
        return r == 0 ? n : -1;
}

/* How many paths a cert or key line names: -1 if one is too long. */
static int config_count_files(const char *v)
{
        return config_count_words(v, config_word_path);
}

static void config_set_value(struct config_parser *p, const struct config_key *k,
                             void *base, const char *v)
{
        static const unsigned accept_values[] = {CONFIG_TLS_STARTTLS, CONFIG_TLS_IMPLICIT,
                                                 CONFIG_TLS_NONE};
        static const char *const accept_names[] = {"starttls", "implicit", "none"};
        static const unsigned forward_values[] = {CONFIG_TLS_NONE, CONFIG_TLS_STARTTLS,
                                                  CONFIG_TLS_IMPLICIT, CONFIG_TLS_POLICY};
        static const char *const forward_names[] = {"none", "starttls", "implicit",
                                                    "policy"};
        static const unsigned identity_values[] = {
            CONFIG_IDENTITY_NONE, CONFIG_IDENTITY_XCLIENT, CONFIG_IDENTITY_PROXY};
        static const unsigned verify_values[] = {CONFIG_VERIFY_DANE,
                                                 CONFIG_VERIFY_DANE_ONLY};
        char *field = (char *)base + k->offset;
        unsigned long n;
        unsigned e;
        bool b;

        if (*v == '\0') {
                config_error(p, p->line, "%s: empty value", k->name);
                return;
        }
        switch (k->type) {
        case CONFIG_T_STR:
                config_set_str((char **)(void *)field, v);
                return;
        case CONFIG_T_ABSPATH:
                /* Run or written after start-up, from "/": never relative. */
                if (v[0] != '/') {
                        config_error(p, p->line,
                                     "%s: expected an absolute path, got '%s'", k->name,
                                     v);
                        return;
                }
                config_set_str((char **)(void *)field, v);
                return;
        case CONFIG_T_NETS: {
                int words = config_count_words(v, config_word_net);

                if (words < 1 || words > CONFIG_MAX_PROXY_FROM) {
                        config_error(p, p->line,
                                     "%s: expected addresses or networks (192.0.2.0/24, "
                                     "2001:db8::/32; up to %d, separated by blanks or "
                                     "commas), got '%s'",
                                     k->name, CONFIG_MAX_PROXY_FROM, v);
                        return;
                }
                config_set_str((char **)(void *)field, v);
                return;
        }
        case CONFIG_T_ADDRESS:
                if (!util_is_address(v)) {
                        config_error(p, p->line,
                                     "%s: expected an IPv4 or IPv6 address, got '%s'",
                                     k->name, v);
                        return;
                }
                config_set_str((char **)(void *)field, v);
                return;
        case CONFIG_T_HOSTNAME:
                if (!config_valid_hostname(v)) {
                        config_error(p, p->line, "%s: '%s' is not a valid host name",
                                     k->name, v);
                        return;
                }
                config_set_str((char **)(void *)field, v);
                return;
        case CONFIG_T_BOOL:
                if (config_parse_bool(v, &b) != 0) {
                        config_error(p, p->line, "%s: expected yes or no, got '%s'",
                                     k->name, v);
                        return;
                }
                *(bool *)(void *)field = b;
                return;
        case CONFIG_T_VERIFY:
                if (config_parse_bool(v, &b) == 0) {
                        e = b ? CONFIG_VERIFY_YES : CONFIG_VERIFY_NO;
                } else if (config_parse_enum(v, config_verify_names + 2, 2, verify_values,
                                             &e) != 0) {
                        config_error(p, p->line,
                                     "%s: expected yes, no, dane or dane-only, got '%s'",
                                     k->name, v);
                        return;
                }
                *(enum config_verify *)(void *)field = (enum config_verify)e;
                return;
        case CONFIG_T_UINT:
                if (config_parse_uint(v, &n) != 0) {
                        config_error(p, p->line, "%s: expected a number, got '%s'",
                                     k->name, v);
                        return;
                }
                if (n < k->min || n > k->max) {
                        config_error(p, p->line, "%s: must be from %u to %u, got '%s'",
                                     k->name, k->min, k->max, v);
                        return;
                }
                *(unsigned *)(void *)field = (unsigned)n;
                return;
        case CONFIG_T_ACCEPT_TLS:
                if (config_parse_enum(v, accept_names, UTIL_ARRAY_LEN(accept_names),
                                      accept_values, &e) != 0) {
                        config_error(p, p->line,
                                     "%s: expected starttls, implicit or none, got '%s'",
                                     k->name, v);
                        return;
                }
                *(enum config_tls *)(void *)field = (enum config_tls)e;
                return;
        case CONFIG_T_FORWARD_TLS:
                if (config_parse_enum(v, forward_names, UTIL_ARRAY_LEN(forward_names),
                                      forward_values, &e) != 0) {
                        config_error(
                            p, p->line,
                            "%s: expected none, starttls, implicit or policy, got '%s'",
                            k->name, v);
                        return;
                }
                *(enum config_tls *)(void *)field = (enum config_tls)e;
                return;
        case CONFIG_T_IDENTITY:
                if (config_parse_enum(v, config_identity_names,
                                      UTIL_ARRAY_LEN(config_identity_names),
                                      identity_values, &e) != 0) {
                        config_error(p, p->line,
                                     "%s: expected none, xclient or proxy, got '%s'",
                                     k->name, v);
                        return;
                }
                *(enum config_identity *)(void *)field = (enum config_identity)e;
                return;
        case CONFIG_T_LISTEN: {
                int words = config_count_words(v, config_word_hostport);

                if (words < 1 || words > CONFIG_MAX_LISTEN) {
                        config_error(
                            p, p->line,
                            "%s: expected host:port (up to %d, separated by blanks or "
                            "commas), got '%s'",
                            k->name, CONFIG_MAX_LISTEN, v);
                        return;
                }
                config_set_str((char **)(void *)field, v);
                return;
        }
        case CONFIG_T_FILES:
                if (config_count_files(v) < 1 ||
                    config_count_files(v) > CONFIG_MAX_CERTS) {
                        config_error(p, p->line,
                                     "%s: expected 1 to %d files, separated by blanks or "
                                     "commas, got '%s'",
                                     k->name, CONFIG_MAX_CERTS, v);
                        return;
                }
                /* Again: the paths of every line, in order. */
                if (*(char **)(void *)field != NULL) {
                        char *old = *(char **)(void *)field, *all;
                        size_t len = strlen(old) + 1 + strlen(v) + 1;

                        all = xmalloc(len);
                        snprintf(all, len, "%s %s", old, v);
                        if (config_count_files(all) > CONFIG_MAX_CERTS)
                                config_error(p, p->line,
                                             "%s: more than %d files in all, with this "
                                             "line's",
                                             k->name, CONFIG_MAX_CERTS);
                        else
                                config_set_str((char **)(void *)field, all);
                        free(all);
                        return;
                }
                config_set_str((char **)(void *)field, v);
                return;
        case CONFIG_T_FORWARD:
                if (strcmp(v, CONFIG_ORIGINAL_DST) == 0) {
                        config_set_str((char **)(void *)field, v);
                        return;
                }
                if (!config_valid_hostport(v, true)) {
                        config_error(p, p->line,
                                     "%s: expected host:port or " CONFIG_ORIGINAL_DST
                                     ", got '%s'",
                                     k->name, v);
                        return;
                }
                config_set_str((char **)(void *)field, v);
                return;
        case CONFIG_T_LOG_LEVEL:
                if (config_parse_log_level(v, (enum log_level *)(void *)field) != 0)
                        config_error(p, p->line,
                                     "%s: expected err, warning, info or debug, got '%s'",
                                     k->name, v);
                return;
        case CONFIG_T_LEVEL: {
                enum policy_level level;

                if (policy_level_parse(v, &level) != 0)
                        config_error(p, p->line,
                                     "%s: expected none, may, encrypt, dane, dane-only, "
                                     "verify or secure, got '%s'",
                                     k->name, v);
                else
                        *(unsigned *)(void *)field = level;
                return;
        }
        case CONFIG_T_WORKERS:
                if (strcasecmp(v, "auto") == 0) {
                        *(unsigned *)(void *)field = config_cpus();
                        ((struct config *)base)->workers_auto = true;
                        return;
                }
                if (config_parse_uint(v, &n) != 0 || n < k->min || n > k->max) {
                        config_error(
                            p, p->line,
                            "%s: expected auto or a number from %u to %u, got '%s'",
                            k->name, k->min, k->max, v);
                        return;
                }
                *(unsigned *)(void *)field = (unsigned)n;
                return;
        case CONFIG_T_LOG_DEST:
                if (strcasecmp(v, "stderr") == 0)
                        *(bool *)(void *)field = false;
                else if (strcasecmp(v, "syslog") == 0)
                        *(bool *)(void *)field = true;
                else
                        config_error(p, p->line,
                                     "%s: expected stderr or syslog, got '%s'", k->name,
                                     v);
                return;
        }
        fatalx("config: key type %d", (int)k->type);
}

/* The inih handler: one name = value in the current section occurrence. */
static int config_handler(void *user, const char *section, const char *name,
                          const char *value)
{
        struct config_parser *p = user;
        struct config_section *s = p->cur;
        const struct config_key *keys;
        size_t i, n;
        const char *sname;
        void *base;

        (void)section; /* p->cur tells duplicates apart; the name does not */
        if (s == NULL) {
                config_error(p, p->line, "key '%s' outside of any section", name);
                return 1;
        }
        if (s->global) {
                keys = config_global_keys;
                n = UTIL_ARRAY_LEN(config_global_keys);
                base = s->cfg;
                sname = CONFIG_GLOBAL_SECTION;
        } else {
                keys = config_listener_keys;
                n = UTIL_ARRAY_LEN(config_listener_keys);
                base = s->listener;
                sname = s->listener->name;
        }
        for (i = 0; i < n; i++) {
                if (strcmp(keys[i].name, name) == 0)
                        break;
        }
        if (i == n) {
                config_error(p, p->line, "unknown key '%s' in [%s]", name, sname);
                return 1;
        }
        /* cert and key may come again: one line cannot hold 16 paths. */
        if (s->seen[i] != 0 && keys[i].type != CONFIG_T_FILES) {
                config_error(p, p->line, "duplicate key '%s' in [%s] (first on line %d)",
                             name, sname, s->seen[i]);
                return 1;
        }
        /* A key and its other name (forward_ca, ca_file) set one field. */
        for (size_t j = 0; j < n; j++) {
                if (j != i && keys[j].offset == keys[i].offset && s->seen[j] != 0) {
                        config_error(p, p->line,
                                     "duplicate key '%s' in [%s] (first on line %d, as "
                                     "'%s')",
                                     name, sname, s->seen[j], keys[j].name);
                        return 1;
                }
        }
        if (s->seen[i] == 0)
                s->seen[i] = p->line;
        if (s->global && strcmp(name, "user") == 0)
                s->cfg->user_line = p->line;
        else if (s->global && strcmp(name, "alert_command") == 0)
                s->cfg->alert_command_line = p->line;
        config_set_value(p, &keys[i], base, value);
        return 1;
}

/* ---- the reader: lines, section headers, syntax ---- */

/* inih's find_chars_or_comment(): the first of chars, or an inline comment. */
static const char *config_find_chars_or_comment(const char *s, const char *chars)
{
        bool was_space = false;

        while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
               !(was_space && strchr(CONFIG_INLINE_COMMENTS, *s) != NULL)) {
                was_space = *s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' ||
                            *s == '\f' || *s == '\v';
                s++;
        }
        return s;
}

static bool config_blank(const char *s)
{
        return *s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '\f' ||
               *s == '\v';
}

static struct config_section *config_find_section(const struct config_parser *p,
                                                  const char *name, bool global)
{
        struct config_section *s;

        for (s = p->sections; s != NULL; s = s->next) {
                if (!s->keep || s->global != global)
                        continue;
                if (global || strcmp(s->listener->name, name) == 0)
                        return s;
        }
        return NULL;
}

/* A section header line (starting with '['): start a new section occurrence. */
static void config_section_start(struct config_parser *p, const char *line)
{
        struct config_section *s = xcalloc(1, sizeof(*s)), *first;
        const char *end = config_find_chars_or_comment(line + 1, "]");
        char *name;
        bool keep = true;

        s->line = p->line;
        if (*end != ']') {
                config_error(p, p->line, "syntax error: section header without ']'");
                name = xstrdup("");
                keep = false;
        } else {
                name = xstrndup(line + 1, (size_t)(end - line - 1));
                end = config_find_chars_or_comment(end + 1, NULL);
                while (config_blank(end - 1) && end - 1 > line)
                        end--;
                if (end[-1] != ']') {
                        config_error(p, p->line,
                                     "syntax error: text after section header");
                        keep = false;
                }
        }
        s->global = strcmp(name, CONFIG_GLOBAL_SECTION) == 0;
        if (keep && !s->global && !config_valid_name(name)) {
                config_error(
                    p, p->line,
                    "listener name '%s': use 1 to %d letters, digits, '-', '.' or '_'",
                    name, CONFIG_MAX_SECTION);
                keep = false;
        }
        if (keep && (first = config_find_section(p, name, s->global)) != NULL) {
                if (s->global)
                        config_error(p, p->line,
                                     "duplicate section [%s] (first on line %d)", name,
                                     first->line);
                else
                        config_error(p, p->line,
                                     "duplicate listener [%s] (first on line %d)", name,
                                     first->line);
                keep = false;
        }
        s->keep = keep;
        if (s->global) {
                s->cfg = keep ? p->cfg : config_new_global();
        } else {
                s->listener = config_new_listener(p, name, p->line);
                if (keep) {
                        *p->listeners_tail = s->listener;
                        p->listeners_tail = &s->listener->next;
                }
        }
        free(name);
        *p->sections_tail = s;
        p->sections_tail = &s->next;
        p->cur = s;
}

/*
 * Check one line (leading blanks stripped) the way inih will see it, and
 * follow section headers. Comments and blank lines pass; a header needs its
 * ']'; anything else needs '=' or ':' (inih would only report the first bad
 * line and say nothing of why).
 */
static void config_check_line(struct config_parser *p, const char *line)
{
        const char *end;

        if (*line == '\0' || *line == ';' || *line == '#' || config_blank(line))
                return;
        if (*line == '[') {
                config_section_start(p, line);
                return;
        }
        end = config_find_chars_or_comment(line, "=:");
        if (*end != '=' && *end != ':')
                config_error(p, p->line, "syntax error: expected 'key = value'");
}

/*
 * An inline comment (';' or '#' after a blank) cut off before inih sees the
 * line: Debian's inih knows ';' only, and would take "# ..." into the value.
 * A line that starts with either is a comment line, which inih skips.
 */
static void config_strip_comment(char *line)
{
        char *c = (char *)config_find_chars_or_comment(line, NULL);

        if (*c != '\0') {
                c[0] = '\n';
                c[1] = '\0';
        }
}

/* The ini_reader: one whole line per call, leading blanks stripped, inline
 * comments cut off. */
static char *config_reader(char *str, int num, void *stream)
{
        struct config_parser *p = stream;
        size_t len, skip = 0;
        int c;

        if (fgets(str, num, p->in) == NULL)
                return NULL;
        p->line = p->next_line++;
        len = strlen(str);
        if (len > 0 && str[len - 1] != '\n' && len + 1 == (size_t)num) {
                c = getc(p->in);
                if (c == '\r') /* a CR LF line end counts no more than LF */
                        c = getc(p->in);
                if (c != EOF && c != '\n') {
                        /* inih would cut the line in two: refuse it instead. */
                        while (c != EOF && c != '\n')
                                c = getc(p->in);
                        config_error(p, p->line,
                                     "line too long (the limit is %d characters)",
                                     num - 1);
                        str[0] = '\n';
                        str[1] = '\0';
                        return str;
                }
        }
        if (p->line == 1 && strncmp(str, "\xef\xbb\xbf", 3) == 0)
                skip = 3;
        while (skip < len && (str[skip] == ' ' || str[skip] == '\t'))
                skip++;
        memmove(str, str + skip, len - skip + 1);
        config_strip_comment(str);
        config_check_line(p, str);
        return str;
}

/* ---- rules that need the whole section ---- */

static int config_seen(const struct config_section *s, const char *key)
{
        size_t i;

        for (i = 0; i < UTIL_ARRAY_LEN(config_listener_keys); i++) {
                if (strcmp(config_listener_keys[i].name, key) == 0)
                        return s->seen[i];
        }
        fatalx("config: no key %s", key);
}

static void config_check_listener(struct config_parser *p, const struct config_section *s)
{
        const struct config_listener *l = s->listener;
        bool forward_dst =
            l->forward != NULL && strcmp(l->forward, CONFIG_ORIGINAL_DST) == 0;

        if (l->listen == NULL && config_seen(s, "listen") == 0)
                config_error(p, s->line, "[%s]: missing 'listen'", l->name);
        if (l->forward == NULL && config_seen(s, "forward") == 0)
                config_error(p, s->line, "[%s]: missing 'forward'", l->name);
        if (l->accept_tls != CONFIG_TLS_NONE) {
                if (l->cert == NULL && config_seen(s, "cert") == 0)
                        config_error(
                            p, s->line,
                            "[%s]: missing 'cert' (required unless accept_tls = none)",
                            l->name);
                if (l->key == NULL && config_seen(s, "key") == 0)
                        config_error(
                            p, s->line,
                            "[%s]: missing 'key' (required unless accept_tls = none)",
                            l->name);
        }
        if (l->cert != NULL && l->key != NULL &&
            config_count_files(l->cert) != config_count_files(l->key))
                config_error(p, config_seen(s, "key"),
                             "[%s]: cert names %d file%s and key %d: a key for each "
                             "certificate, in the same order",
                             l->name, config_count_files(l->cert),
                             config_count_files(l->cert) == 1 ? "" : "s",
                             config_count_files(l->key));
        if (l->require_tls && l->accept_tls == CONFIG_TLS_NONE) {
                int line = config_seen(s, "require_tls");

                config_error(p, line ? line : config_seen(s, "accept_tls"),
                             "require_tls = yes needs accept_tls starttls or implicit");
        }
        if (l->forward_tls == CONFIG_TLS_POLICY && l->forward != NULL && !forward_dst)
                config_error(p, config_seen(s, "forward_tls"),
                             "forward_tls = policy needs forward = " CONFIG_ORIGINAL_DST);
        if (forward_dst && l->forward_tls != CONFIG_TLS_POLICY)
                config_error(p, config_seen(s, "forward"),
                             "forward = " CONFIG_ORIGINAL_DST
                             " needs forward_tls = policy");
        if (l->forward_tls == CONFIG_TLS_POLICY && l->accept_tls != CONFIG_TLS_NONE)
                config_error(p, config_seen(s, "forward_tls"),
                             "forward_tls = policy needs accept_tls = none (an outbound "
                             "listener takes the local MTA's plaintext)");
        if (l->policy != NULL && l->forward_tls != CONFIG_TLS_POLICY)
                config_error(p, config_seen(s, "policy"),
                             "policy is used only with forward_tls = policy");
        if (l->mta_sts && l->forward_tls != CONFIG_TLS_POLICY)
                config_error(p, config_seen(s, "mta_sts"),
                             "mta_sts is used only with forward_tls = policy");
        if (l->tlsrpt && l->forward_tls != CONFIG_TLS_POLICY)
                config_error(p, config_seen(s, "tlsrpt"),
                             "tlsrpt is used only with forward_tls = policy");
        if (l->tlsrpt_from != NULL && l->forward_tls != CONFIG_TLS_POLICY)
                config_error(p, config_seen(s, "tlsrpt_from"),
                             "tlsrpt_from is used only with forward_tls = policy");
        else if (l->tlsrpt_from != NULL &&
                 (l->tlsrpt_from[0] == '\0' || strchr(l->tlsrpt_from, '@') == NULL ||
                  strpbrk(l->tlsrpt_from, " \t<>") != NULL))
                config_error(p, config_seen(s, "tlsrpt_from"),
                             "tlsrpt_from: expected an address (local@domain), got '%s'",
                             l->tlsrpt_from);
        if (l->forward_verify >= CONFIG_VERIFY_DANE) {
                char host[CONFIG_MAX_HOST];
                unsigned port;

                if (l->forward_tls != CONFIG_TLS_STARTTLS &&
                    l->forward_tls != CONFIG_TLS_IMPLICIT)
                        config_error(p, config_seen(s, "forward_verify"),
                                     "forward_verify = %s needs forward_tls starttls or "
                                     "implicit",
                                     config_verify_str(l->forward_verify));
                else if (l->forward != NULL &&
                         util_split_hostport(l->forward, host, sizeof(host), &port) ==
                             0 &&
                         util_is_address(host))
                        config_error(p, config_seen(s, "forward_verify"),
                                     "forward_verify = %s needs forward to name a host "
                                     "(its TLSA records are looked up by name), got '%s'",
                                     config_verify_str(l->forward_verify), l->forward);
        }
        if ((config_seen(s, "forward_cert") == 0) != (config_seen(s, "forward_key") == 0))
                config_error(
                    p, config_seen(s, "forward_cert") + config_seen(s, "forward_key"),
                    "forward_cert and forward_key go together");
        /* Not outbound: every MX (and MTA-STS host) that asks would get it. */
        if (l->forward_cert != NULL && l->forward_tls != CONFIG_TLS_STARTTLS &&
            l->forward_tls != CONFIG_TLS_IMPLICIT)
                config_error(p, config_seen(s, "forward_cert"),
                             "forward_cert is used only with forward_tls starttls or "
                             "implicit (a smarthost)");
        if (l->accept_proxy && l->proxy_from == NULL && config_seen(s, "proxy_from") == 0)
                config_error(p, config_seen(s, "accept_proxy"),
                             "accept_proxy = yes needs proxy_from (the load balancers' "
                             "addresses: anyone else could name any client)");
        if (l->proxy_from != NULL && !l->accept_proxy)
                config_error(p, config_seen(s, "proxy_from"),
                             "proxy_from is used only with accept_proxy = yes");
        if (l->accept_proxy && l->forward_tls == CONFIG_TLS_POLICY)
                config_error(
                    p, config_seen(s, "accept_proxy"),
                    "accept_proxy is for listeners that clients reach through a "
                    "load balancer, not for outbound ones (forward_tls = policy)");
        if (l->relayhost != NULL && l->forward_tls != CONFIG_TLS_POLICY)
                config_error(p, config_seen(s, "relayhost"),
                             "relayhost is used only with forward_tls = policy");
        else if (l->relayhost != NULL && util_is_address(l->relayhost))
                config_error(p, config_seen(s, "relayhost"),
                             "relayhost: a host name, not an address (DANE and verify "
                             "need the name), got '%s'",
                             l->relayhost);
}

/* Settings a running daemon takes from a configuration read again (SIGHUP). */
static const char *const config_hot_keys[] = {
    "log_level",
    "cert",
    "key",
    "forward_ca",
    "forward_cert",
    "forward_key",
    "policy",
    "default_level",
    "learned_max_age",
    "tlsrpt_from",
    "hostname",
    "max_sessions",
    "max_per_client",
    "proxy_from",
    "max_line",
    "max_text_line",
    "timeout_greeting",
    "timeout_command",
    "timeout_handshake",
    "timeout_data",
    "timeout_idle",
    "timeout_final",
    "probe_interval",
};

static bool config_is_hot(const char *key)
{
        for (size_t i = 0; i < UTIL_ARRAY_LEN(config_hot_keys); i++) {
                if (strcmp(config_hot_keys[i], key) == 0)
                        return true;
        }
        return false;
}

static bool config_field_pointer(enum config_type t)
{
        return t == CONFIG_T_STR || t == CONFIG_T_ABSPATH || t == CONFIG_T_HOSTNAME ||
               t == CONFIG_T_LISTEN || t == CONFIG_T_FORWARD || t == CONFIG_T_ADDRESS ||
               t == CONFIG_T_FILES || t == CONFIG_T_NETS;
}

/* Whether key k's field differs between a and b (structures of its table). */
static bool config_field_differs(const struct config_key *k, const void *a, const void *b)
{
        const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;

        if (config_field_pointer(k->type)) {
                const char *sa = *(char *const *)(const void *)fa;
                const char *sb = *(char *const *)(const void *)fb;

                return (sa == NULL) != (sb == NULL) ||
                       (sa != NULL && sb != NULL && strcmp(sa, sb) != 0);
        }
        if (k->type == CONFIG_T_BOOL || k->type == CONFIG_T_LOG_DEST)
                return *(const bool *)(const void *)fa != *(const bool *)(const void *)fb;
        /* Every other field is an unsigned or an enum of its size. */
        return memcmp(fa, fb, sizeof(unsigned)) != 0;
}

static void config_field_copy(const struct config_key *k, void *to, const void *from)
{
        char *ft = (char *)to + k->offset;
        const char *ff = (const char *)from + k->offset;

        if (config_field_pointer(k->type)) {
                char **dst = (char **)(void *)ft;
                const char *src = *(char *const *)(const void *)ff;

                free(*dst);
                *dst = src != NULL ? xstrdup(src) : NULL;
        } else if (k->type == CONFIG_T_BOOL || k->type == CONFIG_T_LOG_DEST) {
                *(bool *)(void *)ft = *(const bool *)(const void *)ff;
        } else {
                memcpy(ft, ff, sizeof(unsigned));
        }
}

static void config_list_add(char *out, size_t outlen, const char *listener,
                            const char *key)
{
        size_t n = strlen(out);

        if (listener != NULL)
                snprintf(out + n, outlen - n, "%s[%s] %s", n ? " " : "", listener, key);
        else
                snprintf(out + n, outlen - n, "%s%s", n ? " " : "", key);
}

/* Every key of one table, between the structures a (running) and b (read). */
static void config_apply_table(const struct config_key *keys, size_t nkeys, void *a,
                               const void *b, const char *listener, char *applied,
                               size_t appliedlen, char *restart, size_t restartlen)
{
        for (size_t i = 0; i < nkeys; i++) {
                const struct config_key *k = &keys[i];

                /* An alias (ca_file) of a field seen before. */
                if (i > 0 && k->offset == keys[i - 1].offset)
                        continue;
                if (!config_field_differs(k, a, b))
                        continue;
                if (config_is_hot(k->name) ||
                    (listener != NULL &&
                     (strcmp(k->name, "forward") == 0 ||
                      strcmp(k->name, "forward_source") == 0) &&
                     config_forward_hot(a) && config_forward_hot(b))) {
                        config_field_copy(k, a, b);
                        config_list_add(applied, appliedlen, listener, k->name);
                } else {
                        config_list_add(restart, restartlen, listener, k->name);
                }
        }
}

bool config_forward_hot(const struct config_listener *l)
{
        return l->forward_tls == CONFIG_TLS_NONE && l->forward != NULL &&
               strcmp(l->forward, CONFIG_ORIGINAL_DST) != 0;
}

void config_apply_hot(struct config *cfg, const struct config *next, char *applied,
                      size_t appliedlen, char *restart, size_t restartlen)
{
        struct config_listener *l;
        const struct config_listener *n;

        applied[0] = restart[0] = '\0';
        config_apply_table(config_global_keys, UTIL_ARRAY_LEN(config_global_keys), cfg,
                           next, NULL, applied, appliedlen, restart, restartlen);
        for (l = cfg->listeners; l != NULL; l = l->next) {
                for (n = next->listeners; n != NULL && strcmp(n->name, l->name) != 0;
                     n = n->next)
                        ;
                if (n == NULL)
                        config_list_add(restart, restartlen, l->name, "(removed)");
                else
                        config_apply_table(
                            config_listener_keys, UTIL_ARRAY_LEN(config_listener_keys), l,
                            n, l->name, applied, appliedlen, restart, restartlen);
        }
        for (n = next->listeners; n != NULL; n = n->next) {
                for (l = cfg->listeners; l != NULL && strcmp(n->name, l->name) != 0;
                     l = l->next)
                        ;
                if (l == NULL)
                        config_list_add(restart, restartlen, n->name, "(added)");
        }
}

static void config_parser_cleanup(struct config_parser *p)
{
        struct config_section *s, *next;

        for (s = p->sections; s != NULL; s = next) {
                next = s->next;
                if (!s->keep) {
                        if (s->global)
                                config_free(s->cfg);
                        else
                                config_listener_free(s->listener);
                }
                free(s);
        }
        p->sections = NULL;
}

/*
 * Two listen addresses ("host:port") that cannot both be bound: the same
 * port and the same address; or an IPv4 one and the IPv4 wildcard (0.0.0.0,
 * or an empty host, which mailward binds as 0.0.0.0); or anything and the
 * IPv6 wildcard "::", which takes IPv4 too (no IPV6_V6ONLY).
 */
static bool config_listen_clash(const char *a, const char *b)
{
        char ha[CONFIG_MAX_HOST_PORT], hb[CONFIG_MAX_HOST_PORT];
        unsigned pa, pb;
        unsigned char xa[16], xb[16], zero[16] = {0};
        int fa, fb;

        if (util_split_hostport(a, ha, sizeof(ha), &pa) != 0 ||
            util_split_hostport(b, hb, sizeof(hb), &pb) != 0 || pa != pb)
                return false;
        if (strcasecmp(ha, hb) == 0)
                return true;
        fa = ha[0] == '\0'                      ? AF_INET
             : inet_pton(AF_INET, ha, xa) == 1  ? AF_INET
             : inet_pton(AF_INET6, ha, xa) == 1 ? AF_INET6
                                                : 0;
        fb = hb[0] == '\0'                      ? AF_INET
             : inet_pton(AF_INET, hb, xb) == 1  ? AF_INET
             : inet_pton(AF_INET6, hb, xb) == 1 ? AF_INET6
                                                : 0;
        if (ha[0] == '\0')
                memset(xa, 0, 4);
        if (hb[0] == '\0')
                memset(xb, 0, 4);
        if (fa == 0 || fb == 0) /* a host name: only the same name is known to clash */
                return false;
        if ((fa == AF_INET6 && memcmp(xa, zero, 16) == 0) ||
            (fb == AF_INET6 && memcmp(xb, zero, 16) == 0))
                return true;
        if (fa != fb)
                return false;
        if (fa == AF_INET)
                return memcmp(xa, xb, 4) == 0 || memcmp(xa, zero, 4) == 0 ||
                       memcmp(xb, zero, 4) == 0;
        return memcmp(xa, xb, 16) == 0;
}

/* Every listen address of every listener against those after it: a clash
 * would pass the check and fail the start ("Address already in use"). */
static void config_check_listens(struct config_parser *p)
{
        char one[CONFIG_MAX_HOST_PORT], two[CONFIG_MAX_HOST_PORT];

        for (struct config_section *s = p->sections; s != NULL; s = s->next) {
                const char *it;

                if (s->global || !s->keep || s->listener->listen == NULL)
                        continue;
                it = s->listener->listen;
                while (util_list_next(&it, one, sizeof(one)) == 1) {
                        const char *it2 = it; /* the rest of this listener's */

                        for (struct config_section *t = s; t != NULL; t = t->next) {
                                if (t->global || !t->keep || t->listener->listen == NULL)
                                        continue;
                                if (t != s)
                                        it2 = t->listener->listen;
                                while (util_list_next(&it2, two, sizeof(two)) == 1) {
                                        if (config_listen_clash(one, two))
                                                config_error(
                                                    p, config_seen(t, "listen"),
                                                    "[%s] listen %s: [%s] listens "
                                                    "on %s already",
                                                    t->listener->name, two,
                                                    s->listener->name, one);
                                }
                        }
                }
        }
}

struct config *config_load(const char *path, FILE *errs)
{
        struct config_parser p;
        struct config_section *s;
        int r;

        memset(&p, 0, sizeof(p));
        p.path = path;
        p.errs = errs;
        p.next_line = 1;
        p.sections_tail = &p.sections;
        p.in = fopen(path, "r");
        if (p.in == NULL) {
                config_error(&p, 0, "cannot open: %s", strerror(errno));
                return NULL;
        }
        if (gethostname(p.hostname, sizeof(p.hostname) - 1) != 0 || p.hostname[0] == '\0')
                strcpy(p.hostname, "localhost");
        p.cfg = config_new_global();
        p.cfg->path = xstrdup(path);
        p.listeners_tail = &p.cfg->listeners;

        r = ini_parse_stream(config_reader, &p, config_handler, &p);
        if (ferror(p.in))
                config_error(&p, 0, "read error: %s", strerror(errno));
        fclose(p.in);
        if (r == -2)
                fatalx("config: inih out of memory");
        if (r > 0 && p.errors == 0)
                config_error(&p, r, "syntax error"); /* inih saw what we did not */

        for (s = p.sections; s != NULL; s = s->next) {
                if (!s->global && s->keep)
                        config_check_listener(&p, s);
        }
        config_check_listens(&p);
        if (p.cfg->listeners == NULL)
                config_error(&p, 0, "no listener defined");

        config_parser_cleanup(&p);
        if (p.errors != 0) {
                config_free(p.cfg);
                return NULL;
        }
        return p.cfg;
}
