#!/usr/bin/python3
"""SMTP smuggling: only CRLF.CRLF ends DATA, bare LF/CR are refused, never
normalised, never passed on.

For each smuggling separator ("\\n.\\n", "\\r.\\r\\n", "\\n.\\r\\n", a bare LF
line, a bare CR in a line) followed by a smuggled MAIL/RCPT/DATA: the client
gets "550 5.6.0" after its real CRLF.CRLF (and no other reply), the backend
receives no message and never sees the smuggled commands; then a clean
message in the same session is delivered (mailward reconnects the backend),
byte-exact.  An over-long line ending in a bare LF leaves the message open
whether or not the LF comes in a read of its own.  A command line with a
bare LF gets "500 5.5.2".
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

NAME = "mw.test.example"

SMUGGLED = (b"MAIL FROM:<x@y.test>\r\nRCPT TO:<z@w.test>\r\nDATA\r\n"
            b"From: x@y.test\r\nSubject: smuggled\r\n\r\nevil\r\n")

CASES = [
    ("LF.LF", b"\n.\n"),
    ("CR.CRLF", b"\r.\r\n"),
    ("LF.CRLF", b"\n.\r\n"),
    ("bare LF line", b"\r\nsome text\nmore text\r\n"),
    ("bare CR in line", b"\r\nsome text\rmore text\r\n"),
]


def clean(n):
    return (b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: clean %d\r\n\r\n"
            b"clean body %d\r\n" % (n, n))


def session(env, mw):
    ctx = mwtest.ssl_client_context(env)
    c = Client(mw.port("smtp"))
    mwtest.eq(c.reply().code, 220, "greeting")
    c.cmd("EHLO client.test")
    c.starttls(ctx)
    mwtest.eq(c.cmd("EHLO client.test").code, 250, "EHLO after TLS")
    return c


def transaction(c, body, what):
    for line, code in (("MAIL FROM:<a@sender.test>", 250), ("RCPT TO:<b@rcpt.test>", 250),
                       ("DATA", 354)):
        r = c.cmd(line)
        mwtest.check(r.code == code, "%s: %s answered %r" % (what, line, r))
    c.send(body + b".\r\n")
    return c.reply(15)


def main():
    with mwtest.Env("smuggling") as env:
        be = env.recorder()
        mw = env.mailward(listeners={"smtp": {
            "accept_tls": "starttls", "hostname": NAME,
            "forward": "127.0.0.1:%d" % be.port}})
        failures = []
        for n, (what, sep) in enumerate(CASES, 1):
            before = len(be.messages)
            cmds_before = len(be.commands)
            c = session(env, mw)
            body = b"From: a@sender.test\r\nSubject: carrier %d\r\n\r\nhello" % n + sep + SMUGGLED
            r = transaction(c, body, what)
            extra = c.pending(1.0)
            print("%s: end of data -> %r, then %r" % (what, r, extra))
            if not r.starts("550 5.6.0"):
                failures.append("%s: expected 550 5.6.0 after the end of data, got %r" % (what, r))
            if extra:
                failures.append("%s: extra replies after the end of data (smuggled commands "
                                "answered?): %r" % (what, extra))
            r2 = transaction(c, clean(n), what + " (clean follow-up)")
            if r2.code != 250:
                failures.append("%s: clean message in the same session got %r" % (what, r2))
            c.cmd("QUIT")
            c.close()
            got = be.wait_messages(before + 1, 10)
            time.sleep(0.5)
            got = list(be.messages)
            new = got[before:]
            if len(new) != 1 or new[0].data != clean(n):
                failures.append("%s: backend received %r, expected exactly the clean message"
                                % (what, [m.data[:80] for m in new]))
            cmds = [x.decode("latin-1").rstrip("\r\n") for x in be.commands[cmds_before:]]
            cmds = [x for x in cmds if "y.test" in x or "w.test" in x]
            if cmds:
                failures.append("%s: smuggled commands reached the backend: %r" % (what, cmds))
            for m in new:
                if b"smuggled" in m.data or b"carrier" in m.data:
                    failures.append("%s: backend received %r" % (what, m.data[:120]))

        # An over-long line that ends in a bare LF, the LF in a read of its
        # own: where the message ends must not depend on where reads split.
        # Still open after "\n.\r\n"; the next CRLF.CRLF ends it (refused).
        for split in (False, True):
            what = "over-long line, bare LF%s" % (" in a read of its own" if split else "")
            c = session(env, mw)
            for line, code in (("MAIL FROM:<a@sender.test>", 250),
                               ("RCPT TO:<b@rcpt.test>", 250), ("DATA", 354)):
                mwtest.eq(c.cmd(line).code, code, "%s: %s" % (what, line))
            head = b"Subject: long\r\n\r\n" + b"a" * 1500
            tail = b"\n.\r\nRSET\r\nMAIL FROM:<x@y.test>\r\n"
            if split:
                c.send(head)
                time.sleep(0.5)
                c.send(tail)
            else:
                c.send(head + tail)
            extra = c.pending(1.0)
            print("%s: %r" % (what, extra))
            if extra:
                failures.append("%s: the message ended at \\n.\\r\\n: %r" % (what, extra))
            r = c.cmd(b"\r\n.\r\n")
            if not r.starts("500 5.5.2"):
                failures.append("%s: end of data: expected 500 5.5.2, got %r" % (what, r))
            c.close()

        # Bare LF in a command line: the line is everything up to CRLF, so one
        # line gets one 500 and nothing after the LF is executed either.
        cmds_before = len(be.commands)
        c = session(env, mw)
        c.send(b"MAIL FROM:<lf@bare.test>\nRCPT TO:<z@w.test>\r\n")
        r = c.reply()
        print("bare LF command: %r" % r)
        if not r.starts("500 5.5.2"):
            failures.append("bare LF in a command line: expected 500 5.5.2, got %r" % r)
        extra = c.pending(1.0)
        if extra:
            failures.append("bare LF in a command line: extra replies %r" % extra)
        c.close()
        time.sleep(0.5)
        new_cmds = [x.decode("latin-1").rstrip("\r\n") for x in be.commands[cmds_before:]]
        if any("bare.test" in x or "w.test" in x for x in new_cmds):
            failures.append("(part of) a command line with a bare LF reached the backend: %r"
                            % new_cmds)

        for f in failures:
            print("FAIL: " + f)
        mwtest.check(not failures, "%d smuggling checks failed" % len(failures))
        mw.stop()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
