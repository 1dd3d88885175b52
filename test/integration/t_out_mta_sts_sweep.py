#!/usr/bin/python3
"""Outbound MTA-STS: every cached policy is refreshed before it expires,
also one nobody mails to (RFC 8461 section 3.3, "proactively refresh cached
policies"), and also one that a restart read back from the store; with
workers, one of them does it.

The test bed is t_out_mta_sts_refresh's: an MX whose certificate (for
mx.other.test) the policy does not allow, the policy host, dnsmasq.
fresh.test publishes enforce, mx: mx.fresh.test, max_age 60 (mailward's
shortest lifetime), so it is due for a refresh 30 s after a fetch.
mailward: mta_sts = yes, default_level may (without the policy, mail to
fresh.test is delivered: each 451 below shows the policy in force).

  t=0     mailward 1 (one process): RCPT bob@fresh.test: the policy is
          fetched (GET 1) and stored; 451 4.7.5. mailward 1 stops.
          mailward 2 starts on the same state_dir with workers = 2: one
          worker (only one) reads the stored policy in
          (mta_sts_store_loaded domains=1).
  t=30    with no session at all on mailward 2, its stored policy is
          fetched again (GET 2, one only). Then the policy host goes away.
  t=60    the refreshed policy is due again: the try fails, and "the
          cached policy stays".
  t=65    past the first fetch's expiry (t=60): RCPT bob@fresh.test on
          mailward 2 gets 451, from the refreshed policy.

Without the refresh of an unused policy, the policy would have expired at
t=60, its fetch failed, and the mail gone to the wrong server as at level
may. Nothing reaches the destination."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402
from t_out_mta_sts_refresh import DEST, fresh_bed, policy_kept  # noqa: E402


def refused(net, mw, when, t0):
    before = len(mwtest.find_alerts(mw, event="certificate_invalid"))
    print("== t=%.0f: %s" % (time.monotonic() - t0, when), flush=True)
    s = net.smtp(DEST)
    s.ehlo("client.sender.test")
    t = mwtest.transaction(s, outcheck.FROM, ["bob@fresh.test"], outcheck.message(when))
    s.close()
    mwtest.check_deferred(t["rcpt"][0], "certificate-host-mismatch", "RCPT (%s)" % when)
    got = mwtest.wait_alerts(mw, n=before + 1, event="certificate_invalid")
    mwtest.eq(got[-1].get("expected"), "secure (mta-sts)", "expected (%s)" % when)


def main():
    with mwtest.Env("out_mta_sts_sweep") as env:
        net, _, web, dest = fresh_bed(env)

        def gets():
            return len(web.gets("mta-sts.fresh.test"))

        mw1 = net.outbound(default_level="may", mta_sts="yes")
        state = net.state_dir
        t0 = time.monotonic()
        refused(net, mw1, "first RCPT, mailward 1", t0)
        mwtest.eq(gets(), 1, "GETs after the first RCPT")
        mw1.stop()

        mw = net.outbound(default_level="may", mta_sts="yes", redirect=False,
                          globals={"workers": 2, "state_dir": state})
        loaded = mwtest.wait_for(lambda: [ln for ln in mw.log().splitlines()
                                          if "event=mta_sts_store_loaded listener=out " in ln],
                                 5)
        mwtest.check(len(loaded) == 1 and "domains=1 " in loaded[0],
                     "not one mta_sts_store_loaded domains=1 line at start: %r\n%s"
                     % (loaded, mw.log()[-3000:]))

        got = mwtest.wait_for(lambda: gets() >= 2, max(1.0, t0 + 45 - time.monotonic()))
        print("== t=%.0f: GETs %d" % (time.monotonic() - t0, gets()), flush=True)
        mwtest.check(got, "no second GET by t=45: the unused policy was not refreshed "
                     "(requests %r; log:\n%s)" % (web.requests, mw.log()[-4000:]))
        mwtest.check(not [ln for ln in mw.log().splitlines() if " event=connect " in ln],
                     "a session on mailward 2 before the refresh: %s" % mw.log()[-3000:])
        time.sleep(1)
        mwtest.eq(gets(), 2, "GETs after the refresh (one worker refreshes)")
        web.stop()

        time.sleep(max(0.0, t0 + 65 - time.monotonic()))
        refused(net, mw, "RCPT at 65 s, after the first fetch's expiry", t0)
        policy_kept(mw, dest)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
