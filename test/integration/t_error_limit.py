#!/usr/bin/python3
"""A client that only makes errors is hung up on, and cannot flood the
alerts.

mailward (require_tls, aiosmtpd recording backend, alert_command = a script
that appends its stdin to a file, after waiting, in step 3, until the test
lets it go):

  1. Plaintext: EHLO, then 30 MAILs in one write. 20 get 530 5.7.0, the
     next 421 4.7.0 "too many errors" (as Postfix's smtpd_hard_error_limit,
     20), then the connection is closed; event=too_many_errors is logged,
     and the session wrote one plaintext_refused alert, not 20.
  2. After STARTTLS: 15 over-long lines (500 each, mailward's own), a
     message (delivered: the count starts again, "without delivering
     mail" as Postfix says), 19 more: all 500; the 20th since the message
     is answered, the next command gets 421. Then 19 errors, a message with
     a 20th error and NOOP in the write of its dot: the message's 250 is
     not replaced by the 421 (the client would send it again): 250, 500,
     250, and the message is delivered.
  3. The alert command's queue: while 4 runs wait, 70 sessions with a
     plaintext MAIL each fill the 64 places; then a STARTTLS with a command
     pipelined behind it (starttls_injection, critical). It takes the
     place of the oldest warning (alert_command_dropped
     reason=queue_full_for_critical) and goes ahead of every warning that
     waits: once the runs are let go, it is the first the command
     receives after those four, or near it (four run at once).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

MSG = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: limit\r\n\r\nhi\r\n.\r\n"


def codes(c, n):
    return [c.reply().code for _ in range(n)]


def main():
    with mwtest.Env("error_limit") as env:
        be = env.recorder()
        out = env.path("alerts.out")
        release = env.path("release")
        cmd = env.path("alert.sh")
        with open(cmd, "w") as f:
            f.write("#!/bin/sh\nwhile [ ! -e %s ]; do sleep 0.05; done\ncat >> %s\n"
                    % (release, out))
        os.chmod(cmd, 0o755)
        open(release, "w").close()  # held back only in step 3
        d = os.path.dirname(out)
        if mwtest.is_root():
            mwtest._chown(d, "nobody")
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port,
                                              "max_per_client": "200"}},
                          globals={"alert_command": cmd})
        port = mw.port("smtp")

        # 1. Plaintext errors.
        c = Client(port)
        c.reply()
        c.cmd("EHLO client.test")
        c.send(b"MAIL FROM:<a@sender.test>\r\n" * 30)
        got = codes(c, 21)
        print("30 MAILs before TLS: %r" % got)
        mwtest.eq(got, [530] * 20 + [421], "replies")
        closed, rest = c.wait_closed(5)
        mwtest.eq((closed, rest), (True, b""), "closed after the 421")
        c.close()
        mwtest.check(mwtest.wait_for(lambda: "event=too_many_errors errors=20" in mw.log(),
                                     5), "no event=too_many_errors line")
        refused = [a for a in mw.alerts() if a.get("event") == "plaintext_refused"]
        mwtest.eq(len(refused), 1, "plaintext_refused alerts of the session")

        # 2. The count starts again after a message.
        c = Client(port)
        c.reply()
        c.cmd("EHLO client.test")
        c.starttls(mwtest.ssl_client_context(env))
        c.cmd("EHLO client.test")
        long_line = b"NOOP " + b"x" * 2000 + b"\r\n"
        c.send(long_line * 15)
        mwtest.eq(codes(c, 15), [500] * 15, "over-long lines")
        for line, code in (("MAIL FROM:<a@sender.test>", 250), ("RCPT TO:<b@rcpt.test>", 250),
                           ("DATA", 354), (MSG, 250)):
            mwtest.eq(c.cmd(line).code, code, "%r" % line[:20])
        c.send(long_line * 20)
        mwtest.eq(codes(c, 20), [500] * 20, "20 over-long lines after the message")
        r = c.cmd("NOOP")
        mwtest.check(r.starts("421 4.7.0") and "too many errors" in str(r),
                     "the command after 20 errors: %r" % r)
        c.close()
        mwtest.eq(len(be.wait_messages(1, 10)), 1, "messages at the backend")

        # The 20th error pipelined behind a message's dot: the message's own
        # answer comes first (the client would send it again after a 421).
        c = Client(port)
        c.reply()
        c.cmd("EHLO client.test")
        c.starttls(mwtest.ssl_client_context(env))
        c.cmd("EHLO client.test")
        c.send(long_line * 19)
        mwtest.eq(codes(c, 19), [500] * 19, "19 over-long lines")
        for line, code in (("MAIL FROM:<a@sender.test>", 250), ("RCPT TO:<b@rcpt.test>", 250),
                           ("DATA", 354)):
            mwtest.eq(c.cmd(line).code, code, "%r" % line)
        c.send(MSG + long_line + b"NOOP\r\n")
        got = codes(c, 3)
        print("a message, an error and NOOP in one write: %r" % got)
        mwtest.eq(got, [250, 500, 250], "the message's answer, the error, NOOP")
        c.close()
        mwtest.eq(len(be.wait_messages(2, 10)), 2, "messages at the backend")

        # 3. A critical alert is not dropped for warnings, nor left behind them.
        def received():
            try:
                with open(out) as f:
                    return [json.loads(x)["event"] for x in f if x.strip()]
            except FileNotFoundError:
                return []
        mwtest.check(mwtest.wait_for(lambda: len(received()) == len(mw.alerts()), 10),
                     "the alerts of steps 1 and 2 did not all reach the command")
        before = len(received())
        os.unlink(release)
        for _ in range(70):
            c = Client(port)
            c.reply()
            c.cmd("EHLO client.test")
            mwtest.eq(c.cmd("MAIL FROM:<a@sender.test>").code, 530, "plaintext MAIL")
            c.cmd("QUIT")
            c.close()
        mwtest.check(mwtest.wait_for(lambda: "reason=queue_full " in mw.log(), 10),
                     "the queue did not fill:\n%s" % mw.log()[-2000:])
        c = Client(port)
        c.reply()
        c.cmd("EHLO client.test")
        c.send(b"STARTTLS\r\nMAIL FROM:<a@sender.test>\r\n")
        mwtest.check(mwtest.wait_for(lambda: "reason=queue_full_for_critical" in mw.log(), 10),
                     "no room made for the critical alert:\n%s" % mw.log()[-2000:])
        c.close()
        open(release, "w").close()

        mwtest.check(mwtest.wait_for(lambda: "starttls_injection" in received(), 20),
                     "the command never received starttls_injection: %r" % received())
        got = received()[before:]
        print("alert command received %d alerts, starttls_injection at %d"
              % (len(got), got.index("starttls_injection") + 1))
        # 4 held runs, then the critical alert is the first to start.
        mwtest.check(got.index("starttls_injection") < 2 * 4,
                     "the critical alert waited behind the queued warnings: %r" % got)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
