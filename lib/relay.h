/*
 * relay: the SMTP session state machine between a client leg and a server leg.
 *
 * A struct relay_listener is the run-time side of one configured listener: its
 * TLS contexts, the backend's address, the cached backend capabilities, the
 * sessions in progress and their limits. The daemon (proxy/) owns it, accepts
 * connections on its socket and hands each to relay_accept().
 *
 * Inbound lifecycle (DESIGN.md): mailward answers the greeting, EHLO and
 * STARTTLS itself and connects to the backend only when the client first needs
 * it, after the TLS requirement is met; it then sends the PROXY v2 header or
 * XCLIENT, replays the client's EHLO, and forwards the waiting commands.
 * Replies are paired with commands by a FIFO; replies that mailward makes
 * itself wait their turn behind replies still due from the backend.
 *
 * The relay never touches sockets or TLS directly: it sees bytes through
 * struct conn. Sessions free themselves once both legs are closed; nothing is
 * freed inside a callback chain.
 */
#ifndef MAILWARD_RELAY_H
#define MAILWARD_RELAY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "alert.h"
#include "config.h"
#include "log.h"

struct tls_cert_desc;

struct uv_loop_s;
struct uv_stream_s;
struct relay_listener;

/* Why a session was refused at its greeting (a 421), for the metrics. */
enum relay_refusal {
        RELAY_REFUSED_FILES, /* out of file descriptors (fd_limit) */
        RELAY_REFUSED_MAX_SESSIONS,
        RELAY_REFUSED_PER_CLIENT,   /* max_per_client */
        RELAY_REFUSED_BALANCER_TLS, /* a PROXY header: the balancer ended TLS */
        RELAY_REFUSED_COUNT,
};

/* "file_descriptors", "max_sessions", "max_per_client", "balancer_tls". */
const char *relay_refusal_str(enum relay_refusal r);

/*
 * Client sessions that reached TLS, by TLS version and the key type of the
 * certificate served: index RELAY_TLS_INDEX(version, key), version 0 for
 * TLS 1.2 and 1.3 for 1, key RELAY_KEY_ECDSA, _RSA or _OTHER.
 */
enum relay_key { RELAY_KEY_ECDSA, RELAY_KEY_RSA, RELAY_KEY_OTHER, RELAY_KEY_COUNT };
#define RELAY_TLS_VERSIONS    2
#define RELAY_TLS_COUNT       (RELAY_TLS_VERSIONS * RELAY_KEY_COUNT)
#define RELAY_TLS_INDEX(v, k) ((v)*RELAY_KEY_COUNT + (k))
/* For index i: "TLSv1.2" or "TLSv1.3", and "ecdsa", "rsa" or "other". */
const char *relay_tls_version_str(unsigned i);
const char *relay_tls_key_str(unsigned i);

/* Counters the relay keeps for the daemon's metrics; read, never reset. */
struct relay_stats {
        uint64_t sessions_total;  /* client sessions accepted (probes not counted) */
        uint64_t sessions_active; /* of those, not yet freed */
        uint64_t messages_total;  /* messages the server side took (2xx to the end) */
        uint64_t refused[RELAY_REFUSED_COUNT]; /* of the accepted, refused at once */
        uint64_t tls[RELAY_TLS_COUNT];         /* client sessions that reached TLS */
};

/* What every listener of one process shares; owned by the daemon. */
struct learned;

/* The descriptors kept for refusing clients with a reply (fd_limit). */
#define RELAY_FD_SPARE 16

struct relay_env {
        struct uv_loop_s *loop;
        unsigned name_lookups; /* client_name_lookup: lookups under way (relay.c) */
        const struct log *log;
        struct alert_sink *alerts;
        struct learned *learned;   /* outbound: TLS seen per domain; NULL: not kept */
        struct learned *sts_store; /* mta_sts: policies fetched (sts.h); NULL: none */
        struct tlsrpt *tlsrpt;     /* tlsrpt: TLS-RPT results (tlsrpt.h); NULL: none */
        /* This process reads every stored MTA-STS policy in to keep it
         * fresh (sts_sweep()): the single process, or the first worker. */
        bool sts_sweeper;
        struct relay_stats stats;
        /* RLIMIT_NOFILE (0: unknown). The last RELAY_FD_SPARE descriptors
         * are the reserve: backend and outbound connections, and MTA-STS
         * fetches, never take one (they fail as if none were left, and the
         * session's client gets a 421 4.3.2), and a connection accepted
         * with one is refused with a 421 and closed at once. Accepts alone
         * use the reserve, and only for that long: so a client is refused
         * with a reply, not closed unanswered, when the process is out. */
        uint64_t fd_limit;
        unsigned fd_handshakes; /* refused in the reserve, handshaking (implicit TLS) */
        uint64_t next_session;  /* session id counter */
        char id_prefix[12];     /* makes ids unique across restarts */
};

/*
 * Load TLS material and resolve the backend for one listener (done before the
 * privilege drop). NULL with a message in err on failure.
 */
struct relay_listener *relay_listener_new(struct relay_env *env,
                                          const struct config_listener *conf, char *err,
                                          size_t errlen);
void relay_listener_free(struct relay_listener *l);

/* Accept one pending connection from `server` and start a session on it. */
void relay_accept(struct relay_listener *l, struct uv_stream_s *server);

/*
 * Stop the listener's own work in the background (MTA-STS lookups, a
 * capability probe still under way) once no session is left, so that the
 * loop can run down.
 */
void relay_listener_stop(struct relay_listener *l);

/* Outbound (forward_tls = policy): the listener judges RCPTs against a policy. */
bool relay_listener_outbound(const struct relay_listener *l);

/*
 * Read the listener's policy table file again (SIGHUP), as the unprivileged
 * user: every problem goes to errs as policy_load() prints it. Returns 1 when
 * the new table replaced the old one (*entries: its entries), 0 when the
 * listener has no policy file, or policy_load()'s negative error: the old
 * table stays. Sessions look a domain up at each RCPT and keep nothing of the
 * table between events, so the next RCPT sees the new one. With mta_sts,
 * every cached domain is also looked up again at its next use (sts_recheck()).
 * With accept_proxy, the balancers are taken again from proxy_from (which
 * config_apply_hot() copied into the running configuration): the next
 * connection is judged by them.
 */
int relay_listener_reload(struct relay_listener *l, FILE *errs, size_t *entries);

/*
 * Load the listener's certificate and key (accept_tls) and trust anchors
 * (forward_ca, or the system bundle, when it speaks TLS to the server side)
 * again (SIGHUP), as the unprivileged user. Returns 1 when new contexts
 * replaced the old ones, 0 when the listener has no TLS, -1 with the reason
 * in err when a file cannot be read or is wrong (a key that does not match
 * its certificate): the old contexts stay. Sessions already open keep the
 * certificates they started with; the next handshake uses the new ones.
 */
int relay_listener_reload_tls(struct relay_listener *l, char *err, size_t errlen);

/* Where a listener forwards to (config_forward_hot()), resolved. */
struct relay_forward {
        struct sockaddr_storage addr;
        struct sockaddr_storage src; /* forward_source; family 0: none */
        char host[256];
};

/*
 * A reload in two steps, so that nothing changes unless every listener's
 * new backend resolves: relay_listener_resolve_forward() resolves forward
 * and forward_source of next (this listener in a configuration read again)
 * into *f (0, or -1 with the reason in err), and once the configuration is
 * applied relay_listener_set_forward() makes new sessions use it. Sessions
 * under way keep the backend connection they have; the capabilities are
 * probed again at once (in a process that serves).
 */
int relay_listener_resolve_forward(const struct relay_listener *l,
                                   const struct config_listener *next,
                                   struct relay_forward *f, char *err, size_t errlen);
void relay_listener_set_forward(struct relay_listener *l, const struct relay_forward *f);

/*
 * Would the TLS files of next (this listener in a configuration read
 * again) load? 0, or -1 with the reason in err; nothing is kept. A reload
 * asks before it applies anything, so that a file -t would refuse changes
 * nothing, as a syntax error does.
 */
int relay_listener_check_tls(const struct relay_listener *l,
                             const struct config_listener *next, char *err,
                             size_t errlen);

/*
 * The listener's i-th certificate, if any (tls_ctx_cert()): those it serves
 * (cert), then the one it shows the server side (forward_cert; *client).
 */
bool relay_listener_cert(const struct relay_listener *l, unsigned i,
                         struct tls_cert_desc *out, bool *client);

/*
 * Ask the backend for its EHLO capabilities (start-up and periodic refresh);
 * an outbound listener with mta_sts looks for MTA-STS policies to refresh
 * instead (sts_sweep()).
 */
void relay_listener_probe(struct relay_listener *l);

/* Refuse new sessions from now on (SIGTERM). */
void relay_listener_drain(struct relay_listener *l);
/* End every session still running with 421 4.3.2 (drain timeout). */
void relay_listener_shutdown(struct relay_listener *l);
/* Client sessions not yet freed (capability probes are not counted: the
 * drain does not wait for them, relay_listener_stop() ends them). */
unsigned relay_listener_sessions(const struct relay_listener *l);

#endif
