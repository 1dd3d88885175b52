#!/usr/bin/python3
"""Outbound: a destination that knows only HELO (its EHLO gets 502; aiosmtpd
made so, a fixture) is reached with HELO, and judged as a server without
STARTTLS.

  1. may.test is `may`: EHLO from the client gets 250 (mailward sent HELO
     after the 502, event=ehlo_refused), and the message is delivered, in
     clear text as `may` allows; the destination saw EHLO, then HELO.
  2. enc.test is `encrypt`: RCPT gets 451 4.7.5, and the destination sees
     no envelope.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

MSG = outcheck.message("helo only")


def main():
    with mwtest.Env("out_helo_only") as env:
        net = env.netns()
        dest = net.dest("192.0.2.10", tls=None, no_ehlo=True)
        mw = net.outbound(policy="may.test may\nenc.test encrypt\n", default_level="encrypt")

        t = outcheck.one_transaction(net, ["bob@may.test"], MSG)
        mwtest.eq((t["mail"][0], t["rcpt"][0][0], t["data"][0]), (250, 250, 250),
                  "MAIL, RCPT and the message to may.test")
        msgs = dest.wait_messages(1, 10)
        mwtest.eq([m.rcpt_tos for m in msgs], [["bob@may.test"]], "delivered")
        mwtest.eq(msgs[0].tls, False, "in clear text, as may allows")
        cmds = dest.command_strings()
        print("destination saw: %r" % cmds)
        mwtest.eq([c.split(" ")[0].upper() for c in cmds[:2]], ["EHLO", "HELO"],
                  "EHLO, then HELO")
        mwtest.check("event=ehlo_refused" in mw.log(), "no event=ehlo_refused line")

        n = len(dest.command_strings())
        t = outcheck.one_transaction(net, ["bob@enc.test"], MSG)
        mwtest.eq(t["rcpt"][0][0], 451, "RCPT to enc.test: %r" % (t["rcpt"],))
        dest.wait_idle()
        later = dest.command_strings()[n:]
        mwtest.check(not [c for c in later if c.upper().startswith(("MAIL", "RCPT"))],
                     "the destination saw an envelope for enc.test: %r" % later)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
