#!/usr/bin/python3
"""A client must not reach Postfix's XCLIENT (or any command) through a line
that mailward reads differently from Postfix.

Real Postfix is the backend, client_identity = xclient: Postfix trusts
XCLIENT from mailward's address, mynetworks is 10.9.9.0/24, SASL is on
(so XCLIENT LOGIN= would count as authenticated) and any relayed mail
would go to the discard transport. After STARTTLS, a client sends
commands with a tab or a blank where a space belongs, which Postfix splits
at and mailward must not forward:

  XCLIENT<TAB>ADDR=10.9.9.9, xclient<TAB>LOGIN=anyone, XCLIENT<VT>ADDR=...,
  XFORWARD<TAB>ADDR=..., " XCLIENT ADDR=...", "<TAB>EHLO x", DATA<TAB>,
  AUTH<TAB>PLAIN ...

Each gets 500 5.5.2 from mailward. Then MAIL and RCPT to
victim@outside.example still get Postfix's relay refusal (454/554), and
Postfix's log shows no XCLIENT or XFORWARD but mailward's own (one per
session), no sasl_username, and nothing relayed.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

LINES = [b"XCLIENT\tADDR=10.9.9.9 NAME=trusted.example", b"xclient\tLOGIN=anyone",
         b"XCLIENT\x0bADDR=10.9.9.9", b"XFORWARD\tADDR=10.9.9.9", b" XCLIENT ADDR=10.9.9.9",
         b"\tEHLO attacker.test", b"DATA\t", b"AUTH\tPLAIN AGFueW9uZQBzZWNyZXQ="]


def main():
    with mwtest.Env("xclient_smuggling") as env:
        pf = env.postfix(identity="xclient", main={
            "mynetworks": "10.9.9.0/24", "smtpd_sasl_auth_enable": "yes",
            "default_transport": "discard:relayed", "relay_transport": "discard:relayed"})
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % pf.port,
                                              "client_identity": "xclient"}})
        ctx = mwtest.ssl_client_context(env)
        c = Client(mw.port("smtp"))
        c.reply()
        c.cmd("EHLO attacker.test")
        c.starttls(ctx)
        c.cmd("EHLO attacker.test")
        for line in LINES:
            r = c.cmd(line + b"\r\n")
            print("%r: %r" % (line, r))
            mwtest.check(r.starts("500 5.5.2"), "%r answered %r" % (line, r))
        mwtest.eq(c.cmd("EHLO attacker.test").code, 250, "EHLO afterwards")
        mwtest.eq(c.cmd("MAIL FROM:<a@sender.test>").code, 250, "MAIL")
        r = c.cmd("RCPT TO:<victim@outside.example>")
        print("RCPT to outside.example: %r" % r)
        mwtest.check(r.code in (454, 554) and "Relay access denied" in str(r),
                     "relaying not refused: %r" % r)
        c.cmd("QUIT")
        c.close()
        # The session's summary line (mailward's probe has one of its own).
        mwtest.check(mwtest.wait_for(lambda: " xclient=" in pf.maillog(), 10),
                     "no session summary with xclient= in Postfix's log:\n%s" % pf.maillog())
        log = pf.maillog()
        mwtest.check("sasl_username" not in log, "Postfix took a login:\n%s" % log)
        mwtest.check("10.9.9.9" not in log and "trusted.example" not in log,
                     "the client's XCLIENT reached Postfix:\n%s" % log)
        mwtest.check(not re.search(r"status=sent|relay=none.*discard", log),
                     "Postfix relayed something:\n%s" % log)
        # Postfix's session summary counts XCLIENT commands ("xclient=0/1":
        # none of its statistics survive XCLIENT, one was given): mailward's.
        counts = re.findall(r" xclient=(?:\d+/)?(\d+) ", log)
        mwtest.eq(counts, ["1"], "XCLIENT commands in Postfix's session summary")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
