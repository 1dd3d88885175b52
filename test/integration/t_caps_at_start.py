#!/usr/bin/python3
"""A client right behind mailward's start gets the backend's capabilities.

The capabilities mailward offers come from its probe of the backend (EHLO,
then QUIT), made at start and every probe_interval. A client whose EHLO
came before the first probe had ended got mailward's defaults (PIPELINING,
8BITMIME, ENHANCEDSTATUSCODES): no SIZE, no CHUNKING and, after TLS, no
AUTH, so a submission client would not log in. Such an EHLO now waits for
the first probe to end.

The backend is the MisbehavingBackend fixture (NOT real software: it is
needed for a greeting held back on purpose) in mode slow_greeting: every
session, the probe's too, is greeted after 1.5 s; its EHLO offers
PIPELINING, 8BITMIME and SIZE 10485760.

  1. Connect as soon as mailward has started; greeting (mailward's own, at
     once) and EHLO. The reply comes once the probe has its answer (>= 1 s
     after the EHLO) and offers SIZE 10485760 and STARTTLS.
  2. STARTTLS, EHLO (SIZE again, no waiting), a message: delivered.
  3. A second mailward whose backend refuses every connection (the probe
     fails): an EHLO is answered with the defaults, and the probe's failure
     is logged.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client, ehlo_keywords  # noqa: E402

MSG = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: caps\r\n\r\nhi\r\n.\r\n"


def main():
    with mwtest.Env("caps_at_start") as env:
        be = mwtest.MisbehavingBackend("slow_greeting", delay=1.5, env=env)
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port}})
        c = Client(mw.port("smtp"), timeout=20)
        mwtest.eq(c.reply().code, 220, "greeting")
        t0 = time.monotonic()
        r = c.cmd("EHLO client.test")
        took = time.monotonic() - t0
        print("EHLO answered after %.2f s: %r" % (took, ehlo_keywords(r)), flush=True)
        mwtest.eq(r.code, 250, "EHLO")
        mwtest.check("SIZE" in ehlo_keywords(r) and "STARTTLS" in ehlo_keywords(r),
                     "EHLO right after the start without the backend's SIZE: %r" % r)
        mwtest.check(took >= 1.0, "EHLO answered after %.2f s, before the probe could end"
                     % took)
        c.starttls(mwtest.ssl_client_context(env))
        r = c.cmd("EHLO client.test")
        mwtest.check("SIZE" in ehlo_keywords(r), "EHLO after TLS without SIZE: %r" % r)
        for line, code in (("MAIL FROM:<a@sender.test>", 250), ("RCPT TO:<b@rcpt.test>", 250),
                           ("DATA", 354), (MSG, 250)):
            r = c.cmd(line)
            mwtest.eq(r.code, code, "%r answered %r" % (line[:20], r))
        c.cmd("QUIT")
        c.close()
        mwtest.eq(be.delivered, 1, "messages the backend took")
        mw.stop()

        gone = mwtest.MisbehavingBackend("refuse", env=env)
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % gone.port}})
        c = Client(mw.port("smtp"), timeout=20)
        c.reply()
        r = c.cmd("EHLO client.test")
        print("backend refusing: EHLO %r" % ehlo_keywords(r), flush=True)
        mwtest.eq(r.code, 250, "EHLO with the backend refusing")
        mwtest.check("STARTTLS" in ehlo_keywords(r) and "SIZE" not in ehlo_keywords(r),
                     "EHLO with the backend refusing: %r" % r)
        c.close()
        mwtest.check(mwtest.wait_for(lambda: "event=probe_failed" in mw.log(), 10),
                     "no probe_failed line:\n%s" % mw.log()[-2000:])
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
