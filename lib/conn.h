/*
 * conn: one leg of a session: a TCP connection (libuv) with an optional TLS
 * layer (struct tls) and one timer. The only module in lib/ that includes uv.h.
 *
 * Owner interface: one callback, `conn_cb`, with an event code; plaintext that
 * was read waits in conn_input() until the owner consumes it. Writes are
 * buffered with conn_write() and handed to the kernel by conn_flush(), one
 * write for everything queued (the owner calls it once at the end of each
 * event; for events that one TLS read brings, the conn sends once they have
 * all been handled, so wolfSSL's own records go out with the owner's reply).
 * When TLS is on, conn_write() encrypts.
 *
 * Reading: conn_read(c, true) starts reading; every read decrypts at once all
 * it can, so no plaintext hides inside wolfSSL; the owner stops reading when it
 * cannot take more (backpressure) and processes conn_input() itself when it
 * resumes: no event comes for bytes already buffered.
 *
 * TLS: conn_start_tls() begins a handshake; CONN_EV_TLS_DONE or
 * CONN_EV_TLS_FAILED follows. As a TLS server, a first byte that cannot begin
 * a TLS handshake record fails at once with conn_tls_plaintext() true: a peer
 * that spoke plaintext where TLS was due (STARTTLS injection, a plaintext
 * client on an implicit-TLS port).
 *
 * Memory: an idle conn holds no buffer. Every conn of one event loop reads
 * into the loop's one read buffer (struct conn_loop, made once per loop and
 * freed after its last conn); what a read brings is decrypted or copied into
 * conn_input() at once, and the owner shrinks that when it has consumed it.
 * A TLS session that stays open gives the pages that wolfSSL holds only as
 * zeros back a second after its handshake (tls_release_idle(), from the
 * conn's timer); one that ends sooner never pays for it.
 *
 * Lifetime: conn_close() closes the handles (after flushing what was written,
 * when `flush` is set, bounded by the timer); CONN_EV_CLOSED is the last
 * event, after which the owner frees with conn_free(). Never free inside a
 * callback chain before CONN_EV_CLOSED. Callbacks never re-enter: they come
 * from the event loop only, never from inside a conn_* call.
 */
#ifndef MAILWARD_CONN_H
#define MAILWARD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "tls.h"

struct uv_loop_s;
struct uv_stream_s;
struct conn;
struct conn_loop;
struct proxyproto_hdr;

enum conn_event {
        CONN_EV_CONNECTED,    /* outgoing connect succeeded */
        CONN_EV_READ,         /* new plaintext in conn_input() */
        CONN_EV_DRAINED,      /* every queued byte was written */
        CONN_EV_TLS_DONE,     /* handshake complete */
        CONN_EV_TLS_FAILED,   /* handshake failed: see conn_tls_error() */
        CONN_EV_EOF,          /* the peer closed (TCP FIN or TLS close_notify) */
        CONN_EV_ERROR,        /* connect, read or write failed: conn_error() */
        CONN_EV_TIMEOUT,      /* the timer set with conn_timeout() expired */
        CONN_EV_CLOSED,       /* handles closed; conn_free() may be called now */
        CONN_EV_PROXY,        /* conn_expect_proxy(): the header was read */
        CONN_EV_PROXY_FAILED, /* it was not a header: conn_proxy_error() */
};

typedef void (*conn_cb)(struct conn *c, enum conn_event ev, void *arg);

const char *conn_event_str(enum conn_event ev);

/*
 * What the conns of one event loop share: its read buffer (allocated at the
 * first read). Free it only after every conn made with it has been freed.
 */
struct conn_loop *conn_loop_new(struct uv_loop_s *loop);
void conn_loop_free(struct conn_loop *cl);
/*
 * Keep the descriptors numbered `from` and up for accepted connections (0:
 * keep none): a conn_connect() whose socket would be one of them fails, with
 * CONN_EV_ERROR and conn_errno() UV_EMFILE, as if none were left. Accepts
 * may still take them; their owner decides what to do with such a
 * connection (conn_fileno()).
 */
void conn_loop_reserve(struct conn_loop *cl, uint64_t from);

/* Accept a pending connection on a listening stream of cl's loop. NULL (and
 * errno-style code in *err) if accept fails. */
struct conn *conn_accept(struct conn_loop *cl, struct uv_stream_s *server, conn_cb cb,
                         void *arg, int *err);
/* Start connecting to addr, from src (an address of this host, port 0) when
 * not NULL; CONN_EV_CONNECTED or CONN_EV_ERROR follows (from the loop, even
 * when the connect fails at once). */
struct conn *conn_connect(struct conn_loop *cl, const struct sockaddr *addr,
                          const struct sockaddr *src, conn_cb cb, void *arg);
void conn_free(struct conn *c);
/* The connection's descriptor, -1 when it has none. */
int conn_fileno(const struct conn *c);

void conn_read(struct conn *c, bool on);
/*
 * The connection comes from a load balancer that begins it with a PROXY
 * protocol header (lib/proxyproto.h): read that before anything else.
 * CONN_EV_PROXY once it is read: conn_peer() and the other addresses are
 * then the client's and the address it connected to, as the header names
 * them, and conn_via() the balancer's (unchanged, and conn_via() "", for a
 * header that names no client: a health check). The owner may start TLS
 * then; the bytes that followed the header are taken as read after the
 * event. conn_proxy_header() is the header as read (its TLVs among it)
 * while CONN_EV_PROXY is delivered, and NULL otherwise. CONN_EV_PROXY_FAILED
 * (reading stopped) when the bytes are not a header, with the reason in
 * conn_proxy_error().
 */
void conn_expect_proxy(struct conn *c);
const char *conn_via(const struct conn *c);
const struct proxyproto_hdr *conn_proxy_header(const struct conn *c);
const char *conn_proxy_error(const struct conn *c);
struct buf *conn_input(struct conn *c);

void conn_write(struct conn *c, const void *p, size_t n);
void conn_flush(struct conn *c);
/* Bytes handed to the kernel path or waiting for flush, not yet written. */
size_t conn_queued(const struct conn *c);

/*
 * Start TLS; `plain` (may be NULL/0) is the last plaintext written before it,
 * e.g. the 220 reply to STARTTLS. On failure (-1) nothing was written and the
 * connection is still plaintext, so the owner can still answer (454).
 */
int conn_start_tls(struct conn *c, struct tls_ctx *ctx, const char *servername,
                   const void *plain, size_t plain_len);
bool conn_tls_active(const struct conn *c);
struct tls *conn_tls(const struct conn *c);
const char *conn_tls_error(const struct conn *c);
bool conn_tls_plaintext(const struct conn *c);
/*
 * The peer ended its TLS session with a close_notify (CONN_EV_EOF then came
 * from it, not from a bare TCP FIN, which anyone on the path can forge).
 */
bool conn_tls_closed(const struct conn *c);

/* CONN_EV_TIMEOUT after ms (ms == 0: none). The conn's one timer serves this,
 * the close flush and the idle trim above. */
void conn_timeout(struct conn *c, uint64_t ms);

void conn_close(struct conn *c, bool flush);
bool conn_closing(const struct conn *c);

/* The last libuv error as text (uv_strerror), or "". */
const char *conn_error(const struct conn *c);
/* The same as a libuv code (a negative errno: UV_EMFILE), or 0. */
int conn_errno(const struct conn *c);
/* "ip:port" of the peer and the local end, and the peer's IP alone. */
const char *conn_peer(const struct conn *c);
const char *conn_peer_ip(const struct conn *c);
unsigned conn_peer_port(const struct conn *c);
const struct sockaddr_storage *conn_peer_addr(const struct conn *c);
const struct sockaddr_storage *conn_local_addr(const struct conn *c);

/*
 * Where the peer meant to connect before an nftables/iptables redirect
 * (SO_ORIGINAL_DST): 0. With no NAT entry (TPROXY, or no redirect) the local
 * address is given and 1 returned; the caller decides whether that is
 * acceptable. Negative on error.
 */
int conn_original_dst(const struct conn *c, struct sockaddr_storage *out);

/* Write a sockaddr as "ip:port" ("[v6]:port"), or its address alone ("?": neither). */
void conn_addr_str(const struct sockaddr *sa, char *out, size_t outlen);
void conn_ip_str(const struct sockaddr *sa, char *out, size_t outlen);

#endif
