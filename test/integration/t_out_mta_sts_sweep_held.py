#!/usr/bin/python3
"""Outbound MTA-STS, workers = 2: the worker that keeps the stored
policies fresh (worker 0, the sweeper) also takes in a policy another
worker stored for a domain it already has an entry for, one without a
policy (RFC 8461 section 3.3: refresh every cached policy).

The test bed is t_out_mta_sts_refresh's, with late.test in place of
fresh.test: its policy (enforce, mx: mx.late.test, max_age 60) is served
from the start, but its TXT record is published only in step 2.
mailward: mta_sts = yes, default_level may, workers = 2 (sharing the
policy store), probe_interval 2 (the sweeper looks at the store every
2 s).

  1. On worker 0: RCPT bob@late.test: no TXT record, so no policy;
     delivered. Worker 0 now holds late.test as "none" (an hour).
  2. The TXT record appears. On worker 1: RCPT bob@late.test: the policy
     is fetched (GET 1) and stored; 451 (certificate-host-mismatch).
  3. No session at all: worker 0 reads the stored policy in at its next
     look at the store (mta_sts_store_loaded domains=1 from worker 0's
     pid) and refreshes it 30 s after GET 1 (GET 2, one only).

Before: worker 0 passed over every stored domain it held an entry for,
whatever the entry, so nothing refreshed late.test (worker 1 does not
sweep), and its policy would lapse 60 s after GET 1 however few fetches
an attacker blocks."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402
from t_out_mta_sts_refresh import DEST, DNS, WEB, session_on  # noqa: E402

POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx.late.test\r\nmax_age: 60\r\n"


def main():
    with mwtest.Env("out_mta_sts_sweep_held") as env:
        net = env.netns(hosts=(DEST, WEB, DNS))
        hosts = {"mta-sts.late.test": WEB}
        dns = net.dnsmasq(DNS, hosts=hosts)
        net.resolver(DNS)
        web = net.https(WEB, net.cert("mta-sts.late.test"),
                        {"mta-sts.late.test": (200, "text/plain", POLICY)})
        dest = net.dest(DEST, tls="starttls", cert=net.cert("mx.other.test"))
        mw = net.outbound(default_level="may", mta_sts="yes", probe_interval=2,
                          globals={"workers": 2})

        def gets():
            return len(web.gets("mta-sts.late.test"))

        print("== 1. worker 0, no TXT record: delivered", flush=True)
        s, _ = session_on(net, mw, 0)
        t = mwtest.transaction(s, outcheck.FROM, ["bob@late.test"],
                               outcheck.message("no policy yet"))
        s.close()
        mwtest.eq([t["rcpt"][0][0], t["data"][0]], [250, 250],
                  "RCPT, end of data on worker 0 (no policy yet)")
        mwtest.eq(len(dest.wait_messages(1, 10)), 1, "messages at the destination")
        mwtest.eq(gets(), 0, "GETs while late.test has no TXT record")

        print("== 2. the TXT record appears; worker 1 fetches the policy", flush=True)
        dns.stop()
        dns = net.dnsmasq(DNS, txt={"_mta-sts.late.test": "v=STSv1; id=late1;"},
                          hosts=hosts)
        s, _ = session_on(net, mw, 1)
        t = mwtest.transaction(s, outcheck.FROM, ["bob@late.test"],
                               outcheck.message("policy fetched"))
        s.close()
        t1 = time.monotonic()
        mwtest.check_deferred(t["rcpt"][0], "certificate-host-mismatch", "RCPT on worker 1")
        mwtest.eq(gets(), 1, "GETs after worker 1's RCPT")

        print("== 3. no session: worker 0 reads it in and refreshes it", flush=True)
        w0 = re.search(r"mailward\[(\d+)\]: info: - event=worker_start worker=0 ", mw.log())
        mwtest.check(w0, "no worker_start line for worker 0")
        pat = re.compile(r"mailward\[%s\]: info: - event=mta_sts_store_loaded listener=out "
                         r"domains=1 " % w0.group(1))
        mwtest.check(mwtest.wait_for(lambda: pat.search(mw.log()), 10),
                     "worker 0 did not read in the policy worker 1 stored:\n%s"
                     % mw.log()[-3000:])
        got = mwtest.wait_for(lambda: gets() >= 2, max(1.0, t1 + 45 - time.monotonic()))
        print("== t1+%.0f: GETs %d" % (time.monotonic() - t1, gets()), flush=True)
        mwtest.check(got, "no second GET by 45 s after the first: the policy was not "
                     "refreshed (requests %r; log:\n%s)" % (web.requests, mw.log()[-4000:]))
        time.sleep(1)
        mwtest.eq(gets(), 2, "GETs after the refresh (one worker refreshes)")
        mwtest.eq(len(dest.messages), 1, "messages at the destination")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
