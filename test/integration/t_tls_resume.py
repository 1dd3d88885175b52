#!/usr/bin/python3
"""TLS session resumption by ticket across worker processes: the ticket
keys are made before the workers are forked and shared by them (lib/tls.c
tls_ticket_cb()), so a client that comes back resumes its session whichever
worker the kernel hands its connection to. Clients: openssl s_client (TLS
1.2, -sess_out/-sess_in) and Python's ssl (TLS 1.3, session=). aiosmtpd is
the backend. Loopback only.

One mailward, workers = 2, listeners "smtp" (STARTTLS, the test
certificate for localhost) and "smtps" (implicit TLS, one for other.test):

  1. TLS 1.2 on "smtp": a first session, then 16 more, each with the
     ticket of the one before: every one is "Reused", mailward logs
     event=tls resumed=yes for each, and the resumed sessions were served
     by both workers (with a worker's own keys, about half would be new).
  2. TLS 1.3 on "smtps" with Python's ssl: the same, 12 sessions after the
     first, each delivering a message that reaches the backend.
  3. SIGHUP (every process loads its certificates again): a ticket from
     before still resumes, on both listeners.
  4. A ticket taken to the other listener, which serves another
     certificate, is not resumed: a full handshake, with that certificate.
mailward stops cleanly (exit 0, no sanitizer report)."""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

SENDER, RCPT = "a@client.test", "b@rcpt.test"


def s_client12(env, port, sess, first):
    """One s_client TLS 1.2 STARTTLS session, writing its session to sess
    (and resuming it unless first): "New" or "Reused"."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-starttls", "smtp",
            "-tls1_2", "-CAfile", os.path.join(env.certs, "ca.pem"), "-sess_out", sess]
    argv += [] if first else ["-sess_in", sess]
    r = subprocess.run(argv, input=b"QUIT\r\n", capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    m = re.search(r"^(New|Reused), TLSv1\.2, ", out, re.M)
    mwtest.check(r.returncode == 0 and m, "$ %s\n-> exit %d:\n%s" % (" ".join(argv),
                                                                   r.returncode, out))
    return m.group(1)


def py13(ctx, port, session, backend, subject):
    """A Python TLS 1.3 session on the implicit-TLS port (its certificate is
    other.test's) offering session (None: none) that delivers a message:
    (resumed, the session to offer next, the certificate's DER). ctx: the
    same every time (Python's ssl resumes only within one context)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    t = ctx.wrap_socket(raw, server_hostname="other.test", session=session)
    f = t.makefile("rb")

    def reply(cmd=None):
        if cmd is not None:
            t.sendall(cmd + b"\r\n")
        while True:
            line = f.readline()
            mwtest.check(line[:1] in b"23", "%r: %r" % (cmd, line))
            if line[3:4] != b"-":
                return line

    reply()
    reply(b"EHLO client.test")
    first = len(backend.messages)
    reply(b"MAIL FROM:<%s>" % SENDER.encode())
    reply(b"RCPT TO:<%s>" % RCPT.encode())
    reply(b"DATA")
    body = ("Subject: %s\r\n\r\nbody of %s\r\n" % (subject, subject)).encode()
    t.sendall(body + b".\r\n")
    reply()
    reply(b"QUIT")
    msgs = backend.wait_messages(first + 1, 10)
    mwtest.eq(msgs[-1].data if len(msgs) > first else None, body, "message (%s)" % subject)
    out = (t.session_reused, t.session if t.session.has_ticket else session,
           t.getpeercert(True))
    t.close()
    return out


def resumed_pids(mw, since):
    """The processes that logged event=tls resumed=yes, from line since."""
    return [t["_pid"] for t in mwtest.log_events(mw, "tls")[since:] if t.get("resumed")]


def main():
    with mwtest.Env("tls_resume") as env:
        t0 = time.monotonic()
        be = env.recorder()
        fwd = "127.0.0.1:%d" % be.port
        other = mwtest.make_leaf_cert(env, "other.test", ["other.test"])
        d = env.path("c")
        os.makedirs(d)
        os.chmod(d, 0o755)
        # Copies, which mailward's user (nobody, as root) can read on SIGHUP.
        for src, dst in ((other[0], "other.pem"), (other[1], "other.key"),
                         (os.path.join(env.certs, "server.pem"), "server.pem"),
                         (os.path.join(env.certs, "server.key"), "server.key")):
            mwtest.put_file(src, os.path.join(d, dst))
        mw = env.mailward(listeners={
            "smtp": {"accept_tls": "starttls", "forward": fwd,
                     "cert": os.path.join(d, "server.pem"),
                     "key": os.path.join(d, "server.key")},
            "smtps": {"accept_tls": "implicit", "forward": fwd,
                      "cert": os.path.join(d, "other.pem"),
                      "key": os.path.join(d, "other.key")}},
            globals={"workers": 2})
        workers = sorted(str(p) for p in mwtest.children(mw.pid))
        mwtest.eq(len(workers), 2, "workers")

        # 1. TLS 1.2, s_client, 16 resumptions.
        sess = env.path("sess12.pem")
        n = len(mwtest.log_events(mw, "tls"))
        mwtest.eq(s_client12(env, mw.port("smtp"), sess, True), "New", "first TLS 1.2 session")
        got = [s_client12(env, mw.port("smtp"), sess, False) for _ in range(16)]
        print("TLS 1.2, 16 sessions with the ticket of the one before: %s" % got)
        mwtest.eq(got, ["Reused"] * 16, "TLS 1.2 sessions resumed")
        mwtest.check(mwtest.wait_for(lambda: len(resumed_pids(mw, n)) == 16, 5),
                     "event=tls resumed=yes lines: %r" % resumed_pids(mw, n))
        mwtest.eq(sorted(set(resumed_pids(mw, n))), workers,
                  "workers that resumed TLS 1.2 sessions")

        # 2. TLS 1.3, Python's ssl, 12 resumptions, each with a message.
        n = len(mwtest.log_events(mw, "tls"))
        ctx13 = mwtest.ssl_client_context(env)
        ctx13.minimum_version = ssl.TLSVersion.TLSv1_3
        reused, session, _ = py13(ctx13, mw.port("smtps"), None, be, "tls13 first")
        mwtest.check(not reused and session is not None, "first TLS 1.3 session: a ticket")
        got = []
        for i in range(12):
            reused, session, _ = py13(ctx13, mw.port("smtps"), session, be, "tls13 %d" % i)
            got.append(reused)
        print("TLS 1.3, 12 sessions with the ticket of the one before: %s" % got)
        mwtest.eq(got, [True] * 12, "TLS 1.3 sessions resumed")
        mwtest.check(mwtest.wait_for(lambda: len(resumed_pids(mw, n)) == 12, 5),
                     "event=tls resumed=yes lines: %r" % resumed_pids(mw, n))

        # 3. SIGHUP: tickets from before still open.
        nr = len(mwtest.log_events(mw, "reload_tls"))
        os.kill(mw.pid, signal.SIGHUP)
        mwtest.check(mwtest.wait_for(
            lambda: len(mwtest.log_events(mw, "reload_tls")) >= nr + 6, 10),
            "reload_tls not logged by 3 processes for both listeners")
        mwtest.eq(mwtest.log_events(mw, "reload_tls_failed"), [], "reload_tls_failed lines")
        got = [s_client12(env, mw.port("smtp"), sess, False) for _ in range(4)]
        mwtest.eq(got, ["Reused"] * 4, "TLS 1.2 sessions resumed after SIGHUP")
        got = []
        for i in range(4):
            reused, session, _ = py13(ctx13, mw.port("smtps"), session, be,
                                      "after hup %d" % i)
            got.append(reused)
        mwtest.eq(got, [True] * 4, "TLS 1.3 sessions resumed after SIGHUP")

        # 4. smtp's ticket on smtps (another certificate): a full handshake.
        ctx = mwtest.ssl_client_context(env)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False  # one context for both names (see py13())
        raw = socket.create_connection(("127.0.0.1", mw.port("smtp")), timeout=20)
        f = raw.makefile("rb")
        for cmd in (None, b"EHLO client.test", b"STARTTLS"):
            if cmd is not None:
                raw.sendall(cmd + b"\r\n")
            while f.readline()[3:4] == b"-":
                pass
        t = ctx.wrap_socket(raw, server_hostname="localhost")
        t.sendall(b"QUIT\r\n")
        t.recv(100)
        smtp_session = t.session
        t.close()
        mwtest.check(smtp_session is not None and smtp_session.has_ticket, "a ticket from smtp")
        t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", mw.port("smtps")),
                                                      timeout=20),
                             server_hostname="localhost", session=smtp_session)
        der = t.getpeercert(True)
        mwtest.eq((t.session_reused, mwtest.cert_info(ssl.DER_cert_to_PEM_cert(der))[0]),
                  (False, mwtest.cert_file_info(os.path.join(d, "other.pem"))[0]),
                  "smtp's ticket on smtps (resumed, certificate)")
        t.close()

        mw.stop()
        print("%d messages in %.1f s" % (len(be.messages), time.monotonic() - t0))
    print("ok")


if __name__ == "__main__":
    main()
