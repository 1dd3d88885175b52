#!/usr/bin/python3
"""Outbound: a transaction ends with its data, so the next one may follow in
the same write (RFC 2920 lets message content begin a group).

The destination is aiosmtpd with STARTTLS at 192.0.2.10:25; encrypt.test
is `encrypt`. In one session:

  1. MAIL, RCPT, DATA; then the message, its dot, and MAIL, RCPT and DATA
     of a second message in one write: 250, 250, 250, 354 (not "503 nested
     MAIL", which an MTA takes as permanent); then the second message and
     QUIT. Both messages are delivered, each to its recipient.
  2. A message with a bare LF (550 5.6.0: mailward drops it, and the
     judged connection with it), then a new transaction: MAIL is held
     (250) and RCPT gets 421 4.4.2 (a new connection would have to be
     judged again; the MTA comes back), where MAIL got "503 nested MAIL"
     before. In a new session that message
     is delivered.
"""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402


def replies(f, n):
    out = []
    while len(out) < n:
        line = f.readline()
        mwtest.check(line, "closed after %r" % out)
        if line[3:4] == b" ":
            out.append(int(line[:3]))
    return out


def main():
    with mwtest.Env("out_pipeline_after_data") as env:
        net = env.netns()
        dest = net.dest("192.0.2.10", tls="starttls")
        net.outbound(policy="encrypt.test encrypt\n", default_level="encrypt")
        with net.inside():
            s = socket.create_connection(("192.0.2.10", 25), timeout=20)
        f = s.makefile("rb")
        replies(f, 1)
        s.sendall(b"EHLO client.sender.test\r\n")
        replies(f, 1)

        # 1. A transaction pipelined behind the dot.
        s.sendall(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@encrypt.test>\r\nDATA\r\n")
        mwtest.eq(replies(f, 3), [250, 250, 354], "first envelope")
        s.sendall(b"Subject: one\r\n\r\nfirst\r\n.\r\n"
                  b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<c@encrypt.test>\r\nDATA\r\n")
        got = replies(f, 4)
        print("the dot, then MAIL, RCPT, DATA: %r" % got)
        mwtest.eq(got, [250, 250, 250, 354], "first message and second envelope")
        s.sendall(b"Subject: two\r\n\r\nsecond\r\n.\r\n")
        mwtest.eq(replies(f, 1), [250], "second message")

        # 2. After a message refused for a bare LF.
        s.sendall(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<d@encrypt.test>\r\nDATA\r\n")
        mwtest.eq(replies(f, 3), [250, 250, 354], "third envelope")
        s.sendall(b"Subject: bare\r\n\r\nbare\nLF\r\n.\r\n")
        mwtest.eq(replies(f, 1), [550], "a message with a bare LF")
        s.sendall(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<e@encrypt.test>\r\n")
        mwtest.eq(replies(f, 1), [250], "MAIL after the refused message (held)")
        line = f.readline()
        print("RCPT after the refused message: %r" % line)
        mwtest.check(line.startswith(b"421 4.4.2 "), "RCPT after the refused message: %r" % line)
        mwtest.eq(f.readline(), b"", "the session ended")
        s.close()
        with net.inside():
            s = socket.create_connection(("192.0.2.10", 25), timeout=20)
        f = s.makefile("rb")
        replies(f, 1)
        s.sendall(b"EHLO client.sender.test\r\nMAIL FROM:<a@sender.test>\r\n"
                  b"RCPT TO:<e@encrypt.test>\r\nDATA\r\n")
        mwtest.eq(replies(f, 4), [250, 250, 250, 354], "a new session")
        s.sendall(b"Subject: four\r\n\r\nfourth\r\n.\r\nQUIT\r\n")
        mwtest.eq(replies(f, 2), [250, 221], "fourth message and QUIT")
        s.close()

        msgs = dest.wait_messages(3, 10)
        dest.wait_idle()
        got = [(m.rcpt_tos, m.data.split(b"\r\n\r\n")[1]) for m in dest.messages]
        print("delivered: %r" % got)
        mwtest.eq(got, [(["b@encrypt.test"], b"first\r\n"), (["c@encrypt.test"], b"second\r\n"),
                        (["e@encrypt.test"], b"fourth\r\n")], "messages at the destination")
        mwtest.check(all(m.tls for m in msgs), "a message went in clear text")
    print("ok")


if __name__ == "__main__":
    main()
