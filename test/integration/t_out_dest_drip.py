#!/usr/bin/python3
"""Outbound: a destination that drips its replies a byte at a time, or sends
a line that never ends, is closed within the timeouts (invariant 5).

The destination is hostilemx (a test fixture: no real server misbehaves so)
at 192.0.2.10:25; mailward's outbound listener has timeout_greeting,
timeout_command and timeout_final at 3 seconds. A raw client (the sending
MTA) talks to it. Each case must end with 421 4.4.2 (backend timeout) to the
client and the session closed within 15 seconds, where a timer that each
byte restarted would wait for ever:

  banner   "220-" and then one byte every 0.5 s, never a whole reply
  rcpt     a good banner and EHLO; the reply to RCPT dripped
  final    a message taken (354); the reply to its dot dripped as
           "250-..." (it must never reach the client as a 250)

and, with the default timeouts (60 s for the banner), a banner line that
never ends, sent as fast as it can be read: mailward gives up on it once it
is longer than a reply line may be, within 10 seconds (it consumed it for
ever, reading as fast as the server sent, before).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from hostilemx import HostileMX  # noqa: E402
from rawsmtp import Client  # noqa: E402


def handler(case):
    def run(p):
        stop = lambda: p.mx.stopping or p.gone  # noqa: E731
        if case == "banner":
            p.drip(b"220-" + b"x" * 1000, 0.5, stop)
            return
        if case == "endless":
            while not stop() and p.send(b"a" * 4096):
                time.sleep(0.001)
            return
        p.send(b"220 mx.dest.test ESMTP\r\n")
        p.ehlo()
        if case == "rcpt":
            p.expect("MAIL")
            p.send(b"250 2.1.0 Ok\r\n")
            p.expect("RCPT")
            p.drip(b"250-" + b"y" * 1000, 0.5, stop)
            return
        p.envelope()
        p.message()
        p.drip(b"250-2.0.0 Ok: queued " + b"z" * 1000, 0.5, stop)
    return run


def one_case(case):
    with mwtest.Env("out_dest_drip") as env:
        net = env.netns()
        HostileMX(net, handler(case))
        quick = {} if case == "endless" else {
            "timeout_greeting": 3, "timeout_command": 3, "timeout_final": 3}
        mw = net.outbound(policy="may.test may\n", default_level="may", **quick)
        limit = 10 if case == "endless" else 15
        t0 = time.monotonic()
        with net.inside():
            c = Client(25, host="192.0.2.10", timeout=limit + 5)
        r = c.reply()
        if case not in ("banner", "endless"):
            mwtest.eq(r.code, 220, "banner")
            mwtest.eq(c.cmd("EHLO client.sender.test").code, 250, "EHLO")
            mwtest.eq(c.cmd("MAIL FROM:<a@sender.test>").code, 250, "MAIL")
            if case == "rcpt":
                r = c.cmd("RCPT TO:<b@may.test>")
            else:
                mwtest.eq(c.cmd("RCPT TO:<b@may.test>").code, 250, "RCPT")
                mwtest.eq(c.cmd("DATA").code, 354, "DATA")
                r = c.cmd("Subject: drip\r\n\r\nhello\r\n.")
        took = time.monotonic() - t0
        print("%s: %r after %.1f s" % (case, r, took))
        mwtest.check(r.code == 421 and r.starts("421 4.4.2"),
                     "%s: the client got %r, not 421 4.4.2:\n%s"
                     % (case, r, mw.log()[-2000:]))
        closed, rest = c.wait_closed(5)
        mwtest.check(closed, "%s: the session did not end (then %r)" % (case, rest))
        took = time.monotonic() - t0
        mwtest.check(took < limit, "%s: the session lasted %.1f s" % (case, took))
        reason = "line_too_long" if case == "endless" else "event=backend_timeout"
        mwtest.check(reason in mw.log(), "%s: no %s in the log:\n%s"
                     % (case, reason, mw.log()[-2000:]))
        mw.stop()


def main():
    for case in ("banner", "rcpt", "final", "endless"):
        one_case(case)
    print("ok")


if __name__ == "__main__":
    main()
