/*
 * loadgen: the SMTP load client of mailward's benchmark (test/bench/run).
 *
 * It shares no code with mailward: one thread, epoll, non-blocking sockets and
 * OpenSSL's libssl (not wolfSSL), so the client's TLS is not the code under
 * test. Every session is a small state machine; none has a thread.
 *
 *   loadgen send -a HOST:PORT -t plain|starttls|implicit [-c 64] [-d 10] [-s 20480]
 *       N sessions, each: connect, (STARTTLS | implicit TLS), EHLO, then
 *       MAIL/RCPT/DATA/<message>. in a loop until the duration is over, then QUIT.
 *       A session that fails is counted and replaced, so the concurrency holds.
 *       -m N: at most N messages per session, then QUIT and a new session in
 *       its place (-m 1: a connection and a handshake per message, as most
 *       MTA-to-MX deliveries are); 0 (the default): one session for the run.
 *   loadgen hold -a HOST:PORT -t starttls|implicit -c 10000 [-d SECONDS]
 *       Opens N sessions up to the reply to the post-TLS EHLO and holds them.
 *       Prints {"event":"established",...} when every session is established
 *       or has failed, then holds until -d seconds pass (0: until SIGTERM).
 *   loadgen rtt -a HOST:PORT -t plain|starttls|implicit [-n 5000]
 *       One session: EHLO, MAIL FROM, RCPT TO (so that every proxy relays to
 *       its backend), then more RCPT round trips; p50/p99 of their latency.
 *
 * Other options: -V 1.2|1.3  the highest TLS version offered (default 1.3);
 *                -r N  sessions in set-up at once (default 256);
 *                -b N  spread source addresses over 127.0.0.1 .. 127.0.0.N
 *                      (default 200; loopback targets only);
 *                -v    print the first errors in full.
 * One JSON object per line on stdout; a human summary on stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum mode { M_SEND, M_HOLD, M_RTT };
enum tlsmode { T_PLAIN, T_STARTTLS, T_IMPLICIT };

enum state {
        S_IDLE,
        S_CONNECTING,
        S_GREETING,
        S_EHLO1,
        S_STARTTLS,
        S_HANDSHAKE,
        S_GREETING_TLS,
        S_EHLO2,
        S_READY, /* established: the post-TLS EHLO was answered */
        S_MAIL,
        S_RCPT,
        S_DATA,
        S_BODY,
        S_RTT,
        S_QUIT,
};

#define IN_MAX 8192

struct sess {
        int idx;
        int fd;
        SSL *ssl;
        enum state state;
        bool out_armed; /* EPOLLOUT registered */
        bool established;
        bool restart; /* send mode: replace this session (failed, or -m reached) */
        long nmsg;    /* messages completed in this session */
        const char *out;
        size_t outlen, outoff;
        uint64_t t_cmd, t_msg;
        size_t inlen;
        char cmd[128];
        char in[IN_MAX];
};

/* Samples in microseconds, kept whole and sorted at the end. */
struct samples {
        uint32_t *v;
        size_t n, cap;
};

static struct {
        enum mode mode;
        enum tlsmode tls;
        struct sockaddr_in addr;
        int conc;
        double duration;
        size_t msgsize;
        long rtt_n;
        int ramp;
        int nsrc;
        long per_session; /* -m: messages per session, 0 = no limit */
        bool tls12;       /* -V 1.2 */
        bool verbose;
} opt = {.conc = 64,
         .duration = 10,
         .msgsize = 20480,
         .rtt_n = 5000,
         .ramp = 256,
         .nsrc = 200};

static SSL_CTX *sslctx;
static int epfd;
static struct sess *sessions;
static char *body;
static size_t bodylen;
static volatile sig_atomic_t stop_flag;

static uint64_t t_start, t_deadline;
static long started, in_setup, established, failed, dropped, messages, messages_win;
static long err_connect, err_tls, err_reply, err_eof, err_io;
static int errors_shown;
static char tls_desc[128];
static struct samples lat_cmd, lat_msg, lat_setup;
static long rtt_done;

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "loadgen: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
        exit(2);
}

static void sample_add(struct samples *s, uint64_t ns)
{
        uint64_t us = ns / 1000;

        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 4096;
                s->v = realloc(s->v, s->cap * sizeof(*s->v));
                if (s->v == NULL)
                        die("%s", "out of memory");
        }
        s->v[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return x < y ? -1 : x > y;
}

static double pct(const struct samples *s, double p)
{
        size_t i;

        if (s->n == 0)
                return 0;
        i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
        return s->v[i];
}

/* "name":{"n":..,"p50_us":..,"p90_us":..,"p99_us":..,"max_us":..} */
static void print_lat(const char *name, struct samples *s)
{
        qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
        printf(",\"%s\":{\"n\":%zu,\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,"
               "\"max_us\":%.0f}",
               name, s->n, pct(s, 50), pct(s, 90), pct(s, 99), pct(s, 100));
}

static void show_error(struct sess *s, const char *what, const char *detail)
{
        if (errors_shown < (opt.verbose ? 20 : 5)) {
                fprintf(stderr, "loadgen: session %d (state %d): %s%s%s\n", s->idx,
                        (int)s->state, what, detail ? ": " : "", detail ? detail : "");
                if (errors_shown == (opt.verbose ? 19 : 4))
                        fprintf(stderr, "loadgen: (further errors only counted)\n");
        }
        errors_shown++;
}

static void set_out(struct sess *s, bool on)
{
        struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = s};

        if (s->out_armed == on)
                return;
        s->out_armed = on;
        epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

static void start_session(struct sess *s);

static void end_session(struct sess *s, bool failure)
{
        if (s->ssl != NULL) {
                SSL_free(s->ssl);
                s->ssl = NULL;
        }
        if (s->fd >= 0) {
                epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
                close(s->fd);
                s->fd = -1;
        }
        if (!s->established)
                in_setup--;
        if (failure) {
                if (s->established && opt.mode == M_HOLD)
                        dropped++;
                else
                        failed++;
        }
        s->state = S_IDLE;
        s->established = false;
        /* send mode keeps its concurrency: a failed session is replaced, and so
         * is one that has sent its -m messages. */
        if (opt.mode == M_SEND && (failure || opt.per_session > 0) &&
            now_ns() < t_deadline && !stop_flag)
                s->restart = true;
}

static void fail(struct sess *s, long *counter, const char *what, const char *detail)
{
        (*counter)++;
        show_error(s, what, detail);
        end_session(s, true);
}

static void send_cmd(struct sess *s, enum state next, const char *line)
{
        size_t n = strlen(line);

        memcpy(s->cmd, line, n);
        s->cmd[n++] = '\r';
        s->cmd[n++] = '\n';
        s->out = s->cmd;
        s->outlen = n;
        s->outoff = 0;
        s->state = next;
        s->t_cmd = now_ns();
}

static void send_body(struct sess *s)
{
        s->out = body;
        s->outlen = bodylen;
        s->outoff = 0;
        s->state = S_BODY;
        s->t_cmd = now_ns();
}

static void start_message(struct sess *s)
{
        s->t_msg = now_ns();
        send_cmd(s, S_MAIL, "MAIL FROM:<bench@loadgen.test>");
}

static void became_established(struct sess *s)
{
        uint64_t t = now_ns();

        s->established = true;
        in_setup--;
        established++;
        sample_add(&lat_setup, t - s->t_msg);
        s->state = S_READY;
        if (opt.mode == M_SEND)
                start_message(s);
        else if (opt.mode == M_RTT)
                send_cmd(s, S_MAIL, "MAIL FROM:<bench@loadgen.test>");
}

static bool start_tls(struct sess *s)
{
        s->ssl = SSL_new(sslctx);
        if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
                return false;
        SSL_set_tlsext_host_name(s->ssl, "localhost");
        SSL_set_connect_state(s->ssl);
        s->state = S_HANDSHAKE;
        return true;
}

static void note_tls(struct sess *s)
{
        int g;

        if (tls_desc[0] != '\0')
                return;
        g = (int)SSL_get_negotiated_group(s->ssl);
        snprintf(tls_desc, sizeof(tls_desc), "%s %s %s", SSL_get_version(s->ssl),
                 SSL_get_cipher_name(s->ssl), g ? SSL_group_to_name(s->ssl, g) : "?");
}

/* A complete reply with this code arrived for the session's command. */
static void on_reply(struct sess *s, int code, const char *text)
{
        uint64_t t = now_ns();
        int want = s->state == S_DATA ? 354 : s->state == S_QUIT ? 221 : 250;

        if (s->state == S_GREETING || s->state == S_GREETING_TLS ||
            s->state == S_STARTTLS)
                want = 220;
        if (code != want) {
                fail(s, &err_reply, "unexpected reply", text);
                return;
        }
        switch (s->state) {
        case S_GREETING:
                /* Plaintext goes straight to its only EHLO. */
                send_cmd(s, opt.tls == T_PLAIN ? S_EHLO2 : S_EHLO1, "EHLO loadgen.test");
                break;
        case S_EHLO1:
                send_cmd(s, S_STARTTLS, "STARTTLS");
                break;
        case S_STARTTLS:
                if (s->inlen != 0) {
                        fail(s, &err_reply, "bytes after the 220 to STARTTLS", NULL);
                        return;
                }
                if (!start_tls(s))
                        fail(s, &err_tls, "SSL_new failed", NULL);
                break;
        case S_GREETING_TLS:
                send_cmd(s, S_EHLO2, "EHLO loadgen.test");
                break;
        case S_EHLO2:
                became_established(s);
                break;
        case S_MAIL:
                /* rtt: MAIL and RCPT bring every proxy to relaying (nginx with
                 * smtp_auth none asks auth_http and connects at RCPT); they
                 * are not counted. */
                if (opt.mode == M_SEND)
                        sample_add(&lat_cmd, t - s->t_cmd);
                send_cmd(s, S_RCPT, "RCPT TO:<sink@backend.test>");
                break;
        case S_RCPT:
                if (opt.mode == M_RTT) {
                        send_cmd(s, S_RTT, "RCPT TO:<sink@backend.test>");
                        break;
                }
                sample_add(&lat_cmd, t - s->t_cmd);
                send_cmd(s, S_DATA, "DATA");
                break;
        case S_DATA:
                sample_add(&lat_cmd, t - s->t_cmd);
                send_body(s);
                break;
        case S_BODY:
                sample_add(&lat_cmd, t - s->t_cmd);
                sample_add(&lat_msg, t - s->t_msg);
                messages++;
                if (t <= t_deadline)
                        messages_win++;
                if (t < t_deadline && !stop_flag &&
                    (opt.per_session == 0 || ++s->nmsg < opt.per_session))
                        start_message(s);
                else
                        send_cmd(s, S_QUIT, "QUIT");
                break;
        case S_RTT:
                /* The first 100 round trips warm up caches and are not counted.
                 * RCPT, not NOOP: a proxy may count commands that move no mail
                 * and end the session after 100 or so (mailward does, as
                 * Postfix's smtpd_junk_command_limit); each RCPT is relayed to
                 * the backend and answered by it, as NOOP was. */
                if (++rtt_done > 100)
                        sample_add(&lat_cmd, t - s->t_cmd);
                if (rtt_done < opt.rtt_n + 100 && !stop_flag)
                        send_cmd(s, S_RTT, "RCPT TO:<sink@backend.test>");
                else
                        send_cmd(s, S_QUIT, "QUIT");
                break;
        case S_QUIT:
                end_session(s, false);
                break;
        default:
                fail(s, &err_reply, "reply in an unexpected state", text);
                break;
        }
}

/* Take every complete reply out of s->in. False if the session ended. */
static bool parse_replies(struct sess *s)
{
        for (;;) {
                size_t start = 0, i;
                bool done = false;
                char first[100];

                for (i = 0; i + 1 < s->inlen; i++) {
                        if (s->in[i] != '\r' || s->in[i + 1] != '\n')
                                continue;
                        if (i - start == 3 ||
                            (i - start > 3 && s->in[start + 3] == ' ')) {
                                done = true;
                                break;
                        }
                        start = i + 2;
                }
                if (!done) {
                        if (s->inlen >= IN_MAX - 1) {
                                fail(s, &err_reply, "reply too long", NULL);
                                return false;
                        }
                        return true;
                }
                i += 2;
                snprintf(first, sizeof(first), "%.*s", (int)(i - start - 2),
                         s->in + start);
                memmove(s->in, s->in + i, s->inlen - i);
                s->inlen -= i;
                if (s->state == S_READY || s->state == S_IDLE ||
                    s->state == S_HANDSHAKE) {
                        fail(s, &err_reply, "unsolicited reply", first);
                        return false;
                }
                on_reply(s, atoi(first), first);
                if (s->state == S_IDLE)
                        return false;
                if (s->inlen == 0)
                        return true;
        }
}

enum io_result { IO_OK, IO_WANT_READ, IO_WANT_WRITE, IO_EOF, IO_ERR };

static enum io_result tls_result(struct sess *s, int r)
{
        switch (SSL_get_error(s->ssl, r)) {
        case SSL_ERROR_WANT_READ:
                return IO_WANT_READ;
        case SSL_ERROR_WANT_WRITE:
                return IO_WANT_WRITE;
        case SSL_ERROR_ZERO_RETURN:
                return IO_EOF;
        case SSL_ERROR_SYSCALL:
                return r == 0 || errno == 0 || errno == ECONNRESET ? IO_EOF : IO_ERR;
        default:
                return IO_ERR;
        }
}

static enum io_result io_write(struct sess *s, size_t *done)
{
        const char *p = s->out + s->outoff;
        size_t n = s->outlen - s->outoff;
        ssize_t r;

        if (s->ssl != NULL) {
                int k = SSL_write(s->ssl, p, (int)n);

                if (k <= 0)
                        return tls_result(s, k);
                *done = (size_t)k;
                return IO_OK;
        }
        r = send(s->fd, p, n, MSG_NOSIGNAL);
        if (r < 0)
                return errno == EAGAIN ? IO_WANT_WRITE : IO_ERR;
        *done = (size_t)r;
        return IO_OK;
}

static enum io_result io_read(struct sess *s, size_t *done)
{
        char *p = s->in + s->inlen;
        size_t room = IN_MAX - 1 - s->inlen;
        ssize_t r;

        if (s->ssl != NULL) {
                int k = SSL_read(s->ssl, p, (int)room);

                if (k <= 0)
                        return tls_result(s, k);
                *done = (size_t)k;
                return IO_OK;
        }
        r = recv(s->fd, p, room, 0);
        if (r == 0)
                return IO_EOF;
        if (r < 0)
                return errno == EAGAIN       ? IO_WANT_READ
                       : errno == ECONNRESET ? IO_EOF
                                             : IO_ERR;
        *done = (size_t)r;
        return IO_OK;
}

static void io_failed(struct sess *s, enum io_result r)
{
        char detail[160];
        unsigned long e = ERR_get_error();

        detail[0] = '\0';
        if (e != 0)
                ERR_error_string_n(e, detail, sizeof(detail));
        else if (r == IO_ERR)
                snprintf(detail, sizeof(detail), "%s", strerror(errno));
        ERR_clear_error();
        if (r == IO_EOF)
                fail(s, &err_eof, "connection closed by the server", NULL);
        else if (s->ssl != NULL)
                fail(s, &err_tls, "TLS error", detail);
        else
                fail(s, &err_io, "I/O error", detail);
}

/* Move the session as far as it can go without blocking. */
static void drive(struct sess *s, uint32_t events)
{
        if (s->state == S_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);

                if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                        return;
                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) {
                        fail(s, &err_connect, "connect", strerror(err));
                        return;
                }
                set_out(s, false);
                if (opt.tls == T_IMPLICIT) {
                        if (!start_tls(s)) {
                                fail(s, &err_tls, "SSL_new failed", NULL);
                                return;
                        }
                } else {
                        s->state = S_GREETING;
                }
        }
        for (;;) {
                enum io_result r;
                size_t n = 0;

                if (s->state == S_HANDSHAKE) {
                        int k = SSL_do_handshake(s->ssl);

                        if (k == 1) {
                                note_tls(s);
                                if (opt.tls == T_IMPLICIT)
                                        s->state = S_GREETING_TLS;
                                else
                                        send_cmd(s, S_EHLO2, "EHLO loadgen.test");
                                continue;
                        }
                        r = tls_result(s, k);
                        if (r == IO_WANT_READ || r == IO_WANT_WRITE) {
                                set_out(s, r == IO_WANT_WRITE);
                                return;
                        }
                        io_failed(s, r);
                        return;
                }
                if (s->outoff < s->outlen) {
                        r = io_write(s, &n);
                        if (r == IO_OK) {
                                s->outoff += n;
                                continue;
                        }
                        if (r == IO_WANT_READ || r == IO_WANT_WRITE) {
                                set_out(s, r == IO_WANT_WRITE);
                                return;
                        }
                        io_failed(s, r);
                        return;
                }
                /* Waiting for a reply (or, when established and idle, for nothing). */
                r = io_read(s, &n);
                if (r == IO_OK) {
                        s->inlen += n;
                        if (!parse_replies(s))
                                return;
                        continue;
                }
                if (r == IO_WANT_READ || r == IO_WANT_WRITE) {
                        set_out(s, r == IO_WANT_WRITE);
                        return;
                }
                io_failed(s, r);
                return;
        }
}

static void start_session(struct sess *s)
{
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
        int one = 1;

        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0)
                die("socket: %s", strerror(errno));
        setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (opt.nsrc > 1) {
                struct sockaddr_in src = {.sin_family = AF_INET};

                setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
                src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(s->idx % opt.nsrc));
                if (bind(s->fd, (struct sockaddr *)&src, sizeof(src)) != 0)
                        die("bind to a 127.0.0.x source: %s", strerror(errno));
        }
        s->state = S_CONNECTING;
        s->inlen = 0;
        s->outlen = s->outoff = 0;
        s->established = false;
        s->restart = false;
        s->nmsg = 0;
        s->out_armed = true;
        s->t_msg = now_ns();
        started++;
        in_setup++;
        epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
        if (connect(s->fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) != 0 &&
            errno != EINPROGRESS) {
                fail(s, &err_connect, "connect", strerror(errno));
        }
}

static void build_body(void)
{
        static const char head[] = "From: <bench@loadgen.test>\r\n"
                                   "To: <sink@backend.test>\r\n"
                                   "Subject: mailward benchmark message\r\n"
                                   "Message-ID: <bench@loadgen.test>\r\n"
                                   "\r\n";
        static const char tail[] = ".\r\n";
        size_t n;

        if (opt.msgsize < sizeof(head) + 80)
                opt.msgsize = sizeof(head) + 80;
        body = malloc(opt.msgsize + 1);
        if (body == NULL)
                die("%s", "out of memory");
        memcpy(body, head, sizeof(head) - 1);
        n = sizeof(head) - 1;
        /* Text lines of at most 78 characters plus CRLF, up to the size. */
        while (n < opt.msgsize - (sizeof(tail) - 1)) {
                size_t room = opt.msgsize - (sizeof(tail) - 1) - n, len;

                len = room > 80 ? 78 : room - 2;
                if (room > 80 && room - 80 < 3)
                        len = 70;
                for (size_t i = 0; i < len; i++)
                        body[n + i] = (char)('a' + (n + i) % 26);
                n += len;
                body[n++] = '\r';
                body[n++] = '\n';
        }
        memcpy(body + n, tail, sizeof(tail) - 1);
        bodylen = n + sizeof(tail) - 1;
}

static void raise_nofile(long need)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
                return;
        if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need) {
                rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max >= need
                                  ? (rlim_t)need
                                  : rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            (long)rl.rlim_cur < need)
                fprintf(stderr, "loadgen: warning: RLIMIT_NOFILE is %ld, %ld wanted\n",
                        (long)rl.rlim_cur, need);
}

static void on_signal(int sig)
{
        (void)sig;
        stop_flag = 1;
}

static void usage(void)
{
        fprintf(stderr,
                "usage: loadgen send|hold|rtt -a HOST:PORT -t plain|starttls|implicit "
                "[-c N] [-d SEC] [-s BYTES] [-m N] [-V 1.2|1.3] [-n N] [-r N] [-b N] "
                "[-v]\n");
        exit(2);
}

static void parse_args(int argc, char **argv)
{
        int c;

        if (argc < 2)
                usage();
        if (strcmp(argv[1], "send") == 0)
                opt.mode = M_SEND;
        else if (strcmp(argv[1], "hold") == 0)
                opt.mode = M_HOLD, opt.duration = 0;
        else if (strcmp(argv[1], "rtt") == 0)
                opt.mode = M_RTT;
        else
                usage();
        optind = 2;
        opt.addr.sin_family = AF_INET;
        while ((c = getopt(argc, argv, "a:t:c:d:s:m:V:n:r:b:v")) != -1) {
                switch (c) {
                case 'a': {
                        char host[64];
                        char *colon = strrchr(optarg, ':');

                        if (colon == NULL || (size_t)(colon - optarg) >= sizeof(host))
                                usage();
                        memcpy(host, optarg, (size_t)(colon - optarg));
                        host[colon - optarg] = '\0';
                        if (inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1)
                                die("not an IPv4 address: %s", host);
                        opt.addr.sin_port = htons((uint16_t)atoi(colon + 1));
                        break;
                }
                case 't':
                        if (strcmp(optarg, "plain") == 0)
                                opt.tls = T_PLAIN;
                        else if (strcmp(optarg, "starttls") == 0)
                                opt.tls = T_STARTTLS;
                        else if (strcmp(optarg, "implicit") == 0)
                                opt.tls = T_IMPLICIT;
                        else
                                usage();
                        break;
                case 'c':
                        opt.conc = atoi(optarg);
                        break;
                case 'd':
                        opt.duration = atof(optarg);
                        break;
                case 's':
                        opt.msgsize = (size_t)atol(optarg);
                        break;
                case 'm':
                        opt.per_session = atol(optarg);
                        break;
                case 'V':
                        if (strcmp(optarg, "1.2") == 0)
                                opt.tls12 = true;
                        else if (strcmp(optarg, "1.3") != 0)
                                usage();
                        break;
                case 'n':
                        opt.rtt_n = atol(optarg);
                        break;
                case 'r':
                        opt.ramp = atoi(optarg);
                        break;
                case 'b':
                        opt.nsrc = atoi(optarg);
                        break;
                case 'v':
                        opt.verbose = true;
                        break;
                default:
                        usage();
                }
        }
        if (opt.addr.sin_port == 0 || opt.conc < 1 || opt.per_session < 0 ||
            opt.ramp < 1 || opt.nsrc < 1 || opt.nsrc > 254)
                usage();
        if (opt.mode == M_RTT)
                opt.conc = 1;
        if (opt.mode == M_HOLD && opt.tls == T_PLAIN)
                die("%s", "hold wants a TLS mode");
        /* Source spreading only makes sense towards loopback. */
        if ((ntohl(opt.addr.sin_addr.s_addr) >> 24) != 127)
                opt.nsrc = 1;
}

static const char *mode_name(void)
{
        return opt.mode == M_SEND ? "send" : opt.mode == M_HOLD ? "hold" : "rtt";
}

static const char *tls_name(void)
{
        return opt.tls == T_PLAIN      ? "plain"
               : opt.tls == T_STARTTLS ? "starttls"
                                       : "implicit";
}

static void print_errors(void)
{
        printf(",\"failed\":%ld,\"errors\":{\"connect\":%ld,\"tls\":%ld,\"reply\":%ld,"
               "\"eof\":%ld,\"io\":%ld}",
               failed, err_connect, err_tls, err_reply, err_eof, err_io);
}

int main(int argc, char **argv)
{
        struct epoll_event evs[512];
        struct sigaction sa;
        bool announced = false;
        uint64_t t_established = 0, t_hold_end = 0;
        double secs;
        int next = 0;

        parse_args(argc, argv);
        raise_nofile(opt.conc + 64);
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        build_body();

        sslctx = SSL_CTX_new(TLS_client_method());
        if (sslctx == NULL)
                die("%s", "SSL_CTX_new failed");
        SSL_CTX_set_min_proto_version(sslctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(sslctx, SSL_VERIFY_NONE, NULL);
        /* AES-128-GCM first, so that servers that follow the client's order
         * (nginx, stunnel) pick what mailward's own order picks. */
        SSL_CTX_set_ciphersuites(sslctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                         "TLS_CHACHA20_POLY1305_SHA256");
        if (opt.tls12) {
                /* The same order in TLS 1.2: ECDHE (X25519 first, OpenSSL's
                 * default groups), AES-128-GCM, AES-256-GCM, ChaCha20. */
                SSL_CTX_set_max_proto_version(sslctx, TLS1_2_VERSION);
                if (SSL_CTX_set_cipher_list(
                        sslctx,
                        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                        "ECDHE-ECDSA-CHACHA20-POLY1305:"
                        "ECDHE-RSA-CHACHA20-POLY1305") != 1)
                        die("%s", "SSL_CTX_set_cipher_list failed");
        }
        /* Every handshake is a full one: no session is resumed. */
        SSL_CTX_set_session_cache_mode(sslctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(sslctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_mode(sslctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

        epfd = epoll_create1(EPOLL_CLOEXEC);
        sessions = calloc((size_t)opt.conc, sizeof(*sessions));
        if (epfd < 0 || sessions == NULL)
                die("%s", "set-up failed");
        for (int i = 0; i < opt.conc; i++) {
                sessions[i].idx = i;
                sessions[i].fd = -1;
        }
        t_start = now_ns();
        t_deadline =
            opt.mode == M_SEND ? t_start + (uint64_t)(opt.duration * 1e9) : UINT64_MAX;

        for (;;) {
                int n, active = 0;

                while (next < opt.conc && in_setup < opt.ramp && !stop_flag)
                        start_session(&sessions[next++]);
                n = epoll_wait(epfd, evs, 512, 100);
                if (n < 0 && errno != EINTR)
                        die("epoll_wait: %s", strerror(errno));
                for (int i = 0; i < n; i++) {
                        struct sess *s = evs[i].data.ptr;

                        if (s->state != S_IDLE)
                                drive(s, evs[i].events);
                }
                for (int i = 0; i < opt.conc; i++) {
                        struct sess *s = &sessions[i];

                        if (s->restart) {
                                s->restart = false;
                                if (now_ns() < t_deadline && !stop_flag)
                                        start_session(s);
                        }
                        active += s->state != S_IDLE;
                }
                if (opt.mode == M_HOLD) {
                        if (!announced && next == opt.conc && in_setup == 0) {
                                announced = true;
                                t_established = now_ns();
                                secs = (double)(t_established - t_start) / 1e9;
                                printf("{\"event\":\"established\",\"sessions\":%ld,"
                                       "\"seconds\":%.3f,\"tls\":\"%s\"",
                                       established, secs, tls_desc);
                                print_errors();
                                printf("}\n");
                                fflush(stdout);
                                fprintf(stderr,
                                        "loadgen: hold: %ld established, %ld failed in "
                                        "%.1f s (%s)\n",
                                        established, failed, secs, tls_desc);
                                if (opt.duration > 0)
                                        t_hold_end = t_established +
                                                     (uint64_t)(opt.duration * 1e9);
                        }
                        if (stop_flag || (t_hold_end != 0 && now_ns() >= t_hold_end))
                                break;
                } else if ((next == opt.conc && active == 0) ||
                           (stop_flag && now_ns() > t_deadline)) {
                        break;
                } else if (stop_flag && opt.mode == M_SEND) {
                        t_deadline = now_ns(); /* finish the messages in flight */
                }
        }
        secs = (double)(now_ns() - t_start) / 1e9;

        printf("{\"mode\":\"%s\",\"tls_mode\":\"%s\",\"tls\":\"%s\",\"sessions\":%d,"
               "\"msgs_per_session\":%ld,\"sessions_started\":%ld,\"established\":%ld,"
               "\"seconds\":%.3f",
               mode_name(), tls_name(), tls_desc, opt.conc, opt.per_session, started,
               established, secs);
        print_errors();
        if (opt.mode == M_SEND) {
                double win = opt.duration;

                printf(",\"message_bytes\":%zu,\"messages\":%ld,\"messages_total\":%ld,"
                       "\"msgs_per_sec\":%.1f",
                       bodylen, messages_win, messages, (double)messages_win / win);
                print_lat("cmd_latency", &lat_cmd);
                print_lat("msg_latency", &lat_msg);
                fprintf(stderr,
                        "loadgen: send %s: %ld messages in %.0f s = %.1f/s, %ld failed\n",
                        tls_name(), messages_win, win, (double)messages_win / win,
                        failed);
        } else if (opt.mode == M_RTT) {
                print_lat("rtt", &lat_cmd);
                fprintf(stderr, "loadgen: rtt %s: p50 %.0f us, p99 %.0f us over %zu\n",
                        tls_name(), pct(&lat_cmd, 50), pct(&lat_cmd, 99), lat_cmd.n);
        } else {
                printf(",\"dropped\":%ld", dropped);
        }
        print_lat("setup_latency", &lat_setup);
        printf("}\n");
        fflush(stdout);
        return failed > 0 && opt.mode == M_RTT ? 1 : 0;
}
