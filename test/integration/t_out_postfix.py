#!/usr/bin/python3
"""Outbound with a real Postfix as the sending MTA, in the sender namespace:
relayhost = [192.0.2.10]:25 and smtp_tls_security_level = none, so the only
TLS on the way is mailward's. Postfix's smtp client (user postfix) is
intercepted by the nftables redirect, mailward (user nobody, not redirected)
connects to the destination (aiosmtpd with STARTTLS, certificate for
mx.dest.test) and upgrades; dest.test is `secure` in the policy.

Checked: the message submitted to Postfix arrives at the destination once,
over TLS, byte-exact apart from the headers Postfix adds, with the envelope;
Postfix logs status=sent for it; mailward wrote no alert."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

BODY = b"Postfix through mailward.\r\n.leading dot\r\n"
MSG = b"From: alice@sender.test\r\nTo: bob@dest.test\r\nSubject: via Postfix\r\n\r\n" + BODY


def main():
    with mwtest.Env("out_postfix") as env:
        net = env.netns()
        cert = net.cert("mx.dest.test")
        dest = net.dest("192.0.2.10", tls="starttls", cert=cert, hostname="mx.dest.test")
        mw = net.outbound(policy="dest.test secure\n", default_level="encrypt")
        pf = net.sending_postfix()
        with net.inside():
            import smtplib
            s = smtplib.SMTP("127.0.0.1", pf.port, local_hostname="submit.sender.test",
                             timeout=20)
        refused = s.sendmail("alice@sender.test", ["bob@dest.test"], MSG)
        mwtest.eq(refused, {}, "recipients refused by Postfix")
        s.quit()

        msgs = dest.wait_messages(1, 60)
        if not msgs:
            print(pf.maillog())
            print(mw.log())
        mwtest.eq(len(msgs), 1, "messages at the destination")
        m = msgs[0]
        print(m)
        mwtest.eq(m.mail_from, "alice@sender.test", "MAIL FROM at the destination")
        mwtest.eq(m.rcpt_tos, ["bob@dest.test"], "RCPT TO at the destination")
        mwtest.eq(m.tls, True, "message arrived over TLS")
        mwtest.eq(m.helo, "pf.sender.test", "EHLO name the destination saw (Postfix's own)")
        mwtest.check(m.data.endswith(BODY), "body at the destination: %r" % m.data)
        mwtest.check(b"Subject: via Postfix" in m.data, "headers at the destination: %r" % m.data)
        ok = pf.wait_maillog("status=sent", 20)
        log = pf.maillog()
        mwtest.check(ok, "Postfix did not log status=sent:\n%s" % log)
        sent = [l for l in log.splitlines() if "status=sent" in l]
        print("Postfix: %r" % sent)
        mwtest.check(any("to=<bob@dest.test>" in l and "192.0.2.10" in l for l in sent),
                     "status=sent line without the recipient and relay: %r" % sent)
        mwtest.eq(mw.alerts(), [], "alerts")
        pf.stop()
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
