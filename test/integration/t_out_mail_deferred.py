#!/usr/bin/python3
"""Outbound: the destination answers MAIL with a temporary error, and a real
Postfix (the sending MTA, in the sender namespace, relayhost
[192.0.2.10]:25, smtp_tls_security_level = none) must keep every recipient
queued. The destination is another real Postfix, with STARTTLS (certificate
for mx.dest.test; test.example encrypt in the policy), reached through the
stripping fixture in "pass" mode, whose sender restriction answers MAIL
from alice@sender.test with "452 4.3.1 Insufficient system storage"
(smtpd_delay_reject = no).

mailward holds MAIL until a recipient passes and then sends it with that
RCPT; Postfix pipelines MAIL, three RCPTs and DATA (the destination offers
PIPELINING). The server answers the later RCPTs "503 5.5.1 need MAIL
command", which must not reach the sending Postfix: it would bounce those
recipients. Checked: it logs status=deferred for all three recipients (each
with the 452), bounces none, and nothing was delivered.

Then a raw client, in one write: MAIL from alice (refused), RCPT, BDAT
LAST with its chunk, MAIL from bob, RCPT b; five replies; then RCPT c and
BDAT LAST. The refused MAIL belongs to the first transaction only: RCPT c
gets 250 (not the first MAIL's error, nor the 503 of a MAIL sent twice),
and bob's message reaches b and c."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

MSG = b"From: alice@sender.test\r\nTo: b@test.example\r\nSubject: deferred\r\n\r\nbody\r\n"
RCPTS = ["b@test.example", "c@test.example", "user@test.example"]


def main():
    with mwtest.Env("out_mail_deferred") as env:
        net = env.netns()
        certfile, keyfile = net.cert("mx.dest.test")
        access = env.path("sender_access")
        with open(access, "w") as f:
            f.write("alice@sender.test 452 4.3.1 Insufficient system storage\n")
        dest = env.postfix(identity=None, netns=net.ns_of("192.0.2.10"),
                           hostname="mx.dest.test",
                           main={"smtpd_tls_security_level": "may",
                                 "smtpd_tls_cert_file": certfile,
                                 "smtpd_tls_key_file": keyfile,
                                 "smtpd_delay_reject": "no",
                                 "smtpd_sender_restrictions":
                                     "check_sender_access texthash:" + access})
        net.stripper("192.0.2.10", to=("127.0.0.1", dest.port), mode="pass")
        mw = net.outbound(policy="test.example encrypt\n", default_level="encrypt")
        # test.example is the destination's, not the sending Postfix's own.
        pf = net.sending_postfix(virtual_mailbox_domains="")
        with net.inside():
            import smtplib
            s = smtplib.SMTP("127.0.0.1", pf.port, local_hostname="submit.sender.test",
                             timeout=20)
        mwtest.eq(s.sendmail("alice@sender.test", RCPTS, MSG), {}, "refused by Postfix")
        s.quit()

        def outcomes():
            return re.findall(r"to=<([^>]+)>.* status=(\w+) \((.*)\)$", pf.maillog(), re.M)
        ok = mwtest.wait_for(lambda: len(outcomes()) >= 3, 60)
        got = outcomes()
        for rcpt, status, why in got:
            print("Postfix: %s %s (%s)" % (rcpt, status, why))
        mwtest.check(ok, "Postfix logged fewer than three outcomes:\n%s\n%s"
                     % (pf.maillog(), mw.log()[-3000:]))
        mwtest.eq(sorted((r, st) for r, st, _ in got[:3]),
                  [(r, "deferred") for r in RCPTS], "Postfix's outcome per recipient")
        for rcpt, _, why in got[:3]:
            mwtest.check("452 4.3.1" in why, "%s deferred for %r, not the MAIL's 452"
                         % (rcpt, why))
        mwtest.check("status=bounced" not in pf.maillog(), "Postfix bounced a recipient")
        log = dest.maillog()
        mwtest.check("reject: MAIL from" in log and "452 4.3.1" in log,
                     "the destination did not refuse MAIL:\n%s" % log)
        mwtest.check(" queued" not in log and "status=sent" not in log,
                     "the destination took a message:\n%s" % log)
        pf.stop()

        with net.inside():
            c = Client(25, host="192.0.2.10", timeout=20)
        c.reply()
        mwtest.eq(c.cmd("EHLO client.sender.test").code, 250, "EHLO")
        first, second = b"Subject: a\r\n\r\nA\r\n", b"Subject: b\r\n\r\nB\r\n"
        c.send(b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<b@test.example>\r\n"
               b"BDAT %d LAST\r\n" % len(first) + first +
               b"MAIL FROM:<bob@sender.test>\r\nRCPT TO:<b@test.example>\r\n")
        got = [c.reply() for _ in range(5)]
        print("pipelined: %r" % got)
        mwtest.eq([r.code for r in got][:2], [250, 452], "MAIL (held) and RCPT of alice")
        mwtest.eq([r.code for r in got][3:], [250, 250], "MAIL (held) and RCPT of bob")
        r = c.cmd("RCPT TO:<c@test.example>")
        mwtest.eq(r.code, 250, "RCPT c in bob's transaction: %r" % r)
        c.send(b"BDAT %d LAST\r\n" % len(second) + second)
        mwtest.eq(c.reply().code, 250, "bob's message")
        c.cmd("QUIT")
        c.close()
        for rcpt in ("b@test.example", "c@test.example"):
            got = dest.wait_mailbox(rcpt, 1, 20)
            mwtest.eq(len(got), 1, "messages for %s" % rcpt)
            mwtest.check(b"Subject: b" in got[0], "the message for %s: %r" % (rcpt, got[0]))
        dest.stop()
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
