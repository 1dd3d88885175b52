#!/usr/bin/python3
"""Outbound: plaintext injected behind the server's 220 to STARTTLS in a
segment of its own is a STARTTLS injection too, not a failed handshake.

t_out_starttls_injection sends the injected reply in the same segment as
the 220; here hostilemx (a test fixture) at 192.0.2.10:25 offers STARTTLS,
answers it with "220 2.0.0 Ready to start TLS", waits 0.3 s (mailward has
sent its ClientHello by then) and sends "250 injected" in clear text, as an
attacker on the path who times it so would. encrypt.test is `encrypt`.
smtplib (the sending MTA) must get 451 4.7.5 for the recipient, and the
alert must be starttls_injection (critical), observed "data injected after
the 220 to STARTTLS"; it was tls_handshake_failed. Nothing of the envelope
reaches the destination.

The same server as a smarthost that a plaintext client reaches through
mailward with forward_tls = starttls: the client gets no 250 for its
message, the alert is starttls_injection (it was tls_handshake_failed) and
the smarthost sees no envelope.
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
    time.sleep(0.3)
    p.send(b"250 injected\r\n")
    p.wait_closed(20)


def smarthost():
    """The same behind a smarthost that mailward reaches with mandatory
    STARTTLS for a plaintext client (forward_tls = starttls)."""
    with mwtest.Env("out_starttls_injection_late") as env:
        net = env.netns()
        mx = HostileMX(net, handler)
        mw = net.outbound(redirect=False, forward="192.0.2.10:25", forward_tls="starttls",
                          policy=None, default_level=None)
        with net.inside():
            s = smtplib.SMTP("127.0.0.1", 10025, local_hostname="legacy.lan.test",
                             timeout=20)
        try:
            s.sendmail("a@sender.test", ["b@remote.test"], b"Subject: late\r\n\r\nhi\r\n")
            mwtest.fail("the message was taken")
        except smtplib.SMTPException as e:
            print("smarthost: %r" % e)
        got = wait_alerts(mw, "starttls_injection")
        print("alerts: %r" % [a.get("event") for a in mw.alerts()])
        mwtest.check(got, "no starttls_injection alert: %r" % mw.alerts())
        rec = mx.received()
        mwtest.check(b"MAIL" not in rec and b"RCPT" not in rec,
                     "the smarthost saw the envelope: %r" % rec)


def main():
    smarthost()
    with mwtest.Env("out_starttls_injection_late") as env:
        net = env.netns()
        mx = HostileMX(net, handler)
        mw = net.outbound(policy="encrypt.test encrypt\n", default_level="encrypt")
        s = net.smtp("192.0.2.10")
        try:
            s.sendmail("a@sender.test", ["b@encrypt.test"], b"Subject: late\r\n\r\nhi\r\n")
            mwtest.fail("the message was taken")
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients["b@encrypt.test"]
            print("RCPT: %d %r" % (code, text))
            mwtest.check(code == 451 and text.startswith(b"4.7.5 "),
                         "RCPT got %d %r" % (code, text))
        s.close()
        got = wait_alerts(mw, "starttls_injection")
        print("alerts: %r" % [a.get("event") for a in mw.alerts()])
        mwtest.check(got, "no starttls_injection alert: %r" % mw.alerts())
        mwtest.eq(got[0].get("severity"), "critical", "the alert's severity")
        mwtest.check("injected" in got[0].get("observed", ""), "observed: %r" % got[0])
        rec = mx.received()
        mwtest.check(b"MAIL" not in rec and b"RCPT" not in rec,
                     "the destination saw the envelope: %r" % rec)
    print("ok")


if __name__ == "__main__":
    main()
