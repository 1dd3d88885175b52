#!/usr/bin/python3
"""A MAIL pipelined behind the end of a message (RFC 2920) opens a
transaction that the reply to that message must not close.

Real Postfix is the backend (client_identity = xclient) with
smtpd_timeout = 2s, so it says 421 and hangs up after 2 s of silence.

  1. DATA: the message text, its final dot and the next MAIL FROM in one
     write (both replies 250), then RCPT, then a pause of 3 s: the client
     gets 421 4.4.2 at once and the session ends, as when the MAIL was
     sent on its own (t_backend_idle). Were the transaction forgotten
     (the MAIL counted as ended with the message before it), mailward
     would quietly make a new backend session, and the client's next
     command (DATA) would get Postfix's "503 5.5.1 need RCPT", which a
     client takes as permanent.
  2. The same with BDAT LAST and the MAIL in one write.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

RCPT = "user@test.example"
HDR = b"From: a@sender.test\r\nTo: user@test.example\r\nSubject: pipelined\r\n\r\n"



def after_pause(c, what):
    """RCPT taken, then silence until Postfix's timeout: what the client sees."""
    mwtest.eq(c.cmd("RCPT TO:<%s>" % RCPT).code, 250, "%s: RCPT" % what)
    try:
        r = c.reply(6)
    except OSError:
        r = None
    print("%s: after Postfix's timeout: %r" % (what, r))
    if r is None:
        # Nothing said: the client goes on, and hears what a new session says.
        r = c.cmd("DATA")
        print("%s: DATA then: %r" % (what, r))
    mwtest.check(r is not None and r.starts("421 4.4.2"),
                 "%s: not told of the closed session: %r" % (what, r))
    closed, _ = c.wait_closed(5)
    mwtest.check(closed, "%s: session not closed after the 421" % what)
    c.close()


def main():
    with mwtest.Env("backend_idle_pipelined") as env:
        pf = env.postfix(identity="xclient", smtpd_options={"smtpd_timeout": "2s"})
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % pf.port,
                                              "client_identity": "xclient"}})

        # 1. DATA, the dot and the next MAIL in one write.
        c, _ = mwtest.raw_tls_client(env, mw.port("smtp"))
        for line, code in (("MAIL FROM:<a@sender.test>", 250),
                           ("RCPT TO:<%s>" % RCPT, 250), ("DATA", 354)):
            mwtest.eq(c.cmd(line).code, code, "DATA: %r" % line)
        c.send(HDR + b"one\r\n.\r\nMAIL FROM:<a@sender.test>\r\n")
        mwtest.eq(c.reply().code, 250, "DATA: the message")
        mwtest.eq(c.reply().code, 250, "DATA: the pipelined MAIL")
        after_pause(c, "DATA")
        mwtest.eq(len(pf.wait_mailbox(RCPT, 1, 20)), 1, "messages delivered")

        # 2. BDAT LAST and the next MAIL in one write.
        c, ehlo = mwtest.raw_tls_client(env, mw.port("smtp"))
        mwtest.check("CHUNKING" in ehlo.text, "no CHUNKING offered: %r" % ehlo)
        for line, code in (("MAIL FROM:<a@sender.test>", 250),
                           ("RCPT TO:<%s>" % RCPT, 250)):
            mwtest.eq(c.cmd(line).code, code, "BDAT: %r" % line)
        body = HDR + b"two\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(body) + body + b"MAIL FROM:<a@sender.test>\r\n")
        mwtest.eq(c.reply().code, 250, "BDAT: the message")
        mwtest.eq(c.reply().code, 250, "BDAT: the pipelined MAIL")
        after_pause(c, "BDAT")
        mwtest.eq(len(pf.wait_mailbox(RCPT, 2, 20)), 2, "messages delivered")
        time.sleep(1)
        mwtest.eq(len(pf.wait_mailbox(RCPT, 3, 1)), 2, "messages delivered")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
