#!/usr/bin/python3
"""Outbound: a domain with both TLSA records and an MTA-STS policy in mode
enforce. DANE decides only where it applies: the domain's level uses it
(dane, dane-only) and a record is usable for SMTP (RFC 7672 section 3.1.3:
PKIX usages 0 and 1 are not), or the lookup failed. Then MTA-STS is not
used (RFC 8461 section 2); otherwise MTA-STS enforce is the expectation,
whatever TLSA records exist, except at dane-only.

The test bed (network namespaces, documentation addresses only):

  192.0.2.10:25   aiosmtpd with STARTTLS and a certificate for mx.ee.test
                  that no CA the sender trusts signed (an attacker's, as far
                  as MTA-STS can tell)
  192.0.2.11:25   aiosmtpd with STARTTLS and a certificate for mx.bogus.test
                  from the test CA (trusted: MTA-STS alone would pass it)
  192.0.2.54:53   nsd: the zone test., signed
  192.0.2.53:53   dnsmasq validating test.; the sender's resolver
  192.0.2.44:443  the MTA-STS policy hosts (Python's http.server over ssl)

  domain     MX -> .10     TLSA (secure)              MTA-STS
  ee.test    mx.ee.test    3 1 1 of .10's key          enforce, mx: mx.ee.test
  pkix.test  mx.pkix.test  1 1 1 of .10's key          enforce, mx: mx.pkix.test
                           (PKIX-EE: unusable)
  bogus.test mx.bogus.test 3 1 1 of .11's key, its     enforce, mx: mx.bogus.test
             -> .11        signature bogus

  mailward                              ee.test            pkix.test
  default_level encrypt, mta_sts yes,   451 certificate-   451 certificate-not-trusted
  relayhost = relay.ee.test             not-trusted
  default_level dane-only, mta_sts yes  -                  451 dane-required
  default_level dane, mta_sts yes       delivered (DANE)   451 certificate-not-trusted

dane-only wants DANE and nothing else: MTA-STS does not stand in for
records that are not usable. At default_level dane, bogus.test gets 451
dnssec-invalid, alert dnssec_invalid: a failing DANE lookup is not
overridden by MTA-STS (RFC 8461 section 2), which an earlier build let
deliver it to .11.

With relayhost set, mailward looks up TLSA records for every domain (to
tell a relay host from an MX host), and an earlier build then dropped the
MTA-STS policy of ee.test although its level (encrypt) does not use DANE:
the untrusted certificate got the mail. pkix.test's unusable record made
the dane level drop MTA-STS as well. Nothing reaches the destination for
a 451."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402
from t_out_dane import tlsa_311  # noqa: E402

DEST, WEB, RES, AUTH, RELAY = "192.0.2.10", "192.0.2.44", "192.0.2.53", "192.0.2.54", "192.0.2.13"
DEST2 = "192.0.2.11"


def sts_body(mx):
    return "version: STSv1\r\nmode: enforce\r\nmx: %s\r\nmax_age: 86400\r\n" % mx


def main():
    with mwtest.Env("out_dane_sts") as env:
        net = env.netns(hosts=(DEST, DEST2, WEB, RES, AUTH, RELAY))
        evil = net.cert("mx.ee.test", sans=["mx.ee.test", "mx.pkix.test"], kind="untrusted")
        key = tlsa_311(evil[0])
        records = ["ee.test. MX 10 mx.ee.test.", "mx.ee.test. A " + DEST,
                   "_25._tcp.mx.ee.test. TLSA 3 1 1 " + key,
                   '_mta-sts.ee.test. TXT "v=STSv1; id=ee1;"', "mta-sts.ee.test. A " + WEB,
                   "pkix.test. MX 10 mx.pkix.test.", "mx.pkix.test. A " + DEST,
                   "_25._tcp.mx.pkix.test. TLSA 1 1 1 " + key,
                   '_mta-sts.pkix.test. TXT "v=STSv1; id=pkix1;"',
                   "mta-sts.pkix.test. A " + WEB,
                   "relay.ee.test. A " + RELAY,
                   "bogus.test. MX 10 mx.bogus.test.", "mx.bogus.test. A " + DEST2,
                   '_mta-sts.bogus.test. TXT "v=STSv1; id=bogus1;"',
                   "mta-sts.bogus.test. A " + WEB]
        good = net.cert("mx.bogus.test")
        net.dnssec(AUTH, RES, records=records,
                   bogus=["_25._tcp.mx.bogus.test. TLSA 3 1 1 " + tlsa_311(good[0])])
        net.resolver(RES, options="trust-ad edns0 timeout:3 attempts:1")
        sites = {"mta-sts.ee.test": (200, "text/plain", sts_body("mx.ee.test")),
                 "mta-sts.pkix.test": (200, "text/plain", sts_body("mx.pkix.test")),
                 "mta-sts.bogus.test": (200, "text/plain", sts_body("mx.bogus.test"))}
        net.https(WEB, net.cert("mta-sts.ee.test", sans=sorted(sites)), sites)
        dest = net.dest(DEST, tls="starttls", cert=evil, hostname="mx.ee.test")
        dest2 = net.dest(DEST2, tls="starttls", cert=good, hostname="mx.bogus.test")

        def refused(mw, rcpt):
            outcheck.expect_refused(net, mw, dest, rcpt, "certificate-not-trusted",
                                    "certificate_invalid", "secure (mta-sts)")

        print("== default_level encrypt, relayhost", flush=True)
        mw = net.outbound(default_level="encrypt", mta_sts="yes", relayhost="relay.ee.test",
                          port=10026)
        for rcpt in ("bob@ee.test", "bob@pkix.test"):
            refused(mw, rcpt)
        mw.stop()

        print("== default_level dane-only", flush=True)
        mw = net.outbound(default_level="dane-only", mta_sts="yes", port=10027)
        outcheck.expect_refused(net, mw, dest, "bob@pkix.test", "dane-required",
                                "dane_required", "dane-only (default)")
        mw.stop()

        print("== default_level dane", flush=True)
        mw = net.outbound(default_level="dane", mta_sts="yes")
        refused(mw, "bob@pkix.test")
        t = outcheck.one_transaction(net, ["bob@bogus.test"], outcheck.message("bogus"),
                                     host=DEST2)
        mwtest.check_deferred(t["rcpt"][0], "dnssec-invalid", "RCPT bob@bogus.test")
        dest2.check_idle()
        mwtest.eq([dest2.envelope_commands(), dest2.messages], [[], []],
                  "envelope commands and messages at %s" % DEST2)
        got = mwtest.wait_alerts(mw, n=1, event="dnssec_invalid", domain="bogus.test")
        mwtest.eq([(a.get("server"), a.get("expected")) for a in got],
                  [(DEST2 + ":25", "dane (default)")], "dnssec_invalid alerts for bogus.test")
        msg = outcheck.message("DANE-EE over MTA-STS")
        t = outcheck.one_transaction(net, ["bob@ee.test"], msg)
        mwtest.eq([t["rcpt"][0][0], t["data"][0]], [250, 250],
                  "ee.test at level dane (DANE-EE matches; MTA-STS not used): %r" % t)
        got = dest.wait_messages(1, 10)
        mwtest.eq([(m.rcpt_tos, m.tls) for m in got], [(["bob@ee.test"], True)],
                  "messages at the destination")
        mwtest.check("event=dane domain=ee.test mx=mx.ee.test result=match-ee" in mw.log(),
                     "no DANE match logged for ee.test:\n%s" % mw.log()[-4000:])
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
