#!/usr/bin/python3
"""Outbound: a TLS handshake with the destination that stalls fails within
timeout_handshake and is judged as a failed handshake, with its alert.

hostilemx (a test fixture) at 192.0.2.10:25 offers STARTTLS, answers it
with 220 and then reads mailward's ClientHello and answers nothing, as a
path that swallows the handshake would. The outbound listener has
timeout_handshake = 2 and timeout_command = 30; encrypt.test is `encrypt`.
smtplib (the sending MTA) must get, within 15 s, its EHLO answered and
451 4.7.5 for the recipient, and the alert tls_handshake_failed must say
that the handshake timed out. Before, the handshake ran under
timeout_command (30 s here, 300 by default), and then the whole session got
"421 4.4.2 backend timeout" with no alert at all.
"""

import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from hostilemx import HostileMX  # noqa: E402
from rawsmtp import wait_alerts  # noqa: E402


def handler(p):
    p.send(b"220 mx.dest.test ESMTP\r\n")
    p.ehlo([b"PIPELINING", b"STARTTLS"])
    p.expect("STARTTLS")
    p.send(b"220 2.0.0 Ready to start TLS\r\n")
    p.wait_closed(60)


def main():
    with mwtest.Env("out_handshake_stalled") as env:
        net = env.netns()
        HostileMX(net, handler)
        mw = net.outbound(policy="encrypt.test encrypt\n", default_level="encrypt",
                          timeout_handshake=2, timeout_command=30)
        t0 = time.monotonic()
        s = net.smtp("192.0.2.10", timeout=40)
        try:
            s.sendmail("a@sender.test", ["b@encrypt.test"], b"Subject: stall\r\n\r\nhi\r\n")
            mwtest.fail("the message was taken")
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients["b@encrypt.test"]
            print("RCPT: %d %r" % (code, text))
            mwtest.check(code == 451 and text.startswith(b"4.7.5 "),
                         "RCPT got %d %r" % (code, text))
        except smtplib.SMTPException as e:
            mwtest.fail("%r after %.1f s, not 451 for the recipient:\n%s"
                        % (e, time.monotonic() - t0, mw.log()[-2000:]))
        took = time.monotonic() - t0
        print("took %.1f s" % took)
        mwtest.check(took < 15, "the answer took %.1f s" % took)
        s.close()
        got = wait_alerts(mw, "tls_handshake_failed")
        mwtest.check(got, "no tls_handshake_failed alert: %r" % mw.alerts())
        mwtest.check("timed out" in got[0].get("observed", ""), "observed: %r" % got[0])
    print("ok")


if __name__ == "__main__":
    main()
