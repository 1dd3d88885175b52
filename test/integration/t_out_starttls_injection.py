#!/usr/bin/python3
"""Outbound, bytes injected after the server's 220 to STARTTLS: the stripper
fixture at 192.0.2.10:25 passes mailward's STARTTLS on to the real server
(aiosmtpd with STARTTLS) and sends "250 injected" right behind its
"220 Ready to start TLS", in the same segment. mailward must abort the
session (invariant 3) with alert starttls_injection: the client never gets
the injected reply nor a 250 to a RCPT or to the end of data, and the server
never sees MAIL, RCPT or DATA."""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402


def main():
    with mwtest.Env("out_starttls_injection") as env:
        net = env.netns()
        dest = net.dest("192.0.2.10", tls="starttls", listen="127.0.0.1", port=2525)
        strip = net.stripper("192.0.2.10", 25, to=("127.0.0.1", 2525), mode="inject")
        mw = net.outbound(policy="encrypt.test encrypt\n", default_level="encrypt")

        replies = []
        try:
            s = net.smtp("192.0.2.10")
            replies.append(("banner",) + s.banner)
            code, caps = s.ehlo()
            replies.append(("EHLO", code, caps))
            if code == 250:
                t = mwtest.transaction(s, outcheck.FROM, ["bob@encrypt.test"],
                                       outcheck.message("injection"))
                replies.append(("transaction", t))
                mwtest.check(t["rcpt"][0][0] != 250, "RCPT accepted after an injection: %r" % t)
                mwtest.check(t["data"][0] != 250, "message accepted after an injection: %r" % t)
            s.close()
        except (smtplib.SMTPServerDisconnected, ConnectionError) as e:
            replies.append(("disconnected", repr(e)))
        print("client saw: %r" % replies)
        mwtest.check("injected" not in repr(replies), "the injected reply reached the client")
        mwtest.check("inject" in strip.events(), "the fixture never injected: %r" % strip.events())

        got = mwtest.wait_alerts(mw, event="starttls_injection")
        mwtest.eq(len(got), 1, "starttls_injection alerts (all: %r)" % mw.alerts())
        a = got[0]
        print("alert: %r" % a)
        mwtest.eq(a.get("server"), outcheck.SERVER, "alert server")
        mwtest.eq(a.get("severity"), "critical", "alert severity")
        mwtest.eq(dest.envelope_commands(), [], "envelope commands at the server")
        mwtest.eq(dest.messages, [], "messages at the server")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
