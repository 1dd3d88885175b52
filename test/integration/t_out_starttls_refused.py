#!/usr/bin/python3
"""Outbound, STARTTLS answered with 454: the stripper fixture at
192.0.2.10:25 answers mailward's STARTTLS with "454 4.7.0 TLS not available"
itself (the real server behind it, aiosmtpd with STARTTLS, never sees the
command). For encrypt.test (policy encrypt): RCPT 451 4.7.5
starttls-not-supported, alert starttls_refused, MAIL answered by mailward,
DATA 554, no envelope byte reaches the server."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402


def main():
    with mwtest.Env("out_starttls_refused") as env:
        net = env.netns()
        dest = net.dest("192.0.2.10", tls="starttls", listen="127.0.0.1", port=2525)
        strip = net.stripper("192.0.2.10", 25, to=("127.0.0.1", 2525), mode="refuse")
        mw = net.outbound(policy="encrypt.test encrypt\n", default_level="encrypt")
        t, a = outcheck.expect_refused(net, mw, dest, "bob@encrypt.test",
                                       "starttls-not-supported", "starttls_refused",
                                       "encrypt (policy)")
        print("observed: %r" % a.get("observed"))
        mwtest.check("refuse" in strip.events(), "the fixture never refused STARTTLS: %r"
                     % strip.events())
        dest.check_idle()
        cmds = dest.command_strings()
        print("server saw: %r" % cmds)
        mwtest.check("STARTTLS" not in [c.upper() for c in cmds],
                     "the server saw STARTTLS although the fixture answered it")
        mwtest.eq(mwtest.find_alerts(mw, event="starttls_stripped"), [],
                  "starttls_stripped alerts (STARTTLS was offered)")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
