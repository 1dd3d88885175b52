#!/usr/bin/python3
"""Outbound: a certificate's names past the 16th count like the first.

Large mail providers serve one certificate for many hosts (the MX
certificates of the biggest ones list a couple of dozen names), and which
of them a policy allows may be anywhere in the list. mailward kept only the
first 16 names of a certificate, so a trusted certificate that names the
right host 20th was refused: mail that RFC 8461 says goes was deferred
(certificate-host-mismatch), and an MTA-STS policy host named so had its
policy ignored (as no policy: enforcement the domain asked for dropped).

The test bed (network namespaces, documentation addresses only):

  192.0.2.10:25   aiosmtpd with STARTTLS; its certificate (the test CA)
                  names mx1.filler.test ... mx19.filler.test, then
                  mx.big.test, 20 names in all
  192.0.2.44:443  the policy hosts mta-sts.big.test and mta-sts.late.test
                  (Python's http.server over ssl); one certificate naming
                  host1.filler.test ... host19.filler.test, then
                  mta-sts.big.test and mta-sts.late.test (21 names)
  192.0.2.53:53   dnsmasq: the _mta-sts TXT records and the policy hosts'
                  addresses; the sender's resolver

mailward: mta_sts = yes, default_level may, and a policy table with
"table.test secure match=mx.big.test".

  1. big.test (MTA-STS enforce, mx: mx.big.test): its policy is fetched
     (the policy host's name is the certificate's 20th) and the mail is
     delivered (the MX name is the 20th): no mta_sts_failed line, one
     mta_sts_policy line, no alert.
  2. late.test (MTA-STS enforce, mx: mx.late.test, which the MX
     certificate does not name): the policy is taken (its host is named
     21st) and enforced: 451 certificate-host-mismatch. Before, the policy
     was dropped and the mail delivered at level may.
  3. table.test (policy table: secure match=mx.big.test): delivered.

mailward then stops cleanly (status 0, no sanitizer report)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

DEST, WEB, DNS = "192.0.2.10", "192.0.2.44", "192.0.2.53"

log_events = outcheck.log_events


def policy(mx):
    return "version: STSv1\r\nmode: enforce\r\nmx: %s\r\nmax_age: 86400\r\n" % mx


def main():
    with mwtest.Env("out_many_names") as env:
        net = env.netns(hosts=(DEST, WEB, DNS))
        domains = ["big.test", "late.test"]
        dns = net.dnsmasq(DNS, txt={"_mta-sts." + d: "v=STSv1; id=%s1;" % d.split(".")[0]
                                    for d in domains},
                          hosts={"mta-sts." + d: WEB for d in domains})
        net.resolver(DNS)
        web_names = ["host%d.filler.test" % i for i in range(1, 20)] + \
            ["mta-sts.big.test", "mta-sts.late.test"]
        web = net.https(WEB, net.cert("host1.filler.test", sans=web_names),
                        {"mta-sts.big.test": (200, "text/plain", policy("mx.big.test")),
                         "mta-sts.late.test": (200, "text/plain", policy("mx.late.test"))})
        mx_names = ["mx%d.filler.test" % i for i in range(1, 20)] + ["mx.big.test"]
        dest = net.dest(DEST, tls="starttls", cert=net.cert("mx1.filler.test", sans=mx_names))
        mw = net.outbound(policy="table.test secure match=mx.big.test\n",
                          default_level="may", mta_sts="yes")

        print("== 1. big.test: both names are 20th", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@big.test"], "big")
        mwtest.eq(log_events(mw, "mta_sts_failed"), [], "failed MTA-STS fetches")
        got = mwtest.wait_for(lambda: log_events(mw, "mta_sts_policy", "big.test"), 5)
        mwtest.eq([(x.get("mode"), x.get("mx")) for x in got or []],
                  [("enforce", "mx.big.test")], "the policy of big.test")
        mwtest.eq(mwtest.find_alerts(mw, domain="big.test"), [], "alerts for big.test")

        print("== 2. late.test: the policy host is named 21st", flush=True)
        outcheck.refused(net, mw, dest, "bob@late.test", "certificate-host-mismatch")
        got = mwtest.wait_for(lambda: log_events(mw, "mta_sts_policy", "late.test"), 5)
        mwtest.eq([(x.get("mode"), x.get("mx")) for x in got or []],
                  [("enforce", "mx.late.test")], "the policy of late.test")
        mwtest.eq(len(web.gets("mta-sts.late.test")), 1, "GETs for mta-sts.late.test")
        mwtest.eq(dns.count("TXT", "_mta-sts.late.test"), 1, "TXT queries for late.test")

        print("== 3. table.test: secure match=mx.big.test", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@table.test"], "table")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
