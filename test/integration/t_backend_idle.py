#!/usr/bin/python3
"""The backend ends its session on its own (its idle timeout), and what the
client is told stays true.

Real Postfix is the backend (client_identity = xclient) with
smtpd_timeout = 2s, so it says 421 and hangs up after 2 s of silence.

  1. Between transactions: MAIL, RSET, a pause of 3 s, then a message: it
     is delivered (mailward makes a new backend session at the next command,
     event=backend_closed_idle).
  2. Inside one: MAIL and RCPT taken, a pause of 3 s: the client gets
     421 4.4.2 at once and the session ends (Postfix itself would say 421;
     a DATA sent on to a new session would get "503 need RCPT", which the
     client would take as permanent). Nothing is delivered.
  3. After a login: aiosmtpd with AUTH (its own) as the backend, a message
     with a bare LF (550: mailward drops the backend session to discard it),
     then MAIL: 421 4.7.0, not an anonymous new backend session.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

RCPT = "user@test.example"
MSG = b"From: a@sender.test\r\nTo: user@test.example\r\nSubject: idle\r\n\r\nhi\r\n.\r\n"



def main():
    with mwtest.Env("backend_idle") as env:
        pf = env.postfix(identity="xclient", smtpd_options={"smtpd_timeout": "2s"})
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % pf.port,
                                              "client_identity": "xclient"}})

        # 1. Between transactions (MAIL and RSET: mailward connects to the
        # backend when a command needs it).
        c = mwtest.raw_tls_client(env, mw.port("smtp"))[0]
        mwtest.eq(c.cmd("MAIL FROM:<a@sender.test>").code, 250, "MAIL")
        mwtest.eq(c.cmd("RSET").code, 250, "RSET")
        time.sleep(3)
        for line, code in (("MAIL FROM:<a@sender.test>", 250), ("RCPT TO:<%s>" % RCPT, 250),
                           ("DATA", 354), (MSG, 250)):
            r = c.cmd(line)
            mwtest.eq(r.code, code, "after an idle close, %r: %r" % (line[:20], r))
        c.cmd("QUIT")
        c.close()
        mwtest.eq(len(pf.wait_mailbox(RCPT, 1, 20)), 1, "messages delivered")
        mwtest.check("event=backend_closed_idle" in mw.log(), "no backend_closed_idle line")

        # 2. Inside a transaction.
        c = mwtest.raw_tls_client(env, mw.port("smtp"))[0]
        mwtest.eq(c.cmd("MAIL FROM:<a@sender.test>").code, 250, "MAIL")
        mwtest.eq(c.cmd("RCPT TO:<%s>" % RCPT).code, 250, "RCPT")
        r = c.reply(10)
        print("inside a transaction, after Postfix's timeout: %r" % r)
        mwtest.check(r.starts("421 4.4.2"), "not told of the closed session: %r" % r)
        closed, _ = c.wait_closed(5)
        mwtest.check(closed, "session not closed after the 421")
        c.close()
        mwtest.check(re.search(r"event=backend_closed_idle in=transaction", mw.log()),
                     "no backend_closed_idle in=transaction line")
        time.sleep(1)
        mwtest.eq(len(pf.wait_mailbox(RCPT, 2, 1)), 1, "messages delivered")
        mw.stop()

        # 3. After a login.
        be = env.recorder(authenticator=mwtest.login_checker("user", "secret"),
                          auth_require_tls=False)
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port}})
        c = mwtest.raw_tls_client(env, mw.port("smtp"))[0]
        r = c.cmd("AUTH PLAIN AHVzZXIAc2VjcmV0")
        mwtest.eq(r.code, 235, "AUTH: %r" % r)
        for line, code in (("MAIL FROM:<a@sender.test>", 250), ("RCPT TO:<b@rcpt.test>", 250),
                           ("DATA", 354), (b"Subject: bare\r\n\r\nbare\nLF\r\n.\r\n", 550)):
            r = c.cmd(line)
            mwtest.eq(r.code, code, "%r: %r" % (line[:20], r))
        r = c.cmd("MAIL FROM:<a@sender.test>")
        print("MAIL after the backend session was dropped: %r" % r)
        mwtest.check(r.starts("421 4.7.0"), "MAIL after a login and a dropped session: %r" % r)
        c.close()
        mwtest.eq(be.messages, [], "messages at the backend")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
