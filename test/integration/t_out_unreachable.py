#!/usr/bin/python3
"""Outbound: the destination cannot be reached. The MTA must hear a 4xx
(it keeps the message queued), never a 5xx that bounces it, and the log
must name the destination, not "original-dst".

192.0.2.10 exists (its namespace) but nothing listens on port 25: the
connection is refused. smtplib connecting to 192.0.2.10:25 (taken by the
redirect) gets 421 4.4.2 as its greeting; mailward logs
event=backend_failed server=192.0.2.10:25."""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402


def main():
    with mwtest.Env("out_unreachable") as env:
        net = env.netns()
        mw = net.outbound(default_level="encrypt")
        try:
            s = net.smtp("192.0.2.10")
            got = s.banner
            s.close()
        except smtplib.SMTPConnectError as e:
            got = (e.smtp_code, e.smtp_error)
        print("greeting: %r" % (got,))
        mwtest.eq(got[0], 421, "greeting for an unreachable destination")
        mwtest.check(got[1].startswith(b"4.4.2 "), "not 4.4.2: %r" % (got,))
        mwtest.check(mwtest.wait_for(
            lambda: "event=backend_failed server=192.0.2.10:25 " in mw.log(), 5),
            "no backend_failed line naming the destination:\n%s" % mw.log()[-2000:])
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
