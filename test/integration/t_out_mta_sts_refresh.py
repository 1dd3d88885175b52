#!/usr/bin/python3
"""Outbound MTA-STS: a policy in use is refreshed before it expires (RFC
8461 section 3.3), so that blocking the one fetch at its expiry cannot take
it away; and a worker whose own copy has expired takes the fresher one
another worker stored.

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
fresh.test is delivered: each 451 below shows the policy in force),
workers = 2 (they share the policy store, state_dir/mta-sts.mdb). Which
worker serves a session is seen from its id in the log; a session on the
other one is ended with QUIT before MAIL and the test connects again.

  t=0     on worker A: RCPT bob@fresh.test: the policy is fetched (GET 1)
          and stored; 451 4.7.5 certificate-host-mismatch, expected
          "secure (mta-sts)".
  t=1     on worker B: 451 from the policy A stored (no GET; B logs
          mta_sts_stored). B's copy expires at t=60.
  t=32    on A: 451 at once from the cached policy, and in the background
          the TXT record is looked at again and, its id unchanged, the
          policy fetched again (GET 2, a second mta_sts_policy line) and
          stored: its 60 s start anew. Then the policy host goes away
          (connections refused).
  t=65    on A, past the first fetch's expiry (t=60), before the refreshed
          one's (t=92): 451. The refresh tried then fails and says "the
          cached policy stays".
  t=66    on B, whose own copy has expired and which cannot fetch it: 451,
          from the policy A refreshed and stored.

Without the refresh the policy would have expired at t=60 and its failed
fetch let the mail go to the wrong server as at level may; without
reading the store again B would have done so at t=66. Nothing reaches the
destination."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

DEST, WEB, DNS = "192.0.2.10", "192.0.2.44", "192.0.2.53"
POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx.fresh.test\r\nmax_age: 60\r\n"


def fresh_bed(env):
    """The test bed above: (net, dns, web, dest)."""
    net = env.netns(hosts=(DEST, WEB, DNS))
    dns = net.dnsmasq(DNS, txt={"_mta-sts.fresh.test": "v=STSv1; id=fresh1;"},
                      hosts={"mta-sts.fresh.test": WEB})
    net.resolver(DNS)
    web = net.https(WEB, net.cert("mta-sts.fresh.test"),
                    {"mta-sts.fresh.test": (200, "text/plain", POLICY)})
    dest = net.dest(DEST, tls="starttls", cert=net.cert("mx.other.test"))
    return net, dns, web, dest


def worker_of(mw, port):
    """The index of the worker of mw that serves the session from port."""
    pat = re.compile(r" ([0-9a-f]{5}w(\d+)[0-9a-f]{6}) event=connect listener=out "
                     r"client=%s:%d$" % (re.escape(mwtest.NetEnv.SENDER_ADDR), port), re.M)
    got = mwtest.wait_for(lambda: pat.search(mw.log()), 5)
    mwtest.check(got, "no connect line for port %d:\n%s" % (port, mw.log()[-3000:]))
    return int(got.group(2))


def session_on(net, mw, want):
    """An smtplib session (EHLO done) through DEST served by worker want of
    mw (None: any); a session on another worker is ended with QUIT."""
    for _ in range(50):
        s = net.smtp(DEST)
        w = worker_of(mw, s.sock.getsockname()[1])
        if want is None or w == want:
            s.ehlo("client.sender.test")
            return s, w
        s.quit()
    mwtest.fail("50 sessions and none on worker %d" % want)


def policy_kept(mw, dest):
    """Every fetch that failed kept the cached policy; nothing was delivered."""
    failed = [line for line in mw.log().splitlines() if "event=mta_sts_failed" in line]
    print("fetches that failed: %r" % failed, flush=True)
    mwtest.check(failed and all("the cached policy stays" in line for line in failed),
                 "a failed fetch did not keep the policy: %r" % failed)
    mwtest.eq(dest.messages, [], "messages at the destination")


def main():
    with mwtest.Env("out_mta_sts_refresh") as env:
        net, dns, web, dest = fresh_bed(env)
        mw = net.outbound(default_level="may", mta_sts="yes", globals={"workers": 2})

        def refused_on(want, when):
            before = len(mwtest.find_alerts(mw, event="certificate_invalid"))
            s, w = session_on(net, mw, want)
            print("== t=%.0f, worker %d: %s" % (time.monotonic() - t0, w, when), flush=True)
            t = mwtest.transaction(s, outcheck.FROM, ["bob@fresh.test"],
                                   outcheck.message(when))
            s.close()
            mwtest.check_deferred(t["rcpt"][0], "certificate-host-mismatch",
                                  "RCPT on worker %d (%s)" % (w, when))
            got = mwtest.wait_alerts(mw, n=before + 1, event="certificate_invalid")
            mwtest.eq(got[-1].get("expected"), "secure (mta-sts)", "expected (%s)" % when)
            return w

        def policy_lines():
            return [line for line in mw.log().splitlines()
                    if "event=mta_sts_policy" in line and "domain=fresh.test" in line]

        t0 = time.monotonic()
        a = refused_on(None, "first RCPT")
        b = 1 - a
        mwtest.eq(len(web.gets("mta-sts.fresh.test")), 1, "GETs after the first RCPT")
        refused_on(b, "the other worker's first RCPT")
        mwtest.eq(len(web.gets("mta-sts.fresh.test")), 1, "GETs after worker %d's" % b)
        pid = re.search(r"mailward\[(\d+)\]: info: - event=worker_start worker=%d " % b,
                        mw.log())
        mwtest.check(pid, "no worker_start line for worker %d" % b)
        mwtest.check(re.search(r"mailward\[%s\]: info: - event=mta_sts_stored listener=out "
                               r"domain=fresh.test" % pid.group(1), mw.log()),
                     "worker %d did not take the stored policy:\n%s" % (b, mw.log()[-3000:]))

        time.sleep(max(0.0, t0 + 32 - time.monotonic()))
        refused_on(a, "RCPT at 32 s")
        got = mwtest.wait_for(lambda: len(web.gets("mta-sts.fresh.test")) >= 2, 10)
        mwtest.check(got, "no second GET: the policy was not refreshed (requests %r; log:\n%s)"
                     % (web.requests, mw.log()[-4000:]))
        mwtest.check(mwtest.wait_for(lambda: len(policy_lines()) >= 2, 10),
                     "no second mta_sts_policy line: %r" % policy_lines())
        print("TXT queries by then: %d" % dns.count("TXT", "_mta-sts.fresh.test"), flush=True)
        web.stop()

        time.sleep(max(0.0, t0 + 65 - time.monotonic()))
        refused_on(a, "RCPT at 65 s, after the first fetch's expiry")
        refused_on(b, "RCPT on the worker whose own copy expired")
        policy_kept(mw, dest)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
