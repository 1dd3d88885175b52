#!/usr/bin/python3
"""Outbound: a destination that lists STARTTLS after more EHLO keywords than
mailward keeps (SMTP_CAPS_MAX, 32) still gets its mail over TLS.

The destination is hostilemx (a test fixture: it answers EHLO with 40
made-up keywords before STARTTLS, then speaks TLS with the test server
certificate) at 192.0.2.10:25; may.test is `may`, enc.test `encrypt`.
smtplib (the sending MTA) sends one message to each domain, in a session
of its own. Both are delivered, and the destination sees STARTTLS first
and every MAIL, RCPT and message line inside TLS. Before, the keyword was
dropped with the ones past the limit: the message to may.test went in
clear text and the one to enc.test got 451 4.7.5 with an alert that
STARTTLS had been stripped.
"""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from hostilemx import HostileMX  # noqa: E402

SECRET = b"a line that must not be seen in clear text"


def main():
    with mwtest.Env("out_many_keywords") as env:
        net = env.netns()
        cert, key = net.cert("mx.dest.test")
        seen = []        # (in TLS?, line) for each line the destination read

        def handler(p):
            p.send(b"220 mx.dest.test ESMTP\r\n")
            p.ehlo([b"X-KEYWORD-%d" % i for i in range(40)] + [b"STARTTLS"])
            tls = False
            while True:
                ln = p.line()
                if ln is None:
                    return
                seen.append((tls, ln))
                verb = ln.split(b" ")[0].upper()
                if verb == b"STARTTLS" and not tls:
                    p.send(b"220 2.0.0 Ready to start TLS\r\n")
                    p.tls_server(cert, key)
                    tls = True
                elif verb == b"EHLO":
                    p.send(b"250-mx.dest.test\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    p.send(b"354 go ahead\r\n")
                    for text in p.message() or []:
                        seen.append((tls, text))
                    p.send(b"250 2.0.0 Ok: queued\r\n")
                elif verb == b"QUIT":
                    p.send(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    p.send(b"250 2.0.0 Ok\r\n")

        HostileMX(net, handler)
        mw = net.outbound(policy="may.test may\nenc.test encrypt\n", default_level="may")
        for rcpt in ("b@may.test", "c@enc.test"):
            s = net.smtp("192.0.2.10")
            try:
                s.sendmail("a@sender.test", [rcpt], b"Subject: many keywords\r\n\r\n" +
                           SECRET + b"\r\n")
                result = "delivered"
            except smtplib.SMTPException as e:
                result = repr(e)
            print("%s: %s" % (rcpt, result))
            mwtest.eq(result, "delivered", "the message to %s (log:\n%s)"
                      % (rcpt, mw.log()[-2000:]))
            s.quit()
        clear = [ln for tls, ln in seen if not tls and not ln.upper().startswith(b"EHLO")]
        print("lines read in clear text besides EHLO: %r" % clear)
        mwtest.eq(clear, [b"STARTTLS", b"STARTTLS"], "lines read in clear text")
        mwtest.check(any(tls and ln == SECRET for tls, ln in seen),
                     "the message text was not seen inside TLS: %r" % seen)
        mwtest.check("starttls_stripped" not in mw.log(),
                     "an alert says STARTTLS was stripped:\n%s" % mw.log()[-2000:])
    print("ok")


if __name__ == "__main__":
    main()
