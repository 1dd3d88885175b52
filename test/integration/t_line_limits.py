#!/usr/bin/python3
"""Line limits (invariant 4).

Command lines: 512 octets including CRLF are accepted, 513 get
"500 5.5.2" and the session goes on; with max_line = 1024 a 1000-octet
command is accepted.  DATA text lines: 1000 octets including CRLF are
delivered byte-exact, 1001 get "500 5.5.2" after the end of data and the
message is not delivered; the next message in the session is, and so is
one with a 998-character line that begins with a dot (1001 octets as the
client sends it: the doubled dot does not count, RFC 5321 4.5.3.1.6).
NOOP (padded with blanks) is used for the command lines because mailward
answers it itself before a backend is connected, so the backend's own
limits play no part.

EHLO names: 255 characters are taken, 256 get "501 5.5.4" (a domain has
255 at most), also with max_line raised: a 255-character name reaches the
backend in XCLIENT's HELO= (xtext, up to three times as long), and the
message is delivered. (A 600-character name used to abort mailward when it
built that XCLIENT line.)

A NUL byte in a command line gets "500 5.5.2" and the line goes no
further (an EHLO name with one used to be cut short at it); the session
goes on, and XCLIENT names the EHLO name given before.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

NAME = "mw.test.example"


def noop_of(total):
    """'NOOP' and blanks, CRLF: exactly `total` octets."""
    line = "NOOP" + " " * (total - 6) + "\r\n"
    assert len(line) == total, (len(line), total)
    return line


def name_of(n):
    """A domain-like name of n characters (labels of up to 60)."""
    labels, left = [], n
    while left > 0:
        k = min(60, left)
        if left - k == 1:      # never leave a 1-char remainder (would be a lone dot)
            k -= 1
        labels.append("a" * (k - 1) + ("." if left - k > 0 else "a"))
        left -= k
    name = "".join(labels)
    assert len(name) == n, (len(name), n)
    return name


def msg_with_line(total, tag):
    """A message with one text line of exactly `total` octets incl. CRLF."""
    long_line = b"L" * (total - 2) + b"\r\n"
    return (b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: %s\r\n\r\n" % tag.encode()
            + long_line + b"short line\r\n")


def session(env, port):
    c = Client(port)
    mwtest.eq(c.reply().code, 220, "greeting")
    return c


def tls_session(env, port):
    c = session(env, port)
    c.cmd("EHLO client.test")
    c.starttls(mwtest.ssl_client_context(env))
    mwtest.eq(c.cmd("EHLO client.test").code, 250, "EHLO after TLS")
    return c


def send_msg(c, data):
    for line, code in (("MAIL FROM:<a@sender.test>", 250), ("RCPT TO:<b@rcpt.test>", 250),
                       ("DATA", 354)):
        r = c.cmd(line)
        mwtest.check(r.code == code, "%s answered %r" % (line, r))
    c.send(data + b".\r\n")
    return c.reply(15)


def main():
    failures = []
    with mwtest.Env("line_limits") as env:
        be = env.recorder()
        bx = env.recorder(xclient=True)
        fwd = "127.0.0.1:%d" % be.port
        mw = env.mailward(listeners={
            "smtp": {"accept_tls": "starttls", "hostname": NAME, "forward": fwd},
            "wide": {"accept_tls": "starttls", "hostname": NAME, "forward": fwd,
                     "max_line": "1024"},
            "xcl": {"accept_tls": "starttls", "hostname": NAME, "max_line": "1024",
                    "forward": "127.0.0.1:%d" % bx.port, "client_identity": "xclient"},
        })

        # EHLO names: 255 characters at most.
        c = tls_session(env, mw.port("xcl"))
        for n in (256, 600):
            r = c.cmd("EHLO " + name_of(n))
            print("%d-character EHLO name: %r" % (n, r))
            if not r.starts("501 5.5.4"):
                failures.append("%d-character EHLO name: expected 501 5.5.4, got %r" % (n, r))
        longest = name_of(255)
        if c.cmd("EHLO " + longest).code != 250:
            failures.append("255-character EHLO name refused")
        r = send_msg(c, msg_with_line(10, "long name"))
        if r.code != 250:
            failures.append("message after a 255-character EHLO name: %r" % r)
        c.close()
        got = bx.wait_messages(1, 10)
        if len(got) != 1 or (got[0].xclient or {}).get("HELO") != longest:
            failures.append("XCLIENT HELO for the 255-character name: %r"
                            % [m.xclient for m in got])

        # NUL in a command line: refused, never passed on.
        c = tls_session(env, mw.port("xcl"))
        for line in ("EHLO n\x00ul.client.test", "MAIL FROM:<a\x00b@sender.test>",
                     "NOOP \x00"):
            r = c.cmd(line)
            print("%r: %r" % (line, r))
            if not r.starts("500 5.5.2"):
                failures.append("%r: expected 500 5.5.2, got %r" % (line, r))
        r = send_msg(c, msg_with_line(10, "after NUL"))
        if r.code != 250:
            failures.append("message after the lines with NUL: %r" % r)
        c.close()
        got = bx.wait_messages(2, 10)
        if len(got) != 2 or (got[1].xclient or {}).get("HELO") != "client.test":
            failures.append("XCLIENT HELO after an EHLO with NUL: %r"
                            % [m.xclient for m in got])
        if any(b"\x00" in cmd for cmd in bx.commands):
            failures.append("a NUL reached the backend: %r"
                            % [cmd for cmd in bx.commands if b"\x00" in cmd])

        c = session(env, mw.port("smtp"))
        r = c.cmd(noop_of(512).rstrip("\r\n"))
        print("512-octet NOOP: %r" % r)
        if r.code != 250:
            failures.append("512-octet command line: expected 250, got %r" % r)
        r = c.cmd(noop_of(513).rstrip("\r\n"))
        print("513-octet NOOP: %r" % r)
        if not r.starts("500 5.5.2"):
            failures.append("513-octet command line: expected 500 5.5.2, got %r" % r)
        r = c.cmd("NOOP")
        if r.code != 250:
            failures.append("session did not go on after an over-long line: NOOP got %r" % r)
        # Far longer than any buffer: still one 500, still a live session.
        r = c.cmd("HELO " + "b" * 100000)
        print("100000-octet line: %r" % r)
        if not r.starts("500 5.5.2"):
            failures.append("100000-octet command line: expected 500 5.5.2, got %r" % r)
        extra = c.pending(0.5)
        if extra:
            failures.append("more than one reply to one over-long line: %r" % extra)
        r = c.cmd("NOOP")
        if r.code != 250:
            failures.append("after a 100000-octet line NOOP got %r" % r)
        c.close()

        c = session(env, mw.port("wide"))
        r = c.cmd(noop_of(1000).rstrip("\r\n"))
        print("1000-octet NOOP with max_line = 1024: %r" % r)
        if r.code != 250:
            failures.append("max_line = 1024, 1000-octet command: expected 250, got %r" % r)
        r = c.cmd(noop_of(1025).rstrip("\r\n"))
        if not r.starts("500 5.5.2"):
            failures.append("max_line = 1024, 1025-octet command: expected 500 5.5.2, got %r" % r)
        c.close()

        c = tls_session(env, mw.port("smtp"))
        ok_msg = msg_with_line(1000, "line 1000")
        r = send_msg(c, ok_msg)
        print("1000-octet text line: %r" % r)
        if r.code != 250:
            failures.append("1000-octet text line: expected 250, got %r" % r)
        got = be.wait_messages(1, 10)
        if len(got) != 1 or got[0].data != ok_msg:
            failures.append("1000-octet text line: backend got %r" % [m.data[:60] for m in got])

        bad = msg_with_line(1001, "line 1001")
        r = send_msg(c, bad)
        print("1001-octet text line: %r" % r)
        if not r.starts("500 5.5.2"):
            failures.append("1001-octet text line: expected 500 5.5.2 after end of data, got %r" % r)
        extra = c.pending(0.5)
        if extra:
            failures.append("1001-octet text line: extra replies %r" % extra)
        # A 998-character line that begins with a dot is 1001 octets once
        # the client doubles the dot: the doubled dot is not the line's.
        dotted = (b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: dotted\r\n\r\n"
                  b"." + b"D" * 997 + b"\r\n")
        r = send_msg(c, dotted.replace(b"\r\n.", b"\r\n.."))
        print("998-character line with a leading dot (1001 octets stuffed): %r" % r)
        if r.code != 250:
            failures.append("a 998-character line with a leading dot: expected 250, got %r" % r)
        follow = msg_with_line(10, "follow-up")
        r = send_msg(c, follow)
        if r.code != 250:
            failures.append("message after a refused one got %r" % r)
        c.cmd("QUIT")
        c.close()
        be.wait_messages(3, 10)
        time.sleep(0.5)
        datas = [m.data for m in be.messages]
        if any(b"line 1001" in d for d in datas):
            failures.append("the message with a 1001-octet line was delivered")
        if datas[1:] != [dotted, follow]:
            failures.append("dotted and follow-up messages: backend has %r"
                            % [d[:60] for d in datas])

        for f in failures:
            print("FAIL: " + f)
        mwtest.check(not failures, "%d line limit checks failed" % len(failures))
        mw.stop()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
