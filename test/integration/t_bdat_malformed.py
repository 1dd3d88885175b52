#!/usr/bin/python3
"""A BDAT command whose chunk size cannot be read ends the session: its
chunk is never read as commands.

The bytes after "BDAT size" are the chunk, whatever they hold. When the
BDAT line cannot be read (a syntax error, a tab after the verb or blanks
before it, where Postfix still sees BDAT and mailward no command, a NUL,
a bare CR or LF, a line too long),
the size is unknown, and reading on would take the chunk for commands: a
message inside it would be sent to the backend as if the client had
meant it. mailward, like Postfix, answers 521 and hangs up.

Against real Postfix (CHUNKING): each client pipelines, in one write, a
good message (MAIL, RCPT, BDAT LAST) and a second transaction whose BDAT
line is malformed, with a whole SMTP transaction for carol inside its
chunk. The good message's three 250s come first (nothing owed is lost),
then the 521, then the connection closes; the good message is in user's
mailbox and carol never gets the one inside the chunk. Refused before TLS
with a size that cannot be read, the 530 is the last reply: no second
reply to the same command.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

USER = "user@test.example"
CAROL = "carol@test.example"
# A whole transaction, as a client that reads the chunk as commands sees it.
INNER = (b"RSET\r\nMAIL FROM:<smuggled@sender.test>\r\nRCPT TO:<%s>\r\nDATA\r\n"
         b"Subject: smuggled\r\n\r\nfrom inside a chunk\r\n.\r\n" % CAROL.encode())

# (what, the BDAT line with its terminator, the reply expected)
BAD = (
    ("syntax", b"BDAT 1x%d LAST\r\n" % len(INNER), "521 5.5.4"),
    ("LAST misspelt", b"BDAT %d LASTX\r\n" % len(INNER), "521 5.5.4"),
    ("size too large", b"BDAT 99999999999999999999999 LAST\r\n", "521 5.5.4"),
    ("no size", b"BDAT\r\n", "521 5.5.4"),
    ("tab", b"BDAT\t%d LAST\r\n" % len(INNER), "521 5.5.4"),
    ("blank before BDAT", b" BDAT %d LAST\r\n" % len(INNER), "521 5.5.4"),
    ("tab before BDAT", b"\tBDAT %d LAST\r\n" % len(INNER), "521 5.5.4"),
    ("five blanks before BDAT", b"     BDAT %d LAST\r\n" % len(INNER), "521 5.5.4"),
    ("NUL", b"BDAT %d\x00 LAST\r\n" % len(INNER), "521 5.5.2"),
    ("bare CR", b"BDAT %d\r LAST\r\n" % len(INNER), "521 5.5.2"),
    ("bare LF", b"BDAT %d LAST\n" % len(INNER), "521 5.5.2"),
    ("after a bare LF", b"NOOP\nBDAT %d LAST\r\n" % len(INNER), "521 5.5.2"),
    ("longer than max_line", b"BDAT %d%s LAST\r\n" % (len(INNER), b" " * 600), "521 5.5.2"),
    ("longer than any line", b"BDAT %d%s LAST\r\n" % (len(INNER), b" " * 20000), "521 5.5.2"),
)


def good_message(n):
    return (b"From: a@sender.test\r\nTo: %s\r\nSubject: good %d\r\n\r\ngood\r\n"
            % (USER.encode(), n))


def main():
    with mwtest.Env("bdat_malformed") as env:
        pf = env.postfix(identity="xclient", main={
            "virtual_mailbox_maps":
                "inline:{ user@test.example=user/, carol@test.example=carol/ }"})
        mw = env.mailward(listeners={
            "smtp": {"forward": "127.0.0.1:%d" % pf.port, "client_identity": "xclient"},
            "plain": {"accept_tls": "starttls", "require_tls": "yes",
                      "forward": "127.0.0.1:%d" % pf.port, "client_identity": "xclient"}})
        # The capabilities come from mailward's probe of Postfix at start.
        mwtest.wait_for(lambda: "disconnect from" in pf.maillog(), 15)

        for n, (what, line, want) in enumerate(BAD):
            c, ehlo = mwtest.raw_tls_client(env, mw.port("smtp"))
            mwtest.check("CHUNKING" in ehlo.lines, "%s: CHUNKING not offered: %r" % (what, ehlo))
            msg = good_message(n)
            c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n%s"
                   b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<%s>\r\n%s%sQUIT\r\n"
                   % (USER.encode(), len(msg), msg, USER.encode(), line, INNER))
            got = [c.reply(15) for _ in range(6)]
            print("%s: %r" % (what, got))
            mwtest.eq([r.code for r in got[:5]], [250, 250, 250, 250, 250],
                      "%s: the replies owed before the bad BDAT" % what)
            mwtest.check(got[5].code is not None and got[5].raw[-1].startswith(want),
                         "%s: the bad BDAT answered %r, not %s" % (what, got[5], want))
            closed, rest = c.wait_closed(10)
            mwtest.check(closed and rest == b"",
                         "%s: after the 521: closed %s, then %r" % (what, closed, rest))
            c.close()

        # Before TLS: the 530 ends the session, with no 521 behind it.
        c = Client(mw.port("plain"))
        mwtest.eq(c.reply().code, 220, "plain: greeting")
        mwtest.eq(c.cmd("EHLO client.test").code, 250, "plain: EHLO")
        c.send(b"BDAT 1x LAST\r\n" + INNER)
        r = c.reply(10)
        closed, rest = c.wait_closed(10)
        print("plaintext: %r, closed %s, then %r" % (r, closed, rest))
        mwtest.eq(r.code, 530, "plaintext BDAT")
        mwtest.check(closed and rest == b"", "plaintext: after the 530: closed %s, then %r"
                     % (closed, rest))
        c.close()

        # Every good message arrives; then a last one for carol, so that a
        # smuggled message, queued before it, would have arrived too.
        got = pf.wait_mailbox(USER, len(BAD), timeout=30)
        mwtest.eq(len(got), len(BAD), "good messages delivered")
        c, _ = mwtest.raw_tls_client(env, mw.port("smtp"))
        last = b"Subject: last\r\n\r\nlast\r\n"
        c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n%s"
               % (CAROL.encode(), len(last), last))
        mwtest.eq([c.reply(15).code for _ in range(3)], [250, 250, 250], "the last message")
        c.cmd("QUIT")
        c.close()
        carol = pf.wait_mailbox(CAROL, 1, timeout=30)
        time.sleep(1)
        carol = pf.wait_mailbox(CAROL, 1, timeout=1)
        print("carol's mailbox: %r" % ([m[-60:] for m in carol],))
        mwtest.eq(len(carol), 1, "messages for carol")
        mwtest.check(b"smuggled" not in carol[0], "carol got the message inside a chunk")

        log = mw.log()
        mwtest.check(log.count("event=bdat_unreadable") == len(BAD) + 1,
                     "bdat_unreadable logged %d times" % log.count("event=bdat_unreadable"))
        mwtest.check("reason=bdat_unreadable" in log, "no session ended with that reason")
    print("t_bdat_malformed: ok")


if __name__ == "__main__":
    main()
