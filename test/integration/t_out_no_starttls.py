#!/usr/bin/python3
"""Outbound to a destination that offers no STARTTLS at all (aiosmtpd without
TLS at 192.0.2.10:25, reached through the redirect), one session per
recipient domain, policy "secure.test secure", "encrypt.test encrypt",
"may.test may", default_level encrypt:

  secure.test, encrypt.test  RCPT 451 4.7.5 starttls-not-supported, alert
                             starttls_stripped (the policy expected TLS)
  other.test (unlisted)      RCPT 451 4.7.5, alert tls_absent, expected
                             "encrypt (default)"
  may.test                   delivered in clear text, and reported

For every refusal: MAIL got mailward's own "250 2.1.0 Ok", DATA got "554 5.5.1
Error: no valid recipients", and the destination never saw a MAIL, RCPT or
DATA (invariant 2: no envelope byte in clear text to a server the policy
says must be reached over TLS)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

POLICY = "secure.test secure\nencrypt.test encrypt\nmay.test may\n"
MSG = outcheck.message("must not leak")


def main():
    with mwtest.Env("out_no_starttls") as env:
        net = env.netns()
        dest = net.dest("192.0.2.10", tls=None)
        mw = net.outbound(policy=POLICY, default_level="encrypt")

        for rcpt, event, expected in (("bob@secure.test", "starttls_stripped", "secure (policy)"),
                                      ("carol@encrypt.test", "starttls_stripped",
                                       "encrypt (policy)"),
                                      ("dave@other.test", "tls_absent", "encrypt (default)")):
            outcheck.expect_refused(net, mw, dest, rcpt, "starttls-not-supported", event,
                                    expected)
        mwtest.eq(mwtest.find_alerts(mw, event="starttls_stripped", domain="other.test"), [],
                  "starttls_stripped for a domain only the default covers")

        # may: delivered in clear text, reported.
        t = outcheck.one_transaction(net, ["erin@may.test"], MSG)
        mwtest.eq(t["mail"][0], 250, "MAIL (may)")
        mwtest.eq(t["rcpt"][0][0], 250, "RCPT (may)")
        mwtest.eq(t["data"][0], 250, "end of data (may)")
        msgs = dest.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the destination (may)")
        mwtest.eq(msgs[0].rcpt_tos, ["erin@may.test"], "recipients (may)")
        mwtest.eq(msgs[0].data, MSG, "message bytes (may)")
        mwtest.eq(msgs[0].tls, False, "the may message went in clear text")
        dest.check_idle()
        may_alerts = mwtest.wait_alerts(mw, domain="may.test")
        print("may.test alerts: %r" % may_alerts)
        may_log = [l for l in mw.log().splitlines() if "may.test" in l]
        print("may.test log lines: %r" % may_log)
        reported = [a for a in may_alerts if a.get("action") not in ("rejected", "deferred")] \
            or [l for l in may_log if "starttls-not-supported" in l or "not enforced" in l]
        mwtest.check(reported, "delivery in clear text to may.test was not reported "
                     "(alerts %r, log %r)" % (may_alerts, may_log))
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
