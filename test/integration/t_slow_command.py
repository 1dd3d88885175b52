#!/usr/bin/python3
"""A client that trickles a command line is closed like an idle one (invariant 5).

timeout_idle = timeout_command = 2. Each client below sends one byte of a
command every 0.5 s and never ends the line (a slowloris: each byte is
activity, none is a command):

- before TLS (timeout_idle), right after the greeting;
- after STARTTLS and EHLO (timeout_command), inside "MAIL FROM:<...";
- after STARTTLS, once the backend has answered a MAIL (the wait for the
  next line starts with that reply, not with the MAIL).

Each gets "421 4.4.2 <hostname> Error: timeout exceeded" between 1.5 and 5 s
after its last whole command, and is closed; it does not hold its session
(and its place under max_sessions) for as long as it keeps trickling.
(That whole commands restart the wait, NOOP every 1.2 s with
timeout_command = 2, is t_timeouts_limits's.)
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

NAME = "mw.test.example"
TRICKLE_S = 8  # how long a client trickles at most
STEP_S = 0.5


def trickle(c, text):
    """Send text one byte every STEP_S until the server answers or closes.
    Returns (reply line or b"", seconds since the start)."""
    t0 = time.monotonic()
    got = b""
    i = 0
    while time.monotonic() - t0 < TRICKLE_S:
        try:
            c.sock.sendall(text[i % len(text):i % len(text) + 1])
        except OSError:
            break
        i += 1
        c.sock.settimeout(STEP_S)
        try:
            got = c.sock.recv(4096)
            break  # a reply, or b"" for a close
        except socket.timeout:
            continue
        except OSError:
            break
    return got, time.monotonic() - t0


def expect_timeout(name, c, text, failures):
    got, dt = trickle(c, text)
    closed = False
    if got:
        closed, _ = c.wait_closed(3)
    c.close()
    print("%s: trickling %r: %r after %.1fs, closed=%s" % (name, text[:12], got, dt, closed))
    if not got.startswith(b"421 4.4.2 %s Error: timeout exceeded" % NAME.encode()):
        failures.append("%s: a client trickling a command line got %r after %.1f s "
                        "(timeout 2 s)" % (name, got, dt))
        return
    if not 1.5 <= dt <= 5:
        failures.append("%s: 421 after %.1f s, timeout 2 s" % (name, dt))
    if not closed:
        failures.append("%s: not closed after the 421" % name)


def before_tls(env, mw, failures):
    c = Client(mw.port("smtp"))
    c.reply()
    expect_timeout("before TLS", c, b"EHLO client.test", failures)


def after_tls(env, mw, failures):
    c = mwtest.raw_tls_client(env, mw.port("smtp"))[0]
    expect_timeout("after TLS", c, b"MAIL FROM:<a@sender.test>", failures)


def after_backend_reply(env, mw, failures):
    c = mwtest.raw_tls_client(env, mw.port("smtp"))[0]
    r = c.cmd("MAIL FROM:<a@sender.test>")
    if r.code != 250:
        failures.append("after a MAIL: expected 250, got %r" % r)
        c.close()
        return
    expect_timeout("after a MAIL", c, b"RCPT TO:<b@rcpt.test>", failures)


def main():
    with mwtest.Env("slow_command") as env:
        be = env.recorder()
        mw = env.mailward(
            listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port, "hostname": NAME,
                                "timeout_idle": 2, "timeout_command": 2}})
        failures = []

        def run(f):
            # A failed check in a thread must fail the test, not end the thread.
            try:
                f(env, mw, failures)
            except BaseException as e:
                failures.append("%s: %r" % (f.__name__, e))
        runs = [before_tls, after_tls, after_backend_reply]
        threads = [threading.Thread(target=run, args=(f,)) for f in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
        mw.stop()
        mwtest.check(not failures, "\n".join(failures))
    print("ok")


if __name__ == "__main__":
    main()
