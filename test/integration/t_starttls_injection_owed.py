#!/usr/bin/python3
"""Commands pipelined behind STARTTLS end the session with 554, but only
after the replies still owed: the answer to a message is never replaced.

A plaintext session (STARTTLS offered, not required) to aiosmtpd sends a
whole transaction, its message's final dot, then "STARTTLS" and a NOOP
behind it, in one write. mailward has sent the dot on when it reads the
STARTTLS, so the backend takes the message; the client must get the
backend's 250 to it, then the 554 and the close. A 554 in its place would
make the client bounce a message that was delivered. The backend holds
the message once, and the alert starttls_injection is written.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client, wait_alerts  # noqa: E402

MSG = b"Subject: owed\r\n\r\nthe reply to this one is owed\r\n"


def main():
    with mwtest.Env("starttls_injection_owed") as env:
        be = env.recorder()
        mw = env.mailward(listeners={"smtp": {"accept_tls": "starttls", "require_tls": "no",
                                              "forward": "127.0.0.1:%d" % be.port}})
        c = Client(mw.port("smtp"), timeout=15)
        mwtest.eq(c.reply().code, 220, "greeting")
        mwtest.eq(c.cmd("EHLO client.test").code, 250, "EHLO")
        c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@rcpt.test>\r\nDATA\r\n" + MSG +
               b".\r\nSTARTTLS\r\nNOOP\r\n")
        got = [c.reply(15) for _ in range(5)]
        closed, rest = c.wait_closed(10)
        c.close()
        print("replies: %r, closed %s, then %r" % (got, closed, rest))
        mwtest.eq([r.code for r in got[:4]], [250, 250, 354, 250],
                  "the replies owed before the STARTTLS")
        mwtest.check(got[4].starts("554 5.7.0"), "STARTTLS answered %r, not 554" % got[4])
        mwtest.check(closed and rest == b"", "after the 554: closed %s, then %r"
                     % (closed, rest))
        msgs = be.wait_messages(1, 10)
        mwtest.eq([m.data for m in msgs], [MSG], "messages at the backend")
        mwtest.check(wait_alerts(mw, "starttls_injection"), "no starttls_injection alert")
        mw.stop()
    print("t_starttls_injection_owed: ok")


if __name__ == "__main__":
    main()
