#!/usr/bin/python3
"""Outbound MTA-STS: a policy in use is refreshed before it expires (RFC
8461 section 3.3), so that blocking the one fetch at its expiry cannot take
it away.

The test bed (network namespaces, documentation addresses only):

  192.0.2.10:25   aiosmtpd with STARTTLS, certificate for mx.other.test (the
                  test CA): trusted, but not a name the policy allows
  192.0.2.44:443  the policy host mta-sts.fresh.test (Python's http.server
                  over ssl)
  192.0.2.53:53   dnsmasq: _mta-sts.fresh.test TXT and the policy host's
                  address; the sender's resolver

fresh.test publishes enforce, mx: mx.fresh.test, max_age 60 (mailward's
shortest lifetime), so it is due for a refresh after 30 s, half its life.
mailward: mta_sts = yes, default_level may (without the policy, mail to
fresh.test is delivered: the 451 below shows the policy in force).

  t=0     RCPT bob@fresh.test: the policy is fetched (GET 1); 451 4.7.5
          certificate-host-mismatch, expected "secure (mta-sts)".
  t=32    RCPT again: 451 at once from the cached policy, and in the
          background the TXT record is looked at again and, its id
          unchanged, the policy fetched again (GET 2, a second
          mta_sts_policy line): its 60 s start anew.
          Then the policy host goes away (connections refused).
  t=65    past the first fetch's expiry (t=60), before the refreshed one's
          (t=92): RCPT gets 451 again. The refresh that is tried then
          fails and says "the cached policy stays". Without the refresh the
          policy would have expired at t=60, its fetch failed, and the mail
          gone to the wrong server as at level may.

Nothing reaches the destination."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

DEST, WEB, DNS = "192.0.2.10", "192.0.2.44", "192.0.2.53"
POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx.fresh.test\r\nmax_age: 60\r\n"


def main():
    with mwtest.Env("out_mta_sts_refresh") as env:
        net = env.netns(hosts=(DEST, WEB, DNS))
        dns = net.dnsmasq(DNS, txt={"_mta-sts.fresh.test": "v=STSv1; id=fresh1;"},
                          hosts={"mta-sts.fresh.test": WEB})
        net.resolver(DNS)
        web = net.https(WEB, net.cert("mta-sts.fresh.test"),
                        {"mta-sts.fresh.test": (200, "text/plain", POLICY)})
        dest = net.dest(DEST, tls="starttls", cert=net.cert("mx.other.test"))
        mw = net.outbound(default_level="may", mta_sts="yes")

        def refused(when):
            print("== t=%.0f" % (time.monotonic() - t0), flush=True)
            outcheck.expect_refused(net, mw, dest, "bob@fresh.test",
                                    "certificate-host-mismatch", "certificate_invalid",
                                    "secure (mta-sts)")
            print("%s: refused" % when, flush=True)

        def policy_lines():
            return [line for line in mw.log().splitlines()
                    if "event=mta_sts_policy" in line and "domain=fresh.test" in line]

        t0 = time.monotonic()
        refused("first RCPT")
        mwtest.eq(len(web.gets("mta-sts.fresh.test")), 1, "GETs after the first RCPT")

        time.sleep(max(0.0, t0 + 32 - time.monotonic()))
        refused("RCPT at 32 s")
        got = mwtest.wait_for(lambda: len(web.gets("mta-sts.fresh.test")) >= 2, 10)
        mwtest.check(got, "no second GET: the policy was not refreshed (requests %r; log:\n%s)"
                     % (web.requests, mw.log()[-4000:]))
        mwtest.check(mwtest.wait_for(lambda: len(policy_lines()) >= 2, 10),
                     "no second mta_sts_policy line: %r" % policy_lines())
        mwtest.eq(dns.count("TXT", "_mta-sts.fresh.test"), 2, "TXT queries by then")
        web.stop()

        time.sleep(max(0.0, t0 + 65 - time.monotonic()))
        refused("RCPT at 65 s, after the first fetch's expiry")
        failed = mwtest.wait_for(lambda: [line for line in mw.log().splitlines()
                                          if "event=mta_sts_failed" in line], 35)
        print("then: %r" % failed, flush=True)
        mwtest.check(failed and all("the cached policy stays" in line for line in failed),
                     "the failed refresh did not keep the cached policy: %r" % failed)
        mwtest.eq(dest.messages, [], "messages at the destination")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
