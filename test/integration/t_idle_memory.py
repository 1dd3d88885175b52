#!/usr/bin/python3
"""Idle TLS sessions give memory back, and keep working afterwards.

wolfSSL (as Debian builds it) gives every connection a WOLFSSL_SESSION of
37.5 KB, almost all of it zeros on a server; mailward gives those pages back
to the kernel a second after the handshake (lib/conn.c, tls_release_idle()),
not at once, so that a session that is over within a second never pays for
it. This checks that it happens and that it breaks nothing:

1. Python's ssl (real software) opens SESSIONS STARTTLS sessions at once,
   each up to the reply to its post-TLS EHLO, and holds them. mailward's
   VmRSS is read just after the last one is up, and again 2.5 s later:
   every session that was younger than AGE seconds at the first reading
   must have given back at least PER_SESSION_KB by the second (about 30 KB
   is expected; a trim that never comes gives nothing).
2. Then every held session sends a message: each reaches the backend, so
   giving the pages back did not touch memory in use.
"""

import concurrent.futures
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import rss_kb  # noqa: E402

NAME = "mw.test.example"
SESSIONS = 120
AGE = 0.7           # younger than this at the first reading: not trimmed yet
PER_SESSION_KB = 8  # at least, per such session; ~30 KB is expected
MIN_YOUNG = 20      # fewer young sessions than this cannot show anything


def open_session(env, port):
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="idle.client.test", timeout=30)
    s.ehlo()
    s.starttls(context=mwtest.ssl_client_context(env))
    code, _ = s.ehlo()
    if code != 250:
        raise smtplib.SMTPResponseException(code, "EHLO after STARTTLS")
    return s, time.monotonic()


def main():
    with mwtest.Env("idle_memory") as env:
        be = env.recorder()
        mw = env.mailward(listeners={"smtp": {
            "accept_tls": "starttls", "require_tls": "yes", "hostname": NAME,
            "forward": "127.0.0.1:%d" % be.port, "max_per_client": "1000"}})
        port = mw.port("smtp")
        # Warm up: the first TLS sessions allocate what every later one reuses.
        warm = [open_session(env, port)[0] for _ in range(4)]
        for s in warm:
            s.quit()
        time.sleep(1.5)

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            held = list(pool.map(lambda _: open_session(env, port), range(SESSIONS)))
        rss_a = rss_kb(mw.pid, "VmRSS")
        t_a = time.monotonic()
        time.sleep(2.5)
        rss_b = rss_kb(mw.pid, "VmRSS")
        young = sum(1 for _, t in held if t > t_a - AGE)
        given = rss_a - rss_b
        print("%d sessions held, %d younger than %.1f s at the first reading; VmRSS %d kB "
              "-> %d kB 2.5 s later: %d kB given back (%.1f kB per young session)"
              % (len(held), young, AGE, rss_a, rss_b, given, given / max(young, 1)))
        mwtest.check(young >= MIN_YOUNG,
                     "only %d of %d sessions came up within %.1f s of the last one: "
                     "too slow to tell a trim from none" % (young, SESSIONS, AGE))
        mwtest.check(given >= young * PER_SESSION_KB,
                     "idle sessions gave back %d kB, want at least %d kB (%d kB for each "
                     "of %d sessions that were younger than %.1f s)"
                     % (given, young * PER_SESSION_KB, PER_SESSION_KB, young, AGE))

        def send(i):
            s = held[i][0]
            msg = ("From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: idle %d\r\n\r\n"
                   "after the trim\r\n" % i).encode()
            refused = s.sendmail("a@sender.test", ["b@rcpt.test"], msg)
            s.quit()
            return refused

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            refused = list(pool.map(send, range(len(held))))
        mwtest.eq([r for r in refused if r], [], "recipients refused after the trim")
        msgs = be.wait_messages(len(held), 30)
        subjects = sorted(int(m.data.split(b"Subject: idle ")[1].split(b"\r\n")[0])
                          for m in msgs)
        mwtest.eq(subjects, list(range(len(held))), "messages at the backend")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
