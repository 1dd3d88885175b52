#!/usr/bin/python3
"""Outbound MTA-STS: a policy whose HTTPS response was cut short is not
taken (RFC 9112 section 9.8: a response with no Content-Length is complete
only when a TLS close_notify ends it; RFC 8461 relies on HTTPS for the
policy's integrity).

mailward asks for the policy with HTTP/1.0, so a server may end the body
by closing the connection. A TCP FIN is not authenticated: whoever is on
the path can end the connection after "max_age: 6" of "max_age: 604800",
and a policy kept for a minute is one that blocking a later fetch takes
away. Without Content-Length, only the server's close_notify says that
the body is all there.

The test bed (network namespaces, documentation addresses only):

  192.0.2.10:25   aiosmtpd with STARTTLS, certificate for mx.other.test (the
                  test CA): trusted, but not a name any policy here allows,
                  so a RCPT refused with certificate-host-mismatch shows the
                  policy in force, and a delivery shows none
  192.0.2.44:443  the policy hosts (Python's http.server over ssl)
  192.0.2.53:53   dnsmasq: the _mta-sts TXT records and the policy hosts'
                  addresses; the sender's resolver

mailward: mta_sts = yes, default_level may.

  1. cut.test: "version/mode enforce/mx/max_age: 6", no Content-Length,
     the connection closed without close_notify. The fetch fails
     (event=mta_sts_failed naming the missing close_notify), no policy is
     logged, and the mail is delivered as without MTA-STS (what RFC 8461
     says when no policy can be had).
  2. notify.test: the same framing but ended with close_notify, max_age
     86400: the policy is taken (logged with max_age 86400) and enforced
     (451). Neither framing without a length is refused as such.
  3. kept.test: a policy fetched whole (Content-Length), max_age 86400,
     enforced. Then its TXT record gets a new id and its host answers a
     cut response (max_age: 6, no length, no close_notify); after SIGHUP
     the next RCPT is refused by the cached policy and starts the refetch,
     which fails and says "the cached policy stays": no second policy line,
     and a later RCPT is still refused.

mailward then stops cleanly (status 0, no sanitizer report)."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

DEST, WEB, DNS = "192.0.2.10", "192.0.2.44", "192.0.2.53"
FULL_AGE = 86400

log_events = outcheck.log_events


def body(domain, max_age, end="\r\n"):
    return ("version: STSv1\r\nmode: enforce\r\nmx: mx.%s\r\nmax_age: %s%s"
            % (domain, max_age, end))


def refused(net, mw, dest, rcpt):
    outcheck.refused(net, mw, dest, rcpt, "certificate-host-mismatch")


def main():
    with mwtest.Env("out_mta_sts_truncated") as env:
        net = env.netns(hosts=(DEST, WEB, DNS))
        domains = ["cut.test", "notify.test", "kept.test"]
        txt = {"_mta-sts." + d: "v=STSv1; id=%s1;" % d.split(".")[0] for d in domains}
        hosts = {"mta-sts." + d: WEB for d in domains}
        dns = net.dnsmasq(DNS, txt=txt, hosts=hosts)
        net.resolver(DNS)
        sites = {
            # What a cut after "max_age: 6" of "max_age: 604800" leaves.
            "mta-sts.cut.test": (200, "text/plain", body("cut.test", 6, end="")),
            "mta-sts.notify.test": (200, "text/plain", body("notify.test", FULL_AGE)),
            "mta-sts.kept.test": (200, "text/plain", body("kept.test", FULL_AGE)),
        }
        framing = {"mta-sts.cut.test": "eof", "mta-sts.notify.test": "close_notify"}
        web = net.https(WEB, net.cert("mta-sts.cut.test", sans=sorted(sites)), sites,
                        framing=framing)
        dest = net.dest(DEST, tls="starttls", cert=net.cert("mx.other.test"))
        mw = net.outbound(default_level="may", mta_sts="yes")

        print("== 1. cut.test: no Content-Length, no close_notify", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@cut.test"], "cut")
        mwtest.eq(len(web.gets("mta-sts.cut.test")), 1, "GETs for mta-sts.cut.test")
        failed = mwtest.wait_for(lambda: log_events(mw, "mta_sts_failed", "cut.test"), 5)
        print("failed: %r" % failed, flush=True)
        mwtest.check(failed and "close_notify" in failed[0].get("reason", ""),
                     "no mta_sts_failed line naming the missing close_notify for "
                     "cut.test; log:\n%s" % mw.log()[-3000:])
        mwtest.eq(log_events(mw, "mta_sts_policy", "cut.test"), [],
                  "policies taken for cut.test (its response was cut short)")

        print("== 2. notify.test: no Content-Length, close_notify", flush=True)
        refused(net, mw, dest, "bob@notify.test")
        got = mwtest.wait_for(lambda: log_events(mw, "mta_sts_policy", "notify.test"), 5)
        mwtest.eq([(x.get("mode"), x.get("max_age")) for x in got or []],
                  [("enforce", str(FULL_AGE))], "the policy of notify.test")
        mwtest.eq(log_events(mw, "mta_sts_failed", "notify.test"), [],
                  "failed fetches for notify.test")

        print("== 3. kept.test: a cut refetch keeps the cached policy", flush=True)
        refused(net, mw, dest, "bob@kept.test")
        got = mwtest.wait_for(lambda: log_events(mw, "mta_sts_policy", "kept.test"), 5)
        mwtest.eq([(x.get("id"), x.get("max_age")) for x in got or []],
                  [("kept1", str(FULL_AGE))], "the first policy of kept.test")
        dns.stop()
        txt["_mta-sts.kept.test"] = "v=STSv1; id=kept2;"
        dns = net.dnsmasq(DNS, txt=txt, hosts=hosts)
        with web.lock:
            web.sites["mta-sts.kept.test"] = (200, "text/plain",
                                              body("kept.test", 6, end=""))
            web.framing["mta-sts.kept.test"] = "eof"
        os.kill(mw.pid, signal.SIGHUP)
        mwtest.check(mwtest.wait_for(lambda: log_events(mw, "reload_mta_sts"), 5),
                     "no reload_mta_sts line")
        refused(net, mw, dest, "carol@kept.test")
        mwtest.check(mwtest.wait_for(lambda: len(web.gets("mta-sts.kept.test")) >= 2, 10),
                     "the new id was not fetched (requests %r)" % web.requests)
        failed = mwtest.wait_for(lambda: log_events(mw, "mta_sts_failed", "kept.test"), 5)
        print("failed: %r" % failed, flush=True)
        mwtest.check(failed and "close_notify" in failed[0].get("reason", "") and
                     failed[0].get("action") == "the cached policy stays",
                     "no mta_sts_failed line keeping the cached policy of kept.test; "
                     "log:\n%s" % mw.log()[-3000:])
        mwtest.eq([(x.get("id"), x.get("max_age"))
                   for x in log_events(mw, "mta_sts_policy", "kept.test")],
                  [("kept1", str(FULL_AGE))],
                  "policies of kept.test (the cut one must not replace the first)")
        refused(net, mw, dest, "dave@kept.test")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
