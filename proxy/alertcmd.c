/*
 * alertcmd: one child process per alert, through libuv, never waited for.
 *
 * The hook only copies the line into a bounded queue and arms a zero-delay
 * timer (the kick): processes are started from that timer's callback, never
 * from inside alert_emit(), which runs in the middle of a session's
 * callbacks. A job owns four handles (process, stdin pipe, output pipe,
 * timer) and is freed in the last close callback; the next queued alert is
 * started from there.
 *
 * A job ends when the process has exited and its output pipe has reached
 * end of file. A grandchild that keeps the pipe open (a program that puts
 * something in the background) must not keep the job alive: after the exit
 * the output gets ALERTCMD_LINGER_MS more, then the pipe is closed anyway.
 * The same timer first serves as the run-time limit.
 */
#include "alertcmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define ALERTCMD_JOB_MAGIC  0x61636d64U
#define ALERTCMD_LINGER_MS  1000
#define ALERTCMD_READ_CHUNK 4096
#define ALERTCMD_SID_MAX    32

/* An alert waiting for a process. */
struct alertcmd_item {
        struct alertcmd_item *next;
        char sid[ALERTCMD_SID_MAX];
        enum alert_event event;
        enum alert_severity severity;
        size_t len;
        char json[]; /* len bytes, the JSON line with its "\n" */
};

struct alertcmd_job {
        unsigned magic;
        struct alertcmd *ac;
        struct alertcmd_job *prev, *next;
        struct alertcmd_item *item;
        uv_process_t proc;
        uv_pipe_t in;  /* the child's stdin */
        uv_pipe_t out; /* the child's stdout and stderr */
        uv_timer_t timer;
        uv_write_t wreq;
        int handles;    /* initialised and not yet closed */
        bool proc_init; /* uv_spawn was called: the process handle needs closing */
        bool spawned, exited, out_done, finished;
        const char *killed; /* why we killed it, or NULL */
        int64_t status;
        int term_signal;
        uint64_t started_ms;
        size_t outlen, outtotal;
        char output[ALERTCMD_OUTPUT_MAX];
        char readbuf[ALERTCMD_READ_CHUNK];
};

struct alertcmd {
        uv_loop_t *loop;
        const struct log *log;
        const char *path;
        uv_timer_t kick;
        struct alertcmd_job *jobs;
        unsigned running; /* jobs not yet freed */
        struct alertcmd_item *head, **tail;
        unsigned queued;
        bool shut;   /* nothing new starts */
        bool closed; /* kick closed */
};

static void alertcmd_start_queued(struct alertcmd *ac);

static uint64_t alertcmd_now_ms(const struct alertcmd *ac)
{
        return uv_now(ac->loop);
}

static const char *alertcmd_sid(const struct alertcmd_job *job)
{
        return job->item->sid[0] ? job->item->sid : NULL;
}

/* ---- ending a job ---- */

static void alertcmd_free_job(struct alertcmd_job *job)
{
        struct alertcmd *ac = job->ac;

        if (job->prev)
                job->prev->next = job->next;
        else
                ac->jobs = job->next;
        if (job->next)
                job->next->prev = job->prev;
        ac->running--;
        free(job->item);
        job->magic = 0;
        free(job);
        alertcmd_start_queued(ac);
}

static void alertcmd_on_close(uv_handle_t *h)
{
        struct alertcmd_job *job = h->data;

        UTIL_CHECK_MAGIC(job, ALERTCMD_JOB_MAGIC);
        if (--job->handles == 0)
                alertcmd_free_job(job);
}

static void alertcmd_close_handle(uv_handle_t *h)
{
        if (!uv_is_closing(h))
                uv_close(h, alertcmd_on_close);
}

/* One line for what became of the program, with the start of its output. */
static void alertcmd_report(const struct alertcmd_job *job)
{
        const struct alertcmd *ac = job->ac;
        enum log_level lvl = LOG_LVL_WARN;
        char out[ALERTCMD_OUTPUT_MAX * 4 + 8];
        char what[64];

        if (job->killed != NULL) {
                snprintf(what, sizeof(what), "event=alert_command_killed reason=%s",
                         job->killed);
        } else if (job->term_signal != 0) {
                snprintf(what, sizeof(what), "event=alert_command_failed signal=%d",
                         job->term_signal);
        } else if (job->status != 0) {
                snprintf(what, sizeof(what), "event=alert_command_failed status=%lld",
                         (long long)job->status);
        } else {
                /* Success; what it said is worth a line, silence is not. */
                snprintf(what, sizeof(what), "event=alert_command_done status=0");
                lvl = job->outtotal > 0 ? LOG_LVL_INFO : LOG_LVL_DEBUG;
        }
        if (!log_enabled(ac->log, lvl))
                return;
        log_escape(out, sizeof(out), job->output, job->outlen);
        log_emit(ac->log, lvl, alertcmd_sid(job),
                 "%s alert=%s pid=%d duration_ms=%llu output_bytes=%zu output=%s", what,
                 alert_event_str(job->item->event), job->proc.pid,
                 (unsigned long long)(alertcmd_now_ms(ac) - job->started_ms),
                 job->outtotal, job->outlen ? out : "-");
}

/* Close every handle of the job; it is freed when the last one is closed. */
static void alertcmd_finish(struct alertcmd_job *job)
{
        if (job->finished)
                return;
        job->finished = true;
        /* What the program left behind in its process group (a background
         * child) goes with it: the limits of time and number hold for it
         * too. The group's id is not reused while a member lives. */
        if (job->spawned && job->exited)
                (void)kill(-job->proc.pid, SIGKILL);
        if (job->spawned)
                alertcmd_report(job);
        alertcmd_close_handle((uv_handle_t *)&job->in);
        alertcmd_close_handle((uv_handle_t *)&job->out);
        alertcmd_close_handle((uv_handle_t *)&job->timer);
        if (job->proc_init)
                alertcmd_close_handle((uv_handle_t *)&job->proc);
}

/* SIGKILL to the program's process group (it leads one), or to it alone. */
static void alertcmd_kill(struct alertcmd_job *job, const char *why)
{
        if (!job->spawned || job->exited || job->killed != NULL)
                return;
        job->killed = why;
        if (kill(-job->proc.pid, SIGKILL) != 0)
                uv_process_kill(&job->proc, SIGKILL);
}

/* ---- the job's callbacks ---- */

static void alertcmd_on_timer(uv_timer_t *t)
{
        struct alertcmd_job *job = t->data;

        UTIL_CHECK_MAGIC(job, ALERTCMD_JOB_MAGIC);
        if (job->exited) {
                /* Lingered long enough for the output. */
                alertcmd_finish(job);
                return;
        }
        alertcmd_kill(job, "timeout");
}

static void alertcmd_on_exit(uv_process_t *p, int64_t status, int term_signal)
{
        struct alertcmd_job *job = p->data;

        UTIL_CHECK_MAGIC(job, ALERTCMD_JOB_MAGIC);
        job->exited = true;
        job->status = status;
        job->term_signal = term_signal;
        if (job->out_done || job->finished) {
                alertcmd_finish(job);
                return;
        }
        uv_timer_stop(&job->timer);
        uv_timer_start(&job->timer, alertcmd_on_timer, ALERTCMD_LINGER_MS, 0);
}

static void alertcmd_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        struct alertcmd_job *job = h->data;

        (void)suggested;
        UTIL_CHECK_MAGIC(job, ALERTCMD_JOB_MAGIC);
        *buf = uv_buf_init(job->readbuf, sizeof(job->readbuf));
}

static void alertcmd_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
        struct alertcmd_job *job = st->data;
        size_t n;

        UTIL_CHECK_MAGIC(job, ALERTCMD_JOB_MAGIC);
        if (nread > 0) {
                n = (size_t)nread;
                if (n > sizeof(job->output) - job->outlen)
                        n = sizeof(job->output) - job->outlen;
                memcpy(job->output + job->outlen, buf->base, n);
                job->outlen += n;
                job->outtotal += (size_t)nread;
                if (job->outtotal < ALERTCMD_READ_MAX)
                        return;
                /* Enough: the event loop is the mail's, not for a flood. */
        } else if (nread == 0) {
                return;
        }
        /* End of file, an error or enough: either way the output is over. */
        job->out_done = true;
        alertcmd_close_handle((uv_handle_t *)&job->out);
        if (job->exited)
                alertcmd_finish(job);
}

static void alertcmd_on_write(uv_write_t *req, int status)
{
        struct alertcmd_job *job = req->data;

        UTIL_CHECK_MAGIC(job, ALERTCMD_JOB_MAGIC);
        /* A program that does not read its input is its own business. */
        if (status < 0 && status != UV_ECANCELED)
                log_emit(job->ac->log, LOG_LVL_DEBUG, alertcmd_sid(job),
                         "event=alert_command_stdin error=%s", uv_strerror(status));
        /* End of file on the program's stdin. */
        alertcmd_close_handle((uv_handle_t *)&job->in);
}

/* ---- starting a job ---- */

/*
 * Every descriptor above stderr made close-on-exec, just before a spawn:
 * uv_spawn() closes nothing in the child, and some of ours are not
 * close-on-exec (LMDB opens learned.mdb and mta-sts.mdb without it), so
 * the program would inherit them. libuv runs no code of ours in the child,
 * so the flag is set here, in mailward, which execs nothing else (its
 * workers are forked, not executed); the child's stdio are dup2() copies,
 * which do not carry the flag. close_range() does it in one call (Linux
 * 5.11); older kernels get the loop over /proc/self/fd.
 */
static void alertcmd_cloexec_all(void)
{
        struct dirent *e;
        DIR *d;

        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
                return;
        d = opendir("/proc/self/fd");
        if (d == NULL)
                return;
        while ((e = readdir(d)) != NULL) {
                int fd = atoi(e->d_name), flags;

                if (fd < 3 || fd == dirfd(d))
                        continue;
                flags = fcntl(fd, F_GETFD);
                if (flags >= 0 && (flags & FD_CLOEXEC) == 0)
                        (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
        closedir(d);
}

static void alertcmd_spawn(struct alertcmd *ac, struct alertcmd_item *item)
{
        static char *const env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};
        struct alertcmd_job *job = xcalloc(1, sizeof(*job));
        uv_process_options_t opts;
        uv_stdio_container_t stdio[3];
        char *args[2];
        uv_file fds[2] = {-1, -1};
        uv_buf_t b;
        int r;

        job->magic = ALERTCMD_JOB_MAGIC;
        job->ac = ac;
        job->item = item;
        job->started_ms = alertcmd_now_ms(ac);
        job->next = ac->jobs;
        if (ac->jobs)
                ac->jobs->prev = job;
        ac->jobs = job;
        ac->running++;

        uv_pipe_init(ac->loop, &job->in, 0);
        uv_pipe_init(ac->loop, &job->out, 0);
        uv_timer_init(ac->loop, &job->timer);
        job->in.data = job->out.data = job->timer.data = job->proc.data = job;
        job->wreq.data = job;
        job->handles = 3;

        /* One pipe for stdout and stderr, so output keeps its order. */
        r = uv_pipe(fds, 0, 0);
        if (r == 0) {
                r = uv_pipe_open(&job->out, fds[0]);
                if (r != 0) {
                        close(fds[0]);
                        close(fds[1]);
                }
        }
        if (r != 0) {
                log_emit(ac->log, LOG_LVL_WARN, alertcmd_sid(job),
                         "event=alert_command_failed alert=%s error=\"pipe: %s\"",
                         alert_event_str(item->event), uv_strerror(r));
                alertcmd_finish(job);
                return;
        }

        memset(&opts, 0, sizeof(opts));
        memset(stdio, 0, sizeof(stdio));
        args[0] = (char *)ac->path;
        args[1] = NULL;
        stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
        stdio[0].data.stream = (uv_stream_t *)&job->in;
        stdio[1].flags = UV_INHERIT_FD;
        stdio[1].data.fd = fds[1];
        stdio[2].flags = UV_INHERIT_FD;
        stdio[2].data.fd = fds[1];
        opts.exit_cb = alertcmd_on_exit;
        opts.file = ac->path;
        opts.args = args;
        opts.env = (char **)env;
        opts.cwd = "/";
        opts.flags = UV_PROCESS_DETACHED; /* its own process group, killed whole */
        opts.stdio_count = 3;
        opts.stdio = stdio;
        alertcmd_cloexec_all();
        r = uv_spawn(ac->loop, &job->proc, &opts);
        job->proc_init = true; /* initialised even when uv_spawn fails */
        job->handles++;
        close(fds[1]);
        if (r != 0) {
                log_emit(ac->log, LOG_LVL_WARN, alertcmd_sid(job),
                         "event=alert_command_failed alert=%s path=%s error=\"%s\"",
                         alert_event_str(item->event), ac->path, uv_strerror(r));
                alertcmd_finish(job);
                return;
        }
        job->spawned = true;
        log_emit(ac->log, LOG_LVL_DEBUG, alertcmd_sid(job),
                 "event=alert_command_start alert=%s pid=%d",
                 alert_event_str(item->event), job->proc.pid);
        uv_timer_start(&job->timer, alertcmd_on_timer, ALERTCMD_TIMEOUT_MS, 0);
        r = uv_read_start((uv_stream_t *)&job->out, alertcmd_on_alloc, alertcmd_on_read);
        if (r != 0) {
                job->out_done = true;
                alertcmd_close_handle((uv_handle_t *)&job->out);
        }
        b = uv_buf_init(item->json, (unsigned)item->len);
        r = uv_write(&job->wreq, (uv_stream_t *)&job->in, &b, 1, alertcmd_on_write);
        if (r != 0) {
                /* No callback will come. */
                log_emit(ac->log, LOG_LVL_DEBUG, alertcmd_sid(job),
                         "event=alert_command_stdin error=%s", uv_strerror(r));
                alertcmd_close_handle((uv_handle_t *)&job->in);
        }
}

static void alertcmd_start_queued(struct alertcmd *ac)
{
        struct alertcmd_item *item;

        while (!ac->shut && ac->head != NULL && ac->running < ALERTCMD_RUNNING) {
                item = ac->head;
                ac->head = item->next;
                if (ac->head == NULL)
                        ac->tail = &ac->head;
                ac->queued--;
                item->next = NULL;
                alertcmd_spawn(ac, item);
        }
}

static void alertcmd_on_kick(uv_timer_t *t)
{
        alertcmd_start_queued(t->data);
}

/* ---- the sink ---- */

static void alertcmd_dropped(struct alertcmd *ac, const char *sid, enum alert_event ev,
                             const char *why)
{
        log_emit(ac->log, LOG_LVL_WARN, sid,
                 "event=alert_command_dropped alert=%s reason=%s queued=%u running=%u",
                 alert_event_str(ev), why, ac->queued, ac->running);
}

/*
 * The queue is full and a critical alert comes: the oldest queued alert
 * that is not critical makes room for it, so that a flood of warnings
 * cannot keep a STARTTLS stripping from the command. false: all critical.
 */
static bool alertcmd_make_room(struct alertcmd *ac)
{
        struct alertcmd_item **pp, *item;

        for (pp = &ac->head; (item = *pp) != NULL; pp = &item->next) {
                if (item->severity == ALERT_SEV_CRITICAL)
                        continue;
                *pp = item->next;
                if (ac->tail == &item->next)
                        ac->tail = pp;
                ac->queued--;
                alertcmd_dropped(ac, item->sid[0] ? item->sid : NULL, item->event,
                                 "queue_full_for_critical");
                free(item);
                return true;
        }
        return false;
}

/*
 * A warning (or info) goes to the tail; a critical alert ahead of every one
 * that is not critical, behind the critical ones that wait already, so the
 * queue always holds its critical alerts first, each kind in order.
 */
static void alertcmd_enqueue(struct alertcmd *ac, struct alertcmd_item *item)
{
        struct alertcmd_item **pp = ac->tail;

        if (item->severity == ALERT_SEV_CRITICAL) {
                for (pp = &ac->head; *pp != NULL && (*pp)->severity == ALERT_SEV_CRITICAL;
                     pp = &(*pp)->next)
                        ;
        }
        item->next = *pp;
        *pp = item;
        if (item->next == NULL)
                ac->tail = &item->next;
        ac->queued++;
}

void alertcmd_hook(void *arg, const struct alert *a, const char *json, size_t len)
{
        struct alertcmd *ac = arg;
        struct alertcmd_item *item;

        if (ac->shut ||
            (ac->queued >= ALERTCMD_QUEUED &&
             (a->severity != ALERT_SEV_CRITICAL || !alertcmd_make_room(ac)))) {
                alertcmd_dropped(ac, a->session, a->event,
                                 ac->shut ? "shutdown" : "queue_full");
                return;
        }
        item = xmalloc(sizeof(*item) + len);
        snprintf(item->sid, sizeof(item->sid), "%s", a->session ? a->session : "");
        item->event = a->event;
        item->severity = a->severity;
        item->len = len;
        memcpy(item->json, json, len);
        alertcmd_enqueue(ac, item);
        if (!uv_is_active((uv_handle_t *)&ac->kick))
                uv_timer_start(&ac->kick, alertcmd_on_kick, 0, 0);
}

struct alertcmd *alertcmd_new(uv_loop_t *loop, const struct log *log, const char *path)
{
        struct alertcmd *ac = xcalloc(1, sizeof(*ac));

        ac->loop = loop;
        ac->log = log;
        ac->path = path;
        ac->tail = &ac->head;
        uv_timer_init(loop, &ac->kick);
        ac->kick.data = ac;
        return ac;
}

bool alertcmd_busy(const struct alertcmd *ac)
{
        return ac != NULL && (ac->running > 0 || ac->queued > 0);
}

static void alertcmd_drop_queue(struct alertcmd *ac)
{
        struct alertcmd_item *item, *next;

        if (ac->queued > 0)
                log_emit(ac->log, LOG_LVL_WARN, NULL,
                         "event=alert_command_dropped reason=shutdown count=%u",
                         ac->queued);
        for (item = ac->head; item != NULL; item = next) {
                next = item->next;
                free(item);
        }
        ac->head = NULL;
        ac->tail = &ac->head;
        ac->queued = 0;
}

void alertcmd_shutdown(struct alertcmd *ac)
{
        struct alertcmd_job *job;

        if (ac == NULL)
                return;
        ac->shut = true;
        alertcmd_drop_queue(ac);
        for (job = ac->jobs; job != NULL; job = job->next)
                alertcmd_kill(job, "shutdown");
}

void alertcmd_close(struct alertcmd *ac)
{
        struct alertcmd_job *job, *next;

        if (ac == NULL || ac->closed)
                return;
        alertcmd_shutdown(ac);
        ac->closed = true;
        uv_close((uv_handle_t *)&ac->kick, NULL);
        /* Normally none is left: the daemon waits for them before closing. */
        for (job = ac->jobs; job != NULL; job = next) {
                next = job->next;
                alertcmd_finish(job);
        }
}

void alertcmd_free(struct alertcmd *ac)
{
        if (ac == NULL)
                return;
        if (ac->running != 0 || !ac->closed)
                fatalx("alertcmd_free: %u jobs still running", ac->running);
        alertcmd_drop_queue(ac);
        free(ac);
}
