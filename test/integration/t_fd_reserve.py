#!/usr/bin/python3
"""The descriptor reserve: out of descriptors, every client still gets a reply.

mailward runs under prlimit with 80 descriptors (hard and soft); the last 16
(RELAY_FD_SPARE) are the reserve. A STARTTLS listener "smtp" forwards to a
recorder; an implicit-TLS listener "smtps" forwards there too.

1. Clients connect one by one, each doing STARTTLS and EHLO (mailward
   answers those itself: no backend connection yet), until one is refused
   with "421 ... out of file descriptors" at its greeting: the descriptors
   below the reserve are now held by client connections.
2. 18 of those sessions send MAIL FROM, each of which needs a backend
   connection. Each gets a reply: 250, or "421 4.3.2 ... out of file
   descriptors" when the connection to the backend would have taken a
   descriptor from the reserve (the session ends: the client was told
   that nothing was accepted). At least one gets that 421, and an
   event=backend_failed line says "too many open files" for each.
3. 5 new clients connect and stay: every one gets a reply, 220 or the 421,
   and at least one gets the 421. (Before the reserve was kept from the
   backend connections, those took it, and a new client was closed with
   no reply at all.)
4. The sessions whose MAIL got 250 send their messages: each arrives at the
   backend. Once every client is gone, a new one delivers a message.
5. Filled up again as in 1: 12 clients connect to the implicit-TLS listener
   and say nothing. A refusal there needs a TLS handshake, which holds the
   descriptor; at most 8 do (half the reserve), the others are closed at
   once (event=refused ... "closed unanswered"). 3 new STARTTLS clients
   then still get the 421 greeting, and one of the held implicit-TLS
   clients that does its handshake reads "421 ... out of file descriptors"
   over TLS."""

import os
import smtplib
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

LIMIT = 80
SPARE = 16
MSG = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: reserve\r\n\r\nhi\r\n"


def connect(env, port):
    """("220", client after STARTTLS and EHLO), ("421", the greeting) or
    ("closed", what was read) when mailward closed with no reply."""
    try:
        c = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10)
    except smtplib.SMTPConnectError as e:
        return "%d" % e.smtp_code, e.smtp_error
    except (smtplib.SMTPServerDisconnected, ConnectionError) as e:
        return "closed", repr(e)
    c.starttls(context=mwtest.ssl_client_context(env))
    c.ehlo()
    return "220", c


def fill(env, port):
    """Phase 1: sessions (after STARTTLS and EHLO) until a greeting is the
    descriptors' 421; returns them."""
    sessions = []
    for _ in range(LIMIT):
        kind, got = connect(env, port)
        if kind == "220":
            sessions.append(got)
            continue
        mwtest.check(kind == "421" and b"out of file descriptors" in got,
                     "after %d sessions: %s %r" % (len(sessions), kind, got))
        return sessions
    mwtest.fail("%d sessions and no 421" % len(sessions))



def main():
    with mwtest.Env("fd_reserve") as env:
        backend = env.recorder()
        fwd = "127.0.0.1:%d" % backend.port
        ls = {"smtp": {"forward": fwd, "max_sessions": 200, "max_per_client": 200},
              "smtps": {"forward": fwd, "accept_tls": "implicit", "max_sessions": 200,
                        "max_per_client": 200}}
        mw = env.mailward(listeners=ls, wrap=["prlimit", "--nofile=%d:%d" % (LIMIT, LIMIT),
                                              "--"])
        port = mw.port("smtp")

        print("== 1. sessions until the reserve is reached", flush=True)
        sessions = fill(env, port)
        print("%d sessions" % len(sessions), flush=True)
        mwtest.check(len(sessions) > SPARE + 2, "only %d sessions" % len(sessions))

        print("== 2. MAIL FROM: backend connections", flush=True)
        senders, told = [], []
        for c in sessions[:SPARE + 2]:
            try:
                code, text = c.mail("a@sender.test")
            except smtplib.SMTPServerDisconnected as e:
                mwtest.fail("MAIL FROM: closed without a reply (%r)" % e)
            print("MAIL FROM: %d %r" % (code, text))
            if code == 250:
                senders.append(c)
            else:
                mwtest.eq(code, 421, "reply to MAIL FROM")
                told.append(text)
                c.close()

        print("== 3. new clients", flush=True)
        late, refused = [], 0
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            late.append(s)
            g = mwtest.first_line(s)
            print("new client: %r" % g)
            mwtest.check(g != b"", "a new client was closed without a reply (%d sessions "
                         "held %d backend connections)" % (len(sessions) - len(told),
                                                          len(senders)))
            mwtest.check(g.startswith(b"220 ") or (
                g.startswith(b"421 ") and b"out of file descriptors" in g),
                "unexpected greeting %r" % g)
            refused += g.startswith(b"421 ")
        mwtest.check(refused > 0, "no new client was refused with a 421")

        mwtest.check(told, "no MAIL FROM was refused for want of a descriptor")
        for text in told:
            mwtest.check(text.startswith(b"4.3.2 ") and b"out of file descriptors" in text,
                         "reply to MAIL FROM: 421 %r" % text)
        lines = [x for x in outcheck.log_events(mw, "backend_failed")
                 if x.get("reason") == "too many open files"]
        mwtest.eq(len(lines), len(told), "event=backend_failed lines for the descriptors")

        print("== 4. the sessions that got 250 deliver", flush=True)
        for c in senders:
            code, text = c.rcpt("b@rcpt.test")
            mwtest.eq(code, 250, "RCPT TO")
            code, text = c.data(MSG)
            mwtest.eq(code, 250, "end of DATA")
            c.quit()
        mwtest.eq(len(backend.wait_messages(len(senders), 10)), len(senders),
                  "messages at the backend")
        for c in sessions[SPARE + 2:]:
            c.close()
        for s in late:
            s.close()
        time.sleep(0.5)

        def fresh():
            kind, c = connect(env, port)
            return c if kind == "220" else None
        c = mwtest.wait_for(fresh, 10)
        mwtest.check(c, "no session once the clients left")
        mwtest.eq(c.sendmail("a@sender.test", ["b@rcpt.test"], MSG), {}, "refused recipients")
        c.quit()
        mwtest.eq(len(backend.wait_messages(len(senders) + 1, 10)), len(senders) + 1,
                  "messages at the backend")

        print("== 5. refusals that wait for a TLS handshake", flush=True)
        sessions = fill(env, port)
        print("%d sessions" % len(sessions), flush=True)
        silent = [socket.create_connection(("127.0.0.1", mw.port("smtps")), timeout=10)
                  for _ in range(12)]
        time.sleep(1)
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            g = mwtest.first_line(s)
            print("new STARTTLS client: %r" % g)
            mwtest.check(g.startswith(b"421 ") and b"out of file descriptors" in g,
                         "a new client got %r while implicit-TLS clients waited" % g)
            s.close()
        closed = [x for x in outcheck.log_events(mw, "refused")
                  if "closed unanswered" in x.get("action", "")]
        mwtest.eq(len(closed), 12 - SPARE // 2, "implicit-TLS refusals closed at once")
        # A held one: the 421 comes over TLS.
        held = None
        for s in silent:
            s.settimeout(0.2)
            try:
                gone = s.recv(1) == b""
            except socket.timeout:
                gone = False
            except ConnectionResetError:
                gone = True
            s.settimeout(10)
            if not gone:
                held = s
                break
        mwtest.check(held is not None, "no implicit-TLS client was kept for a handshake")
        t = mwtest.ssl_client_context(env).wrap_socket(held, server_hostname="localhost")
        g = mwtest.first_line(t)
        print("held implicit-TLS client: %r" % g)
        mwtest.check(g.startswith(b"421 ") and b"out of file descriptors" in g,
                     "implicit-TLS refusal: %r" % g)
        t.close()
        for s in silent:
            s.close()
        for c in sessions:
            c.close()
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
