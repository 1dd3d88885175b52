#!/usr/bin/python3
"""Outbound TLS-RPT results (tlsrpt = yes) only for sessions that tried TLS
to a policy domain.

The destination (192.0.2.10) is aiosmtpd without STARTTLS. mailward:
default_level may, the table "plain.test none". One session each:

  bob@may.test          delivered in clear text (may); recorded:
                        no-policy-found, starttls-not-supported
  bob@plain.test        delivered in clear text (none: TLS not tried);
                        not recorded (an earlier build wrote "success",
                        which a report would count as a TLS session that
                        succeeded, RFC 8460 section 4.3)
  bob@[192.0.2.10]      delivered (an address literal, level may); not
                        recorded (no policy domain to report to; the report
                        script called the line bad)

The results file (state_dir/tlsrpt/DAY.jsonl) then holds may.test's line
only, and scripts/tlsrpt-report --dry-run reads it with no bad line."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402


def main():
    with mwtest.Env("out_tlsrpt_skip") as env:
        net = env.netns(hosts=("192.0.2.10", "192.0.2.53"))
        # The report script asks DNS for the domains' TLSRPT records: a
        # resolver of the test's own, which knows none.
        net.dnsmasq("192.0.2.53")
        net.resolver("192.0.2.53")
        dest = net.dest("192.0.2.10", tls=None)
        mw = net.outbound(policy="plain.test none\n", default_level="may", tlsrpt="yes")
        for n, rcpt in enumerate(("bob@may.test", "bob@plain.test", "bob@[192.0.2.10]")):
            t = outcheck.one_transaction(net, [rcpt], outcheck.message("to %s" % rcpt))
            mwtest.eq([t["rcpt"][0][0], t["data"][0]], [250, 250], "%s: %r" % (rcpt, t))
            mwtest.eq(len(dest.wait_messages(n + 1, 10)), n + 1, "messages after %s" % rcpt)
        mw.stop()
        got = [(r["policy-domain"], r["policy-type"], r["result"])
               for r in outcheck.tlsrpt_results(net)]
        print("TLS-RPT results: %r" % got)
        mwtest.eq(got, [("may.test", "no-policy-found", "starttls-not-supported")],
                  "TLS-RPT results")
        day = time.strftime("%Y-%m-%d", time.gmtime())
        r = net.run(net.sender, ["/usr/bin/python3",
                                 os.path.join(mwtest.REPO, "scripts", "tlsrpt-report"),
                                 "--state-dir", net.state_dir, "--organization", "Test",
                                 "--contact", "tlsrpt@sender.test", "--day", day,
                                 "--dry-run", "-v"])
        print("tlsrpt-report: %d\n%s%s" % (r.returncode, r.stdout[-1500:], r.stderr[-1500:]))
        mwtest.eq(r.returncode, 0, "tlsrpt-report's status")
        mwtest.check("bad_lines" not in r.stdout + r.stderr,
                     "tlsrpt-report found bad lines:\n%s%s" % (r.stdout, r.stderr))
    print("ok")


if __name__ == "__main__":
    main()
