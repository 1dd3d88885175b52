/*
 * relay: the SMTP session state machine. See relay.h and DESIGN.md.
 *
 * One function per event source (relay_client_cb, relay_server_cb) changes
 * state and buffers; relay_run(), called at the end of every event, is the
 * one strategy function that decides what each leg does next: which replies
 * go out, whether each side reads, which timer runs, whether the session ends.
 */
#include "relay.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "dane.h"
#include "learned.h"
#include "policy.h"
#include "proxyproto.h"
#include "smtp.h"
#include "sts.h"
#include "tlsrpt.h"
#include "tls.h"
#include "util.h"

#define RELAY_SESSION_MAGIC 0x72656c61U
#define RELAY_HIGH_WATER    (256 * 1024) /* bytes queued towards a slow peer */
#define RELAY_REPLY_MAX     (64 * 1024)  /* one backend reply, all lines */
#define RELAY_FIFO_MAX      100          /* pipelined commands awaiting replies */
#define RELAY_HELO_MAX      255          /* the longest EHLO name taken */
/* An XCLIENT value, as sent (xtext): Postfix refuses a longer one with
 * "501 5.5.4 Error: attribute value too long". */
#define RELAY_XCLIENT_VALUE 255
/* The longest line mailward itself sends a server: XCLIENT with its NAME
 * and HELO at RELAY_XCLIENT_VALUE and an IPv6 ADDR. */
#define RELAY_SERVER_LINE                                                                \
        (sizeof("XCLIENT NAME= ADDR=IPV6: PORT=65535 PROTO=ESMTP HELO=\r\n") +           \
         2 * RELAY_XCLIENT_VALUE + INET6_ADDRSTRLEN)
#define RELAY_NAME_LOOKUPS 16   /* client name lookups at once, a process */
#define RELAY_NAME_WAIT_MS 5000 /* how long XCLIENT waits for one */
/* Errors mailward answers itself before it hangs up: Postfix's
 * smtpd_hard_error_limit and its default. */
#define RELAY_ERROR_LIMIT 20
/* Commands that move no mail (NOOP, RSET, VRFY, EXPN, HELP, ETRN, EHLO,
 * HELO) a session may send before each counts as an error (Postfix's
 * smtpd_junk_command_limit): with the error limit, a client cannot hold a
 * session for ever by sending them within every timeout. */
#define RELAY_JUNK_LIMIT     100
#define RELAY_READ_AHEAD     (64 * 1024) /* client bytes read while a reply is awaited */
#define RELAY_MS             1000ULL
#define RELAY_TLSRPT_DOMAINS (16 * 1024)      /* bytes of domains with a TLS-RPT result */
#define RELAY_PRUNE_AGAIN_MS (3600 * 1000ULL) /* a full learned store, pruned in vain */
/* A command this listener does not take (STARTTLS on a plain one, XCLIENT...). */
#define RELAY_REPLY_UNAVAILABLE "502 5.5.1 Error: command not available"
#define RELAY_AUTH_LINE_MAX     12288 /* RFC 4954 section 4: AUTH lines may be this long */

enum relay_state {
        RELAY_S_HANDSHAKE, /* implicit TLS: handshake before the greeting */
        RELAY_S_COMMAND,   /* reading command lines */
        RELAY_S_STARTTLS,  /* 220 to STARTTLS queued or sent; handshake under way */
        RELAY_S_WAIT,      /* a reply decides how to read on (DATA, AUTH) */
        RELAY_S_DATA,      /* message text, up to CRLF.CRLF */
        RELAY_S_BDAT,      /* a BDAT chunk's bytes */
        RELAY_S_AUTH,      /* the next line is an AUTH response */
        RELAY_S_POLICY,    /* outbound: a RCPT waits for its domain's MTA-STS lookup */
        RELAY_S_PROXY,     /* accept_proxy: the balancer's PROXY header, first */
        RELAY_S_CLOSING,
};

enum relay_bstate {
        RELAY_B_NONE,       /* no backend connection */
        RELAY_B_CONNECTING, /* TCP (and implicit TLS) under way */
        RELAY_B_SETUP,      /* greeting, STARTTLS, XCLIENT, EHLO replay */
        RELAY_B_READY,      /* commands flow */
};

enum relay_step {
        RELAY_STEP_TLS,       /* TLS handshake with the backend */
        RELAY_STEP_GREETING,  /* 220 */
        RELAY_STEP_EHLO_OURS, /* 250 to EHLO <our hostname> */
        RELAY_STEP_STARTTLS,  /* 220 to STARTTLS */
        RELAY_STEP_XCLIENT,   /* 220 to XCLIENT */
        RELAY_STEP_HELO,      /* 250 to the client's replayed EHLO/HELO */
        RELAY_STEP_QUIT,      /* probe: 221 */
};

/* What to do with a backend reply; RELAY_A_LOCAL entries are made by us. */
enum relay_action {
        RELAY_A_LOCAL,
        RELAY_A_FORWARD,
        RELAY_A_EHLO,     /* edit the capability list */
        RELAY_A_DATA,     /* 354 switches the client to message text */
        RELAY_A_AUTH,     /* 334 means another AUTH line follows */
        RELAY_A_MESSAGE,  /* the final reply to a message (end of DATA, BDAT LAST) */
        RELAY_A_QUIT,     /* close after forwarding */
        RELAY_A_STARTTLS, /* local 220: start TLS once it is written */
        RELAY_A_OUT_EHLO, /* outbound: the client's EHLO, answered once TLS is decided */
        RELAY_A_OUT_MAIL, /* outbound: a MAIL sent late; swallowed unless it fails */
        RELAY_A_OUT_RCPT, /* outbound: a RCPT, after a late MAIL: the MAIL's error wins */
};

/* Outbound: mailward's own commands while it reaches TLS for the client's EHLO. */
enum relay_out_step {
        RELAY_OUT_NONE,
        RELAY_OUT_STARTTLS, /* 220 to our STARTTLS */
        RELAY_OUT_TLS,      /* handshake */
        RELAY_OUT_EHLO,     /* 250 to the client's EHLO, repeated over TLS */
};

/* Outbound: what the server side did, for judging each recipient domain. */
struct relay_observed {
        bool starttls_offered;
        char masked[SMTP_CAP_LEN]; /* a capability that looks like a masked STARTTLS */
        int starttls_reply;        /* code to our STARTTLS; 0: not sent */
        bool injection;            /* bytes after the server's 220 to STARTTLS */
        bool tls_reached;
        char tls_error[160];
        char version[16];
        char cipher[64];
        struct tls_peer peer;
};

/* client_name_lookup: one lookup of a client's host name (relay_name_start()). */
struct relay_name {
        uv_getnameinfo_t ni;
        uv_getaddrinfo_t ai;
        struct relay_env *env;
        struct relay_session *s; /* NULL once the session is gone */
        struct sockaddr_storage addr;
        char host[NI_MAXHOST];
};

struct relay_pending {
        enum relay_action action;
        unsigned txn; /* outbound MAIL and RCPT: the transaction (relay_out_state) */
        bool ready;
        char *text;
        size_t len;
        struct relay_pending *next;
};

struct relay_listener {
        struct relay_env *env;
        struct conn_loop *cloop; /* its conns' read buffer: relay_cloop() */
        const struct config_listener *conf;
        struct tls_ctx *tls_server;
        struct tls_ctx *tls_client;
        struct sockaddr_storage fwd_addr;
        char fwd_host[256];
        struct sockaddr_storage fwd_src; /* forward_source (port 0); family 0: none */
        struct smtp_caps caps;
        /* The learned store was full with nothing stale in it: not pruned
         * again before this time (monotonic ms), so that each message does
         * not scan it all. */
        uint64_t learned_prune_ms;
        bool caps_known;
        bool draining;
        bool probing;
        bool reprobe; /* forward moved while a probe ran: another when it ends */
        struct pending probe_waits; /* EHLOs waiting for the first probe's caps */
        unsigned nsessions;
        struct relay_session *sessions;
        bool outbound;         /* forward_tls = policy */
        bool original_dst;     /* forward = original-dst */
        struct policy *policy; /* outbound: the table (may be empty) */
        struct sts *sts;       /* outbound with mta_sts: the domains' policies */
        struct dane *dane;     /* outbound: TLSA records, for dane and dane-only */
        /* accept_proxy: the balancers that may name clients (proxy_from). */
        struct util_net proxy_from[CONFIG_MAX_PROXY_FROM];
        unsigned nproxy_from;
};

/* An outbound session's own state, allocated only for outbound sessions. */
struct relay_out_state {
        bool helo_tried; /* the server refused EHLO: HELO was sent instead */
        struct sockaddr_storage dst;
        char dst_str[64];
        bool banner_sent;
        bool plain_fallback; /* TLS failed: a plaintext reconnect for none/may */
        enum relay_out_step step;
        struct smtp_caps caps; /* what this server session offers */
        char greeting[SMTP_CAP_LEN];
        struct relay_observed obs;
        char *held_mail;  /* the MAIL line, sent once a recipient passes */
        bool report_mail; /* MAIL FROM is tlsrpt_from: TLS needed, no certificate check */
        bool to_relay;    /* the destination is the listener's relayhost (dane.h) */
        bool mail_sent;
        unsigned rcpt_passed;
        /* Transactions are numbered (relay_out_reset() starts the next); a
         * late MAIL's error answers the RCPTs of its own one only. */
        unsigned txn;
        char *late_mail_error;      /* a late MAIL's error, for the RCPTs behind it */
        size_t late_mail_error_len; /* all of it: a NUL the server sent included */
        unsigned late_txn;
        struct pending_wait *lookup_wait; /* RELAY_S_POLICY: the lookup waited for */
        char *lookup_rcpt;                /* RELAY_S_POLICY: the RCPT line that waits */
        struct buf tlsrpt_done; /* "\ndomain\n" for each domain with a TLS-RPT result */
};

struct relay_session {
        unsigned magic;
        struct relay_listener *l;
        struct relay_session *prev, *next;
        char id[32];
        struct conn *client;
        struct conn *server;
        int open; /* conns not yet CLOSED */
        bool probe;
        bool counted;
        bool fd_handshake;  /* refused in the reserve, after a TLS handshake */
        const char *refuse; /* why the session is refused at its greeting */
        enum relay_state state;
        enum relay_bstate bstate;
        enum relay_step step;
        bool tls;
        bool server_tls;
        enum smtp_verb helo_verb;
        char *helo;
        struct smtp_lines clines, dlines, slines;
        struct smtp_reply sreply;
        struct buf sreply_buf;
        struct relay_pending *head, *tail;
        unsigned fifo_len;
        struct buf to_server; /* commands waiting until the backend is ready */
        uint64_t bdat_left;
        bool bdat_discard;
        const char *poison; /* DATA refused: the reply due at its end */
        bool data_crlf;     /* the last DATA line ended with CRLF */
        bool cmd_bare_lf;   /* inside a command line that held a bare LF */
        bool cmd_bdat;      /* the command line being read starts with BDAT */
        /* Inbound: mailward's EHLO reply to this client listed CHUNKING. */
        bool chunking_offered;
        bool plaintext_alerted;
        bool refused_alerted; /* plaintext_refused: one alert a session */
        unsigned errors;      /* 4xx/5xx mailward answered, since the last message */
        unsigned junk;        /* RELAY_JUNK_LIMIT's commands, since the last message */
        /* Inbound: a MAIL went to the backend and its message has not ended,
         * or the client logged in there: that backend session cannot be
         * replaced by another without the client knowing. */
        bool txn;
        bool authed;
        /* client_name_lookup: the lookup under way (NULL when done or
         * none), its result, and whether XCLIENT waits for it. */
        struct relay_name *name_req;
        char *client_name;
        bool name_wait;
        bool quit;
        /* Set, nothing more is read: the session ends after its last reply. */
        const char *quit_reason;
        bool client_eof; /* the client closed while a reply was awaited */
        bool out;        /* an outbound session: o is set */
        struct relay_out_state *o;
        /* forward_verify = dane: the smarthost's DANE lookup waited for */
        struct pending_wait *wrap_wait;
        /* An EHLO answered once the listener's first probe has ended. */
        struct pending_wait *caps_wait;
        struct relay_pending *caps_reply;
        unsigned messages;
        uint64_t started_ms;
        /* Since when the client owes its next command line (relay_run());
         * 0: it does not now. */
        uint64_t line_wait_ms;
        /* Since when the server owes its next complete reply
         * (relay_server_deadline()); 0: it does not now. */
        uint64_t reply_wait_ms;
        char reason[128];
};

static void relay_run(struct relay_session *s);

static enum relay_out_step relay_out_step(const struct relay_session *s)
{
        return s->o != NULL ? s->o->step : RELAY_OUT_NONE;
}

static void relay_backend_connect(struct relay_session *s);
static void relay_close(struct relay_session *s, const char *reason);
static bool relay_out_command(struct relay_session *s, const struct smtp_cmd *cmd,
                              const char *line, size_t len);
static void relay_out_ehlo_reply(struct relay_session *s, int code);
static void relay_out_step_reply(struct relay_session *s, int code);
static void relay_out_reset(struct relay_session *s);
static void relay_out_tls_done(struct relay_session *s);
static void relay_out_tls_lost(struct relay_session *s, const char *why);
static void relay_out_start(struct relay_session *s);
static void relay_name_abandon(struct relay_session *s);
static int relay_out_listener_init(struct relay_listener *l, char *err, size_t errlen);

static const char *const relay_state_names[] = {
    "handshake", "command", "starttls", "wait",  "data",
    "bdat",      "auth",    "policy",   "proxy", "closing",
};

static uint64_t relay_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void relay_log(struct relay_session *s, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void relay_log(struct relay_session *s, enum log_level lvl, const char *fmt, ...)
{
        char line[1024];
        va_list ap;

        if (!log_enabled(s->l->env->log, lvl))
                return;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        log_emit(s->l->env->log, lvl, s->id, "%s", line);
}

static void relay_enter_state(struct relay_session *s, enum relay_state st)
{
        if (s->state == st)
                return;
        relay_log(s, LOG_LVL_DEBUG, "event=state from=%s to=%s",
                  relay_state_names[s->state], relay_state_names[st]);
        s->state = st;
}

static void relay_alert(struct relay_session *s, enum alert_event ev,
                        enum alert_severity sev, const char *action, const char *domain,
                        const char *observed, const char *reason)
{
        struct alert a = {
            .event = ev,
            .severity = sev,
            .session = s->id,
            .listener = s->l->conf->name,
            .client = s->client ? conn_peer(s->client) : NULL,
            .server = s->server ? conn_peer(s->server) : NULL,
            .action = action,
            .domain = domain,
            .observed = observed,
            .reason = reason,
        };

        alert_emit(s->l->env->alerts, &a);
}

/* ---- the reply FIFO ---- */

static struct relay_pending *relay_fifo_push(struct relay_session *s, enum relay_action a)
{
        struct relay_pending *p = xcalloc(1, sizeof(*p));

        p->action = a;
        if (s->tail)
                s->tail->next = p;
        else
                s->head = p;
        s->tail = p;
        s->fifo_len++;
        return p;
}

static void relay_pending_set(struct relay_pending *p, const char *text, size_t len)
{
        free(p->text);
        p->text = xstrndup(text, len);
        p->len = len;
        p->ready = true;
}

/* Queue a reply of our own; it goes out when every earlier reply has. */
static void relay_reply(struct relay_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void relay_reply(struct relay_session *s, const char *fmt, ...)
{
        struct relay_pending *p = relay_fifo_push(s, RELAY_A_LOCAL);
        char line[600];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n > sizeof(line) - 3)
                n = (int)sizeof(line) - 3;
        memcpy(line + n, "\r\n", 2);
        relay_pending_set(p, line, (size_t)n + 2);
        if (line[0] == '4' || line[0] == '5')
                s->errors++;
}

static struct relay_pending *relay_fifo_unanswered(const struct relay_session *s)
{
        struct relay_pending *p;

        for (p = s->head; p != NULL; p = p->next) {
                if (!p->ready)
                        return p;
        }
        return NULL;
}

/*
 * The command the server's next reply answers: the oldest entry not yet
 * answered that went to the server. An entry of our own that is not ready
 * yet (an EHLO waiting for the listener's first probe, caps_reply) is never
 * one: a reply given to it would leave its command's entry waiting, shift
 * every later reply onto the command before it, and let the entry be
 * written and freed while relay_caps_cb() still holds it.
 */
static struct relay_pending *relay_fifo_awaiting(const struct relay_session *s)
{
        struct relay_pending *p;

        for (p = s->head; p != NULL; p = p->next) {
                if (!p->ready && p->action != RELAY_A_LOCAL)
                        return p;
        }
        return NULL;
}

static void relay_fifo_pop(struct relay_session *s)
{
        struct relay_pending *p = s->head;

        s->head = p->next;
        if (s->head == NULL)
                s->tail = NULL;
        s->fifo_len--;
        free(p->text);
        free(p);
}

static void relay_fifo_clear(struct relay_session *s)
{
        while (s->head)
                relay_fifo_pop(s);
}

/* ---- the client side ---- */

/* poison: the backend went away during the message (relay_backend_failed()). */
static const char relay_poison_lost[] = "421 4.4.2 backend lost";

static const char *const relay_caps_allowed[] = {
    "SIZE",     "8BITMIME",   "SMTPUTF8", "PIPELINING",
    "CHUNKING", "BINARYMIME", "DSN",      "ENHANCEDSTATUSCODES",
    "AUTH",     NULL,
};

static const char *relay_hostname(const struct relay_session *s)
{
        return s->l->conf->hostname;
}

/*
 * The splitter takes AUTH-sized lines; every other command is held to
 * max_line once it is whole (relay_client_commands).
 */
static size_t relay_line_max(const struct config_listener *lc)
{
        return lc->max_line > RELAY_AUTH_LINE_MAX ? lc->max_line : RELAY_AUTH_LINE_MAX;
}

/* The EHLO reply the client sees: the backend's list, edited for this leg. */
static void relay_ehlo_text(struct relay_session *s, const struct smtp_caps *from,
                            struct buf *out)
{
        struct smtp_caps c;

        if (from != NULL) {
                c = *from;
        } else {
                memset(&c, 0, sizeof(c));
                smtp_caps_add(&c, "PIPELINING");
                smtp_caps_add(&c, "8BITMIME");
                smtp_caps_add(&c, "ENHANCEDSTATUSCODES");
        }
        smtp_caps_filter(&c, relay_caps_allowed);
        /* AUTH only over TLS: the client's, or, for a plaintext-only client
         * (accept_tls = none, relayed as such), the verified TLS to the
         * backend (a smarthost's login crosses the network inside it). */
        if (!s->tls && !(s->l->conf->accept_tls == CONFIG_TLS_NONE &&
                         s->l->conf->forward_tls != CONFIG_TLS_NONE &&
                         s->l->conf->forward_verify != CONFIG_VERIFY_NO))
                smtp_caps_remove(&c, "AUTH");
        if (s->l->conf->accept_tls == CONFIG_TLS_STARTTLS && !s->tls)
                smtp_caps_add(&c, "STARTTLS");
        s->chunking_offered = smtp_caps_has(&c, "CHUNKING");
        smtp_caps_print(&c, relay_hostname(s), out);
}

static void relay_forget_helo(struct relay_session *s)
{
        free(s->helo);
        s->helo = NULL;
        s->helo_verb = SMTP_VERB_UNKNOWN;
        s->chunking_offered = false;
}

static void relay_to_server(struct relay_session *s, const char *p, size_t n)
{
        if (s->bstate == RELAY_B_READY)
                conn_write(s->server, p, n);
        else
                buf_append(&s->to_server, p, n);
}

static void relay_to_server_line(struct relay_session *s, const char *line, size_t len)
{
        relay_to_server(s, line, len);
        relay_to_server(s, "\r\n", 2);
}

static void relay_fail(struct relay_session *s, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void relay_need_backend(struct relay_session *s)
{
        if (s->bstate != RELAY_B_NONE)
                return;
        /*
         * Outbound, the destination was judged on the connection that is gone:
         * a new one would be plaintext. Only a fallback that judging allowed
         * (none/may after a failed handshake) reconnects.
         */
        if (s->out && !s->o->plain_fallback) {
                relay_fail(s, "destination_lost",
                           "421 4.4.2 %s Error: connection to the destination lost",
                           relay_hostname(s));
                return;
        }
        /* The login was the old backend session's: a new one would be
         * anonymous (relay refused, or the wrong sender rules). */
        if (s->authed) {
                relay_fail(s, "login_lost",
                           "421 4.7.0 %s Error: log in again on a new connection",
                           relay_hostname(s));
                return;
        }
        relay_backend_connect(s);
}

/* Plaintext or established TLS: not in the middle of a handshake, nor
 * before a PROXY header (nothing is said to a balancer's connection then). */
static bool relay_client_writable(const struct relay_session *s)
{
        return s->client != NULL && !conn_closing(s->client) &&
               s->state != RELAY_S_PROXY &&
               (conn_tls(s->client) == NULL || conn_tls_active(s->client));
}

/* Abort the backend connection: a message in progress there is discarded. */
static void relay_backend_abort(struct relay_session *s)
{
        if (s->server != NULL) {
                conn_close(s->server, false);
                s->server = NULL;
        }
        s->bstate = RELAY_B_NONE;
        s->server_tls = false;
        buf_cleanup(&s->to_server);
        buf_cleanup(&s->sreply_buf);
        memset(&s->sreply, 0, sizeof(s->sreply));
        memset(&s->slines, 0, sizeof(s->slines));
        s->slines.max = SMTP_REPLY_LINE_MAX;
}

/*
 * Fail the session: replies already made go out, those still due from the
 * backend are replaced by `text`, and the session ends.
 */
static void relay_fail(struct relay_session *s, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void relay_fail(struct relay_session *s, const char *reason, const char *fmt, ...)
{
        char line[600];
        va_list ap;
        int n;

        if (s->state == RELAY_S_CLOSING)
                return;
        if (relay_client_writable(s)) {
                while (s->head && s->head->ready) {
                        conn_write(s->client, s->head->text, s->head->len);
                        relay_fifo_pop(s);
                }
                va_start(ap, fmt);
                n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
                va_end(ap);
                if (n < 0 || (size_t)n > sizeof(line) - 3)
                        n = (int)sizeof(line) - 3;
                memcpy(line + n, "\r\n", 2);
                conn_write(s->client, line, (size_t)n + 2);
        }
        relay_close(s, reason);
}

static void relay_caps_unwait(struct relay_session *s)
{
        pending_cancel(s->caps_wait);
        s->caps_wait = NULL;
        s->caps_reply = NULL;
}

static void relay_close(struct relay_session *s, const char *reason)
{
        if (s->state == RELAY_S_CLOSING)
                return;
        snprintf(s->reason, sizeof(s->reason), "%s", reason);
        relay_enter_state(s, RELAY_S_CLOSING);
        relay_caps_unwait(s);
        relay_fifo_clear(s);
        if (s->client != NULL)
                conn_close(s->client, true);
        if (s->server != NULL) {
                conn_close(s->server, false);
                s->server = NULL;
        }
        s->bstate = RELAY_B_NONE;
}

static void relay_plaintext_refused(struct relay_session *s, const struct smtp_cmd *cmd)
{
        const char *path, *params, *dom;
        size_t plen, prlen, dlen;
        char domain[256] = "", esc[256] = "";
        char observed[64];

        /* The alert escapes its strings itself (JSON); the log line needs
         * the log's escaping. A domain has 255 bytes at most. */
        if (cmd->verb == SMTP_VERB_MAIL &&
            smtp_path_parse(cmd->args, cmd->args_len, "FROM:", &path, &plen, &params,
                            &prlen) == 0 &&
            smtp_addr_domain(path, plen, &dom, &dlen) == 0) {
                if (dlen >= sizeof(domain))
                        dlen = sizeof(domain) - 1;
                memcpy(domain, dom, dlen);
                domain[dlen] = '\0';
                log_escape(esc, sizeof(esc), dom, dlen);
        }
        snprintf(observed, sizeof(observed), "%s before STARTTLS",
                 smtp_verb_str(cmd->verb));
        relay_log(s, LOG_LVL_WARN, "event=refused reason=plaintext command=%s domain=%s",
                  smtp_verb_str(cmd->verb), esc[0] ? esc : "-");
        /* One alert for the session, as for plaintext_relayed: a client that
         * repeats itself must not flood the alert sinks. */
        if (s->refused_alerted)
                return;
        s->refused_alerted = true;
        relay_alert(s, ALERT_PLAINTEXT_REFUSED, ALERT_SEV_WARNING, "rejected",
                    domain[0] ? domain : NULL, observed, "TLS required before mail");
}

static bool relay_starttls_injected(struct relay_session *s)
{
        if (buf_len(conn_input(s->client)) == 0)
                return false;
        relay_log(s, LOG_LVL_WARN, "event=starttls_injection bytes=%zu",
                  buf_len(conn_input(s->client)));
        relay_alert(s, ALERT_STARTTLS_INJECTION, ALERT_SEV_CRITICAL, "closed", NULL,
                    "data pipelined after STARTTLS",
                    "commands after STARTTLS before TLS");
        buf_reset(conn_input(s->client));
        if (relay_fifo_unanswered(s) != NULL) {
                /* Replies still due go out first, as after QUIT: a message's
                 * must not become this 554 (the backend may have taken it,
                 * and the client would bounce a message delivered). */
                relay_reply(s, "554 5.7.0 Error: commands pipelined after STARTTLS, "
                               "closing connection");
                s->tail->action = RELAY_A_QUIT;
                s->quit_reason = "starttls_injection";
                relay_enter_state(s, RELAY_S_WAIT);
                return true;
        }
        relay_fail(
            s, "starttls_injection",
            "554 5.7.0 Error: commands pipelined after STARTTLS, closing connection");
        return true;
}

static void relay_cmd_starttls(struct relay_session *s, const struct smtp_cmd *cmd)
{
        if (s->l->conf->accept_tls != CONFIG_TLS_STARTTLS) {
                if (s->tls)
                        relay_reply(s, "503 5.5.1 Error: TLS already active");
                else
                        relay_reply(s, "%s", RELAY_REPLY_UNAVAILABLE);
                return;
        }
        if (s->tls) {
                relay_reply(s, "503 5.5.1 Error: TLS already active");
                return;
        }
        if (cmd->args_len > 0) {
                relay_reply(s, "501 5.5.4 Syntax: STARTTLS");
                return;
        }
        if (relay_starttls_injected(s))
                return;
        relay_pending_set(relay_fifo_push(s, RELAY_A_STARTTLS), "", 0);
        relay_enter_state(s, RELAY_S_STARTTLS);
}

/* Forward a command line to the backend and await its reply. */
static void relay_forward(struct relay_session *s, const char *line, size_t len,
                          enum relay_action a)
{
        if (!s->tls && !s->plaintext_alerted &&
            s->l->conf->accept_tls != CONFIG_TLS_NONE) {
                s->plaintext_alerted = true;
                relay_log(s, LOG_LVL_WARN, "event=plaintext_relayed");
                relay_alert(s, ALERT_PLAINTEXT_RELAYED, ALERT_SEV_WARNING, "relayed",
                            NULL, "plaintext session", "require_tls = no");
        }
        relay_fifo_push(s, a);
        relay_to_server_line(s, line, len);
        relay_need_backend(s);
}

/*
 * EHLO/HELO without a name, or with one longer than a domain can be (255,
 * RFC 5321 section 4.5.3.1.2): refused here, before it is sent on (the
 * backend's EHLO, XCLIENT's HELO= in xtext) or the backend refuses it.
 */
static bool relay_helo_refused(struct relay_session *s, const struct smtp_cmd *cmd)
{
        if (cmd->args_len == 0)
                relay_reply(s, "501 5.5.4 Syntax: %s hostname", smtp_verb_str(cmd->verb));
        else if (cmd->args_len > RELAY_HELO_MAX)
                relay_reply(s, "501 5.5.4 Error: %s name longer than %d characters",
                            smtp_verb_str(cmd->verb), RELAY_HELO_MAX);
        else
                return false;
        return true;
}

/* The listener's first probe has ended: the EHLO that waited for it. */
static void relay_caps_cb(void *arg)
{
        struct relay_session *s = arg;
        struct buf b;

        UTIL_CHECK_MAGIC(s, RELAY_SESSION_MAGIC);
        s->caps_wait = NULL;
        buf_init(&b);
        relay_ehlo_text(s, s->l->caps_known ? &s->l->caps : NULL, &b);
        relay_pending_set(s->caps_reply, buf_data(&b), buf_len(&b));
        buf_cleanup(&b);
        s->caps_reply = NULL;
        relay_run(s);
}

static void relay_cmd_helo(struct relay_session *s, const struct smtp_cmd *cmd,
                           const char *line, size_t len)
{
        struct buf b;

        if (relay_helo_refused(s, cmd))
                return;
        relay_forget_helo(s);
        s->txn = false;
        s->helo = xstrndup(cmd->args, cmd->args_len);
        s->helo_verb = cmd->verb;
        if (s->bstate != RELAY_B_NONE) {
                relay_forward(s, line, len,
                              cmd->verb == SMTP_VERB_EHLO ? RELAY_A_EHLO
                                                          : RELAY_A_FORWARD);
                return;
        }
        if (cmd->verb == SMTP_VERB_HELO) {
                relay_reply(s, "250 %s", relay_hostname(s));
                return;
        }
        if (!s->l->caps_known && s->l->probing && s->caps_wait == NULL) {
                /* The first probe is under way (a client right behind the
                 * start): answer with its capabilities, not the defaults. */
                s->caps_reply = relay_fifo_push(s, RELAY_A_LOCAL);
                s->caps_wait = pending_add(&s->l->probe_waits, relay_caps_cb, s);
                return;
        }
        buf_init(&b);
        relay_ehlo_text(s, s->l->caps_known ? &s->l->caps : NULL, &b);
        relay_pending_set(relay_fifo_push(s, RELAY_A_LOCAL), buf_data(&b), buf_len(&b));
        buf_cleanup(&b);
}

/* Whether a command line starting at p[0..n) is a BDAT to some parser: its
 * verb, then a byte no verb has (a space, the line's end, a tab, which
 * Postfix takes as a space, a NUL); blanks before it too, which Postfix
 * skips. */
static bool relay_bdat_line(const char *p, size_t n)
{
        while (n > 0 && (*p == ' ' || *p == '\t')) {
                p++;
                n--;
        }
        return n >= 5 && util_prefix_ci(p, n, "BDAT") && !isalnum((unsigned char)p[4]) &&
               p[4] != '-';
}

/* What makes a whole BDAT line unreadable (r, ln from the splitter), or NULL:
 * the line refused whole, or, not "BDAT" and a space (or its end) right at
 * its start, not even a command to mailward. */
static const char *relay_bdat_line_fault(const struct relay_session *s,
                                         enum smtp_line_result r,
                                         const struct smtp_line *ln)
{
        if (r != SMTP_LINE_OK)
                return smtp_line_result_str(r);
        if (ln->consumed > s->l->conf->max_line)
                return "line_too_long";
        if (memchr(ln->p, '\0', ln->len) != NULL)
                return "nul";
        if (ln->len < 4 || !util_prefix_ci(ln->p, ln->len, "BDAT") ||
            (ln->len > 4 && ln->p[4] != ' '))
                return "syntax";
        return NULL;
}

/*
 * A BDAT command whose chunk size cannot be read: the bytes after it cannot
 * be told from commands, so none is read. The session ends with the reply
 * to it (a 521 of its own, or the refusal already queued), after the
 * replies owed before it, as after QUIT; a message the backend has not
 * accepted is not. Postfix, too, hangs up after a malformed BDAT.
 */
static void relay_bdat_unreadable(struct relay_session *s, const char *why, bool replied)
{
        relay_log(s, LOG_LVL_WARN, "event=bdat_unreadable reason=%s", why);
        if (!replied)
                relay_reply(s, "%s",
                            strcmp(why, "syntax") == 0
                                ? "521 5.5.4 Syntax: BDAT size [LAST]"
                                : "521 5.5.2 Error: malformed BDAT command");
        s->tail->action = RELAY_A_QUIT;
        s->quit_reason = "bdat_unreadable";
        relay_enter_state(s, RELAY_S_WAIT);
}

/* A BDAT refused (its reply given): its chunk, when the size can be read, is
 * read past as data, never taken as commands. */
static void relay_bdat_skip(struct relay_session *s, const struct smtp_cmd *cmd)
{
        uint64_t size;
        bool last;

        if (cmd->verb != SMTP_VERB_BDAT)
                return;
        if (smtp_bdat_parse(cmd->args, cmd->args_len, &size, &last) != 0) {
                relay_bdat_unreadable(s, "syntax", true);
                return;
        }
        if (size == 0)
                return;
        s->bdat_left = size;
        s->bdat_discard = true;
        relay_enter_state(s, RELAY_S_BDAT);
}

static void relay_cmd_bdat(struct relay_session *s, const struct smtp_cmd *cmd,
                           const char *line, size_t len)
{
        uint64_t size;
        bool last;

        if (smtp_bdat_parse(cmd->args, cmd->args_len, &size, &last) != 0) {
                relay_bdat_unreadable(s, "syntax", false);
                return;
        }
        s->bdat_left = size;
        s->bdat_discard = false;
        /* Only where the server said CHUNKING: otherwise the chunk would be read as
         * commands. */
        if (s->out ? !smtp_caps_has(&s->o->caps, "CHUNKING")
                   : !s->l->caps_known || !smtp_caps_has(&s->l->caps, "CHUNKING")) {
                /* The capabilities changed since this client was told
                 * CHUNKING (another client's backend session, with its own
                 * EHLO keywords, or the backend's configuration): a
                 * permanent error would bounce a message it was invited
                 * to send so; it tries again and reads the EHLO reply anew. */
                if (!s->out && s->chunking_offered)
                        relay_reply(s, "451 4.3.0 Error: BDAT not available now, try "
                                       "again later");
                else
                        relay_reply(s, "502 5.5.1 Error: BDAT not supported");
                s->bdat_discard = true;
        } else {
                relay_forward(s, line, len, last ? RELAY_A_MESSAGE : RELAY_A_FORWARD);
                /* As at the end of DATA: a MAIL pipelined behind the chunk
                 * begins the next transaction. */
                if (last)
                        s->txn = false;
                if (last && s->out)
                        relay_out_reset(s);
        }
        if (s->bdat_left > 0)
                relay_enter_state(s, RELAY_S_BDAT);
}

static void relay_command(struct relay_session *s, const char *line, size_t len)
{
        const struct config_listener *lc = s->l->conf;
        struct smtp_cmd cmd;
        char esc[128];

        smtp_cmd_parse(line, len, &cmd);
        if (cmd.verb == SMTP_VERB_AUTH)
                relay_log(s, LOG_LVL_DEBUG, "event=command verb=AUTH");
        else if (log_enabled(s->l->env->log, LOG_LVL_DEBUG))
                relay_log(s, LOG_LVL_DEBUG, "event=command line=\"%s\"",
                          log_escape(esc, sizeof(esc), line, len));

        /* Never forwarded: the server might read a command in it (smtp.h). */
        if (cmd.verb == SMTP_VERB_BAD) {
                relay_reply(s, "500 5.5.2 Error: command not recognized");
                return;
        }
        switch (cmd.verb) {
        case SMTP_VERB_NOOP:
        case SMTP_VERB_RSET:
        case SMTP_VERB_VRFY:
        case SMTP_VERB_EXPN:
        case SMTP_VERB_HELP:
        case SMTP_VERB_ETRN:
        case SMTP_VERB_EHLO:
        case SMTP_VERB_HELO:
                if (++s->junk > RELAY_JUNK_LIMIT)
                        s->errors++;
                break;
        default:
                break;
        }
        if (s->out && relay_out_command(s, &cmd, line, len))
                return;
        switch (cmd.verb) {
        case SMTP_VERB_EHLO:
        case SMTP_VERB_HELO:
                relay_cmd_helo(s, &cmd, line, len);
                return;
        case SMTP_VERB_STARTTLS:
                relay_cmd_starttls(s, &cmd);
                return;
        case SMTP_VERB_QUIT:
                if (s->bstate != RELAY_B_NONE) {
                        relay_forward(s, line, len, RELAY_A_QUIT);
                } else {
                        relay_fifo_push(s, RELAY_A_QUIT);
                        relay_pending_set(s->tail, "221 2.0.0 Bye\r\n", 15);
                }
                /* Nothing after QUIT is read: the session ends with its reply. */
                s->quit_reason = "quit";
                relay_enter_state(s, RELAY_S_WAIT);
                return;
        case SMTP_VERB_NOOP:
        case SMTP_VERB_RSET:
                if (cmd.verb == SMTP_VERB_RSET)
                        s->txn = false;
                if (s->bstate != RELAY_B_NONE)
                        relay_forward(s, line, len, RELAY_A_FORWARD);
                else
                        relay_reply(s, "250 2.0.0 Ok");
                return;
        case SMTP_VERB_XCLIENT:
        case SMTP_VERB_XFORWARD:
                /* Only mailward speaks for the client to the backend. */
                relay_reply(s, "%s", RELAY_REPLY_UNAVAILABLE);
                return;
        default:
                break;
        }

        if (!s->tls && (lc->require_tls || cmd.verb == SMTP_VERB_AUTH) &&
            lc->accept_tls != CONFIG_TLS_NONE) {
                relay_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
                if (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT ||
                    cmd.verb == SMTP_VERB_AUTH)
                        relay_plaintext_refused(s, &cmd);
                relay_bdat_skip(s, &cmd);
                return;
        }
        if (s->helo == NULL) {
                relay_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
                relay_bdat_skip(s, &cmd);
                return;
        }
        switch (cmd.verb) {
        case SMTP_VERB_BDAT:
                relay_cmd_bdat(s, &cmd, line, len);
                return;
        case SMTP_VERB_DATA:
                relay_forward(s, line, len, RELAY_A_DATA);
                relay_enter_state(s, RELAY_S_WAIT);
                return;
        case SMTP_VERB_AUTH:
                relay_forward(s, line, len, RELAY_A_AUTH);
                relay_enter_state(s, RELAY_S_WAIT);
                return;
        case SMTP_VERB_MAIL:
                s->txn = true;
                relay_forward(s, line, len, RELAY_A_FORWARD);
                return;
        default:
                relay_forward(s, line, len, RELAY_A_FORWARD);
                return;
        }
}

static bool relay_backpressure(struct relay_session *s)
{
        if (conn_queued(s->client) > RELAY_HIGH_WATER)
                return true;
        return s->server != NULL &&
               conn_queued(s->server) + buf_len(&s->to_server) > RELAY_HIGH_WATER;
}

/*
 * Command lines; returns true if it consumed input. A line ends at CRLF only:
 * a bare LF does not split a command in two (that difference between two
 * parsers is what SMTP smuggling feeds on), so everything up to the next CRLF
 * is one bad line with one reply.
 */
static bool relay_client_commands(struct relay_session *s)
{
        struct buf *in = conn_input(s->client);
        struct smtp_line ln;
        enum smtp_line_result r;
        const char *fault;
        bool progress = false;

        while (s->state == RELAY_S_COMMAND && s->quit_reason == NULL && buf_len(in) > 0 &&
               s->fifo_len < RELAY_FIFO_MAX && !relay_backpressure(s)) {
                /* Inbound only: outbound, the MTA is ours, and each recipient
                 * of a domain that cannot have TLS is a 451 of mailward's.
                 * Not while the backend still owes a reply: a message's must
                 * not be replaced by the 421 (the client would send it
                 * again). Replies already made go out before the 421. */
                if (s->errors >= RELAY_ERROR_LIMIT && !s->out &&
                    relay_fifo_unanswered(s) == NULL) {
                        relay_log(s, LOG_LVL_WARN, "event=too_many_errors errors=%u",
                                  s->errors);
                        relay_fail(s, "too_many_errors",
                                   "421 4.7.0 %s Error: too many errors",
                                   relay_hostname(s));
                        return true;
                }
                /* The input starts a line here, unless a line too long goes
                 * on (smtp.h); after a bare LF, a part of one to mailward,
                 * but a line of its own to a server that ends lines there. */
                if (!smtp_lines_mid(&s->clines))
                        s->cmd_bdat = (s->cmd_bare_lf && s->cmd_bdat) ||
                                      relay_bdat_line(buf_data(in), buf_len(in));
                r = smtp_lines_next(&s->clines, buf_data(in), buf_len(in), &ln);
                if (r == SMTP_LINE_NEED_MORE && ln.consumed == 0)
                        break;
                progress = true;
                /* A BDAT line unreadable: its chunk follows, size unknown. */
                if (s->cmd_bdat && r != SMTP_LINE_NEED_MORE &&
                    (fault = s->cmd_bare_lf ? "bare_lf"
                                            : relay_bdat_line_fault(s, r, &ln)) != NULL) {
                        buf_consume(in, ln.consumed);
                        s->cmd_bare_lf = false;
                        relay_bdat_unreadable(s, fault, false);
                        continue;
                }
                /* A whole line came: the wait for the next one starts again.
                 * Not for bytes of a line still unfinished (relay_run()). */
                if (r != SMTP_LINE_NEED_MORE && ln.crlf)
                        s->line_wait_ms = 0;
                if (r == SMTP_LINE_BARE_LF ||
                    (s->cmd_bare_lf && r != SMTP_LINE_NEED_MORE)) {
                        s->cmd_bare_lf = !ln.crlf;
                        buf_consume(in, ln.consumed);
                        if (!s->cmd_bare_lf)
                                relay_reply(s, "500 5.5.2 Error: bare <LF> received");
                        continue;
                }
                switch (r) {
                case SMTP_LINE_OK: {
                        /* Copy: handlers may look at what follows in the buffer. */
                        char *line;

                        if (ln.consumed > s->l->conf->max_line &&
                            !util_prefix_ci(ln.p, ln.len, "AUTH ")) {
                                relay_reply(s, "500 5.5.2 Error: line too long");
                                break;
                        }
                        /* Cut short at the NUL, a name or an address would
                         * be another than the client sent; refused whole. */
                        if (memchr(ln.p, '\0', ln.len) != NULL) {
                                relay_reply(s,
                                            "500 5.5.2 Error: NUL character in command");
                                break;
                        }
                        line = xstrndup(ln.p, ln.len);

                        buf_consume(in, ln.consumed);
                        relay_command(s, line, ln.len);
                        free(line);
                        continue;
                }
                case SMTP_LINE_TOO_LONG:
                        relay_reply(s, "500 5.5.2 Error: line too long");
                        break;
                case SMTP_LINE_BARE_CR:
                        relay_reply(s, "500 5.5.2 Error: bare <CR> received");
                        break;
                default:
                        break;
                }
                buf_consume(in, ln.consumed);
        }
        return progress;
}

/* Message text up to CRLF.CRLF, forwarded in spans of whole, clean lines. */
static bool relay_client_data(struct relay_session *s)
{
        struct buf *in = conn_input(s->client);
        const char *p = buf_data(in);
        size_t n = buf_len(in), off = 0, span = 0;
        struct smtp_line ln;
        enum smtp_line_result r;
        bool end = false;

        while (off < n && !end) {
                r = smtp_lines_next(&s->dlines, p + off, n - off, &ln);
                if (r == SMTP_LINE_NEED_MORE && ln.consumed == 0)
                        break;
                /* Only CRLF "." CRLF ends the message: never "\n.\r\n" or "\n.\n". */
                if (r == SMTP_LINE_OK && ln.len == 1 && ln.p[0] == '.' && s->data_crlf)
                        end = true;
                if (r != SMTP_LINE_NEED_MORE)
                        s->data_crlf = ln.crlf;
                /* The splitter takes one byte more: the dot a client doubles
                 * at the start of a line is not the line's (RFC 5321
                 * 4.5.3.1.6), so only a line that starts with one may have it. */
                if (r == SMTP_LINE_OK && ln.consumed >= s->dlines.max && ln.p[0] != '.')
                        r = SMTP_LINE_TOO_LONG;
                if (r != SMTP_LINE_OK && r != SMTP_LINE_NEED_MORE && s->poison == NULL) {
                        s->poison =
                            r == SMTP_LINE_TOO_LONG ? "500 5.5.2 Error: line too long"
                            : r == SMTP_LINE_BARE_LF
                                ? "550 5.6.0 Error: bare <LF> received in message"
                                : "550 5.6.0 Error: bare <CR> received in message";
                        relay_log(s, LOG_LVL_WARN, "event=message_refused reason=%s",
                                  smtp_line_result_str(r));
                }
                /* The final "." goes with the text before it: one write. */
                if (s->poison == NULL && r == SMTP_LINE_OK) {
                        span += ln.consumed;
                } else if (span > 0) {
                        relay_to_server(s, p + off - span, span);
                        span = 0;
                }
                off += ln.consumed;
        }
        if (span > 0 && s->poison == NULL)
                relay_to_server(s, p + off - span, span);
        buf_consume(in, off);
        if (s->poison != NULL && s->bstate != RELAY_B_NONE) {
                /* The backend must never see this message end: drop it there. */
                relay_backend_abort(s);
        }
        if (end && s->poison == relay_poison_lost) {
                /* The backend went away during the message: as after QUIT. */
                relay_reply(s,
                            "421 4.4.2 %s Error: backend unavailable, closing connection",
                            relay_hostname(s));
                s->poison = NULL;
                s->tail->action = RELAY_A_QUIT;
                s->quit_reason = "backend_failed";
                relay_enter_state(s, RELAY_S_WAIT);
        } else if (end) {
                if (s->poison != NULL) {
                        relay_reply(s, "%s", s->poison);
                        s->poison = NULL;
                } else {
                        relay_fifo_push(s, RELAY_A_MESSAGE);
                }
                /* The transaction ends here, not at the reply: a MAIL the
                 * client pipelines behind the dot (RFC 2920) opens the next
                 * one before that reply comes, and the reply must not close
                 * it (relay_backend_closed() would then replace the backend
                 * session under it). The reply still due keeps the backend
                 * session's end from passing unnoticed meanwhile. */
                s->txn = false;
                /* Outbound, the transaction ends with its data: a MAIL the
                 * client pipelines behind the dot (RFC 2920) is a new one. */
                if (s->out)
                        relay_out_reset(s);
                relay_enter_state(s, RELAY_S_COMMAND);
        }
        return off > 0;
}

static bool relay_client_bdat(struct relay_session *s)
{
        struct buf *in = conn_input(s->client);
        size_t n = buf_len(in);

        if (n > s->bdat_left)
                n = (size_t)s->bdat_left;
        if (n == 0)
                return false;
        if (!s->bdat_discard)
                relay_to_server(s, buf_data(in), n);
        buf_consume(in, n);
        s->bdat_left -= n;
        if (s->bdat_left == 0)
                relay_enter_state(s, RELAY_S_COMMAND);
        return true;
}

/* One AUTH response line, relayed verbatim and never logged. */
static bool relay_client_auth(struct relay_session *s)
{
        struct buf *in = conn_input(s->client);
        struct smtp_line ln;
        enum smtp_line_result r;

        r = smtp_lines_next(&s->clines, buf_data(in), buf_len(in), &ln);
        if (r == SMTP_LINE_NEED_MORE) {
                buf_consume(in, ln.consumed);
                return ln.consumed > 0;
        }
        if (r != SMTP_LINE_OK) {
                buf_consume(in, ln.consumed);
                relay_fail(s, "auth_line", "501 5.5.2 Error: bad AUTH response line");
                return true;
        }
        s->line_wait_ms = 0;
        relay_fifo_push(s, RELAY_A_AUTH);
        relay_to_server(s, ln.p, ln.len);
        relay_to_server(s, "\r\n", 2);
        buf_consume(in, ln.consumed);
        relay_enter_state(s, RELAY_S_WAIT);
        return true;
}

static bool relay_client_process(struct relay_session *s)
{
        if (s->client == NULL || relay_backpressure(s))
                return false;
        switch (s->state) {
        case RELAY_S_COMMAND:
                return relay_client_commands(s);
        case RELAY_S_DATA:
                return relay_client_data(s);
        case RELAY_S_BDAT:
                return relay_client_bdat(s);
        case RELAY_S_AUTH:
                return relay_client_auth(s);
        default:
                return false;
        }
}

/* The metrics' index for a key type (tls_served_key()). */
static enum relay_key relay_key_index(const char *key)
{
        if (key != NULL && strcmp(key, "ecdsa") == 0)
                return RELAY_KEY_ECDSA;
        if (key != NULL && strcmp(key, "rsa") == 0)
                return RELAY_KEY_RSA;
        return RELAY_KEY_OTHER;
}

static void relay_tls_up(struct relay_session *s)
{
        struct tls *t = conn_tls(s->client);

        s->tls = true;
        relay_forget_helo(s);
        memset(&s->clines, 0, sizeof(s->clines));
        s->clines.max = relay_line_max(s->l->conf);
        /* A backend session from before TLS (monitor mode) knows too much. */
        if (s->bstate != RELAY_B_NONE)
                relay_backend_abort(s);
        /* Which certificate, only where there was a choice (several). */
        bool chosen = false;
        const char *key = tls_served_key(t, &chosen);
        char which[PATH_MAX + 320] = "";

        if (chosen)
                snprintf(which, sizeof(which), " key_type=%s sni=%s cert=%s", key,
                         tls_sni(t) != NULL ? tls_sni(t) : "-", tls_served_cert(t));
        relay_log(s, LOG_LVL_INFO, "event=tls version=%s cipher=%s bits=%d%s%s",
                  tls_version(t), tls_cipher(t), tls_cipher_bits(t),
                  tls_resumed(t) ? " resumed=yes" : "", which);
        /* Only TLS 1.2 and 1.3 are ever negotiated (invariant 7). */
        s->l->env->stats.tls[RELAY_TLS_INDEX(strcmp(tls_version(t), "TLSv1.3") == 0,
                                             relay_key_index(key))]++;
}

static void relay_greet(struct relay_session *s)
{
        if (s->refuse != NULL) {
                relay_fail(s, "limit", "421 4.7.0 %s %s", relay_hostname(s), s->refuse);
                return;
        }
        relay_reply(s, "220 %s ESMTP mailward", relay_hostname(s));
        relay_enter_state(s, RELAY_S_COMMAND);
}

/* Write out every reply whose turn has come. */
static void relay_fifo_flush(struct relay_session *s)
{
        struct relay_pending *p;

        while ((p = s->head) != NULL && p->ready && s->state != RELAY_S_CLOSING &&
               relay_client_writable(s)) {
                if (p->action == RELAY_A_STARTTLS) {
                        /* Bytes that came while the 220 waited its turn: injection. */
                        relay_fifo_pop(s);
                        if (relay_starttls_injected(s))
                                return;
                        if (conn_start_tls(s->client, s->l->tls_server, NULL,
                                           "220 2.0.0 Ready to start TLS\r\n", 30) == 0)
                                return;
                        relay_log(s, LOG_LVL_ERR, "event=tls_start_failed reason=\"%s\"",
                                  conn_tls_error(s->client));
                        relay_reply(
                            s, "454 4.7.0 TLS not available due to temporary reason");
                        relay_enter_state(s, RELAY_S_COMMAND);
                        continue;
                }
                conn_write(s->client, p->text, p->len);
                if (p->action == RELAY_A_QUIT)
                        s->quit = true;
                relay_fifo_pop(s);
        }
}

/* ---- the server side ---- */

static void relay_server_send(struct relay_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void relay_server_send(struct relay_session *s, const char *fmt, ...)
{
        char line[RELAY_SERVER_LINE];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(line) - 2)
                fatalx("relay_server_send: line too long");
        memcpy(line + n, "\r\n", 2);
        conn_write(s->server, line, (size_t)n + 2);
}

/*
 * An XCLIENT value in xtext (RFC 3461) into out (RELAY_XCLIENT_VALUE + 1
 * bytes): in, or "[UNAVAILABLE]" when in does not fit once encoded (an EHLO
 * name of many bytes that xtext triples; the client's own EHLO, replayed
 * after XCLIENT, still gives the backend the name).
 */
static void relay_xtext(char *out, const char *in)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t o = 0;

        for (; *in != '\0'; in++) {
                unsigned char c = (unsigned char)*in;
                bool enc = c < 33 || c > 126 || c == '+' || c == '=';

                if (o + (enc ? 3 : 1) > RELAY_XCLIENT_VALUE) {
                        snprintf(out, RELAY_XCLIENT_VALUE + 1, "[UNAVAILABLE]");
                        return;
                }
                if (enc) {
                        out[o++] = '+';
                        out[o++] = hex[c >> 4];
                        out[o++] = hex[c & 15];
                } else {
                        out[o++] = (char)c;
                }
        }
        out[o] = '\0';
}

static void relay_send_xclient(struct relay_session *s)
{
        const struct sockaddr_storage *pa = conn_peer_addr(s->client);
        char helo[RELAY_XCLIENT_VALUE + 1], name[RELAY_XCLIENT_VALUE + 1];

        relay_xtext(helo, s->helo);
        /* A name that passed relay_name_valid() needs no encoding; xtext all
         * the same, as XCLIENT_README asks of every value. */
        relay_xtext(name, s->client_name != NULL ? s->client_name : "[UNAVAILABLE]");
        relay_server_send(s, "XCLIENT NAME=%s ADDR=%s%s PORT=%u PROTO=%s HELO=%s", name,
                          pa->ss_family == AF_INET6 ? "IPV6:" : "",
                          conn_peer_ip(s->client), conn_peer_port(s->client),
                          s->helo_verb == SMTP_VERB_EHLO ? "ESMTP" : "SMTP", helo);
}

/* Append one PROXY v2 TLV (type, 16-bit length, value) at h[n]; new length. */
static size_t relay_proxy_tlv(unsigned char *h, size_t n, unsigned char type,
                              const char *v, size_t len)
{
        h[n++] = type;
        h[n++] = (unsigned char)(len >> 8);
        h[n++] = (unsigned char)len;
        memcpy(h + n, v, len);
        return n + len;
}

/* PROXY v2 address block: source and destination address, then both ports. */
static size_t relay_proxy_addrs(unsigned char *h, size_t n, const void *src,
                                const void *dst, size_t alen, const void *sport,
                                const void *dport)
{
        memcpy(h + n, src, alen);
        memcpy(h + n + alen, dst, alen);
        memcpy(h + n + 2 * alen, sport, 2);
        memcpy(h + n + 2 * alen + 2, dport, 2);
        return n + 2 * alen + 4;
}

/* An address as IPv6, IPv4 as ::ffff:a.b.c.d: the PROXY header's two ends
 * share one family, and a header received may pair an IPv4-mapped client
 * with an IPv6 destination (conn_unmap() makes the client IPv4). */
static void relay_as_in6(const struct sockaddr_storage *ss, struct sockaddr_in6 *out)
{
        memset(out, 0, sizeof(*out));
        if (ss->ss_family == AF_INET6) {
                *out = *(const struct sockaddr_in6 *)ss;
        } else if (ss->ss_family == AF_INET) {
                const struct sockaddr_in *a = (const void *)ss;

                out->sin6_family = AF_INET6;
                out->sin6_port = a->sin_port;
                out->sin6_addr.s6_addr[10] = 0xff;
                out->sin6_addr.s6_addr[11] = 0xff;
                memcpy(&out->sin6_addr.s6_addr[12], &a->sin_addr, 4);
        }
}

/* PROXY protocol v2 header, with the TLS version and cipher in PP2_TYPE_SSL. */
static void relay_send_proxy(struct relay_session *s)
{
        static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                              0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
        unsigned char h[600];
        size_t n = 16, lenpos = 14;

        memcpy(h, sig, 12);
        if (s->probe) {
                h[12] = 0x20; /* version 2, LOCAL: a health check */
                h[13] = 0x00;
        } else {
                const struct sockaddr_storage *src = conn_peer_addr(s->client);
                const struct sockaddr_storage *dst = conn_local_addr(s->client);

                h[12] = 0x21; /* version 2, PROXY */
                if (src->ss_family == AF_INET && dst->ss_family == AF_INET) {
                        const struct sockaddr_in *a = (const void *)src;
                        const struct sockaddr_in *b = (const void *)dst;

                        h[13] = 0x11; /* TCP over IPv4 */
                        n = relay_proxy_addrs(h, n, &a->sin_addr, &b->sin_addr, 4,
                                              &a->sin_port, &b->sin_port);
                } else {
                        struct sockaddr_in6 a, b;

                        relay_as_in6(src, &a);
                        relay_as_in6(dst, &b);
                        h[13] = 0x21; /* TCP over IPv6 */
                        n = relay_proxy_addrs(h, n, &a.sin6_addr, &b.sin6_addr, 16,
                                              &a.sin6_port, &b.sin6_port);
                }
                if (s->tls) {
                        struct tls *t = conn_tls(s->client);
                        const char *ver = tls_version(t), *ciph = tls_cipher(t);
                        size_t vl = strlen(ver), cl = strlen(ciph);
                        size_t tlv = 5 + 3 + vl + 3 + cl;

                        if (vl > 64 || cl > 128)
                                fatalx("relay_send_proxy: TLS names too long");
                        h[n++] = 0x20; /* PP2_TYPE_SSL */
                        h[n++] = (unsigned char)(tlv >> 8);
                        h[n++] = (unsigned char)tlv;
                        h[n++] = 0x01;                /* PP2_CLIENT_SSL */
                        memcpy(h + n, "\0\0\0\1", 4); /* verify: no client certificate */
                        n += 4;
                        /* PP2_SUBTYPE_SSL_VERSION, PP2_SUBTYPE_SSL_CIPHER */
                        n = relay_proxy_tlv(h, n, 0x21, ver, vl);
                        n = relay_proxy_tlv(h, n, 0x23, ciph, cl);
                }
        }
        h[lenpos] = (unsigned char)((n - 16) >> 8);
        h[lenpos + 1] = (unsigned char)(n - 16);
        conn_write(s->server, h, n);
}

/* The server a log line names: outbound, the destination, not "original-dst". */
static const char *relay_server_name(const struct relay_session *s)
{
        return s->out && s->o->dst_str[0] != '\0' ? s->o->dst_str : s->l->conf->forward;
}

static void relay_backend_failed(struct relay_session *s, const char *why)
{
        relay_log(s, LOG_LVL_WARN, "event=backend_failed server=%s reason=\"%s\"",
                  relay_server_name(s), why);
        if (s->probe) {
                relay_close(s, why);
                return;
        }
        /*
         * In the middle of a message: the rest of its text is read and
         * dropped, and the 421 answers its end (relay_client_data()). One
         * written now is often lost: closing while the client still sends
         * resets the connection, and the client sees only a lost connection.
         */
        if (s->state == RELAY_S_DATA && relay_client_writable(s)) {
                relay_backend_abort(s);
                s->poison = relay_poison_lost;
                return;
        }
        /* No descriptor left outside the reserve (RELAY_FD_SPARE). */
        if (s->server != NULL && conn_errno(s->server) == UV_EMFILE) {
                relay_fail(
                    s, "backend_failed",
                    "421 4.3.2 %s Error: out of file descriptors, closing connection",
                    relay_hostname(s));
                return;
        }
        relay_fail(s, "backend_failed",
                   "421 4.4.2 %s Error: backend unavailable, closing connection",
                   relay_hostname(s));
}

/*
 * The backend ended its session while no reply was awaited (a 421 of its
 * own, or a close: its idle timeout). Between transactions a new one is
 * made at the next command. Inside one (a MAIL taken, its message not
 * ended), or after the client logged in there, a new one would not know
 * what the client was told: the client gets 421 and comes back, as it
 * would from the backend itself; a DATA sent on to a new session would get
 * "need RCPT", a permanent error.
 */
static void relay_backend_closed(struct relay_session *s)
{
        /* Outbound, the held MAIL sent or a recipient passed. */
        bool txn = s->out ? s->o->mail_sent || s->o->rcpt_passed > 0 : s->txn;

        relay_log(s, LOG_LVL_INFO, "event=backend_closed_idle%s",
                  !txn && !s->authed ? ""
                  : txn              ? " in=transaction"
                                     : " in=authenticated");
        if (!txn && !s->authed) {
                relay_backend_abort(s);
                return;
        }
        relay_fail(s, "backend_closed",
                   "421 4.4.2 %s Error: the server ended the session, closing connection",
                   relay_hostname(s));
}

static void relay_backend_ready(struct relay_session *s)
{
        s->bstate = RELAY_B_READY;
        relay_log(s, LOG_LVL_DEBUG, "event=backend_ready queued=%zu",
                  buf_len(&s->to_server));
        if (buf_len(&s->to_server) > 0) {
                conn_write(s->server, buf_data(&s->to_server), buf_len(&s->to_server));
                buf_cleanup(&s->to_server);
        }
}

static void relay_setup_helo(struct relay_session *s)
{
        relay_server_send(s, "%s %s", s->helo_verb == SMTP_VERB_HELO ? "HELO" : "EHLO",
                          s->helo);
        s->step = RELAY_STEP_HELO;
}

static void relay_store_caps(struct relay_session *s, const struct smtp_caps *c)
{
        s->l->caps = *c;
        s->l->caps_known = true;
}

/* A complete backend reply while setting the backend session up. */
static void relay_setup_reply(struct relay_session *s, int code)
{
        const struct config_listener *lc = s->l->conf;
        struct smtp_caps caps;

        switch (s->step) {
        case RELAY_STEP_GREETING:
                if (s->out && !s->o->banner_sent) {
                        /* Transparent: the client sees the destination's own banner. */
                        s->o->banner_sent = true;
                        relay_pending_set(relay_fifo_push(s, RELAY_A_LOCAL),
                                          buf_data(&s->sreply_buf),
                                          buf_len(&s->sreply_buf));
                        relay_backend_ready(s);
                        relay_enter_state(s, RELAY_S_COMMAND);
                        return;
                }
                if (code != 220)
                        break;
                if (s->probe || lc->client_identity == CONFIG_IDENTITY_XCLIENT ||
                    (lc->forward_tls == CONFIG_TLS_STARTTLS && !s->server_tls)) {
                        relay_server_send(s, "EHLO %s", relay_hostname(s));
                        s->step = RELAY_STEP_EHLO_OURS;
                } else {
                        relay_setup_helo(s);
                }
                return;
        case RELAY_STEP_EHLO_OURS:
                if (code != 250 || smtp_caps_parse(&caps, buf_data(&s->sreply_buf),
                                                   buf_len(&s->sreply_buf)) != 0)
                        break;
                if (lc->forward_tls == CONFIG_TLS_STARTTLS && !s->server_tls) {
                        if (!smtp_caps_has(&caps, "STARTTLS")) {
                                relay_backend_failed(s,
                                                     "backend does not offer STARTTLS");
                                return;
                        }
                        relay_server_send(s, "STARTTLS");
                        s->step = RELAY_STEP_STARTTLS;
                } else if (s->probe) {
                        relay_store_caps(s, &caps);
                        relay_server_send(s, "QUIT");
                        s->step = RELAY_STEP_QUIT;
                } else if (lc->client_identity == CONFIG_IDENTITY_XCLIENT) {
                        if (!smtp_caps_has(&caps, "XCLIENT")) {
                                relay_backend_failed(s, "backend does not offer XCLIENT");
                                return;
                        }
                        if (s->name_req != NULL) {
                                s->name_wait = true; /* relay_name_done() sends it */
                                return;
                        }
                        relay_send_xclient(s);
                        s->step = RELAY_STEP_XCLIENT;
                } else {
                        relay_setup_helo(s);
                }
                return;
        case RELAY_STEP_STARTTLS:
                if (code != 220)
                        break;
                if (buf_len(conn_input(s->server)) > 0) {
                        relay_alert(s, ALERT_STARTTLS_INJECTION, ALERT_SEV_CRITICAL,
                                    "closed", NULL,
                                    "data after the backend's 220 to STARTTLS", NULL);
                        relay_backend_failed(s,
                                             "backend sent data after 220 to STARTTLS");
                        return;
                }
                s->step = RELAY_STEP_TLS;
                if (conn_start_tls(s->server, s->l->tls_client, s->l->fwd_host, NULL,
                                   0) != 0)
                        relay_backend_failed(s, conn_tls_error(s->server));
                return;
        case RELAY_STEP_XCLIENT:
                if (code != 220)
                        break;
                relay_setup_helo(s);
                return;
        case RELAY_STEP_HELO:
                if (code != 250)
                        break;
                if (s->helo_verb == SMTP_VERB_EHLO &&
                    smtp_caps_parse(&caps, buf_data(&s->sreply_buf),
                                    buf_len(&s->sreply_buf)) == 0)
                        relay_store_caps(s, &caps);
                relay_backend_ready(s);
                return;
        case RELAY_STEP_QUIT:
                relay_close(s, "probe_done");
                return;
        case RELAY_STEP_TLS:
                break;
        }
        {
                char why[160], esc[100];

                snprintf(why, sizeof(why), "unexpected reply in setup: %s",
                         log_escape(esc, sizeof(esc), buf_data(&s->sreply_buf),
                                    buf_len(&s->sreply_buf) > 60
                                        ? 60
                                        : buf_len(&s->sreply_buf)));
                relay_backend_failed(s, why);
        }
}

/* A complete backend reply to a client's command. */
static void relay_backend_reply(struct relay_session *s, int code)
{
        struct relay_pending *p = relay_fifo_awaiting(s);
        struct smtp_caps caps;
        struct buf b;

        if (p == NULL) {
                /* Unsolicited: a backend closing an idle session says 421. */
                if (code == 421 && s->state == RELAY_S_COMMAND) {
                        relay_backend_closed(s);
                        return;
                }
                relay_backend_failed(s, "unsolicited reply");
                return;
        }
        switch (p->action) {
        case RELAY_A_OUT_EHLO:
                relay_out_ehlo_reply(s, code);
                return;
        case RELAY_A_OUT_MAIL:
                /* Replies come in order: every RCPT sent after this MAIL and
                 * before the next one gets its error (the server answers
                 * them "need MAIL", which an MTA would take as permanent). */
                free(s->o->late_mail_error);
                s->o->late_mail_error = NULL;
                if (code / 100 != 2) {
                        s->o->late_mail_error =
                            xstrndup(buf_data(&s->sreply_buf), buf_len(&s->sreply_buf));
                        s->o->late_mail_error_len = buf_len(&s->sreply_buf);
                        s->o->late_txn = p->txn;
                        /* A transaction the client has ended since keeps it. */
                        if (p->txn == s->o->txn)
                                s->o->mail_sent = false;
                }
                relay_pending_set(p, "", 0);
                return;
        case RELAY_A_OUT_RCPT:
                if (s->o->late_mail_error != NULL && s->o->late_txn == p->txn) {
                        relay_pending_set(p, s->o->late_mail_error,
                                          s->o->late_mail_error_len);
                        return;
                }
                break;
        case RELAY_A_EHLO:
                if (code == 250 && smtp_caps_parse(&caps, buf_data(&s->sreply_buf),
                                                   buf_len(&s->sreply_buf)) == 0) {
                        relay_store_caps(s, &caps);
                        buf_init(&b);
                        relay_ehlo_text(s, &caps, &b);
                        relay_pending_set(p, buf_data(&b), buf_len(&b));
                        buf_cleanup(&b);
                        return;
                }
                break;
        case RELAY_A_DATA:
                /* Neither 354 nor a refusal (a 250, a 1xx): the server is out
                 * of step, and what became of the transaction is not known. */
                if (code != 354 && code / 100 != 4 && code / 100 != 5) {
                        relay_backend_failed(s, "unexpected reply to DATA");
                        return;
                }
                if (code == 354) {
                        memset(&s->dlines, 0, sizeof(s->dlines));
                        s->dlines.max = s->l->conf->max_text_line + 1;
                        s->poison = NULL;
                        s->data_crlf = true;
                        relay_enter_state(s, RELAY_S_DATA);
                } else {
                        relay_enter_state(s, RELAY_S_COMMAND);
                }
                break;
        case RELAY_A_AUTH:
                relay_enter_state(s, code == 334 ? RELAY_S_AUTH : RELAY_S_COMMAND);
                if (code == 235)
                        s->authed = true;
                break;
        case RELAY_A_MESSAGE:
                /* Neither taken nor refused (a 354, a 1xx): the client gets a
                 * temporary error, never a reply it may read as either. */
                if (code / 100 != 2 && code / 100 != 4 && code / 100 != 5) {
                        relay_backend_failed(s,
                                             "unexpected reply to the end of a message");
                        return;
                }
                if (code / 100 == 2) {
                        s->messages++;
                        s->errors = 0; /* "without delivering mail", as Postfix */
                        s->junk = 0;
                        s->l->env->stats.messages_total++;
                        relay_log(s, LOG_LVL_INFO, "event=delivered reply=%d", code);
                } else {
                        relay_log(s, LOG_LVL_INFO, "event=message_refused reply=%d",
                                  code);
                }
                break;
        default:
                break;
        }
        relay_pending_set(p, buf_data(&s->sreply_buf), buf_len(&s->sreply_buf));
}

static void relay_server_process(struct relay_session *s)
{
        struct buf *in;
        struct smtp_line ln;
        enum smtp_line_result r;
        enum smtp_reply_result rr;

        while (s->server != NULL && s->state != RELAY_S_CLOSING &&
               s->step != RELAY_STEP_TLS && relay_out_step(s) != RELAY_OUT_TLS) {
                in = conn_input(s->server);
                r = smtp_lines_next(&s->slines, buf_data(in), buf_len(in), &ln);
                if (r == SMTP_LINE_NEED_MORE) {
                        buf_consume(in, ln.consumed);
                        /* A reply line already too long fails now, not at
                         * an LF that a server may never send. */
                        if (smtp_lines_mid(&s->slines)) {
                                relay_backend_failed(
                                    s, smtp_line_result_str(SMTP_LINE_TOO_LONG));
                                return;
                        }
                        if (ln.consumed == 0)
                                break;
                        continue;
                }
                if (r != SMTP_LINE_OK) {
                        buf_consume(in, ln.consumed);
                        relay_backend_failed(s, smtp_line_result_str(r));
                        return;
                }
                rr = smtp_reply_feed(&s->sreply, ln.p, ln.len);
                if (rr == SMTP_REPLY_BAD ||
                    buf_len(&s->sreply_buf) + ln.len + 2 > RELAY_REPLY_MAX) {
                        buf_consume(in, ln.consumed);
                        relay_backend_failed(s, "malformed reply");
                        return;
                }
                buf_append(&s->sreply_buf, ln.p, ln.len);
                buf_append(&s->sreply_buf, "\r\n", 2);
                buf_consume(in, ln.consumed);
                if (rr == SMTP_REPLY_MORE)
                        continue;
                if (s->bstate == RELAY_B_SETUP)
                        relay_setup_reply(s, s->sreply.code);
                else if (relay_out_step(s) != RELAY_OUT_NONE)
                        relay_out_step_reply(s, s->sreply.code);
                else
                        relay_backend_reply(s, s->sreply.code);
                buf_reset(&s->sreply_buf);
                buf_shrink(&s->sreply_buf);
                memset(&s->sreply, 0, sizeof(s->sreply));
                s->reply_wait_ms = 0; /* the next reply's wait starts now */
        }
        if (s->server != NULL)
                buf_shrink(conn_input(s->server));
}

/* TLS to a fixed backend or smarthost failed: say whether the certificate did. */
static void relay_server_tls_alert(struct relay_session *s, struct conn *c)
{
        struct tls_peer peer;
        bool cert = false;

        memset(&peer, 0, sizeof(peer));
        /* Plaintext where its first TLS record was due: injected behind its
         * 220 to STARTTLS (the same read as the 220 is caught there). */
        if (conn_tls_plaintext(c) && s->l->conf->forward_tls == CONFIG_TLS_STARTTLS) {
                relay_alert(s, ALERT_STARTTLS_INJECTION, ALERT_SEV_CRITICAL, "closed",
                            NULL, "data after the backend's 220 to STARTTLS",
                            conn_tls_error(c));
                return;
        }
        if (conn_tls(c) != NULL) {
                tls_peer_info(conn_tls(c), &peer);
                cert = peer.verify_error != 0 || peer.expired;
        }
        relay_alert(s, cert ? ALERT_CERTIFICATE_INVALID : ALERT_TLS_HANDSHAKE_FAILED,
                    ALERT_SEV_CRITICAL, "closed", NULL,
                    cert ? peer.verify_reason : "TLS handshake with the server failed",
                    conn_tls_error(c));
}

/* TLS is up with the backend (and, with forward_verify = dane, judged). */
static void relay_server_tls_up(struct relay_session *s)
{
        s->server_tls = true;
        if (s->l->conf->forward_tls == CONFIG_TLS_IMPLICIT) {
                s->step = RELAY_STEP_GREETING;
        } else {
                relay_server_send(s, "EHLO %s", relay_hostname(s));
                s->step = RELAY_STEP_EHLO_OURS;
        }
        conn_read(s->server, true);
        relay_server_process(s);
}

/*
 * What a completed handshake showed, into o: the TLS version (as
 * tls_version() prints it; "" before TLS), and the certificate's trust,
 * expiry and names (pointing into peer through names).
 */
static void relay_observe_cert(struct policy_observation *o, const char *version,
                               const struct tls_peer *peer,
                               const char *names[TLS_PEER_NAMES])
{
        unsigned i;

        if (policy_proto_parse(version, &o->proto) != 0)
                o->proto = POLICY_PROTO_UNKNOWN;
        o->cert_trusted = peer->chain_trusted;
        o->cert_expired = peer->expired;
        for (i = 0; i < peer->nnames && i < TLS_PEER_NAMES; i++)
                names[i] = tls_peer_name(peer, i);
        o->cert_names = names;
        o->ncert_names = i;
}

static struct dane *relay_dane(struct relay_listener *l);
static void relay_out_dane_observe(struct relay_session *s, const char *domain,
                                   const struct dane_result *d,
                                   struct policy_observation *o, char *why,
                                   size_t whylen);

/*
 * One server judged against one host name, as a setting asks (not a policy
 * entry): level with match, TLS 1.2 or later, the certificate in version
 * and peer; o is left for what the caller adds (DANE) before judging.
 */
static void relay_host_judging(struct policy_expectation *e, struct policy_observation *o,
                               enum policy_level level, const char *const *match,
                               const char *host, const char *version,
                               const struct tls_peer *peer,
                               const char *names[TLS_PEER_NAMES])
{
        memset(e, 0, sizeof(*e));
        memset(o, 0, sizeof(*o));
        e->level = e->written = level;
        e->match = match;
        e->nmatch = match != NULL ? 1 : 0;
        e->min_proto = POLICY_PROTO_TLSV1_2;
        e->max_proto = POLICY_PROTO_TLSV1_3;
        o->nexthop = host;
        o->mx_host = host;
        o->starttls_offered = true;
        o->tls_reached = true;
        relay_observe_cert(o, version, peer, names);
}

/* A verdict's reason names a policy table's level: say the setting instead. */
static void relay_reason_of_setting(struct policy_verdict *v)
{
        char *cut = strstr(v->reason, "; level ");

        if (cut != NULL)
                *cut = '\0';
}

/*
 * forward_verify = dane or dane-only, once TLS is up with the smarthost:
 * its certificate against the host's TLSA records (_PORT._tcp.HOST, with
 * validated addresses; lib/dane.h, direct), judged as the outbound side
 * judges level dane-only; without validated records, dane checks it as
 * forward_verify = yes does (level secure, match=hostname), and dane-only
 * has no session. forward_verify = yes (d NULL): as dane without records,
 * after wolfSSL's own check, whose name matching takes wildcards anywhere
 * ("*.*.net", "smtp.*.net"): mailward's takes one, left-most, as RFC 6125
 * does. policy_judge() decides; a failure is an alert and the backend
 * failing (421 to the client, who keeps the message). true: passed.
 */
static bool relay_wrap_judge(struct relay_session *s, const struct dane_result *d)
{
        static const char *const hostname[] = {"hostname"};
        const struct config_listener *lc = s->l->conf;
        const struct tls *t = conn_tls(s->server);
        struct policy_expectation e;
        struct policy_observation o;
        struct policy_verdict v;
        struct tls_peer peer;
        const char *names[TLS_PEER_NAMES];
        char why[256];
        bool ca = d == NULL ||
                  (d->state == DANE_NONE && lc->forward_verify == CONFIG_VERIFY_DANE);

        memset(&peer, 0, sizeof(peer));
        tls_peer_info(t, &peer);
        relay_host_judging(&e, &o, ca ? POLICY_LEVEL_SECURE : POLICY_LEVEL_DANE_ONLY,
                           ca ? hostname : NULL, s->l->fwd_host, tls_version(t), &peer,
                           names);
        if (e.level == POLICY_LEVEL_DANE_ONLY)
                relay_out_dane_observe(s, s->l->fwd_host, d, &o, why, sizeof(why));
        if (policy_judge(&e, &o, &v) && v.result == POLICY_RESULT_OK) {
                relay_log(s, LOG_LVL_INFO,
                          "event=backend_verified server=%s forward_verify=%s by=%s",
                          lc->forward, config_verify_str(lc->forward_verify),
                          e.level == POLICY_LEVEL_SECURE ? "ca"
                                                         : policy_dane_str(o.dane));
                return true;
        }
        relay_reason_of_setting(&v);
        relay_alert(s,
                    v.result == POLICY_RESULT_DNSSEC_INVALID  ? ALERT_DNSSEC_INVALID
                    : v.result == POLICY_RESULT_DANE_REQUIRED ? ALERT_DANE_REQUIRED
                                                              : ALERT_CERTIFICATE_INVALID,
                    ALERT_SEV_CRITICAL, "closed", NULL, policy_result_str(v.result),
                    v.reason);
        relay_log(s, LOG_LVL_WARN,
                  "event=backend_unverified server=%s forward_verify=%s result=%s "
                  "reason=\"%s\"",
                  lc->forward, config_verify_str(lc->forward_verify),
                  policy_result_str(v.result), v.reason);
        relay_backend_failed(s, policy_result_str(v.result));
        return false;
}

static void relay_wrap_dane_cb(void *arg);

/* forward_verify = dane: the lookup, then the judging; reading waits for both. */
static void relay_wrap_dane(struct relay_session *s)
{
        const struct dane_result *d;

        conn_read(s->server, false);
        if (dane_get(relay_dane(s->l), s->l->fwd_host, &s->l->fwd_addr, util_mono_secs(),
                     &d, relay_wrap_dane_cb, s, &s->wrap_wait) == DANE_PENDING)
                return;
        if (relay_wrap_judge(s, d))
                relay_server_tls_up(s);
}

static void relay_wrap_dane_cb(void *arg)
{
        struct relay_session *s = arg;

        UTIL_CHECK_MAGIC(s, RELAY_SESSION_MAGIC);
        s->wrap_wait = NULL;
        if (s->server != NULL && s->state != RELAY_S_CLOSING)
                relay_wrap_dane(s);
        relay_run(s);
}

static void relay_server_cb(struct conn *c, enum conn_event ev, void *arg)
{
        struct relay_session *s = arg;
        const struct config_listener *lc = s->l->conf;

        UTIL_CHECK_MAGIC(s, RELAY_SESSION_MAGIC);
        if (ev == CONN_EV_CLOSED) {
                if (c == s->server)
                        s->server = NULL;
                conn_free(c);
                s->open--;
                relay_run(s);
                return;
        }
        if (c != s->server)
                return; /* an aborted connection on its way out */
        switch (ev) {
        case CONN_EV_CONNECTED:
                relay_log(s, LOG_LVL_DEBUG, "event=backend_connect server=%s",
                          conn_peer(c));
                s->bstate = RELAY_B_SETUP;
                if (lc->client_identity == CONFIG_IDENTITY_PROXY)
                        relay_send_proxy(s);
                if (lc->forward_tls == CONFIG_TLS_IMPLICIT) {
                        s->step = RELAY_STEP_TLS;
                        if (conn_start_tls(c, s->l->tls_client, s->l->fwd_host, NULL,
                                           0) != 0) {
                                relay_backend_failed(s, conn_tls_error(c));
                                break;
                        }
                } else {
                        s->step = RELAY_STEP_GREETING;
                }
                conn_read(c, true);
                break;
        case CONN_EV_READ:
                relay_server_process(s);
                break;
        case CONN_EV_TLS_DONE:
                if (s->out && s->o->step == RELAY_OUT_TLS) {
                        relay_out_tls_done(s);
                        relay_server_process(s);
                        break;
                }
                relay_log(s, LOG_LVL_DEBUG, "event=backend_tls version=%s cipher=%s",
                          tls_version(conn_tls(c)), tls_cipher(conn_tls(c)));
                if (lc->forward_verify >= CONFIG_VERIFY_DANE)
                        relay_wrap_dane(s);
                else if (lc->forward_verify == CONFIG_VERIFY_NO ||
                         util_is_address(s->l->fwd_host) || relay_wrap_judge(s, NULL))
                        relay_server_tls_up(s);
                break;
        case CONN_EV_TLS_FAILED:
                if (s->out && s->o->step == RELAY_OUT_TLS) {
                        /* Plaintext where the server's first TLS record was
                         * due: injected behind its 220, in a later segment
                         * than the 220 (the same one is caught on its reply). */
                        if (conn_tls_plaintext(c))
                                s->o->obs.injection = true;
                        relay_out_tls_lost(s, conn_tls_error(c));
                } else {
                        relay_server_tls_alert(s, c);
                        relay_backend_failed(s, conn_tls_error(c));
                }
                break;
        case CONN_EV_EOF:
        case CONN_EV_ERROR:
                if (s->out && s->o->step == RELAY_OUT_TLS) {
                        /* Servers that cannot agree on a version often just hang up. */
                        relay_out_tls_lost(
                            s, ev == CONN_EV_EOF
                                   ? "connection closed during the TLS handshake"
                                   : conn_error(c));
                } else if (s->bstate == RELAY_B_READY &&
                           relay_fifo_unanswered(s) == NULL &&
                           s->state == RELAY_S_COMMAND) {
                        relay_backend_closed(s);
                } else {
                        relay_backend_failed(s, ev == CONN_EV_EOF ? "connection closed"
                                                                  : conn_error(c));
                }
                break;
        case CONN_EV_TIMEOUT:
                if (s->name_wait) {
                        /* The client's name took too long: Postfix, too, says
                         * [TEMPUNAVAIL] for a lookup that fails for now. */
                        relay_name_abandon(s);
                        s->name_wait = false;
                        s->client_name = xstrdup("[TEMPUNAVAIL]");
                        relay_log(s, LOG_LVL_INFO,
                                  "event=client_name name=[TEMPUNAVAIL] "
                                  "reason=\"lookup too slow\"");
                        relay_send_xclient(s);
                        s->step = RELAY_STEP_XCLIENT;
                        break;
                }
                /* A handshake that stalls (a path that swallows it) fails as
                 * any other: judged per recipient, with its alert. */
                if (s->out && s->o->step == RELAY_OUT_TLS) {
                        relay_out_tls_lost(s, "TLS handshake timed out");
                        break;
                }
                relay_log(s, LOG_LVL_WARN, "event=backend_timeout server=%s",
                          relay_server_name(s));
                if (s->probe)
                        relay_close(s, "backend_timeout");
                else
                        relay_fail(
                            s, "backend_timeout",
                            "421 4.4.2 %s Error: backend timeout, closing connection",
                            relay_hostname(s));
                break;
        default:
                break;
        }
        relay_run(s);
}

/*
 * Made at the first connection: listeners exist before the event loop does.
 * Its connects leave the last RELAY_FD_SPARE descriptors to accepts.
 */
static struct conn_loop *relay_cloop(struct relay_listener *l)
{
        if (l->cloop == NULL) {
                l->cloop = conn_loop_new(l->env->loop);
                if (l->env->fd_limit > RELAY_FD_SPARE)
                        conn_loop_reserve(l->cloop, l->env->fd_limit - RELAY_FD_SPARE);
        }
        return l->cloop;
}

static void relay_backend_connect(struct relay_session *s)
{
        const struct sockaddr_storage *dst = s->out ? &s->o->dst : &s->l->fwd_addr;
        const struct sockaddr_storage *src = &s->l->fwd_src;

        s->bstate = RELAY_B_CONNECTING;
        s->server_tls = false;
        s->reply_wait_ms = 0;
        memset(&s->slines, 0, sizeof(s->slines));
        s->slines.max = SMTP_REPLY_LINE_MAX;
        /* forward_source binds connections of its own family (see config.h). */
        s->server = conn_connect(
            relay_cloop(s->l), (const struct sockaddr *)dst,
            src->ss_family == dst->ss_family ? (const struct sockaddr *)src : NULL,
            relay_server_cb, s);
        s->open++;
}

/* ---- outbound: reach TLS with the destination, judge every recipient ---- */

/*
 * The listener's policy table (an empty one without a policy file), with its
 * default level: at start-up and on reload. policy_load()'s result.
 */
static int relay_policy_load(const struct config_listener *lc, FILE *errs,
                             struct policy **out)
{
        int r = 0;

        if (lc->policy != NULL)
                r = policy_load(lc->policy, errs, out);
        else
                *out = policy_new();
        if (r == 0)
                policy_set_default(*out, (enum policy_level)lc->default_level);
        return r;
}

static int relay_out_listener_init(struct relay_listener *l, char *err, size_t errlen)
{
        const struct config_listener *lc = l->conf;
        int r;

        /* Start-up diagnostics: every problem as FILE:LINE: message. */
        r = relay_policy_load(lc, stderr, &l->policy);
        if (r != 0) {
                snprintf(err, errlen, "[%s]: policy %s: %s", lc->name, lc->policy,
                         r == -EINVAL ? "has errors (above)" : strerror(-r));
                return -1;
        }
        if (l->original_dst)
                log_emit(l->env->log, LOG_LVL_INFO, NULL,
                         "event=outbound listener=%s note=\"verify without match= "
                         "checks the MX host name that DNS gives for the server's "
                         "address, or nexthop:dot-nexthop when none is found\"",
                         lc->name);
        return 0;
}

/*
 * The listener's TLS contexts, from the files its configuration names: a
 * server one (cert, key) when it accepts TLS, a client one (forward_ca,
 * forward_cert) when it speaks TLS to the server side (outbound: recording
 * the chain's check for judging; otherwise verifying as forward_verify
 * says). Each is loaded on its own: 0 with *ctx set (NULL if the listener
 * has no use for it), or -1 with the reason in err. Start-up and reload.
 */
_Static_assert(CONFIG_MAX_CERTS <= TLS_MAX_CERTS,
               "a listener's certificates fit a context");

static int relay_tls_load_server(const struct relay_listener *l, struct tls_ctx **server,
                                 char *err, size_t errlen)
{
        const struct config_listener *lc = l->conf;

        *server = NULL;
        if (lc->accept_tls != CONFIG_TLS_NONE) {
                /* As many keys as certificates (config_check_listener()). */
                char(*files)[2][PATH_MAX] = xcalloc(CONFIG_MAX_CERTS, sizeof(*files));
                struct tls_ctx_conf tc = {0};

                for (unsigned i = 0;
                     i < CONFIG_MAX_CERTS &&
                     util_list_nth(lc->cert, i, files[i][0], sizeof(files[i][0])) == 1 &&
                     util_list_nth(lc->key, i, files[i][1], sizeof(files[i][1])) == 1;
                     i++) {
                        tc.cert_file[i] = files[i][0];
                        tc.key_file[i] = files[i][1];
                }
                if (tc.cert_file[0] == NULL)
                        fatalx("relay_tls_load_server: [%s]: no cert or key", lc->name);
                *server = tls_ctx_new(TLS_ROLE_SERVER, &tc, err, errlen);
                free(files);
                if (*server == NULL)
                        return -1;
        }
        return 0;
}

static int relay_tls_load_client(const struct relay_listener *l, struct tls_ctx **client,
                                 char *err, size_t errlen)
{
        const struct config_listener *lc = l->conf;

        *client = NULL;
        if (l->outbound || lc->forward_tls == CONFIG_TLS_STARTTLS ||
            lc->forward_tls == CONFIG_TLS_IMPLICIT) {
                /* dane: the chain is recorded, and judged once TLS is up. */
                bool record = l->outbound || lc->forward_verify >= CONFIG_VERIFY_DANE;
                struct tls_ctx_conf tc = {.ca_file = lc->forward_ca,
                                          .cert_file = {lc->forward_cert},
                                          .key_file = {lc->forward_key},
                                          .verify_peer = !record && lc->forward_verify ==
                                                                        CONFIG_VERIFY_YES,
                                          .verify_record = record};

                *client = tls_ctx_new(TLS_ROLE_CLIENT, &tc, err, errlen);
                if (*client == NULL)
                        return -1;
        }
        return 0;
}

/*
 * The listener's MTA-STS cache, made at its first use: the loop exists only
 * once the process serves (a worker makes its own). NULL without mta_sts.
 */
static struct sts *relay_sts(struct relay_listener *l)
{
        if (l->sts == NULL && l->conf->mta_sts) {
                /* Policy hosts are checked against the same trust anchors. */
                struct sts_conf sc = {.loop = l->env->loop,
                                      .cloop = relay_cloop(l),
                                      .tls = l->tls_client,
                                      .log = l->env->log,
                                      .listener = l->conf->name,
                                      .store = l->env->sts_store};

                l->sts = sts_new(&sc);
        }
        return l->sts;
}

/* An EHLO keyword that looks like STARTTLS overwritten on the path ("XXXXXXXA"). */
static void relay_out_masked(const struct smtp_caps *c, char *out, size_t outlen)
{
        unsigned i;

        out[0] = '\0';
        for (i = 0; i < c->n; i++) {
                const char *k = c->line[i];
                size_t n = strcspn(k, " "), x = 0, j;

                if (n != 8)
                        continue;
                for (j = 0; j < n; j++)
                        x += k[j] == 'X' || k[j] == 'x';
                if (x >= 6) {
                        log_escape(out, outlen, k, n);
                        return;
                }
        }
}

/* Answer the client's EHLO with the destination's capabilities, less STARTTLS. */
static void relay_out_ehlo_answer(struct relay_session *s, const struct smtp_caps *from)
{
        struct relay_pending *p = relay_fifo_awaiting(s);
        struct smtp_caps c = *from;
        struct buf b;

        s->o->caps = c; /* what this server session offers (BDAT needs CHUNKING) */

        smtp_caps_filter(&c, relay_caps_allowed);
        if (!s->server_tls)
                smtp_caps_remove(&c, "AUTH");
        buf_init(&b);
        if (s->helo_verb == SMTP_VERB_HELO)
                buf_appendf(&b, "250 %s\r\n", s->o->greeting);
        else
                smtp_caps_print(&c, s->o->greeting, &b);
        if (p != NULL)
                relay_pending_set(p, buf_data(&b), buf_len(&b));
        buf_cleanup(&b);
        s->o->step = RELAY_OUT_NONE;
        relay_enter_state(s, RELAY_S_COMMAND);
}

/* The greeting name from a raw 250 reply ("250-name ..."). */
static void relay_out_greeting_name(struct relay_session *s)
{
        const char *r = buf_data(&s->sreply_buf);
        size_t n = buf_len(&s->sreply_buf), len;

        if (n < 5) {
                snprintf(s->o->greeting, sizeof(s->o->greeting), "%s", relay_hostname(s));
                return;
        }
        len = strcspn(r + 4, "\r\n");
        if (len >= sizeof(s->o->greeting))
                len = sizeof(s->o->greeting) - 1;
        memcpy(s->o->greeting, r + 4, len);
        s->o->greeting[len] = '\0';
}

/* The server's reply to the client's EHLO (sent as EHLO even for HELO). */
static void relay_out_ehlo_reply(struct relay_session *s, int code)
{
        /*
         * A server that knows only HELO (RFC 5321 4.1.1.1: a client may fall
         * back to it): HELO, once, before TLS. It offers no STARTTLS, and is
         * judged as any server without it is (a path that makes EHLO fail
         * strips STARTTLS as surely as one that deletes the line).
         */
        if ((code == 500 || code == 502 || code == 504) && !s->server_tls &&
            !s->o->helo_tried && !s->o->plain_fallback) {
                s->o->helo_tried = true;
                relay_log(s, LOG_LVL_INFO,
                          "event=ehlo_refused server=%s reply=%d action=\"HELO instead, "
                          "no STARTTLS\"",
                          s->o->dst_str, code);
                relay_to_server(s, "HELO ", 5);
                relay_to_server_line(s, s->helo, strlen(s->helo));
                return; /* the client's EHLO waits for that reply */
        }
        if (code != 250 || smtp_caps_parse(&s->o->caps, buf_data(&s->sreply_buf),
                                           buf_len(&s->sreply_buf)) != 0) {
                relay_pending_set(relay_fifo_awaiting(s), buf_data(&s->sreply_buf),
                                  buf_len(&s->sreply_buf));
                relay_enter_state(s, RELAY_S_COMMAND);
                return;
        }
        relay_out_greeting_name(s);
        if (s->server_tls || s->o->plain_fallback) {
                relay_out_ehlo_answer(s, &s->o->caps);
                return;
        }
        s->o->obs.starttls_offered = smtp_caps_has(&s->o->caps, "STARTTLS");
        relay_out_masked(&s->o->caps, s->o->obs.masked, sizeof(s->o->obs.masked));
        if (!s->o->obs.starttls_offered) {
                relay_log(s, LOG_LVL_INFO, "event=no_starttls server=%s masked=%s",
                          s->o->dst_str, s->o->obs.masked[0] ? s->o->obs.masked : "-");
                relay_out_ehlo_answer(s, &s->o->caps);
                return;
        }
        relay_server_send(s, "STARTTLS");
        s->o->step = RELAY_OUT_STARTTLS;
}

/* TLS with the destination failed or was refused: the client's EHLO is answered
 * with what was offered in plaintext, and judging decides per recipient. */
static void relay_out_tls_lost(struct relay_session *s, const char *why)
{
        snprintf(s->o->obs.tls_error, sizeof(s->o->obs.tls_error), "%s", why);
        relay_log(s, LOG_LVL_WARN, "event=outbound_tls_failed server=%s reason=\"%s\"",
                  s->o->dst_str, why);
        relay_backend_abort(s);
        s->o->plain_fallback = true;
        relay_out_ehlo_answer(s, &s->o->caps);
}

/* Replies to mailward's own STARTTLS and to the EHLO repeated over TLS. */
static void relay_out_step_reply(struct relay_session *s, int code)
{
        struct smtp_caps caps;

        if (s->o->step == RELAY_OUT_STARTTLS) {
                s->o->obs.starttls_reply = code;
                if (code != 220) {
                        relay_log(s, LOG_LVL_WARN,
                                  "event=starttls_refused server=%s reply=%d",
                                  s->o->dst_str, code);
                        relay_out_ehlo_answer(s, &s->o->caps);
                        return;
                }
                if (buf_len(conn_input(s->server)) > 0) {
                        /* The alert comes with each recipient it defers (domain known).
                         */
                        s->o->obs.injection = true;
                        relay_out_tls_lost(s,
                                           "server sent data after its 220 to STARTTLS");
                        return;
                }
                s->o->step = RELAY_OUT_TLS;
                if (conn_start_tls(s->server, s->l->tls_client,
                                   s->l->original_dst ? NULL : s->l->fwd_host, NULL,
                                   0) != 0)
                        relay_out_tls_lost(s, conn_tls_error(s->server));
                return;
        }
        /* RELAY_OUT_EHLO: the capabilities over TLS. */
        if (code != 250 || smtp_caps_parse(&caps, buf_data(&s->sreply_buf),
                                           buf_len(&s->sreply_buf)) != 0) {
                relay_backend_failed(s, "EHLO over TLS refused");
                return;
        }
        relay_out_ehlo_answer(s, &caps);
}

static void relay_out_tls_done(struct relay_session *s)
{
        struct tls *t = conn_tls(s->server);

        s->server_tls = true;
        s->o->obs.tls_reached = true;
        snprintf(s->o->obs.version, sizeof(s->o->obs.version), "%s", tls_version(t));
        snprintf(s->o->obs.cipher, sizeof(s->o->obs.cipher), "%s", tls_cipher(t));
        if (tls_peer_info(t, &s->o->obs.peer) != 0)
                memset(&s->o->obs.peer, 0, sizeof(s->o->obs.peer));
        relay_log(
            s, LOG_LVL_INFO,
            "event=outbound_tls server=%s version=%s cipher=%s trusted=%s expired=%s",
            s->o->dst_str, s->o->obs.version, s->o->obs.cipher,
            s->o->obs.peer.chain_trusted ? "yes" : "no",
            s->o->obs.peer.expired ? "yes" : "no");
        relay_server_send(s, "EHLO %s", s->helo);
        s->o->step = RELAY_OUT_EHLO;
        s->reply_wait_ms = 0; /* the EHLO's reply is waited for from now */
}

static enum alert_event relay_out_event(const struct relay_session *s,
                                        const struct policy_verdict *v, bool expected_tls)
{
        switch (v->result) {
        case POLICY_RESULT_STARTTLS_NOT_SUPPORTED:
                if (s->o->obs.starttls_reply != 0 && s->o->obs.starttls_reply != 220)
                        return ALERT_STARTTLS_REFUSED;
                return expected_tls ? ALERT_STARTTLS_STRIPPED : ALERT_TLS_ABSENT;
        case POLICY_RESULT_CERT_HOST_MISMATCH:
        case POLICY_RESULT_CERT_EXPIRED:
        case POLICY_RESULT_CERT_NOT_TRUSTED:
        case POLICY_RESULT_TLSA_INVALID:
                return ALERT_CERTIFICATE_INVALID;
        case POLICY_RESULT_DNSSEC_INVALID:
                return ALERT_DNSSEC_INVALID;
        case POLICY_RESULT_DANE_REQUIRED:
                return ALERT_DANE_REQUIRED;
        default:
                if (s->o->obs.injection)
                        return ALERT_STARTTLS_INJECTION;
                if (s->o->obs.tls_reached)
                        return ALERT_TLS_VERSION_TOO_LOW;
                return ALERT_TLS_HANDSHAKE_FAILED;
        }
}

static void relay_out_observed(const struct relay_session *s, char *out, size_t outlen)
{
        if (s->o->obs.tls_reached)
                snprintf(out, outlen, "%s %s, certificate %s%s", s->o->obs.version,
                         s->o->obs.cipher,
                         s->o->obs.peer.chain_trusted ? "trusted" : "untrusted",
                         s->o->obs.peer.expired ? ", expired" : "");
        else if (s->o->obs.injection)
                snprintf(out, outlen, "data injected after the 220 to STARTTLS");
        else if (s->o->obs.tls_error[0])
                snprintf(out, outlen, "TLS handshake failed: %s", s->o->obs.tls_error);
        else if (s->o->obs.starttls_reply != 0)
                snprintf(out, outlen, "STARTTLS answered with %d",
                         s->o->obs.starttls_reply);
        else if (s->o->obs.masked[0])
                snprintf(out, outlen, "STARTTLS masked as %s", s->o->obs.masked);
        else
                snprintf(out, outlen, "no STARTTLS offered");
}

/* The lookup's TLSA records as lib/tls.h takes them; their number. */
static size_t relay_tlsa_recs(const struct dane_result *d, struct tls_tlsa *recs)
{
        for (size_t i = 0; i < d->ntlsa; i++) {
                recs[i].usage = d->tlsa[i].usage;
                recs[i].selector = d->tlsa[i].selector;
                recs[i].mtype = d->tlsa[i].mtype;
                recs[i].data = d->tlsa[i].data;
                recs[i].len = d->tlsa[i].len;
        }
        return d->ntlsa;
}

/*
 * Whether DANE decides for a domain at this level (RFC 7672, RFC 8461
 * section 2): the level uses DANE and the lookup found a record usable for
 * SMTP, or failed (a bogus answer, a timeout: MTA-STS must not override a
 * failing DANE validation, and the domain gets dnssec-invalid). Then its
 * MTA-STS policy is not used; otherwise it is, also where TLSA records
 * exist (a level that does not use them, such as encrypt with relayhost's
 * lookup, or only PKIX usages: DANE does not apply).
 */
static bool relay_out_dane_applies(enum policy_level level, const struct dane_result *d)
{
        struct tls_tlsa recs[DANE_TLSA_MAX];
        size_t n;

        if (d == NULL || (level != POLICY_LEVEL_DANE && level != POLICY_LEVEL_DANE_ONLY))
                return false;
        if (d->state == DANE_FAILED)
                return true;
        if (d->state != DANE_TLSA)
                return false;
        n = relay_tlsa_recs(d, recs);
        for (size_t i = 0; i < n; i++)
                if (tls_dane_record_usable(&recs[i]))
                        return true;
        return false;
}

/*
 * What the server's certificate says against the DANE lookup's result, into
 * o (dane, dane_why, and the MX host when the lookup found it).
 */
static void relay_out_dane_observe(struct relay_session *s, const char *domain,
                                   const struct dane_result *d,
                                   struct policy_observation *o, char *why, size_t whylen)
{
        struct tls_tlsa recs[DANE_TLSA_MAX];
        const struct tls *t;

        /* DANE-TA's reference identifier: the TLSA base domain (a CNAME's
         * target, when the records were there), else the MX host. */
        if (d->tlsa_host[0] != '\0')
                o->mx_host = d->tlsa_host;
        else if (d->mx_host[0] != '\0')
                o->mx_host = d->mx_host;
        snprintf(why, whylen, "%s", d->why);
        o->dane_why = why;
        switch (d->state) {
        case DANE_FAILED:
                o->dane = POLICY_DANE_FAILED;
                return;
        case DANE_NONE:
                o->dane = POLICY_DANE_NONE;
                return;
        case DANE_TLSA:
                break;
        }
        relay_tlsa_recs(d, recs);
        t = s->server != NULL ? conn_tls(s->server) : NULL;
        switch (t != NULL ? tls_dane_match(t, recs, d->ntlsa, why, whylen)
                          : TLS_DANE_NO_MATCH) {
        case TLS_DANE_UNUSABLE:
                o->dane = POLICY_DANE_UNUSABLE;
                break;
        case TLS_DANE_NO_MATCH:
                o->dane = POLICY_DANE_NO_MATCH;
                break;
        case TLS_DANE_MATCH_EE:
                o->dane = POLICY_DANE_MATCH_EE;
                break;
        case TLS_DANE_MATCH_TA:
                o->dane = POLICY_DANE_MATCH_TA;
                break;
        }
        relay_log(s, LOG_LVL_INFO, "event=dane domain=%s mx=%s result=%s why=\"%s\"",
                  domain, d->mx_host, policy_dane_str(o->dane), why);
}

/*
 * Judge one recipient domain: the expectation (*e comes in as the table's
 * answer, policy_lookup(); then learned record, MTA-STS, DANE) against what
 * the server did. Pure but for the learned lookup, the TLSA match and the
 * log line of report mail (tlsrpt_from), whose level is capped at encrypt.
 */
static bool relay_out_judge(struct relay_session *s, const char *domain,
                            const struct mtasts_policy *sts,
                            const struct dane_result *dane, struct policy_expectation *e,
                            bool *learned_fresh, struct policy_verdict *v,
                            struct policy_verdict *tv)
{
        static const char *const fallback[] = {"nexthop", "dot-nexthop"};
        char dane_why[256];
        struct policy_observation o;
        const char *names[TLS_PEER_NAMES];
        struct learned_tls rec;
        struct policy_expectation te;
        unsigned i;

        *learned_fresh = false;
        if (s->l->env->learned != NULL && s->l->conf->learned_max_age > 0 &&
            learned_lookup(s->l->env->learned, domain, (int64_t)time(NULL),
                           (int64_t)s->l->conf->learned_max_age * 86400, &rec) == 1) {
                *learned_fresh = true;
                *e = learned_expectation(e, &rec);
        }
        /* MTA-STS: enforce is the expectation; testing is judged beside it. */
        te = *e;
        if (sts != NULL && sts->mode != MTASTS_MODE_NONE)
                te = policy_mta_sts(e, (const char *const *)sts->mx, sts->nmx);
        /* DANE first where it applies (RFC 8461 section 2); dane-only
         * wants DANE and nothing else, so MTA-STS does not stand in. */
        if (sts != NULL && sts->mode == MTASTS_MODE_ENFORCE &&
            !relay_out_dane_applies(e->level, dane) && e->level != POLICY_LEVEL_DANE_ONLY)
                *e = te;
        /* Report mail: TLS, and no more (the failure it reports may be ours). */
        if (s->o->report_mail && e->level > POLICY_LEVEL_ENCRYPT) {
                relay_log(s, LOG_LVL_INFO,
                          "event=tls_report_mail domain=%s level=%s action=\"TLS "
                          "required, certificate not checked\"",
                          domain, policy_level_str(e->level));
                e->level = POLICY_LEVEL_ENCRYPT;
        }
        memset(&o, 0, sizeof(o));
        /* Through the relay host, it is the next hop (as in Postfix). */
        o.nexthop = dane != NULL && dane->relay ? dane->mx_host : domain;
        o.mx_host = s->l->original_dst ? NULL : s->l->fwd_host;
        /* verify: the MX host that the lookup found at this address. */
        if (e->level == POLICY_LEVEL_VERIFY && dane != NULL && dane->mx_host[0] != '\0')
                o.mx_host = dane->mx_host;
        if (e->level == POLICY_LEVEL_VERIFY && o.mx_host == NULL) {
                for (i = 0; i < e->nmatch; i++) {
                        if (strcmp(e->match[i], "hostname") == 0) {
                                e->match = fallback;
                                e->nmatch = 2;
                                break;
                        }
                }
        }
        o.starttls_offered = s->o->obs.starttls_offered;
        o.starttls_masked = s->o->obs.masked[0] ? s->o->obs.masked : NULL;
        o.starttls_reply = s->o->obs.starttls_reply;
        o.tls_reached = s->o->obs.tls_reached;
        o.tls_error = s->o->obs.tls_error[0] ? s->o->obs.tls_error : NULL;
        relay_observe_cert(&o, s->o->obs.tls_reached ? s->o->obs.version : "",
                           &s->o->obs.peer, names);
        if (dane != NULL && o.tls_reached &&
            (e->level == POLICY_LEVEL_DANE || e->level == POLICY_LEVEL_DANE_ONLY))
                relay_out_dane_observe(s, domain, dane, &o, dane_why, sizeof(dane_why));
        tv->pass = true;
        tv->result = POLICY_RESULT_OK;
        if (sts != NULL && sts->mode == MTASTS_MODE_TESTING &&
            te.source == POLICY_SOURCE_MTA_STS)
                policy_judge(&te, &o, tv);
        return policy_judge(e, &o, v);
}

/*
 * The TLS-RPT result (lib/tlsrpt.h) of this session for a recipient domain,
 * once per domain: the policy that applied (DANE where the domain's level
 * used its TLSA records, else MTA-STS in enforce or testing, else none) and
 * its verdict (the testing one for MTA-STS testing).
 */
static void relay_out_tlsrpt(struct relay_session *s, const char *domain,
                             const struct policy_expectation *e,
                             const struct mtasts_policy *sts,
                             const struct dane_result *dane,
                             const struct policy_verdict *v,
                             const struct policy_verdict *tv)
{
        struct buf *done = &s->o->tlsrpt_done;
        char key[260], local[48], remote[48];
        struct tlsrpt_result r;
        size_t klen;
        int ret;

        /* Report mail is left out of the reports (RFC 8460 section 5.3); so
         * are sessions that do not try TLS (level none: nothing to count as
         * a TLS session, successful or not) and address literals (no
         * policy domain to report to). */
        if (s->l->env->tlsrpt == NULL || !s->l->conf->tlsrpt || domain[0] == '\0' ||
            domain[0] == '[' || e->level == POLICY_LEVEL_NONE || s->o->report_mail ||
            s->o->to_relay)
                return;
        klen = (size_t)snprintf(key, sizeof(key), "\n%s\n", domain);
        if ((buf_len(done) > 0 &&
             memmem(buf_data(done), buf_len(done), key, klen) != NULL) ||
            buf_len(done) + klen > RELAY_TLSRPT_DOMAINS)
                return;
        buf_append(done, key, klen);
        memset(&r, 0, sizeof(r));
        r.time = (int64_t)time(NULL);
        r.domain = domain;
        if (relay_out_dane_applies(e->level, dane)) {
                if (dane->state == DANE_TLSA)
                        r.dane = dane; /* a failed lookup has no records to name */
        } else if (sts != NULL && sts->mode != MTASTS_MODE_NONE &&
                   e->level != POLICY_LEVEL_DANE_ONLY) {
                r.sts = sts;
        }
        if (r.sts != NULL && r.sts->mode == MTASTS_MODE_TESTING)
                v = tv;
        r.result =
            v->result == POLICY_RESULT_OK ? "success" : policy_result_str(v->result);
        r.info = v->result == POLICY_RESULT_OK ? NULL : v->reason;
        /* No policy because the announced one could not be had: that is the
         * session's failure (RFC 8460 section 4.3.2.3). */
        if (r.sts == NULL && r.dane == NULL && s->l->sts != NULL &&
            e->source != POLICY_SOURCE_FILE) {
                const char *why;
                enum sts_failure f = sts_failure(s->l->sts, domain, &why);

                if (f != STS_FAILURE_NONE) {
                        r.sts_failed = true;
                        r.result = sts_failure_str(f);
                        r.info = why;
                }
        }
        conn_ip_str((const struct sockaddr *)&s->o->dst, remote, sizeof(remote));
        r.receiving_ip = remote;
        snprintf(local, sizeof(local), "?");
        if (s->server != NULL)
                conn_ip_str((const struct sockaddr *)conn_local_addr(s->server), local,
                            sizeof(local));
        r.sending_ip = local;
        if (dane != NULL && dane->mx_host[0] != '\0')
                r.receiving_mx = dane->mx_host;
        else if (!s->l->original_dst)
                r.receiving_mx = s->l->fwd_host;
        ret = tlsrpt_record(s->l->env->tlsrpt, &r);
        if (ret != 0)
                relay_log(s, LOG_LVL_ERR, "event=tlsrpt_failed domain=%s error=\"%s\"",
                          domain, strerror(-ret));
}

static void relay_out_learn(struct relay_session *s, const char *domain)
{
        struct learned_tls rec;
        int r, pruned;

        if (s->l->env->learned == NULL || s->l->conf->learned_max_age == 0 ||
            !s->o->obs.tls_reached || domain[0] == '\0' || s->o->to_relay)
                return;
        memset(&rec, 0, sizeof(rec));
        rec.time = (int64_t)time(NULL);
        snprintf(rec.version, sizeof(rec.version), "%s", s->o->obs.version);
        snprintf(rec.cipher, sizeof(rec.cipher), "%s", s->o->obs.cipher);
        snprintf(rec.cert_sha256, sizeof(rec.cert_sha256), "%s", s->o->obs.peer.sha256);
        if (!s->l->original_dst)
                snprintf(rec.mx_host, sizeof(rec.mx_host), "%s", s->l->fwd_host);
        pruned = 0;
        if (relay_now_ms() >= s->l->learned_prune_ms)
                r = learned_record_room(s->l->env->learned, domain, &rec,
                                        (int64_t)s->l->conf->learned_max_age * 86400,
                                        &pruned);
        else
                r = learned_record(s->l->env->learned, domain, &rec);
        if (r == -ENOSPC && pruned == 0)
                s->l->learned_prune_ms = relay_now_ms() + RELAY_PRUNE_AGAIN_MS;
        if (pruned > 0)
                relay_log(s, LOG_LVL_INFO,
                          "event=learned_pruned removed=%d reason=\"the store was full\"",
                          pruned);
        if (r != 0)
                relay_log(s, LOG_LVL_WARN,
                          "event=learned_record_failed domain=%s error=\"%s\"%s", domain,
                          strerror(-r),
                          r == -ENOSPC ? " note=\"the store is full of records that are "
                                         "not stale: nothing is learned until some are\""
                                       : "");
}

/*
 * A recipient domain's verdict that is not a plain pass: one log line and,
 * unless told not to (level none), an alert. expected_tls: TLS was required
 * and known to work or asked for (a failure is then "stripped", not "absent").
 */
static void relay_out_report(struct relay_session *s, const char *domain,
                             const char *expected, const struct policy_verdict *v,
                             bool expected_tls, bool alert)
{
        char observed[200];

        relay_out_observed(s, observed, sizeof(observed));
        relay_log(s, v->pass ? LOG_LVL_INFO : LOG_LVL_WARN,
                  "event=%s domain=%s server=%s expected=\"%s\" result=%s",
                  v->pass ? "tls_reported" : "tls_deferred", domain, s->o->dst_str,
                  expected, policy_result_str(v->result));
        if (alert) {
                struct alert a = {
                    .event = relay_out_event(s, v, expected_tls),
                    .severity = v->pass ? ALERT_SEV_INFO : ALERT_SEV_CRITICAL,
                    .session = s->id,
                    .listener = s->l->conf->name,
                    .client = conn_peer(s->client),
                    .server = s->o->dst_str,
                    .action = v->pass ? "relayed" : "deferred",
                    .domain = domain,
                    .expected = expected,
                    .observed = observed,
                    .reason = v->reason,
                };

                alert_emit(s->l->env->alerts, &a);
        }
}

static void relay_out_lookup_cb(void *arg);

/* The RCPT waits for a lookup (its callback is relay_out_lookup_cb()). */
static int relay_out_wait(struct relay_session *s, const char *line, size_t len)
{
        s->o->lookup_rcpt = xstrndup(line, len);
        relay_enter_state(s, RELAY_S_POLICY);
        return 0;
}

/*
 * The domain's MTA-STS policy, when the listener applies them and no table
 * entry decides first: 1 with *p set (or NULL: none), or 0 when the RCPT
 * must wait for a lookup (the session is then in RELAY_S_POLICY) or was
 * answered: the policy could not be fetched for want of a descriptor here,
 * which says nothing of the domain (451 4.3.2; the MTA tries again).
 */
static int relay_out_sts(struct relay_session *s, const char *domain,
                         const struct policy_expectation *table, const char *line,
                         size_t len, const struct mtasts_policy **p)
{
        enum sts_answer a;

        *p = NULL;
        if (!s->l->conf->mta_sts || domain[0] == '\0' ||
            table->source == POLICY_SOURCE_FILE)
                return 1;
        a = sts_get(relay_sts(s->l), domain, (int64_t)time(NULL), p, relay_out_lookup_cb,
                    s, &s->o->lookup_wait);
        if (a == STS_TEMPFAIL) {
                relay_log(s, LOG_LVL_WARN,
                          "event=rcpt_deferred domain=%s reason=\"MTA-STS policy not "
                          "fetched: out of file descriptors\"",
                          domain);
                relay_reply(s,
                            "451 4.3.2 %s: MTA-STS policy not fetched (out of file "
                            "descriptors here), try again later",
                            domain);
                return 0;
        }
        if (a != STS_PENDING)
                return 1;
        return relay_out_wait(s, line, len);
}

/*
 * The listener's DANE cache, made at its first use (see relay_sts()).
 */
static struct dane *relay_dane(struct relay_listener *l)
{
        if (l->dane == NULL) {
                /* A wrapped smarthost (forward_verify = dane) is looked up alone. */
                bool wrap = !l->outbound && l->conf->forward_verify >= CONFIG_VERIFY_DANE;
                struct dane_conf dc = {.loop = l->env->loop,
                                       .log = l->env->log,
                                       .listener = l->conf->name,
                                       .relay_host =
                                           wrap ? l->fwd_host : l->conf->relayhost,
                                       .direct = wrap};

                l->dane = dane_new(&dc);
        }
        return l->dane;
}

/*
 * The DANE lookup's result for the domain at this server, when its level is
 * dane, dane-only (TLSA records) or verify (the MX host name) and TLS was
 * reached (otherwise TLS decides); and with a relayhost whenever it matters
 * whether the destination is the relay host (level secure, whose nexthop
 * it becomes, MTA-STS and TLS-RPT, which it leaves out): 1 with *d set (or
 * NULL: not needed), or 0 when the RCPT must wait for the lookup.
 */
static int relay_out_dane(struct relay_session *s, const char *domain,
                          const struct policy_expectation *table, const char *line,
                          size_t len, const struct dane_result **d)
{
        enum policy_level level = table->level;

        *d = NULL;
        if (domain[0] == '\0')
                return 1;
        if (!(s->o->obs.tls_reached &&
              (level == POLICY_LEVEL_DANE || level == POLICY_LEVEL_DANE_ONLY ||
               level == POLICY_LEVEL_VERIFY)) &&
            !(s->l->conf->relayhost != NULL &&
              (level == POLICY_LEVEL_SECURE || s->l->conf->mta_sts ||
               s->l->conf->tlsrpt)))
                return 1;
        if (dane_get(relay_dane(s->l), domain, &s->o->dst, util_mono_secs(), d,
                     relay_out_lookup_cb, s, &s->o->lookup_wait) != DANE_PENDING)
                return 1;
        return relay_out_wait(s, line, len);
}

/*
 * The destination is the relay host: the MTA relays through it, and it is
 * not the recipient domains' MX. Their MTA-STS policies (about their MX
 * hosts) and TLS-RPT reports (about delivery to them) do not apply, and
 * what TLS the relay host has is not learned for them; the names the
 * certificate must have are the relay host's (relay_out_judge()).
 */
static void relay_out_to_relay(struct relay_session *s, const char *host,
                               const struct mtasts_policy **sts)
{
        *sts = NULL;
        if (s->o->to_relay)
                return;
        s->o->to_relay = true;
        relay_log(s, LOG_LVL_INFO,
                  "event=relay_host host=%s action=\"judged as the relay host: nexthop "
                  "%s, no MTA-STS, no TLS-RPT result, nothing learned\"",
                  host, host);
}

static void relay_out_rcpt(struct relay_session *s, const struct smtp_cmd *cmd,
                           const char *line, size_t len)
{
        const char *path, *params;
        size_t plen, prlen;
        char domain[256] = "", expected[96];
        const struct mtasts_policy *sts;
        const struct dane_result *dane;
        struct policy_expectation e;
        struct policy_verdict v, tv;
        bool fresh;

        if (s->o->held_mail == NULL && !s->o->mail_sent) {
                relay_reply(s, "503 5.5.1 Error: need MAIL command");
                return;
        }
        if (smtp_path_parse(cmd->args, cmd->args_len, "TO:", &path, &plen, &params,
                            &prlen) != 0) {
                relay_reply(s, "501 5.1.3 Error: bad recipient address syntax");
                return;
        }
        /* A domain that cannot be read as lookups name it is not guessed at
         * (the default level would let a secure domain's mail through). */
        if (smtp_addr_domain_ascii(path, plen, domain, sizeof(domain)) < 0) {
                relay_log(s, LOG_LVL_WARN, "event=rcpt_refused reason=domain");
                relay_reply(s, "501 5.1.3 Error: bad recipient address syntax (domain)");
                return;
        }
        e = policy_lookup(s->l->policy, domain);
        if (relay_out_dane(s, domain, &e, line, len, &dane) == 0)
                return;
        if (dane != NULL && dane->relay)
                relay_out_to_relay(s, dane->mx_host, &sts);
        else if (relay_out_sts(s, domain, &e, line, len, &sts) == 0)
                return;
        relay_out_judge(s, domain, sts, dane, &e, &fresh, &v, &tv);
        relay_out_tlsrpt(s, domain, &e, sts, dane, &v, &tv);
        snprintf(expected, sizeof(expected), "%s (%s)", policy_level_str(e.level),
                 fresh && e.source != POLICY_SOURCE_FILE &&
                         e.source != POLICY_SOURCE_MTA_STS
                     ? "learned"
                     : policy_source_str(e.source));
        if (!v.pass || v.result != POLICY_RESULT_OK)
                relay_out_report(s, domain, expected, &v,
                                 e.level >= POLICY_LEVEL_ENCRYPT &&
                                     (e.source == POLICY_SOURCE_FILE ||
                                      e.source == POLICY_SOURCE_MTA_STS || fresh),
                                 e.level != POLICY_LEVEL_NONE);
        if (!v.pass) {
                relay_reply(s, "451 4.7.5 TLS required for %s: %s: %s",
                            domain[0] ? domain : "this recipient",
                            policy_result_str(v.result), v.reason);
                return;
        }
        /* MTA-STS testing: what enforce would refuse is reported, and delivered. */
        if (!tv.pass) {
                tv.pass = true;
                relay_out_report(s, domain, "secure (mta-sts testing)", &tv, true, true);
        }
        relay_out_learn(s, domain);
        relay_need_backend(s);
        if (s->state == RELAY_S_CLOSING)
                return;
        if (!s->o->mail_sent) {
                relay_fifo_push(s, RELAY_A_OUT_MAIL)->txn = s->o->txn;
                relay_to_server_line(s, s->o->held_mail, strlen(s->o->held_mail));
                s->o->mail_sent = true;
        }
        s->o->rcpt_passed++;
        relay_fifo_push(s, RELAY_A_OUT_RCPT)->txn = s->o->txn;
        relay_to_server_line(s, line, len);
}

/* The lookup (MTA-STS or DANE) a RCPT waited for has ended: take the RCPT again. */
static void relay_out_lookup_cb(void *arg)
{
        struct relay_session *s = arg;
        char *line;
        struct smtp_cmd cmd;

        UTIL_CHECK_MAGIC(s, RELAY_SESSION_MAGIC);
        s->o->lookup_wait = NULL;
        line = s->o->lookup_rcpt;
        s->o->lookup_rcpt = NULL;
        if (s->state == RELAY_S_POLICY && line != NULL) {
                relay_enter_state(s, RELAY_S_COMMAND);
                smtp_cmd_parse(line, strlen(line), &cmd);
                relay_out_rcpt(s, &cmd, line, strlen(line));
        }
        free(line);
        relay_run(s);
}

/*
 * AUTH, outbound: the MTA's credentials go only to the relay host, and only
 * once its certificate is judged as level secure judges it for the relay
 * host's name (a CA-trusted chain, in date, naming it). AUTH comes before
 * any recipient, so no recipient's level can decide; without this, a
 * server that only encrypt would pass (any certificate) got them. Refused
 * with 454 4.7.0, so that the MTA keeps the message (Postfix's
 * smtp_sasl_auth_soft_bounce) and says why. true: relay the AUTH.
 */
static bool relay_out_auth_ok(struct relay_session *s)
{
        static const char *const nexthop[] = {"nexthop"};
        const char *relayhost = s->l->conf->relayhost;
        struct policy_expectation e;
        struct policy_observation o;
        struct policy_verdict v;
        const char *names[TLS_PEER_NAMES];

        memset(&v, 0, sizeof(v));
        if (relayhost == NULL) {
                snprintf(v.reason, sizeof(v.reason),
                         "no relayhost is set, the only server that may have the "
                         "credentials");
        } else {
                relay_host_judging(&e, &o, POLICY_LEVEL_SECURE, nexthop, relayhost,
                                   s->o->obs.version, &s->o->obs.peer, names);
                if (policy_judge(&e, &o, &v) && v.result == POLICY_RESULT_OK)
                        return true;
                relay_reason_of_setting(&v);
                relay_alert(s, ALERT_CERTIFICATE_INVALID, ALERT_SEV_WARNING, "deferred",
                            NULL, "AUTH refused", v.reason);
        }
        relay_log(s, LOG_LVL_WARN, "event=auth_refused relayhost=%s reason=\"%s\"",
                  relayhost != NULL ? relayhost : "none", v.reason);
        relay_reply(s, "454 4.7.0 Temporary authentication failure: credentials go only "
                       "to a verified relay host");
        return false;
}

/*
 * Whether this MAIL FROM is the sender of TLS-RPT reports (tlsrpt_from).
 * RFC 8460 (section 5.3) wants reports delivered despite the TLS failures
 * they report; mailward still never sends them in clear text.
 */
static bool relay_out_report_mail(struct relay_session *s, const struct smtp_cmd *cmd)
{
        const char *from = s->l->conf->tlsrpt_from, *path, *params;
        size_t plen, prlen;

        return from != NULL &&
               smtp_path_parse(cmd->args, cmd->args_len, "FROM:", &path, &plen, &params,
                               &prlen) == 0 &&
               plen == strlen(from) && strncasecmp(path, from, plen) == 0;
}

/* The transaction ends (its data, RSET, EHLO): the next one begins. A late
 * MAIL's error stays for the RCPTs of this one still to be answered. */
static void relay_out_reset(struct relay_session *s)
{
        free(s->o->held_mail);
        s->o->held_mail = NULL;
        s->o->report_mail = false;
        s->o->mail_sent = false;
        s->o->rcpt_passed = 0;
        s->o->txn++;
}

/* Outbound commands; false: not special here, the common path handles it. */
static bool relay_out_command(struct relay_session *s, const struct smtp_cmd *cmd,
                              const char *line, size_t len)
{
        switch (cmd->verb) {
        case SMTP_VERB_EHLO:
        case SMTP_VERB_HELO:
                if (relay_helo_refused(s, cmd))
                        return true;
                relay_forget_helo(s);
                s->helo = xstrndup(cmd->args, cmd->args_len);
                s->helo_verb = cmd->verb;
                s->o->helo_tried = false;
                relay_out_reset(s);
                /* EHLO even for HELO: STARTTLS needs the extended greeting. */
                relay_fifo_push(s, RELAY_A_OUT_EHLO);
                relay_to_server(s, "EHLO ", 5);
                relay_to_server_line(s, s->helo, strlen(s->helo));
                relay_need_backend(s);
                if (s->state != RELAY_S_CLOSING)
                        relay_enter_state(s, RELAY_S_WAIT);
                return true;
        case SMTP_VERB_STARTTLS:
        case SMTP_VERB_VRFY:
        case SMTP_VERB_EXPN:
                /* VRFY/EXPN carry addresses, which must not go out before judging. */
                relay_reply(s, "%s", RELAY_REPLY_UNAVAILABLE);
                return true;
        case SMTP_VERB_UNKNOWN:
                /* Not forwarded: nothing but judged commands goes to a server
                 * that may be in clear text, and a client that sends its
                 * message as commands (out of step) must not send it. */
                relay_reply(s, "500 5.5.2 Error: command not recognized");
                return true;
        case SMTP_VERB_MAIL:
                if (s->helo == NULL) {
                        relay_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
                } else if (s->o->held_mail != NULL || s->o->mail_sent) {
                        relay_reply(s, "503 5.5.1 Error: nested MAIL command");
                } else {
                        /*
                         * Held, not sent: the server sees no envelope before a
                         * recipient passes. The client needs a reply to go on.
                         */
                        s->o->held_mail = xstrndup(line, len);
                        s->o->report_mail = relay_out_report_mail(s, cmd);
                        relay_reply(s, "250 2.1.0 Ok");
                }
                return true;
        case SMTP_VERB_RCPT:
                relay_out_rcpt(s, cmd, line, len);
                return true;
        case SMTP_VERB_DATA:
        case SMTP_VERB_BDAT:
                if (s->o->rcpt_passed > 0)
                        return false;
                relay_reply(s, "554 5.5.1 Error: no valid recipients");
                relay_bdat_skip(s, cmd);
                return true;
        case SMTP_VERB_RSET:
                relay_out_reset(s);
                return false;
        case SMTP_VERB_AUTH:
                if (!s->server_tls) {
                        relay_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
                        return true;
                }
                return !relay_out_auth_ok(s);
        default:
                return false;
        }
}

/*
 * Whether a (the accepted socket's local address) is the `listen` address
 * listen: IP and port; a wildcard listen host matches any IP on its port.
 */
static bool relay_out_is_addr(const char *listen, const struct sockaddr_storage *a)
{
        char host[256];
        unsigned port;
        struct in_addr in4;
        struct in6_addr in6;

        if (util_split_hostport(listen, host, sizeof(host), &port) != 0)
                return true;
        if (a->ss_family == AF_INET) {
                const struct sockaddr_in *sin = (const struct sockaddr_in *)a;

                if (ntohs(sin->sin_port) != port)
                        return false;
                if (inet_pton(AF_INET, host, &in4) == 1)
                        return in4.s_addr == INADDR_ANY ||
                               in4.s_addr == sin->sin_addr.s_addr;
        } else if (a->ss_family == AF_INET6) {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)a;

                if (ntohs(sin6->sin6_port) != port)
                        return false;
                if (inet_pton(AF_INET6, host, &in6) == 1)
                        return IN6_IS_ADDR_UNSPECIFIED(&in6) ||
                               IN6_ARE_ADDR_EQUAL(&in6, &sin6->sin6_addr);
        } else {
                return true;
        }
        /* Empty ("any"), or not comparable: the port decides (refusing). */
        return true;
}

/*
 * Whether a is one of the listener's own `listen` addresses. A connection
 * made to mailward directly, with no redirect and no TPROXY, has that
 * address and no destination.
 */
static bool relay_out_is_listen_addr(const struct relay_session *s,
                                     const struct sockaddr_storage *a)
{
        const char *it = s->l->conf->listen;
        char one[CONFIG_MAX_HOST_PORT];
        int r;

        while ((r = util_list_next(&it, one, sizeof(one))) == 1) {
                if (relay_out_is_addr(one, a))
                        return true;
        }
        return r != 0;
}

/* At accept: find where the client meant to go, and go there. */
static void relay_out_start(struct relay_session *s)
{
        int r = 0;

        s->out = true;
        s->o = xcalloc(1, sizeof(*s->o));
        if (s->l->original_dst) {
                r = conn_original_dst(s->client, &s->o->dst);
                /* No NAT entry: TPROXY leaves the destination as our local
                 * address. Either way, one of our own listen addresses means
                 * the connection came to mailward itself (with conntrack on,
                 * a NAT entry exists for it too): relaying it would loop. */
                if (r >= 0 && relay_out_is_listen_addr(s, &s->o->dst))
                        r = 1;
                else if (r == 1)
                        r = 0;
        } else {
                s->o->dst = s->l->fwd_addr;
        }
        if (r != 0) {
                relay_log(s, LOG_LVL_WARN, "event=no_original_dst error=%d", r);
                relay_fail(s, "no_original_dst",
                           "421 4.3.0 %s Error: connection was not redirected; no "
                           "destination",
                           relay_hostname(s));
                return;
        }
        conn_addr_str((const struct sockaddr *)&s->o->dst, s->o->dst_str,
                      sizeof(s->o->dst_str));
        relay_log(s, LOG_LVL_INFO, "event=outbound server=%s", s->o->dst_str);
        relay_enter_state(s, RELAY_S_WAIT);
        relay_backend_connect(s);
}

/* ---- the strategy ---- */

static void relay_free(struct relay_session *s)
{
        struct relay_listener *l = s->l;
        bool probe = s->probe;

        if (s->probe) {
                l->probing = false;
                if (!l->caps_known)
                        log_emit(l->env->log, LOG_LVL_WARN, s->id,
                                 "event=probe_failed listener=%s server=%s reason=\"%s\"",
                                 l->conf->name, l->conf->forward, s->reason);
        } else {
                l->env->stats.sessions_active--;
                relay_log(s, LOG_LVL_INFO,
                          "event=close reason=%s messages=%u duration_ms=%llu",
                          s->reason[0] ? s->reason : "-", s->messages,
                          (unsigned long long)(relay_now_ms() - s->started_ms));
        }
        if (s->counted)
                l->nsessions--;
        if (s->fd_handshake)
                l->env->fd_handshakes--;
        if (s->prev)
                s->prev->next = s->next;
        else
                l->sessions = s->next;
        if (s->next)
                s->next->prev = s->prev;
        relay_fifo_clear(s);
        relay_forget_helo(s);
        relay_name_abandon(s);
        free(s->client_name);
        pending_cancel(s->wrap_wait);
        relay_caps_unwait(s);
        if (s->o != NULL) {
                pending_cancel(s->o->lookup_wait);
                free(s->o->lookup_rcpt);
                free(s->o->held_mail);
                free(s->o->late_mail_error);
                buf_cleanup(&s->o->tlsrpt_done);
                free(s->o);
        }
        buf_cleanup(&s->sreply_buf);
        buf_cleanup(&s->to_server);
        s->magic = 0;
        free(s);
        /* The EHLOs that waited for it, once it is gone: its caps or none. */
        if (probe)
                pending_deliver(&l->probe_waits);
        if (probe && l->reprobe) {
                l->reprobe = false;
                relay_listener_probe(l);
        }
}

static uint64_t relay_client_timeout(const struct relay_session *s)
{
        const struct config_listener *lc = s->l->conf;

        switch (s->state) {
        case RELAY_S_HANDSHAKE:
        case RELAY_S_STARTTLS:
        case RELAY_S_PROXY:
                return lc->timeout_handshake * RELAY_MS;
        case RELAY_S_DATA:
        case RELAY_S_BDAT:
                return lc->timeout_data * RELAY_MS;
        case RELAY_S_POLICY:
                /* Lookups end on their own; this bounds a resolver that is slow. */
                return lc->timeout_command * RELAY_MS;
        case RELAY_S_COMMAND:
        case RELAY_S_AUTH:
                if (relay_fifo_unanswered(s) != NULL || s->bstate == RELAY_B_CONNECTING ||
                    s->bstate == RELAY_B_SETUP)
                        return 0; /* the backend's turn */
                return (s->tls ? lc->timeout_command : lc->timeout_idle) * RELAY_MS;
        default:
                return 0;
        }
}

static uint64_t relay_server_timeout(const struct relay_session *s)
{
        const struct config_listener *lc = s->l->conf;
        const struct relay_pending *p;

        if (s->name_wait)
                return RELAY_NAME_WAIT_MS;
        /* Outbound: the handshake with the destination, from its 220. */
        if (relay_out_step(s) == RELAY_OUT_TLS)
                return lc->timeout_handshake * RELAY_MS;
        if (s->bstate == RELAY_B_CONNECTING || s->bstate == RELAY_B_SETUP)
                return lc->timeout_greeting * RELAY_MS;
        for (p = s->head; p != NULL; p = p->next) {
                if (!p->ready)
                        return (p->action == RELAY_A_MESSAGE ? lc->timeout_final
                                                             : lc->timeout_command) *
                               RELAY_MS;
        }
        return 0;
}

/*
 * The server's timeout, from now. A reply (all its lines) is due within the
 * timeout from when the wait for it began: after the reply before it, or
 * once the last bytes of its command (a message, a chunk) have gone out.
 * A server that drips its reply a byte at a time, or sends lines without
 * end, is closed all the same (invariant 5); a timer restarted by each byte
 * would never fire. The client name lookup keeps a wait of its own.
 */
static uint64_t relay_server_deadline(struct relay_session *s)
{
        uint64_t ms = relay_server_timeout(s), now, waited;

        if (ms == 0 || s->name_wait || s->state == RELAY_S_DATA ||
            s->state == RELAY_S_BDAT || conn_queued(s->server) > 0) {
                s->reply_wait_ms = 0;
                return ms;
        }
        now = relay_now_ms();
        if (s->reply_wait_ms == 0) {
                s->reply_wait_ms = now;
                return ms;
        }
        waited = now - s->reply_wait_ms;
        return waited >= ms ? 1 : ms - waited;
}

/*
 * The client's timeout, from now. While it owes the next command line
 * (timeout_idle, timeout_command), the time counts from when the wait for
 * that line began, not from its last byte: a client that trickles a byte
 * now and then, never ending a line, is closed all the same (invariant 5).
 * Message data is timed between reads (timeout_data), a handshake from its
 * start (conn: no event comes before it ends).
 */
static uint64_t relay_client_deadline(struct relay_session *s)
{
        uint64_t ms = relay_client_timeout(s), now, waited;

        if (ms == 0 || (s->state != RELAY_S_COMMAND && s->state != RELAY_S_AUTH)) {
                s->line_wait_ms = 0;
                return ms;
        }
        now = relay_now_ms();
        if (s->line_wait_ms == 0) {
                s->line_wait_ms = now;
                return ms;
        }
        waited = now - s->line_wait_ms;
        return waited >= ms ? 1 : ms - waited;
}

/* Can the client's input be taken now (not waiting for a reply, not held
 * back by a slow peer or a full FIFO)? Then it is read. */
static bool relay_takes_input(struct relay_session *s)
{
        return s->state != RELAY_S_WAIT && s->state != RELAY_S_POLICY &&
               !relay_backpressure(s) && s->fifo_len < RELAY_FIFO_MAX;
}

/*
 * While a reply decides how to read on (RELAY_S_WAIT), the client's next
 * bytes are still read, up to RELAY_READ_AHEAD, and only held: they are
 * parsed once the reply has set the state, as if the kernel had held them.
 * Stopping and restarting the read instead would cost two epoll_ctl() calls
 * per DATA. Never after QUIT: nothing after it is read. The same while a
 * RCPT waits for an MTA-STS lookup (RELAY_S_POLICY), so that a client that
 * goes away meanwhile is seen at once: its session ends there, and nothing
 * of its envelope is sent on its behalf.
 */
static bool relay_read_ahead(struct relay_session *s)
{
        bool waiting = (s->state == RELAY_S_WAIT && s->tail != NULL &&
                        s->tail->action != RELAY_A_QUIT) ||
                       s->state == RELAY_S_POLICY;

        return waiting && !relay_backpressure(s) &&
               buf_len(conn_input(s->client)) < RELAY_READ_AHEAD;
}

static void relay_run(struct relay_session *s)
{
        unsigned queued;
        bool reading;

        /*
         * Commands are taken until RELAY_FIFO_MAX await replies; the replies
         * ready then make room, and the commands already read (no read event
         * will come for them) are taken again, until neither moves.
         */
        while (s->state != RELAY_S_CLOSING) {
                while (relay_client_process(s) && s->state != RELAY_S_CLOSING)
                        ;
                if (s->state == RELAY_S_CLOSING || s->client == NULL)
                        break;
                queued = s->fifo_len;
                relay_fifo_flush(s);
                if (s->fifo_len == queued)
                        break;
        }
        if (s->quit && s->state != RELAY_S_CLOSING)
                relay_close(s, s->quit_reason != NULL ? s->quit_reason : "quit");
        /*
         * An end of input read ahead counts once what came before it has been
         * taken as far as it can be, as if it had been read only now; and once
         * the replies still due have been written: a client that half-closes
         * after its final dot must get the server's answer to its message (it
         * would send the message again). In the middle of a message it ends
         * the session without waiting for more: that message is discarded.
         * Inside a BDAT chunk, not before the replies owed for the commands
         * before that chunk's: a message pipelined before it may have been
         * taken, and its answer must not be lost (the chunk's own reply
         * never comes, the backend waits for the rest of it).
         */
        if (s->client_eof && s->state != RELAY_S_CLOSING && relay_takes_input(s) &&
            (s->head == NULL || s->state == RELAY_S_DATA ||
             (s->state == RELAY_S_BDAT && s->head == s->tail)))
                relay_close(s, "client_closed");
        if (s->client != NULL)
                conn_flush(s->client);
        if (s->server != NULL)
                conn_flush(s->server);
        if (s->state == RELAY_S_CLOSING) {
                if (s->open == 0)
                        relay_free(s);
                return;
        }
        if (s->client != NULL) {
                reading = !s->client_eof && (relay_takes_input(s) || relay_read_ahead(s));
                conn_read(s->client, reading);
                conn_timeout(s->client, relay_client_deadline(s));
                if (buf_len(conn_input(s->client)) == 0)
                        buf_shrink(conn_input(s->client));
        }
        if (s->server != NULL) {
                conn_timeout(s->server, relay_server_deadline(s));
                /* Not while a smarthost's DANE records are looked up: what it
                 * sends meanwhile would pile up unread (relay_wrap_dane()). */
                if (s->bstate != RELAY_B_CONNECTING && s->wrap_wait == NULL)
                        conn_read(s->server, true);
        }
}

static unsigned relay_count_client(const struct relay_listener *l, const char *ip)
{
        const struct relay_session *s;
        unsigned n = 0;

        /* Not those still waiting for a PROXY header: their address is the
         * balancer's, which is not their client's. */
        for (s = l->sessions; s != NULL; s = s->next) {
                if (s->counted && s->client && s->state != RELAY_S_PROXY &&
                    strcmp(conn_peer_ip(s->client), ip) == 0)
                        n++;
        }
        return n;
}

/* accept_proxy: may the connection's peer name clients (proxy_from)? */
static bool relay_proxy_allowed(const struct relay_listener *l, const struct conn *c)
{
        for (unsigned i = 0; i < l->nproxy_from; i++)
                if (util_net_match(&l->proxy_from[i],
                                   (const struct sockaddr *)conn_peer_addr(c)))
                        return true;
        return false;
}

/* max_per_client, once the client's address is known (a counted session). */
static void relay_admit(struct relay_session *s)
{
        struct relay_listener *l = s->l;

        if (s->counted) {
                s->counted = false; /* not counted against itself */
                if (relay_count_client(l, conn_peer_ip(s->client)) >=
                    l->conf->max_per_client) {
                        s->refuse = "Error: too many connections from your address";
                        l->env->stats.refused[RELAY_REFUSED_PER_CLIENT]++;
                        l->nsessions--;
                } else {
                        s->counted = true;
                }
        }
        if (s->refuse != NULL)
                relay_log(s, LOG_LVL_WARN, "event=refused reason=\"%s\"", s->refuse);
}

/*
 * client_name_lookup: the client's host name for XCLIENT's NAME=, found as
 * Postfix finds it: the address's PTR name, kept only when that name's
 * addresses include the client's (otherwise, or with no PTR, [UNAVAILABLE];
 * [TEMPUNAVAIL] when a lookup failed for now). With the system's resolver
 * (libuv's thread pool), while TLS and the first commands go on; XCLIENT
 * waits for it if it must.
 */
static void relay_name_done(struct relay_name *n, const char *name)
{
        struct relay_session *s = n->s;

        n->env->name_lookups--;
        if (s != NULL) {
                s->name_req = NULL;
                s->client_name = xstrdup(name); /* name may be n->host */
        }
        free(n);
        if (s == NULL)
                return;
        relay_log(s, LOG_LVL_DEBUG, "event=client_name name=%s", s->client_name);
        if (s->name_wait && s->state != RELAY_S_CLOSING && s->server != NULL) {
                s->name_wait = false;
                relay_send_xclient(s);
                s->step = RELAY_STEP_XCLIENT;
                relay_run(s);
        }
}

/*
 * A host name as Postfix takes it (its valid_hostname()): labels of 1 to 63
 * letters, digits, '-' and '_', not beginning or ending with '-', 255 in
 * all, and not all digits and dots (an address in a PTR record).
 */
static bool relay_name_valid(const char *h, size_t len)
{
        size_t label = 0, i;
        bool numeric = true;

        if (len == 0 || len > 255)
                return false;
        for (i = 0; i < len; i++) {
                if (h[i] == '.') {
                        if (label == 0 || h[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '_')
                        return false;
                if ((label == 0 && h[i] == '-') || ++label > 63)
                        return false;
                numeric = numeric && isdigit((unsigned char)h[i]);
        }
        return label > 0 && h[len - 1] != '-' && !numeric;
}

/* Does the address a (of an addrinfo) equal the client's? */
static bool relay_name_same(const struct sockaddr_storage *c, const struct sockaddr *a)
{
        if (c->ss_family != a->sa_family)
                return false;
        if (a->sa_family == AF_INET)
                return memcmp(&((const struct sockaddr_in *)(const void *)c)->sin_addr,
                              &((const struct sockaddr_in *)(const void *)a)->sin_addr,
                              4) == 0;
        return a->sa_family == AF_INET6 &&
               memcmp(&((const struct sockaddr_in6 *)(const void *)c)->sin6_addr,
                      &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                      16) == 0;
}

static void relay_name_addrs_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
        struct relay_name *n = req->data;
        bool same = false;

        for (struct addrinfo *r = status == 0 ? res : NULL; r != NULL && !same;
             r = r->ai_next)
                same = relay_name_same(&n->addr, r->ai_addr);
        uv_freeaddrinfo(res);
        relay_name_done(n, same ? n->host
                           : status == 0 || status == UV_EAI_NONAME ||
                                   status == UV_EAI_NODATA
                               ? "[UNAVAILABLE]"
                               : "[TEMPUNAVAIL]");
}

static void relay_name_ptr_cb(uv_getnameinfo_t *req, int status, const char *host,
                              const char *service)
{
        struct relay_name *n = req->data;
        struct addrinfo hints;
        size_t i, len = host != NULL ? strlen(host) : 0;
        bool ok = status == 0 && len > 0 && len < sizeof(n->host);

        (void)service;
        ok = ok && relay_name_valid(host, len);
        if (n->s == NULL || !ok) {
                relay_name_done(n, status == 0 || status == UV_EAI_NONAME
                                       ? "[UNAVAILABLE]"
                                       : "[TEMPUNAVAIL]");
                return;
        }
        for (i = 0; i < len; i++)
                n->host[i] = (char)tolower((unsigned char)host[i]);
        n->host[len] = '\0';
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        n->ai.data = n;
        if (uv_getaddrinfo(n->s->l->env->loop, &n->ai, relay_name_addrs_cb, n->host, NULL,
                           &hints) != 0)
                relay_name_done(n, "[TEMPUNAVAIL]");
}

static void relay_name_start(struct relay_session *s)
{
        struct relay_env *env = s->l->env;
        struct relay_name *n;

        /* Lookups hold threads of libuv's pool until the resolver gives up:
         * a few slow PTR answers must not queue every later session's. */
        if (env->name_lookups >= RELAY_NAME_LOOKUPS) {
                s->client_name = xstrdup("[TEMPUNAVAIL]");
                relay_log(s, LOG_LVL_INFO,
                          "event=client_name name=[TEMPUNAVAIL] "
                          "reason=\"too many lookups at once\"");
                return;
        }
        n = xcalloc(1, sizeof(*n));
        n->env = env;
        env->name_lookups++;
        n->s = s;
        n->addr = *conn_peer_addr(s->client);
        n->ni.data = n;
        s->name_req = n;
        if (uv_getnameinfo(s->l->env->loop, &n->ni, relay_name_ptr_cb,
                           (const struct sockaddr *)&n->addr, NI_NAMEREQD) != 0) {
                s->name_req = NULL;
                env->name_lookups--;
                free(n);
                s->client_name = xstrdup("[TEMPUNAVAIL]");
        }
}

/* The lookup is left to end by itself (its callback frees it), and the
 * session goes on without it; one still queued is taken off the queue. */
static void relay_name_abandon(struct relay_session *s)
{
        struct relay_name *n = s->name_req;

        if (n == NULL)
                return;
        s->name_req = NULL;
        n->s = NULL;
        /* The PTR lookup is under way until the forward one starts. */
        uv_cancel(n->ai.type == UV_GETADDRINFO ? (uv_req_t *)&n->ai : (uv_req_t *)&n->ni);
}

/* Greet, or start implicit TLS (the greeting follows the handshake). */
static void relay_begin(struct relay_session *s)
{
        struct relay_listener *l = s->l;
        const struct config_listener *lc = l->conf;

        if (!l->outbound && s->refuse == NULL &&
            lc->client_identity == CONFIG_IDENTITY_XCLIENT && lc->client_name_lookup)
                relay_name_start(s);
        if (l->outbound && s->refuse == NULL) {
                relay_out_start(s);
        } else if (lc->accept_tls == CONFIG_TLS_IMPLICIT) {
                s->state = RELAY_S_HANDSHAKE;
                if (conn_start_tls(s->client, l->tls_server, NULL, NULL, 0) != 0)
                        relay_close(s, "tls_start_failed");
        } else {
                relay_greet(s);
        }
}

/* accept_proxy: the header came (conn_expect_proxy()); the session begins,
 * unless the balancer ended the client's TLS itself: then what comes
 * through it is plaintext, and neither STARTTLS nor implicit TLS would be
 * the client's (README, "Behind a load balancer"). */
static void relay_proxy_done(struct relay_session *s)
{
        const struct proxyproto_hdr *h = conn_proxy_header(s->client);
        char tlv[2 * PROXYPROTO_ID_MAX + 200];

        /* The header's strings are safe to log as they are (proxyproto.h). */
        snprintf(tlv, sizeof(tlv), "%s%s%s%s%s", h->unique_id[0] ? " unique_id=" : "",
                 h->unique_id, h->endpoint[0] ? " endpoint=" : "", h->endpoint,
                 h->crc32c ? " crc32c=yes" : "");
        if (conn_via(s->client)[0] != '\0')
                relay_log(s, LOG_LVL_INFO, "event=proxy client=%s via=%s%s",
                          conn_peer(s->client), conn_via(s->client), tlv);
        else
                relay_log(s, LOG_LVL_INFO,
                          "event=proxy client=%s%s note=\"no client named (LOCAL or "
                          "UNKNOWN): the balancer's own connection\"",
                          conn_peer(s->client), tlv);
        /* Where a session without a header begins (relay_session_new()). */
        s->state = RELAY_S_HANDSHAKE;
        if (h->balancer_tls) {
                relay_log(s, LOG_LVL_WARN,
                          "event=proxy_tls_ended tls=%s note=\"the balancer ended the "
                          "client's TLS: it must pass the connection through\"",
                          h->tls_version[0] ? h->tls_version : "unknown");
                s->l->env->stats.refused[RELAY_REFUSED_BALANCER_TLS]++;
                relay_fail(s, "balancer_tls",
                           "421 4.7.0 %s Error: TLS must reach this server, not end "
                           "before it",
                           relay_hostname(s));
                return;
        }
        relay_admit(s);
        relay_begin(s);
}

static void relay_client_cb(struct conn *c, enum conn_event ev, void *arg)
{
        struct relay_session *s = arg;

        UTIL_CHECK_MAGIC(s, RELAY_SESSION_MAGIC);
        switch (ev) {
        case CONN_EV_READ:
                break;
        case CONN_EV_TLS_DONE:
                relay_tls_up(s);
                if (s->state == RELAY_S_HANDSHAKE)
                        relay_greet(s);
                else
                        relay_enter_state(s, RELAY_S_COMMAND);
                break;
        case CONN_EV_TLS_FAILED:
                if (conn_tls_plaintext(c)) {
                        relay_log(s, LOG_LVL_WARN, "event=starttls_injection where=%s",
                                  s->state == RELAY_S_HANDSHAKE ? "implicit"
                                                                : "starttls");
                        relay_alert(s, ALERT_STARTTLS_INJECTION, ALERT_SEV_CRITICAL,
                                    "closed", NULL,
                                    "plaintext where a TLS handshake was due",
                                    conn_tls_error(c));
                } else {
                        relay_log(s, LOG_LVL_WARN,
                                  "event=tls_handshake_failed reason=\"%s\"",
                                  conn_tls_error(c));
                        relay_alert(s, ALERT_TLS_HANDSHAKE_FAILED, ALERT_SEV_WARNING,
                                    "closed", NULL, "handshake failed",
                                    conn_tls_error(c));
                }
                relay_close(s, "tls_handshake_failed");
                break;
        case CONN_EV_PROXY:
                relay_proxy_done(s);
                break;
        case CONN_EV_PROXY_FAILED: {
                /* The reason quotes no byte of the peer's but letters and
                 * digits (proxyproto.h). */
                relay_log(s, LOG_LVL_WARN, "event=proxy_failed reason=\"%s\"",
                          conn_proxy_error(c));
                relay_close(s, "proxy_failed");
                break;
        }
        case CONN_EV_EOF:
                /* Not while a RCPT waits for its lookup: nothing of the
                 * envelope goes out for a client that has gone. */
                if (s->state == RELAY_S_WAIT ||
                    (s->head != NULL && s->state != RELAY_S_POLICY))
                        s->client_eof = true; /* see relay_run() */
                else
                        relay_close(s, "client_closed");
                break;
        case CONN_EV_ERROR:
                relay_close(s, "client_error");
                break;
        case CONN_EV_TIMEOUT:
                relay_log(s, LOG_LVL_INFO, "event=timeout state=%s",
                          relay_state_names[s->state]);
                if (s->state == RELAY_S_HANDSHAKE || s->state == RELAY_S_STARTTLS)
                        relay_close(s, "handshake_timeout");
                else if (s->state == RELAY_S_PROXY)
                        relay_close(s, "proxy_timeout");
                else
                        relay_fail(s, "timeout", "421 4.4.2 %s Error: timeout exceeded",
                                   relay_hostname(s));
                break;
        case CONN_EV_CLOSED:
                s->client = NULL;
                conn_free(c);
                s->open--;
                break;
        default:
                break;
        }
        relay_run(s);
}

static struct relay_session *relay_session_new(struct relay_listener *l)
{
        struct relay_session *s = xcalloc(1, sizeof(*s));
        struct relay_env *env = l->env;

        s->magic = RELAY_SESSION_MAGIC;
        s->l = l;
        snprintf(s->id, sizeof(s->id), "%s%06llx", env->id_prefix,
                 (unsigned long long)(env->next_session++ & 0xffffff));
        s->started_ms = relay_now_ms();
        s->clines.max = relay_line_max(l->conf);
        s->slines.max = SMTP_REPLY_LINE_MAX;
        buf_init(&s->sreply_buf);
        buf_init(&s->to_server);
        s->next = l->sessions;
        if (l->sessions)
                l->sessions->prev = s;
        l->sessions = s;
        return s;
}

const char *relay_tls_version_str(unsigned i)
{
        return i / RELAY_KEY_COUNT == 1 ? "TLSv1.3" : "TLSv1.2";
}

const char *relay_tls_key_str(unsigned i)
{
        static const char *const names[] = {"ecdsa", "rsa", "other"};

        return names[i % RELAY_KEY_COUNT];
}

const char *relay_refusal_str(enum relay_refusal r)
{
        static const char *const names[] = {"file_descriptors", "max_sessions",
                                            "max_per_client", "balancer_tls"};

        return (size_t)r < UTIL_ARRAY_LEN(names) ? names[r] : "?";
}

void relay_accept(struct relay_listener *l, struct uv_stream_s *server)
{
        const struct config_listener *lc = l->conf;
        struct relay_session *s = relay_session_new(l);
        int err = 0, fd;

        l->env->stats.sessions_total++;
        l->env->stats.sessions_active++;
        s->client = conn_accept(relay_cloop(l), server, relay_client_cb, s, &err);
        if (s->client == NULL) {
                log_emit(l->env->log, LOG_LVL_WARN, s->id, "event=accept_failed error=%d",
                         err);
                s->state = RELAY_S_CLOSING;
                relay_free(s);
                return;
        }
        s->open = 1;
        relay_log(s, LOG_LVL_INFO, "event=connect listener=%s client=%s", lc->name,
                  conn_peer(s->client));
        if (lc->accept_proxy && !relay_proxy_allowed(l, s->client)) {
                relay_log(s, LOG_LVL_WARN,
                          "event=proxy_refused note=\"not in proxy_from: a client must "
                          "come through the load balancer\"");
                relay_close(s, "proxy_refused");
                relay_run(s);
                return;
        }
        fd = conn_fileno(s->client);
        if (l->env->fd_limit > RELAY_FD_SPARE && fd >= 0 &&
            (uint64_t)fd >= l->env->fd_limit - RELAY_FD_SPARE) {
                /*
                 * The 421 goes out and the descriptor is closed again before
                 * the next accept (conn_close() writes what the kernel takes
                 * at once), so one spare descriptor refuses any number of
                 * clients. Implicit TLS keeps it for a handshake first: at
                 * most half the reserve does, the rest are closed unanswered
                 * (nothing can be said before the handshake), as are
                 * connections through a balancer, kept until a header comes.
                 */
                bool wait = lc->accept_tls == CONFIG_TLS_IMPLICIT;

                s->refuse = "Error: too many connections (out of file descriptors)";
                l->env->stats.refused[RELAY_REFUSED_FILES]++;
                if (lc->accept_proxy ||
                    (wait && l->env->fd_handshakes >= RELAY_FD_SPARE / 2)) {
                        relay_log(
                            s, LOG_LVL_WARN,
                            "event=refused reason=\"%s\" action=\"closed unanswered: "
                            "%s\"",
                            s->refuse,
                            lc->accept_proxy ? "the header would hold the descriptor"
                                             : "no descriptor to spare for a TLS "
                                               "handshake");
                        relay_close(s, "refused");
                        relay_run(s);
                        return;
                }
                if (wait) {
                        s->fd_handshake = true;
                        l->env->fd_handshakes++;
                }
        } else if (l->nsessions >= lc->max_sessions) {
                s->refuse = "Error: too many connections";
                l->env->stats.refused[RELAY_REFUSED_MAX_SESSIONS]++;
        } else {
                s->counted = true;
                l->nsessions++;
        }
        if (lc->accept_proxy) {
                /* The client's address, for max_per_client, comes with the header. */
                relay_enter_state(s, RELAY_S_PROXY);
                conn_expect_proxy(s->client);
                relay_run(s);
                return;
        }
        relay_admit(s);
        relay_begin(s);
        relay_run(s);
}

void relay_listener_probe(struct relay_listener *l)
{
        struct relay_session *s;

        if (l->outbound && l->conf->mta_sts && !l->draining)
                sts_sweep(relay_sts(l), l->env->sts_sweeper);
        if (l->probing || l->draining || l->outbound)
                return;
        l->probing = true;
        s = relay_session_new(l);
        s->probe = true;
        s->state = RELAY_S_COMMAND;
        relay_backend_connect(s);
        relay_run(s);
}

static int relay_resolve(struct relay_listener *l, char *err, size_t errlen)
{
        struct addrinfo hints, *res = NULL;
        char port[8];
        unsigned p;
        int r;

        if (util_split_hostport(l->conf->forward, l->fwd_host, sizeof(l->fwd_host), &p) !=
            0) {
                snprintf(err, errlen, "[%s]: forward: bad host:port '%s'", l->conf->name,
                         l->conf->forward);
                return -1;
        }
        snprintf(port, sizeof(port), "%u", p);
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        /* With forward_source, an address it can reach from. */
        hints.ai_family = l->fwd_src.ss_family != 0 ? l->fwd_src.ss_family : AF_UNSPEC;
        r = getaddrinfo(l->fwd_host, port, &hints, &res);
        if (r != 0 || res == NULL) {
                snprintf(err, errlen, "[%s]: forward: cannot resolve '%s'%s: %s",
                         l->conf->name, l->fwd_host,
                         l->fwd_src.ss_family == AF_INET    ? " to an IPv4 address"
                         : l->fwd_src.ss_family == AF_INET6 ? " to an IPv6 address"
                                                            : "",
                         gai_strerror(r));
                return -1;
        }
        memcpy(&l->fwd_addr, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
        return 0;
}

/*
 * forward_source: parsed, and checked once by binding a socket to it, so
 * that an address this host does not have stops the start rather than
 * every session.
 */
static int relay_source(struct relay_listener *l, char *err, size_t errlen)
{
        const char *a = l->conf->forward_source;
        struct sockaddr_in *in = (struct sockaddr_in *)&l->fwd_src;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->fwd_src;
        socklen_t len;
        int fd, r;

        if (a == NULL)
                return 0;
        if (inet_pton(AF_INET, a, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                len = sizeof(*in);
        } else if (inet_pton(AF_INET6, a, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                len = sizeof(*in6);
        } else {
                snprintf(err, errlen, "[%s]: forward_source: not an address: '%s'",
                         l->conf->name, a);
                return -1;
        }
        fd = socket(l->fwd_src.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        r = fd < 0 ? -1 : bind(fd, (const struct sockaddr *)&l->fwd_src, len);
        if (r != 0) {
                snprintf(err, errlen, "[%s]: forward_source %s: %s", l->conf->name, a,
                         strerror(errno));
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        close(fd);
        return 0;
}

/* accept_proxy: proxy_from's networks (config_check_listener() checked them),
 * at start and again at a reload; on an error the ones in use stay. */
static int relay_proxy_from(struct relay_listener *l, char *err, size_t errlen)
{
        const char *it = l->conf->proxy_from != NULL ? l->conf->proxy_from : "";
        struct util_net nets[CONFIG_MAX_PROXY_FROM];
        unsigned n = 0;
        char one[64];

        while (n < CONFIG_MAX_PROXY_FROM && util_list_next(&it, one, sizeof(one)) == 1) {
                if (util_net_parse(one, &nets[n++]) != 0) {
                        snprintf(err, errlen, "[%s]: proxy_from: bad network '%s'",
                                 l->conf->name, one);
                        return -1;
                }
        }
        if (n == 0) {
                snprintf(err, errlen, "[%s]: accept_proxy needs proxy_from",
                         l->conf->name);
                return -1;
        }
        memcpy(l->proxy_from, nets, n * sizeof(nets[0]));
        l->nproxy_from = n;
        return 0;
}

struct relay_listener *relay_listener_new(struct relay_env *env,
                                          const struct config_listener *conf, char *err,
                                          size_t errlen)
{
        struct relay_listener *l = xcalloc(1, sizeof(*l));
        char terr[256];

        l->env = env;
        l->conf = conf;
        l->outbound = conf->forward_tls == CONFIG_TLS_POLICY;
        l->original_dst = strcmp(conf->forward, "original-dst") == 0;
        if (relay_source(l, err, errlen) != 0)
                goto fail;
        if (conf->accept_proxy && relay_proxy_from(l, err, errlen) != 0)
                goto fail;
        if (!l->original_dst && relay_resolve(l, err, errlen) != 0)
                goto fail;
        if (l->outbound && relay_out_listener_init(l, err, errlen) != 0)
                goto fail;
        if (relay_tls_load_server(l, &l->tls_server, terr, sizeof(terr)) != 0 ||
            relay_tls_load_client(l, &l->tls_client, terr, sizeof(terr)) != 0) {
                snprintf(err, errlen, "[%s]: %s", conf->name, terr);
                goto fail;
        }
        return l;
fail:
        relay_listener_free(l);
        return NULL;
}

void relay_listener_free(struct relay_listener *l)
{
        if (l == NULL)
                return;
        if (l->sessions != NULL)
                fatalx("relay_listener_free: sessions still running");
        tls_ctx_free(l->tls_server);
        sts_free(l->sts);
        dane_free(l->dane);
        tls_ctx_free(l->tls_client);
        policy_free(l->policy);
        conn_loop_free(l->cloop);
        free(l);
}

void relay_listener_drain(struct relay_listener *l)
{
        l->draining = true;
}

void relay_listener_shutdown(struct relay_listener *l)
{
        struct relay_session *s, *next;

        for (s = l->sessions; s != NULL; s = next) {
                next = s->next;
                if (s->probe || s->state == RELAY_S_PROXY)
                        relay_close(s, "shutdown");
                else
                        relay_fail(s, "shutdown", "421 4.3.2 %s Service shutting down",
                                   relay_hostname(s));
                relay_run(s);
        }
}

void relay_listener_stop(struct relay_listener *l)
{
        struct relay_session *s, *next;

        /* A probe still waiting on a backend: nobody needs its answer now. */
        for (s = l->sessions; s != NULL; s = next) {
                next = s->next;
                if (s->probe) {
                        relay_close(s, "shutdown");
                        relay_run(s);
                }
        }
        if (l->sts != NULL)
                sts_shutdown(l->sts);
        if (l->dane != NULL)
                dane_shutdown(l->dane);
}

bool relay_listener_outbound(const struct relay_listener *l)
{
        return l->outbound;
}

int relay_listener_reload(struct relay_listener *l, FILE *errs, size_t *entries)
{
        struct policy *p;
        int r;

        if (l->sts != NULL)
                log_emit(l->env->log, LOG_LVL_INFO, NULL,
                         "event=reload_mta_sts listener=%s domains=%u action=\"each is "
                         "looked up again at its next use\"",
                         l->conf->name, sts_recheck(l->sts));
        if (l->dane != NULL)
                log_emit(l->env->log, LOG_LVL_INFO, NULL,
                         "event=reload_dane listener=%s entries=%u action=\"looked up "
                         "again at their next use\"",
                         l->conf->name, dane_flush(l->dane));
        if (l->conf->accept_proxy) {
                char err[256];

                if (relay_proxy_from(l, err, sizeof(err)) != 0)
                        log_emit(l->env->log, LOG_LVL_ERR, NULL,
                                 "event=reload_proxy_from_failed reason=\"%s\" "
                                 "action=\"kept the balancers in use\"",
                                 err);
        }
        if (!l->outbound || l->conf->policy == NULL)
                return 0;
        r = relay_policy_load(l->conf, errs, &p);
        if (r != 0)
                return r;
        policy_free(l->policy);
        l->policy = p;
        *entries = policy_count(p);
        return 1;
}

int relay_listener_resolve_forward(const struct relay_listener *l,
                                   const struct config_listener *next,
                                   struct relay_forward *f, char *err, size_t errlen)
{
        struct relay_listener *trial = xmalloc(sizeof(*trial));
        int r;

        /* As relay_listener_check_tls(): a copy that reads next. */
        *trial = *l;
        trial->conf = next;
        memset(&trial->fwd_src, 0, sizeof(trial->fwd_src));
        r = relay_source(trial, err, errlen) == 0 &&
                    relay_resolve(trial, err, errlen) == 0
                ? 0
                : -1;
        if (r == 0) {
                f->addr = trial->fwd_addr;
                f->src = trial->fwd_src;
                memcpy(f->host, trial->fwd_host, sizeof(f->host));
        }
        free(trial);
        return r;
}

void relay_listener_set_forward(struct relay_listener *l, const struct relay_forward *f)
{
        char addr[CONFIG_MAX_HOST_PORT];

        l->fwd_addr = f->addr;
        l->fwd_src = f->src;
        memcpy(l->fwd_host, f->host, sizeof(l->fwd_host));
        conn_addr_str((const struct sockaddr *)&l->fwd_addr, addr, sizeof(addr));
        log_emit(l->env->log, LOG_LVL_INFO, NULL,
                 "event=reload_forward listener=%s forward=%s address=%s source=%s "
                 "action=\"new sessions go there; those under way keep their backend\"",
                 l->conf->name, l->conf->forward, addr,
                 l->conf->forward_source != NULL ? l->conf->forward_source : "-");
        /* The capabilities offered are the new backend's from its first reply;
         * a probe of the old one under way is followed by one of the new. */
        if (l->env->loop != NULL && l->probing)
                l->reprobe = true;
        else if (l->env->loop != NULL)
                relay_listener_probe(l);
}

int relay_listener_check_tls(const struct relay_listener *l,
                             const struct config_listener *next, char *err, size_t errlen)
{
        struct relay_listener *trial = xmalloc(sizeof(*trial));
        struct tls_ctx *server = NULL, *client = NULL;
        int r;

        /* The loaders read only the configuration and what kind of listener
         * it is: a copy that points at the next configuration will do. */
        *trial = *l;
        trial->conf = next;
        r = relay_tls_load_server(trial, &server, err, errlen) == 0 &&
                    relay_tls_load_client(trial, &client, err, errlen) == 0
                ? 0
                : -1;
        tls_ctx_free(server);
        tls_ctx_free(client);
        free(trial);
        return r;
}

int relay_listener_reload_tls(struct relay_listener *l, char *err, size_t errlen)
{
        struct tls_ctx *server, *client;
        char cerr[256];
        int failed = 0;

        if (l->tls_server == NULL && l->tls_client == NULL)
                return 0;
        /*
         * Each context on its own: a forward_key the unprivileged user cannot
         * read must not keep the listener's own certificate from renewal.
         * Sessions hold their own references to the contexts they were made
         * from: they go on with the old certificates, new ones get these.
         */
        if (relay_tls_load_server(l, &server, err, errlen) == 0) {
                tls_ctx_free(l->tls_server);
                l->tls_server = server;
        } else {
                failed = 1;
        }
        if (relay_tls_load_client(l, &client, cerr, sizeof(cerr)) == 0) {
                tls_ctx_free(l->tls_client);
                l->tls_client = client;
                if (l->sts != NULL)
                        sts_set_tls(l->sts, client);
        } else if (failed) {
                size_t n = strlen(err);

                snprintf(err + n, errlen - n, "; %s", cerr);
        } else {
                snprintf(err, errlen, "%s", cerr);
                failed = 1;
        }
        return failed ? -1 : 1;
}

bool relay_listener_cert(const struct relay_listener *l, unsigned i,
                         struct tls_cert_desc *out, bool *client)
{
        unsigned n = 0;

        /* The server certificates first, then the one shown to the server side. */
        while (tls_ctx_cert(l->tls_server, n, out))
                n++;
        *client = i >= n;
        return tls_ctx_cert(*client ? l->tls_client : l->tls_server, *client ? i - n : i,
                            out);
}

unsigned relay_listener_sessions(const struct relay_listener *l)
{
        const struct relay_session *s;
        unsigned n = 0;

        for (s = l->sessions; s != NULL; s = s->next)
                n += !s->probe;
        return n;
}
