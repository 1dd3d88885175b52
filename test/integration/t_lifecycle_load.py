#!/usr/bin/python3
"""Lifecycle events under load: nothing accepted is lost, nothing refused arrives.

mailward (workers = 2, STARTTLS) relays to backends that are aiosmtpd in
processes of their own (so they can be stopped, continued and killed); each
writes the mark of a message it accepts to a file before it says 250.
Client threads (smtplib over STARTTLS, two messages a session, one in
four of 256 KiB) send uniquely marked messages throughout, while, one
phase after another:

  baseline; SIGHUP with the file unchanged; backend A stopped (SIGSTOP)
  for 2 s then continued; backend A killed (SIGKILL) and started again;
  two reloads of files that cannot be used (a syntax error; forward moved
  and a certificate that does not exist: nothing applied); eight reloads in a row moving forward between A and B and the
  certificate between ECDSA and RSA; SIGHUP with hostname, limits, a
  timeout, the certificate (to RSA) and forward (to B) changed; a worker
  killed (SIGKILL); backend B stopped and continued; then SIGTERM with
  sessions held in each phase: before TLS, mid-DATA and mid-BDAT (Postfix
  behind a third listener; both finished after the SIGTERM), awaiting the
  backend's final reply (backend stopped across the SIGTERM), one mid-DATA
  and one mid-BDAT that never finish, and one awaiting a backend (C,
  behind a second listener) that stays stopped past drain_timeout.

Checks:
- every message a client saw 250 for is at a backend exactly once;
- no message a client saw 5xx for is at a backend;
- 4xx / connection loss: may or may not be there (both counted, printed);
- phases with a reload or a pause refuse nothing (all 250);
- after the worker's SIGKILL the supervisor starts another and a batch of
  deliveries all succeed, to backend B (A gets none), with the RSA
  certificate and the new hostname on every session; likewise a batch
  after the backend restart;
- held sessions: the mid-DATA, mid-BDAT and awaiting-reply ones get 250
  after the SIGTERM and their message is at the backend once; the others
  get no 250; the stalled ones' messages are not at the backend (the one
  past drain_timeout may be: C takes it when continued, counted);
- mailward exits 0, its workers are gone, the sanitizer log is clean.
"""

import os
import signal
import smtplib
import socket
import ssl
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

BACKEND = r'''
import asyncio, os, sys, time
from aiosmtpd.controller import Controller
port, path = int(sys.argv[1]), sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

class H:
    async def handle_DATA(self, server, session, envelope):
        marks = [l.split(b":", 1)[1].strip() for l in envelope.original_content.split(b"\r\n")
                 if l.startswith(b"X-Mark:")]
        os.write(fd, b"".join(m + b"\n" for m in marks) or b"NOMARK\n")
        return "250 2.0.0 Ok: queued"

c = Controller(H(), hostname="127.0.0.1", port=port, server_hostname="backend.test")
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
'''

PHASES = []     # the event under way (for the counts)
OUTCOMES = {}   # mark -> (phase, "250" | "4xx" | "5xx" | "lost", detail)
LOCK = threading.Lock()


class Backend:
    def __init__(self, env, name):
        self.env = env
        self.name = name
        self.port = mwtest.free_port()
        self.file = env.path("marks-%s.txt" % name)
        self.proc = None
        self.start()

    def start(self):
        self.proc = self.env.spawn([sys.executable, "-c", BACKEND, str(self.port), self.file],
                                   log=self.env.path("backend-%s.log" % self.name))
        mwtest.check(mwtest.wait_listening([self.port], 20,
                                           alive=lambda: self.proc.poll() is None) == [],
                     "backend %s not listening" % self.name)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)

    def marks(self):
        try:
            with open(self.file, "rb") as f:
                return [x.decode() for x in f.read().split(b"\n") if x]
        except FileNotFoundError:
            return []


def phase():
    return PHASES[-1]


def record(mark, outcome, detail=""):
    with LOCK:
        OUTCOMES[mark] = (phase(), outcome, detail)


def classify(e):
    code = getattr(e, "smtp_code", None)
    if code is None and isinstance(e, smtplib.SMTPRecipientsRefused):
        code = list(e.recipients.values())[0][0]
    if isinstance(code, int) and 400 <= code < 500:
        return "4xx"
    if isinstance(code, int) and 500 <= code < 600:
        return "5xx"
    return "lost"


def message(mark):
    """Every fourth message 256 KiB, so that a stopped backend pushes back."""
    big = ("x" * 76 + "\r\n") * 3400 if zlib.crc32(mark.encode()) % 4 == 0 else ""
    return ("X-Mark: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n%s"
            % (mark, mark, mark, big)).encode()


def session(env, port, ctx, tag, nmsg=2):
    """One STARTTLS session sending nmsg marked messages; outcomes recorded."""
    marks = ["%s.%d" % (tag, i) for i in range(nmsg)]
    s = None
    try:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=30)
        s.starttls(context=ctx)
        s.ehlo()
    except Exception as e:  # noqa: BLE001 (recorded)
        for m in marks:
            record(m, "unsent", repr(e))
        if s is not None:
            s.close()
        time.sleep(0.05)   # refused (the drain): do not spin
        return False
    for i, m in enumerate(marks):
        try:
            s.sendmail("a@sender.test", ["b@rcpt.test"], message(m))
            record(m, "250")
        except Exception as e:  # noqa: BLE001 (recorded)
            record(m, classify(e), repr(e))
            for rest in marks[i + 1:]:
                record(rest, "unsent", "after an error")
            break
    try:
        s.quit()
    except Exception:  # noqa: BLE001
        s.close()
    return True


class Load:
    """nthreads client threads, each running sessions back to back."""

    def __init__(self, env, port, nthreads=6):
        self.stop = threading.Event()
        self.ctx = mwtest.ssl_client_context(env)
        self.threads = [threading.Thread(target=self.run, args=(env, port, t), daemon=True)
                        for t in range(nthreads)]
        env.on_exit(self.stop.set)
        self.n = 0
        for t in self.threads:
            t.start()

    def run(self, env, port, t):
        k = 0
        while not self.stop.is_set():
            started = session(env, port, self.ctx, "load%d-%d" % (t, k))
            k += 1
            with LOCK:
                self.n += started

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)
            mwtest.check(not t.is_alive(), "a client thread is stuck")


def batch(env, port, tag, n=6):
    """n sessions in parallel, waited for; returns their outcomes."""
    ctx = mwtest.ssl_client_context(env)
    ts = [threading.Thread(target=session, args=(env, port, ctx, "%s%d" % (tag, i), 1),
                           daemon=True)
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    with LOCK:
        return [OUTCOMES.get("%s%d.0" % (tag, i), (None, "none", ""))[1] for i in range(n)]


def held_session(env, port, mark, rcpt="b@rcpt.test", bdat=False):
    """A raw STARTTLS session stopped mid-DATA (or inside a BDAT LAST chunk
    of 2 * len(head) bytes, half sent): returns (tls socket, file, reply)."""
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = c.makefile("rb")

    def reply(fh, whole=False):
        lines = [fh.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(fh.readline())
        return b"".join(lines) if whole else lines[-1]

    reply(f)
    c.sendall(b"EHLO client.test\r\n")
    reply(f)
    c.sendall(b"STARTTLS\r\n")
    mwtest.check(reply(f).startswith(b"220"), "STARTTLS refused")
    t = mwtest.ssl_client_context(env).wrap_socket(c, server_hostname="mx.test")
    tf = t.makefile("rb")
    head = b"X-Mark: %s\r\nSubject: held\r\n\r\nbody..\r\n" % mark.encode()
    t.sendall(b"EHLO client.test\r\n")
    r = reply(tf, True)
    mwtest.check(r.startswith(b"250") and (not bdat or b"CHUNKING" in r), "EHLO: %r" % r)
    for cmd in (b"MAIL FROM:<a@sender.test>", b"RCPT TO:<%s>" % rcpt.encode()):
        t.sendall(cmd + b"\r\n")
        r = reply(tf)
        mwtest.check(r[:1] == b"2", "%s: %r" % (cmd, r))
    if bdat:
        t.sendall(b"BDAT %d LAST\r\n" % (2 * len(head)) + head)
    else:
        t.sendall(b"DATA\r\n")
        r = reply(tf)
        mwtest.check(r.startswith(b"354"), "DATA: %r" % r)
        t.sendall(head)
    return t, tf, reply, head


def finish(held, bdat=False):
    """The rest of a held message."""
    t, head = held[0], held[3]
    t.sendall(head if bdat else b"the end\r\n.\r\n")


def final_reply(t, tf, reply, head=None):
    try:
        return reply(tf)
    except (OSError, ssl.SSLError) as e:
        return repr(e).encode()


def peer_view(env, port):
    """(greeting, DER certificate) of a fresh STARTTLS session."""
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = c.makefile("rb")
    greeting = f.readline()
    c.sendall(b"EHLO client.test\r\n")
    while f.readline()[3:4] == b"-":
        pass
    c.sendall(b"STARTTLS\r\n")
    f.readline()
    t = mwtest.ssl_client_context(env).wrap_socket(c, server_hostname="mx.test")
    der = t.getpeercert(binary_form=True)
    t.sendall(b"QUIT\r\n")
    t.close()
    return greeting, der


def main():
    with mwtest.Env("lifecycle_load") as env:
        a = Backend(env, "a")
        b = Backend(env, "b")
        c = Backend(env, "c")
        pf = env.postfix(identity="xclient")
        # Keys mailward's user (nobody, after the privilege drop) can read again.
        for f in ("server.pem", "server.key", "server-rsa.pem", "server-rsa.key"):
            with open(os.path.join(env.certs, f), "rb") as src:
                data = src.read()
            with open(env.path(f), "wb") as dst:
                dst.write(data)
            mwtest._chown(env.path(f), "nobody")
        tls = {"cert": env.path("server.pem"), "key": env.path("server.key")}
        listeners = {
            "smtp": dict(tls, forward="127.0.0.1:%d" % a.port, hostname="mx.test"),
            "slow": dict(tls, forward="127.0.0.1:%d" % c.port),
            "pf": dict(tls, forward="127.0.0.1:%d" % pf.port, client_identity="xclient"),
        }
        glob = {"workers": 2, "drain_timeout": 6}
        mw = env.mailward(listeners=listeners, globals=glob)
        port = mw.port("smtp")
        mwtest.check(mwtest.wait_for(lambda: len(mwtest.children(mw.pid)) == 2, 10),
                     "no two workers: %r" % mwtest.children(mw.pid))
        workers = mwtest.children(mw.pid)

        def rewrite(**changes):
            lst = {k: dict(v) for k, v in mw.listeners.items()}
            lst["smtp"].update(changes)
            mwtest.write_config(env, mw.conf, lst, glob, mw.alert_log)

        nhup = [0]

        def hup_and_wait():
            nhup[0] += 3          # the supervisor's and both workers'
            os.kill(mw.pid, signal.SIGHUP)
            mwtest.check(mwtest.wait_for(
                lambda: mw.log().count("event=sighup action=reload") >= nhup[0], 10),
                "reload %d not logged:\n%s" % (nhup[0], mw.log()[-3000:]))

        PHASES.append("baseline")
        load = Load(env, port)
        time.sleep(2)

        PHASES.append("hup_same")
        hup_and_wait()
        time.sleep(2)

        PHASES.append("pause_a")
        a.signal(signal.SIGSTOP)
        time.sleep(2)
        a.signal(signal.SIGCONT)
        time.sleep(1)

        PHASES.append("restart_a")
        a.kill()
        time.sleep(0.5)
        a.start()
        time.sleep(1)
        PHASES.append("after_restart_a")
        outs = batch(env, port, "afterA")
        mwtest.eq(outs, ["250"] * 6, "deliveries after backend A restarted")

        PHASES.append("hup_bad")  # files that cannot be used change nothing
        nb = len(b.marks())
        with open(mw.conf, "a") as f:
            f.write("this line is not a key\n")
        hup_and_wait()
        rewrite(forward="127.0.0.1:%d" % b.port, cert=env.path("missing.pem"))
        hup_and_wait()
        failed = mw.log().count("event=reload_config_failed")
        mwtest.eq(failed, 6, "reload_config_failed lines (2 reloads, 3 processes)")
        time.sleep(1)
        mwtest.eq(len(b.marks()), nb, "messages at B after reloads that failed")

        PHASES.append("hup_storm")
        for i in range(8):        # forward and certificate to and fro, 8 reloads in a row
            even = i % 2 == 0
            rewrite(forward="127.0.0.1:%d" % (b.port if even else a.port),
                    cert=env.path("server-rsa.pem" if even else "server.pem"),
                    key=env.path("server-rsa.key" if even else "server.key"))
            hup_and_wait()
        time.sleep(1)

        PHASES.append("hup_changed")
        rewrite(hostname="mx2.test", max_sessions=500, max_per_client=200,
                timeout_command=120, forward="127.0.0.1:%d" % b.port,
                cert=env.path("server-rsa.pem"), key=env.path("server-rsa.key"))
        hup_and_wait()
        mwtest.check(mw.log().count("event=reload_config_failed") == failed and
                     "event=reload_tls_failed" not in mw.log(),
                     "reload failed:\n%s" % mw.log()[-3000:])
        time.sleep(2)

        PHASES.append("kill_worker")
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        mwtest.check(mwtest.wait_for(
            lambda: len(mwtest.children(mw.pid)) == 2 and victim not in mwtest.children(mw.pid),
            10), "no new worker after SIGKILL: %r" % mwtest.children(mw.pid))
        time.sleep(1)
        PHASES.append("after_kill_worker")
        na = len(a.marks())
        nb = len(b.marks())
        outs = batch(env, port, "afterKill", 10)
        mwtest.eq(outs, ["250"] * 10, "deliveries after the worker's restart")
        # The new worker (forked by the supervisor, which had reloaded too)
        # serves what the reload set: backend B, the RSA certificate, mx2.test.
        mwtest.eq(len(a.marks()), na, "messages at A after the reload moved forward to B")
        mwtest.check(len(b.marks()) >= nb + 10, "backend B gets the deliveries")
        with open(env.path("server-rsa.pem")) as f:
            rsa = ssl.PEM_cert_to_DER_cert(f.read())
        for _ in range(8):        # both workers, by the kernel's port hash
            greeting, der = peer_view(env, port)
            mwtest.check(greeting.startswith(b"220 mx2.test "), "greeting: %r" % greeting)
            mwtest.check(der == rsa, "a session was not given the reloaded certificate")

        PHASES.append("pause_b")
        b.signal(signal.SIGSTOP)
        time.sleep(2)
        b.signal(signal.SIGCONT)
        time.sleep(1)

        # The drain: held sessions in each phase, then SIGTERM under load.
        PHASES.append("drain")
        pre = socket.create_connection(("127.0.0.1", port), timeout=30)
        mwtest.check(pre.recv(512).startswith(b"220"), "no greeting for the pre-TLS session")
        middata = held_session(env, port, "held-middata")
        stalled = held_session(env, port, "held-stalled")
        awaiting = held_session(env, port, "held-awaiting")
        past = held_session(env, mw.port("slow"), "held-past-timeout")
        user = "user@test.example"
        bdat_ok = held_session(env, mw.port("pf"), "held-bdat", rcpt=user, bdat=True)
        bdat_stalled = held_session(env, mw.port("pf"), "held-bdat-stalled", rcpt=user,
                                    bdat=True)
        b.signal(signal.SIGSTOP)
        c.signal(signal.SIGSTOP)
        finish(awaiting)
        finish(past)
        time.sleep(0.5)
        os.kill(mw.pid, signal.SIGTERM)
        time.sleep(0.5)
        finish(middata)
        finish(bdat_ok, bdat=True)
        time.sleep(1)
        b.signal(signal.SIGCONT)
        replies = {}
        for name, h in (("mid-DATA", middata), ("awaiting", awaiting), ("mid-BDAT", bdat_ok),
                        ("stalled", stalled), ("stalled BDAT", bdat_stalled),
                        ("past drain_timeout", past)):
            replies[name] = final_reply(*h)
        try:
            replies["pre-TLS"] = pre.recv(512)
        except OSError as e:
            replies["pre-TLS"] = repr(e).encode()
        load.finish()
        rc = mw.wait(mw.drain_timeout + 15)
        c.signal(signal.SIGCONT)  # the message it was sent may reach it now
        for k, v in replies.items():
            print("held %-20s %r" % (k, v))
        mwtest.eq(rc, 0, "mailward's exit status after the drain; log:\n%s" % mw.log()[-4000:])
        gone = [p for p in workers + mwtest.children(mw.pid) if os.path.exists("/proc/%d" % p)
                and mwtest.proc_status(p).get("State", "").split()[0] not in ("Z", "X")]
        mwtest.eq(gone, [], "processes left after the drain")
        time.sleep(1)

        # The ledger.
        at = {}
        for m in a.marks() + b.marks() + c.marks():
            at[m] = at.get(m, 0) + 1
        counts = {}
        for mark, (ph, out, _) in sorted(OUTCOMES.items()):
            cnt = counts.setdefault(ph, {})
            cnt[out] = cnt.get(out, 0) + 1
            if out in ("4xx", "lost"):
                k = out + (" (at backend)" if at.get(mark) else " (not at backend)")
                cnt[k] = cnt.get(k, 0) + 1
        print("sessions %d, messages %d, at the backends %d (A %d, B %d, C %d)"
              % (load.n, len(OUTCOMES), len(at), len(a.marks()), len(b.marks()),
                 len(c.marks())))
        for ph in PHASES:
            print("  %-18s %r" % (ph, counts.get(ph, {})))
        bad = []
        for mark, (ph, out, detail) in OUTCOMES.items():
            n = at.get(mark, 0)
            if out == "250" and n != 1:
                bad.append("%s (%s): 250 but %d at the backends" % (mark, ph, n))
            if out in ("5xx", "unsent") and n:
                bad.append("%s (%s): %s (%s) yet at the backend" % (mark, ph, out, detail))
            if n > 1:
                bad.append("%s (%s): %d copies" % (mark, ph, n))
        held = {"held-middata", "held-awaiting", "held-stalled", "held-past-timeout"}
        unknown = set(at) - set(OUTCOMES) - held
        bad += ["%s at a backend, never sent" % m for m in sorted(unknown)]
        mwtest.check(not bad, "ledger:\n  " + "\n  ".join(bad[:40]))
        for ph in ("baseline", "hup_same", "pause_a", "hup_bad", "hup_storm", "hup_changed",
                   "pause_b"):
            refused = {k: v for k, v in counts.get(ph, {}).items() if k != "250"}
            mwtest.eq(refused, {}, "outcomes other than 250 in phase %s" % ph)
            mwtest.check(counts.get(ph, {}).get("250", 0) > 0, "no 250 in phase %s" % ph)

        for k in ("mid-DATA", "awaiting", "mid-BDAT"):
            mwtest.check(replies[k].startswith(b"250"), "%s session after SIGTERM: %r"
                         % (k, replies[k]))
        for k in ("stalled", "stalled BDAT", "past drain_timeout", "pre-TLS"):
            mwtest.check(not replies[k].startswith(b"250"), "%s session: %r" % (k, replies[k]))
        mwtest.eq(at.get("held-middata"), 1, "mid-DATA message at the backend")
        mwtest.eq(at.get("held-awaiting"), 1, "awaiting message at the backend")
        mwtest.eq(at.get("held-stalled"), None, "stalled message at the backend")
        print("past drain_timeout: at backend C %d time(s) (the client was not told 250)"
              % at.get("held-past-timeout", 0))
        mwtest.check(at.get("held-past-timeout", 0) <= 1, "past drain_timeout: duplicated")
        box = pf.wait_mailbox(user, 1, 20)
        time.sleep(1)
        box = pf.wait_mailbox(user, 1, 1)
        marks = [x for m in box for x in (b"held-bdat-stalled", b"held-bdat") if
                 b"X-Mark: " + x + b"\n" in m]
        mwtest.eq(marks, [b"held-bdat"], "marks in Postfix's mailbox")
        rep = mw.sanitizer_report()
        mwtest.check(rep is None, "sanitizer report:\n%s" % rep)
        print("ok")


if __name__ == "__main__":
    main()
