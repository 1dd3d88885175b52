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
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
