#!/usr/bin/python3
"""Outbound: a recipient domain is judged by its policy however it is
written. The destination (aiosmtpd with STARTTLS at 192.0.2.10:25) has a
certificate from a CA nobody trusts; the policy says secure for
secure.test and its subdomains and for the IDN bücher.test (written as its
A-label, xn--bcher-kva.test); the default level is `may`, which that
destination passes.

  bob@secure.test.          (a trailing dot)             451 4.7.5
  bob@mail_x.secure.test    (an underscore)              451 4.7.5
  bob@Bücher.test, in UTF-8 (SMTPUTF8; its A-label)      451 4.7.5
  bob@a..secure.test        (cannot be read as a domain) 501 5.1.3
  carol@other.test          (the default, may)           250

Before, the first three were judged by the default level and went to the
untrusted server. The message reaches the destination once, for
carol@other.test alone, and the destination never sees any of the others.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

MSG = outcheck.message("domains")
REFUSED = ["bob@secure.test.", "bob@mail_x.secure.test", "bob@B\u00fccher.test"]


def main():
    with mwtest.Env("out_domains") as env:
        net = env.netns()
        dest = net.dest("192.0.2.10", tls="starttls",
                        cert=net.cert("mx.secure.test", kind="untrusted"))
        net.outbound(policy="secure.test secure\n.secure.test secure\n"
                            "xn--bcher-kva.test secure\n", default_level="may")
        s = net.smtp("192.0.2.10")
        mwtest.eq(s.ehlo()[0], 250, "EHLO")
        mwtest.check(s.has_extn("smtputf8"), "SMTPUTF8 not offered")
        mwtest.eq(s.docmd("MAIL FROM:<%s> SMTPUTF8" % outcheck.FROM)[0], 250, "MAIL")
        s.command_encoding = "utf-8"
        for rcpt in REFUSED:
            code, text = s.docmd("RCPT TO:<%s>" % rcpt)
            print("RCPT %s: %d %s" % (rcpt, code, text.decode()))
            mwtest.eq(code, 451, "RCPT %s" % rcpt)
            mwtest.check(text.startswith(b"4.7.5 "), "RCPT %s: %r" % (rcpt, text))
        code, text = s.docmd("RCPT TO:<bob@a..secure.test>")
        print("RCPT bob@a..secure.test: %d %s" % (code, text.decode()))
        mwtest.eq((code, text[:6]), (501, b"5.1.3 "), "RCPT bob@a..secure.test")
        mwtest.eq(s.docmd("RCPT TO:<carol@other.test>")[0], 250, "RCPT carol@other.test")
        mwtest.eq(s.docmd("DATA")[0], 354, "DATA")
        s.send(MSG + b".\r\n")
        mwtest.eq(s.getreply()[0], 250, "end of data")
        s.quit()

        msgs = dest.wait_messages(1, 10)
        mwtest.eq([m.rcpt_tos for m in msgs], [["carol@other.test"]], "recipients delivered")
        dest.check_idle()
        cmds = dest.command_strings()
        print("destination saw: %r" % cmds)
        mwtest.check(not [c for c in cmds if "bob@" in c.lower()],
                     "the destination saw a refused recipient: %r" % cmds)
    print("ok")


if __name__ == "__main__":
    main()
