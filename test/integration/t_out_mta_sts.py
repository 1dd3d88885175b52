#!/usr/bin/python3
"""Outbound with MTA-STS (RFC 8461): mta_sts = yes, default_level may, and a
policy table with one entry, "wrongmx2.test may".

The test bed (network namespaces, documentation addresses only):

  192.0.2.10:25   aiosmtpd with STARTTLS, certificate for mx.enforce.test
  192.0.2.11:25   the stripper fixture in strip mode (deletes STARTTLS from
                  the EHLO reply), in front of an aiosmtpd like the one above
  192.0.2.44:443  the policy hosts mta-sts.<domain>: Python's http.server over
                  ssl, one certificate (test CA) naming all of them
  192.0.2.53:53   dnsmasq: the _mta-sts.<domain> TXT records and the
                  mta-sts.<domain> addresses; the sender's resolv.conf names it

The domains and what is published for them:

  enforce.test    enforce, mx: mx.enforce.test
  wrongmx.test    enforce, mx: mx.wrongmx.test  (not the certificate's name)
  wild.test       enforce, mx: *.enforce.test
  testing.test    testing, mx: mx.testing.test  (not the certificate's name)
  broken.test     a TXT record, but the policy URL answers 404
  nosts.test      nothing: no TXT record (NXDOMAIN)
  wrongmx2.test   enforce, mx: mx.wrongmx2.test, and the table entry "may"

Scenarios, in this order, against one mailward:

  1. enforce.test: delivered over TLS; one TXT query, one HTTPS GET of
     /.well-known/mta-sts.txt with SNI and Host mta-sts.enforce.test; log
     event=mta_sts_policy with mode, id, max_age and mx; no alert.
  2. wrongmx.test: RCPT 451 4.7.5 certificate-host-mismatch, nothing of the
     envelope at the destination, alert certificate_invalid with expected
     "secure (mta-sts)".
  3. wild.test: delivered (the certificate's name fits *.enforce.test).
  4. testing.test: delivered over TLS, and reported: log event=tls_reported
     with expected="secure (mta-sts testing)", alert certificate_invalid
     with severity info, action relayed, the same expected.
  5. nosts.test: delivered; its TXT name was asked (NXDOMAIN), nothing else:
     no HTTPS request, no mta_sts_policy or mta_sts_failed line, no alert.
  6. broken.test: one GET answered 404: log event=mta_sts_failed naming 404
     and an action; delivered as without MTA-STS (default may), no alert.
     Then invalid.test (a policy with mode "sideways") and webpki.test (a
     policy host whose certificate does not name it; no GET is sent): the
     same, each failure logged with its reason.
  7. One transaction, carol@enforce.test then dave@wrongmx.test: RCPT 250
     then 451; the message reaches the destination once, for carol alone.
  8. wrongmx2.test (table entry may): delivered; no TXT query, no HTTPS
     request and no log line for it: the table decides, MTA-STS is not looked
     up at all.
  9. Through the stripper at 192.0.2.11, bob@enforce.test (enforce.test is
     also in the learned store by now): RCPT 451 starttls-not-supported,
     alert starttls_stripped with expected "secure (mta-sts)", no envelope
     at the destination behind the stripper.
 10. The cache: with the HTTPS server stopped (connections refused),
     enforce.test is delivered again and wrongmx.test refused again; over
     the whole test every policy host got exactly one GET and every TXT name
     exactly one query, and no lookup failed but broken.test's.
 10b. Report mail (MAIL FROM tlsrpt_from): to wrongmx.test delivered over
     TLS with the certificate unchecked (event=tls_report_mail); through
     the stripper still 451 starttls-not-supported: never in clear text.
     Then the TLS-RPT results (tlsrpt = yes) of scenarios 1-10, from
     state_dir/tlsrpt/DAY.jsonl: one per session and domain, type sts with
     the policy's lines and mx patterns (testing.test: mode testing and the
     mismatch it reported), type sts with the failure for the policies that
     could not be had (sts-policy-fetch-error, sts-policy-invalid,
     sts-webpki-invalid), or no-policy-found, and the count of each; none
     for the report mail of 10b. The same file through
     scripts/tlsrpt-report --dry-run: every line read, and enforce.test's
     report (its TLSRPT record names a mailto rua) counts 3 sessions that
     succeeded and 1 that failed (starttls-not-supported, the stripper).
 12. A restart: a new mailward on the same state_dir, the HTTPS server
     still stopped: wrongmx.test is refused and enforce.test delivered by the
     policies stored by the first one (enforce.test, wrongmx.test,
     wild.test, testing.test), which it reads in at its start (log
     event=mta_sts_store_loaded domains=4; no mta_sts_policy, no HTTPS
     request).
 11. SIGHUP (log event=reload_mta_sts), and wrongmx.test publishes a new id
     whose policy names mx.enforce.test: the first RCPT is still refused by
     the cached policy and starts the lookup; the new policy is fetched and
     logged, and the next RCPT is delivered. enforce.test, whose id did not
     change, gets a TXT query and no GET.

mailward then stops cleanly (status 0, no sanitizer report)."""

import collections
import json
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

DEST, STRIP, WEB, DNS = "192.0.2.10", "192.0.2.11", "192.0.2.44", "192.0.2.53"
MX_CERT = "mx.enforce.test"
MAX_AGE = 86400
STS_PATH = "/.well-known/mta-sts.txt"

# domain: (mode, mx patterns); the TXT record's id is the first label + "1".
POLICIES = {
    "enforce.test": ("enforce", ["mx.enforce.test"]),
    "wrongmx.test": ("enforce", ["mx.wrongmx.test"]),
    "wild.test": ("enforce", ["*.enforce.test"]),
    "testing.test": ("testing", ["mx.testing.test"]),
    "wrongmx2.test": ("enforce", ["mx.wrongmx2.test"]),
}
BROKEN = "broken.test"
INVALID = "invalid.test"
WEBPKI = "webpki.test"
NOSTS = "nosts.test"
REPORT_FROM = "tlsrpt-noreply@sender.test"
TABLE = "wrongmx2.test"


def sts_id(domain):
    return domain.split(".")[0] + "1"


def policy_body(mode, mx):
    return ("version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n"
            % (mode, "".join("mx: %s\r\n" % m for m in mx), MAX_AGE))


log_events = outcheck.log_events


def refused(net, mw, dest, rcpt, result_type, event, expected, host=DEST):
    """outcheck.refused(), and one more alert `event` for the domain, from
    host:25, with expected. Returns the alert."""
    domain = rcpt.split("@")[1]
    nalerts = len(mwtest.find_alerts(mw, event=event, domain=domain))
    outcheck.refused(net, mw, dest, rcpt, result_type, host=host)
    got = mwtest.wait_alerts(mw, n=nalerts + 1, event=event, domain=domain)
    mwtest.eq(len(got), nalerts + 1, "%s alerts for %s (all: %r)" % (event, domain, mw.alerts()))
    a = got[-1]
    print("alert: %r" % a)
    mwtest.eq(a.get("server"), "%s:25" % host, "alert server (%s)" % rcpt)
    mwtest.eq(a.get("expected"), expected, "alert expected (%s)" % rcpt)
    mwtest.eq(a.get("action"), "deferred", "alert action (%s)" % rcpt)
    mwtest.check(a.get("observed"), "alert without observed: %r" % a)
    return a


def check_policy_logged(mw, domain):
    """Exactly one event=mta_sts_policy line for domain, with what was published."""
    mode, mx = POLICIES[domain]
    got = mwtest.wait_for(lambda: log_events(mw, "mta_sts_policy", domain), 5)
    mwtest.eq(len(got or []), 1, "mta_sts_policy lines for %s; log:\n%s" % (domain, mw.log()))
    p = got[0]
    print("policy logged: %r" % p)
    mwtest.eq([p.get("listener"), p.get("mode"), p.get("id"), p.get("max_age"), p.get("mx")],
              ["out", mode, sts_id(domain), str(MAX_AGE), " ".join(mx)],
              "mta_sts_policy line for %s (listener, mode, id, max_age, mx)" % domain)


def delivered_by_policy(net, mw, dest, web, dns, domain, subject):
    """A delivery to bob@domain, its policy fetched once and logged."""
    outcheck.delivered(net, mw, dest, ["bob@" + domain], subject)
    check_policy_logged(mw, domain)
    check_fetched_once(web, dns, domain)


def check_fetched_once(web, dns, domain):
    """One TXT query for _mta-sts.domain, one HTTP/1.0 GET of the policy with
    SNI and Host mta-sts.domain."""
    host = "mta-sts." + domain
    mwtest.eq(dns.wait_queries("TXT", "_mta-sts." + domain), 1,
              "TXT queries for _mta-sts.%s" % domain)
    gets = web.gets(host)
    mwtest.eq(len(gets), 1, "GETs for %s (all requests: %r)" % (host, web.requests))
    g = gets[0]
    mwtest.eq([g["path"], g["version"], g["host"], g["sni"]], [STS_PATH, "HTTP/1.0", host, host],
              "%s: path, version, Host and SNI of the GET" % host)


def main():
    with mwtest.Env("out_mta_sts") as env:
        net = env.netns(hosts=(DEST, STRIP, WEB, DNS))

        # DNS: dnsmasq at 192.0.2.53, the sender's resolver.
        announced = list(POLICIES) + [BROKEN, INVALID, WEBPKI]
        txt = {"_mta-sts." + d: "v=STSv1; id=%s;" % sts_id(d) for d in announced}
        txt["_smtp._tls.enforce.test"] = "v=TLSRPTv1; rua=mailto:tlsrpt@enforce.test"
        hosts = {"mta-sts." + d: WEB for d in announced}
        dns = net.dnsmasq(DNS, txt=txt, hosts=hosts)
        net.resolver(DNS)
        r = net.run(net.sender, ["getent", "ahostsv4", "mta-sts.enforce.test"])
        mwtest.check(r.returncode == 0 and r.stdout.split()[:1] == [WEB],
                     "mta-sts.enforce.test does not resolve to %s in the sender (%d %r %r); "
                     "dnsmasq:\n%s" % (WEB, r.returncode, r.stdout, r.stderr, dns.output()))

        # The policy hosts.
        sites = {"mta-sts." + d: (200, "text/plain", policy_body(*p)) for d, p in POLICIES.items()}
        sites["mta-sts." + BROKEN] = (404, "text/plain", "not here\n")
        sites["mta-sts." + INVALID] = (200, "text/plain", policy_body("sideways", ["mx.x"]))
        sites["mta-sts." + WEBPKI] = (200, "text/plain", policy_body("enforce", [MX_CERT]))
        # One certificate names every policy host but mta-sts.webpki.test.
        web = net.https(WEB, net.cert("mta-sts.enforce.test",
                                      sans=sorted(set(sites) - {"mta-sts." + WEBPKI})), sites)

        # The destinations.
        mx_cert = net.cert(MX_CERT)
        dest = net.dest(DEST, tls="starttls", cert=mx_cert)
        dest2 = net.dest(STRIP, tls="starttls", cert=mx_cert, listen="127.0.0.1", port=2525)
        strip = net.stripper(STRIP, 25, to=("127.0.0.1", 2525), mode="strip")

        mw = net.outbound(policy="%s may\n" % TABLE, default_level="may", mta_sts="yes",
                          tlsrpt="yes", tlsrpt_from=REPORT_FROM)

        # 1. enforce.test: the certificate's name is the policy's mx.
        print("== 1. enforce.test", flush=True)
        delivered_by_policy(net, mw, dest, web, dns, "enforce.test", "enforce")
        mwtest.eq(mwtest.find_alerts(mw, domain="enforce.test"), [], "alerts for enforce.test")

        # 2. wrongmx.test: the certificate does not name mx.wrongmx.test.
        print("== 2. wrongmx.test", flush=True)
        refused(net, mw, dest, "bob@wrongmx.test", "certificate-host-mismatch",
                "certificate_invalid", "secure (mta-sts)")
        check_policy_logged(mw, "wrongmx.test")
        check_fetched_once(web, dns, "wrongmx.test")

        # 3. wild.test: mx.enforce.test is one label below enforce.test.
        print("== 3. wild.test", flush=True)
        delivered_by_policy(net, mw, dest, web, dns, "wild.test", "wild")
        mwtest.eq(mwtest.find_alerts(mw, domain="wild.test"), [], "alerts for wild.test")

        # 4. testing.test: what enforce would refuse is delivered and reported.
        print("== 4. testing.test", flush=True)
        delivered_by_policy(net, mw, dest, web, dns, "testing.test", "testing")
        rep = mwtest.wait_for(lambda: log_events(mw, "tls_reported", "testing.test") +
                              log_events(mw, "tls_deferred", "testing.test"), 5)
        print("reported: %r" % rep)
        mwtest.eq([(x.get("event"), x.get("expected"), x.get("result")) for x in rep or []],
                  [("tls_reported", "secure (mta-sts testing)", "certificate-host-mismatch")],
                  "tls_reported and tls_deferred lines for testing.test (event, expected, "
                  "result), the message being delivered")
        got = mwtest.wait_alerts(mw, domain="testing.test")
        mwtest.eq(len(got), 1, "alerts for testing.test (all: %r)" % mw.alerts())
        a = got[0]
        print("alert: %r" % a)
        mwtest.eq([a.get(k) for k in ("event", "severity", "action", "expected", "server")],
                  ["certificate_invalid", "info", "relayed", "secure (mta-sts testing)",
                   DEST + ":25"],
                  "testing.test alert (event, severity, action, expected, server)")

        # 5. nosts.test: no TXT record is no policy, and no failure either.
        print("== 5. nosts.test", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@nosts.test"], "nosts")
        mwtest.eq(dns.wait_queries("TXT", "_mta-sts.nosts.test"), 1,
                  "TXT queries for _mta-sts.nosts.test (mailward must look)")
        mwtest.eq([q for q in dns.queries() if q[1] == "mta-sts.nosts.test"], [],
                  "address queries for mta-sts.nosts.test")
        mwtest.eq(web.gets("mta-sts.nosts.test"), [], "GETs for mta-sts.nosts.test")
        for ev in ("mta_sts_policy", "mta_sts_failed"):
            mwtest.eq(log_events(mw, ev, NOSTS), [], "%s lines for nosts.test" % ev)
        mwtest.eq(mwtest.find_alerts(mw, domain=NOSTS), [], "alerts for nosts.test")

        # 6. broken.test: the fetch fails; delivered as without a policy.
        print("== 6. broken.test", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@broken.test"], "broken")
        check_fetched_once(web, dns, BROKEN)
        failed = mwtest.wait_for(lambda: log_events(mw, "mta_sts_failed", BROKEN), 5)
        mwtest.eq(len(failed or []), 1, "mta_sts_failed lines for broken.test; log:\n%s"
                  % mw.log())
        print("failure logged: %r" % failed[0])
        mwtest.check("404" in failed[0].get("reason", ""),
                     "mta_sts_failed reason does not name 404: %r" % failed[0])
        mwtest.check(failed[0].get("action") and failed[0].get("listener") == "out",
                     "mta_sts_failed without action or listener: %r" % failed[0])
        mwtest.eq(log_events(mw, "mta_sts_policy", BROKEN), [], "mta_sts_policy for broken.test")
        mwtest.eq(mwtest.find_alerts(mw, domain=BROKEN), [], "alerts for broken.test")

        # 6b. A policy that does not parse, and a policy host whose certificate
        # does not name it: delivered as without a policy, the failure logged.
        print("== 6b. invalid.test and webpki.test", flush=True)
        for d, words in ((INVALID, "mode"), (WEBPKI, "does not name")):
            outcheck.delivered(net, mw, dest, ["bob@" + d], d)
            failed = mwtest.wait_for(lambda: log_events(mw, "mta_sts_failed", d), 5)
            mwtest.eq(len(failed or []), 1, "mta_sts_failed lines for %s" % d)
            mwtest.check(words in failed[0].get("reason", ""),
                         "mta_sts_failed for %s does not say %r: %r" % (d, words, failed[0]))
        mwtest.eq(web.gets("mta-sts." + WEBPKI), [],
                  "GETs for mta-sts.webpki.test (its certificate was refused first)")

        # 7. Two domains in one transaction, each judged by its own policy.
        print("== 7. enforce.test and wrongmx.test in one transaction", flush=True)
        nalerts = len(mwtest.find_alerts(mw, event="certificate_invalid", domain="wrongmx.test"))
        ncmds, nmsgs = len(dest.commands), len(dest.messages)
        msg = outcheck.message("two domains")
        t = outcheck.one_transaction(net, ["carol@enforce.test", "dave@wrongmx.test"], msg)
        mwtest.eq(t["mail"][0], 250, "MAIL (two domains)")
        mwtest.eq(t["rcpt"][0][0], 250, "RCPT carol@enforce.test (%r)" % (t["rcpt"][0],))
        mwtest.check_deferred(t["rcpt"][1], "certificate-host-mismatch", "RCPT dave@wrongmx.test")
        mwtest.eq(t["data"][0], 250, "end of data (two domains)")
        msgs = dest.wait_messages(nmsgs + 1, 10)
        mwtest.eq(len(msgs), nmsgs + 1, "messages at the destination (two domains)")
        mwtest.eq([msgs[-1].rcpt_tos, msgs[-1].data, msgs[-1].tls],
                  [["carol@enforce.test"], msg, True],
                  "two domains: recipients, bytes, TLS at the destination")
        dest.check_idle()
        new = dest.command_strings()[ncmds:]
        print("destination saw: %r" % new)
        mwtest.check(not [c for c in new if "wrongmx" in c.lower()],
                     "the destination saw dave@wrongmx.test: %r" % new)
        got = mwtest.wait_alerts(mw, n=nalerts + 1, event="certificate_invalid",
                                 domain="wrongmx.test")
        mwtest.eq(len(got), nalerts + 1, "certificate_invalid alerts for wrongmx.test")
        mwtest.eq(got[-1].get("expected"), "secure (mta-sts)", "alert expected (two domains)")

        # 8. A table entry wins over MTA-STS: no lookup at all.
        print("== 8. wrongmx2.test (table entry may)", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@wrongmx2.test"], "table entry")
        mwtest.eq([q for q in dns.queries() if q[1].endswith("wrongmx2.test")], [],
                  "DNS queries for wrongmx2.test")
        mwtest.eq(web.gets("mta-sts.wrongmx2.test"), [], "GETs for mta-sts.wrongmx2.test")
        for ev in ("mta_sts_policy", "mta_sts_failed"):
            mwtest.eq(log_events(mw, ev, TABLE), [], "%s lines for wrongmx2.test" % ev)
        mwtest.eq(mwtest.find_alerts(mw, domain=TABLE), [], "alerts for wrongmx2.test")

        # 9. STARTTLS stripped on the path to a domain with an enforce policy.
        print("== 9. enforce.test, STARTTLS stripped", flush=True)
        refused(net, mw, dest2, "erin@enforce.test", "starttls-not-supported",
                "starttls_stripped", "secure (mta-sts)", host=STRIP)
        mwtest.check("strip" in strip.events(), "the stripper did not strip: %r"
                     % strip.events())

        # 10. The cache: no second fetch, and none needed with the server gone.
        print("== 10. the cache, with the HTTPS server stopped", flush=True)
        web.stop()
        try:
            net.connect(WEB, 443, timeout=5).close()
            mwtest.fail("the HTTPS server still takes connections after stop()")
        except ConnectionRefusedError:
            pass
        outcheck.delivered(net, mw, dest, ["frank@enforce.test"], "cached enforce")
        refused(net, mw, dest, "frank@wrongmx.test", "certificate-host-mismatch",
                "certificate_invalid", "secure (mta-sts)")
        for d in list(POLICIES) + [BROKEN, INVALID]:
            n = 0 if d == TABLE else 1
            mwtest.eq(len(web.gets("mta-sts." + d)), n, "GETs for mta-sts.%s in all" % d)
            mwtest.eq(dns.count("TXT", "_mta-sts." + d), n, "TXT queries for _mta-sts.%s" % d)
            if n:
                mwtest.eq(len(log_events(mw, "mta_sts_policy" if d in POLICIES
                                         else "mta_sts_failed", d)), 1,
                          "policy or failure lines for %s in all" % d)
        mwtest.eq(len(web.requests), 6, "HTTPS requests in all: %r" % web.requests)
        mwtest.eq(len(web.errors), 1, "HTTPS connections that failed (webpki.test's "
                  "alone, closed by mailward after the handshake): %r" % web.errors)
        mwtest.eq([f.get("domain") for f in log_events(mw, "mta_sts_failed")],
                  [BROKEN, INVALID, WEBPKI], "mta_sts_failed lines in all")

        # 10b. Report mail (MAIL FROM tlsrpt_from) to a domain whose TLS fails
        # its policy: delivered over TLS, the certificate not checked, and left
        # out of the TLS-RPT results; through the stripper still refused.
        print("== 10b. TLS-RPT report mail", flush=True)
        nmsgs = len(dest.messages)
        msg = outcheck.message("report")
        t = outcheck.one_transaction(net, ["tlsrpt@wrongmx.test"], msg, mail_from=REPORT_FROM)
        mwtest.eq([t["mail"][0], t["rcpt"][0][0], t["data"][0]], [250, 250, 250],
                  "report mail to wrongmx.test (MAIL, RCPT, end of data)")
        msgs = dest.wait_messages(nmsgs + 1, 10)
        mwtest.eq([msgs[-1].mail_from, msgs[-1].rcpt_tos, msgs[-1].data, msgs[-1].tls],
                  [REPORT_FROM, ["tlsrpt@wrongmx.test"], msg, True],
                  "report mail at the destination (sender, recipients, bytes, TLS)")
        got = log_events(mw, "tls_report_mail", "wrongmx.test")
        mwtest.eq([(x.get("level"), x.get("action")) for x in got],
                  [("secure", "TLS required, certificate not checked")],
                  "tls_report_mail lines for wrongmx.test")
        nstrip = len(dest2.messages)
        t = outcheck.one_transaction(net, ["tlsrpt@enforce.test"], msg, host=STRIP,
                                     mail_from=REPORT_FROM)
        mwtest.check_deferred(t["rcpt"][0], "starttls-not-supported",
                              "report mail through the stripper")
        mwtest.eq(len(dest2.messages), nstrip, "messages behind the stripper")

        # The TLS-RPT results so far (tlsrpt = yes): one line per session and
        # recipient domain, with the policy that applied and its verdict
        # (testing.test: what enforce would have refused, though delivered).
        print("== TLS-RPT results of scenarios 1-10", flush=True)
        got = collections.Counter()
        for r in outcheck.tlsrpt_results(net):
            sts = r["policy-type"] == "sts" and r["policy-domain"] in POLICIES
            if sts:
                mode, mx = POLICIES[r["policy-domain"]]
                mwtest.eq(r["policy-string"], policy_body(mode, mx).splitlines(),
                          "policy-string of %r" % r)
                mwtest.eq(r["mx-host"], mx, "mx-host of %r" % r)
            else:
                mwtest.eq([r["policy-string"], r["mx-host"]], [[], []],
                          "policy-string and mx-host of %r" % r)
            mwtest.eq("failure-reason-code" in r, r["result"] != "success",
                      "failure-reason-code with a failure only: %r" % r)
            got[(r["policy-domain"], r["policy-type"], r["result"],
                 r["policy-string"][1] if sts else "", r["receiving-ip"])] += 1
        mwtest.eq(sorted(got.items()), sorted({
            ("enforce.test", "sts", "success", "mode: enforce", DEST): 3,
            ("enforce.test", "sts", "starttls-not-supported", "mode: enforce", STRIP): 1,
            ("wrongmx.test", "sts", "certificate-host-mismatch", "mode: enforce", DEST): 3,
            ("wild.test", "sts", "success", "mode: enforce", DEST): 1,
            ("testing.test", "sts", "certificate-host-mismatch", "mode: testing", DEST): 1,
            (NOSTS, "no-policy-found", "success", "", DEST): 1,
            (BROKEN, "sts", "sts-policy-fetch-error", "", DEST): 1,
            (INVALID, "sts", "sts-policy-invalid", "", DEST): 1,
            (WEBPKI, "sts", "sts-webpki-invalid", "", DEST): 1,
            (TABLE, "no-policy-found", "success", "", DEST): 1}.items()),
            "TLS-RPT results (domain, type, result, mode, receiving-ip): count")

        # The same results through scripts/tlsrpt-report (--dry-run on the
        # day's file, as mailward's user): what mailward writes is what the
        # reporter reads, and enforce.test's report counts its sessions.
        print("== TLS-RPT report of enforce.test (tlsrpt-report --dry-run)", flush=True)
        day = [r["time"][:10] for r in outcheck.tlsrpt_results(net)
               if r["policy-domain"] == "enforce.test"][-1]
        r = net.run(net.sender, ["runuser", "-u", "nobody", "--", "/usr/bin/python3",
                                 os.path.join(mwtest.REPO, "scripts", "tlsrpt-report"),
                                 "--state-dir", net.state_dir, "--organization", "Sender",
                                 "--contact", "postmaster@sender.test", "--day", day,
                                 "--dry-run"], timeout=120)
        print("tlsrpt-report: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
        mwtest.eq(r.returncode, 1, "exit status of tlsrpt-report --dry-run (1: a report "
                  "is still to be sent)")
        mwtest.check("bad_lines" not in r.stderr, "tlsrpt-report could not read every line")
        printed = json.loads("[" + re.sub(r"\}\n\{", "},{", r.stdout.strip()) + "]")
        mwtest.eq([(p["policy-domain"], p["send-to"]) for p in printed],
                  [("enforce.test", ["mailto:tlsrpt@enforce.test"])],
                  "reports tlsrpt-report would send (domain, rua)")
        pols = printed[0]["report"]["policies"]
        mwtest.eq([(p["policy"]["policy-type"], p["summary"]["total-successful-session-count"],
                    p["summary"]["total-failure-session-count"],
                    [(f["result-type"], f["receiving-ip"], f["failed-session-count"])
                     for f in p.get("failure-details", [])]) for p in pols],
                  [("sts", 3, 1, [("starttls-not-supported", STRIP, 1)])],
                  "enforce.test's report (type, successes, failures, details)")

        # 12. A restart keeps the policies (state_dir/mta-sts.mdb), the HTTPS
        # server still stopped.
        print("== 12. a restart, the policy host still gone", flush=True)
        mw.stop()
        mwtest.check(os.path.exists(os.path.join(net.state_dir, "mta-sts.mdb")),
                     "no mta-sts.mdb in state_dir")
        mw = net.outbound(policy="%s may\n" % TABLE, default_level="may", mta_sts="yes",
                          globals={"state_dir": net.state_dir}, redirect=False)
        refused(net, mw, dest, "hana@wrongmx.test", "certificate-host-mismatch",
                "certificate_invalid", "secure (mta-sts)")
        outcheck.delivered(net, mw, dest, ["hana@enforce.test"], "stored enforce")
        loaded = [(x.get("listener"), x.get("domains")) for x in
                  log_events(mw, "mta_sts_store_loaded")]
        mwtest.eq(loaded, [("out", "4")], "mta_sts_store_loaded lines after the restart "
                  "(listener, domains: the four policies fetched before)")
        mwtest.eq(log_events(mw, "mta_sts_policy"), [], "policies fetched after the restart")
        mwtest.eq(len(web.requests), 6, "HTTPS requests in all, after the restart")

        # 11. SIGHUP and a new policy: wrongmx.test now publishes (new id) the
        # certificate's name. The first RCPT after SIGHUP is judged by the
        # cached policy and starts the lookup; once the new policy is in,
        # the domain is delivered.
        print("== 11. SIGHUP, then a new policy for wrongmx.test", flush=True)
        new_mx = ["mx.enforce.test"]
        dns.stop()
        txt["_mta-sts.wrongmx.test"] = "v=STSv1; id=wrongmx2;"
        dns = net.dnsmasq(DNS, txt=txt, hosts=hosts)
        sites["mta-sts.wrongmx.test"] = (200, "text/plain", policy_body("enforce", new_mx))
        web = net.https(WEB, net.cert("mta-sts.enforce.test", sans=sorted(sites)), sites)
        os.kill(mw.pid, signal.SIGHUP)
        got = mwtest.wait_for(lambda: log_events(mw, "reload_mta_sts"), 5)
        mwtest.eq([(x.get("listener"), x.get("domains")) for x in got or []],
                  [("out", "4")],
                  "reload_mta_sts lines (listener, domains cached: the four read in "
                  "at the restart)")
        refused(net, mw, dest, "gina@wrongmx.test", "certificate-host-mismatch",
                "certificate_invalid", "secure (mta-sts)")
        got = mwtest.wait_for(lambda: [x for x in log_events(mw, "mta_sts_policy",
                                                             "wrongmx.test")
                                       if x.get("id") == "wrongmx2"], 10)
        mwtest.eq([(x.get("mode"), x.get("mx")) for x in got or []],
                  [("enforce", " ".join(new_mx))],
                  "the new policy of wrongmx.test logged; log:\n%s" % mw.log())
        mwtest.eq(len(web.gets("mta-sts.wrongmx.test")), 1, "GETs of the new policy")
        outcheck.delivered(net, mw, dest, ["gina@wrongmx.test"], "new policy")
        # Unchanged ids are looked at again, not fetched again.
        outcheck.delivered(net, mw, dest, ["gina@enforce.test"], "after SIGHUP, same id")
        mwtest.eq(dns.wait_queries("TXT", "_mta-sts.enforce.test"), 1,
                  "TXT queries for _mta-sts.enforce.test after SIGHUP")
        mwtest.eq(web.gets("mta-sts.enforce.test"), [],
                  "GETs for mta-sts.enforce.test after SIGHUP (its id did not change)")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
