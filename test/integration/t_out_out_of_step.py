#!/usr/bin/python3
"""Outbound: a client out of step sends its message as if DATA had been
taken; none of it reaches a server in clear text.

The destination (aiosmtpd at 192.0.2.10:25) offers no STARTTLS; the
recipient's domain is `encrypt`. The client writes EHLO, MAIL, RCPT, DATA,
the message and its dot, and QUIT at once, without waiting for replies:
RCPT gets 451 4.7.5, DATA 554, and each line of the message is answered
by mailward (500) instead of being passed on as a command. The
destination sees EHLO (to learn that it has no STARTTLS) and nothing of
the envelope or the message.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

SECRET = b"the secret line"


def main():
    with mwtest.Env("out_out_of_step") as env:
        net = env.netns()
        dest = net.dest("192.0.2.10", tls=None)
        net.outbound(policy="enc.test encrypt\n", default_level="encrypt")
        s = net.smtp("192.0.2.10")
        s.send(b"EHLO client.sender.test\r\nMAIL FROM:<a@sender.test>\r\n"
               b"RCPT TO:<b@enc.test>\r\nDATA\r\nSubject: out of step\r\n\r\n" + SECRET +
               b"\r\nsecret\r\n.\r\nQUIT\r\n")
        codes = []
        while True:
            code, text = s.getreply()
            codes.append(code)
            if code == 221:
                break
        print("replies: %r" % codes)
        mwtest.eq(codes[:4], [250, 250, 451, 554], "EHLO, MAIL, RCPT, DATA")
        mwtest.eq(codes[4:], [500] * 5 + [221], "the message's lines, and QUIT")
        s.close()
        dest.wait_idle()
        cmds = dest.command_strings()
        print("destination saw: %r" % cmds)
        mwtest.eq([c for c in cmds if c.split(" ")[0].upper() not in ("EHLO", "QUIT")], [],
                  "commands at the destination besides EHLO and QUIT")
    print("ok")


if __name__ == "__main__":
    main()
