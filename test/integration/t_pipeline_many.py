#!/usr/bin/python3
"""More pipelined commands than mailward keeps in flight (100): every one
gets its reply, and the message goes through.

The backend is Postfix's smtp-sink (real software; it offers PIPELINING
and answers a batch at once). The client is a raw socket with Python's
ssl, since the point is one write holding many commands:

  1. Before TLS, 110 NOOPs in one write: 110 replies (mailward answers
     them itself). Not many more: beyond 100, each counts as an error
     (the junk command limit, t_junk_limit), and at 20 the session ends.
  2. After STARTTLS, MAIL, 150 RCPTs and DATA in one write: 152 replies,
     DATA's 354 last; then the message, and its 250 from the backend.
  3. The same with 300 RCPTs and the message in the same write as DATA
     (which RFC 2920 does not allow a client, but mailward must not lose:
     it holds what follows DATA until the 354 has come).
"""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

MSG = b"From: a@s.example\r\nTo: u0@r.example\r\nSubject: many\r\n\r\nhi\r\n.\r\n"


def replies(f, n):
    """n replies read from the file f; a multiline one counts once."""
    out = []
    while len(out) < n:
        line = f.readline()
        if not line:
            mwtest.fail("connection closed after %d of %d replies: %r"
                        % (len(out), n, out[-3:]))
        if line[3:4] == b" ":
            out.append(line)
    return out


def main():
    with mwtest.Env("pipeline_many") as env:
        sink = env.smtp_sink()
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % sink.port,
                                              "timeout_command": "20"}})
        ctx = mwtest.ssl_client_context(env)
        for n, with_msg in ((150, False), (300, True)):
            s = socket.create_connection(("127.0.0.1", mw.port("smtp")), timeout=15)
            f = s.makefile("rb")
            replies(f, 1)
            s.sendall(b"EHLO client.test\r\n" + b"NOOP\r\n" * 110)
            got = replies(f, 111)
            mwtest.eq([r[:3] for r in got[1:]], [b"250"] * 110, "replies to 110 NOOPs")
            s.sendall(b"STARTTLS\r\n")
            mwtest.check(replies(f, 1)[0].startswith(b"220 "), "STARTTLS")
            t = ctx.wrap_socket(s, server_hostname="localhost")
            tf = t.makefile("rb")
            t.sendall(b"EHLO client.test\r\n")
            replies(tf, 1)
            batch = b"MAIL FROM:<a@s.example>\r\n" + b"".join(
                b"RCPT TO:<u%d@r.example>\r\n" % i for i in range(n)) + b"DATA\r\n"
            t.sendall(batch + (MSG if with_msg else b""))
            got = replies(tf, n + 2)
            print("%d RCPTs: %d replies, the last %r" % (n, len(got), got[-1]))
            mwtest.eq([r[:3] for r in got], [b"250"] * (n + 1) + [b"354"],
                      "replies to MAIL, %d RCPTs and DATA" % n)
            if not with_msg:
                t.sendall(MSG)
            end = replies(tf, 1)[0]
            mwtest.check(end.startswith(b"250 "), "end of data: %r" % end)
            t.sendall(b"QUIT\r\n")
            mwtest.check(replies(tf, 1)[0].startswith(b"221 "), "QUIT")
            t.close()
        mwtest.eq(mw.log().count("event=timeout"), 0, "sessions that timed out")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
