#!/usr/bin/python3
"""Outbound MTA-STS (mta_sts = yes): sessions whose RCPT waits for a lookup.

While a domain's policy is looked up, a RCPT for it waits (session state
"policy"); one lookup per domain runs at a time and every session waiting
for it is called back when it ends (lib/sts.c, lib/relay.c). Here the
policy host holds its answer back (net.https(..., delays=)) so that the
waiting can be seen, and what happens meanwhile is tested.

The test bed (network namespaces, documentation addresses only), as in
t_out_mta_sts.py:

  192.0.2.10:25   aiosmtpd with STARTTLS, certificate for mx.enforce.test
  192.0.2.12:25   another one like it, killed in scenario 2b
  192.0.2.44:443  the policy hosts mta-sts.<domain> (Python's http.server
                  over ssl), answers held back per host
  192.0.2.53:53   dnsmasq: the _mta-sts.<domain> TXT records and the
                  mta-sts.<domain> addresses; the sender's resolver

slow.test, gone.test, drop.test, pipe.test and stuck.test publish enforce
with mx mx.enforce.test (the destinations' certificate fits); nosts.test
has no TXT record. mailward logs at debug level, so that every session's entry
into and exit from state "policy" is in its log.

Scenarios (1-3 against one mailward, stopped cleanly afterwards: status 0,
no sanitizer report, leaks included; 4 against a second one with
drain_timeout = 2):

  1. Coalescing: mta-sts.slow.test holds its answer 1.5 s. Three smtplib
     clients, each its own session, send their RCPT to slow.test at the
     same moment. All three are delivered, each RCPT answered only once the
     held answer came (>= 1.2 s) and all three within 0.5 s of each other;
     each session entered "policy" once, before the policy was logged; the
     policy host got one GET, dnsmasq one TXT query for _mta-sts.slow.test,
     and the log has one mta_sts_policy line for slow.test.
  2. Clients that go away while their RCPT waits (gone.test, held 1.5 s):
     A reads every reply, sends RCPT and closes (FIN); B sends MAIL and RCPT
     in one write and closes with SO_LINGER 0 and the reply to MAIL unread
     (RST). Both sessions entered "policy"; mailward keeps reading while a
     RCPT waits, so both sessions end at once, while the lookup still runs
     (their close lines come before the policy is logged), and their waits
     are cancelled; the destination never sees a MAIL or RCPT for
     gone.test. C sends MAIL, a RCPT to slow.test (policy cached: sent on
     at once, its reply owed by the destination) and a RCPT to gone.test
     in one write and half-closes (FIN): it ends at once too, with the
     reply still owed, and its gone.test RCPT is never sent. mailward stays up, the fetch completes (the answer was
     written out in full, mta_sts_policy for gone.test, no mta_sts_failed),
     nothing for gone.test is delivered. A new session to gone.test is then
     delivered without waiting, with no second GET or TXT query.
 2b. A wait cancelled while others go on (drop.test, held 1.5 s): sessions
     Y (to 192.0.2.10), X (to 192.0.2.12), Z (to 192.0.2.10) send their RCPT
     in that order (X's wait is in the middle of the domain's list); the
     destination 192.0.2.12 is then killed. X gets 421 and its session ends
     while the lookup still runs (before the held answer; its close line
     before the mta_sts_policy line): its wait is cancelled (relay_free ->
     sts_cancel). Y and Z are delivered once the answer comes; one GET.
  3. Pipelined commands behind a waiting RCPT (pipe.test, held 1.5 s): one
     write of MAIL, RCPT <a@pipe.test>, RCPT <b@nosts.test>, DATA (aiosmtpd,
     hence mailward's EHLO, may not offer PIPELINING: it is sent anyway, as
     t_pipelining_bdat.py does). The replies come in order, 250 250 250 354,
     the RCPT replies not before the held answer; the message reaches the
     destination once, for both recipients, and the destination saw MAIL,
     RCPT, RCPT, DATA in that order.
  4. Shutdown while a fetch is in flight: mta-sts.stuck.test holds its
     answer 20 s; a client's RCPT to stuck.test waits (the GET has arrived);
     SIGTERM. mailward ends within drain_timeout + 3 s (long before the held
     answer), status 0, no sanitizer report; the waiting client gets a 4xx
     reply or the connection closed (which one is printed), never 2xx.
  5. The wait is bounded by timeout_command: with timeout_command = 2 and
     mta-sts.late.test holding its answer 20 s, a RCPT to late.test gets
     421 4.4.2 after 2 s (not before 1.5, not after 6), the connection is
     closed, nothing reached the destination, and mailward, still running,
     stops cleanly at once with the fetch still under way.

A sanitizer report in either mailward's log fails the test (mwtest)."""

import os
import re
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402
import rawsmtp  # noqa: E402

DEST, DEST2, WEB, DNS = "192.0.2.10", "192.0.2.12", "192.0.2.44", "192.0.2.53"
MX_CERT = "mx.enforce.test"
MAX_AGE = 86400
HOLD = 1.5             # seconds the slow policy hosts hold their answer
STUCK_HOLD = 20.0      # ... and the one that is still held at shutdown
DRAIN = 2              # drain_timeout of the mailward of scenario 4
DOMAINS = ("slow.test", "gone.test", "drop.test", "pipe.test", "stuck.test", "late.test")
NOSTS = "nosts.test"
FROM = outcheck.FROM


def policy_body(mx):
    return ("version: STSv1\r\nmode: enforce\r\nmx: %s\r\nmax_age: %d\r\n" % (mx, MAX_AGE))


# 2026-12-07T07:57:08.534Z mailward[16174]: info: 948d4000000 event=connect ...
LOG_LINE = re.compile(r"^(\S+) mailward\[\d+\]: (\w+): (\S+) (.*)$")


def log_records(mw):
    """mailward's log as [(index, session id or "-", {key: value})]."""
    out = []
    for i, line in enumerate(mw.log().splitlines()):
        m = LOG_LINE.match(line)
        if not m:
            continue
        out.append((i, m.group(3), outcheck.log_kv(m.group(4))))
    return out


def log_events(mw, event, domain=None):
    return [(i, sid, kv) for i, sid, kv in log_records(mw)
            if kv.get("event") == event and (domain is None or kv.get("domain") == domain)]


def session_of(mw, local_port, timeout=5):
    """The id of the session whose client port is local_port (its connect line)."""
    client = "%s:%d" % (mwtest.NetEnv.SENDER_ADDR, local_port)

    def find():
        for _, sid, kv in log_events(mw, "connect"):
            if kv.get("client") == client:
                return sid
        return None
    sid = mwtest.wait_for(find, timeout)
    mwtest.check(sid, "no connect line for client %s; log:\n%s" % (client, mw.log()[-4000:]))
    return sid


def session_events(mw, sid):
    return [(i, kv) for i, s, kv in log_records(mw) if s == sid]


def policy_entries(mw, sid):
    """Log indexes where session sid entered, and left, state policy."""
    ev = session_events(mw, sid)
    into = [i for i, kv in ev if kv.get("event") == "state" and kv.get("to") == "policy"]
    out = [i for i, kv in ev if kv.get("event") == "state" and kv.get("from") == "policy"]
    return into, out


def wait_policy_state(mw, sid, n=1, timeout=5):
    """Wait until session sid has entered state policy n times."""
    got = mwtest.wait_for(lambda: len(policy_entries(mw, sid)[0]) >= n, timeout)
    mwtest.check(got, "session %s never entered state policy; its log lines: %r"
                 % (sid, session_events(mw, sid)))


def closes(mw, sid):
    return [kv for _, kv in session_events(mw, sid) if kv.get("event") == "close"]


def raw_client(net, timeout=15, host=DEST):
    """rawsmtp.Client connected from the sender to host:25 (mailward takes it
    by the redirect), greeting read."""
    with net.inside():
        c = rawsmtp.Client(25, host=host, timeout=timeout)
    r = c.reply()
    mwtest.eq(r.code, 220, "greeting (%r)" % r)
    return c


def waiting_client(net, mw, rcpt, timeout=15):
    """A raw client whose RCPT to rcpt waits in state "policy": (client, session id)."""
    c = raw_client(net, timeout=timeout)
    ehlo(c)
    r = c.cmd("MAIL FROM:<%s>" % FROM)
    mwtest.eq(r.code, 250, "MAIL (%r)" % r)
    sid = session_of(mw, c.sock.getsockname()[1])
    c.send("RCPT TO:<%s>\r\n" % rcpt)
    wait_policy_state(mw, sid)
    return c, sid


def ehlo(c):
    r = c.cmd("EHLO client.sender.test")
    mwtest.eq(r.code, 250, "EHLO (%r)" % r)
    return r


def check_policy_logged_once(mw, domain, timeout=HOLD + 8):
    got = mwtest.wait_for(lambda: log_events(mw, "mta_sts_policy", domain), timeout)
    mwtest.check(got, "no mta_sts_policy line for %s; log:\n%s" % (domain, mw.log()[-6000:]))
    time.sleep(0.1)
    got = log_events(mw, "mta_sts_policy", domain)
    mwtest.eq(len(got), 1, "mta_sts_policy lines for %s (%r)" % (domain, got))
    kv = got[0][2]
    mwtest.eq([kv.get("mode"), kv.get("id"), kv.get("mx")],
              ["enforce", domain.split(".")[0] + "1", MX_CERT],
              "mta_sts_policy line for %s (mode, id, mx)" % domain)
    return got[0][0]


def delivered_once(net, dest, rcpt, subject):
    """One smtplib transaction for rcpt, delivered over TLS; returns the RCPT
    reply's delay and the session's local port."""
    before = len(dest.messages)
    msg = outcheck.message(subject)
    s = net.smtp(DEST)
    port = s.sock.getsockname()[1]
    mwtest.eq(s.ehlo()[0], 250, "EHLO (%s)" % subject)
    mwtest.eq(s.mail(FROM)[0], 250, "MAIL (%s)" % subject)
    t0 = time.monotonic()
    code, text = s.rcpt(rcpt)
    took = time.monotonic() - t0
    mwtest.eq(code, 250, "RCPT %s (%r)" % (rcpt, text))
    code, text = s.data(msg)
    mwtest.eq(code, 250, "end of data (%s): %r" % (subject, text))
    s.quit()
    msgs = dest.wait_messages(before + 1, 10)
    mwtest.eq(len(msgs), before + 1, "messages at the destination (%s)" % subject)
    mwtest.eq([msgs[-1].rcpt_tos, msgs[-1].data, msgs[-1].tls], [[rcpt], msg, True],
              "%s: recipients, bytes, TLS at the destination" % subject)
    return took, port


# -- 1 ----------------------------------------------------------------------------
def scenario_coalescing(net, mw, dest, web, dns):
    print("== 1. three sessions wait for one lookup of slow.test", flush=True)
    rcpts = ["a@slow.test", "b@slow.test", "c@slow.test"]
    barrier = threading.Barrier(len(rcpts), timeout=20)
    results = [None] * len(rcpts)
    before = len(dest.messages)

    def client(k):
        r = {"port": None, "error": None}
        results[k] = r
        try:
            s = net.smtp(DEST)
            r["port"] = s.sock.getsockname()[1]
            r["ehlo"] = s.ehlo()[0]
            r["mail"] = s.mail(FROM)[0]
            barrier.wait()
            t0 = time.monotonic()
            code, text = s.rcpt(rcpts[k])
            r["rcpt_at"] = time.monotonic()
            r["rcpt"] = (code, text.decode("utf-8", "replace"))
            r["rcpt_took"] = r["rcpt_at"] - t0
            code, text = s.data(outcheck.message("coalesced %d" % k))
            r["data"] = code
            s.quit()
        except Exception as e:          # noqa: BLE001 - reported below
            r["error"] = repr(e)
            try:
                barrier.abort()
            except Exception:           # noqa: BLE001
                pass

    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in range(len(rcpts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HOLD + 30)
    mwtest.check(not any(t.is_alive() for t in threads), "a client thread still runs")
    for k, r in enumerate(results):
        print("client %d: %r" % (k, r), flush=True)
        mwtest.check(r is not None and r["error"] is None, "client %d failed: %r" % (k, r))
        mwtest.eq([r["ehlo"], r["mail"], r["rcpt"][0], r["data"]], [250, 250, 250, 250],
                  "client %d (%s): EHLO, MAIL, RCPT, end of data" % (k, rcpts[k]))
        mwtest.check(HOLD - 0.3 <= r["rcpt_took"] <= HOLD + 8,
                     "client %d: the RCPT was answered after %.2f s; the policy host held "
                     "its answer %.1f s, every RCPT must wait for it" % (k, r["rcpt_took"], HOLD))
    spread = max(r["rcpt_at"] for r in results) - min(r["rcpt_at"] for r in results)
    print("RCPT replies within %.3f s of each other" % spread, flush=True)
    mwtest.check(spread < 0.5, "the three RCPT replies came %.2f s apart: not released by "
                 "one lookup's end" % spread)

    msgs = dest.wait_messages(before + 3, 10)
    mwtest.eq(len(msgs), before + 3, "messages at the destination")
    mwtest.eq(sorted(m.rcpt_tos[0] for m in msgs[before:]), rcpts,
              "recipients of the three messages")
    mwtest.eq([(len(m.rcpt_tos), m.tls) for m in msgs[before:]], [(1, True)] * 3,
              "one recipient per message, over TLS")

    gets = web.gets("mta-sts.slow.test")
    mwtest.eq(len(gets), 1, "GETs for mta-sts.slow.test (all requests: %r)" % web.requests)
    held = [a for a in web.answered if a["host"] == "mta-sts.slow.test"]
    mwtest.check(len(held) == 1 and held[0]["held"] >= HOLD - 0.1,
                 "the answer for mta-sts.slow.test was not held back: %r" % held)
    mwtest.eq(dns.count("TXT", "_mta-sts.slow.test"), 1, "TXT queries for _mta-sts.slow.test")
    print("DNS queries: %r" % [q for q in dns.queries() if "slow" in q[1]], flush=True)
    pol = check_policy_logged_once(mw, "slow.test")
    for k, r in enumerate(results):
        sid = session_of(mw, r["port"])
        into, out = policy_entries(mw, sid)
        print("client %d: session %s entered policy at %r, left at %r (policy line %d)"
              % (k, sid, into, out, pol), flush=True)
        mwtest.eq(len(into), 1, "session %s (client %d): entries into state policy" % (sid, k))
        mwtest.check(into[0] < pol < out[0],
                     "session %s did not wait in state policy across the mta_sts_policy line "
                     "(into %r, policy %d, out %r)" % (sid, into, pol, out))


# -- 2 ----------------------------------------------------------------------------
def scenario_gone(net, mw, dest, web, dns):
    print("== 2. clients that go away while their RCPT waits (gone.test)", flush=True)
    nmsgs = len(dest.messages)

    # A: every reply read, RCPT sent, then closed: a FIN.
    a, sid_a = waiting_client(net, mw, "a@gone.test")
    a.close()
    t_a = time.monotonic()

    # B: MAIL and RCPT in one write, closed with the reply to MAIL unread:
    # the reply that comes then is answered with a reset.
    b = raw_client(net)
    ehlo(b)
    sid_b = session_of(mw, b.sock.getsockname()[1])
    b.send("MAIL FROM:<%s>\r\nRCPT TO:<b@gone.test>\r\n" % FROM)
    wait_policy_state(mw, sid_b)
    b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    b.close()

    # C: MAIL, a RCPT to slow.test (its policy cached by scenario 1: sent to
    # the destination at once, its reply owed), a RCPT to gone.test (waits)
    # in one write, then a FIN: the session ends with a reply still owed.
    c = raw_client(net)
    ehlo(c)
    sid_c = session_of(mw, c.sock.getsockname()[1])
    c.send("MAIL FROM:<%s>\r\nRCPT TO:<c1@slow.test>\r\nRCPT TO:<c2@gone.test>\r\n" % FROM)
    c.sock.shutdown(socket.SHUT_WR)
    print("A (session %s) closed after its RCPT; B (session %s) reset; C (session %s) "
          "half-closed with a reply owed" % (sid_a, sid_b, sid_c), flush=True)

    for who, sid in (("A", sid_a), ("B", sid_b), ("C", sid_c)):
        got = mwtest.wait_for(lambda: closes(mw, sid), 1.0)
        mwtest.check(got, "no close line for session %s (%s) within 1 s of its close, while "
                     "the lookup runs; its log lines: %r" % (sid, who, session_events(mw, sid)))
        print("%s: session %s: %r" % (who, sid, got), flush=True)
        mwtest.eq(len(got), 1, "close lines for session %s (%s)" % (sid, who))
        mwtest.eq(got[0].get("messages"), "0", "messages of session %s (%s)" % (sid, who))
    c.close()
    mwtest.eq(log_events(mw, "mta_sts_policy", "gone.test"), [],
              "mta_sts_policy for gone.test already logged when both sessions had closed "
              "(the answer is held %.1f s)" % HOLD)
    check_policy_logged_once(mw, "gone.test")
    t_pol = time.monotonic()
    print("policy for gone.test logged %.2f s after A closed" % (t_pol - t_a), flush=True)
    mwtest.check(mw.alive(), "mailward is gone; its log:\n%s" % mw.log()[-6000:])
    mwtest.eq([f for f in log_events(mw, "mta_sts_failed") if f[2].get("domain") == "gone.test"],
              [], "mta_sts_failed lines for gone.test")
    ans = [x for x in web.answered if x["host"] == "mta-sts.gone.test"]
    mwtest.check(len(ans) == 1 and ans[0]["status"] == 200 and ans[0]["held"] >= HOLD - 0.1,
                 "the held answer for mta-sts.gone.test was not written out in full: %r "
                 "(errors: %r)" % (ans, web.errors))
    dest.wait_idle()
    print("destination commands so far: %r" % dest.command_strings(), flush=True)
    mwtest.eq([c for c in dest.command_strings() if "gone.test" in c.lower()], [],
              "commands naming gone.test at the destination (sent for departed clients)")
    mwtest.eq([m.rcpt_tos for m in dest.messages[nmsgs:]], [],
              "messages at the destination after the clients went away")

    # The policy is cached: a new session does not wait, and nothing is fetched again.
    took, port = delivered_once(net, dest, "c@gone.test", "gone, again")
    sid = session_of(mw, port)
    print("gone.test again: RCPT answered in %.3f s (session %s)" % (took, sid), flush=True)
    mwtest.eq(policy_entries(mw, sid)[0], [], "session %s entering state policy (the policy "
              "is cached)" % sid)
    mwtest.eq(len(web.gets("mta-sts.gone.test")), 1, "GETs for mta-sts.gone.test in all")
    mwtest.eq(dns.count("TXT", "_mta-sts.gone.test"), 1, "TXT queries for _mta-sts.gone.test")


# -- 2b ---------------------------------------------------------------------------
def scenario_cancelled(net, mw, dest, dest2, web):
    print("== 2b. a wait cancelled while others wait for drop.test", flush=True)
    nmsgs = len(dest.messages)
    clients = {}
    t0 = None
    for name, host in (("Y", DEST), ("X", DEST2), ("Z", DEST)):
        c = raw_client(net, host=host)
        ehlo(c)
        r = c.cmd("MAIL FROM:<%s>" % FROM)
        mwtest.eq(r.code, 250, "%s: MAIL (%r)" % (name, r))
        sid = session_of(mw, c.sock.getsockname()[1])
        c.send("RCPT TO:<%s@drop.test>\r\n" % name.lower())
        if t0 is None:
            t0 = time.monotonic()        # Y's RCPT starts the lookup
        wait_policy_state(mw, sid)
        clients[name] = (c, sid)
    print("sessions: %r" % {k: v[1] for k, v in clients.items()}, flush=True)
    mwtest.eq(len(web.gets("mta-sts.drop.test")), 1, "GETs for mta-sts.drop.test so far")
    mwtest.eq(log_events(mw, "mta_sts_policy", "drop.test"), [],
              "mta_sts_policy for drop.test before the held answer")

    dest2.stop()                         # X's destination goes away
    x, sid_x = clients["X"]
    r = x.reply(HOLD + 10)
    t_x = time.monotonic() - t0
    print("X: %r, %.3f s after the lookup began" % (r, t_x), flush=True)
    mwtest.eq(r.code, 421, "X: reply once its destination is gone (%r)" % r)
    closed, rest = x.wait_closed(5)
    mwtest.check(closed, "X: the connection stayed open after 421 (then %r)" % rest)
    x.close()
    got = mwtest.wait_for(lambda: closes(mw, sid_x), 5)
    mwtest.check(got, "no close line for X's session %s" % sid_x)
    print("X: session %s: %r" % (sid_x, got), flush=True)
    mwtest.check(not log_events(mw, "mta_sts_policy", "drop.test"),
                 "the lookup for drop.test ended before X's session did (%.2f s): X's wait "
                 "was not cancelled while it ran" % t_x)

    pol = check_policy_logged_once(mw, "drop.test")
    x_close = [i for i, kv in session_events(mw, sid_x) if kv.get("event") == "close"][0]
    mwtest.check(x_close < pol, "X's close (log line %d) is not before the mta_sts_policy "
                 "line (%d)" % (x_close, pol))
    mwtest.eq([x for x in policy_entries(mw, sid_x)[1] if x > pol], [],
              "X's session leaving state policy after the lookup ended")
    rcpts = []
    for name in ("Y", "Z"):
        c, sid = clients[name]
        r = c.reply(HOLD + 10)
        mwtest.eq(r.code, 250, "%s: RCPT drop.test (%r)" % (name, r))
        r = c.cmd("DATA")
        mwtest.eq(r.code, 354, "%s: DATA (%r)" % (name, r))
        r = c.cmd(outcheck.message("drop %s" % name) + b".\r\n")
        mwtest.eq(r.code, 250, "%s: end of data (%r)" % (name, r))
        r = c.cmd("QUIT")
        mwtest.eq(r.code, 221, "%s: QUIT (%r)" % (name, r))
        c.close()
        rcpts.append(["%s@drop.test" % name.lower()])
    msgs = dest.wait_messages(nmsgs + 2, 10)
    mwtest.eq(sorted(m.rcpt_tos for m in msgs[nmsgs:]), rcpts,
              "messages at 192.0.2.10 for Y and Z")
    mwtest.eq(len(web.gets("mta-sts.drop.test")), 1, "GETs for mta-sts.drop.test in all")
    mwtest.check(mw.alive(), "mailward is gone; its log:\n%s" % mw.log()[-6000:])


# -- 3 ----------------------------------------------------------------------------
def scenario_pipelined(net, mw, dest, web, dns):
    print("== 3. pipelined commands behind a waiting RCPT (pipe.test)", flush=True)
    dest.wait_idle()
    ncmds, nmsgs = len(dest.commands), len(dest.messages)
    msg = outcheck.message("pipelined")
    c = raw_client(net)
    caps = rawsmtp.ehlo_keywords(ehlo(c))
    print("mailward's EHLO keywords: %r (PIPELINING %s)"
          % (caps, "offered" if "PIPELINING" in caps else "not offered, pipelined anyway"),
          flush=True)
    sid = session_of(mw, c.sock.getsockname()[1])
    t0 = time.monotonic()
    c.send("MAIL FROM:<%s>\r\nRCPT TO:<a@pipe.test>\r\nRCPT TO:<b@nosts.test>\r\nDATA\r\n"
           % FROM)
    replies, at = [], []
    for _ in range(4):
        replies.append(c.reply(HOLD + 10))
        at.append(time.monotonic() - t0)
    print("replies: %r at %r" % (replies, ["%.3f" % x for x in at]), flush=True)
    mwtest.eq([r.code for r in replies], [250, 250, 250, 354],
              "replies to MAIL, RCPT a@pipe.test, RCPT b@nosts.test, DATA (%r)" % replies)
    mwtest.check(at[1] >= HOLD - 0.3, "the RCPT for pipe.test was answered after %.2f s, "
                 "before the held answer (%.1f s)" % (at[1], HOLD))
    c.send(msg + b".\r\n")
    r = c.reply(15)
    mwtest.eq(r.code, 250, "end of data (%r)" % r)
    r = c.cmd("QUIT")
    mwtest.eq(r.code, 221, "QUIT (%r)" % r)
    c.close()

    msgs = dest.wait_messages(nmsgs + 1, 10)
    mwtest.eq(len(msgs), nmsgs + 1, "messages at the destination (pipelined)")
    mwtest.eq([msgs[-1].rcpt_tos, msgs[-1].data, msgs[-1].tls],
              [["a@pipe.test", "b@nosts.test"], msg, True],
              "pipelined: recipients, bytes, TLS at the destination")
    dest.check_idle()
    new = dest.command_strings()[ncmds:]
    print("destination saw: %r" % new, flush=True)
    env_cmds = [x for x in new if x.split(" ")[0].upper() in ("MAIL", "RCPT", "DATA", "BDAT")]
    mwtest.eq([x.split(":")[0].split(" ")[0].upper() for x in env_cmds],
              ["MAIL", "RCPT", "RCPT", "DATA"], "envelope commands at the destination")
    mwtest.check("a@pipe.test" in env_cmds[1] and "b@nosts.test" in env_cmds[2],
                 "RCPT order at the destination: %r" % env_cmds)
    into, out = policy_entries(mw, sid)
    print("session %s entered policy at %r, left at %r" % (sid, into, out), flush=True)
    mwtest.check(len(into) >= 1, "session %s never waited in state policy" % sid)
    check_policy_logged_once(mw, "pipe.test")
    mwtest.eq(len(web.gets("mta-sts.pipe.test")), 1, "GETs for mta-sts.pipe.test")
    mwtest.eq(dns.count("TXT", "_mta-sts.nosts.test"), 1, "TXT queries for _mta-sts.nosts.test")
    mwtest.eq(web.gets("mta-sts.nosts.test"), [], "GETs for mta-sts.nosts.test")


# -- 4 ----------------------------------------------------------------------------
def scenario_shutdown(net, web):
    print("== 4. SIGTERM while a fetch is in flight (stuck.test)", flush=True)
    mw = net.outbound(default_level="may", mta_sts="yes",
                      globals={"drain_timeout": DRAIN, "log_level": "debug"})
    c, sid = waiting_client(net, mw, "x@stuck.test", timeout=DRAIN + 10)
    got = mwtest.wait_for(lambda: web.gets("mta-sts.stuck.test"), 5)
    mwtest.eq(len(got or []), 1, "GETs for mta-sts.stuck.test before SIGTERM")

    t0 = time.monotonic()
    os.kill(mw.pid, signal.SIGTERM)
    r = c.reply(DRAIN + 10)
    t_reply = time.monotonic() - t0
    if r.code is None:
        print("waiting client: the connection closed with no reply, %.2f s after SIGTERM"
              % t_reply, flush=True)
    else:
        print("waiting client: %r, %.2f s after SIGTERM" % (r, t_reply), flush=True)
        mwtest.check(400 <= r.code < 500, "the waiting client got %r: must be 4xx or a close"
                     % r)
        closed, rest = c.wait_closed(5)
        mwtest.check(closed, "the connection stayed open after %r (then %r)" % (r, rest))
    c.close()
    rc = mw.wait(DRAIN + 3)
    took = time.monotonic() - t0
    mwtest.check(rc is not None, "mailward did not end within drain_timeout + 3 s (%d s) of "
                 "SIGTERM while the policy host held its answer; its log:\n%s"
                 % (DRAIN + 3, mw.log()[-6000:]))
    print("mailward ended %.2f s after SIGTERM, status %d" % (took, rc), flush=True)
    mw.stop()                     # status 0, no sanitizer report
    print("log after SIGTERM:\n%s" % "\n".join(
        line for line in mw.log().splitlines()
        if "event=state" not in line)[-3000:], flush=True)
    mwtest.eq(len(closes(mw, sid)), 1, "close lines for the waiting session %s" % sid)
    mwtest.eq(log_events(mw, "mta_sts_policy", "stuck.test"), [],
              "mta_sts_policy for stuck.test (its answer was still held)")
    mwtest.check(not [a for a in web.answered if a["host"] == "mta-sts.stuck.test"],
                 "the held answer for stuck.test went out before mailward ended")


def scenario_wait_timeout(net, dest, web):
    print("== 5. the wait is bounded by timeout_command (late.test)", flush=True)
    mw = net.outbound(default_level="may", mta_sts="yes", timeout_command=2)
    ncmds = len(dest.commands)
    c = raw_client(net, timeout=15)
    ehlo(c)
    r = c.cmd("MAIL FROM:<%s>" % FROM)
    mwtest.eq(r.code, 250, "MAIL (%r)" % r)
    t0 = time.monotonic()
    r = c.cmd("RCPT TO:<x@late.test>")
    took = time.monotonic() - t0
    print("RCPT to late.test: %r after %.2f s" % (r, took), flush=True)
    mwtest.eq(r.code, 421, "RCPT while the lookup is held (%r)" % r)
    mwtest.check(r.starts("421 4.4.2"), "421 without 4.4.2: %r" % r)
    mwtest.check(1.5 <= took <= 6, "the 421 came after %.2f s, timeout_command is 2" % took)
    closed, rest = c.wait_closed(5)
    mwtest.check(closed, "the connection stayed open after the 421 (then %r)" % rest)
    c.close()
    mwtest.eq(len(web.gets("mta-sts.late.test")), 1, "GETs for mta-sts.late.test")
    new = dest.command_strings()[ncmds:]
    mwtest.eq([x for x in new if "late.test" in x.lower()], [],
              "commands naming late.test at the destination")
    mwtest.check(mw.alive(), "mailward is gone; its log:\n%s" % mw.log()[-6000:])
    t0 = time.monotonic()
    mw.stop()                     # status 0, no sanitizer report
    mwtest.check(time.monotonic() - t0 < 5, "mailward took %.1f s to stop with a fetch "
                 "under way" % (time.monotonic() - t0))


def main():
    with mwtest.Env("out_mta_sts_wait") as env:
        net = env.netns(hosts=(DEST, DEST2, WEB, DNS))
        txt = {"_mta-sts." + d: "v=STSv1; id=%s1;" % d.split(".")[0] for d in DOMAINS}
        hosts = {"mta-sts." + d: WEB for d in DOMAINS}
        dns = net.dnsmasq(DNS, txt=txt, hosts=hosts)
        net.resolver(DNS)
        sites = {"mta-sts." + d: (200, "text/plain", policy_body(MX_CERT)) for d in DOMAINS}
        delays = {"mta-sts." + d: HOLD for d in DOMAINS}
        delays["mta-sts.stuck.test"] = STUCK_HOLD
        delays["mta-sts.late.test"] = STUCK_HOLD
        web = net.https(WEB, net.cert("mta-sts.slow.test", sans=sorted(sites)), sites,
                        delays=delays)
        mx_cert = net.cert(MX_CERT)
        dest = net.dest(DEST, tls="starttls", cert=mx_cert)
        dest2 = net.dest(DEST2, tls="starttls", cert=mx_cert)

        mw = net.outbound(default_level="may", mta_sts="yes", globals={"log_level": "debug"})
        scenario_coalescing(net, mw, dest, web, dns)
        scenario_gone(net, mw, dest, web, dns)
        scenario_cancelled(net, mw, dest, dest2, web)
        scenario_pipelined(net, mw, dest, web, dns)
        mwtest.eq([kv.get("domain") for _, _, kv in log_events(mw, "mta_sts_failed")], [],
                  "mta_sts_failed lines")
        mw.stop()                 # status 0, no sanitizer report (leaks included)
        mwtest.eq(web.errors, [], "HTTPS connections that failed")

        scenario_shutdown(net, web)
        scenario_wait_timeout(net, dest, web)
    print("ok")


if __name__ == "__main__":
    main()
