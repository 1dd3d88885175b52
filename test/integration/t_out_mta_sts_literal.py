#!/usr/bin/python3
"""Outbound MTA-STS (mta_sts = yes): an address literal has no policy and
is not looked up.

RFC 8461 policies belong to domain names; a recipient at an address
literal (bob@[192.0.2.10]) has none. mailward asked the resolver for the
TXT record "_mta-sts.[192.0.2.10]" all the same: a query for a name that
cannot exist, sent to the resolver (and by it, upstream) for every such
recipient, and a cache entry for it.

The test bed: 192.0.2.10:25 aiosmtpd with STARTTLS; 192.0.2.53:53 dnsmasq,
the sender's resolver, which logs every query. mailward: mta_sts = yes,
default_level may.

  1. bob@nosts.test: delivered; its TXT name was asked (the resolver's log
     shows what mailward asks).
  2. bob@[192.0.2.10] and bob@[IPv6:2001:db8::10]: delivered; no query for
     any name with a '[' in it, no mta_sts_failed line."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

DEST, DNS = "192.0.2.10", "192.0.2.53"


def main():
    with mwtest.Env("out_mta_sts_literal") as env:
        net = env.netns(hosts=(DEST, DNS))
        dns = net.dnsmasq(DNS)
        net.resolver(DNS)
        dest = net.dest(DEST, tls="starttls", cert=net.cert("mx.dest.test"))
        mw = net.outbound(default_level="may", mta_sts="yes")

        print("== 1. nosts.test", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@nosts.test"], "nosts")
        mwtest.eq(dns.wait_queries("TXT", "_mta-sts.nosts.test"), 1,
                  "TXT queries for _mta-sts.nosts.test")

        print("== 2. address literals", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@[192.0.2.10]"], "literal")
        outcheck.delivered(net, mw, dest, ["bob@[IPv6:2001:db8::10]"], "literal6")
        mw.stop()
        print("queries: %r" % dns.queries())
        mwtest.eq([q for q in dns.queries() if "[" in q[1]], [],
                  "queries for names with '[' (address literals)")
        mwtest.eq(outcheck.log_events(mw, "mta_sts_failed"), [], "mta_sts_failed lines")
    print("ok")


if __name__ == "__main__":
    main()
