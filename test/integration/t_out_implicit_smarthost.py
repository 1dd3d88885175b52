#!/usr/bin/python3
"""A plaintext-only legacy client reaches an implicit-TLS smarthost through
mailward (loopback only, no namespaces): listener accept_tls = none,
require_tls = no, forward = 127.0.0.1:PORT, forward_tls = implicit,
forward_ca = the test CA; the smarthost is aiosmtpd with implicit TLS.

1. The smarthost's certificate (the test server certificate: localhost,
   mx.test, 127.0.0.1, ::1) matches the host of `forward`: smtplib, in plain
   text, delivers; the smarthost (which speaks nothing but TLS) gets the
   message byte-exact with its envelope.
2. A second listener forwards to a smarthost whose certificate names
   wrong.test only: the name check fails, the client gets a 4xx/5xx and never
   a 250 to its message, and the smarthost never sees an SMTP command."""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

MSG = b"From: legacy@lan.test\r\nSubject: wrapped in TLS\r\n\r\n.dot\r\nbody\r\n"


def main():
    with mwtest.Env("out_implicit_smarthost") as env:
        good = env.recorder(tls="implicit", hostname="smarthost.test")
        bad = env.recorder(tls="implicit", hostname="smarthost.test",
                           cert=(os.path.join(env.certs, "wrongname.pem"),
                                 os.path.join(env.certs, "wrongname.key")))
        common = {"accept_tls": "none", "require_tls": "no", "forward_tls": "implicit",
                  "forward_ca": os.path.join(env.certs, "ca.pem"), "hostname": "mw.lan.test"}
        mw = env.mailward(listeners={
            "legacy": dict(common, forward="127.0.0.1:%d" % good.port),
            "wrong": dict(common, forward="127.0.0.1:%d" % bad.port)})

        s = smtplib.SMTP("127.0.0.1", mw.port("legacy"), local_hostname="legacy.lan.test",
                         timeout=20)
        s.ehlo()
        refused = s.sendmail("legacy@lan.test", ["bob@remote.test"], MSG)
        mwtest.eq(refused, {}, "recipients refused")
        s.quit()
        msgs = good.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the smarthost")
        mwtest.eq(msgs[0].data, MSG, "message bytes at the smarthost")
        mwtest.eq((msgs[0].mail_from, msgs[0].rcpt_tos), ("legacy@lan.test", ["bob@remote.test"]),
                  "envelope at the smarthost")

        replies = []
        s = smtplib.SMTP("127.0.0.1", mw.port("wrong"), local_hostname="legacy.lan.test",
                         timeout=20)
        try:
            s.ehlo()
            code, text = s.mail("legacy@lan.test")
            replies.append(("MAIL", code, text))
            if code == 250:
                code, text = s.rcpt("bob@remote.test")
                replies.append(("RCPT", code, text))
                if code == 250:
                    try:
                        replies.append(("DATA",) + s.data(MSG))
                    except smtplib.SMTPException as e:
                        replies.append(("DATA", repr(e)))
            s.close()
        except smtplib.SMTPServerDisconnected as e:
            replies.append(("disconnected", repr(e)))
        print("client saw (wrong name): %r" % replies)
        mwtest.check(any(len(r) == 3 and 400 <= r[1] < 600 for r in replies),
                     "no SMTP error for a smarthost whose name does not match: %r" % replies)
        mwtest.check(not any(r[0] == "DATA" and len(r) == 3 and r[1] == 250 for r in replies),
                     "message accepted for a smarthost whose name does not match")
        mwtest.eq(bad.commands, [], "commands at the wrong-name smarthost")
        mwtest.eq(bad.messages, [], "messages at the wrong-name smarthost")
        print("alerts: %r" % mw.alerts())
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
