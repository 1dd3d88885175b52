#!/usr/bin/python3
"""Outbound: the destination ends the session inside a transaction.

The destination is a real Postfix (in 192.0.2.10's namespace, reached
through the stripping fixture in "pass" mode, which forwards unchanged) with
smtpd_timeout = 2s: a client that waits longer between two commands gets
"421 4.4.2 ... Error: timeout exceeded" and the connection is closed. A raw
client (the sending MTA) talks to mailward's outbound listener: EHLO, MAIL,
RCPT (250: the destination took the recipient), then waits 3.5 s, then DATA.

The recipient's transaction is gone with the destination's session. DATA
must get a 4xx and the session end (the MTA keeps the message queued and
tries again), never a fresh destination session's "503 need MAIL" (a
permanent error: the MTA would bounce the message) nor a 354 that would
send the message without its envelope. Twice: the destination with
STARTTLS and test.example at `encrypt`, and the destination without
STARTTLS and test.example at `may` (mailward may then fall back to a
new plaintext session, which must not happen inside a transaction). Nothing
is delivered in either case."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402


def one_case(env, net, tls, then):
    main = {"smtpd_timeout": "2s"}
    if tls:
        certfile, keyfile = net.cert("mx.dest.test")
        main.update({"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": certfile,
                     "smtpd_tls_key_file": keyfile})
    level = "encrypt" if tls else "may"
    dest = env.postfix(identity=None, netns=net.ns_of("192.0.2.10"), hostname="mx.dest.test",
                       main=main)
    net.stripper("192.0.2.10", to=("127.0.0.1", dest.port), mode="pass")
    mw = net.outbound(policy="test.example %s\n" % level, default_level=level)
    with net.inside():
        c = Client(25, host="192.0.2.10", timeout=20)
    c.reply()
    mwtest.eq(c.cmd("EHLO client.sender.test").code, 250, "EHLO")
    mwtest.eq(c.cmd("MAIL FROM:<alice@sender.test>").code, 250, "MAIL")
    r = c.cmd("RCPT TO:<b@test.example>")
    mwtest.eq(r.code, 250, "RCPT: %r" % r)
    time.sleep(3.5)
    r = c.cmd(then)
    print("%s: %s after the destination's timeout: %r" % (level, then, r))
    mwtest.check(r.code // 100 == 4, "%s got %r, not a temporary error:\n%s"
                 % (then, r, mw.log()[-3000:]))
    closed, rest = c.wait_closed(5)
    mwtest.check(closed, "the session did not end after %r (then %r)" % (r, rest))
    log = dest.maillog()
    mwtest.check("timeout after RCPT" in log,
                 "the destination did not time out after RCPT:\n%s" % log)
    mwtest.check(" queued" not in log and "status=sent" not in log,
                 "the destination took a message:\n%s" % log)
    mwtest.check("event=backend_closed_idle in=transaction" in mw.log(),
                 "mailward did not log the session ended in a transaction:\n%s"
                 % mw.log()[-3000:])
    mw.stop()
    dest.stop()


def main():
    for tls in (True, False):
        for then in ("DATA", "RCPT TO:<c@test.example>"):
            with mwtest.Env("out_dest_idle") as env:
                one_case(env, env.netns(), tls, then)
    print("ok")


if __name__ == "__main__":
    main()
