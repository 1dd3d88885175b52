#!/usr/bin/python3
"""Outbound: a destination that breaks off at the end of a message never has
it reported delivered (invariant 1); the sending Postfix keeps it queued.

The sending MTA is a real Postfix (net.sending_postfix(), relaying through
mailward's outbound listener); the destination is hostilemx (a test
fixture) at 192.0.2.10:25, which takes the envelope and DATA (354) and
then, one case each:

  closemid    closes its connection in the middle of the message text
  rstdot      reads the whole message and its dot, then resets the
              connection (TCP RST) before any reply
  mixed       answers the dot "250-2.0.0 queued" and then "550 5.0.0 ..."
              (a reply whose lines disagree is no reply)
  dot354      answers the dot "354 2.0.0 ok then": neither taken nor
              refused
  data250     answers DATA itself with "250 2.0.0 Ok" instead of 354

Postfix must log status=deferred with mailward's 421 4.4.2 in reply to the
end of DATA (to DATA for data250), never status=sent nor status=bounced,
and mailward must log no event=delivered. The last two were passed on as
they came, and Postfix bounced the message (5.0.0, "Protocol error"),
though the destination had neither taken nor refused it: invariant 1
wants a real SMTP error for every outcome but a 250.
"""

import os
import smtplib
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from hostilemx import HostileMX  # noqa: E402


def handler(case):
    def run(p):
        p.send(b"220 mx.dest.test ESMTP\r\n")
        p.ehlo([b"PIPELINING", b"8BITMIME"])
        if case == "data250":
            p.expect("MAIL")
            p.send(b"250 2.1.0 Ok\r\n")
            p.expect("RCPT")
            p.send(b"250 2.1.5 Ok\r\n")
            p.expect("DATA")
            p.send(b"250 2.0.0 Ok\r\n")
            p.wait_closed(30)
            return
        p.envelope()
        if case == "closemid":
            p.line()
            p.sock.close()
            return
        p.message()
        if case == "rstdot":
            p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            p.sock.close()
            return
        if case == "dot354":
            p.send(b"354 2.0.0 ok then\r\n")
        else:
            p.send(b"250-2.0.0 queued as 12345\r\n550 5.0.0 not after all\r\n")
        p.wait_closed(30)
    return run


def one_case(case):
    with mwtest.Env("out_dest_broken_final") as env:
        net = env.netns()
        HostileMX(net, handler(case))
        mw = net.outbound(policy="may.test may\n", default_level="may")
        pf = net.sending_postfix()
        with net.inside():
            s = smtplib.SMTP("127.0.0.1", pf.port, local_hostname="submit.sender.test",
                             timeout=30)
        s.sendmail("alice@sender.test", ["bob@may.test"],
                   b"Subject: broken final\r\n\r\n" + b"line of text\r\n" * 2000)
        s.quit()
        mwtest.check(pf.wait_maillog("status=", 60), "Postfix did not try to deliver:\n%s"
                     % pf.maillog())
        status = [ln[ln.find("status="):] for ln in pf.maillog().splitlines()
                  if "status=" in ln]
        print("%s: %r" % (case, status))
        mwtest.check(status and all(st.startswith("status=deferred") for st in status),
                     "%s: Postfix logged %r" % (case, status))
        to = "DATA command" if case == "data250" else "end of DATA"
        mwtest.check(any("421 4.4.2" in st and "in reply to " + to in st for st in status),
                     "%s: not 421 4.4.2 in reply to %s: %r" % (case, to, status))
        mwtest.check("event=delivered" not in mw.log(), "%s: mailward logged a delivery:\n%s"
                     % (case, mw.log()[-2000:]))


def main():
    for case in ("closemid", "rstdot", "mixed", "dot354", "data250"):
        one_case(case)
    print("ok")


if __name__ == "__main__":
    main()
