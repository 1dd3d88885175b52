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

        # Every alert about it is a critical starttls_injection for the server.
        got = mwtest.wait_alerts(mw, event="starttls_injection")
        print("alerts: %r" % mw.alerts())
        mwtest.check(got, "no starttls_injection alert (all: %r)" % mw.alerts())
        mwtest.eq([a.get("event") for a in mw.alerts()], ["starttls_injection"] * len(got),
                  "alert events")
        for a in got:
            mwtest.eq(a.get("server"), outcheck.SERVER, "alert server")
            mwtest.eq(a.get("severity"), "critical", "alert severity")
        # When the client got as far as a RCPT: its verdict.
        rcpts = [r for r in replies if r[0] == "transaction"]
        if rcpts:
            t = rcpts[0][1]
            mwtest.eq(t["mail"], (250, "2.1.0 Ok"), "MAIL held and answered by mailward")
            mwtest.eq(t["rcpt"][0][0], 451, "RCPT after an injection")
            mwtest.check(t["rcpt"][0][1].startswith("4.7.5"), "RCPT reply %r" % (t["rcpt"][0],))
            mwtest.eq(t["data"], (554, "5.5.1 Error: no valid recipients"), "DATA")
            v = mwtest.find_alerts(mw, domain="encrypt.test")
            mwtest.eq(len(v), 1, "alerts for encrypt.test")
            mwtest.eq(v[0].get("event"), "starttls_injection", "event of the RCPT's alert")
            mwtest.eq(v[0].get("expected"), "encrypt (policy)", "expected of the RCPT's alert")
            mwtest.eq(v[0].get("server"), outcheck.SERVER, "server of the RCPT's alert")
        dest.check_idle()
        mwtest.eq(dest.envelope_commands(), [], "envelope commands at the server")
        mwtest.eq(dest.messages, [], "messages at the server")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
