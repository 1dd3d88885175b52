#!/usr/bin/python3
"""Outbound: a destination's refusal of the held MAIL, with a NUL in it,
reaches every RCPT behind it whole, each reply ending with CRLF.

mailward answers MAIL itself and sends it once a recipient passes; when the
destination refuses it, each RCPT sent behind it gets that refusal (the
server's own "need MAIL" would read as permanent). The destination is
hostilemx (a test fixture) at 192.0.2.10:25; it refuses the MAIL with
"550 5.7.1 sender refused<NUL> here" (a NUL is no SMTP text, but a server
may send one) and answers every other command 503. A raw client pipelines
MAIL, two RCPTs to a `may` domain and QUIT. It must get exactly
250 (the held MAIL), the refusal twice, whole, and 221, each its own line:
the refusal was copied up to its NUL, without its CRLF, so that the three
replies ran together into one line and the MTA lost step with its
commands.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from hostilemx import HostileMX  # noqa: E402
from rawsmtp import Client  # noqa: E402

REFUSAL = b"550 5.7.1 sender refused\0 here\r\n"


def handler(p):
    p.send(b"220 mx.dest.test ESMTP\r\n")
    p.ehlo([b"PIPELINING"])
    p.expect("MAIL")
    p.expect("RCPT")
    p.send(REFUSAL + b"503 5.5.1 Error: need MAIL command\r\n")
    while True:
        ln = p.line()
        if ln is None:
            return
        if ln.upper() == b"QUIT":
            p.send(b"221 2.0.0 Bye\r\n")
            return
        p.send(b"503 5.5.1 Error: need MAIL command\r\n")


def main():
    with mwtest.Env("out_late_mail_nul") as env:
        net = env.netns()
        HostileMX(net, handler)
        mw = net.outbound(policy="may.test may\n", default_level="may")
        with net.inside():
            c = Client(25, host="192.0.2.10", timeout=10)
        mwtest.eq(c.reply().code, 220, "banner")
        mwtest.eq(c.cmd("EHLO client.sender.test").code, 250, "EHLO")
        c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@may.test>\r\n"
               b"RCPT TO:<c@may.test>\r\nQUIT\r\n")
        closed, got = c.wait_closed(10)
        print("replies: %r" % got)
        mwtest.check(closed, "the session did not end after QUIT: %r" % got)
        mwtest.eq(got, b"250 2.1.0 Ok\r\n" + REFUSAL + REFUSAL + b"221 2.0.0 Bye\r\n",
                  "the replies (log:\n%s)" % mw.log()[-2000:])
    print("ok")


if __name__ == "__main__":
    main()
