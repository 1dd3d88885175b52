#!/usr/bin/python3
"""A client that half-closes its connection after its final dot (no QUIT)
still gets the server's answer to its message, and the message is
delivered once.

Real Postfix is the backend (client_identity = xclient); the listener is in
monitor mode (require_tls = no), so the client is a plain socket that can
shutdown(SHUT_WR):

  1. MAIL, RCPT, DATA answered one by one, then the message and its dot,
     then the half-close: the client reads Postfix's 250 before mailward
     closes, and the message is in the mailbox (once: a client that got no
     answer would send it again).
  2. The whole transaction in one write, then the half-close: the same.
  3. A half-close in the middle of a message: closed, nothing delivered.
  4. A whole message by BDAT LAST, then a second transaction pipelined
     behind it whose chunk is cut short, then the half-close, in one
     write (MAIL and RCPT answered first, so that the backend session is
     up): the client still reads Postfix's 250 to the first message
     (delivered: without it the client would send it again), and the
     second is not delivered. Three times: the close used to race the
     backend's answer and win.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

RCPT = "user@test.example"


def main():
    with mwtest.Env("half_close") as env:
        pf = env.postfix(identity="xclient")
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % pf.port,
                                              "client_identity": "xclient",
                                              "require_tls": "no"}})
        envelope = b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<%s>\r\nDATA\r\n" % RCPT.encode()
        for n, variant in enumerate(("one by one", "one write"), 1):
            c = Client(mw.port("smtp"), timeout=20)
            c.reply()
            c.cmd("EHLO client.test")
            body = b"Subject: %s\r\n\r\nbody\r\n.\r\n" % variant.encode()
            if variant == "one by one":
                for line in envelope.split(b"\r\n")[:3]:
                    c.cmd(line + b"\r\n")
                c.send(body)
            else:
                c.send(envelope + body)
            c.sock.shutdown(socket.SHUT_WR)
            closed, data = c.wait_closed(15)
            c.close()
            print("%s: the client read %r" % (variant, data))
            mwtest.check(closed, "%s: not closed" % variant)
            last = data.rstrip(b"\r\n").split(b"\r\n")[-1]
            mwtest.check(last.startswith(b"250 ") and b"queued as" in last,
                         "%s: the answer to the message: %r" % (variant, data))
            got = pf.wait_mailbox(RCPT, n, 20)
            mwtest.eq(len(got), n, "%s: messages in the mailbox" % variant)

        c = Client(mw.port("smtp"), timeout=20)
        c.reply()
        c.cmd("EHLO client.test")
        for line in envelope.split(b"\r\n")[:3]:
            c.cmd(line + b"\r\n")
        c.send(b"Subject: cut\r\n\r\nno end")
        c.sock.shutdown(socket.SHUT_WR)
        closed, data = c.wait_closed(15)
        c.close()
        mwtest.check(closed, "not closed after a half-close in the middle of a message")
        time.sleep(1)
        mwtest.eq(len(pf.wait_mailbox(RCPT, 3, 2)), 2, "messages in the mailbox")

        for n in range(3):
            c = Client(mw.port("smtp"), timeout=20)
            c.reply()
            c.cmd("EHLO client.test")
            mwtest.eq([c.cmd(line + b"\r\n").code for line in envelope.split(b"\r\n")[:2]], [250, 250],
                      "BDAT %d: MAIL and RCPT" % n)
            first = b"Subject: chunked %d\r\n\r\nwhole\r\n" % n
            c.send(b"BDAT %d LAST\r\n%s%sBDAT 100\r\nSubject: cut short\r\n"
                   % (len(first), first, envelope[:envelope.index(b"DATA")]))
            c.sock.shutdown(socket.SHUT_WR)
            closed, data = c.wait_closed(15)
            c.close()
            print("BDAT %d: the client read %r" % (n, data))
            mwtest.check(closed, "BDAT %d: not closed" % n)
            mwtest.check(data.startswith(b"250 2.0.0 Ok") and b"queued as" in data.split(b"\r\n")[0],
                         "BDAT %d: no answer to the whole message: %r" % (n, data))
            got = pf.wait_mailbox(RCPT, 3 + n, 20)
            mwtest.eq(len(got), 3 + n, "BDAT %d: messages in the mailbox" % n)
        time.sleep(1)
        got = pf.wait_mailbox(RCPT, 6, 2)
        mwtest.eq(len(got), 5, "messages in the mailbox at the end")
        mwtest.check(not any(b"cut short" in m for m in got), "the message cut short was delivered")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
