/*
 * workers: several worker processes on the same listeners (workers > 1),
 * and the supervisor that keeps them running.
 *
 * Sockets. Before the privilege drop the daemon binds every listen address
 * of every listener once per worker, each socket with SO_REUSEPORT and
 * already listening, and hands them over as a table: fds[worker * nsockets
 * + socket], a socket per listen address. The kernel
 * spreads new connections over the sockets of one address by a hash of
 * the connection's addresses and ports, so each worker accepts from a queue
 * of its own (no thundering herd, no worker that grabs a burst; see
 * test/bench/README for the balance measured against one shared socket).
 *
 * workers_run() forks the workers. It returns in each of them with its
 * index: the worker closes the other workers' sockets and goes on to run a
 * whole mailward of its own (event loop, relay environment, probe timer,
 * alert command runner, learned-store handle, all made after the fork). It
 * gets SIGTERM if the supervisor dies (PR_SET_PDEATHSIG), so it never
 * serves on unsupervised.
 *
 * The parent stays in workers_run() as the supervisor. It runs no event
 * loop and handles no session; it waits for signals:
 *   SIGTERM, SIGINT  closes its copies of the sockets (so that a socket goes
 *                    away as soon as its worker closes it: new connections
 *                    are refused, as with one process), sends the same
 *                    signal to every worker (each drains) and waits for
 *                    them; workers still running drain_timeout +
 *                    WORKERS_KILL_GRACE_S seconds later are killed (SIGKILL,
 *                    logged).
 *   SIGHUP           the supervisor reloads what it holds itself (the
 *                    configuration, the certificates it reports: the
 *                    callback of workers_on_hup()), then forwards the
 *                    signal to every worker, which reloads its own
 *                    (event=sighup action=forwarded).
 *   SIGCHLD          a worker that exits while the supervisor is not
 *                    draining, for whatever reason, is logged and started
 *                    again with the same index and sockets after a backoff:
 *                    WORKERS_BACKOFF_MIN_MS, doubled for each exit less than
 *                    WORKERS_STABLE_S after its start, up to
 *                    WORKERS_BACKOFF_MAX_MS. Its sockets stay open in the
 *                    supervisor meanwhile: connections the kernel gave to
 *                    them wait in their backlog and are served by the new
 *                    worker, they are not refused.
 * workers_run() returns -1 in the supervisor once every worker has exited
 * after a drain, with *status 0 if each of them exited 0, else 1.
 *
 * Counters. With metrics_file the supervisor is the file's only writer: each
 * worker copies its counters into a slot of shared memory
 * (workers_publish(), every WORKERS_PUBLISH_MS and at exit) and the
 * supervisor writes their sum every METRICS_INTERVAL_MS and at exit. The
 * counts of a worker that died are kept as of its last copy (up to
 * WORKERS_PUBLISH_MS of counts can be lost with it); its active sessions
 * are gone with it.
 *
 * Signals: workers_run() blocks SIGTERM, SIGINT, SIGHUP and SIGCHLD before
 * the first fork. A worker inherits the blocked mask, so a signal that
 * arrives before its handlers exist stays pending; it calls
 * workers_unblock() once its libuv signal handlers are installed.
 */
#ifndef MAILWARD_WORKERS_H
#define MAILWARD_WORKERS_H

#include <stddef.h>

#include "alert.h"
#include "config.h"
#include "log.h"
#include "relay.h"

#define WORKERS_BACKOFF_MIN_MS 500
#define WORKERS_BACKOFF_MAX_MS 30000
#define WORKERS_STABLE_S       10
#define WORKERS_KILL_GRACE_S   10
#define WORKERS_PUBLISH_MS     1000

struct workers;

/*
 * cfg->workers workers on fds (cfg->workers * nsockets descriptors, see
 * above; the table stays the caller's, workers_run() closes entries and sets
 * them to -1). cfg and log must outlive the struct. Never NULL.
 */
struct workers *workers_new(const struct config *cfg, const struct log *log, int *fds,
                            size_t nsockets);
/* Unmaps the counters; closes nothing. NULL is a no-op. */
void workers_free(struct workers *w);

/*
 * SIGHUP in the supervisor: fn(arg) first (the supervisor's own copy of what
 * it reloads, for workers started after it), then the signal to every worker.
 */
void workers_on_hup(struct workers *w, void (*fn)(void *), void *arg);
/* The certificates for the supervisor's metrics (kept up to date by its owner). */
struct metrics_certs;
void workers_metrics_certs(struct workers *w, const struct metrics_certs *certs);

/* In a worker: its index (0..n-1). In the supervisor, at the end: -1. */
int workers_run(struct workers *w, int *status);

/* In a worker, once its signal handlers are installed. */
void workers_unblock(const struct workers *w);

/* In worker `index`: copy its counters where the supervisor reads them. */
void workers_publish(struct workers *w, unsigned index, const struct alert_sink *alerts,
                     const struct relay_stats *stats);

#endif
