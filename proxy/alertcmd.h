/*
 * alertcmd: the alert_command sink. Runs one external program per alert,
 * with the alert's JSON line on its standard input.
 *
 * The program is run directly (no shell), with argv[0] its path, cwd "/",
 * an environment holding only PATH, no descriptor but its stdin, stdout and
 * stderr, in a process group of its own, as the
 * user mailward runs as (alertcmd_new() is called after the privilege drop,
 * so the child has no capability and no_new_privs set). Its standard output
 * and error share one pipe; the first ALERTCMD_OUTPUT_MAX bytes are logged,
 * escaped, the rest read and thrown away.
 *
 * Bounded and never blocking: at most ALERTCMD_RUNNING programs at once and
 * ALERTCMD_QUEUED alerts waiting; past that an alert is dropped from this
 * sink (it still reached every other sink) with one warning line
 * "event=alert_command_dropped". A critical alert waits ahead of the others
 * and, the queue full, takes the place of the oldest one. A program still running after
 * ALERTCMD_TIMEOUT_MS is killed with SIGKILL, with its process group; that,
 * a non-zero exit status, a signal and a failure to start are each logged
 * at warning level.
 *
 * alertcmd_hook() is an alert_hook_cb: it copies the line and returns; it
 * never calls back into the relay. Shutdown: alertcmd_busy() says whether a
 * program runs or waits (the daemon lets them finish during the drain),
 * alertcmd_shutdown() drops what waits and kills what runs (drain timeout),
 * alertcmd_close() closes every handle so the loop can end (the daemon's
 * last step), and alertcmd_free(), after the loop has ended, frees the rest.
 */
#ifndef MAILWARD_ALERTCMD_H
#define MAILWARD_ALERTCMD_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "alert.h"
#include "log.h"

#define ALERTCMD_RUNNING    4
#define ALERTCMD_QUEUED     64
#define ALERTCMD_TIMEOUT_MS 10000
#define ALERTCMD_OUTPUT_MAX 200
/* Output read at most (of which the first ALERTCMD_OUTPUT_MAX bytes are
 * logged): past it the pipe is closed, and a command that goes on writing
 * gets SIGPIPE, instead of a loop of reads on mailward's event loop. */
#define ALERTCMD_READ_MAX 65536

struct alertcmd;

/* path must be absolute (config checks it) and stay valid. Never NULL. */
struct alertcmd *alertcmd_new(uv_loop_t *loop, const struct log *log, const char *path);
void alertcmd_free(struct alertcmd *ac);

/* arg is the struct alertcmd. */
void alertcmd_hook(void *arg, const struct alert *a, const char *json, size_t len);

bool alertcmd_busy(const struct alertcmd *ac);
void alertcmd_shutdown(struct alertcmd *ac);
void alertcmd_close(struct alertcmd *ac);

#endif
