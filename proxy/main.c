/*
 * mailward: command line, configuration, listeners, signals, drain and the
 * privilege drop. Everything else lives in lib/.
 *
 * Start-up: load the configuration and the TLS material, open the alert
 * log, bind every listener (as root), drop privileges. Then either this
 * process serves (workers = 1) or proxy/workers.c forks the workers and
 * this process becomes their supervisor. A worker, like the single process,
 * makes everything that belongs to one process only after that point: the
 * event loop, the listening handles on the sockets bound before, the alert
 * command runner, the learned store's handle (one per process, see
 * lib/learned.h), the probe and metrics timers, its session id prefix.
 */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "alert.h"
#include "alertcmd.h"
#include "config.h"
#include "learned.h"
#include "sts.h"
#include "log.h"
#include "metrics.h"
#include "history.h"
#include "privdrop.h"
#include "relay.h"
#include "tls.h"
#include "tlsrpt.h"
#include "util.h"
#include "workers.h"

#define MAIN_DEFAULT_CONFIG "/etc/mailward/mailward.conf"
/* A certificate that expires sooner than this is logged as a warning. */
#define MAIN_CERT_WARN_DAYS 14
#define MAIN_BACKLOG        511
#define MAIN_WATCH_MS       100
#define MAIN_TICKET_MS      60000 /* tls_ticket_expire() */
/* Descriptors a serving process holds besides its sessions' two each (client
 * and server): listening sockets, the loop, logs, the stores, DNS and alert
 * command pipes. */
#define MAIN_FD_RESERVE 64
/* A listener that cannot accept (out of descriptors) says so at most this often. */
#define MAIN_ACCEPT_LOG_SECS 10

struct main_listener {
        struct relay_listener *relay;
        const struct config_listener *conf;
};

/* One address of a listener's `listen` (there may be several). */
struct main_bind {
        uv_tcp_t tcp;
        const struct main_listener *ml;
        const struct log *log;
        char listen[CONFIG_MAX_HOST_PORT];
        bool open;
        uint64_t accept_logged; /* uv_now() when accept_failed was last logged */
        unsigned accept_failed; /* connections dropped since */
};

struct main_state {
        uv_loop_t *loop;
        struct config *cfg;
        struct log log;
        struct alert_sink alerts;
        struct alertcmd *alertcmd; /* NULL without alert_command */
        struct relay_env env;
        struct main_listener *listeners;
        size_t nlisteners;
        struct main_bind *binds; /* every listen address of every listener */
        size_t nbinds;
        int *fds;                   /* bound sockets: [worker * nbinds + bind] */
        struct workers *workers;    /* workers > 1 */
        struct metrics_certs certs; /* when the listeners' certificates expire */
        int worker;                 /* this worker's index; -1: the only process */
        uv_signal_t sig_term, sig_int, sig_hup;
        uv_timer_t probe_timer, drain_timer, watch_timer, metrics_timer, ticket_timer;
        bool metrics_failing; /* the last write failed (logged once) */
        bool debug;           /* -d: log_level debug whatever the file says */
        bool draining;
        bool shut_down;
};

/*
 * The learned TLS store, for outbound listeners that learn: opened after the
 * privilege drop (state_dir belongs to the unprivileged user), in each
 * process that serves; again by each SIGHUP while it is not open, so that a
 * reload that turns learning on (learned_max_age from 0) learns from then
 * on. Without it mailward still runs; it just does not learn.
 */
static void main_open_learned(struct main_state *m)
{
        char err[256];
        size_t i;

        if (m->env.learned != NULL)
                return;
        for (i = 0; i < m->nlisteners; i++) {
                if (relay_listener_outbound(m->listeners[i].relay) &&
                    m->listeners[i].conf->learned_max_age > 0)
                        break;
        }
        if (i == m->nlisteners)
                return;
        m->env.learned = learned_open(m->cfg->state_dir, err, sizeof(err));
        if (m->env.learned == NULL)
                log_emit(&m->log, LOG_LVL_ERR, NULL,
                         "event=learned_unavailable state_dir=%s reason=\"%s\" "
                         "note=\"TLS history is not kept\"",
                         m->cfg->state_dir, err);
}

/*
 * The MTA-STS policy store, for listeners with mta_sts = yes, whether or not
 * they learn: opened like the learned store, at start only (mta_sts needs a
 * restart). Without it policies are kept in memory only.
 */
static void main_open_sts_store(struct main_state *m)
{
        char err[256];
        size_t i;

        for (i = 0; i < m->nlisteners; i++) {
                if (m->listeners[i].conf->mta_sts)
                        break;
        }
        if (i == m->nlisteners)
                return;
        m->env.sts_store = learned_open_file(m->cfg->state_dir, STS_STORE_FILE,
                                             STS_STORE_MAP_SIZE, err, sizeof(err));
        if (m->env.sts_store == NULL)
                log_emit(&m->log, LOG_LVL_ERR, NULL,
                         "event=mta_sts_store_unavailable state_dir=%s reason=\"%s\" "
                         "note=\"MTA-STS policies are kept in memory only\"",
                         m->cfg->state_dir, err);
}

/*
 * Where listeners with tlsrpt = yes write their TLS-RPT results: opened in
 * each process that serves, after the privilege drop, like the learned
 * store. Without it mailward runs on and writes none.
 */
static void main_open_tlsrpt(struct main_state *m)
{
        char err[256];
        size_t i;

        for (i = 0; i < m->nlisteners; i++) {
                if (m->listeners[i].conf->tlsrpt)
                        break;
        }
        if (i == m->nlisteners)
                return;
        m->env.tlsrpt = tlsrpt_open(m->cfg->state_dir, err, sizeof(err));
        if (m->env.tlsrpt == NULL)
                log_emit(&m->log, LOG_LVL_ERR, NULL,
                         "event=tlsrpt_unavailable state_dir=%s reason=\"%s\" "
                         "note=\"no TLS-RPT results are written\"",
                         m->cfg->state_dir, err);
}

static void main_usage(FILE *f)
{
        fprintf(f, "usage: mailward [-d] [-c FILE]   run in the foreground\n"
                   "       mailward -t [-c FILE]     check the configuration\n"
                   "       mailward -l [-c FILE]     list the learned TLS history\n"
                   "       mailward -f DOMAIN [-c FILE]\n"
                   "                                 forget DOMAIN's learned record\n"
                   "       mailward -V               print the version\n"
                   "       mailward -h               print this help\n"
                   "  -c FILE  configuration file (default " MAIN_DEFAULT_CONFIG ")\n"
                   "  -d       log at debug level\n"
                   "SIGTERM or SIGINT drains: listeners close, sessions finish.\n"
                   "See mailward(8) and mailward.conf(5).\n");
}

static void main_version(void)
{
        printf("mailward %s\n", MAILWARD_VERSION);
        printf("wolfSSL %s (%s)\n", tls_library_version(), tls_library_build());
}

/* Load TLS material and resolve backends: what -t checks beyond syntax. */
static int main_make_listeners(struct main_state *m, FILE *errs)
{
        const struct config_listener *lc;
        char err[512];
        size_t i = 0;
        int bad = 0;

        for (lc = m->cfg->listeners; lc != NULL; lc = lc->next)
                m->nlisteners++;
        m->listeners = xcalloc(m->nlisteners, sizeof(*m->listeners));
        m->binds = xcalloc(m->nlisteners * CONFIG_MAX_LISTEN, sizeof(*m->binds));
        for (lc = m->cfg->listeners; lc != NULL; lc = lc->next, i++) {
                const char *it = lc->listen;
                struct main_bind *b = &m->binds[m->nbinds];

                m->listeners[i].conf = lc;
                m->listeners[i].relay = relay_listener_new(&m->env, lc, err, sizeof(err));
                if (m->listeners[i].relay == NULL) {
                        fprintf(errs, "%s:%d: %s\n", m->cfg->path, lc->line, err);
                        bad++;
                }
                while (util_list_next(&it, b->listen, sizeof(b->listen)) == 1) {
                        b->ml = &m->listeners[i];
                        b->log = &m->log;
                        b = &m->binds[++m->nbinds];
                }
        }
        return bad ? -1 : 0;
}

/* At most so many of a certificate's names in its line; then "+N". */
#define MAIN_CERT_NAMES_LOGGED 4

/* The line for one certificate of a listener (main_update_certs()). */
static void main_log_cert(struct main_state *m, const struct config_listener *lc,
                          bool client, const struct tls_cert_desc *d, int64_t now)
{
        int64_t na = d->not_after;
        time_t t = (time_t)na;
        char when[32], names[MAIN_CERT_NAMES_LOGGED * 256 + 16];
        struct tm tm;
        size_t len = 0;
        /* Whole days, rounded down: -1 on the day after notAfter. */
        long long left =
            (long long)((na - now) / 86400) - ((na - now) % 86400 < 0 ? 1 : 0);

        /* Host names only (tls_cert_desc): nothing here needs quoting. */
        names[0] = '\0';
        for (size_t i = 0; i < d->nnames && i < MAIN_CERT_NAMES_LOGGED; i++)
                len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
                                        i ? "," : "", d->names[i]);
        if (d->nnames > MAIN_CERT_NAMES_LOGGED)
                snprintf(names + len, sizeof(names) - len, ",+%zu",
                         d->nnames - MAIN_CERT_NAMES_LOGGED);
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        log_emit(&m->log,
                 na <= now                    ? LOG_LVL_ERR
                 : left < MAIN_CERT_WARN_DAYS ? LOG_LVL_WARN
                                              : LOG_LVL_INFO,
                 NULL,
                 "event=certificate listener=%s use=%s cert=%s key_type=%s names=%s "
                 "not_after=%s days_left=%lld%s",
                 lc->name, client ? "client" : "server", d->file, d->key_type,
                 names[0] != '\0' ? names : "-", when, left,
                 na <= now                    ? " note=\"expired: renew it\""
                 : left < MAIN_CERT_WARN_DAYS ? " note=\"renew it soon\""
                                              : "");
}

/*
 * The listeners' certificates, for the metrics (start-up and after a reload);
 * with log, one line each, a warning when one expires within
 * MAIN_CERT_WARN_DAYS days and an error once it has.
 */
static void main_update_certs(struct main_state *m, bool log)
{
        int64_t now = (int64_t)time(NULL);
        size_t i;

        if (m->certs.v == NULL)
                m->certs.v =
                    xcalloc(m->nlisteners ? m->nlisteners * (CONFIG_MAX_CERTS + 1) : 1,
                            sizeof(*m->certs.v));
        m->certs.n = 0;
        for (i = 0; i < m->nlisteners; i++) {
                struct tls_cert_desc d;
                bool client;

                /* Pointers into the listener's TLS contexts: good until a reload. */
                for (unsigned c = 0;
                     relay_listener_cert(m->listeners[i].relay, c, &d, &client); c++) {
                        if (d.not_after == 0)
                                continue;
                        m->certs.v[m->certs.n++] =
                            (struct metrics_cert){.listener = m->listeners[i].conf->name,
                                                  .key_type = d.key_type,
                                                  .file = d.file,
                                                  .client = client,
                                                  .not_after = d.not_after};
                        if (log)
                                main_log_cert(m, m->listeners[i].conf, client, &d, now);
                }
        }
}

static void main_free_listeners(struct main_state *m)
{
        size_t i;

        for (i = 0; i < m->nlisteners; i++)
                relay_listener_free(m->listeners[i].relay);
        free(m->listeners);
        m->listeners = NULL;
        m->nlisteners = 0;
        free(m->binds);
        m->binds = NULL;
        m->nbinds = 0;
        free(m->certs.v);
        m->certs.v = NULL;
        m->certs.n = 0;
}

/*
 * A connection that could not be accepted (ENOBUFS, ENOMEM, ...; libuv
 * handles running out of descriptors itself, closing what waits, which
 * fd_limit's reserve is there to prevent). Logged at most every
 * MAIN_ACCEPT_LOG_SECS per listener, with the count.
 */
static void main_accept_failed(struct main_bind *b, int status)
{
        /* The loop's monotonic clock: a change of the date must not silence
         * these lines for as long as it went back. */
        uint64_t now = uv_now(b->tcp.loop);

        b->accept_failed++;
        if (b->accept_logged != 0 && now - b->accept_logged < MAIN_ACCEPT_LOG_SECS * 1000)
                return;
        log_emit(b->log, LOG_LVL_ERR, NULL,
                 "event=accept_failed listener=%s listen=%s error=\"%s\" dropped=%u "
                 "action=\"connections closed unanswered\"",
                 b->ml->conf->name, b->listen, uv_strerror(status), b->accept_failed);
        b->accept_logged = now;
        b->accept_failed = 0;
}

static void main_on_connection(uv_stream_t *server, int status)
{
        struct main_bind *b = server->data;

        if (status < 0) {
                main_accept_failed(b, status);
                return;
        }
        relay_accept(b->ml->relay, server);
}

/*
 * RLIMIT_NOFILE: the soft limit is raised to the hard one (a soft 1024 holds
 * some 480 sessions), and compared with what the listeners' max_sessions
 * may take in one process, two descriptors a session. A shortfall is a
 * warning at start: near the limit, new connections get a 421 and
 * sessions that need a server connection a 421 4.3.2 (relay.h, fd_limit).
 */
static void main_nofile(struct main_state *m)
{
        unsigned long long need = MAIN_FD_RESERVE, have;
        struct rlimit rl;
        size_t i;

        if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
                return;
        if (rl.rlim_cur < rl.rlim_max) {
                struct rlimit up = {rl.rlim_max, rl.rlim_max};

                if (setrlimit(RLIMIT_NOFILE, &up) == 0)
                        rl = up;
        }
        have = (unsigned long long)rl.rlim_cur;
        m->env.fd_limit = have;
        for (i = 0; i < m->nlisteners; i++)
                need += 2ULL * m->listeners[i].conf->max_sessions;
        if (have >= need) {
                log_emit(&m->log, LOG_LVL_INFO, NULL,
                         "event=nofile limit=%llu needed=%llu", have, need);
                return;
        }
        log_emit(&m->log, LOG_LVL_WARN, NULL,
                 "event=nofile limit=%llu needed=%llu note=\"the listeners' max_sessions "
                 "need that many descriptors; beyond some %llu sessions at once, new "
                 "ones are refused (421): raise the limit (LimitNOFILE=, ulimit -n) or "
                 "lower max_sessions\"",
                 have, need, have > MAIN_FD_RESERVE ? (have - MAIN_FD_RESERVE) / 2 : 0);
}

/*
 * A socket bound to ss, listening unless probe; SO_REUSEPORT when several
 * workers share the address. The descriptor, or -errno.
 *
 * transparent (forward = original-dst): IP_TRANSPARENT / IPV6_TRANSPARENT
 * before bind, so that TPROXY can hand us connections addressed to others.
 * It needs CAP_NET_ADMIN; without it (*terr = errno) the socket is made all
 * the same, since an nftables redirect works without the option.
 */
static int main_socket(const struct sockaddr_storage *ss, bool reuseport, bool probe,
                       bool transparent, int *terr)
{
        socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in);
        int one = 1, fd, err;

        fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (transparent &&
            (ss->ss_family == AF_INET6
                 ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one))
                 : setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one))) != 0)
                *terr = errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            (reuseport &&
             setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
            bind(fd, (const struct sockaddr *)ss, len) != 0 ||
            (!probe && listen(fd, MAIN_BACKLOG) != 0)) {
                err = -errno;
                close(fd);
                return err;
        }
        return fd;
}

/*
 * Bind every listener (before the privilege drop) and listen at once: one
 * socket per listener, or with workers > 1 one per worker and listener, all
 * with SO_REUSEPORT, so that the kernel spreads connections from the start.
 * SO_REUSEPORT would also let a second mailward started by mistake share the
 * port; a first bind without it makes that fail as it does with one process.
 */
static int main_bind(struct main_state *m)
{
        unsigned nw = m->cfg->workers;
        size_t i;

        m->fds = xcalloc(nw * m->nbinds, sizeof(*m->fds));
        for (i = 0; i < nw * m->nbinds; i++)
                m->fds[i] = -1;
        for (i = 0; i < m->nbinds; i++) {
                const struct main_listener *ml = m->binds[i].ml;
                const char *listen = m->binds[i].listen;
                struct sockaddr_storage ss;
                char host[256];
                unsigned port, w;
                bool transparent = ml->conf->forward != NULL &&
                                   strcmp(ml->conf->forward, "original-dst") == 0;
                int fd, terr = 0;

                if (util_split_hostport(listen, host, sizeof(host), &port) != 0)
                        fatalx("listen address was checked by config");
                if (host[0] == '\0')
                        strcpy(host, "0.0.0.0");
                memset(&ss, 0, sizeof(ss));
                if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) != 0 &&
                    uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) != 0) {
                        fprintf(stderr,
                                "mailward: [%s] listen: '%s' is not an IP address\n",
                                ml->conf->name, host);
                        return -1;
                }
                fd = nw > 1 ? main_socket(&ss, false, true, false, &terr) : 0;
                if (fd >= 0 && nw > 1)
                        close(fd);
                for (w = 0; w < nw && fd >= 0; w++) {
                        fd = main_socket(&ss, nw > 1, false, transparent, &terr);
                        m->fds[w * m->nbinds + i] = fd;
                }
                if (fd < 0) {
                        fprintf(stderr, "mailward: [%s] cannot listen on %s: %s\n",
                                ml->conf->name, listen, strerror(-fd));
                        return -1;
                }
                if (terr != 0)
                        log_emit(
                            &m->log, LOG_LVL_WARN, NULL,
                            "event=no_transparent listener=%s listen=%s error=\"%s\" "
                            "note=\"TPROXY will not reach this listener (needs "
                            "CAP_NET_ADMIN); an nftables redirect still works\"",
                            ml->conf->name, listen, strerror(terr));
                log_emit(
                    &m->log, LOG_LVL_INFO, NULL,
                    "event=listening listener=%s listen=%s accept_tls=%s require_tls=%s "
                    "forward=%s identity=%s",
                    ml->conf->name, listen, config_tls_str(ml->conf->accept_tls),
                    ml->conf->require_tls ? "yes" : "no", ml->conf->forward,
                    config_identity_str(ml->conf->client_identity));
        }
        return 0;
}

static void main_close_fds(struct main_state *m)
{
        size_t i;

        if (m->fds == NULL)
                return;
        for (i = 0; i < m->cfg->workers * m->nbinds; i++) {
                if (m->fds[i] >= 0)
                        close(m->fds[i]);
        }
        free(m->fds);
        m->fds = NULL;
}

/* In the serving process: libuv takes over this process's row of sockets. */
static int main_listen(struct main_state *m)
{
        size_t row = m->worker < 0 ? 0 : (size_t)m->worker * m->nbinds;
        size_t i;

        for (i = 0; i < m->nbinds; i++) {
                struct main_bind *b = &m->binds[i];
                int r;

                uv_tcp_init(m->loop, &b->tcp);
                b->tcp.data = b;
                b->open = true;
                r = uv_tcp_open(&b->tcp, m->fds[row + i]);
                if (r == 0)
                        m->fds[row + i] = -1; /* the handle closes it */
                if (r == 0)
                        r = uv_listen((uv_stream_t *)&b->tcp, MAIN_BACKLOG,
                                      main_on_connection);
                if (r != 0) {
                        fprintf(stderr, "mailward: [%s] cannot listen on %s: %s\n",
                                b->ml->conf->name, b->listen, uv_strerror(r));
                        return -1;
                }
        }
        return 0;
}

static void main_close_listeners(struct main_state *m)
{
        size_t i;

        for (i = 0; i < m->nbinds; i++) {
                if (m->binds[i].open) {
                        m->binds[i].open = false;
                        uv_close((uv_handle_t *)&m->binds[i].tcp, NULL);
                }
        }
        for (i = 0; i < m->nlisteners; i++)
                relay_listener_drain(m->listeners[i].relay);
}

static unsigned main_sessions(const struct main_state *m)
{
        unsigned n = 0;
        size_t i;

        for (i = 0; i < m->nlisteners; i++)
                n += relay_listener_sessions(m->listeners[i].relay);
        return n;
}

static void main_close_all(struct main_state *m)
{
        sigset_t late;

        /*
         * Closing the handles gives the signals back their default action: a
         * late SIGTERM (a service manager signals every process of the group,
         * the supervisor forwards it too) must not turn this clean exit into
         * death by a signal. Blocked, it stays pending until the exit.
         */
        sigemptyset(&late);
        sigaddset(&late, SIGTERM);
        sigaddset(&late, SIGINT);
        sigaddset(&late, SIGHUP);
        sigprocmask(SIG_BLOCK, &late, NULL);
        uv_close((uv_handle_t *)&m->sig_term, NULL);
        uv_close((uv_handle_t *)&m->sig_int, NULL);
        uv_close((uv_handle_t *)&m->sig_hup, NULL);
        uv_close((uv_handle_t *)&m->probe_timer, NULL);
        uv_close((uv_handle_t *)&m->drain_timer, NULL);
        uv_close((uv_handle_t *)&m->watch_timer, NULL);
        uv_close((uv_handle_t *)&m->metrics_timer, NULL);
        uv_close((uv_handle_t *)&m->ticket_timer, NULL);
        alertcmd_close(m->alertcmd);
        for (size_t i = 0; i < m->nlisteners; i++)
                relay_listener_stop(m->listeners[i].relay);
}

static void main_on_watch(uv_timer_t *t)
{
        struct main_state *m = t->data;

        /* Alert commands still running may finish too, up to the drain timeout. */
        if (main_sessions(m) == 0 && !alertcmd_busy(m->alertcmd)) {
                log_emit(&m->log, LOG_LVL_INFO, NULL, "event=stopped");
                main_close_all(m);
        }
}

static void main_on_drain_timeout(uv_timer_t *t)
{
        struct main_state *m = t->data;
        size_t i;

        log_emit(&m->log, LOG_LVL_WARN, NULL, "event=drain_timeout sessions=%u",
                 main_sessions(m));
        for (i = 0; i < m->nlisteners; i++)
                relay_listener_shutdown(m->listeners[i].relay);
        alertcmd_shutdown(m->alertcmd);
}

static void main_on_probe(uv_timer_t *t)
{
        struct main_state *m = t->data;
        size_t i;

        for (i = 0; i < m->nlisteners; i++)
                relay_listener_probe(m->listeners[i].relay);
}

static unsigned main_probe_interval(const struct config *cfg)
{
        const struct config_listener *lc;
        unsigned ival = 0;

        for (lc = cfg->listeners; lc != NULL; lc = lc->next) {
                if (ival == 0 || lc->probe_interval < ival)
                        ival = lc->probe_interval;
        }
        return ival ? ival : 300;
}

/*
 * A listener's cert files for a log value: "-" if none, commas between them;
 * as many as fit (the value comes last in its line, which log_emit() may
 * cut short).
 */
static const char *main_cert_files(const struct config_listener *lc, char *out,
                                   size_t outlen)
{
        char one[PATH_MAX];
        size_t n = 0;

        snprintf(out, outlen, "-");
        for (unsigned i = 0; lc->accept_tls != CONFIG_TLS_NONE &&
                             util_list_nth(lc->cert, i, one, sizeof(one)) == 1;
             i++) {
                int w = snprintf(out + n, outlen - n, "%s%s", i > 0 ? "," : "", one);

                if (w < 0 || (size_t)w >= outlen - n)
                        break;
                n += (size_t)w;
        }
        return out;
}

/*
 * SIGHUP, for one listener: its certificate, key and trust anchors, read
 * again as the unprivileged user. A file it cannot read, or a key that does
 * not match, leaves the ones loaded before in place. Returns true if failed.
 */
static bool main_reload_tls(struct main_state *m, size_t i, unsigned *done)
{
        const struct config_listener *lc = m->listeners[i].conf;
        char err[512], files[2 * PATH_MAX + 2];
        int r = relay_listener_reload_tls(m->listeners[i].relay, err, sizeof(err));

        if (r > 0) {
                (*done)++;
                log_emit(
                    &m->log, LOG_LVL_INFO, NULL,
                    "event=reload_tls listener=%s forward_cert=%s ca_file=%s cert=%s",
                    lc->name, lc->forward_cert != NULL ? lc->forward_cert : "-",
                    lc->forward_tls != CONFIG_TLS_NONE && lc->forward_ca != NULL
                        ? lc->forward_ca
                        : "-",
                    main_cert_files(lc, files, sizeof(files)));
        } else if (r < 0) {
                /* err names our own files and wolfSSL's words: nothing from a peer. */
                log_emit(&m->log, LOG_LVL_ERR, NULL,
                         "event=reload_tls_failed listener=%s reason=\"%s\" "
                         "action=\"kept what was loaded before, for what failed\"",
                         lc->name, err);
        }
        return r < 0;
}

/*
 * SIGHUP: the alert log opened again if a log rotation moved it away (a new
 * one must be writable by the unprivileged user, which logrotate's "create"
 * gives). If it cannot be opened the old one is kept. 0, or -1 if that
 * failed.
 */
static int main_reopen_alert_log(struct main_state *m)
{
        int r = alert_sink_reopen(&m->alerts, m->cfg->alert_log);

        if (r > 0)
                log_emit(&m->log, LOG_LVL_INFO, NULL, "event=reopen_alert_log path=%s",
                         m->cfg->alert_log);
        else if (r < 0)
                log_emit(&m->log, LOG_LVL_ERR, NULL,
                         "event=reopen_alert_log_failed path=%s reason=\"%s\" "
                         "action=\"kept writing to the file opened before\"",
                         m->cfg->alert_log, strerror(-r));
        return r < 0 ? -1 : 0;
}

/*
 * SIGHUP: read every outbound listener's policy table again, and every
 * listener's certificates, and reopen the alert log. A table with an error,
 * or a file this user cannot read or write, leaves what was in use in place.
 * Nothing else is reloaded: the rest of the configuration needs a restart.
 */
/* Each line of text (file:line: message lines of a reload), logged; text freed. */
static void main_log_problems(struct main_state *m, enum log_level level,
                              const char *event, const char *key, const char *value,
                              char *text)
{
        char *line, *next, esc[512];

        for (line = text; line != NULL && *line != '\0'; line = next) {
                next = strchr(line, '\n');
                if (next != NULL)
                        *next++ = '\0';
                log_escape(esc, sizeof(esc), line, strlen(line));
                log_emit(&m->log, level, NULL, "event=%s %s=%s problem=\"%s\"", event,
                         key, value, esc);
        }
        free(text);
}

/*
 * SIGHUP, first: the configuration file read again (as the unprivileged
 * user), and what a running daemon can take from it applied
 * (config_apply_hot()); what needs a restart is named and left as it was.
 * A file with errors changes nothing. Returns true if it could not be used.
 */
/* Whether a listener's TLS files are other ones in next. */
static bool main_tls_files_changed(const struct config_listener *a,
                                   const struct config_listener *b)
{
        const char *const fa[] = {a->cert, a->key, a->forward_ca, a->forward_cert,
                                  a->forward_key};
        const char *const fb[] = {b->cert, b->key, b->forward_ca, b->forward_cert,
                                  b->forward_key};

        for (size_t i = 0; i < UTIL_ARRAY_LEN(fa); i++) {
                if ((fa[i] == NULL) != (fb[i] == NULL) ||
                    (fa[i] != NULL && strcmp(fa[i], fb[i]) != 0))
                        return true;
        }
        return false;
}

/*
 * Before a configuration read again is applied: the TLS files a listener
 * names anew must load (as -t would load them), or nothing is applied.
 * Files whose names did not change are read again later (reload_tls),
 * each on its own. 0, or -1 (logged).
 */
static int main_reload_check_tls(struct main_state *m, const struct config *next)
{
        char err[512];

        for (size_t i = 0; i < m->nlisteners; i++) {
                const struct config_listener *cur = m->listeners[i].conf, *n;

                for (n = next->listeners; n != NULL && strcmp(n->name, cur->name) != 0;
                     n = n->next)
                        ;
                if (n == NULL || !main_tls_files_changed(cur, n))
                        continue;
                if (relay_listener_check_tls(m->listeners[i].relay, n, err,
                                             sizeof(err)) == 0)
                        continue;
                log_emit(&m->log, LOG_LVL_ERR, NULL,
                         "event=reload_config_failed file=%s listener=%s reason=\"%s\" "
                         "action=\"kept the settings in use\"",
                         m->cfg->path, cur->name, err);
                return -1;
        }
        return 0;
}

/*
 * Before a configuration read again is applied: each listener whose
 * backend it moves (config_forward_hot()) must resolve there, or nothing is
 * applied; fwd[i] and moved[i] say where listener i goes. 0, or -1 (logged).
 */
static int main_reload_check_forward(struct main_state *m, const struct config *next,
                                     struct relay_forward *fwd, bool *moved)
{
        char err[512];

        for (size_t i = 0; i < m->nlisteners; i++) {
                const struct config_listener *cur = m->listeners[i].conf, *n;

                for (n = next->listeners; n != NULL && strcmp(n->name, cur->name) != 0;
                     n = n->next)
                        ;
                if (n == NULL || !config_forward_hot(cur) || !config_forward_hot(n) ||
                    (strcmp(cur->forward, n->forward) == 0 &&
                     (cur->forward_source == NULL) == (n->forward_source == NULL) &&
                     (cur->forward_source == NULL ||
                      strcmp(cur->forward_source, n->forward_source) == 0)))
                        continue;
                if (relay_listener_resolve_forward(m->listeners[i].relay, n, &fwd[i], err,
                                                   sizeof(err)) != 0) {
                        log_emit(&m->log, LOG_LVL_ERR, NULL,
                                 "event=reload_config_failed file=%s listener=%s "
                                 "reason=\"%s\" action=\"kept the settings in use\"",
                                 m->cfg->path, cur->name, err);
                        return -1;
                }
                moved[i] = true;
        }
        return 0;
}

static bool main_reload_config(struct main_state *m)
{
        char *text = NULL, applied[1024], restart[1024];
        size_t len = 0;
        FILE *errs = open_memstream(&text, &len);
        struct config *cfg = config_load(m->cfg->path, errs != NULL ? errs : stderr);
        struct relay_forward *fwd;
        bool *moved;

        if (errs != NULL)
                fclose(errs);
        main_log_problems(m, LOG_LVL_ERR, "reload_config_problem", "file", m->cfg->path,
                          text);
        if (cfg == NULL) {
                log_emit(&m->log, LOG_LVL_ERR, NULL,
                         "event=reload_config_failed file=%s action=\"kept the settings "
                         "in use\"",
                         m->cfg->path);
                return true;
        }
        fwd = xcalloc(m->nlisteners + 1, sizeof(*fwd));
        moved = xcalloc(m->nlisteners + 1, sizeof(*moved));
        if (main_reload_check_tls(m, cfg) != 0 ||
            main_reload_check_forward(m, cfg, fwd, moved) != 0) {
                free(fwd);
                free(moved);
                config_free(cfg);
                return true;
        }
        config_apply_hot(m->cfg, cfg, applied, sizeof(applied), restart, sizeof(restart));
        config_free(cfg);
        for (size_t i = 0; i < m->nlisteners; i++) {
                if (moved[i])
                        relay_listener_set_forward(m->listeners[i].relay, &fwd[i]);
        }
        free(fwd);
        free(moved);
        if (!m->debug)
                m->log.level = m->cfg->log_level;
        log_emit(&m->log, restart[0] ? LOG_LVL_WARN : LOG_LVL_INFO, NULL,
                 "event=reload_config file=%s applied=\"%s\" restart_needed=\"%s\"%s",
                 m->cfg->path, applied, restart,
                 restart[0] ? " note=\"restart_needed: changed, kept as before until a "
                              "restart\""
                            : "");
        return false;
}

/*
 * SIGHUP, in a process that serves (not the supervisor, which has no loop
 * and no store): a changed probe_interval restarts the probe timer, from
 * now; learning turned on opens the learned store.
 */
static void main_reload_serving(struct main_state *m)
{
        uint64_t ival = (uint64_t)main_probe_interval(m->cfg) * 1000;

        if (m->loop == NULL)
                return;
        /* Draining: the probes stopped with the listeners, and stay so. */
        if (!m->draining && uv_timer_get_repeat(&m->probe_timer) != ival)
                uv_timer_start(&m->probe_timer, main_on_probe, ival, ival);
        main_open_learned(m);
}

static void main_reload(struct main_state *m)
{
        unsigned done = 0, failed = 0, tls_done = 0, tls_failed = 0;
        bool log_failed = false, config_failed = main_reload_config(m);
        size_t i;

        main_reload_serving(m);

        for (i = 0; i < m->nlisteners; i++) {
                const struct config_listener *lc = m->listeners[i].conf;
                char *text = NULL;
                size_t len = 0, entries = 0;
                FILE *errs = open_memstream(&text, &len);
                int r = relay_listener_reload(m->listeners[i].relay, errs, &entries);

                if (errs != NULL)
                        fclose(errs);
                main_log_problems(m, r < 0 ? LOG_LVL_ERR : LOG_LVL_WARN,
                                  "reload_policy_problem", "listener", lc->name, text);
                if (r > 0) {
                        done++;
                        log_emit(&m->log, LOG_LVL_INFO, NULL,
                                 "event=reload_policy listener=%s policy=%s entries=%zu",
                                 lc->name, lc->policy, entries);
                } else if (r < 0) {
                        failed++;
                        log_emit(&m->log, LOG_LVL_ERR, NULL,
                                 "event=reload_policy_failed listener=%s policy=%s "
                                 "reason=\"%s\" action=\"kept the table loaded before\"",
                                 lc->name, lc->policy,
                                 r == -EINVAL ? "the table has errors" : strerror(-r));
                }
                if (main_reload_tls(m, i, &tls_done))
                        tls_failed++;
        }
        if (main_reopen_alert_log(m) != 0)
                log_failed = true;
        /* Once per reload: the single process, or the supervisor. */
        main_update_certs(m, m->worker < 0);
        log_emit(&m->log,
                 failed || tls_failed || log_failed || config_failed ? LOG_LVL_ERR
                                                                     : LOG_LVL_INFO,
                 NULL,
                 "event=sighup action=reload policies=%u failed=%u tls=%u tls_failed=%u "
                 "config=%s note=\"the configuration's running settings, policy tables "
                 "and certificates are reloaded and the alert log reopened\"",
                 done, failed, tls_done, tls_failed, config_failed ? "failed" : "read");
}

static void main_reload_cb(void *arg)
{
        main_reload(arg);
}

static void main_on_signal(uv_signal_t *h, int signum)
{
        struct main_state *m = h->data;

        if (signum == SIGHUP) {
                if (!m->draining)
                        main_reload(m);
                return;
        }
        if (m->draining)
                return;
        m->draining = true;
        log_emit(&m->log, LOG_LVL_INFO, NULL,
                 "event=draining signal=%d sessions=%u timeout=%u", signum,
                 main_sessions(m), m->cfg->drain_timeout);
        main_close_listeners(m);
        uv_timer_stop(&m->probe_timer);
        uv_timer_start(&m->drain_timer, main_on_drain_timeout,
                       (uint64_t)m->cfg->drain_timeout * 1000, 0);
        uv_timer_start(&m->watch_timer, main_on_watch, 0, MAIN_WATCH_MS);
}

static void main_on_ticket(uv_timer_t *t)
{
        (void)t;
        tls_ticket_expire();
}

/*
 * One log line when writing starts failing and one when it works again.
 * A worker does not write the file: it hands its counters to the supervisor.
 */
static void main_write_metrics(struct main_state *m)
{
        const char *step = "";
        int r;

        if (m->cfg->metrics_file == NULL)
                return;
        if (m->workers != NULL) {
                workers_publish(m->workers, (unsigned)m->worker, &m->alerts,
                                &m->env.stats);
                return;
        }
        r = metrics_write(m->cfg->metrics_file, &m->alerts, &m->env.stats, &m->certs,
                          &step);
        if (r != 0 && !m->metrics_failing)
                log_emit(&m->log, LOG_LVL_ERR, NULL,
                         "event=metrics_failed file=%s step=%s error=\"%s\"",
                         m->cfg->metrics_file, step, strerror(-r));
        else if (r == 0 && m->metrics_failing)
                log_emit(&m->log, LOG_LVL_INFO, NULL, "event=metrics_written file=%s",
                         m->cfg->metrics_file);
        m->metrics_failing = r != 0;
}

static void main_on_metrics(uv_timer_t *t)
{
        main_write_metrics(t->data);
}

static void main_handles(struct main_state *m)
{
        uv_signal_init(m->loop, &m->sig_term);
        uv_signal_init(m->loop, &m->sig_int);
        uv_signal_init(m->loop, &m->sig_hup);
        m->sig_term.data = m->sig_int.data = m->sig_hup.data = m;
        uv_signal_start(&m->sig_term, main_on_signal, SIGTERM);
        uv_signal_start(&m->sig_int, main_on_signal, SIGINT);
        uv_signal_start(&m->sig_hup, main_on_signal, SIGHUP);
        uv_timer_init(m->loop, &m->probe_timer);
        uv_timer_init(m->loop, &m->drain_timer);
        uv_timer_init(m->loop, &m->watch_timer);
        uv_timer_init(m->loop, &m->metrics_timer);
        uv_timer_init(m->loop, &m->ticket_timer);
        m->probe_timer.data = m->drain_timer.data = m->watch_timer.data = m;
        m->metrics_timer.data = m;
        /* Every serving process: a quiet one must not keep an old key either. */
        uv_timer_start(&m->ticket_timer, main_on_ticket, MAIN_TICKET_MS, MAIN_TICKET_MS);
        uv_timer_start(&m->probe_timer, main_on_probe, 0,
                       (uint64_t)main_probe_interval(m->cfg) * 1000);
        if (m->cfg->metrics_file != NULL) {
                uint64_t ival = m->workers ? WORKERS_PUBLISH_MS : METRICS_INTERVAL_MS;

                uv_timer_start(&m->metrics_timer, main_on_metrics, ival, ival);
        }
}

/* Not started as root: `user` is not who mailward runs as, if it differs. */
static void main_user_ignored(struct main_state *m)
{
        uid_t uid;

        if (privdrop_ignored(m->cfg->user, &uid))
                log_emit(&m->log, LOG_LVL_WARN, NULL,
                         "event=user_ignored user=%s uid=%d note=\"not started as root: "
                         "mailward runs as the user that started it, not as user\"",
                         m->cfg->user, (int)uid);
}

/*
 * A problem with a global key, as mailward -t prints every problem:
 * "file:line: message" with the key's line, or "file: message" for a key
 * the file does not set (line 0: its default).
 */
static void main_key_problem(FILE *errs, const struct config *cfg, int line,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void main_key_problem(FILE *errs, const struct config *cfg, int line,
                             const char *fmt, ...)
{
        va_list ap;

        if (line > 0)
                fprintf(errs, "%s:%d: ", cfg->path, line);
        else
                fprintf(errs, "%s: ", cfg->path);
        va_start(ap, fmt);
        vfprintf(errs, fmt, ap);
        va_end(ap);
        fputc('\n', errs);
}

/* alert_command must be an executable file (-t and start-up, any user). */
static int main_check_alert_command(const struct config *cfg, FILE *errs)
{
        struct stat st;

        if (cfg->alert_command == NULL)
                return 0;
        if (stat(cfg->alert_command, &st) != 0) {
                main_key_problem(errs, cfg, cfg->alert_command_line,
                                 "alert_command %s: %s", cfg->alert_command,
                                 strerror(errno));
                return -1;
        }
        if (!S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0) {
                main_key_problem(errs, cfg, cfg->alert_command_line,
                                 "alert_command %s: not an executable file",
                                 cfg->alert_command);
                return -1;
        }
        return 0;
}

/*
 * After the privilege drop, before any fork: the command must be executable,
 * and the metrics file writable, by the user mailward now runs as.
 */
/* One file for main_check_reloadable(): a warning if the user cannot read it. */
static void main_check_readable(struct main_state *m, const char *listener,
                                const char *key, const char *file)
{
        if (file == NULL || access(file, R_OK) == 0)
                return;
        log_emit(&m->log, LOG_LVL_WARN, NULL,
                 "event=not_reloadable listener=%s key=%s file=%s error=\"%s\" "
                 "note=\"read at start as root; mailward's user cannot read it again, so "
                 "SIGHUP will not load a new one\"",
                 listener, key, file, strerror(errno));
}

/*
 * After the privilege drop: the files SIGHUP reads again as the user (the
 * configuration, policy, cert, key, forward_ca, forward_cert, forward_key).
 * One it cannot read is only
 * found at the next reload, maybe a weekly logrotate's, and then the
 * certificate in use is kept until it expires: say so now.
 */
static void main_check_reloadable(struct main_state *m)
{
        main_check_readable(m, "-", "config", m->cfg->path);
        for (size_t i = 0; i < m->nlisteners; i++) {
                const struct config_listener *lc = m->listeners[i].conf;
                char one[PATH_MAX];

                main_check_readable(m, lc->name, "policy", lc->policy);

                for (unsigned k = 0;
                     lc->accept_tls != CONFIG_TLS_NONE && k < CONFIG_MAX_CERTS; k++) {
                        if (util_list_nth(lc->cert, k, one, sizeof(one)) == 1)
                                main_check_readable(m, lc->name, "cert", one);
                        if (util_list_nth(lc->key, k, one, sizeof(one)) == 1)
                                main_check_readable(m, lc->name, "key", one);
                }
                if (lc->forward_tls != CONFIG_TLS_NONE) {
                        main_check_readable(m, lc->name, "forward_ca", lc->forward_ca);
                        main_check_readable(m, lc->name, "forward_cert",
                                            lc->forward_cert);
                        main_check_readable(m, lc->name, "forward_key", lc->forward_key);
                }
        }
}

static int main_check_sinks(struct main_state *m)
{
        const char *step = "";
        int r;

        if (m->cfg->alert_command != NULL && access(m->cfg->alert_command, X_OK) != 0) {
                fprintf(stderr, "mailward: alert_command %s: %s (as uid %d)\n",
                        m->cfg->alert_command, strerror(errno), (int)getuid());
                return -1;
        }
        if (m->cfg->metrics_file != NULL) {
                r = metrics_write(m->cfg->metrics_file, &m->alerts, &m->env.stats,
                                  &m->certs, &step);
                /* A full disk is no mistake in the set-up, and must not keep
                 * the mail from flowing: written once there is room. */
                if (r == -ENOSPC || r == -EDQUOT) {
                        log_emit(&m->log, LOG_LVL_ERR, NULL,
                                 "event=metrics_failed file=%s step=%s error=\"%s\" "
                                 "note=\"mailward starts all the same; the file is "
                                 "written once there is room\"",
                                 m->cfg->metrics_file, step, strerror(-r));
                        m->metrics_failing = true;
                        r = 0;
                }
                if (r != 0) {
                        fprintf(stderr, "mailward: metrics_file %s: %s: %s (as uid %d)\n",
                                m->cfg->metrics_file, step, strerror(-r), (int)getuid());
                        return -1;
                }
        }
        return 0;
}

/* In the serving process: its own alert command runner, on its own loop. */
static void main_start_alertcmd(struct main_state *m)
{
        if (m->cfg->alert_command == NULL)
                return;
        m->alertcmd = alertcmd_new(m->loop, &m->log, m->cfg->alert_command);
        m->alerts.hook = alertcmd_hook;
        m->alerts.hook_arg = m->alertcmd;
}

/*
 * Session ids are the prefix and a counter. The prefix changes with the time
 * and the pid (ids stay unique across restarts); a worker adds "w" and its
 * index, so no two workers can give out the same id.
 */
static void main_id_prefix(struct relay_env *env, int worker)
{
        unsigned long long t;
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        t = (unsigned long long)((ts.tv_sec ^ (getpid() << 8)) & 0xfffff);
        if (worker < 0)
                snprintf(env->id_prefix, sizeof(env->id_prefix), "%05llx", t);
        else
                snprintf(env->id_prefix, sizeof(env->id_prefix), "%05llxw%u", t,
                         (unsigned)worker % 64);
}

/* The single process, or one worker: serve until drained. 0 or -1. */
static int main_serve(struct main_state *m)
{
        m->loop = uv_default_loop();
        m->env.loop = m->loop;
        main_id_prefix(&m->env, m->worker);
        m->env.sts_sweeper = m->worker <= 0;
        if (main_listen(m) != 0)
                return -1;
        main_start_alertcmd(m);
        main_open_learned(m);
        main_open_sts_store(m);
        main_open_tlsrpt(m);
        if (m->worker < 0)
                log_emit(&m->log, LOG_LVL_INFO, NULL,
                         "event=start version=%s uid=%d listeners=%zu", MAILWARD_VERSION,
                         (int)getuid(), m->nlisteners);
        else
                log_emit(&m->log, LOG_LVL_INFO, NULL,
                         "event=worker_start worker=%d uid=%d listeners=%zu id_prefix=%s",
                         m->worker, (int)getuid(), m->nlisteners, m->env.id_prefix);
        main_handles(m);
        if (m->workers != NULL)
                workers_unblock(m->workers);
        uv_run(m->loop, UV_RUN_DEFAULT);
        main_write_metrics(m); /* the final counts */
        learned_close(m->env.learned);
        m->env.learned = NULL;
        learned_close(m->env.sts_store);
        m->env.sts_store = NULL;
        tlsrpt_close(m->env.tlsrpt);
        m->env.tlsrpt = NULL;
        return 0;
}

int main(int argc, char **argv)
{
        struct main_state m;
        const char *path = MAIN_DEFAULT_CONFIG;
        bool check = false, debug = false, list = false;
        const char *forget = NULL;
        char err[512];
        int opt, r, rc = 1;

        memset(&m, 0, sizeof(m));
        m.worker = -1;
        while ((opt = getopt(argc, argv, "c:df:hltV")) != -1) {
                switch (opt) {
                case 'c':
                        path = optarg;
                        break;
                case 'd':
                        debug = true;
                        break;
                case 't':
                        check = true;
                        break;
                case 'l':
                        list = true;
                        break;
                case 'f':
                        forget = optarg;
                        break;
                case 'V':
                        main_version();
                        return 0;
                case 'h':
                        main_usage(stdout);
                        return 0;
                default:
                        main_usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                main_usage(stderr);
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        m.cfg = config_load(path, stderr);
        if (m.cfg == NULL)
                return 1;
        if (list || forget != NULL) {
                rc = forget != NULL ? history_forget(m.cfg, forget, stdout, stderr)
                                    : history_list(m.cfg, stdout, stderr);
                config_free(m.cfg);
                return rc;
        }
        m.debug = debug;
        m.log.level = debug ? LOG_LVL_DEBUG : m.cfg->log_level;
        if (tls_global_init() != 0)
                fatalx("wolfSSL initialisation failed");
        m.env.log = &m.log;
        m.env.alerts = &m.alerts;
        if (main_make_listeners(&m, stderr) != 0 ||
            main_check_alert_command(m.cfg, stderr) != 0)
                goto out;
        if (check) {
                /* As a start would (as root): the user must be there. */
                if (privdrop_check(m.cfg->user, m.cfg->allow_root, err, sizeof(err)) !=
                    0) {
                        main_key_problem(stderr, m.cfg, m.cfg->user_line, "%s%s", err,
                                         m.cfg->user_line ? ""
                                                          : " (the default: the file "
                                                            "sets no user)");
                        goto out;
                }
                printf("%s: configuration OK\n", path);
                rc = 0;
                goto out;
        }
        if (m.cfg->syslog)
                log_use_syslog(&m.log, "mailward");
        r = alert_sink_init(&m.alerts, &m.log, m.cfg->alert_log);
        if (r != 0) {
                fprintf(stderr, "mailward: alert_log %s: %s\n", m.cfg->alert_log,
                        r == -ELOOP ? "a symbolic link (not followed: it is opened "
                                      "as root)"
                                    : strerror(-r));
                goto out;
        }
        if (privdrop_check(m.cfg->user, m.cfg->allow_root, err, sizeof(err)) != 0) {
                fprintf(stderr, "mailward: %s\n", err);
                goto out_alerts;
        }
        main_nofile(&m);
        if (main_bind(&m) != 0)
                goto out_alerts;
        if (privdrop(m.cfg->user, m.cfg->allow_root, err, sizeof(err)) != 0) {
                fprintf(stderr, "mailward: %s\n", err);
                goto out_alerts;
        }
        main_user_ignored(&m);
        main_update_certs(&m, true);
        main_check_reloadable(&m);
        if (m.cfg->workers > 1 && !tls_tickets_shared())
                log_emit(&m.log, LOG_LVL_WARN, NULL,
                         "event=tickets_not_shared note=\"the session ticket keys could "
                         "not be "
                         "shared: a client resumes its session only on the worker that "
                         "sealed its ticket\"");
        if (main_check_sinks(&m) != 0)
                goto out_alerts;
        if (m.cfg->workers > 1) {
                m.workers = workers_new(m.cfg, &m.log, m.fds, m.nbinds);
                workers_on_hup(m.workers, main_reload_cb, &m);
                workers_metrics_certs(m.workers, &m.certs);
                m.worker = workers_run(m.workers, &rc);
                if (m.worker < 0)
                        goto out_alerts; /* the supervisor, every worker gone */
        }
        rc = main_serve(&m) == 0 ? 0 : 1;
out_alerts:
        if (m.loop != NULL && rc != 0) {
                /* Failed start: close what was opened so the loop can be closed. */
                main_close_listeners(&m);
                uv_run(m.loop, UV_RUN_DEFAULT);
        }
        main_close_fds(&m);
        workers_free(m.workers);
        alertcmd_free(m.alertcmd);
        alert_sink_cleanup(&m.alerts);
out:
        main_free_listeners(&m);
        if (m.loop != NULL)
                uv_loop_close(m.loop);
        config_free(m.cfg);
        tls_global_cleanup();
        return rc;
}
