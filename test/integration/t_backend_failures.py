#!/usr/bin/python3
"""Invariant 1: "250" to the end of a message only ever comes from the backend.

- backend down (nothing listens on forward): MAIL gets "421 4.4.2", never
  250, and the connection closes;
- backend accepts and never greets, timeout_greeting = 2: "421 4.4.2";
- backend drops the connection right after its 354 to DATA: the client's end
  of data gets "421 4.4.2" or "451 4.4.x", never 250;
- backend answers the end of data after 6 s, timeout_final = 2: "421 4.4.2"
  within a few seconds, never 250.

The misbehaving backends are mwtest.MisbehavingBackend (a fixture, raw
sockets following a script), not real software.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import free_port  # noqa: E402

NAME = "mw.test.example"
MSG = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: failing backend\r\n\r\nbody\r\n"



def envelope_fails(env, mw, listener, failures, max_wait):
    c = mwtest.raw_tls_client(env, mw.port(listener))[0]
    t0 = time.monotonic()
    r = c.cmd("MAIL FROM:<a@sender.test>", timeout=max_wait)
    dt = time.monotonic() - t0
    closed, rest = c.wait_closed(5)
    c.close()
    print("%s: MAIL -> %r after %.1fs, closed=%s" % (listener, r, dt, closed))
    if not r.starts("421 4.4.2"):
        failures.append("%s: MAIL expected 421 4.4.2, got %r" % (listener, r))
    if not closed:
        failures.append("%s: connection not closed after the 421" % listener)


def data_fails(env, mw, listener, failures, allow_451, max_wait, max_dt=None):
    c = mwtest.raw_tls_client(env, mw.port(listener))[0]
    for line, code in (("MAIL FROM:<a@sender.test>", 250), ("RCPT TO:<b@rcpt.test>", 250),
                       ("DATA", 354)):
        r = c.cmd(line)
        if r.code != code:
            failures.append("%s: %s answered %r" % (listener, line, r))
            c.close()
            return
    t0 = time.monotonic()
    try:
        c.send(MSG + b".\r\n")
    except OSError as e:
        print("%s: sending the message: %r" % (listener, e))
    try:
        r = c.reply(max_wait)
    except socket.timeout:
        r = None
    dt = time.monotonic() - t0
    c.close()
    print("%s: end of data -> %r after %.1fs" % (listener, r, dt))
    ok = r is not None and (r.starts("421 4.4.2") or
                            (allow_451 and r.starts("451 4.4.")))
    if r is not None and r.code == 250:
        failures.append("%s: 250 to the end of data although the backend never said it: %r"
                        % (listener, r))
    elif not ok:
        failures.append("%s: end of data expected 421 4.4.2%s, got %r"
                        % (listener, " or 451 4.4.x" if allow_451 else "", r))
    elif max_dt is not None and dt > max_dt:
        failures.append("%s: reply after %.1f s, later than the timeout allows" % (listener, dt))


def main():
    failures = []
    with mwtest.Env("backend_failures") as env:
        silent = mwtest.MisbehavingBackend("silent", env=env)
        drop = mwtest.MisbehavingBackend("drop_after_354", env=env)
        slow = mwtest.MisbehavingBackend("slow_final", delay=6, env=env)
        down = free_port()
        base = {"accept_tls": "starttls", "hostname": NAME}
        mw = env.mailward(listeners={
            "down": dict(base, forward="127.0.0.1:%d" % down),
            "silent": dict(base, forward="127.0.0.1:%d" % silent.port, timeout_greeting="2"),
            "drop": dict(base, forward="127.0.0.1:%d" % drop.port),
            "slow": dict(base, forward="127.0.0.1:%d" % slow.port, timeout_final="2"),
        })
        envelope_fails(env, mw, "down", failures, 10)
        envelope_fails(env, mw, "silent", failures, 10)
        data_fails(env, mw, "drop", failures, True, 10)
        data_fails(env, mw, "slow", failures, False, 10, max_dt=5)
        mw.stop()
        if slow.delivered:
            print("note: the slow backend delivered %d message(s) after mailward gave up "
                  "(the client was told 421 and will retry: a duplicate, not a loss)"
                  % slow.delivered)
        for f in failures:
            print("FAIL: " + f)
        mwtest.check(not failures, "%d backend failure checks failed" % len(failures))
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
