/*
 * config: the INI configuration file (parsed with inih), checked as a whole.
 *
 * [mailward] holds global settings; every other section is a listener named by
 * its section. config_load() reads a file, fills in defaults, checks every
 * value and every cross-setting rule, and reports each problem as
 * "file:line: message" (the line of the offending key, or of the section
 * header for a missing key) on the FILE given. It does not open sockets, resolve
 * host names or read certificates: those belong to start-up.
 *
 * The returned struct config is owned by the caller: config_free() it.
 */
#ifndef MAILWARD_CONFIG_H
#define MAILWARD_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "log.h"

enum config_tls {
        CONFIG_TLS_NONE,
        CONFIG_TLS_STARTTLS,
        CONFIG_TLS_IMPLICIT,
        CONFIG_TLS_POLICY, /* forward_tls only: decided per domain (outbound) */
};

/* forward_verify: how the backend's certificate is checked (forward_tls
 * starttls or implicit). */
enum config_verify {
        CONFIG_VERIFY_NO,
        CONFIG_VERIFY_YES,       /* trusted by forward_ca, names the forward host */
        CONFIG_VERIFY_DANE,      /* its TLSA records when validated, else as yes */
        CONFIG_VERIFY_DANE_ONLY, /* its TLSA records, validated, or no session */
};

enum config_identity {
        CONFIG_IDENTITY_NONE,
        CONFIG_IDENTITY_XCLIENT,
        CONFIG_IDENTITY_PROXY, /* PROXY protocol v2 */
};

#define CONFIG_MAX_LISTEN     8   /* addresses in one listener's listen */
#define CONFIG_MAX_CERTS      16  /* certificates (and keys) of one listener */
#define CONFIG_MAX_PROXY_FROM 32  /* networks in one listener's proxy_from */
#define CONFIG_MAX_HOST_PORT  300 /* one "host:port" or "[v6]:port" */

struct config_listener {
        char *name; /* section name */
        int line;   /* line of the section header */
        /* "host:port" as written; several (up to CONFIG_MAX_LISTEN), separated
         * by blanks or commas (util_list_next()), for IPv4 and IPv6 */
        char *listen;
        enum config_tls accept_tls;
        bool require_tls;
        /* PEM files, required when accept_tls != none: one certificate and
         * its key, or two (ECDSA and RSA, in either order, a key for each in
         * the same order), separated by blanks or commas (util_list_nth()) */
        char *cert, *key;
        char *forward; /* "host:port" as written */
        enum config_tls forward_tls;
        enum config_identity client_identity;
        /* xclient: look up the client's host name (PTR, confirmed by the
         * name's addresses) for XCLIENT's NAME=, as Postfix would. (no) */
        bool client_name_lookup;
        char *hostname;   /* name in our greeting; default: the system's */
        char *forward_ca; /* CA file for forward_tls; default system bundle */
        /* A certificate and key shown to a server side that asks for one
         * (forward_tls); NULL: none. */
        char *forward_cert, *forward_key;
        enum config_verify forward_verify; /* the backend's certificate (default yes) */
        /* The address connections to forward are made from (an address of
         * this host; connections to the other family are made unbound);
         * NULL: the system chooses. */
        char *forward_source;
        /* Outbound (forward_tls = policy). */
        char *policy;             /* policy table (lib/policy.h); NULL: none */
        unsigned default_level;   /* enum policy_level for unlisted domains; encrypt */
        unsigned learned_max_age; /* days a learned TLS record holds; 0: off; 30 */
        bool mta_sts;             /* apply recipient domains' MTA-STS policies (no) */
        bool tlsrpt; /* write TLS-RPT results to state_dir/tlsrpt (lib/tlsrpt.h) (no) */
        /* The envelope sender of TLS-RPT report mail: its transactions need TLS
         * but no certificate check (RFC 8460 section 5.3); NULL: none. */
        char *tlsrpt_from;
        /* The host the MTA relays through (Postfix's relayhost), a name: a
         * destination that is one of its addresses and no MX host of the
         * recipient domain is judged as the relay host (lib/dane.h); NULL: none. */
        char *relayhost;
        /* Connections come from a load balancer that begins each with a
         * PROXY protocol header naming the client (lib/proxyproto.h); only
         * from proxy_from: addresses and networks ("10.0.0.0/8 ::1"), up to
         * CONFIG_MAX_PROXY_FROM, separated by blanks or commas. (no; NULL) */
        bool accept_proxy;
        char *proxy_from;

        unsigned max_sessions;   /* per listener; default 1000 */
        unsigned max_per_client; /* per client address; default 20 */
        unsigned max_line;       /* command line, CRLF included; default 512, min 512 */
        unsigned max_text_line;  /* DATA line, CRLF included; default 1000, min 1000 */

        /* Seconds. */
        unsigned timeout_greeting;  /* backend greeting and setup; default 60 */
        unsigned timeout_command;   /* client command or backend reply; default 300 */
        unsigned timeout_handshake; /* TLS handshake; default 30 */
        unsigned timeout_data;      /* between DATA/BDAT reads; default 180 */
        unsigned timeout_idle;      /* whole-session idle before TLS; default 60 */
        unsigned timeout_final;     /* backend reply to end of data; default 600 */
        unsigned probe_interval;    /* backend EHLO refresh; default 300 */

        struct config_listener *next;
};

struct config {
        char *path;
        char *user;               /* default "mailward"; used only when started as root */
        bool allow_root;          /* keep running as root (default no) */
        char *alert_log;          /* JSON lines file; NULL: none */
        char *alert_command;      /* absolute; run per alert; NULL: none */
        char *metrics_file;       /* absolute; Prometheus text file; NULL: none */
        char *state_dir;          /* default /var/lib/mailward */
        enum log_level log_level; /* default info */
        bool syslog;              /* log = syslog | stderr (default stderr) */
        unsigned drain_timeout;   /* seconds; default 30 */
        unsigned workers;         /* processes serving the listeners, 1..64; default 1 */
        bool workers_auto;        /* workers = auto: the number of CPUs we may run on */
        struct config_listener *listeners;
        /* The lines user and alert_command were set on, 0 if not set: for the
         * problems mailward -t finds beyond the file's own. */
        int user_line, alert_command_line;
};

/* NULL on any error (each reported on errs as file:line: message). */
struct config *config_load(const char *path, FILE *errs);

/*
 * SIGHUP: what a running daemon takes from a configuration read again. The
 * settings that can change while it runs (log_level; per listener cert,
 * key, forward_ca, policy, default_level, learned_max_age, tlsrpt_from,
 * hostname, the limits and the timeouts) are copied from next into cfg; applied gets
 * "key" or "[listener] key" for each that changed, restart for each other
 * difference (not copied: it needs a restart), both space-separated.
 * Listeners are matched by name; one added or removed needs a restart.
 */
void config_apply_hot(struct config *cfg, const struct config *next, char *applied,
                      size_t appliedlen, char *restart, size_t restartlen);
/*
 * Whether a reload may change l's forward and forward_source (when it may
 * for the listener before and after): a backend reached in plaintext at a
 * fixed address. A TLS backend's name is checked in sessions under way,
 * and an outbound listener's destination is each connection's own.
 */
bool config_forward_hot(const struct config_listener *l);
void config_free(struct config *cfg);

const char *config_tls_str(enum config_tls t);
const char *config_identity_str(enum config_identity id);
const char *config_verify_str(enum config_verify v);

#endif
