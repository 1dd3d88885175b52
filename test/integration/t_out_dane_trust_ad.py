#!/usr/bin/python3
"""Outbound DANE: the resolver's AD bit is believed only over a path that
can be trusted (RFC 6698 section 4.1, RFC 7672: DANE is only as good as
the channel from the validating resolver).

Nothing authenticates a DNS answer between the stub resolver and the
resolver it asks: whoever is on that path can answer with TLSA records of
their own and the AD bit set. glibc therefore clears the AD bit unless
resolv.conf says "options trust-ad"; mailward set RES_TRUSTAD itself and
believed any resolver, however far away. Now it believes the AD bit only
from nameservers on its own host (loopback) or with "options trust-ad". At dane or dane-only a forged
"secure" TLSA record then authenticates the forger's certificate, and
where DANE applies it also stands in for the domain's MTA-STS policy.

The test bed: nsd serving the signed zone test. at 192.0.2.54, dnsmasq
validating it at 192.0.2.53 (not on mailward's host), 192.0.2.10:25
aiosmtpd with STARTTLS and a certificate no CA signed; ee.test has MX
mx.ee.test -> 192.0.2.10 and TLSA 3 1 1 of that certificate's key, all
validated; so has also.test (MX mx.ee.test). mailward: default_level
dane-only.

  1. resolv.conf "nameserver 192.0.2.53" without trust-ad: the answers
     are not believed (no DANE; the dane_lookup line says why, naming
     "options trust-ad"): RCPT 451 dane-required, nothing of the envelope
     at the destination. (Before: delivered, match-ee.) As each lookup
     line is at level info (and at level dane mail would go on, its TLS
     unauthenticated), one warning says so: event=dane_ad_ignored naming
     options trust-ad, once, however many lookups (also.test's too).
  2. resolv.conf with "options trust-ad" (the administrator vouches for
     the path), SIGHUP: delivered, DANE-EE match; no second warning."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402
from t_out_dane import tlsa_311  # noqa: E402

DEST, RES, AUTH = "192.0.2.10", "192.0.2.53", "192.0.2.54"


def main():
    with mwtest.Env("out_dane_trust_ad") as env:
        net = env.netns(hosts=(DEST, RES, AUTH))
        cert = net.cert("mx.ee.test", kind="untrusted")
        records = ["ee.test. MX 10 mx.ee.test.", "also.test. MX 10 mx.ee.test.",
                   "mx.ee.test. A " + DEST,
                   "_25._tcp.mx.ee.test. TLSA 3 1 1 " + tlsa_311(cert[0])]
        bed = net.dnssec(AUTH, RES, records=records)
        net.resolver(RES, options="edns0 timeout:3 attempts:1")
        dest = net.dest(DEST, tls="starttls", cert=cert, hostname="mx.ee.test")
        mw = net.outbound(default_level="dane-only")

        print("== 1. a resolver elsewhere, no trust-ad", flush=True)
        outcheck.refused(net, mw, dest, "bob@ee.test", "dane-required")
        mwtest.check(bed.count("MX", "ee.test") >= 1,
                     "the MX records were not asked for: %r" % bed.resolver.queries())
        lookup = outcheck.log_events(mw, "dane_lookup", "ee.test")
        print("dane_lookup: %r" % lookup, flush=True)
        mwtest.eq([(x.get("state"), "options trust-ad" in x.get("why", "")) for x in lookup],
                  [("none", True)],
                  "DANE lookups of ee.test (state, why naming options trust-ad)")
        outcheck.refused(net, mw, dest, "bob@also.test", "dane-required")
        warned = outcheck.log_events(mw, "dane_ad_ignored")
        mwtest.eq([(x.get("listener"), "options trust-ad" in x.get("note", ""))
                   for x in warned], [("out", True)],
                  "dane_ad_ignored warnings after two lookups (listener, note naming "
                  "options trust-ad)")
        mwtest.check(" warning: - event=dane_ad_ignored " in mw.log(),
                     "dane_ad_ignored is not a warning: %s" % mw.log()[-2000:])

        print("== 2. options trust-ad", flush=True)
        net.resolver(RES, options="trust-ad edns0 timeout:3 attempts:1")
        os.kill(mw.pid, signal.SIGHUP)
        mwtest.check(mwtest.wait_for(lambda: outcheck.log_events(mw, "reload_dane"), 5),
                     "no reload_dane line (the cached lookup must go)")
        outcheck.delivered(net, mw, dest, ["bob@ee.test"], "trust-ad")
        got = outcheck.log_events(mw, "dane", "ee.test")
        mwtest.eq([x.get("result") for x in got], ["match-ee"], "DANE results for ee.test")
        mwtest.eq(len(outcheck.log_events(mw, "dane_ad_ignored")), 1,
                  "dane_ad_ignored warnings after trust-ad")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
