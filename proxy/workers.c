/*
 * workers: fork, supervise, restart; the counters in shared memory.
 *
 * The supervisor is one plain loop around sigtimedwait(): the signals it
 * cares about stay blocked, so nothing runs in a signal handler and no
 * event loop is needed. Each turn reaps every exited worker, starts the
 * restarts that are due, writes the metrics file when it is time, and
 * waits for the next signal or deadline.
 */
#include "workers.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "util.h"

/* One worker's counters, written by it, read by the supervisor. */
struct workers_slot {
        uint64_t sessions_total;
        uint64_t sessions_active;
        uint64_t messages_total;
        uint64_t refused[RELAY_REFUSED_COUNT];
        uint64_t tls[RELAY_TLS_COUNT];
        uint64_t alerts[ALERT_EVENT_COUNT];
};

struct workers_proc {
        pid_t pid;           /* 0: not running */
        uint64_t started_ms; /* monotonic */
        uint64_t restart_ms; /* monotonic time of a pending restart, 0: none */
        unsigned backoff_ms; /* the next restart's delay */
};

struct workers {
        const struct config *cfg;
        const struct log *log;
        int *fds;
        size_t nsockets;
        unsigned n;
        struct workers_proc *procs;
        struct workers_slot *slots;  /* n, shared (MAP_SHARED) */
        struct workers_slot retired; /* what exited workers had counted */
        sigset_t mask;               /* the signals the supervisor waits for */
        sigset_t old_mask;           /* what workers get back */
        pid_t supervisor;
        bool draining;
        bool failed; /* a worker exited non-zero during the drain */
        bool metrics_failing;
        uint64_t kill_ms;    /* drain: SIGKILL what still runs at this time */
        uint64_t metrics_ms; /* next metrics write */
        void (*on_hup)(void *);
        void *on_hup_arg;
        const struct metrics_certs *certs;
};

static uint64_t workers_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct workers *workers_new(const struct config *cfg, const struct log *log, int *fds,
                            size_t nsockets)
{
        struct workers *w = xcalloc(1, sizeof(*w));

        w->cfg = cfg;
        w->log = log;
        w->fds = fds;
        w->nsockets = nsockets;
        w->n = cfg->workers;
        w->procs = xcalloc(w->n, sizeof(*w->procs));
        w->slots = mmap(NULL, w->n * sizeof(*w->slots), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (w->slots == MAP_FAILED)
                fatalx("workers: mmap: %s", strerror(errno));
        for (unsigned i = 0; i < w->n; i++)
                w->procs[i].backoff_ms = WORKERS_BACKOFF_MIN_MS;
        return w;
}

void workers_free(struct workers *w)
{
        if (w == NULL)
                return;
        munmap(w->slots, w->n * sizeof(*w->slots));
        free(w->procs);
        free(w);
}

void workers_unblock(const struct workers *w)
{
        sigprocmask(SIG_SETMASK, &w->old_mask, NULL);
}

static void workers_store(uint64_t *to, uint64_t v)
{
        __atomic_store_n(to, v, __ATOMIC_RELAXED);
}

static uint64_t workers_load(const uint64_t *from)
{
        return __atomic_load_n(from, __ATOMIC_RELAXED);
}

void workers_publish(struct workers *w, unsigned index, const struct alert_sink *alerts,
                     const struct relay_stats *stats)
{
        struct workers_slot *s = &w->slots[index];

        workers_store(&s->sessions_total, stats->sessions_total);
        workers_store(&s->sessions_active, stats->sessions_active);
        workers_store(&s->messages_total, stats->messages_total);
        for (int i = 0; i < RELAY_REFUSED_COUNT; i++)
                workers_store(&s->refused[i], stats->refused[i]);
        for (int i = 0; i < RELAY_TLS_COUNT; i++)
                workers_store(&s->tls[i], stats->tls[i]);
        for (int i = 0; i < ALERT_EVENT_COUNT; i++)
                workers_store(&s->alerts[i], alerts->count[i]);
}

/* ---- the supervisor's metrics ---- */

static void workers_write_metrics(struct workers *w)
{
        struct alert_sink alerts;
        struct relay_stats stats;
        const char *step = "";
        int r;

        if (w->cfg->metrics_file == NULL)
                return;
        memset(&alerts, 0, sizeof(alerts));
        memset(&stats, 0, sizeof(stats));
        stats.sessions_total = w->retired.sessions_total;
        stats.messages_total = w->retired.messages_total;
        for (int k = 0; k < RELAY_REFUSED_COUNT; k++)
                stats.refused[k] = w->retired.refused[k];
        for (int k = 0; k < RELAY_TLS_COUNT; k++)
                stats.tls[k] = w->retired.tls[k];
        for (int e = 0; e < ALERT_EVENT_COUNT; e++)
                alerts.count[e] = (unsigned long)w->retired.alerts[e];
        for (unsigned i = 0; i < w->n; i++) {
                const struct workers_slot *s = &w->slots[i];

                stats.sessions_total += workers_load(&s->sessions_total);
                stats.sessions_active += workers_load(&s->sessions_active);
                stats.messages_total += workers_load(&s->messages_total);
                for (int k = 0; k < RELAY_REFUSED_COUNT; k++)
                        stats.refused[k] += workers_load(&s->refused[k]);
                for (int k = 0; k < RELAY_TLS_COUNT; k++)
                        stats.tls[k] += workers_load(&s->tls[k]);
                for (int e = 0; e < ALERT_EVENT_COUNT; e++)
                        alerts.count[e] += (unsigned long)workers_load(&s->alerts[e]);
        }
        r = metrics_write(w->cfg->metrics_file, &alerts, &stats, w->certs, &step);
        if (r != 0 && !w->metrics_failing)
                log_emit(w->log, LOG_LVL_ERR, NULL,
                         "event=metrics_failed file=%s step=%s error=\"%s\"",
                         w->cfg->metrics_file, step, strerror(-r));
        else if (r == 0 && w->metrics_failing)
                log_emit(w->log, LOG_LVL_INFO, NULL, "event=metrics_written file=%s",
                         w->cfg->metrics_file);
        w->metrics_failing = r != 0;
}

/* A worker is gone: its totals move to retired, its slot starts from zero. */
static void workers_retire_slot(struct workers *w, unsigned i)
{
        struct workers_slot *s = &w->slots[i];

        w->retired.sessions_total += workers_load(&s->sessions_total);
        w->retired.messages_total += workers_load(&s->messages_total);
        for (int k = 0; k < RELAY_REFUSED_COUNT; k++)
                w->retired.refused[k] += workers_load(&s->refused[k]);
        for (int k = 0; k < RELAY_TLS_COUNT; k++)
                w->retired.tls[k] += workers_load(&s->tls[k]);
        for (int e = 0; e < ALERT_EVENT_COUNT; e++)
                w->retired.alerts[e] += workers_load(&s->alerts[e]);
        memset(s, 0, sizeof(*s));
}

/* ---- sockets ---- */

static void workers_close_fd(int *fd)
{
        if (*fd >= 0) {
                close(*fd);
                *fd = -1;
        }
}

/* In worker `index`: keep its own row of the table only. */
static void workers_keep_row(struct workers *w, unsigned index)
{
        for (unsigned i = 0; i < w->n; i++) {
                if (i == index)
                        continue;
                for (size_t l = 0; l < w->nsockets; l++)
                        workers_close_fd(&w->fds[i * w->nsockets + l]);
        }
}

static void workers_close_all(struct workers *w)
{
        for (size_t i = 0; i < w->n * w->nsockets; i++)
                workers_close_fd(&w->fds[i]);
}

/* ---- processes ---- */

/* 0 in the parent (started or retry scheduled), 1 in the new worker. */
static int workers_start(struct workers *w, unsigned i)
{
        struct workers_proc *p = &w->procs[i];
        pid_t pid;

        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                p->restart_ms = workers_now_ms() + p->backoff_ms;
                log_emit(w->log, LOG_LVL_ERR, NULL,
                         "event=worker_fork_failed worker=%u error=\"%s\" retry_ms=%u", i,
                         strerror(errno), p->backoff_ms);
                if (p->backoff_ms < WORKERS_BACKOFF_MAX_MS)
                        p->backoff_ms *= 2;
                return 0;
        }
        if (pid == 0) {
                /* Die with the supervisor; it may have gone before this call. */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != w->supervisor)
                        kill(getpid(), SIGTERM);
                workers_keep_row(w, i);
                return 1;
        }
        p->pid = pid;
        p->started_ms = workers_now_ms();
        p->restart_ms = 0;
        log_emit(w->log, LOG_LVL_INFO, NULL, "event=worker_started worker=%u pid=%ld", i,
                 (long)pid);
        return 0;
}

static void workers_status_str(int st, char *out, size_t outlen)
{
        if (WIFEXITED(st))
                snprintf(out, outlen, "status=%d", WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
                snprintf(out, outlen, "signal=%d%s", WTERMSIG(st),
                         WCOREDUMP(st) ? " core=yes" : "");
        else
                snprintf(out, outlen, "wait_status=%#x", (unsigned)st);
}

static void workers_exited(struct workers *w, unsigned i, int st)
{
        struct workers_proc *p = &w->procs[i];
        uint64_t now = workers_now_ms();
        char how[48];
        pid_t pid = p->pid;

        p->pid = 0;
        workers_retire_slot(w, i);
        workers_status_str(st, how, sizeof(how));
        if (w->draining) {
                bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;

                if (!ok)
                        w->failed = true;
                log_emit(w->log, ok ? LOG_LVL_INFO : LOG_LVL_WARN, NULL,
                         "event=worker_stopped worker=%u pid=%ld %s", i, (long)pid, how);
                return;
        }
        /* A worker that had run for a while starts again soon; one that keeps dying waits
         * longer. */
        if (now - p->started_ms >= (uint64_t)WORKERS_STABLE_S * 1000)
                p->backoff_ms = WORKERS_BACKOFF_MIN_MS;
        p->restart_ms = now + p->backoff_ms;
        log_emit(w->log, LOG_LVL_ERR, NULL,
                 "event=worker_died worker=%u pid=%ld %s ran_ms=%llu restart_in_ms=%u", i,
                 (long)pid, how, (unsigned long long)(now - p->started_ms),
                 p->backoff_ms);
        p->backoff_ms *= 2;
        if (p->backoff_ms > WORKERS_BACKOFF_MAX_MS)
                p->backoff_ms = WORKERS_BACKOFF_MAX_MS;
}

static void workers_reap(struct workers *w)
{
        pid_t pid;
        int st;

        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
                for (unsigned i = 0; i < w->n; i++) {
                        if (w->procs[i].pid == pid) {
                                workers_exited(w, i, st);
                                break;
                        }
                }
        }
}

static unsigned workers_running(const struct workers *w)
{
        unsigned n = 0;

        for (unsigned i = 0; i < w->n; i++)
                n += w->procs[i].pid != 0;
        return n;
}

static void workers_signal_all(struct workers *w, int signum)
{
        for (unsigned i = 0; i < w->n; i++) {
                if (w->procs[i].pid != 0)
                        kill(w->procs[i].pid, signum);
        }
}

static void workers_drain(struct workers *w, int signum)
{
        w->draining = true;
        w->kill_ms = workers_now_ms() +
                     ((uint64_t)w->cfg->drain_timeout + WORKERS_KILL_GRACE_S) * 1000;
        workers_close_all(w);
        log_emit(w->log, LOG_LVL_INFO, NULL, "event=draining signal=%d workers=%u",
                 signum, workers_running(w));
        for (unsigned i = 0; i < w->n; i++)
                w->procs[i].restart_ms = 0;
        workers_signal_all(w, signum);
}

void workers_metrics_certs(struct workers *w, const struct metrics_certs *certs)
{
        w->certs = certs;
}

void workers_on_hup(struct workers *w, void (*fn)(void *), void *arg)
{
        w->on_hup = fn;
        w->on_hup_arg = arg;
}

static void workers_hup(struct workers *w)
{
        if (w->on_hup != NULL)
                w->on_hup(w->on_hup_arg);
        workers_signal_all(w, SIGHUP);
        log_emit(w->log, LOG_LVL_INFO, NULL, "event=sighup action=forwarded workers=%u",
                 workers_running(w));
}

static void workers_kill_all(struct workers *w)
{
        for (unsigned i = 0; i < w->n; i++) {
                if (w->procs[i].pid == 0)
                        continue;
                log_emit(w->log, LOG_LVL_WARN, NULL,
                         "event=worker_killed worker=%u pid=%ld reason=drain_timeout", i,
                         (long)w->procs[i].pid);
                kill(w->procs[i].pid, SIGKILL);
        }
        w->kill_ms = 0;
}

/* The earliest deadline, as a timeout from now. */
static void workers_timeout(const struct workers *w, uint64_t now, struct timespec *ts)
{
        uint64_t next = now + 60000;

        if (w->cfg->metrics_file != NULL && w->metrics_ms < next)
                next = w->metrics_ms;
        if (w->kill_ms != 0 && w->kill_ms < next)
                next = w->kill_ms;
        for (unsigned i = 0; i < w->n; i++) {
                if (w->procs[i].restart_ms != 0 && w->procs[i].restart_ms < next)
                        next = w->procs[i].restart_ms;
        }
        next = next > now ? next - now : 0;
        ts->tv_sec = (time_t)(next / 1000);
        ts->tv_nsec = (long)(next % 1000) * 1000000;
}

int workers_run(struct workers *w, int *status)
{
        struct timespec ts;
        siginfo_t info;
        uint64_t now;
        int sig;

        sigemptyset(&w->mask);
        sigaddset(&w->mask, SIGTERM);
        sigaddset(&w->mask, SIGINT);
        sigaddset(&w->mask, SIGHUP);
        sigaddset(&w->mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &w->mask, &w->old_mask);
        w->supervisor = getpid();
        log_emit(w->log, LOG_LVL_INFO, NULL,
                 "event=supervisor version=%s uid=%d workers=%u%s sockets=%zu",
                 MAILWARD_VERSION, (int)getuid(), w->n,
                 w->cfg->workers_auto ? " (auto)" : "", w->nsockets);
        for (unsigned i = 0; i < w->n; i++) {
                if (workers_start(w, i))
                        return (int)i;
        }
        w->metrics_ms = workers_now_ms() + METRICS_INTERVAL_MS;
        for (;;) {
                workers_reap(w);
                if (w->draining && workers_running(w) == 0)
                        break;
                now = workers_now_ms();
                for (unsigned i = 0; i < w->n; i++) {
                        if (w->procs[i].restart_ms != 0 &&
                            w->procs[i].restart_ms <= now && workers_start(w, i))
                                return (int)i;
                }
                if (w->kill_ms != 0 && w->kill_ms <= now)
                        workers_kill_all(w);
                if (w->cfg->metrics_file != NULL && w->metrics_ms <= now) {
                        workers_write_metrics(w);
                        w->metrics_ms = now + METRICS_INTERVAL_MS;
                }
                workers_timeout(w, now, &ts);
                sig = sigtimedwait(&w->mask, &info, &ts);
                if (sig == SIGTERM || sig == SIGINT) {
                        if (!w->draining)
                                workers_drain(w, sig);
                } else if (sig == SIGHUP && !w->draining) {
                        workers_hup(w);
                }
                /* SIGCHLD, a timeout or EINTR: the next turn looks. */
        }
        workers_write_metrics(w);
        log_emit(w->log, LOG_LVL_INFO, NULL, "event=stopped workers=%u%s", w->n,
                 w->failed ? " note=\"a worker did not stop cleanly\"" : "");
        sigprocmask(SIG_SETMASK, &w->old_mask, NULL);
        *status = w->failed ? 1 : 0;
        return -1;
}
