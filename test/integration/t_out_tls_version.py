#!/usr/bin/python3
"""Outbound, a destination that can only do TLS 1.2 (aiosmtpd with STARTTLS,
OpenSSL capped at TLSv1.2), one transaction with recipients of two domains:

  bob@new.test   (encrypt protocols=>=TLSv1.3)  RCPT 451 4.7.5 validation-failure,
                                                alert tls_version_too_low
  carol@any.test (encrypt)                      RCPT 250

The message reaches the destination once, over TLS 1.2, for carol@any.test
alone; the destination never sees bob@new.test."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

MSG = outcheck.message("TLS 1.2 only")


def main():
    with mwtest.Env("out_tls_version") as env:
        net = env.netns()
        dest = net.dest("192.0.2.10", tls="starttls", cert=net.cert("mx.dest.test"),
                        tls_max="TLSv1.2")
        mw = net.outbound(policy="new.test encrypt protocols=>=TLSv1.3\nany.test encrypt\n",
                          default_level="encrypt")
        t = outcheck.one_transaction(net, ["bob@new.test", "carol@any.test"], MSG)
        mwtest.eq(t["mail"][0], 250, "MAIL")
        mwtest.check_deferred(t["rcpt"][0], "validation-failure", "RCPT bob@new.test")
        mwtest.eq(t["rcpt"][1][0], 250, "RCPT carol@any.test (%r)" % (t["rcpt"][1],))
        mwtest.eq(t["data"][0], 250, "end of data")

        msgs = dest.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the destination")
        mwtest.eq(msgs[0].rcpt_tos, ["carol@any.test"], "recipients at the destination")
        mwtest.eq(msgs[0].data, MSG, "message bytes at the destination")
        mwtest.eq(msgs[0].tls, True, "delivered over TLS")
        dest.check_idle()
        cmds = dest.command_strings()
        mwtest.check(not [c for c in cmds if "new.test" in c.lower()],
                     "the destination saw bob@new.test: %r" % cmds)

        got = mwtest.wait_alerts(mw, event="tls_version_too_low", domain="new.test")
        mwtest.eq(len(got), 1, "tls_version_too_low alerts (all: %r)" % mw.alerts())
        print("alert: %r" % got[0])
        mwtest.check("TLSv1.2" in got[0].get("observed", ""),
                     "alert does not say TLSv1.2 was seen: %r" % got[0])
        mwtest.eq(got[0].get("expected"), "encrypt (policy)", "alert expected")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
