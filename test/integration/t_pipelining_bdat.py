#!/usr/bin/python3
"""Pipelining and CHUNKING after TLS.

1. MAIL, RCPT, VRFY, RCPT, NOOP, DATA in one send (the first commands that
   need the backend, so they wait for its connection and are forwarded in
   order): the replies come back in order (aiosmtpd answers VRFY with 252,
   NOOP is answered by mailward behind the backend's replies), and the
   message is delivered to both recipients, byte-exact.
2. BDAT against real Postfix (aiosmtpd has no CHUNKING): "BDAT n" chunks and
   "BDAT 0 LAST" sent raw over TLS; the message lands in the Maildir as sent
   (Postfix prepends its own headers and stores LF line ends).
3. A whole session in one send, the message right behind DATA (before the
   354), then the client shuts down its sending side (a plaintext listener:
   a TLS socket in Python cannot half-close): mailward reads ahead while it
   waits for the 354, and the end of input it reads there must not cut the
   session short: every reply comes back and the message is delivered.
"""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client, ehlo_keywords  # noqa: E402

NAME = "mw.test.example"
MSG = (b"From: a@sender.test\r\nTo: b@rcpt.test, c@rcpt.test\r\nSubject: pipelined\r\n\r\n"
       b"pipelined body\r\n")



def replies_are(c, codes, what, failures):
    """Read len(codes) replies; True if their codes are codes, else a failure."""
    replies = [c.reply(15) for _ in codes]
    print("%s: %r" % (what, replies))
    if [r.code for r in replies] != codes:
        failures.append("%s: replies %r, expected codes %r" % (what, replies, codes))
        return False
    return True


def pipelining(env, failures):
    be = env.recorder()
    mw = env.mailward(listeners={"smtp": {"accept_tls": "starttls", "hostname": NAME,
                                          "forward": "127.0.0.1:%d" % be.port}})
    # aiosmtpd does not advertise PIPELINING (it handles it all the same), so
    # mailward, which shows the backend's capabilities, does not either; the
    # advertisement is checked against Postfix below.
    c, ehlo = mwtest.raw_tls_client(env, mw.port("smtp"))
    c.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@rcpt.test>\r\nVRFY someone\r\n"
           b"RCPT TO:<c@rcpt.test>\r\nNOOP\r\nDATA\r\n")
    if not replies_are(c, [250, 250, 252, 250, 250, 354], "pipelined", failures):
        c.close()
        mw.stop()
        return
    c.send(MSG + b".\r\n")
    r = c.reply(15)
    if r.code != 250:
        failures.append("end of pipelined message: %r" % r)
    c.cmd("QUIT")
    c.close()
    msgs = be.wait_messages(1, 10)
    if len(msgs) != 1:
        failures.append("pipelined: backend got %d messages" % len(msgs))
    else:
        m = msgs[0]
        if m.data != MSG:
            failures.append("pipelined: message bytes differ: %r" % m.data)
        if list(m.rcpt_tos) != ["b@rcpt.test", "c@rcpt.test"]:
            failures.append("pipelined: recipients %r" % m.rcpt_tos)
        if m.mail_from != "a@sender.test":
            failures.append("pipelined: MAIL FROM %r" % m.mail_from)
    mw.stop()


def bdat(env, failures):
    # mwtest's regexp virtual_mailbox_maps uses $1, which Postfix refuses for
    # virtual(8) ("regular expression substitution is not allowed"); name the
    # one mailbox this test uses instead.
    pf = env.postfix(identity="xclient",
                     main={"virtual_mailbox_maps": "inline:{ user@test.example=user/ }"})
    mw = env.mailward(listeners={"pf": {"accept_tls": "starttls", "hostname": NAME,
                                        "client_identity": "xclient",
                                        "forward": "127.0.0.1:%d" % pf.port}})
    # The capabilities offered come from mailward's probe of the backend at
    # start: wait until Postfix has seen it end, or a client right behind the
    # start gets mailward's defaults (no CHUNKING).
    mwtest.wait_for(lambda: "disconnect from" in pf.maillog(), 15)
    c, ehlo = mwtest.raw_tls_client(env, mw.port("pf"))
    if "PIPELINING" not in ehlo_keywords(ehlo):
        failures.append("PIPELINING of Postfix not advertised after TLS: %r" % ehlo)
    if "CHUNKING" not in ehlo_keywords(ehlo):
        failures.append("CHUNKING of Postfix not advertised after TLS: %r" % ehlo)
        c.close()
        mw.stop()
        return
    rcpt = "user@test.example"
    # Date and Message-ID given, so that Postfix adds headers only above ours.
    head = (b"From: a@sender.test\r\nTo: %s\r\nSubject: chunked\r\nMessage-ID: <bdat@test>\r\n"
            b"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\n" % rcpt.encode())
    body = b"hello\r\n.line with a leading dot, not stuffed in BDAT\r\nbye\r\n"
    for line, code in (("MAIL FROM:<a@sender.test>", 250), ("RCPT TO:<%s>" % rcpt, 250)):
        r = c.cmd(line)
        if r.code != code:
            failures.append("BDAT: %s got %r" % (line, r))
    r1 = c.cmd(b"BDAT %d\r\n" % len(head) + head)
    r2 = c.cmd(b"BDAT %d\r\n" % len(body) + body)
    r3 = c.cmd("BDAT 0 LAST")
    print("BDAT replies: %r %r %r" % (r1, r2, r3))
    for r in (r1, r2, r3):
        if r.code != 250:
            failures.append("BDAT chunk answered %r" % r)
    c.cmd("QUIT")
    c.close()
    if r3.code == 250:
        got = pf.wait_mailbox(rcpt, 1)
        print("Maildir: %r" % ([g[-200:] for g in got],))
        want = (head + body).replace(b"\r\n", b"\n")
        texts = got
        if not texts or not texts[0].endswith(want):
            failures.append("BDAT: Maildir message does not end with the bytes sent: %r"
                            % (texts[0][-300:] if texts else texts))
    mw.stop()


def half_close(env, failures):
    be = env.recorder()
    mw = env.mailward(listeners={"plain": {"accept_tls": "none", "require_tls": "no",
                                           "hostname": NAME,
                                           "forward": "127.0.0.1:%d" % be.port}})
    c = Client(mw.port("plain"))
    mwtest.eq(c.reply().code, 220, "greeting")
    c.send(b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<b@rcpt.test>\r\n"
           b"DATA\r\n" + MSG + b".\r\nQUIT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    replies_are(c, [250, 250, 250, 354, 250, 221], "half-closed session", failures)
    c.close()
    msgs = be.wait_messages(1, 10)
    if len(msgs) != 1 or msgs[0].data != MSG:
        failures.append("half-closed session: backend got %r" % [m.data for m in msgs])
    mw.stop()


def main():
    failures = []
    with mwtest.Env("pipelining_bdat") as env:
        pipelining(env, failures)
        bdat(env, failures)
        half_close(env, failures)
        for f in failures:
            print("FAIL: " + f)
        mwtest.check(not failures, "%d pipelining/BDAT checks failed" % len(failures))
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
