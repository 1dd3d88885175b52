#!/usr/bin/python3
"""A client that mailward told CHUNKING never gets a permanent error for
using BDAT because the capabilities mailward holds changed meanwhile.

mailward answers EHLO from the backend's capabilities as it last saw
them, and every backend session's EHLO reply updates them. With
client_identity = xclient, that reply is the one the backend gives the
client named: real Postfix with smtpd_discard_ehlo_keyword_address_maps
drops CHUNKING for 127.0.0.2 only.

  B (127.0.0.1) connects and is told CHUNKING. A (127.0.0.2) sends MAIL:
  A's backend session learns capabilities without CHUNKING. B then
  pipelines MAIL, RCPT and BDAT LAST before its own backend session
  exists. mailward no longer sees CHUNKING and does not send the chunk on;
  it must say so with a 4xx (B tries again later, reading the EHLO reply
  anew), never "502 5.5.1 BDAT not supported", a permanent error that
  would bounce a message B was invited to send that way. Nothing of it is
  delivered, and the session goes on: B's next message, with DATA, is.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

RCPT = "user@test.example"



def main():
    with mwtest.Env("chunking_per_client") as env:
        cidr = env.path("discard.cidr")
        with open(cidr, "w") as f:
            f.write("127.0.0.2/32 chunking\n")
        pf = env.postfix(identity="xclient",
                         main={"smtpd_discard_ehlo_keyword_address_maps": "cidr:" + cidr})
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % pf.port,
                                              "client_identity": "xclient"}})
        b, ehlo = mwtest.raw_tls_client(env, mw.port("smtp"), source="127.0.0.1")
        mwtest.check("CHUNKING" in ehlo.lines, "B not told CHUNKING: %r" % ehlo)
        a, _ = mwtest.raw_tls_client(env, mw.port("smtp"), source="127.0.0.2")
        mwtest.eq(a.cmd("MAIL FROM:<a@sender.test>").code, 250, "A: MAIL")
        mwtest.check(pf.wait_maillog("discarding EHLO keywords: CHUNKING"),
                     "Postfix did not drop CHUNKING for A")

        body = b"From: b@sender.test\r\nSubject: bdat\r\n\r\nfrom B\r\n"
        b.send(b"MAIL FROM:<b@sender.test>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n"
               % (RCPT.encode(), len(body)) + body)
        got = [b.reply() for _ in range(3)]
        print("B: MAIL, RCPT, BDAT LAST in one write: %r" % got)
        mwtest.eq([r.code for r in got[:2]], [250, 250], "B: MAIL, RCPT")
        mwtest.check(got[2].code is not None and got[2].code // 100 == 4,
                     "B: BDAT it was offered refused other than for now: %r" % got[2])
        mwtest.eq(b.cmd("RSET").code, 250, "B: RSET")
        for line, code in (("MAIL FROM:<b@sender.test>", 250), ("RCPT TO:<%s>" % RCPT, 250),
                           ("DATA", 354), (body.replace(b"bdat", b"data") + b".\r\n", 250)):
            r = b.cmd(line)
            mwtest.eq(r.code, code, "B: %r: %r" % (line[:20], r))
        b.cmd("QUIT")
        a.cmd("QUIT")
        b.close()
        a.close()
        got = pf.wait_mailbox(RCPT, 1, 20)
        mwtest.eq(len(got), 1, "messages delivered")
        mwtest.check(b"Subject: data" in got[0], "the message delivered: %r" % got[0][:200])
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
