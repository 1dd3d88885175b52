#!/usr/bin/python3
"""Seeded random MTA sessions through mailward's OUTBOUND listener, checked
against real destinations.

t_session_fuzz.py does this for the inbound relay; this test reuses its
session generator (t_session_fuzz.Session: EHLO/HELO, MAIL, RCPTs, RSET,
junk lines, DATA answered or blind, BDAT, STARTTLS, pipelined groups,
random cuts and pauses, QUIT, half-close, abrupt close) with recipients of
domains at different TLS levels, from the sender namespace of a
mwtest.NetEnv to four destinations:

  192.0.2.10  aiosmtpd, STARTTLS, a certificate for mx.dest.test (test CA)
  192.0.2.11  aiosmtpd, no STARTTLS
  192.0.2.12  aiosmtpd, STARTTLS, behind the stripper fixture, its mode
              mask, strip, refuse or inject by the session's seed: clear
              text only (mailward sees no STARTTLS, or its STARTTLS is
              refused, or bytes are injected behind the 220)
  192.0.2.13  Postfix, STARTTLS with the same certificate and CHUNKING
              (behind the stripper in pass mode, which forwards it
              unchanged, as in t_out_bdat); its sessions send BDAT more
              often, and bad recipients of Postfix's kind

aiosmtpd (real software) keeps messages byte-exact; it has no CHUNKING, so
there BDAT is refused and its chunk skipped. Postfix stores one copy per
mailbox (u1..u8, one per recipient), CRLF as LF and a bare CR as a space:
its copies are checked for their mailboxes and for ending with the bytes
sent, so stored; whether one came over TLS is read from Postfix's own
Received header (smtpd_tls_received_header).

The policy (default_level may):

  may.test    may
  none.test   none
  enc.test    encrypt
  sec.test    secure match=mx.dest.test   (the right name at .10)
  bad.test    secure match=mx.other.test  (the wrong name: never passes)
  other.test  not in the table: may, then what was learned

Each session connects to one destination's port 25 (the redirect takes it
to mailward, which connects to that destination).

What is checked:
  1. Nothing reaches a destination in clear text for a domain that needs
     TLS (enc, sec, bad): no command at .11 or behind the stripper names
     one, no command at any recorder names bad.test, no copy anywhere is
     for bad.test, and every copy for such a recipient came over TLS. A
     RCPT for such a domain never gets a 2xx through .11 or .12, nor one
     for bad.test anywhere.
  2. A recipient that did not get a 250 in its transaction is not among
     the recipients of that message at the destination (for a message
     whose end went unanswered, as far as the replies were read).
  3. Every message that got a 250 at its end reaches the destination of
     its session exactly once (Postfix: once per recipient), byte-exact
     (Postfix: as it stores bytes), with exactly the recipients that got
     a 250 (in order); nothing arrives that the client did not send as a
     message, was told failed, or never finished (a message whose end
     went unanswered because the client closed may arrive, once per
     recipient).
  4. Reply counts and forms, as in t_session_fuzz (one well-formed reply
     per command, in order; the only early ends are those it allows).
  5. mailward (the sanitizer build) stays up and logs no sanitizer report.

A failing session prints its seed and its transcript; every session's
transcript is written to the test's directory. Environment:
MAILWARD_FUZZ_SEED=S (the first seed, default 1), MAILWARD_FUZZ_SESSIONS=N
(how many from S; default DEFAULT_SESSIONS, or 1 when only the seed is
given), MAILWARD_FUZZ_PARALLEL=P (sessions at once, default 1: mailward's
shared state, such as what it learned, then depends on timing). The
default run uses fixed seeds, one session at a time.
"""

import concurrent.futures
import os
import random
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import t_session_fuzz as fz  # noqa: E402
from rawsmtp import Client  # noqa: E402

DEFAULT_SESSIONS = 120
# Sessions at once (MAILWARD_FUZZ_PARALLEL): one by default, so that a
# seed's session meets the same state in every run.
PARALLEL = int(os.environ.get("MAILWARD_FUZZ_PARALLEL") or 1)

DESTS = {"d10": "192.0.2.10", "d11": "192.0.2.11", "d12": "192.0.2.12", "pf": "192.0.2.13"}
CLEAR_DESTS = ("d11", "d12")          # mailward can reach these in clear text only
POLICY = ("may.test may\n"
          "none.test none\n"
          "enc.test encrypt\n"
          "sec.test secure match=mx.dest.test\n"
          "bad.test secure match=mx.other.test\n")
STRIP_MODES = ("mask", "strip", "refuse", "inject")
TLS_DOMAINS = ("enc.test", "sec.test", "bad.test")
RCPTS = ("u1@may.test", "u2@may.test", "u3@none.test", "u4@enc.test", "u5@enc.test",
         "u6@sec.test", "u7@bad.test", "u8@other.test")
# Postfix's mailboxes: one per local part (all distinct), and nosuch@ unknown.
PF_DOMAINS = "may.test none.test enc.test sec.test bad.test other.test test.example"
PF_MAILBOXES = "inline:{ %s }" % ", ".join("%s=%s/" % (a, a.split("@")[0]) for a in RCPTS)
PF_BAD_RCPTS = ("nosuch@test.example", "<bad@test.example", "", "<>")


def domain(addr):
    return addr.rpartition("@")[2].strip("<> ").lower()


class OutSession(fz.Session):
    def __init__(self, seed, dest, net):
        super().__init__(seed, dest, 25)
        self.net = net
        self.addr = DESTS[dest]
        self.rcpt_replies = []      # (address, code, first reply line)
        self.txn_refused = set()    # recipients refused in the open transaction

    def connect(self):
        with self.net.inside():
            return Client(25, host=self.addr, timeout=fz.REPLY_TIMEOUT)

    def rcpt_pool(self):
        return RCPTS

    def bad_rcpts(self):
        return PF_BAD_RCPTS if self.listener == "pf" else fz.REC_BAD_RCPTS

    def on_reply(self, item, r):
        ok = r.code // 100 == 2
        if item.kind == "rcpt":
            self.rcpt_replies.append((item.rcpt, r.code, r.raw[0]))
            if not ok:
                self.txn_refused.add(fz.plain(item.rcpt))
        elif item.kind in ("mail", "reset") and ok:
            self.txn_refused = set()
        if item.msg is not None:
            # The recipients refused in the transaction of a message
            # whose end may go unanswered (as far as replies were read).
            item.msg.refused = set(self.txn_refused)
        super().on_reply(item, r)


def dest_for(seed):
    r = random.Random(seed * 7919 + 3).random()
    return "d10" if r < 0.35 else "d11" if r < 0.55 else "d12" if r < 0.7 else "pf"


def main():
    run = fz.seeds(DEFAULT_SESSIONS)
    failures = []
    sessions = {}
    with mwtest.Env("out_session_fuzz") as env:
        net = env.netns(hosts=tuple(DESTS.values()))
        cert = net.cert("mx.dest.test")
        dests = {
            "d10": net.dest("192.0.2.10", tls="starttls", cert=cert),
            "d11": net.dest("192.0.2.11", tls=None),
            "d12": net.dest("192.0.2.12", tls="starttls", cert=cert, listen="127.0.0.1",
                            port=2525),
        }
        strip = net.stripper("192.0.2.12", to=("127.0.0.1", 2525), mode="mask")
        certfile, keyfile = cert
        pf = env.postfix(identity=None, netns=net.ns_of("192.0.2.13"), hostname="mx.dest.test",
                         main={"smtpd_tls_security_level": "may",
                               "smtpd_tls_cert_file": certfile,
                               "smtpd_tls_key_file": keyfile,
                               "smtpd_tls_received_header": "yes",
                               "virtual_mailbox_domains": PF_DOMAINS,
                               "virtual_mailbox_maps": PF_MAILBOXES,
                               "smtpd_error_sleep_time": "0",
                               "smtpd_soft_error_limit": "100"})
        net.stripper("192.0.2.13", to=("127.0.0.1", pf.port), mode="pass")
        mw = net.outbound(policy=POLICY, default_level="may")
        ctx = mwtest.ssl_client_context(env)
        started = time.monotonic()
        stop = []
        strip_lock = threading.Lock()

        def one(seed):
            """One session; False when mailward is gone or reported."""
            if stop:
                return
            d = dest_for(seed)
            s = OutSession(seed, d, net)
            sessions[seed] = s
            if d == "d12":
                # Parallel sessions share the mode: each one is clear text only.
                mode = STRIP_MODES[seed % len(STRIP_MODES)]
                with strip_lock:
                    strip.set_mode(mode)
                s.notes.append("stripper mode %s" % mode)
            try:
                s.run(ctx)
            except fz.Failure as e:
                failures.append((seed, str(e)))
            except (OSError, AssertionError) as e:
                failures.append((seed, "client error: %r" % e))
            finally:
                if s.client is not None:
                    s.client.close()
            with open(env.path("session-%d.txt" % seed), "w") as f:
                f.write(s.transcript())
            if not mw.alive():
                failures.append((seed, "mailward is gone after this session"))
                stop.append(seed)
                return
            rep = mw.sanitizer_report()
            if rep:
                failures.append((seed, "sanitizer report:\n" + rep))
                stop.append(seed)
                return
            # RCPT replies that must not be 2xx.
            for a, code, line in s.rcpt_replies:
                dom = domain(a)
                if code // 100 == 2 and (dom == "bad.test" or
                                         (dom in TLS_DOMAINS and d in CLEAR_DESTS)):
                    failures.append((seed, "RCPT %s through %s got %r" % (a, d, line)))

        if PARALLEL > 1:
            with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
                list(pool.map(one, run))
        else:
            for seed in run:
                one(seed)
        print("%d sessions in %.1f s" % (len(sessions), time.monotonic() - started))

        for dd in dests.values():
            if not dd.wait_idle(20):
                failures.append((None, "a connection to %s:%d outlived its session"
                                 % (dd.addr, dd.port)))

        # Invariant 1: clear text; bad.test (which never passes) reaches none.
        for name, dd in dests.items():
            for c in dd.command_strings():
                if any(t in c.lower() for t in (TLS_DOMAINS if name in CLEAR_DESTS
                                                else ("bad.test",))):
                    failures.append((None, "%s got: %r" % (name, c)))

        # Invariants 2 and 3: what the destinations hold. A recorder's copy
        # has the envelope's recipients; Postfix stores one copy per
        # mailbox (the recipient's local part).
        by_marker = {}
        for s in sessions.values():
            for m in s.msgs + s.hidden:
                by_marker[m.marker] = (s, m)
        unknown = {m.marker for s in sessions.values() if s.aborted for m in s.msgs
                   if m.sent_end and m.final is None}
        pf_want = sum(len(set(m.rcpts)) for s in sessions.values() if s.listener == "pf"
                      for m in s.msgs if m.final == 250)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if len(fz.pf_messages(pf)) >= pf_want and fz.pf_queue_files(pf) == 0:
                break
            time.sleep(0.2)
        time.sleep(1)
        held = [(name, rm.rcpt_tos, rm.data, rm.tls) for name, dd in dests.items()
                for rm in dd.messages]
        for box, data in fz.pf_messages(pf):
            rcpt = [a for a in RCPTS if a.split("@")[0] == box]
            # Postfix's own Received header (the first) says how it came.
            top = re.search(rb"^Received:.*?\n(?=\S)", data, re.M | re.S)
            held.append(("pf", rcpt or [box], data,
                         bool(top) and b"(using TLS" in top.group(0)))
        seen = {}
        for name, rcpts, data, tls in held:
            got = fz.held_message(name, data, by_marker, failures)
            if got is None:
                continue
            s, m, marker, seed = got
            if s.listener != name:
                failures.append((seed, "%s (a session to %s) arrived at %s"
                                 % (marker, s.listener, name)))
            if any(domain(a) in TLS_DOMAINS for a in rcpts) and not tls:
                failures.append((seed, "%s reached %s in clear text for %r"
                                 % (marker, name, rcpts)))
            if any(domain(a) == "bad.test" for a in rcpts):
                failures.append((seed, "%s reached %s for %r" % (marker, name, rcpts)))
            if m.final != 250 and marker not in unknown:
                failures.append((seed, "%s holds %s, whose end got %r"
                                 % (name, marker, m.final)))
                continue
            seen.setdefault(marker, []).append((rcpts, data))
        accepted = 0
        for s in sessions.values():
            for m in s.msgs:
                got = seen.get(m.marker, [])
                if m.final == 250 and m.must_refuse:
                    failures.append((s.seed, "%s got 250, yet holds a %s"
                                     % (m.marker, m.must_refuse)))
                if m.final != 250:
                    if len(got) > (1 if s.listener != "pf" else len(RCPTS)):
                        failures.append((s.seed, "%s arrived %d times" % (m.marker, len(got))))
                    # Its recipients' replies may be unread too: none of
                    # them may be one seen refused in its transaction.
                    refused = getattr(m, "refused", set())
                    for rcpts, _ in got:
                        bad = [a for a in rcpts if fz.plain(a) in refused]
                        if bad:
                            failures.append((s.seed, "%s (end unanswered) arrived for %r, "
                                             "refused in the session" % (m.marker, bad)))
                    continue
                accepted += 1
                if s.listener == "pf":
                    boxes = sorted(r[0] for r, _ in got)
                    want = sorted({fz.plain(r) for r in m.rcpts})
                    if boxes != want:
                        failures.append((s.seed, "%s (250) is at Postfix for %r, the client "
                                         "was told %r" % (m.marker, boxes, m.rcpts)))
                    # Postfix stores CRLF (and CRs before it) as LF, a bare CR as a space.
                    want_tail = re.sub(rb"\r+\n", b"\n", m.content).replace(b"\r", b" ")
                    for _, data in got:
                        if not (data.endswith(want_tail) or data.endswith(want_tail + b"\n")):
                            failures.append((s.seed, "%s at Postfix does not end with the "
                                             "bytes sent: %s"
                                             % (m.marker, fz.tail_diff(data, want_tail))))
                    continue
                if len(got) != 1:
                    failures.append((s.seed, "%s (250) arrived %d times" % (m.marker, len(got))))
                    continue
                rcpts, data = got[0]
                if data != m.content:
                    failures.append((s.seed, "%s: the destination got %r, sent %r"
                                     % (m.marker, data[:2000], m.content[:2000])))
                if [fz.plain(a) for a in rcpts] != [fz.plain(a) for a in m.rcpts]:
                    failures.append((s.seed, "%s: recipients %r, the client was told %r"
                                     % (m.marker, rcpts, m.rcpts)))
        codes = {}
        for s in sessions.values():
            for a, code, _ in s.rcpt_replies:
                k = "%s %s %d" % (s.listener, domain(a) if "@" in a else "-", code)
                codes[k] = codes.get(k, 0) + 1
        stats = {"sessions": len(sessions),
                 "messages": sum(len(s.msgs) for s in sessions.values()),
                 "accepted": accepted,
                 "accepted by BDAT": sum(1 for s in sessions.values() for m in s.msgs
                                         if m.final == 250 and m.kind == "bdat"),
                 "hidden": sum(len(s.hidden) for s in sessions.values()),
                 "destination copies": sum(len(v) for v in seen.values()),
                 "aborted": sum(1 for s in sessions.values() if s.aborted)}
        print("stats: %r" % stats)
        ev = {}
        for line in strip.events():
            ev[line.split()[0]] = ev.get(line.split()[0], 0) + 1
        print("stripper at 192.0.2.12: %r" % sorted(ev.items()))
        print("RCPT replies (destination domain code: count): %r" % sorted(codes.items()))
        fz.report(mw, sessions, failures, "outbound session fuzz")
    print("t_out_session_fuzz: ok")


if __name__ == "__main__":
    main()
