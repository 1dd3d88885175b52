#!/usr/bin/python3
"""Outbound, one transaction with recipients of two domains, judged each: the
destination (aiosmtpd with STARTTLS at 192.0.2.10:25) has a certificate for
mx.other.test only.

  bob@secure.test    (secure: no certificate name matches) RCPT 451 4.7.5
                     certificate-host-mismatch, alert certificate_invalid
  carol@encrypt.test (encrypt: TLS is enough)              RCPT 250

The failing recipient comes first, so the held MAIL is answered by mailward
and sent only with the passing RCPT. The message reaches the destination
once, over TLS, for carol@encrypt.test alone; the destination never sees
bob@secure.test."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

MSG = outcheck.message("two domains")


def main():
    with mwtest.Env("out_multi_rcpt") as env:
        net = env.netns()
        cert = net.cert("mx.other.test")
        dest = net.dest("192.0.2.10", tls="starttls", cert=cert)
        mw = net.outbound(policy="secure.test secure\nencrypt.test encrypt\n",
                          default_level="encrypt")
        t = outcheck.one_transaction(net, ["bob@secure.test", "carol@encrypt.test"], MSG)
        mwtest.eq(t["mail"][0], 250, "MAIL")
        mwtest.check_deferred(t["rcpt"][0], "certificate-host-mismatch",
                              "RCPT bob@secure.test")
        mwtest.eq(t["rcpt"][1][0], 250, "RCPT carol@encrypt.test (%r)" % (t["rcpt"][1],))
        mwtest.eq(t["data"][0], 250, "end of data")

        msgs = dest.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the destination")
        m = msgs[0]
        mwtest.eq(m.rcpt_tos, ["carol@encrypt.test"], "recipients at the destination")
        mwtest.eq(m.mail_from, outcheck.FROM, "MAIL FROM at the destination")
        mwtest.eq(m.data, MSG, "message bytes at the destination")
        mwtest.eq(m.tls, True, "delivered over TLS")
        dest.check_idle()
        cmds = dest.command_strings()
        print("destination saw: %r" % cmds)
        mwtest.check(not [c for c in cmds if "secure.test" in c.lower()],
                     "the destination saw bob@secure.test: %r" % cmds)
        mwtest.eq(len([c for c in cmds if c.upper().startswith("MAIL ")]), 1,
                  "MAIL commands at the destination")

        got = mwtest.wait_alerts(mw, event="certificate_invalid", domain="secure.test")
        mwtest.eq(len(got), 1, "certificate_invalid alerts (all: %r)" % mw.alerts())
        print("alert: %r" % got[0])
        mwtest.eq(got[0].get("server"), outcheck.SERVER, "alert server")
        mwtest.eq(got[0].get("expected"), "secure (policy)", "alert expected")
        mwtest.eq(mwtest.find_alerts(mw, domain="encrypt.test"), [], "alerts for encrypt.test")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
