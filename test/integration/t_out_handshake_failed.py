#!/usr/bin/python3
"""Outbound, a destination whose TLS cannot be used: aiosmtpd offers
STARTTLS but its OpenSSL speaks at most TLS 1.1, which mailward never
accepts, so the handshake fails. One transaction, two domains:

  bob@enc.test   (encrypt)  RCPT 451 4.7.5 validation-failure,
                            alert tls_handshake_failed
  carol@may.test (may)      RCPT 250: delivered in clear text on a new
                            connection (opportunistic TLS falls back, as
                            Postfix's "may" does), reported as
                            tls_handshake_failed, severity info, action "relayed"

The destination gets the message once, not over TLS, for carol@may.test
alone, on its second connection; it never sees bob@enc.test, and no
envelope went over the connection whose handshake failed."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

MSG = outcheck.message("handshake fails")


def main():
    with mwtest.Env("out_handshake_failed") as env:
        net = env.netns()
        dest = net.dest("192.0.2.10", tls="starttls", cert=net.cert("mx.dest.test"),
                        tls_max="TLSv1.1")
        mw = net.outbound(policy="enc.test encrypt\nmay.test may\n", default_level="encrypt")
        t = outcheck.one_transaction(net, ["bob@enc.test", "carol@may.test"], MSG)
        mwtest.eq(t["mail"][0], 250, "MAIL")
        mwtest.check_deferred(t["rcpt"][0], "validation-failure", "RCPT bob@enc.test")
        mwtest.eq(t["rcpt"][1][0], 250, "RCPT carol@may.test (%r)" % (t["rcpt"][1],))
        mwtest.eq(t["data"][0], 250, "end of data")

        msgs = dest.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the destination")
        mwtest.eq(msgs[0].rcpt_tos, ["carol@may.test"], "recipients at the destination")
        mwtest.eq(msgs[0].data, MSG, "message bytes at the destination")
        mwtest.eq(msgs[0].tls, False, "the may recipient went in clear text")
        dest.check_idle()
        cmds = dest.command_strings()
        print("destination saw: %r" % cmds)
        mwtest.check(not [c for c in cmds if "enc.test" in c.lower()],
                     "the destination saw bob@enc.test: %r" % cmds)
        verbs = [c.split(" ")[0].upper() for c in cmds]
        first_mail = verbs.index("MAIL")
        mwtest.check(verbs.index("STARTTLS") < first_mail and verbs.count("EHLO") >= 2,
                     "no STARTTLS attempt before a reconnect: %r" % cmds)
        mwtest.eq(dest.sessions, 2, "connections to the destination (failed TLS, then clear)")

        got = mwtest.wait_alerts(mw, event="tls_handshake_failed", domain="enc.test")
        mwtest.eq(len(got), 1, "tls_handshake_failed alerts (all: %r)" % mw.alerts())
        print("alert: %r" % got[0])
        mwtest.eq(got[0].get("action"), "deferred", "alert action")
        may = mwtest.wait_alerts(mw, domain="may.test")
        mwtest.check(len(may) == 1 and may[0].get("event") == "tls_handshake_failed"
                     and may[0].get("severity") == "info"
                     and may[0].get("action") == "relayed",
                     "may.test not reported as an info tls_handshake_failed, relayed: %r" % may)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
