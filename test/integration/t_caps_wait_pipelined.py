#!/usr/bin/python3
"""An EHLO that waits for the listener's first probe takes none of the
backend's replies to the commands pipelined behind it.

mailward answers EHLO itself, from the capabilities its probe of the
backend found; right after the start the first probe is still under way
and the EHLO's reply waits for it (t_caps_at_start). A client that
pipelines its envelope behind that EHLO (implicit TLS, as on port 465)
makes mailward connect to the backend for MAIL meanwhile, and the
backend's reply to MAIL must go to MAIL, not to the EHLO that waits: one
reply given to the wrong command shifts every later one onto the command
before it (a 250 meant for one command answers another, and the end of a
message can be answered with a later command's 250), and the EHLO's entry
is then written and freed while the probe's end still fills it in (a
use-after-free: AddressSanitizer stops mailward).

The backend is the MisbehavingBackend fixture (NOT real software: a real
MTA cannot be told to greet only its first connection slowly) in mode
slow_first: mailward's first probe is greeted after 3 s, the session's own
connection at once. The client (raw socket, for the exact pipelined
bytes) sends EHLO, MAIL, RCPT and DATA in one write and must get, in
order: the EHLO reply (the fixture's capabilities), 250, 250, 354; then
the message is delivered (the fixture's 250) and mailward still runs.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

MSG = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: caps wait\r\n\r\nhi\r\n.\r\n"


def main():
    with mwtest.Env("caps_wait_pipelined") as env:
        be = mwtest.MisbehavingBackend("slow_first", delay=3, env=env)
        mw = env.mailward(listeners={"smtps": {"forward": "127.0.0.1:%d" % be.port,
                                               "accept_tls": "implicit"}})
        c = Client(mw.port("smtps"), timeout=20, tls=mwtest.ssl_client_context(env))
        mwtest.eq(c.reply().code, 220, "greeting")
        c.send(b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\n"
               b"RCPT TO:<b@rcpt.test>\r\nDATA\r\n")
        got = [c.reply() for _ in range(4)]
        print("EHLO, MAIL, RCPT, DATA in one write: %r" % got)
        ehlo = got[0]
        mwtest.check(ehlo.code == 250 and len(ehlo.raw) > 1 and
                     "SIZE 10485760" in ehlo.lines,
                     "EHLO not answered with the backend's capabilities: %r" % ehlo)
        mwtest.eq([r.code for r in got[1:]], [250, 250, 354], "MAIL, RCPT, DATA")
        mwtest.check(got[1].starts("250 2.0.0 Ok") and got[2].starts("250 2.0.0 Ok"),
                     "MAIL and RCPT: %r" % got[1:3])
        r = c.cmd(MSG)
        print("end of data: %r" % r)
        mwtest.check(r.starts("250 2.0.0 Ok: delivered by fixture"), "end of data: %r" % r)
        mwtest.eq(c.cmd("QUIT").code, 221, "QUIT")
        c.close()
        mwtest.eq(be.delivered, 1, "messages the backend took")
        mwtest.check(mw.alive(), "mailward died")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
