#!/usr/bin/python3
"""Outbound BDAT (CHUNKING) to a destination that offers it, over TLS.

The destination is a real Postfix inside the destination namespace, with
STARTTLS (a certificate for mx.dest.test from the test CA), reached through
the stripping fixture in "pass" mode (it forwards 192.0.2.10:25 to Postfix's
loopback port unchanged). dest.test is `secure` in the policy. The client
sends the message with BDAT chunks after mailward's post-TLS EHLO reply
offered CHUNKING: the message lands in Postfix's Maildir byte-exact (apart
from the headers Postfix adds), and no BDAT went out before STARTTLS.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

BODY = b"chunked through mailward\r\n.leading dot stays\r\n" + b"z" * 3000 + b"\r\nend\r\n"
MSG = b"From: alice@sender.test\r\nTo: user@test.example\r\nSubject: bdat\r\n\r\n" + BODY


def main():
    with mwtest.Env("out_bdat") as env:
        net = env.netns()
        certfile, keyfile = net.cert("mx.dest.test")
        pf = env.postfix(identity=None, netns=net.ns_of("192.0.2.10"), hostname="mx.dest.test",
                         main={"smtpd_tls_security_level": "may",
                               "smtpd_tls_cert_file": certfile,
                               "smtpd_tls_key_file": keyfile})
        net.stripper("192.0.2.10", to=("127.0.0.1", pf.port), mode="pass")
        mw = net.outbound(policy="test.example secure match=mx.dest.test\n",
                          default_level="encrypt")
        s = net.smtp("192.0.2.10", 25, local_hostname="client.sender.test")
        code, caps = s.ehlo()
        print("EHLO reply: %r" % caps)
        mwtest.eq(code, 250, "EHLO")
        mwtest.check(s.has_extn("chunking"), "CHUNKING not offered: %r" % caps)
        mwtest.eq(s.mail("alice@sender.test")[0], 250, "MAIL")
        mwtest.eq(s.rcpt("user@test.example")[0], 250, "RCPT")
        half = len(MSG) // 2
        for chunk, last in ((MSG[:half], False), (MSG[half:], True)):
            s.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
            code, text = s.getreply()
            print("BDAT %d%s: %d %r" % (len(chunk), " LAST" if last else "", code, text))
            mwtest.eq(code, 250, "BDAT reply")
        s.quit()
        got = pf.wait_mailbox("user@test.example", 1, 30)
        mwtest.eq(len(got), 1, "messages in the Maildir; maillog:\n%s" % pf.maillog())
        mwtest.check(got[0].replace(b"\r\n", b"\n").endswith(BODY.replace(b"\r\n", b"\n")),
                     "body changed: %r" % got[0][-200:])
        log = pf.maillog()
        # Postfix's per-session summary: STARTTLS first, then the chunks.
        mwtest.check("ehlo=2 starttls=1 mail=1 rcpt=1 bdat=2" in log,
                     "Postfix's session summary shows no STARTTLS before BDAT:\n%s" % log)
        mwtest.eq(mw.alerts(), [], "alerts")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
