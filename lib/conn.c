/*
 * conn: TCP (libuv) + optional TLS (struct tls over memory). See conn.h.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <uv.h>

#include "proxyproto.h"
#include "util.h"

#define CONN_MAGIC            0x636f6e6eU
#define CONN_LOOP_MAGIC       0x636c6f6fU
#define CONN_READ_SIZE        65536
#define CONN_CLOSE_FLUSH_MS   5000
#define CONN_DIRECT_MIN       4096 /* conn_write(): this much skips the queue */
#define CONN_TRIM_MS          1000 /* after a handshake: tls_release_idle() */
#define CONN_TLS_RECORD_START 0x16 /* handshake record type */
#define CONN_TLS_RECORD_ALERT 0x15 /* a peer may answer with an alert at once */
/* From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>. */
#define CONN_SO_ORIGINAL_DST      80
#define CONN_IP6T_SO_ORIGINAL_DST 80

/*
 * libuv calls a stream's alloc callback and then, before anything else runs on
 * the loop, its read callback with the same buffer: one buffer serves every
 * conn of the loop, and is free again when conn_read_cb() returns.
 */
struct conn_loop {
        unsigned magic;
        uv_loop_t *loop;
        char *readbuf; /* CONN_READ_SIZE bytes, from the first read on */
        int reserve;   /* conn_loop_reserve(): no connect from this descriptor on */
};

struct conn {
        unsigned magic;
        struct conn_loop *cl;
        uv_tcp_t tcp;
        uv_timer_t timer;
        uv_connect_t connect_req;
        conn_cb cb;
        void *arg;

        struct buf in;   /* plaintext read, waiting for the owner */
        struct buf out;  /* bytes waiting for conn_flush() (ciphertext under TLS) */
        size_t inflight; /* bytes in uv_write requests */

        struct tls *tls;
        bool tls_done;
        bool tls_plaintext;
        bool tls_seen_input;
        bool tls_closed; /* the peer's close_notify was read */
        char tls_err[160];

        bool reading;
        bool pumping; /* inside conn_tls_pump(): conn_flush() waits for its end */
        bool closing;
        bool closed_handles; /* uv_close() called */
        bool flush_on_close;
        int pending_error; /* reported from the timer, never from inside a call */
        uint64_t deadline; /* loop time when CONN_EV_TIMEOUT is due; 0: none */
        uint64_t trim_at;  /* loop time to give back idle TLS memory; 0: none */
        int err;
        int handles_open;

        struct sockaddr_storage peer_addr, local_addr;
        char peer[64];
        char peer_ip[48];
        unsigned peer_port;

        /* conn_expect_proxy(): the header's bytes so far, and what it came to. */
        bool proxy_wait;
        struct buf proxy;
        char via[64]; /* the balancer's "ip:port" once a header named a client */
        char proxy_err[128];
        const struct proxyproto_hdr *proxy_hdr; /* during CONN_EV_PROXY only */
};

struct conn_write_req {
        uv_write_t req;
        struct conn *c;
        char *mem;
        size_t len;
};

static const char *const conn_event_names[] = {
    "connected", "read",    "drained", "tls_done", "tls_failed",   "eof",
    "error",     "timeout", "closed",  "proxy",    "proxy_failed",
};

const char *conn_event_str(enum conn_event ev)
{
        if ((size_t)ev < UTIL_ARRAY_LEN(conn_event_names))
                return conn_event_names[ev];
        return "?";
}

static void conn_emit(struct conn *c, enum conn_event ev)
{
        c->cb(c, ev, c->arg);
}

void conn_ip_str(const struct sockaddr *sa, char *out, size_t outlen)
{
        char ip[INET6_ADDRSTRLEN] = "?";

        if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip,
                          sizeof(ip));
        else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
                          sizeof(ip));
        snprintf(out, outlen, "%s", ip);
}

void conn_addr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
        char ip[INET6_ADDRSTRLEN] = "?";

        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

                inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
                snprintf(out, outlen, "%s:%u", ip, ntohs(s4->sin_port));
        } else if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

                inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
                snprintf(out, outlen, "[%s]:%u", ip, ntohs(s6->sin6_port));
        } else {
                snprintf(out, outlen, "?");
        }
}

/* The strings kept for peer_addr. */
static void conn_peer_strings(struct conn *c)
{
        conn_addr_str((struct sockaddr *)&c->peer_addr, c->peer, sizeof(c->peer));
        conn_ip_str((struct sockaddr *)&c->peer_addr, c->peer_ip, sizeof(c->peer_ip));
        if (c->peer_addr.ss_family == AF_INET)
                c->peer_port =
                    ntohs(((const struct sockaddr_in *)&c->peer_addr)->sin_port);
        else if (c->peer_addr.ss_family == AF_INET6)
                c->peer_port =
                    ntohs(((const struct sockaddr_in6 *)&c->peer_addr)->sin6_port);
}

/*
 * An IPv4 client reaching an IPv6 socket (a dual-stack listener), or named
 * so by a PROXY header, has IPv4-mapped addresses (::ffff:192.0.2.1): make
 * them IPv4, as Postfix does, so that XCLIENT, logs, the client's name
 * lookup and max_per_client see the address as IPv4 rules name it. Each
 * end on its own: a PROXY v1 header may pair a mapped client with an IPv6
 * destination (TCP6 ::ffff:192.0.2.1 ::1); the PROXY header sent on puts
 * such a pair back into one family (relay_as_in6()).
 */
static void conn_unmap(struct sockaddr_storage *peer, struct sockaddr_storage *local)
{
        struct sockaddr_storage *ss[2] = {peer, local};

        for (int i = 0; i < 2; i++) {
                struct sockaddr_in6 s6 = *(const struct sockaddr_in6 *)ss[i];
                struct sockaddr_in *s4 = (struct sockaddr_in *)ss[i];

                if (ss[i]->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
                        continue;
                memset(ss[i], 0, sizeof(*ss[i]));
                s4->sin_family = AF_INET;
                s4->sin_port = s6.sin6_port;
                memcpy(&s4->sin_addr, &s6.sin6_addr.s6_addr[12], 4);
        }
}

static void conn_fill_addrs(struct conn *c)
{
        int len = sizeof(c->peer_addr);

        memset(&c->peer_addr, 0, sizeof(c->peer_addr));
        memset(&c->local_addr, 0, sizeof(c->local_addr));
        uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer_addr, &len);
        len = sizeof(c->local_addr);
        uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&c->local_addr, &len);
        conn_unmap(&c->peer_addr, &c->local_addr);
        conn_peer_strings(c);
}

struct conn_loop *conn_loop_new(struct uv_loop_s *loop)
{
        struct conn_loop *cl = xcalloc(1, sizeof(*cl));

        cl->magic = CONN_LOOP_MAGIC;
        cl->loop = loop;
        return cl;
}

void conn_loop_reserve(struct conn_loop *cl, uint64_t from)
{
        UTIL_CHECK_MAGIC(cl, CONN_LOOP_MAGIC);
        cl->reserve = from > INT_MAX ? 0 : (int)from;
}

void conn_loop_free(struct conn_loop *cl)
{
        if (cl == NULL)
                return;
        UTIL_CHECK_MAGIC(cl, CONN_LOOP_MAGIC);
        free(cl->readbuf);
        cl->magic = 0;
        free(cl);
}

static struct conn *conn_alloc(struct conn_loop *cl, conn_cb cb, void *arg)
{
        struct conn *c = xcalloc(1, sizeof(*c));
        uv_loop_t *loop = cl->loop;

        UTIL_CHECK_MAGIC(cl, CONN_LOOP_MAGIC);
        c->magic = CONN_MAGIC;
        c->cl = cl;
        c->cb = cb;
        c->arg = arg;
        buf_init(&c->in);
        buf_init(&c->proxy);
        buf_init(&c->out);
        uv_tcp_init(loop, &c->tcp);
        uv_timer_init(loop, &c->timer);
        c->tcp.data = c;
        c->timer.data = c;
        c->connect_req.data = c;
        c->handles_open = 2;
        return c;
}

static void conn_close_cb(uv_handle_t *h)
{
        struct conn *c = h->data;

        UTIL_CHECK_MAGIC(c, CONN_MAGIC);
        if (--c->handles_open == 0)
                conn_emit(c, CONN_EV_CLOSED);
}

/* Close the handles now; CONN_EV_CLOSED follows from the loop. */
static void conn_close_handles(struct conn *c)
{
        if (c->closed_handles)
                return;
        c->closed_handles = true;
        uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
        uv_close((uv_handle_t *)&c->timer, conn_close_cb);
}

static void conn_timer_cb(uv_timer_t *t);

/*
 * Make the timer fire within ms from now. The relay sets a deadline after
 * every event, so an armed timer due no later is kept rather than restarted
 * (a heap update in libuv each time); conn_timer_cb() re-arms it for whatever
 * is still due when it fires early.
 */
static void conn_timer_within(struct conn *c, uint64_t ms)
{
        if (uv_is_active((uv_handle_t *)&c->timer) &&
            uv_timer_get_due_in(&c->timer) <= ms)
                return;
        uv_timer_start(&c->timer, conn_timer_cb, ms, 0);
}

/* Report an error from the loop (via the timer), never from inside a call. */
static void conn_defer_error(struct conn *c, int err)
{
        if (c->pending_error != 0 || c->closing)
                return;
        c->pending_error = err;
        c->err = err;
        uv_timer_start(&c->timer, conn_timer_cb, 0, 0);
}

/* The owner of a conn that never reached it: free it once closed. */
static void conn_free_when_closed(struct conn *c, enum conn_event ev, void *arg)
{
        (void)arg;
        if (ev == CONN_EV_CLOSED)
                conn_free(c);
}

struct conn *conn_accept(struct conn_loop *cl, struct uv_stream_s *server, conn_cb cb,
                         void *arg, int *err)
{
        struct conn *c;
        int r;

        if (server->loop != cl->loop)
                fatalx("conn_accept: the listener runs on another loop");
        c = conn_alloc(cl, cb, arg);
        r = uv_accept(server, (uv_stream_t *)&c->tcp);

        if (r < 0) {
                *err = r;
                c->closing = true;
                c->cb = conn_free_when_closed;
                conn_close_handles(c);
                return NULL;
        }
        uv_tcp_nodelay(&c->tcp, 1);
        conn_fill_addrs(c);
        return c;
}

static void conn_connect_cb(uv_connect_t *req, int status)
{
        struct conn *c = req->data;

        UTIL_CHECK_MAGIC(c, CONN_MAGIC);
        if (c->closing)
                return;
        if (status < 0) {
                c->err = status;
                conn_emit(c, CONN_EV_ERROR);
                return;
        }
        uv_tcp_nodelay(&c->tcp, 1);
        conn_fill_addrs(c);
        conn_emit(c, CONN_EV_CONNECTED);
}

/*
 * The connection's socket, made here rather than by uv_tcp_connect() so that
 * its number is known before anything is sent: one from the loop's reserve
 * is closed again (UV_EMFILE). Bound to src when it is not NULL:
 * IP_BIND_ADDRESS_NO_PORT leaves the port to connect(), which picks it for
 * the whole address pair, so a bound source does not use up the ephemeral
 * ports by itself.
 */
static int conn_socket(struct conn *c, const struct sockaddr *addr,
                       const struct sockaddr *src)
{
        socklen_t len = src != NULL && src->sa_family == AF_INET6
                            ? sizeof(struct sockaddr_in6)
                            : sizeof(struct sockaddr_in);
        int one = 1, r;
        int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        if (c->cl->reserve > 0 && fd >= c->cl->reserve) {
                close(fd);
                return UV_EMFILE;
        }
        if (src != NULL) {
                (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                                 sizeof(one));
                if (bind(fd, src, len) != 0) {
                        r = -errno;
                        close(fd);
                        return r;
                }
        }
        r = uv_tcp_open(&c->tcp, fd);
        if (r != 0)
                close(fd);
        return r;
}

struct conn *conn_connect(struct conn_loop *cl, const struct sockaddr *addr,
                          const struct sockaddr *src, conn_cb cb, void *arg)
{
        struct conn *c = conn_alloc(cl, cb, arg);
        int r = 0;

        conn_addr_str(addr, c->peer, sizeof(c->peer));
        r = conn_socket(c, addr, src);
        if (r == 0)
                r = uv_tcp_connect(&c->connect_req, &c->tcp, addr, conn_connect_cb);
        if (r < 0) {
                c->err = r;
                conn_defer_error(c, r);
        }
        return c;
}

int conn_fileno(const struct conn *c)
{
        uv_os_fd_t fd;

        if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
                return -1;
        return fd;
}

void conn_free(struct conn *c)
{
        if (c == NULL)
                return;
        UTIL_CHECK_MAGIC(c, CONN_MAGIC);
        if (c->handles_open != 0)
                fatalx("conn_free: handles still open");
        tls_free(c->tls);
        buf_cleanup(&c->in);
        buf_cleanup(&c->out);
        buf_cleanup(&c->proxy);
        c->magic = 0;
        free(c);
}

struct buf *conn_input(struct conn *c)
{
        return &c->in;
}

size_t conn_queued(const struct conn *c)
{
        return c->inflight + buf_len(&c->out);
}

/* Move whatever TLS produced into the output queue: when that is empty (the
 * usual case), by taking over the TLS buffer's storage instead of a copy. */
static void conn_take_tls_output(struct conn *c)
{
        struct buf *o = tls_output(c->tls);
        struct buf tmp;

        if (buf_len(o) == 0)
                return;
        if (buf_len(&c->out) == 0) {
                tmp = c->out;
                c->out = *o;
                *o = tmp;
        } else {
                buf_append(&c->out, buf_data(o), buf_len(o));
                buf_consume(o, buf_len(o));
        }
        buf_shrink(o);
}

static void conn_write_cb(uv_write_t *req, int status)
{
        struct conn_write_req *w = (struct conn_write_req *)req;
        struct conn *c = w->c;

        UTIL_CHECK_MAGIC(c, CONN_MAGIC);
        c->inflight -= w->len;
        free(w->mem);
        free(w);
        if (status < 0) {
                if (status == UV_ECANCELED || c->closing) {
                        if (c->closing && c->inflight == 0)
                                conn_close_handles(c);
                        return;
                }
                c->err = status;
                conn_emit(c, CONN_EV_ERROR);
                return;
        }
        if (c->inflight == 0 && buf_len(&c->out) == 0) {
                if (c->closing)
                        conn_close_handles(c);
                else
                        conn_emit(c, CONN_EV_DRAINED);
        }
}

/* Write at once what the kernel takes of n bytes (uv_try_write). Returns how
 * many it took (0: none now), or -1 after an error, reported from the timer. */
static ssize_t conn_try_write(struct conn *c, const char *p, size_t n)
{
        uv_buf_t b = uv_buf_init((char *)p, n > INT_MAX ? INT_MAX : (unsigned)n);
        int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);

        if (r >= 0)
                return r;
        if (r == UV_EAGAIN || r == UV_ENOSYS)
                return 0;
        conn_defer_error(c, r);
        return -1;
}

/*
 * Send what is queued. With nothing in flight it is written at once
 * (uv_try_write): on loopback and on an uncongested link that is all of it,
 * with no write request, no completion callback, and no epoll_ctl() (libuv
 * re-arms the descriptor after every uv_write() that completes). What the
 * kernel does not take goes to uv_write(), which owns the storage from then.
 */
static void conn_flush_now(struct conn *c)
{
        struct conn_write_req *w;
        ssize_t took;
        uv_buf_t b;
        int r;

        if (buf_len(&c->out) == 0 || c->closed_handles || c->pending_error)
                return;
        if (c->inflight == 0) {
                took = conn_try_write(c, buf_data(&c->out), buf_len(&c->out));
                if (took < 0) {
                        buf_cleanup(&c->out);
                        return;
                }
                buf_consume(&c->out, (size_t)took);
                if (buf_len(&c->out) == 0) {
                        buf_shrink(&c->out);
                        return;
                }
        }
        w = xmalloc(sizeof(*w));
        w->c = c;
        w->len = buf_len(&c->out);
        /* Hand the buffer's storage over instead of copying it. */
        w->mem = c->out.data;
        b = uv_buf_init(c->out.data + c->out.off, (unsigned)w->len);
        buf_init(&c->out);
        c->inflight += w->len;
        r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb);
        if (r < 0) {
                c->inflight -= w->len;
                free(w->mem);
                free(w);
                conn_defer_error(c, r);
        }
}

/*
 * The owner's flush. While conn_tls_pump() emits events for what one read
 * brought, a little (less than CONN_DIRECT_MIN) waits: conn_tls_pump()
 * flushes once at its end, so wolfSSL's own records (a TLS 1.3 session
 * ticket after the handshake) and the owner's replies to what came in the
 * same read go out in one write. More goes at once, as always, so that an
 * owner that looks at conn_queued() for backpressure after its flush sees
 * only what the kernel did not take (the pump's final flush brings no event).
 */
void conn_flush(struct conn *c)
{
        if (!c->pumping || buf_len(&c->out) >= CONN_DIRECT_MIN)
                conn_flush_now(c);
}

/*
 * Queue n bytes for conn_flush(). Plaintext of CONN_DIRECT_MIN bytes or more
 * with nothing queued before it (message text, usually) is offered to the
 * kernel straight from the caller's memory instead of being copied into the
 * queue first; only what the kernel does not take is queued.
 */
void conn_write(struct conn *c, const void *p, size_t n)
{
        const char *s = p;
        ssize_t took;

        if (c->closing || n == 0)
                return;
        if (c->tls != NULL) {
                if (!c->tls_done || tls_write(c->tls, p, n) != TLS_OK)
                        fatalx("conn_write: TLS not ready");
                conn_take_tls_output(c);
                return;
        }
        if (n >= CONN_DIRECT_MIN && buf_len(&c->out) == 0 && c->inflight == 0 &&
            !c->closed_handles && !c->pending_error) {
                took = conn_try_write(c, s, n);
                if (took < 0)
                        return;
                s += took;
                n -= (size_t)took;
        }
        buf_append(&c->out, s, n);
}

/*
 * An established TLS session gives its idle memory back (tls_release_idle())
 * CONN_TRIM_MS after the handshake, not at once: a session that carries one
 * message and ends before then never pays for the madvise() and for the page
 * faults that the next session takes when it is given the same memory again.
 */
static void conn_trim_later(struct conn *c)
{
        c->trim_at = uv_now(c->tcp.loop) + CONN_TRIM_MS;
        conn_timer_within(c, CONN_TRIM_MS);
}

/* Decrypt everything available; emit events. What is written meanwhile is
 * queued, and conn_tls_pump() sends it. */
static void conn_tls_pump_events(struct conn *c)
{
        enum tls_result r;
        size_t before = buf_len(&c->in), got;

        if (!c->tls_done) {
                r = tls_handshake(c->tls);
                conn_take_tls_output(c);
                if (r == TLS_WANT)
                        return;
                if (r != TLS_OK) {
                        conn_flush_now(c); /* wolfSSL's alert, before the owner closes */
                        snprintf(c->tls_err, sizeof(c->tls_err), "%s", tls_error(c->tls));
                        c->reading = false;
                        uv_read_stop((uv_stream_t *)&c->tcp);
                        conn_emit(c, CONN_EV_TLS_FAILED);
                        return;
                }
                c->tls_done = true;
                conn_trim_later(c);
                conn_emit(c, CONN_EV_TLS_DONE);
                if (c->closing)
                        return;
                before = buf_len(&c->in);
        }
        for (;;) {
                char *p = buf_reserve(&c->in, 16384);

                r = tls_read(c->tls, p, 16384, &got);
                buf_unreserve(&c->in, r == TLS_OK ? 16384 - got : 16384);
                if (r != TLS_OK)
                        break;
        }
        /* wolfSSL may answer (key updates, alerts): it goes out with the rest. */
        conn_take_tls_output(c);
        if (buf_len(&c->in) > before) {
                conn_emit(c, CONN_EV_READ);
                if (c->closing)
                        return;
        }
        if (r == TLS_CLOSED) {
                c->tls_closed = true;
                conn_flush_now(c);
                conn_emit(c, CONN_EV_EOF);
        } else if (r == TLS_ERROR) {
                conn_flush_now(c);
                snprintf(c->tls_err, sizeof(c->tls_err), "%s", tls_error(c->tls));
                c->err = UV_EPROTO;
                conn_emit(c, CONN_EV_ERROR);
        }
}

static void conn_tls_pump(struct conn *c)
{
        c->pumping = true;
        conn_tls_pump_events(c);
        c->pumping = false;
        if (!c->closing)
                conn_flush_now(c);
}

/* Every read goes into the loop's buffer; conn_read_cb() empties it. */
static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
        struct conn *c = h->data;
        struct conn_loop *cl;

        (void)suggested;
        UTIL_CHECK_MAGIC(c, CONN_MAGIC);
        cl = c->cl;
        if (cl->readbuf == NULL)
                cl->readbuf = xmalloc(CONN_READ_SIZE);
        *b = uv_buf_init(cl->readbuf, CONN_READ_SIZE);
}

/* The peer's bytes p, n (not empty): plaintext for the owner, or TLS records. */
static void conn_take(struct conn *c, const char *p, size_t n)
{
        if (c->tls == NULL) {
                buf_append(&c->in, p, n);
                conn_emit(c, CONN_EV_READ);
                return;
        }
        if (!c->tls_seen_input) {
                c->tls_seen_input = true;
                /* A byte with the high bit set is no SMTP text: an SSLv2
                 * CLIENT-HELLO (old clients, scanners) is a handshake that
                 * fails, not plaintext injected. */
                if ((unsigned char)p[0] != CONN_TLS_RECORD_START &&
                    (unsigned char)p[0] != CONN_TLS_RECORD_ALERT &&
                    ((unsigned char)p[0] & 0x80) == 0) {
                        c->tls_plaintext = true;
                        snprintf(c->tls_err, sizeof(c->tls_err),
                                 "plaintext received where a TLS handshake was due");
                        c->reading = false;
                        uv_read_stop((uv_stream_t *)&c->tcp);
                        conn_emit(c, CONN_EV_TLS_FAILED);
                        return;
                }
        }
        /* Straight from the read buffer into wolfSSL; a partial record is kept. */
        tls_lend(c->tls, p, n);
        conn_tls_pump(c);
        tls_lend_end(c->tls);
}

/*
 * conn_expect_proxy(): gather the header from the first reads. Once it is
 * whole, the client it names becomes the peer, CONN_EV_PROXY tells the
 * owner (who may start TLS then), and what followed it is taken as read.
 */
static void conn_take_proxy(struct conn *c, const char *p, size_t n)
{
        struct proxyproto_hdr h;
        size_t len;
        long r;

        buf_append(&c->proxy, p, n);
        r = proxyproto_parse((const unsigned char *)buf_data(&c->proxy),
                             buf_len(&c->proxy), &h, c->proxy_err, sizeof(c->proxy_err));
        if (r == 0)
                return; /* bounded: the parser refuses more than a header's worth */
        c->proxy_wait = false;
        if (r < 0) {
                c->reading = false;
                uv_read_stop((uv_stream_t *)&c->tcp);
                buf_cleanup(&c->proxy);
                conn_emit(c, CONN_EV_PROXY_FAILED);
                return;
        }
        if (h.has_addrs) {
                snprintf(c->via, sizeof(c->via), "%s", c->peer);
                c->peer_addr = h.src;
                c->local_addr = h.dst;
                conn_unmap(&c->peer_addr, &c->local_addr);
                conn_peer_strings(c);
        }
        c->proxy_hdr = &h;
        conn_emit(c, CONN_EV_PROXY);
        c->proxy_hdr = NULL;
        len = buf_len(&c->proxy) - (size_t)r;
        if (!c->closing && len > 0)
                conn_take(c, buf_data(&c->proxy) + r, len);
        buf_cleanup(&c->proxy);
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
        struct conn *c = s->data;

        UTIL_CHECK_MAGIC(c, CONN_MAGIC);
        if (c->closing)
                return;
        if (nread == UV_EOF) {
                conn_emit(c, CONN_EV_EOF);
                return;
        }
        if (nread < 0) {
                c->err = (int)nread;
                conn_emit(c, CONN_EV_ERROR);
                return;
        }
        if (nread == 0)
                return;
        if (c->proxy_wait)
                conn_take_proxy(c, b->base, (size_t)nread);
        else
                conn_take(c, b->base, (size_t)nread);
}

void conn_expect_proxy(struct conn *c)
{
        c->proxy_wait = true;
}

const char *conn_via(const struct conn *c)
{
        return c->via;
}

const struct proxyproto_hdr *conn_proxy_header(const struct conn *c)
{
        return c->proxy_hdr;
}

const char *conn_proxy_error(const struct conn *c)
{
        return c->proxy_err;
}

void conn_read(struct conn *c, bool on)
{
        if (c->closing || c->closed_handles || c->reading == on)
                return;
        c->reading = on;
        if (on)
                uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
        else
                uv_read_stop((uv_stream_t *)&c->tcp);
}

int conn_start_tls(struct conn *c, struct tls_ctx *ctx, const char *servername,
                   const void *plain, size_t plain_len)
{
        struct tls *t;

        if (c->tls != NULL)
                fatalx("conn_start_tls: TLS already started");
        t = tls_new(ctx, servername);
        if (t == NULL) {
                snprintf(c->tls_err, sizeof(c->tls_err), "cannot create a TLS session");
                return -1;
        }
        /* A client speaks first: its ClientHello is ready at once. */
        if (tls_handshake(t) == TLS_ERROR) {
                snprintf(c->tls_err, sizeof(c->tls_err), "%s", tls_error(t));
                tls_free(t);
                return -1;
        }
        /* The last plaintext (220 to STARTTLS) goes out before any TLS byte. */
        buf_append(&c->out, plain, plain_len);
        c->tls = t;
        conn_take_tls_output(c);
        conn_flush_now(c);
        return 0;
}

bool conn_tls_active(const struct conn *c)
{
        return c->tls != NULL && c->tls_done;
}

struct tls *conn_tls(const struct conn *c)
{
        return c->tls;
}

const char *conn_tls_error(const struct conn *c)
{
        return c->tls_err;
}

bool conn_tls_plaintext(const struct conn *c)
{
        return c->tls_plaintext;
}

bool conn_tls_closed(const struct conn *c)
{
        return c->tls_closed;
}

/* Arm the timer for the earlier of the deadline and the trim, if any. */
static void conn_timer_rearm(struct conn *c, uint64_t now)
{
        uint64_t due = c->deadline;

        if (c->trim_at != 0 && (due == 0 || c->trim_at < due))
                due = c->trim_at;
        if (due != 0)
                conn_timer_within(c, due > now ? due - now : 0);
}

static void conn_timer_cb(uv_timer_t *t)
{
        struct conn *c = t->data;
        uint64_t now;

        UTIL_CHECK_MAGIC(c, CONN_MAGIC);
        if (c->closing) {
                conn_close_handles(c);
                return;
        }
        if (c->pending_error) {
                c->pending_error = 0;
                conn_emit(c, CONN_EV_ERROR);
                return;
        }
        now = uv_now(t->loop);
        if (c->trim_at != 0 && now >= c->trim_at) {
                c->trim_at = 0;
                tls_release_idle(c->tls);
        }
        if (c->deadline != 0 && now >= c->deadline) {
                c->deadline = 0;
                conn_emit(c, CONN_EV_TIMEOUT);
                if (c->closing || c->pending_error)
                        return;
                now = uv_now(t->loop);
        }
        /* Whatever is still due: a deadline moved later since the timer was
         * armed, the trim, or both (an owner that kept the conn at timeout). */
        conn_timer_rearm(c, now);
}

/*
 * CONN_EV_TIMEOUT after ms of this call (0: never). The timer is never
 * stopped here: when it fires with nothing due, conn_timer_cb() lets it go.
 */
void conn_timeout(struct conn *c, uint64_t ms)
{
        if (c->closed_handles || c->closing || c->pending_error)
                return;
        if (ms == 0) {
                /* An armed timer that fires now finds no deadline and stops. */
                c->deadline = 0;
                return;
        }
        c->deadline = uv_now(c->tcp.loop) + ms;
        conn_timer_within(c, ms);
}

void conn_close(struct conn *c, bool flush)
{
        if (c->closing)
                return;
        c->closing = true;
        c->flush_on_close = flush;
        if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = false;
        }
        if (flush && c->tls != NULL && c->tls_done) {
                tls_shutdown(c->tls);
                conn_take_tls_output(c);
        }
        if (flush && !c->pending_error)
                conn_flush_now(c);
        if (flush && c->inflight > 0) {
                uv_timer_start(&c->timer, conn_timer_cb, CONN_CLOSE_FLUSH_MS, 0);
                return;
        }
        conn_close_handles(c);
}

bool conn_closing(const struct conn *c)
{
        return c->closing;
}

int conn_errno(const struct conn *c)
{
        return c->err;
}

const char *conn_error(const struct conn *c)
{
        if (c->err == UV_EPROTO && c->tls_err[0] != '\0')
                return c->tls_err;
        return c->err ? uv_strerror(c->err) : "";
}

const char *conn_peer(const struct conn *c)
{
        return c->peer;
}

const char *conn_peer_ip(const struct conn *c)
{
        return c->peer_ip;
}

unsigned conn_peer_port(const struct conn *c)
{
        return c->peer_port;
}

const struct sockaddr_storage *conn_peer_addr(const struct conn *c)
{
        return &c->peer_addr;
}

const struct sockaddr_storage *conn_local_addr(const struct conn *c)
{
        return &c->local_addr;
}

int conn_original_dst(const struct conn *c, struct sockaddr_storage *out)
{
        uv_os_fd_t fd;
        socklen_t len = sizeof(*out);
        int r;

        if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
                return -EBADF;
        memset(out, 0, sizeof(*out));
        if (c->local_addr.ss_family == AF_INET6)
                r = getsockopt(fd, SOL_IPV6, CONN_IP6T_SO_ORIGINAL_DST, out, &len);
        else
                r = getsockopt(fd, SOL_IP, CONN_SO_ORIGINAL_DST, out, &len);
        if (r == 0)
                return 0;
        /* No NAT entry: TPROXY (or no redirect at all) keeps it as our local address. */
        *out = c->local_addr;
        return 1;
}
