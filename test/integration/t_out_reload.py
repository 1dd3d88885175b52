#!/usr/bin/python3
"""SIGHUP re-reads the outbound policy tables (README, "Outbound";
mailward(8), SIGHUP), with workers = 2: the supervisor reloads its own copy
(for workers it starts later) and passes the signal to both workers.

The destination offers no STARTTLS (aiosmtpd without TLS at 192.0.2.10:25,
reached through the redirect):

  1. "reload.test encrypt": RCPT 451 4.7.5, alert starttls_stripped, expected
     "encrypt (policy)", nothing at the destination.
  2. The table gets an error (an unknown level) and SIGHUP: three processes
     log event=reload_policy_failed and the problem as FILE:LINE; the table
     loaded before stays, so the RCPT is still refused as "encrypt (policy)".
  3. "reload.test may" and SIGHUP: three processes log event=reload_policy
     entries=1, and reload.test is delivered (in clear text, as may allows).
  4. Both workers are killed; the supervisor starts two new ones from its own
     (reloaded) copy, and reload.test is still delivered: without the
     supervisor's reload they would be back at the start-up table (encrypt)."""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

RCPT = "bob@reload.test"


def write_table(path, text):
    """Replace the table as an administrator's editor or script would: a new
    file renamed over the old one."""
    with open(path + ".new", "w") as f:
        f.write(text)
    os.chmod(path + ".new", 0o644)
    os.rename(path + ".new", path)


def hup_and_wait(mw, event, n):
    """SIGHUP to the supervisor; wait until `n` more processes have logged
    `event` for the listener; return the new log text."""
    pattern = re.compile(r"mailward\[(\d+)\]: \w+: (?:\S+ )?event=%s listener=out " % event)
    before = len(pattern.findall(mw.log()))
    os.kill(mw.pid, signal.SIGHUP)
    mwtest.wait_for(lambda: len(pattern.findall(mw.log())) >= before + n, 10)
    log = mw.log()
    new = pattern.findall(log)[before:]
    mwtest.eq(len(set(new)), n, "processes that logged %s after SIGHUP (log:\n%s)"
              % (event, log[-3000:]))
    return log


def deliver(net, dest, n, what):
    """n messages to reload.test, each in a session of its own; all must arrive."""
    first = len(dest.messages)
    for i in range(n):
        msg = outcheck.message("%s %d" % (what, i))
        t = outcheck.one_transaction(net, [RCPT], msg)
        mwtest.eq([t["mail"][0], t["rcpt"][0][0], t["data"][0]], [250, 250, 250],
                  "reload.test %s (MAIL, RCPT, end of data)" % what)
        msgs = dest.wait_messages(first + i + 1, 10)
        mwtest.eq(len(msgs), first + i + 1, "messages at the destination")
        mwtest.eq(msgs[-1].data, msg, "message bytes")


def main():
    with mwtest.Env("out_reload") as env:
        net = env.netns()
        dest = net.dest("192.0.2.10", tls=None)
        mw = net.outbound(policy="reload.test encrypt\n", default_level="may",
                          globals={"workers": 2})
        table = net.policy_file

        outcheck.expect_refused(net, mw, dest, RCPT, "starttls-not-supported",
                                "starttls_stripped", "encrypt (policy)")

        write_table(table, "reload.test bogus\n")
        log = hup_and_wait(mw, "reload_policy_failed", 3)
        problems = [l for l in log.splitlines() if "event=reload_policy_problem" in l]
        print("problems: %r" % problems)
        mwtest.check(any("%s:1:" % table in l for l in problems),
                     "no problem line names %s:1: %r" % (table, problems))
        mwtest.check("action=\"kept the table loaded before\"" in log,
                     "the failed reload does not say the old table was kept")
        for _ in range(2):  # either worker may take the session
            outcheck.expect_refused(net, mw, dest, RCPT, "starttls-not-supported",
                                    "starttls_stripped", "encrypt (policy)")

        write_table(table, "reload.test may\n")
        log = hup_and_wait(mw, "reload_policy", 3)
        mwtest.check(re.search(r"event=reload_policy listener=out policy=%s entries=1"
                               % re.escape(table), log), "no reload_policy line with entries=1")
        mwtest.check("event=sighup action=forwarded workers=2" in log,
                     "the supervisor did not say it passed SIGHUP to 2 workers")
        deliver(net, dest, 2, "after the reload")

        old = mwtest.children(mw.pid)
        mwtest.eq(len(old), 2, "workers")
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        mwtest.check(mwtest.wait_for(lambda: len(set(mwtest.children(mw.pid)) - set(old)) == 2,
                                     15),
                     "no two new workers: children %r; log:\n%s"
                     % (mwtest.children(mw.pid), mw.log()[-3000:]))
        deliver(net, dest, 2, "from restarted workers")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
