#!/usr/bin/python3
"""Commands that move no mail cannot hold a session for ever.

timeout_idle and timeout_command run between commands, so a client that
sends NOOP (or RSET, VRFY, EXPN, HELP, ETRN, EHLO, HELO) within every
timeout could keep its session, and with enough of them every session
slot. As Postfix's smtpd_junk_command_limit (100), each such command
beyond 100 counts as an error, and at 20 errors the session ends (421
4.7.0 too many errors, t_error_limit); a delivered message starts the
count again.

mailward (require_tls, aiosmtpd recording backend):

  1. Plaintext: EHLO and 125 NOOPs in one write. EHLO and the first 119
     NOOPs are answered 250 (100 commands, then 20 counted as errors);
     the next gets 421 4.7.0 and the connection is closed.
  2. After STARTTLS: EHLO, 90 NOOPs, a message (delivered), 95 NOOPs,
     QUIT: all answered, no 421: the message started the count again.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

MSG = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: junk\r\n\r\nhi\r\n.\r\n"


def main():
    with mwtest.Env("junk_limit") as env:
        be = env.recorder()
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port}})

        c = Client(mw.port("smtp"), timeout=20)
        mwtest.eq(c.reply().code, 220, "greeting")
        c.send(b"EHLO client.test\r\n" + b"NOOP\r\n" * 125)
        got = []
        while len(got) < 121 and (not got or got[-1] == 250):
            got.append(c.reply().code)
        print("plaintext: %d replies of 250, then %r" % (got.count(250), got[-1:]))
        mwtest.eq(got, [250] * 120 + [421], "replies to EHLO and 125 NOOPs")
        closed, rest = c.wait_closed(5)
        mwtest.check(closed, "not closed after the 421 (then %r)" % rest)
        mwtest.check("event=too_many_errors errors=20" in mw.log(),
                     "no too_many_errors line:\n%s" % mw.log()[-2000:])
        c.close()

        c = Client(mw.port("smtp"), timeout=20)
        c.reply()
        c.cmd("EHLO client.test")
        c.starttls(mwtest.ssl_client_context(env))
        mwtest.eq(c.cmd("EHLO client.test").code, 250, "EHLO after TLS")
        c.send(b"NOOP\r\n" * 90)
        mwtest.eq(set(c.reply().code for _ in range(90)), {250}, "90 NOOPs")
        for line, code in (("MAIL FROM:<a@sender.test>", 250), ("RCPT TO:<b@rcpt.test>", 250),
                           ("DATA", 354), (MSG, 250)):
            r = c.cmd(line)
            mwtest.eq(r.code, code, "%r answered %r" % (line[:20], r))
        c.send(b"NOOP\r\n" * 95)
        mwtest.eq(set(c.reply().code for _ in range(95)), {250}, "95 NOOPs after the message")
        mwtest.eq(c.cmd("QUIT").code, 221, "QUIT")
        c.close()
        mwtest.eq(len(be.wait_messages(1, 10)), 1, "messages at the backend")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
